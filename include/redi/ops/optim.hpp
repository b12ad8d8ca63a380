// redi/ops/optim.hpp — AdamW (PyTorch torch.optim.AdamW semantics) and the EMA update.
#pragma once
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "redi/core/parallel.hpp"
#include "redi/core/device.hpp"
#include "redi/core/dtype.hpp"

namespace redi::ops {

struct AdamWConfig {
  double lr = 1e-4, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;
};

/// One AdamW step (step is 1-based), exactly as PyTorch:
///   p *= 1 - lr*wd ; m = b1 m + (1-b1) g ; v = b2 v + (1-b2) g^2 ;
///   p -= (lr / (1 - b1^step)) * m / (sqrt(v) / sqrt(1 - b2^step) + eps).
/// compute_copy (may be null) receives the updated p in the same pass (the compute copy of a
/// mixed-precision model; on the CPU of the same type — the CUDA op writes bf16).
template <CpuReal T>
inline void adamw_step(const Cpu&, T* param, const T* grad, T* m, T* v, std::int64_t n,
                       const AdamWConfig& cfg, std::int64_t step, T* compute_copy = nullptr) {
  const double bc1 = 1.0 - std::pow(cfg.beta1, double(step));
  const double bc2 = 1.0 - std::pow(cfg.beta2, double(step));
  const T decay = T(1.0 - cfg.lr * cfg.weight_decay);
  const T b1 = T(cfg.beta1), b2 = T(cfg.beta2), omb1 = T(1.0 - cfg.beta1), omb2 = T(1.0 - cfg.beta2);
  const T step_size = T(cfg.lr / bc1);
  const T sqrt_bc2 = T(std::sqrt(bc2));
  const T eps = T(cfg.eps);
  auto run = [&](auto with_copy) {
#pragma omp parallel for simd schedule(static) if (n > kOmpMinWork / 2)
    for (std::int64_t i = 0; i < n; ++i) {
      const T g = grad[i];
      const T mi = b1 * m[i] + omb1 * g;
      const T vi = b2 * v[i] + omb2 * g * g;
      m[i] = mi;
      v[i] = vi;
      const T denom = std::sqrt(vi) / sqrt_bc2 + eps;
      const T p = param[i] * decay - step_size * mi / denom;
      param[i] = p;
      if constexpr (decltype(with_copy)::value) compute_copy[i] = p;
    }
  };
  if (compute_copy) run(std::true_type{});
  else run(std::false_type{});
}

/// ema = decay * ema + (1 - decay) * param.
template <CpuReal T>
inline void ema_update(const Cpu&, T* ema, const T* param, std::int64_t n, double decay) {
  const T d = T(decay), omd = T(1.0 - decay);
#pragma omp parallel for simd schedule(static) if (n > kOmpMinWork)
  for (std::int64_t i = 0; i < n; ++i) ema[i] = d * ema[i] + omd * param[i];
}

}  // namespace redi::ops
