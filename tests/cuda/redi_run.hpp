// tests/cuda/redi_run.hpp — one short ReDi run (a few training steps on a structured toy set,
// then a guided ODE sample), written once over the model type so the CPU instantiation
// (redi_reference.cpp, g++) and the CUDA ones (test_cuda_redi.cu, nvcc) run the same code.
#pragma once
#include <cstdint>
#include <vector>

#include "redi/core/philox.hpp"
#include "redi/nn/config.hpp"
#include "../toy_data.hpp"

namespace redi::test::ref {

struct RunSpec {
  int B = 8;              // training batch
  int steps = 3;          // training steps
  double lr = 1e-3;
  std::uint64_t seed = 5;
  int sample_B = 4;
  int ode_steps = 6;      // OdeEuler steps, Combine<CFG<VaeOnly>, RepGuidance>
  double cfg = 2.0, rg = 1.5;
};

struct RunResult {
  std::vector<double> losses;   // per training step
  std::vector<float> params;    // after training (master weights)
  std::vector<float> samples;   // [sample_B, Cin, H, W]
};

/// SiT tiny ReDi config used by the CUDA ReDi tests (hd = width / heads).
inline ModelConfig redi_tiny(int width = 64, int heads = 4) {
  ModelConfig c;
  c.input_size = 8; c.patch = 2; c.image_channels = 4; c.feature_channels = 8;
  c.depth = 2; c.width = width; c.heads = heads; c.mlp_ratio = 4; c.num_classes = 10;
  c.learn_sigma = false;
  return c;
}

using ToySet = redi::test::ToyData;

/// Options shared by every instantiation (same init seed: identical initial weights).
template <class Model>
typename Model::Options run_options(const ModelConfig& c, const RunSpec& s) {
  typename Model::Options o;
  o.model = c;
  o.train.adamw.lr = s.lr;
  o.train.ema_decay = 0.9;
  o.train.grad_clip = 1.0;
  o.train.seed = s.seed;
  o.init_seed = 3;
  o.loss.p_drop = 0.2;
  return o;
}

/// Train s.steps steps, then sample. Needs redi/redi_model.hpp and the model's device backend
/// (redi/ops/cpu_backend.hpp or redi/cuda/backend.cuh) in the including file.
template <class Model>
RunResult run_redi(Model& m, const ModelConfig& c, const RunSpec& s) {
  RunResult r;
  ToySet d(c, s.B, s.seed);
  for (int k = 0; k < s.steps; ++k) {
    auto st = m.train_step(d.x.data(), d.z.data(), d.y.data(), s.B, std::uint64_t(k) * s.B);
    r.losses.push_back(st.loss.loss);
  }
  r.params = m.net().params().to_host();
  std::vector<int> labels;
  for (int b = 0; b < s.sample_B; ++b) labels.push_back((3 * b) % c.num_classes);
  r.samples.resize(std::size_t(s.sample_B) * c.channels_in() * c.input_size * c.input_size);
  SampleRequest req;
  req.B = s.sample_B;
  req.labels = labels.data();
  req.seed = 9;
  typename OdeEuler::Options so;
  so.num_steps = s.ode_steps;
  GuidanceOptions go;
  go.cfg_scale = s.cfg;
  go.rg_scale = s.rg;
  m.template sample<OdeEuler, Combine<CFG<VaeOnly>, RepGuidance>>(r.samples.data(), req, so, go);
  return r;
}

/// The CPU run (float, g++-compiled in redi_reference.cpp).
RunResult run_cpu_redi(const ModelConfig& c, const RunSpec& s);

}  // namespace redi::test::ref
