// tests/bf16_drift.hpp — the bf16 drift measurement, written once over the model type so the
// CPU emulation (test_bf16_emulation.cpp: ReDi<..., BF16Emulated, Bf16Emulator<>>) and the GPU
// (tests/cuda/test_cuda_drift.cu: ReDi<..., BF16Mixed, Cuda>) run the same code against fp32.
//
// The model: SiT ReDi, depth 28 (SiT-XL's depth, so dh receives 56 additions and the
// conditioning gradient 28 + 1), small width. Weights: DiT's initialisation plus N(0, 0.02) on
// every tensor, so the adaLN gates are not zero (at DiT's init every block is the identity and
// a bf16 residual stream would lose nothing). Run: `steps` optimiser steps (AdamW, lr 1e-3,
// clip 1) on the toy set; before each, an fp32 model at the same weights computes the same
// batch's gradient. Measures against fp32 (relative L2 errors):
//   grad_blocks, grad_cond, grad_other : the gradient at the run's own weights, per tensor group,
//                averaged over the steps: the 28 blocks; the t/y embedders (fed by the
//                conditioning gradient summed over the blocks); the patch embedders and the
//                final layer (the embedders are fed by dh after all 56 additions)
//   weight_drift : ||w_P - w_fp32|| / ||w_fp32 - w_0|| after the steps, against the free-running
//                fp32 run (relative to the update; AdamW's normalised steps make it noisy:
//                reported, loosely bounded)
//   loss_err     : max over the steps of |loss_P - loss_fp32| / loss_fp32
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "redi/core/philox.hpp"
#include "redi/nn/config.hpp"
#include "redi/nn/param_layout.hpp"
#include "toy_data.hpp"

namespace redi::test::drift {

struct Spec {
  int depth = 28, width = 32, heads = 2;
  int B = 8, steps = 20;
  double lr = 1e-3;
  double perturb = 0.02;
  std::uint64_t seed = 11;
};

inline ModelConfig config(const Spec& s) {
  ModelConfig c;
  c.input_size = 8; c.patch = 2; c.image_channels = 4; c.feature_channels = 8;
  c.depth = s.depth; c.width = s.width; c.heads = s.heads; c.mlp_ratio = 4; c.num_classes = 10;
  c.learn_sigma = false;
  return c;
}

template <class M>
typename M::Options options(const Spec& s) {
  typename M::Options o;
  o.model = config(s);
  o.init_seed = 3;
  o.train.adamw.lr = s.lr;
  o.train.warmup_steps = 0;
  o.train.grad_clip = 1.0;
  o.train.ema_decay = 0.9;
  o.train.seed = s.seed;
  o.loss.p_drop = 0.2;
  return o;
}

/// DiT's initialisation (seed 3) plus N(0, perturb) everywhere: the run's starting weights.
inline std::vector<float> start_weights(const Spec& s) {
  const ModelConfig c = config(s);
  const auto layout = TransformerLayout::make<Merged>(c);
  std::vector<float> w(static_cast<std::size_t>(layout.total));
  layout.initialize(w.data(), 3);
  std::vector<float> n(w.size());
  philox::fill_normal(n.data(), n.size(), s.seed, 77);
  for (std::size_t i = 0; i < w.size(); ++i) w[i] += float(s.perturb) * n[i];
  return w;
}

/// ||a - b|| / ||b|| over the entries whose name `keep` accepts.
template <class Keep>
double rel_err(const ParamLayout& layout, const std::vector<float>& a, const std::vector<float>& b, Keep keep) {
  double num = 0, den = 0;
  for (const auto& e : layout.entries) {
    if (!keep(e.name)) continue;
    for (std::int64_t i = e.offset; i < e.offset + e.numel(); ++i) {
      const double d = double(a[std::size_t(i)]) - double(b[std::size_t(i)]);
      num += d * d;
      den += double(b[std::size_t(i)]) * double(b[std::size_t(i)]);
    }
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

inline bool is_cond(const std::string& n) { return n.rfind("t_embedder", 0) == 0 || n.rfind("y_embedder", 0) == 0; }
inline bool is_block(const std::string& n) { return n.rfind("blocks.", 0) == 0; }
inline bool is_other(const std::string& n) { return !is_block(n) && !is_cond(n); }

struct Run {
  std::vector<double> losses;  // per step
  std::vector<float> w0, w;    // weights before / after the steps
  // Gradient errors against fp32 at the run's own weights, averaged over the steps, per group
  // (zero for the fp32 run itself).
  double grad_blocks = 0, grad_cond = 0, grad_other = 0;
};

/// `steps` optimiser steps of m (built from options<M>(s)) from start_weights(s). With a
/// reference model ref (fp32, options<Ref>(s)), before each step ref gets m's weights and step
/// counter and computes the same batch's gradient (same noise and dropout draws): the gradient
/// errors along m's trajectory. Needs the models' backends in the including file.
template <class M, class Ref = M>
Run run(M& m, const Spec& s, Ref* ref = nullptr) {
  const ModelConfig c = config(s);
  const auto layout = TransformerLayout::make<Merged>(c);
  Run r;
  r.w0 = start_weights(s);
  m.net().params().from_host(r.w0);
  m.ema().params().from_host(r.w0);
  ToyData d(c, s.B, s.seed);
  for (int k = 0; k < s.steps; ++k) {
    const auto b = m.batch(d.x.data(), d.z.data(), d.y.data(), s.B, std::uint64_t(k) * s.B);
    typename M::StepStats st;
    st.loss = m.backprop(b);
    r.losses.push_back(st.loss.loss);
    if (ref) {
      const auto g = m.net().grads().to_host();
      ref->net().params().from_host(std::as_const(m.net()).params().to_host());
      ref->set_step(m.step());
      ref->backprop(ref->batch(d.x.data(), d.z.data(), d.y.data(), s.B, std::uint64_t(k) * s.B));
      const auto gr = ref->net().grads().to_host();
      r.grad_blocks += rel_err(layout, g, gr, is_block) / s.steps;
      r.grad_cond += rel_err(layout, g, gr, is_cond) / s.steps;
      r.grad_other += rel_err(layout, g, gr, is_other) / s.steps;
    }
    m.finish_step(st);
  }
  r.w = std::as_const(m.net()).params().to_host();
  return r;
}

struct Report {
  double grad_blocks = 0, grad_cond = 0, grad_other = 0, weight_drift = 0, loss_err = 0;
};

/// Run p (with its gradient errors) against the free-running fp32 run ref.
inline Report compare(const Run& p, const Run& ref) {
  Report r{p.grad_blocks, p.grad_cond, p.grad_other, 0, 0};
  double num = 0, den = 0;
  for (std::size_t i = 0; i < ref.w.size(); ++i) {
    const double d = double(p.w[i]) - double(ref.w[i]), u = double(ref.w[i]) - double(ref.w0[i]);
    num += d * d;
    den += u * u;
  }
  r.weight_drift = std::sqrt(num / den);
  for (std::size_t k = 0; k < ref.losses.size(); ++k)
    r.loss_err = std::max(r.loss_err, std::abs(p.losses[k] - ref.losses[k]) / ref.losses[k]);
  return r;
}

}  // namespace redi::test::drift
