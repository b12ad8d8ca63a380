// redi/ops/vmath.hpp — vectorisable transcendental helpers for the row / elementwise ops.
// glibc's expf/tanhf are not vectorised without -ffast-math, and in a DiT training step the
// softmax exps and GELU tanhs would cost as much as the GEMMs. For float these use a Cephes-style
// exp (range reduction + degree-6 polynomial, ~1-2 ulp) written in plain arithmetic so that
// `#pragma omp simd` loops vectorise; double keeps std:: functions (reference precision).
#pragma once
#include <bit>
#include <cmath>
#include <cstdint>
#include <type_traits>

namespace redi::ops::detail {

/// Clamp bounds for exp_f32. They are read through a volatile so the compiler cannot
/// constant-fold them: with literal bounds GCC specialises the code after the clamp for the
/// constant arm (control flow in the loop) and the `omp simd` loops no longer vectorise.
/// Load them once per loop: `const auto ec = exp_clamp();`.
struct ExpClamp {
  float lo, hi;
};
inline ExpClamp exp_clamp() {
  static volatile float lo = -87.3f, hi = 88.0f;
  return {lo, hi};
}

/// exp(x) for float, ~1-2 ulp on [-87.3, 88]; x is clamped to that range first (so exp(-inf)
/// gives ~1.3e-38 rather than 0 and exp(+inf) gives exp(88), never inf or NaN except for NaN x).
#if defined(__GNUC__)
__attribute__((always_inline))
#endif
inline float exp_f32(float x, ExpClamp ec) {
  const float xc = x > ec.hi ? ec.hi : (x < ec.lo ? ec.lo : x);
  // n = round(x / ln2) with the 1.5 * 2^23 trick (exact without -ffast-math); r = x - n ln2.
  const float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  float r = xc - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  // 2^n, n in [-126, 127]. A NaN x gives a NaN n, whose conversion to int is undefined
  // (UBSan): convert 0 instead; p is NaN then, so the result is still NaN.
  const float ni = n == n ? n : 0.0f;
  const std::int32_t e = (static_cast<std::int32_t>(ni) + 127) << 23;
  return p * std::bit_cast<float>(e);
}

template <class T>
#if defined(__GNUC__)
__attribute__((always_inline))
#endif
inline T vexp(T x, ExpClamp ec) {
  if constexpr (std::is_same_v<T, float>) return exp_f32(x, ec);
  else return std::exp(x);
}

/// tanh(x): 1 - 2 / (exp(2x) + 1) for float (absolute error ~1e-7), std::tanh for double.
template <class T>
#if defined(__GNUC__)
__attribute__((always_inline))
#endif
inline T vtanh(T x, ExpClamp ec) {
  if constexpr (std::is_same_v<T, float>) return 1.0f - 2.0f / (exp_f32(2.0f * x, ec) + 1.0f);
  else return std::tanh(x);
}

}  // namespace redi::ops::detail
