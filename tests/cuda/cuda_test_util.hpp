// tests/cuda/cuda_test_util.hpp — helpers for the CUDA-vs-CPU op tests: a shared context,
// skipping without a device, host<->device tensors, bf16 rounding and tolerance checks.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "redi/core/dtype.hpp"
#include "redi/core/tensor.hpp"
#include "redi/cuda/device.hpp"

namespace redi::test {

/// Skip the current test cleanly when no CUDA device is present.
#define REDI_REQUIRE_CUDA()                                                            \
  do {                                                                                 \
    if (!::redi::cuda_available())                                                     \
      GTEST_SKIP() << "no CUDA device available (cudaGetDeviceCount reports none); "   \
                      "CUDA op test skipped";                                          \
  } while (0)

/// One context for the whole test binary (created on first use, only with a device). Never
/// destroyed: tearing down library handles after the CUDA runtime has unloaded at exit is not
/// worth the risk of a crash in an otherwise passing test.
inline const Cuda& ctx() {
  static const Cuda* c = new Cuda(Cuda::create(0));
  return *c;
}

inline std::vector<float> randn(std::size_t n, std::uint32_t seed, float scale = 1.0f,
                                float shift = 0.0f) {
  std::mt19937 g(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = shift + scale * d(g);
  return v;
}

/// Round every value to bf16 (so CPU references see exactly the GPU's bf16 inputs).
inline std::vector<float> round_bf16(std::vector<float> v) {
  for (auto& x : v) x = float(bf16(x));
  return v;
}

template <class T>
std::vector<T> to(const std::vector<float>& v) {
  std::vector<T> r(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) r[i] = T(v[i]);
  return r;
}

template <class T>
std::vector<float> to_float(const std::vector<T>& v) {
  std::vector<float> r(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) r[i] = float(v[i]);
  return r;
}

/// Device tensor holding `v` converted to T.
template <class T>
Tensor<T, Cuda> dev(const std::vector<float>& v) {
  Tensor<T, Cuda> t(Shape{std::int64_t(v.size())});
  t.from_host(to<T>(v));
  return t;
}
inline Tensor<int, Cuda> dev_int(const std::vector<int>& v) {
  Tensor<int, Cuda> t(Shape{std::int64_t(v.size())});
  t.from_host(v);
  return t;
}
template <class T>
Tensor<T, Cuda> dev_zeros(std::size_t n) {
  return Tensor<T, Cuda>(Shape{std::int64_t(n)});
}
/// Device tensor back to host floats.
template <class T>
std::vector<float> host(const Tensor<T, Cuda>& t) {
  return to_float(t.to_host());
}

/// Passes when |got - ref| <= rtol * |ref| + atol_rms * rms(ref) for every element
/// (atol_rms scales the absolute floor with the data, for sums with cancellation).
inline ::testing::AssertionResult close(const std::vector<float>& got,
                                        const std::vector<float>& ref, double rtol,
                                        double atol_rms = 0.0, double atol = 1e-7) {
  if (got.size() != ref.size())
    return ::testing::AssertionFailure() << "size " << got.size() << " vs " << ref.size();
  double ss = 0;
  for (float r : ref) ss += double(r) * r;
  const double rms = ref.empty() ? 0.0 : std::sqrt(ss / double(ref.size()));
  std::size_t bad = 0, worst_i = 0;
  double worst = 0;
  for (std::size_t i = 0; i < ref.size(); ++i) {
    const double err = std::fabs(double(got[i]) - double(ref[i]));
    const double tol = rtol * std::fabs(double(ref[i])) + atol_rms * rms + atol;
    if (!(err <= tol)) {  // NaN fails
      ++bad;
      if (!(err <= worst)) {
        worst = err;
        worst_i = i;
      }
    }
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << bad << " of " << ref.size() << " elements out of tolerance (rtol " << rtol
         << ", atol " << atol_rms << "*rms(" << rms << ")); worst at " << worst_i << ": got "
         << got[worst_i] << ", ref " << ref[worst_i];
}

/// A tolerance: rtol relative to the reference element plus atol_rms times the reference's
/// RMS (an absolute floor that scales with the data, for sums with cancellation).
struct Tolerance {
  double rtol, atol_rms;
};
inline ::testing::AssertionResult close(const std::vector<float>& got,
                                        const std::vector<float>& ref, Tolerance t) {
  return close(got, ref, t.rtol, t.atol_rms);
}

/// Tolerances per storage type (stated in docs/cuda.md). fp32 GEMMs run with TF32 off.
template <class T> struct Tol;
template <> struct Tol<float> {
  static constexpr Tolerance elem{1e-5, 1e-6};  // elementwise ops (transcendental ulps)
  static constexpr Tolerance red{1e-5, 1e-5};   // row/column reductions
  static constexpr Tolerance gemm{1e-5, 1e-5};  // cuBLASLt GEMMs (different summation order)
};
template <> struct Tol<bf16> {
  static constexpr Tolerance elem{1e-2, 1e-3};  // one bf16 rounding of the output is 2^-9
  static constexpr Tolerance red{2e-2, 1e-2};
  static constexpr Tolerance gemm{2e-2, 1e-2};
};

template <class T>
std::vector<float> input(std::size_t n, std::uint32_t seed, float scale = 1.0f,
                         float shift = 0.0f) {
  auto v = randn(n, seed, scale, shift);
  if constexpr (std::is_same_v<T, bf16>) v = round_bf16(std::move(v));
  return v;
}

}  // namespace redi::test
