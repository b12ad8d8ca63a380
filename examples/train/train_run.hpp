// examples/train/train_run.hpp — redi_train's training + sampling for one compile-time model
// type; included by run_sit.cpp and run_dit.cpp (two fusions each: 4 model instantiations).
#pragma once
#include <algorithm>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "cli_options.hpp"
#include "redi/io/safetensors.hpp"
#include "redi/train/distributed_sampling.hpp"
#include "redi/train/samples.hpp"

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
int run_training(const CliOptions& c, const redi::data::TrainSet& data,
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
  tc.recompute = c.recompute;
  tc.comm = c.comm;  // data-parallel ranks: each trains on batch / W, rank 0 writes the files
  redi::train::Trainer<Model> trainer(model, data, tc, &std::cout);
  const auto sample = make_sample_fn<Model>(c);
  trainer.set_sample_fn(sample);
  if (!c.resume.empty()) {
    const fs::path p = c.resume == "auto" ? trainer.checkpoint_path() : fs::path(c.resume);
    if (c.resume != "auto" || fs::exists(p)) trainer.resume(p);
  }
  trainer.run();
  if (c.num_samples > 0) {
    std::vector<int> labels(static_cast<std::size_t>(c.num_samples));
    for (int i = 0; i < c.num_samples; ++i) labels[std::size_t(i)] = i % data.num_classes;
    // split over the ranks by global index, merged on rank 0 (the same bits as one process)
    redi::dist::Communicator& comm = c.comm ? *c.comm : redi::dist::single();
    const redi::train::SampleImages s = redi::train::sample_images_distributed(
        comm, c.model, std::move(labels), c.train.seed + 1,
        [&](float* out, const redi::SampleRequest& req) { sample(model, out, req); }, 100, &std::cout, "[redi_train]");
    if (comm.rank() != 0) return 0;
    if (s.c != 1 && s.c != 3) {  // VAE latents: no picture here; decode them with the VAE
      std::vector<std::int32_t> lab(s.labels.begin(), s.labels.end());
      redi::io::SafeTensorsWriter w;
      w.add("latents", redi::Shape{s.n, s.c, s.h, s.w}, s.x.data());
      w.add("labels", redi::Shape{s.n}, lab.data());
      w.write(fs::path(c.out) / "samples_latents.safetensors", {{"format", "pt"}});
      std::cout << "[redi_train] wrote " << (fs::path(c.out) / "samples_latents.safetensors").string() << "\n";
      return 0;
    }
    redi::train::write_samples(c.out, s, 100, 10);
    std::cout << "[redi_train] wrote " << (fs::path(c.out) / "samples.npz").string() << " (" << s.n
              << " samples, ADM format) and samples.png\n";
  }
  return 0;
}

}  // namespace redi_examples
