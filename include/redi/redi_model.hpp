// redi/redi_model.hpp — the user-facing type redi::ReDi<Backbone, Fusion, Objective, P, Dev>:
// the transformer, its joint loss, AdamW with EMA weights, and the samplers, chosen at compile
// time. e.g.  redi::ReDi<redi::SiT, redi::Merged, redi::FlowMatching> model(cfg);
//             auto stats = model.train_step(x0, z0, labels, B, step);
//             model.sample<redi::SdeEulerMaruyama, redi::CFG<redi::VaeOnly>>(out, req, {}, {4.0});
// P is the precision: float or double on the CPU; float (= redi::FP32) or redi::BF16Mixed on
// redi::Cuda. The device's ops come from its backend (redi/ops/backend.hpp): include
// redi/ops/cpu_backend.hpp (or redi/redi.hpp) for the CPU, redi/cuda/backend.cuh (nvcc) for
// CUDA, e.g.
//   auto ctx = redi::Cuda::create();
//   redi::ReDi<redi::SiT, redi::Merged, redi::FlowMatching, redi::BF16Mixed, redi::Cuda> m(opt, ctx);
// The API is the same on every device: train_step and sample take HOST pointers of
// value_type (the master type: float); on a device the network runs there, the joint loss's
// per-element half too where the device's backend has it (redi::DeviceLoss, device_loss.hpp:
// noise, noisy input, target, dout and the squared-error sums on the device), and every sampler
// (Ancestral, DDIM, SdeEulerMaruyama, OdeEuler, OdeHeun; any guidance; learned sigma; known_z)
// too (redi::DeviceSampler, device_sampler.hpp); the loss for learned sigma runs its math on the
// host through redi::DeviceBridge (nn/device_bridge.hpp).
#pragma once
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "redi/diffusion/diffusion.hpp"
#include "redi/core/precision.hpp"
#include "redi/device_loss.hpp"
#include "redi/device_sampler.hpp"
#include "redi/nn/backbone.hpp"
#include "redi/nn/device_bridge.hpp"
#include "redi/nn/fusion.hpp"
#include "redi/nn/transformer.hpp"
#include "redi/ops/backend.hpp"
#include "redi/train/optimizer.hpp"

namespace redi {

/// How ReDi::train_step updates the model: the shared optimiser step (train::OptimizerConfig:
/// AdamW lr 1e-4 without weight decay, warm-up, clipping, EMA 0.9999 — the paper's recipe,
/// docs/method.md) and the seed of the run's noise and dropout draws.
struct StepConfig : train::OptimizerConfig {
  std::uint64_t seed = 0;
};

template <Backbone BB, Fusion F, Objective Obj, class Prec = float, Device Dev = Cpu>
class ReDi {
  static_assert(!(std::is_same_v<BB, SiT> && std::is_same_v<Obj, DDPM>),
                "redi::ReDi<SiT, ..., DDPM>: SiT is the flow-matching backbone (t in [0,1]). Use "
                "redi::ReDi<redi::SiT, F, redi::FlowMatching>, or redi::ReDi<redi::DiT, F, redi::DDPM> "
                "for integer DDPM timesteps.");
  static_assert(!(std::is_same_v<BB, DiT> && std::is_same_v<Obj, FlowMatching>),
                "redi::ReDi<DiT, ..., FlowMatching>: DiT feeds integer DDPM timesteps. Use "
                "redi::ReDi<redi::DiT, F, redi::DDPM>, or redi::SiT for flow matching.");
  using precision = precision_t<Prec>;
  static_assert(!(Dev::is_host && precision::has_compute_copy),
                "redi::ReDi<..., BF16Mixed, Cpu>: bf16 mixed precision is a GPU policy. On the CPU "
                "use float or double; for BF16Mixed pass redi::Cuda as the device.");
  using T = typename precision::master_t;  // the host-side type (loss, samplers, I/O)

public:
  using backbone = BB;
  using fusion = F;
  using objective = Obj;
  using value_type = T;
  using device_type = Dev;
  using network_type = Transformer<Prec, F, Dev>;
  using loss_type = JointLoss<Obj, T>;
  using optimizer_type = train::Optimizer<typename precision::master_t, Dev, typename precision::grad_t,
                                          typename precision::moment_t>;

  struct Options {
    ModelConfig model{};
    typename loss_type::Options loss{};
    StepConfig train{};
    std::uint64_t init_seed = 0;
  };

  explicit ReDi(const Options& o, const Dev& ctx = Dev{})
      : opt_(checked(o)), net_(o.model, ctx, o.init_seed),
        ema_(o.model, ctx, typename network_type::Uninitialized{}),
        opt_state_(net_.num_params(), o.train, ctx), loss_(o.loss), ctx_(ctx) {
    Backend<Dev>::copy(ctx_, ema_.params().data(), net_.params().data(), net_.num_params());
  }

  network_type& net() { return net_; }
  network_type& ema() { return ema_; }
  const network_type& net() const { return net_; }
  const network_type& ema() const { return ema_; }
  loss_type& loss() { return loss_; }
  const Options& options() const { return opt_; }
  /// Optimiser steps taken so far.
  std::int64_t step() const { return opt_state_.steps(); }
  Tensor<typename precision::moment_t, Dev>& adam_m() { return opt_state_.m(); }
  Tensor<typename precision::moment_t, Dev>& adam_v() { return opt_state_.v(); }
  optimizer_type& optimizer() { return opt_state_; }
  const Dev& context() const { return ctx_; }
  void set_step(std::int64_t s) { opt_state_.set_steps(s); }

  struct StepStats {
    typename loss_type::Stats loss;
    double grad_norm = 0;  // before clipping
    double lr = 0;
  };

  /// One optimisation step: zero grads, joint loss forward/backward, clip, AdamW, EMA.
  /// x0 [B, Cx, H, W], z0 [B, r, H, W] (ignored when r = 0), labels [B] (nullptr: unconditional).
  StepStats train_step(const T* x0, const T* z0, const int* labels, int B,
                       std::uint64_t first_index = 0) {
    StepStats st;
    st.loss = backprop(batch(x0, z0, labels, B, first_index));
    return finish_step(st);
  }

  /// The loss batch of the next step: the run's noise seed and the current step counter.
  typename loss_type::Batch batch(const T* x0, const T* z0, const int* labels, int B,
                                  std::uint64_t first_index = 0) const {
    typename loss_type::Batch b;
    b.x0 = x0;
    b.z0 = z0;
    b.labels = labels;
    b.B = B;
    b.seed = opt_.train.seed;
    b.step = std::uint64_t(step());
    b.first_index = first_index;
    return b;
  }

  /// The gradient half of a step: zero the gradients, then the joint loss forward and backward
  /// on batch b (host pointers; on a device through the DeviceBridge). No optimiser update.
  typename loss_type::Stats backprop(const typename loss_type::Batch& b) {
    net_.zero_grad();
    if constexpr (Dev::is_host) {
      return loss_(net_, b, /*backward=*/true);
    } else {
      if constexpr (DeviceLossBackend<Dev, T>)
        if (device_loss_.serves(net_, b)) return device_loss_(net_, loss_, b, /*backward=*/true);
      return loss_(bridge_.bind(net_), b, /*backward=*/true);
    }
  }

  /// The optimiser half of a step, for callers that computed gradients themselves: clipping,
  /// AdamW at the warm-up schedule's learning rate, EMA (train::Optimizer).
  StepStats finish_step(StepStats st) {
    const double lr = train::warmup_lr(opt_.train.adamw.lr, opt_.train.warmup_steps, step() + 1);
    auto* master = net_.params().data();  // marks the compute copy stale ...
    const train::StepResult r =
        opt_state_.step(master, net_.grads().data(), lr, ema_.params().data(), net_.compute_copy_target());
    if (net_.compute_copy_target()) net_.compute_copy_written();  // ... which AdamW just rewrote
    st.grad_norm = r.grad_norm;
    st.lr = r.lr;
    return st;
  }

  /// Draw samples into out [B, Cin, H, W] (image channels then features) with the EMA weights
  /// (or the raw weights when use_ema is false).
  template <class S, class G = NoGuidance>
  void sample(T* out, const SampleRequest& req, const typename S::Options& so = {},
              const GuidanceOptions& go = {}, bool use_ema = true) {
    check_sampling_policies<Obj, S, G>();
    Sampler<S, G, T> sampler(so, go);  // validates the options
    network_type& n = use_ema ? ema_ : net_;
    if constexpr (Dev::is_host) {
      sampler.run(n, out, req);
    } else {
      if constexpr (DeviceSamplerBackend<Dev, T> && DeviceSampler<network_type, S, G>::kSampler) {
        if (DeviceSampler<network_type, S, G>::serves(n, req)) {
          DeviceSampler<network_type, S, G> ds;
          ds.run(n, out, req, so, go);
          ++device_samples_;
          return;
        }
      }
      sampler.run(bridge_.bind(n), out, req);
    }
  }

private:
  static Options checked(Options o) {
    o.model.validate();
    REDI_CHECK(!o.model.learn_sigma || BB::supports_learn_sigma,
               BB::name, " does not learn sigma: set ModelConfig::learn_sigma = false");
    REDI_CHECK(!(std::is_same_v<F, Separate> && o.model.feature_channels == 0),
               "redi::ReDi<..., Separate, ...> needs feature_channels > 0 (r = 0 is the plain model: use Merged)");
    return o;
  }

  Options opt_;
  network_type net_, ema_;
  optimizer_type opt_state_;  // AdamW moments and the step counter
  loss_type loss_;
  Dev ctx_;
  DeviceBridge<network_type> bridge_;  // host <-> device staging (devices only)
  DeviceLoss<network_type, Obj> device_loss_;  // the loss on the device (devices with its ops)

public:
  /// Loss evaluations that ran on the device (DeviceLoss); the rest used the host JointLoss.
  std::int64_t device_loss_evaluations() const { return device_loss_.evaluations(); }
  /// sample() calls that ran on the device (DeviceSampler); the rest used the host Sampler.
  std::int64_t device_sampling_runs() const { return device_samples_; }

private:
  std::int64_t device_samples_ = 0;
};

}  // namespace redi
