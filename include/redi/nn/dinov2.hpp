// redi/nn/dinov2.hpp — DINOv2 with registers (Darcet et al., "Vision Transformers Need
// Registers"), the frozen feature encoder of ReDi: DINOv2-B/14 with 4 registers by default
// (facebook/dinov2-with-registers-base; torch hub dinov2_vitb14_reg), inference only.
//
// Parameters are held under the Hugging Face transformers names (Dinov2WithRegistersModel's
// state_dict), so a model.safetensors / pytorch_model.bin loads one-to-one
// (redi/weights/dinov2.hpp). The forward pass, for normalised pixels x [B, 3, H, W]
// (H, W multiples of the patch p; gh = H/p, gw = W/p, P = gh*gw patches, R registers):
//
//   e      = Conv_p(x) (projection, kernel = stride = p)                       [B, P, D]
//   pos    = position_embeddings [1 + G*G, D] (G = 37 for B/14: trained at 518 px);
//            pos_patch = bicubic-antialiased resize of the G x G table to gh x gw
//            (ops::resize_bicubic_aa: torch interpolate(size=(gh, gw), mode='bicubic',
//            align_corners=False, antialias=True), as transformers' Dinov2WithRegisters and the
//            torch hub reg models (interpolate_offset 0, interpolate_antialias True) do; the
//            legacy DINO/DINOv2 form scale_factor = (g + 0.1) / G is `pos_offset = 0.1`)
//   h0     = [cls + pos[0] ; register_tokens (no position) ; e + pos_patch]   [B, 1+R+P, D]
//            (the table is added to cls and patches BEFORE the registers are inserted)
//   block  h += lambda1 * Dense(Attn(Q, K, V of LN1(h)))      (LayerScale lambda1 [D])
//          h += lambda2 * Fc2(GELU_erf(Fc1(LN2(h))))          (LayerScale lambda2 [D])
//          LN = nn.LayerNorm(D, eps 1e-6) with affine; attention: H heads, scale hd^-0.5, q/k/v
//          with biases (packed: query, key, value are adjacent in the flat buffer, so
//          [Wq; Wk; Wv] is one [3D, D] matrix and the op contract's qkv layout)
//   out    = LayerNorm(h)[:, 1+R:, :]                          [B, P, D] (x_norm_patchtokens)
//
// mask_token is a parameter of the checkpoint (iBOT masking in pre-training) and is loaded but
// never used.
//
// Devices: Dinov2<T, Dev> runs on any Backend<Dev> with the VitInferenceBackend ops
// (ops/backend.hpp): Dinov2<float> / Dinov2<double> on the CPU (include redi/ops/cpu_backend.hpp),
// Dinov2<float, Cuda>(cfg, ctx) on a GPU (include redi/cuda/backend.cuh in a .cu file; fp32,
// GEMMs without TF32 unless the context enables it). Both run the same op sequence below; the CPU
// results are those of the CPU-only implementation this replaced, bit for bit. forward() takes Dev
// pointers; forward_host() takes host pointers on any device (staging copies on a GPU). Two steps
// stay on the host: the bicubic-antialiased resize of the position table (once per grid: a
// [G*G, D] table, cached on Dev) and the input preprocessing (data::dinov2_preprocess, in the
// caller), whose images are decoded and cropped on the host anyway.
//
// Memory (inference only, no backward buffers): one flat parameter buffer (ParamLayout) on Dev and
// an activation arena (Workspace<Dev>) for one chunk of images, carved once per chunk shape and
// reused by every block: patches, embeddings, the residual stream h, one LayerNorm/projection
// buffer, qkv, the attention probabilities [B, heads, L, L], the attention output and the MLP
// hidden [B*L, mlp]. forward() runs any batch in chunks of chunk_batch() images (16 on the CPU,
// 64 on a device; ~0.8 GB of arena at 224 px for 64 images).
#pragma once
#include <algorithm>
#include <array>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <filesystem>
#include <map>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "redi/core/device.hpp"
#include "redi/core/dtype.hpp"
#include "redi/core/tensor.hpp"
#include "redi/core/workspace.hpp"
#include "redi/nn/param_layout.hpp"
#include "redi/ops/backend.hpp"
#include "redi/ops/resize_aa.hpp"

namespace redi {

struct Dinov2Config {
  int channels = 3;
  int patch = 14;
  int width = 768;     // D (hidden_size)
  int depth = 12;      // num_hidden_layers
  int heads = 12;      // num_attention_heads
  int mlp_dim = 3072;  // D * mlp_ratio
  int registers = 4;   // num_register_tokens
  int pos_grid = 37;   // the stored position table covers pos_grid x pos_grid patches (518 px)
  double ln_eps = 1e-6;
  double pos_offset = 0.0;  // 0: interpolate(size=(gh, gw)); > 0: scale_factor (g + offset) / pos_grid

  /// DINOv2-B/14 with 4 registers (facebook/dinov2-with-registers-base).
  static Dinov2Config base() { return {}; }

  void validate() const {
    REDI_CHECK(channels > 0 && patch > 0 && depth > 0 && pos_grid > 0 && registers >= 0 && mlp_dim > 0,
               "Dinov2Config: bad sizes (", str(), ")");
    REDI_CHECK(heads > 0 && width > 0 && width % heads == 0, "Dinov2Config: width ", width,
               " must be a positive multiple of heads ", heads);
    REDI_CHECK(ln_eps > 0 && pos_offset >= 0, "Dinov2Config: ln_eps ", ln_eps, ", pos_offset ", pos_offset);
  }
  std::string str() const {
    std::ostringstream os;
    os << "channels=" << channels << ",patch=" << patch << ",width=" << width << ",depth=" << depth
       << ",heads=" << heads << ",mlp_dim=" << mlp_dim << ",registers=" << registers << ",pos_grid=" << pos_grid
       << ",ln_eps=" << ln_eps << ",pos_offset=" << pos_offset;
    return os.str();
  }
};

/// The parameters of Dinov2WithRegistersModel in its state_dict order, under the transformers
/// names and shapes. query, key and value (weights, then biases) are adjacent, so each layer's
/// [Wq; Wk; Wv] is one [3D, D] matrix and [bq; bk; bv] one [3D] vector in the flat buffer.
/// (Init is unused: the weights always come from a file or randomize().)
inline ParamLayout dinov2_param_layout(const Dinov2Config& cfg) {
  cfg.validate();
  ParamLayout L;
  const std::int64_t D = cfg.width, Dm = cfg.mlp_dim, p = cfg.patch, G = cfg.pos_grid;
  auto add = [&](std::string name, Shape s) { L.add(std::move(name), s, Init::Zero); };
  add("embeddings.cls_token", Shape{1, 1, D});
  add("embeddings.mask_token", Shape{1, D});
  if (cfg.registers > 0) add("embeddings.register_tokens", Shape{1, cfg.registers, D});
  add("embeddings.position_embeddings", Shape{1, 1 + G * G, D});
  add("embeddings.patch_embeddings.projection.weight", Shape{D, cfg.channels, p, p});
  add("embeddings.patch_embeddings.projection.bias", Shape{D});
  for (int i = 0; i < cfg.depth; ++i) {
    const std::string b = "encoder.layer." + std::to_string(i) + ".";
    add(b + "norm1.weight", Shape{D});
    add(b + "norm1.bias", Shape{D});
    for (const char* n : {"query", "key", "value"}) add(b + "attention.attention." + n + ".weight", Shape{D, D});
    for (const char* n : {"query", "key", "value"}) add(b + "attention.attention." + n + ".bias", Shape{D});
    add(b + "attention.output.dense.weight", Shape{D, D});
    add(b + "attention.output.dense.bias", Shape{D});
    add(b + "layer_scale1.lambda1", Shape{D});
    add(b + "norm2.weight", Shape{D});
    add(b + "norm2.bias", Shape{D});
    add(b + "mlp.fc1.weight", Shape{Dm, D});
    add(b + "mlp.fc1.bias", Shape{Dm});
    add(b + "mlp.fc2.weight", Shape{D, Dm});
    add(b + "mlp.fc2.bias", Shape{D});
    add(b + "layer_scale2.lambda1", Shape{D});
  }
  add("layernorm.weight", Shape{D});
  add("layernorm.bias", Shape{D});
  return L;
}

/// A network's weights file, specialised per network type in redi/weights/ (also declared by
/// nn/vit_encoder.hpp; redeclaring a template is harmless).
template <class Net>
struct WeightsFile;

template <class T, class Dev = Cpu>
class Dinov2 {
  using Ops = Backend<Dev>;

public:
  using value_type = T;
  using device_type = Dev;

  explicit Dinov2(const Dinov2Config& cfg, Dev ctx = Dev{})
      : cfg_(cfg), layout_(dinov2_param_layout(cfg)), ctx_(std::move(ctx)) {
    static_assert(VitInferenceBackend<Dev, T>, "Dinov2<T, Dev>: Backend<Dev> lacks the ViT inference ops (include "
                                               "redi/ops/cpu_backend.hpp, or redi/cuda/backend.cuh in a .cu file)");
    auto at = [&](const std::string& name) { return layout_.find(name)->offset; };
    cls_ = at("embeddings.cls_token");
    if (cfg_.registers > 0) reg_ = at("embeddings.register_tokens");
    pos_ = at("embeddings.position_embeddings");
    pe_w_ = at("embeddings.patch_embeddings.projection.weight");
    pe_b_ = at("embeddings.patch_embeddings.projection.bias");
    for (int i = 0; i < cfg_.depth; ++i) {
      const std::string b = "encoder.layer." + std::to_string(i) + ".";
      Offs o{};
      o.ln1_w = at(b + "norm1.weight");
      o.ln1_b = at(b + "norm1.bias");
      o.qkv_w = at(b + "attention.attention.query.weight");  // [Wq; Wk; Wv] = one [3D, D] matrix
      o.qkv_b = at(b + "attention.attention.query.bias");
      o.proj_w = at(b + "attention.output.dense.weight");
      o.proj_b = at(b + "attention.output.dense.bias");
      o.ls1 = at(b + "layer_scale1.lambda1");
      o.ln2_w = at(b + "norm2.weight");
      o.ln2_b = at(b + "norm2.bias");
      o.fc1_w = at(b + "mlp.fc1.weight");
      o.fc1_b = at(b + "mlp.fc1.bias");
      o.fc2_w = at(b + "mlp.fc2.weight");
      o.fc2_b = at(b + "mlp.fc2.bias");
      o.ls2 = at(b + "layer_scale2.lambda1");
      blocks_.push_back(o);
    }
    lnf_w_ = at("layernorm.weight");
    lnf_b_ = at("layernorm.bias");
    params_ = Tensor<T, Dev>(Shape{layout_.total});
  }

  // ---- configuration and parameters
  const Dinov2Config& config() const { return cfg_; }
  const Dev& context() const { return ctx_; }
  const std::vector<ParamEntry>& entries() const { return layout_.entries; }
  const ParamEntry* find(const std::string& name) const { return layout_.find(name); }
  /// The flat parameter buffer on Dev (entries() give names, shapes, offsets).
  Tensor<T, Dev>& params() { return params_; }
  const Tensor<T, Dev>& params() const { return params_; }
  std::int64_t num_params() const { return layout_.total; }
  std::size_t arena_allocations() const { return ws_.allocations(); }
  /// Bytes of the activation arena after the calls so far.
  std::size_t arena_bytes() const { return ws_.capacity(); }
  /// Copies a host buffer of num_params() values into the parameters.
  void set_params(const T* host) {
    Dev::copy_from_host(params_.data(), host, std::size_t(layout_.total) * sizeof(T));
    params_changed();
  }
  std::vector<T> params_to_host() const { return params_.to_host(); }
  /// Call after writing params() directly (the resized position table is cached per grid).
  void params_changed() { pos_cache_grid_ = {0, 0}; }

  /// Random weights for tests and benchmarks: every tensor N(0, std) (Philox, keyed by seed),
  /// then LayerNorm weights and LayerScales += 1 so the network is well conditioned.
  void randomize(std::uint64_t seed, double std = 0.02) {
    std::vector<T> h(std::size_t(layout_.total));
    layout_.randomize(h.data(), seed, std);
    for (const auto& e : layout_.entries)
      if (e.name.ends_with("norm1.weight") || e.name.ends_with("norm2.weight") || e.name == "layernorm.weight" ||
          e.name.ends_with(".lambda1"))
        for (std::int64_t i = 0; i < e.numel(); ++i) h[std::size_t(e.offset + i)] += T(1);
    set_params(h.data());
  }

  // ---- files (redi/weights/dinov2.hpp; the template parameter defers the lookup so that nn/
  // does not depend on io/)
  template <class File = WeightsFile<Dinov2>>
  auto param_refs() {
    return File::refs(*this);
  }
  /// Loads a transformers checkpoint (model.safetensors or pytorch_model.bin) strictly.
  template <class File = WeightsFile<Dinov2>>
  void load_weights(const std::filesystem::path& path) {
    File::load_weights(*this, path);
  }

  // ---- forward

  int feature_dim() const { return cfg_.width; }
  std::array<int, 2> grid(int h, int w) const { return {h / cfg_.patch, w / cfg_.patch}; }

  /// Normalised pixels [B, C, H, W] -> patch tokens out [B, gh*gw, D] (the final LayerNorm's
  /// patch rows), both in Dev memory. Runs in chunks of chunk_batch() images.
  void forward(const T* pixels, int B, int H, int W, T* out) {
    check_input(B, H, W);
    const auto g = grid(H, W);
    const std::int64_t img = std::int64_t(cfg_.channels) * H * W, tok = std::int64_t(g[0]) * g[1] * cfg_.width;
    for (int b0 = 0; b0 < B; b0 += chunk_) {
      const int n = std::min(chunk_, B - b0);
      forward_chunk(pixels + b0 * img, n, H, W, out + b0 * tok);
    }
  }

  /// forward() on host memory: on the CPU the same call, on a device through staging buffers
  /// (pixels copied in, tokens copied back; grown on demand).
  void forward_host(const T* pixels, int B, int H, int W, T* out) {
    if constexpr (Dev::is_host) {
      forward(pixels, B, H, W, out);
    } else {
      check_input(B, H, W);
      const auto g = grid(H, W);
      const std::int64_t nin = std::int64_t(B) * cfg_.channels * H * W;
      const std::int64_t nout = std::int64_t(B) * g[0] * g[1] * cfg_.width;
      if (!stage_in_.data() || nin > stage_in_.numel()) stage_in_ = Tensor<T, Dev>(Shape{nin});
      if (!stage_out_.data() || nout > stage_out_.numel()) stage_out_ = Tensor<T, Dev>(Shape{nout});
      Dev::copy_from_host(stage_in_.data(), pixels, std::size_t(nin) * sizeof(T));
      forward(stage_in_.data(), B, H, W, stage_out_.data());
      Dev::copy_to_host(out, stage_out_.data(), std::size_t(nout) * sizeof(T));
    }
  }

  int chunk_batch() const { return chunk_; }
  void set_chunk_batch(int b) {
    REDI_CHECK(b > 0, "Dinov2::set_chunk_batch: ", b);
    chunk_ = b;
  }

  /// The position rows added to the patch tokens for a gh x gw grid, [gh*gw, D], on the host
  /// (cached; a device keeps a copy too).
  const std::vector<T>& patch_positions(int gh, int gw) {
    if (pos_cache_grid_ == std::array<int, 2>{gh, gw}) return pos_cache_;
    const int G = cfg_.pos_grid, D = cfg_.width, R = cfg_.registers;
    // the table [1 + G*G, D] (row 0: cls), cls_token and register_tokens, read on the host
    const std::size_t nd = std::size_t(D);
    std::vector<T> head((std::size_t(G) * G + 1) * nd), cls(nd), reg(std::size_t(R) * nd);
    Dev::copy_to_host(head.data(), params_.data() + pos_, head.size() * sizeof(T));
    Dev::copy_to_host(cls.data(), params_.data() + cls_, cls.size() * sizeof(T));
    if (R > 0) Dev::copy_to_host(reg.data(), params_.data() + reg_, reg.size() * sizeof(T));
    const T* table = head.data() + D;  // [G*G, D], row 0 (cls) skipped
    std::vector<T> planes(std::size_t(D) * G * G), res(std::size_t(D) * gh * gw);
    for (int t = 0; t < G * G; ++t)
      for (int c = 0; c < D; ++c) planes[std::size_t(c) * G * G + std::size_t(t)] = table[std::size_t(t) * D + c];
    const double sh = cfg_.pos_offset > 0 ? double(G) / (double(gh) + cfg_.pos_offset) : 0.0;
    const double sw = cfg_.pos_offset > 0 ? double(G) / (double(gw) + cfg_.pos_offset) : 0.0;
    ops::resize_bicubic_aa(planes.data(), D, G, G, res.data(), gh, gw, sh, sw);
    pos_cache_.assign(std::size_t(gh) * gw * D, T(0));
    for (int t = 0; t < gh * gw; ++t)
      for (int c = 0; c < D; ++c) pos_cache_[std::size_t(t) * D + c] = res[std::size_t(c) * gh * gw + std::size_t(t)];
    // the rows before the patches: [cls + pos[0] ; register_tokens] (the same for every image)
    std::vector<T> prefix(std::size_t(1 + R) * D);
    for (int c = 0; c < D; ++c) prefix[std::size_t(c)] = cls[std::size_t(c)] + head[std::size_t(c)];
    std::copy(reg.begin(), reg.end(), prefix.begin() + D);
    pos_dev_ = Tensor<T, Dev>(Shape{std::int64_t(pos_cache_.size())});
    prefix_dev_ = Tensor<T, Dev>(Shape{std::int64_t(prefix.size())});
    Dev::copy_from_host(pos_dev_.data(), pos_cache_.data(), pos_cache_.size() * sizeof(T));
    Dev::copy_from_host(prefix_dev_.data(), prefix.data(), prefix.size() * sizeof(T));
    pos_cache_grid_ = {gh, gw};
    return pos_cache_;
  }

private:
  struct Offs {
    std::int64_t ln1_w, ln1_b, qkv_w, qkv_b, proj_w, proj_b, ls1, ln2_w, ln2_b, fc1_w, fc1_b, fc2_w, fc2_b, ls2;
  };
  struct Acts {
    T *tok, *emb, *h, *ln, *qkv, *probs, *ao, *f1;
  };

  void check_input(int B, int H, int W) const {
    REDI_CHECK(B > 0 && H > 0 && W > 0 && H % cfg_.patch == 0 && W % cfg_.patch == 0, "Dinov2::forward: input ",
               B, "x", cfg_.channels, "x", H, "x", W, " (H and W must be positive multiples of the patch ",
               cfg_.patch, ")");
  }

  /// Lays the arena out for B images of P patches (one allocation, only when either grows).
  void ensure(int B, int P) {
    if (B <= capacity_batch_ && P <= capacity_patches_) return;
    B = std::max(B, capacity_batch_);
    P = std::max(P, capacity_patches_);
    const int D = cfg_.width, L = 1 + cfg_.registers + P, p = cfg_.patch;
    const std::int64_t N = std::int64_t(B) * L, NP = std::int64_t(B) * P;
    ws_.carve([&](Workspace<Dev>& w) {
      auto t = [&](std::int64_t n) { return w.template take<T>(n); };
      Acts a;
      a.tok = t(NP * cfg_.channels * p * p);
      a.emb = t(NP * D);
      a.h = t(N * D);
      a.ln = t(N * D);
      a.qkv = t(N * 3 * D);
      a.probs = t(std::int64_t(B) * cfg_.heads * L * L);
      a.ao = t(N * D);
      a.f1 = t(N * cfg_.mlp_dim);
      a_ = a;
    });
    capacity_patches_ = P;
    capacity_batch_ = B;
  }

  void forward_chunk(const T* x, int B, int H, int W, T* out) {
    const int D = cfg_.width, p = cfg_.patch, C = cfg_.channels, R = cfg_.registers;
    const auto g = grid(H, W);
    const int P = g[0] * g[1], L = 1 + R + P, Dm = cfg_.mlp_dim, heads = cfg_.heads;
    const std::int64_t N = std::int64_t(B) * L, PD = std::int64_t(P) * D, LD = std::int64_t(L) * D;
    const T eps = T(cfg_.ln_eps);
    patch_positions(g[0], g[1]);
    ensure(B, P);
    const T* Pm = params_.data();
    // embeddings: e = Conv_p(x) as patchify + linear; e += pos_patch; h = [cls + pos[0]; registers; e]
    Ops::patchify_forward(ctx_, a_.tok, x, B, C, H, W, p);
    Ops::linear_forward(ctx_, a_.emb, a_.tok, Pm + pe_w_, Pm + pe_b_, B * P, C * p * p, D);
    Ops::add_broadcast(ctx_, a_.emb, pos_dev_.data(), B, PD);
    for (int b = 0; b < B; ++b) Ops::copy(ctx_, a_.h + b * LD, prefix_dev_.data(), std::int64_t(1 + R) * D);
    Ops::copy_strided(ctx_, a_.h + std::int64_t(1 + R) * D, LD, a_.emb, PD, B, PD);
    // blocks
    for (const Offs& o : blocks_) {
      Ops::layernorm_affine_forward(ctx_, a_.ln, a_.h, Pm + o.ln1_w, Pm + o.ln1_b, int(N), D, eps);
      Ops::linear_forward(ctx_, a_.qkv, a_.ln, Pm + o.qkv_w, Pm + o.qkv_b, int(N), D, 3 * D);
      Ops::attention_forward(ctx_, a_.ao, a_.probs, a_.qkv, B, L, heads, D / heads);
      Ops::linear_forward(ctx_, a_.ln, a_.ao, Pm + o.proj_w, Pm + o.proj_b, int(N), D, D);
      Ops::gated_residual_forward(ctx_, a_.h, a_.ln, Pm + o.ls1, 1, int(N), D, 0);
      Ops::layernorm_affine_forward(ctx_, a_.ln, a_.h, Pm + o.ln2_w, Pm + o.ln2_b, int(N), D, eps);
      Ops::linear_forward(ctx_, a_.f1, a_.ln, Pm + o.fc1_w, Pm + o.fc1_b, int(N), D, Dm);
      Ops::gelu_erf_forward(ctx_, a_.f1, a_.f1, N * Dm);
      Ops::linear_forward(ctx_, a_.ln, a_.f1, Pm + o.fc2_w, Pm + o.fc2_b, int(N), Dm, D);
      Ops::gated_residual_forward(ctx_, a_.h, a_.ln, Pm + o.ls2, 1, int(N), D, 0);
    }
    // final LayerNorm on the patch rows only (a per-token op)
    for (int b = 0; b < B; ++b)
      Ops::layernorm_affine_forward(ctx_, out + b * PD, a_.h + b * LD + std::int64_t(1 + R) * D, Pm + lnf_w_,
                                    Pm + lnf_b_, P, D, eps);
  }

  Dinov2Config cfg_;
  ParamLayout layout_;
  Dev ctx_;
  std::vector<Offs> blocks_;
  std::int64_t cls_ = 0, reg_ = 0, pos_ = 0, pe_w_ = 0, pe_b_ = 0, lnf_w_ = 0, lnf_b_ = 0;
  Tensor<T, Dev> params_;
  Workspace<Dev> ws_;
  Acts a_{};
  int capacity_patches_ = 0, capacity_batch_ = 0, chunk_ = Dev::is_host ? 16 : 64;
  std::vector<T> pos_cache_;
  std::array<int, 2> pos_cache_grid_{0, 0};
  Tensor<T, Dev> pos_dev_, prefix_dev_;    // pos_cache_ and [cls + pos[0]; registers] on Dev
  Tensor<T, Dev> stage_in_, stage_out_;    // forward_host's staging (non-host devices)
};

}  // namespace redi
