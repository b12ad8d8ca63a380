// redi/ops/activation.hpp — GELU (tanh approximation, as in DiT's MLP), SiLU and ReLU, forward
// and backward. Elementwise, OpenMP-parallel for large n; float uses the vectorised exp of vmath.hpp.
#pragma once
#include <cmath>
#include <cstdint>

#include "redi/core/parallel.hpp"
#include "redi/core/device.hpp"
#include "redi/core/dtype.hpp"
#include "redi/ops/vmath.hpp"

namespace redi::ops {

namespace detail {
inline constexpr double kSqrt2OverPi = 0.79788456080286535587989211986876;  // sqrt(2/pi)
inline constexpr double kGeluCubic = 0.044715;
inline constexpr std::int64_t kChunk = 4096;  // elements per parallel chunk (inner loop is simd)

/// f(i) for every i in [0, n): chunks of kChunk spread over OpenMP threads when
/// n > kOmpMinWork / 2, each chunk a simd loop (f must be inlinable and free of cross-iteration
/// dependences).
template <class F>
inline void elementwise_simd(std::int64_t n, F&& f) {
#pragma omp parallel for schedule(static) if (n > kOmpMinWork / 2)
  for (std::int64_t i0 = 0; i0 < n; i0 += kChunk) {
    const std::int64_t i1 = i0 + kChunk < n ? i0 + kChunk : n;
#pragma omp simd
    for (std::int64_t i = i0; i < i1; ++i) f(i);
  }
}
}  // namespace detail

/// out = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
template <CpuReal T>
inline void gelu_forward(const Cpu&, T* out, const T* in, std::int64_t n) {
  const T k = T(detail::kSqrt2OverPi), a = T(detail::kGeluCubic);
  const auto ec = detail::exp_clamp();
  detail::elementwise_simd(n, [&](std::int64_t i) {
    const T x = in[i];
    const T t = detail::vtanh(k * (x + a * x * x * x), ec);
    out[i] = T(0.5) * x * (T(1) + t);
  });
}

/// din = dout * d/dx gelu(x) = dout * (0.5 (1 + t) + 0.5 x (1 - t^2) k (1 + 3a x^2)).
template <CpuReal T>
inline void gelu_backward(const Cpu&, T* din, const T* dout, const T* in, std::int64_t n) {
  const T k = T(detail::kSqrt2OverPi), a = T(detail::kGeluCubic);
  const auto ec = detail::exp_clamp();
  detail::elementwise_simd(n, [&](std::int64_t i) {
    const T x = in[i];
    const T t = detail::vtanh(k * (x + a * x * x * x), ec);
    const T d = T(0.5) * (T(1) + t) + T(0.5) * x * (T(1) - t * t) * k * (T(1) + T(3) * a * x * x);
    din[i] = dout[i] * d;
  });
}

/// out = x * sigmoid(x).
template <CpuReal T>
inline void silu_forward(const Cpu&, T* out, const T* in, std::int64_t n) {
  const auto ec = detail::exp_clamp();
  detail::elementwise_simd(n, [&](std::int64_t i) {
    const T x = in[i];
    out[i] = x / (T(1) + detail::vexp(-x, ec));
  });
}

/// din = dout * s (1 + x (1 - s)), s = sigmoid(x).
template <CpuReal T>
inline void silu_backward(const Cpu&, T* din, const T* dout, const T* in, std::int64_t n) {
  const auto ec = detail::exp_clamp();
  detail::elementwise_simd(n, [&](std::int64_t i) {
    const T x = in[i];
    const T s = T(1) / (T(1) + detail::vexp(-x, ec));
    din[i] = dout[i] * (s * (T(1) + x * (T(1) - s)));
  });
}

/// out = max(x, 0) (out may alias in).
template <CpuReal T>
inline void relu_forward(const Cpu&, T* out, const T* in, std::int64_t n) {
  detail::elementwise_simd(n, [&](std::int64_t i) { out[i] = in[i] > T(0) ? in[i] : T(0); });
}

/// din = dout where x > 0, else 0. `x` may be the forward's input or its output (both are > 0
/// at the same places), so an in-place forward keeps what the backward needs; din may alias dout.
template <CpuReal T>
inline void relu_backward(const Cpu&, T* din, const T* dout, const T* x, std::int64_t n) {
  detail::elementwise_simd(n, [&](std::int64_t i) { din[i] = x[i] > T(0) ? dout[i] : T(0); });
}

}  // namespace redi::ops
