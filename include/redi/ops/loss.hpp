// redi/ops/loss.hpp — mean squared error.
#pragma once
#include <cstdint>

#include "redi/core/device.hpp"
#include "redi/core/dtype.hpp"

namespace redi::ops {

/// mean (pred - target)^2, accumulated in double.
template <CpuReal T>
inline double mse_forward(const Cpu&, const T* pred, const T* target, std::int64_t n) {
  if (n <= 0) return 0.0;
  double s = 0;
#pragma omp parallel for simd schedule(static) reduction(+ : s) if (n > 65536)
  for (std::int64_t i = 0; i < n; ++i) {
    const double d = double(pred[i]) - double(target[i]);
    s += d * d;
  }
  return s / double(n);
}

/// dpred = weight * 2 * (pred - target) / n (overwritten).
template <CpuReal T>
inline void mse_backward(const Cpu&, T* dpred, const T* pred, const T* target, std::int64_t n,
                         T weight) {
  if (n <= 0) return;
  const T k = T(2.0 * double(weight) / double(n));
#pragma omp parallel for simd schedule(static) if (n > 65536)
  for (std::int64_t i = 0; i < n; ++i) dpred[i] = k * (pred[i] - target[i]);
}

}  // namespace redi::ops
