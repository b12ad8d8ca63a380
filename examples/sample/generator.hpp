// examples/sample/generator.hpp — redi_sample's device-specific half: one compile-time model
// type (backbone, fusion, precision, device) and the SD-VAE, behind a small virtual interface so
// that the chunking, file and resume logic (sample.cpp) is device-independent. Instantiated by
// sample_cpu.cpp (float on the CPU) and sample_cuda.cu (float or BF16Mixed on GPU 0).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "redi/device_sampler.hpp"
#include "redi/diffusion/diffusion.hpp"
#include "redi/io/state_dict.hpp"
#include "redi/nn/device_bridge.hpp"
#include "redi/nn/transformer.hpp"
#include "redi/nn/vae.hpp"
#include "redi/ops/embedding_fixed.hpp"
#include "redi/weights/vae.hpp"

namespace redi_sample {

/// Everything redi_sample was asked to do (parsed and checked in sample.cpp).
struct Settings {
  std::string ckpt, prefix, vae_path, out, device = "cpu", precision = "fp32";
  std::string backbone = "sit", fusion = "merged";
  redi::ModelConfig model{};
  std::string sampler = "sde", guidance = "cfg";
  int sample_steps = 250;
  double cfg_scale = 1.5, rg_scale = 1.5;
  redi::VaeConfig vae{};
  int num_samples = 50000, num_classes = 1000, chunk = 1000, batch = 32, vae_batch = 8, grid = 64;
  std::uint64_t seed = 0;
  int max_chunks = 0;  // stop after this many new chunks (0: all)
  bool save_latents = false;
};

class Generator {
public:
  virtual ~Generator() = default;
  /// latents [n, Cx, S, S]: the image channels of samples first_index .. first_index + n - 1.
  virtual void sample(float* latents, const int* labels, int n, std::uint64_t first_index) = 0;
  /// images [n, 3, S*f, S*f] (about [-1, 1]) from latents [n, Cx, S, S].
  virtual void decode(float* images, const float* latents, int n) = 0;
};

std::unique_ptr<Generator> make_cpu_generator(const Settings& s);
std::unique_ptr<Generator> make_cuda_generator(const Settings& s);  // sample_cuda.cu (CUDA builds)

/// Reads the EMA (or `prefix`) weights of s.ckpt into the host parameter buffer of `layout`,
/// checking pos_embed against the 2-D sin-cos table of the inferred geometry.
inline std::vector<float> load_transformer_params(const Settings& s, const redi::TransformerLayout& layout) {
  const redi::ModelConfig& c = s.model;
  std::vector<float> host(std::size_t(layout.total)), pos(std::size_t(c.tokens()) * c.width);
  std::vector<redi::io::ParamRef<float>> refs;
  refs.push_back({"pos_embed", redi::Shape{1, c.tokens(), c.width}, pos.data()});
  for (const auto& e : layout.entries) refs.push_back({e.name, e.shape, host.data() + e.offset});
  redi::io::load_state<float>(std::filesystem::path(s.ckpt), refs, {.strict = true, .prefix = s.prefix});
  std::vector<float> table(pos.size());
  redi::ops::pos_embed_2d(table.data(), c.grid(), c.grid(), c.width);
  for (std::size_t i = 0; i < pos.size(); ++i)
    REDI_CHECK(std::abs(pos[i] - table[i]) <= 1e-4f, s.ckpt, ": tensor '", s.prefix,
               "pos_embed' is not the 2-D sin-cos table of a ", c.grid(), "x", c.grid(), " grid of width ", c.width,
               " (element ", i, ": ", pos[i], " vs ", table[i], ")");
  for (std::size_t i = 0; i < host.size(); ++i)
    REDI_CHECK(std::isfinite(host[i]), s.ckpt, ": a non-finite weight under prefix '", s.prefix, "'");
  return host;
}

/// Model type P (precision), F (fusion), Obj (objective) on device Dev.
template <class P, class F, class Obj, class Dev>
class ModelGenerator final : public Generator {
  using Net = redi::Transformer<P, F, Dev>;

public:
  ModelGenerator(const Settings& s, const Dev& ctx)
      : s_(s), net_(s.model, ctx, typename Net::Uninitialized{}), vae_(s.vae, ctx) {
    const auto host = load_transformer_params(s, net_.layout());
    net_.params().from_host(host);
    redi::load_vae_weights(vae_, s.vae_path);
    vae_.micro_batch = s.vae_batch;
  }

  void sample(float* latents, const int* labels, int n, std::uint64_t first_index) override {
    const std::size_t per = std::size_t(s_.model.input_elems());
    const std::size_t img = std::size_t(s_.model.image_channels) * s_.model.input_size * s_.model.input_size;
    buf_.resize(std::size_t(n) * per);
    redi::SampleRequest req;
    req.B = n;
    req.labels = labels;
    req.seed = s_.seed;
    req.first_index = first_index;
    draw(req);
    for (int i = 0; i < n; ++i) std::copy_n(buf_.data() + std::size_t(i) * per, img, latents + std::size_t(i) * img);
  }

  void decode(float* images, const float* latents, int n) override {
    const int S = s_.model.input_size;
    const std::int64_t zin = std::int64_t(n) * s_.vae.latent_channels * S * S;
    const std::int64_t out = std::int64_t(n) * s_.vae.out_channels * std::int64_t(S) * S *
                             s_.vae.downsample_factor() * s_.vae.downsample_factor();
    if constexpr (Dev::is_host) {
      vae_.decode(images, latents, n, S, S);
    } else {
      redi::Tensor<float, Dev> dz(redi::Shape{zin}), dimg(redi::Shape{out});
      Dev::copy_from_host(dz.data(), latents, std::size_t(zin) * sizeof(float));
      vae_.decode(dimg.data(), dz.data(), n, S, S);
      Dev::copy_to_host(images, dimg.data(), std::size_t(out) * sizeof(float));
    }
  }

private:
  template <class S, class G>
  void run(const typename S::Options& so, const redi::SampleRequest& req) {
    redi::check_sampling_policies<Obj, S, G>();
    const redi::GuidanceOptions go{.cfg_scale = s_.cfg_scale, .rg_scale = s_.rg_scale};
    redi::Sampler<S, G, float> sampler(so, go);  // validates the options
    if constexpr (Dev::is_host) {
      sampler.run(net_, buf_.data(), req);
    } else {
      // every sampler runs on the device (state, noise, guidance and steps: redi::DeviceSampler);
      // the host Sampler through the bridge only where it does not serve
      using DS = redi::DeviceSampler<Net, S, G>;
      if constexpr (redi::DeviceSamplerBackend<Dev, typename Net::master_type> && DS::kSampler) {
        if (DS::serves(net_, req)) {
          DS ds;
          ds.run(net_, buf_.data(), req, so, go);
          return;
        }
      }
      sampler.run(bridge_.bind(net_), buf_.data(), req);
    }
  }
  template <class S>
  void with_guidance(const typename S::Options& so, const redi::SampleRequest& req) {
    const std::string& g = s_.guidance;
    if (g == "none") return run<S, redi::NoGuidance>(so, req);
    if (g == "cfg") return run<S, redi::CFG<redi::VaeOnly>>(so, req);
    if (g == "cfg-joint") return run<S, redi::CFG<redi::Joint>>(so, req);
    if (g == "rg") return run<S, redi::RepGuidance>(so, req);
    return run<S, redi::Combine<redi::CFG<redi::VaeOnly>, redi::RepGuidance>>(so, req);
  }
  void draw(const redi::SampleRequest& req) {
    if constexpr (Obj::is_flow) {
      const redi::SdeEulerMaruyama::Options so{.num_steps = s_.sample_steps};
      if (s_.sampler == "sde") return with_guidance<redi::SdeEulerMaruyama>(so, req);
      if (s_.sampler == "euler") return with_guidance<redi::OdeEuler>({.num_steps = s_.sample_steps}, req);
      return with_guidance<redi::OdeHeun>({.num_steps = s_.sample_steps}, req);
    } else {
      if (s_.sampler == "ddim")
        return with_guidance<redi::DDIM>({.respacing = "ddim" + std::to_string(s_.sample_steps)}, req);
      return with_guidance<redi::Ancestral>({.respacing = std::to_string(s_.sample_steps)}, req);
    }
  }

  Settings s_;
  Net net_;
  redi::DeviceBridge<Net> bridge_;
  redi::Vae<float, Dev> vae_;
  std::vector<float> buf_;
};

/// The model type the settings name, on device Dev with precision P.
template <class P, class Dev>
std::unique_ptr<Generator> make_generator(const Settings& s, const Dev& ctx) {
  const bool sep = s.fusion == "separate";
  if (s.backbone == "sit") {
    if (sep) return std::make_unique<ModelGenerator<P, redi::Separate, redi::FlowMatching, Dev>>(s, ctx);
    return std::make_unique<ModelGenerator<P, redi::Merged, redi::FlowMatching, Dev>>(s, ctx);
  }
  if (sep) return std::make_unique<ModelGenerator<P, redi::Separate, redi::DDPM, Dev>>(s, ctx);
  return std::make_unique<ModelGenerator<P, redi::Merged, redi::DDPM, Dev>>(s, ctx);
}

}  // namespace redi_sample
