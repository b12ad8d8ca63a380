// redi/cuda/ops/common.cuh — shared pieces of the CUDA op headers: element-type mapping
// (redi::bf16 <-> __nv_bfloat16, bit-identical layouts), fp32 load/store, warp reductions,
// launch-size helpers and the scalar parameter type. nvcc only.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <concepts>
#include <cstdint>
#include <type_traits>

#include "redi/core/dtype.hpp"
#include "redi/core/error.hpp"
#include "redi/cuda/check.hpp"
#include "redi/cuda/device.hpp"

namespace redi {

static_assert(sizeof(bf16) == sizeof(__nv_bfloat16) && alignof(bf16) == alignof(__nv_bfloat16),
              "redi::bf16 must be layout-compatible with __nv_bfloat16");

/// Element types the CUDA ops store: fp32, or bf16 storage with fp32 arithmetic.
template <class T>
concept CudaReal = std::same_as<T, float> || std::same_as<T, bf16>;

/// A scalar argument of a CUDA op (alpha, eps, weight, ...): the ops compute in fp32, and this
/// accepts any arithmetic type or a redi::bf16, so generic code can pass T(x) or a double.
struct CudaScalar {
  float v;
  template <class S>
    requires std::is_arithmetic_v<S>
  CudaScalar(S s) : v(static_cast<float>(s)) {}  // NOLINT(implicit)
  CudaScalar(bf16 b) : v(static_cast<float>(b)) {}  // NOLINT(implicit)
};

namespace cuda_detail {

template <class T> struct dev_type { using type = T; };
template <> struct dev_type<bf16> { using type = __nv_bfloat16; };
template <> struct dev_type<const bf16> { using type = const __nv_bfloat16; };
template <class T> using dev_t = typename dev_type<T>::type;

/// Reinterpret a redi pointer as the CUDA element type.
template <class T>
dev_t<T>* dptr(T* p) { return reinterpret_cast<dev_t<T>*>(p); }

__device__ __forceinline__ float ld(float x) { return x; }
__device__ __forceinline__ float ld(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float ld(double x) { return float(x); }

template <class D> __device__ __forceinline__ D st(float f);
template <> __device__ __forceinline__ float st<float>(float f) { return f; }
template <> __device__ __forceinline__ __nv_bfloat16 st<__nv_bfloat16>(float f) {
  return __float2bfloat16_rn(f);
}

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

/// Blocks for a grid-stride loop over n items (capped; the loop covers the rest).
inline unsigned grid_for(std::int64_t n, int threads, std::int64_t cap = 1 << 16) {
  std::int64_t b = (n + threads - 1) / threads;
  if (b < 1) b = 1;
  if (b > cap) b = cap;
  return static_cast<unsigned>(b);
}

constexpr int kThreads = 256;

#define REDI_GRID_STRIDE(i, n)                                                       \
  for (std::int64_t i = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); \
       i += std::int64_t(blockDim.x) * gridDim.x)

}  // namespace cuda_detail
}  // namespace redi
