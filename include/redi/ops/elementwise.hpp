// redi/ops/elementwise.hpp — small elementwise helpers.
#pragma once
#include <cstdint>

#include "redi/core/parallel.hpp"
#include "redi/core/device.hpp"
#include "redi/core/dtype.hpp"

namespace redi::ops {

/// x += y.
template <CpuReal T>
inline void add_inplace(const Cpu&, T* x, const T* y, std::int64_t n) {
#pragma omp parallel for simd schedule(static) if (n > kOmpMinWork)
  for (std::int64_t i = 0; i < n; ++i) x[i] += y[i];
}

/// x[o*inner + i] += row[i].
template <CpuReal T>
inline void add_broadcast(const Cpu&, T* x, const T* row, std::int64_t outer, std::int64_t inner) {
#pragma omp parallel for schedule(static) if (outer * inner > kOmpMinWork)
  for (std::int64_t o = 0; o < outer; ++o) {
    T* xo = x + o * inner;
#pragma omp simd
    for (std::int64_t i = 0; i < inner; ++i) xo[i] += row[i];
  }
}

/// x *= s.
template <CpuReal T>
inline void scale_inplace(const Cpu&, T* x, std::int64_t n, T s) {
#pragma omp parallel for simd schedule(static) if (n > kOmpMinWork)
  for (std::int64_t i = 0; i < n; ++i) x[i] *= s;
}

/// sum x^2, accumulated in double.
template <CpuReal T>
inline double sum_squares(const Cpu&, const T* x, std::int64_t n) {
  double s = 0;
#pragma omp parallel for simd schedule(static) reduction(+ : s) if (n > kOmpMinWork)
  for (std::int64_t i = 0; i < n; ++i) s += double(x[i]) * double(x[i]);
  return s;
}

}  // namespace redi::ops
