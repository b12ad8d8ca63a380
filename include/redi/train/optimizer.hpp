// redi/train/optimizer.hpp — the one optimiser step every redi trainer uses, over a flat
// parameter buffer and its gradient buffer (ParamLayout order):
//   1. global gradient-norm clipping:   g *= grad_clip / (|g| + clip_eps)   when |g| > grad_clip
//   2. AdamW (torch.optim.AdamW), with weight decay only on the parameter groups that take it
//      (optionally writing the model's compute copy of the weights in the same pass)
//   3. the EMA of the weights:          ema = ema_decay * ema + (1 - ema_decay) * w   (optional)
// The learning rate of each step is the caller's (a schedule: warmup_lr below, or a trainer's
// own, e.g. train::encoder_lr). The AdamW moments live here; checkpoints read and write them
// through m() / v(), and the step counter through steps() / set_steps().
//
//   redi::train::Optimizer<float> opt(net.num_params(), {.adamw = {.lr = 1e-4}, .grad_clip = 1.0});
//   opt.set_groups(redi::train::decay_matrices_only(layout.entries));   // optional
//   net.zero_grad(); ... backward ...;
//   auto r = opt.step(net.params().data(), net.grads().data(), redi::train::warmup_lr(1e-4, 1000, opt.steps() + 1));
//
// Used by redi::ReDi::finish_step (one group, EMA on) and train::train_encoder (matrices decayed,
// no EMA). Device-generic: the buffers live on Dev and the ops run there (CPU: OpenMP loops).
#pragma once
#include <cmath>
#include <cstdint>
#include <vector>

#include "redi/core/device.hpp"
#include "redi/core/error.hpp"
#include "redi/core/tensor.hpp"
#include "redi/nn/param_layout.hpp"
#include "redi/ops/backend.hpp"

namespace redi::train {

/// The optimiser's settings (defaults: the DiT/SiT/ReDi recipe, docs/method.md).
struct OptimizerConfig {
  ops::AdamWConfig adamw{};  ///< lr 1e-4, betas (0.9, 0.999), eps 1e-8, weight decay 0
  int warmup_steps = 0;      ///< linear learning-rate warm-up (warmup_lr); 0 = none
  double grad_clip = 0.0;    ///< max global L2 norm of the gradient; 0 = no clipping
  double clip_eps = 1e-6;    ///< scale = grad_clip / (norm + clip_eps), as torch's clip_grad_norm_
  double ema_decay = 0.9999; ///< used when step() is given an EMA buffer
};

/// The learning rate of 1-based step `step` under a linear warm-up to `peak` over `warmup`
/// steps, constant afterwards: peak * (step / warmup) while step < warmup.
inline double warmup_lr(double peak, int warmup, std::int64_t step) {
  if (warmup > 0 && step < warmup) return peak * (double(step) / double(warmup));
  return peak;
}

/// A contiguous range of the flat buffers and whether AdamW's weight decay applies to it.
struct ParamGroup {
  std::int64_t offset = 0, numel = 0;
  bool decay = true;
};

/// Groups that decay the matrices (rank >= 2: linear and convolution weights, tables) and not
/// the vectors (biases, norms, gates); consecutive entries with the same choice are merged.
inline std::vector<ParamGroup> decay_matrices_only(const std::vector<ParamEntry>& entries) {
  std::vector<ParamGroup> g;
  for (const auto& e : entries) {
    const bool decay = e.shape.rank >= 2;
    if (!g.empty() && g.back().decay == decay && g.back().offset + g.back().numel == e.offset)
      g.back().numel += e.numel();
    else
      g.push_back({e.offset, e.numel(), decay});
  }
  return g;
}

/// What one step did.
struct StepResult {
  double grad_norm = 0;  ///< global L2 norm of the gradient before clipping
  double lr = 0;         ///< the learning rate the step used
};

/// AdamW + clipping + EMA over n parameters of type M on Dev (moments of type Mo, gradients G).
template <class M, Device Dev = Cpu, class G = M, class Mo = M>
class Optimizer {
  using Ops = Backend<Dev>;  // the ops of Dev (redi/ops/backend.hpp)

public:
  Optimizer(std::int64_t n, const OptimizerConfig& cfg, const Dev& ctx = Dev{})
      : cfg_(cfg), ctx_(ctx), n_(n), m_(Shape{n}), v_(Shape{n}), groups_{{0, n, true}} {
    REDI_CHECK(n > 0, "Optimizer: ", n, " parameters");
  }

  const OptimizerConfig& config() const { return cfg_; }
  OptimizerConfig& config() { return cfg_; }
  std::int64_t size() const { return n_; }

  /// Weight-decay groups; they must cover [0, n) in order without gaps or overlaps.
  void set_groups(std::vector<ParamGroup> groups) {
    std::int64_t at = 0;
    for (const auto& g : groups) {
      REDI_CHECK(g.offset == at && g.numel > 0, "Optimizer::set_groups: group at ", g.offset, " (", g.numel,
                 " elements) does not continue at ", at);
      at += g.numel;
    }
    REDI_CHECK(at == n_, "Optimizer::set_groups: groups cover ", at, " of ", n_, " parameters");
    groups_ = std::move(groups);
  }
  const std::vector<ParamGroup>& groups() const { return groups_; }

  /// Steps taken (the 1-based index of the last one; 0 before the first).
  std::int64_t steps() const { return steps_; }
  void set_steps(std::int64_t s) { steps_ = s; }
  /// AdamW's first and second moments (same offsets as the parameters).
  Tensor<Mo, Dev>& m() { return m_; }
  Tensor<Mo, Dev>& v() { return v_; }
  const Tensor<Mo, Dev>& m() const { return m_; }
  const Tensor<Mo, Dev>& v() const { return v_; }

  /// One step at learning rate `lr`: clips `grads` in place, updates `params` (and `ema`, when
  /// given) and the moments, and counts the step. `compute_copy` (n elements of the model's
  /// compute type, e.g. bf16 under BF16Mixed; may be null) is rewritten from the updated params
  /// inside AdamW's pass, bit-identical to a separate conversion afterwards.
  template <class C = M>
  StepResult step(M* params, G* grads, double lr, M* ema = nullptr, C* compute_copy = nullptr) {
    StepResult r;
    r.grad_norm = std::sqrt(Ops::sum_squares(ctx_, grads, n_));
    if (cfg_.grad_clip > 0 && r.grad_norm > cfg_.grad_clip)
      Ops::scale_inplace(ctx_, grads, n_, cfg_.grad_clip / (r.grad_norm + cfg_.clip_eps));
    ++steps_;
    r.lr = lr;
    ops::AdamWConfig a = cfg_.adamw;
    a.lr = lr;
    for (const auto& g : groups_) {
      ops::AdamWConfig ag = a;
      if (!g.decay) ag.weight_decay = 0.0;
      Ops::adamw_step(ctx_, params + g.offset, grads + g.offset, m_.data() + g.offset, v_.data() + g.offset,
                      g.numel, ag, steps_, compute_copy ? compute_copy + g.offset : compute_copy);
    }
    if (ema) Ops::ema_update(ctx_, ema, params, n_, cfg_.ema_decay);
    return r;
  }

private:
  OptimizerConfig cfg_;
  Dev ctx_;
  std::int64_t n_;
  Tensor<Mo, Dev> m_, v_;
  std::vector<ParamGroup> groups_;
  std::int64_t steps_ = 0;
};

}  // namespace redi::train
