// redi/ops/activation.hpp — GELU (tanh approximation, as in DiT's MLP), SiLU and ReLU, forward
// and backward; the exact (erf) GELU forward (DINOv2's MLP). Elementwise, OpenMP-parallel for
// large n; float uses the vectorised exp of vmath.hpp.
#pragma once
#include <cmath>
#include <cstdint>
#include <type_traits>

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

/// Exact GELU (PyTorch's default nn.GELU(), approximate='none'): out = x Phi(x) =
/// 0.5 x erfc(-x / sqrt 2). Forward only (the frozen DINOv2 MLP). Float: erfc from the
/// Chebyshev-fitted form erfc(z) = t exp(-z^2 + P(t)), t = 1 / (1 + z/2) for z >= 0 (fractional
/// error < 1.2e-7, Numerical Recipes' erfcc; 2 - erfc(-z) for z < 0), evaluated with the
/// vectorised exp: relative error ~1e-6 against std::erf. Double: std::erfc. out may alias in.
template <CpuReal T>
inline void gelu_erf_forward(const Cpu&, T* out, const T* in, std::int64_t n) {
  if constexpr (std::is_same_v<T, double>) {
    detail::elementwise_simd(n, [&](std::int64_t i) { out[i] = 0.5 * in[i] * std::erfc(-in[i] * 0.70710678118654752440); });
  } else {
    const auto ec = detail::exp_clamp();
    detail::elementwise_simd(n, [&](std::int64_t i) {
      const float x = in[i];
      const float z = -x * 0.70710678118654752f;  // erfc argument
      const float az = z < 0.f ? -z : z;
      const float t = 1.0f / (1.0f + 0.5f * az);
      float p = 0.17087277f;
      p = p * t - 0.82215223f;
      p = p * t + 1.48851587f;
      p = p * t - 1.13520398f;
      p = p * t + 0.27886807f;
      p = p * t - 0.18628806f;
      p = p * t + 0.09678418f;
      p = p * t + 0.37409196f;
      p = p * t + 1.00002368f;
      p = p * t - 1.26551223f;
      const float e = t * detail::exp_f32(-az * az + p, ec);  // erfc(|z|)
      out[i] = 0.5f * x * (z >= 0.f ? e : 2.0f - e);
    });
  }
}

}  // namespace redi::ops
