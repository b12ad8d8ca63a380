// redi/ops/softmax.hpp — row softmax (max-subtracted) and its backward.
#pragma once
#include <cmath>
#include <cstdint>

#include "redi/core/parallel.hpp"
#include "redi/core/device.hpp"
#include "redi/core/dtype.hpp"
#include "redi/ops/vmath.hpp"

namespace redi::ops {

namespace detail {
/// One row: out = softmax(in) (out may alias in).
template <class T>
inline void softmax_row(T* out, const T* in, int cols) {
  T mx = in[0];
#pragma omp simd reduction(max : mx)
  for (int c = 1; c < cols; ++c) mx = in[c] > mx ? in[c] : mx;
  T s = 0;
  const auto ec = exp_clamp();
#pragma omp simd reduction(+ : s)
  for (int c = 0; c < cols; ++c) {
    const T e = vexp(in[c] - mx, ec);
    out[c] = e;
    s += e;
  }
  const T inv = T(1) / s;
#pragma omp simd
  for (int c = 0; c < cols; ++c) out[c] *= inv;
}

/// One row: din = out * (dout - sum(dout * out)) (din may alias dout).
template <class T>
inline void softmax_backward_row(T* din, const T* dout, const T* out, int cols) {
  T dot = 0;
#pragma omp simd reduction(+ : dot)
  for (int c = 0; c < cols; ++c) dot += dout[c] * out[c];
#pragma omp simd
  for (int c = 0; c < cols; ++c) din[c] = out[c] * (dout[c] - dot);
}
}  // namespace detail

template <CpuReal T>
inline void softmax_forward(const Cpu&, T* out, const T* in, int rows, int cols) {
  if (cols <= 0) return;
  [[maybe_unused]] const std::int64_t n = std::int64_t(rows) * cols;
#pragma omp parallel for schedule(static) if (n > kOmpMinWork / 2)
  for (int r = 0; r < rows; ++r)
    detail::softmax_row(out + std::int64_t(r) * cols, in + std::int64_t(r) * cols, cols);
}

template <CpuReal T>
inline void softmax_backward(const Cpu&, T* din, const T* dout, const T* out, int rows,
                             int cols) {
  [[maybe_unused]] const std::int64_t n = std::int64_t(rows) * cols;
#pragma omp parallel for schedule(static) if (n > kOmpMinWork / 2)
  for (int r = 0; r < rows; ++r) {
    const std::int64_t o = std::int64_t(r) * cols;
    detail::softmax_backward_row(din + o, dout + o, out + o, cols);
  }
}

}  // namespace redi::ops
