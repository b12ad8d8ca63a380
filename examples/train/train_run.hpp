// examples/train/train_run.hpp — redi_train's training + sampling for one compile-time model
// type; included by run_sit.cpp and run_dit.cpp (two fusions each: 4 model instantiations).
#pragma once
#include <algorithm>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "cli_options.hpp"
#include "redi/io/image_write.hpp"
#include "redi/io/npz.hpp"

namespace redi_examples {

template <class Model, class S>
typename redi::train::Trainer<Model>::SampleFn with_guidance(const CliOptions& c, typename S::Options so) {
  const redi::GuidanceOptions go{.cfg_scale = c.cfg_scale, .rg_scale = c.rg_scale};
  auto fn = [so, go]<class G>() {
    return [so, go](Model& m, float* out, const redi::SampleRequest& req) { m.template sample<S, G>(out, req, so, go); };
  };
  if (c.guidance == "none") return fn.template operator()<redi::NoGuidance>();
  if (c.guidance == "cfg") return fn.template operator()<redi::CFG<redi::VaeOnly>>();
  if (c.guidance == "cfg-joint") return fn.template operator()<redi::CFG<redi::Joint>>();
  if (c.guidance == "rg") return fn.template operator()<redi::RepGuidance>();
  return fn.template operator()<redi::Combine<redi::CFG<redi::VaeOnly>, redi::RepGuidance>>();
}

template <class Model>
typename redi::train::Trainer<Model>::SampleFn make_sample_fn(const CliOptions& c) {
  if constexpr (Model::objective::is_flow) {
    if (c.sampler == "sde") return with_guidance<Model, redi::SdeEulerMaruyama>(c, {.num_steps = c.sample_steps});
    if (c.sampler == "euler") return with_guidance<Model, redi::OdeEuler>(c, {.num_steps = c.sample_steps});
    return with_guidance<Model, redi::OdeHeun>(c, {.num_steps = c.sample_steps});
  } else {
    if (c.sampler == "ddim")
      return with_guidance<Model, redi::DDIM>(c, {.respacing = "ddim" + std::to_string(c.sample_steps)});
    return with_guidance<Model, redi::Ancestral>(c, {.respacing = std::to_string(c.sample_steps)});
  }
}

/// Trains (and samples) one compile-time model type; `ctx` is its device (redi::Cpu{} or a
/// redi::Cuda context for ReDi<..., Cuda> instantiations compiled by nvcc).
template <class Model>
int run_training(const CliOptions& c, const redi::train::TrainSet& data,
                 const typename Model::device_type& ctx = {}) {
  namespace fs = std::filesystem;
  typename Model::Options o;
  o.model = c.model;
  o.loss.lambda_z = c.lambda_z;
  o.loss.p_drop = c.p_drop;
  o.loss.rep_drop = c.per_sample_drop ? redi::RepDrop::PerSample : redi::RepDrop::PerBatch;
  o.loss.label_drop_prob = c.label_drop;
  o.train = c.train;
  o.init_seed = c.train.seed;
  Model model(o, ctx);
  std::cout << "[redi_train] " << redi::train::model_type_name<Model>() << " on " << Model::device_type::name << " "
            << redi::train::to_json(c.model).str() << ", " << model.net().num_params() << " parameters\n";
  redi::train::TrainerConfig tc;
  tc.steps = c.steps; tc.batch = c.batch; tc.data_seed = c.train.seed; tc.hflip = c.hflip;
  tc.log_every = c.log_every; tc.sample_every = c.sample_every; tc.ckpt_every = c.ckpt_every;
  tc.out_dir = c.out; tc.max_seconds = c.max_minutes * 60.0;
  tc.grid_samples = c.grid; tc.grid_cols = std::max(1, std::min(c.grid, 8));
  redi::train::Trainer<Model> trainer(model, data, tc, &std::cout);
  const auto sample = make_sample_fn<Model>(c);
  trainer.set_sample_fn(sample);
  if (!c.resume.empty()) {
    const fs::path p = c.resume == "auto" ? trainer.checkpoint_path() : fs::path(c.resume);
    if (c.resume != "auto" || fs::exists(p)) trainer.resume(p);
  }
  trainer.run();
  if (c.num_samples > 0) {
    const int N = c.num_samples, Cin = c.model.channels_in(), H = c.model.input_size, Cx = c.model.image_channels;
    std::vector<int> labels(static_cast<std::size_t>(N));
    for (int i = 0; i < N; ++i) labels[std::size_t(i)] = i % data.num_classes;
    std::vector<float> x(std::size_t(N) * Cx * H * H), buf;
    const int B = 100;
    for (int s = 0; s < N; s += B) {
      redi::SampleRequest req;
      req.B = std::min(B, N - s);
      req.labels = labels.data() + s;
      req.seed = c.train.seed + 1;
      req.first_index = std::uint64_t(s);
      buf.resize(std::size_t(req.B) * Cin * H * H);
      sample(model, buf.data(), req);
      for (int b = 0; b < req.B; ++b)
        std::copy_n(buf.data() + std::size_t(b) * Cin * H * H, std::size_t(Cx) * H * H,
                    x.data() + std::size_t(s + b) * Cx * H * H);
      std::cout << "[redi_train] sampled " << s + req.B << "/" << N << std::endl;
    }
    if (Cx != 1 && Cx != 3) {  // VAE latents: no picture here; decode them with the VAE
      std::vector<std::int32_t> lab(labels.begin(), labels.end());
      redi::io::SafeTensorsWriter w;
      w.add("latents", redi::Shape{N, Cx, H, H}, x.data());
      w.add("labels", redi::Shape{N}, lab.data());
      w.write(fs::path(c.out) / "samples_latents.safetensors", {{"format", "pt"}});
      std::cout << "[redi_train] wrote " << (fs::path(c.out) / "samples_latents.safetensors").string() << "\n";
      return 0;
    }
    const auto u8 = redi::io::to_uint8_nhwc(x.data(), N, Cx, H, H);
    redi::io::save_sample_npz(fs::path(c.out) / "samples.npz", u8.data(), N, H, H, Cx, labels.data());
    const int shown = std::min(N, 100);
    redi::io::write_png(fs::path(c.out) / "samples.png", redi::io::make_grid(u8.data(), shown, H, H, Cx, 10));
    std::cout << "[redi_train] wrote " << (fs::path(c.out) / "samples.npz").string() << " (" << N
              << " samples, ADM format) and samples.png\n";
  }
  return 0;
}

}  // namespace redi_examples
