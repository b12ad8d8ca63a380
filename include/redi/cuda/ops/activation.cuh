// redi/cuda/ops/activation.cuh — GELU (tanh approximation) and SiLU, forward and backward,
// computed in fp32 (tanhf/expf, no fast-math), with 16-byte vector accesses and a scalar tail
// where the pointers are aligned (vec.cuh); the exact (erf) GELU forward (DINOv2's MLP, erfcf).
// Mirrors redi/ops/activation.hpp.
#pragma once
#include "redi/cuda/ops/common.cuh"
#include "redi/cuda/ops/vec.cuh"

namespace redi {
namespace cuda_detail {

constexpr float kGeluK = 0.7978845608028654f;  // sqrt(2/pi)
constexpr float kGeluC = 0.044715f;

__device__ __forceinline__ float gelu_f(float x) {
  const float u = kGeluK * (x + kGeluC * x * x * x);
  return 0.5f * x * (1.0f + tanhf(u));
}
__device__ __forceinline__ float gelu_grad_f(float x) {
  const float u = kGeluK * (x + kGeluC * x * x * x);
  const float t = tanhf(u);
  const float du = kGeluK * (1.0f + 3.0f * kGeluC * x * x);
  return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * du;
}
__device__ __forceinline__ float silu_f(float x) { return x / (1.0f + expf(-x)); }
__device__ __forceinline__ float silu_grad_f(float x) {
  const float s = 1.0f / (1.0f + expf(-x));
  return s * (1.0f + x * (1.0f - s));
}

/// x Phi(x) = 0.5 x erfc(-x / sqrt 2) (CUDA's erfcf: max 4 ulp, no cancellation for x < 0).
__device__ __forceinline__ float gelu_erf_f(float x) { return 0.5f * x * erfcf(-x * 0.70710678118654752f); }

/// out = f(in), W-wide (vec.cuh).
template <int W, class Fn, class D>
__global__ void act_fwd_kernel(D* out, const D* in, std::int64_t n) {
  vec_loop<W>(n, [&](std::int64_t i, auto w) {
    constexpr int V = decltype(w)::value;
    float x[V];
    vload<V>(x, in + i);
#pragma unroll
    for (int k = 0; k < V; ++k) x[k] = Fn::f(x[k]);
    vstore<V>(out + i, x);
  });
}
/// din = dout * f'(in), W-wide; din may alias dout (each element read before it is written).
template <int W, class Fn, class D>
__global__ void act_bwd_kernel(D* din, const D* dout, const D* in, std::int64_t n) {
  vec_loop<W>(n, [&](std::int64_t i, auto w) {
    constexpr int V = decltype(w)::value;
    float x[V], g[V];
    vload<V>(x, in + i);
    vload<V>(g, dout + i);
#pragma unroll
    for (int k = 0; k < V; ++k) g[k] *= Fn::grad(x[k]);
    vstore<V>(din + i, g);
  });
}
struct GeluFn {
  __device__ static float f(float x) { return gelu_f(x); }
  __device__ static float grad(float x) { return gelu_grad_f(x); }
};
struct GeluErfFn {  // forward only (act_fwd_kernel uses f alone)
  __device__ static float f(float x) { return gelu_erf_f(x); }
};
struct SiluFn {
  __device__ static float f(float x) { return silu_f(x); }
  __device__ static float grad(float x) { return silu_grad_f(x); }
};

template <class Fn, class D>
void act_forward(const Cuda& ctx, D* out, const D* in, std::int64_t n, const char* what) {
  if (n <= 0) return;
  launch_vec(n, [&](auto w, unsigned blocks) {
    act_fwd_kernel<decltype(w)::value, Fn><<<blocks, kThreads, 0, ctx.stream()>>>(out, in, n);
  }, out, in);
  REDI_CUDA_LAUNCH_CHECK(what);
}
template <class Fn, class D>
void act_backward(const Cuda& ctx, D* din, const D* dout, const D* in, std::int64_t n, const char* what) {
  if (n <= 0 || !din) return;
  launch_vec(n, [&](auto w, unsigned blocks) {
    act_bwd_kernel<decltype(w)::value, Fn><<<blocks, kThreads, 0, ctx.stream()>>>(din, dout, in, n);
  }, din, dout, in);
  REDI_CUDA_LAUNCH_CHECK(what);
}

}  // namespace cuda_detail

namespace ops {

template <CudaReal T>
void gelu_forward(const Cuda& ctx, T* out, const T* in, std::int64_t n) {
  cuda_detail::act_forward<cuda_detail::GeluFn>(ctx, cuda_detail::dptr(out), cuda_detail::dptr(in), n,
                                                "gelu_forward");
}
template <CudaReal T>
void gelu_backward(const Cuda& ctx, T* din, const T* dout, const T* in, std::int64_t n) {
  cuda_detail::act_backward<cuda_detail::GeluFn>(ctx, cuda_detail::dptr(din), cuda_detail::dptr(dout),
                                                 cuda_detail::dptr(in), n, "gelu_backward");
}
/// Exact GELU (nn.GELU(approximate='none')), forward only; out may alias in.
template <CudaReal T>
void gelu_erf_forward(const Cuda& ctx, T* out, const T* in, std::int64_t n) {
  cuda_detail::act_forward<cuda_detail::GeluErfFn>(ctx, cuda_detail::dptr(out), cuda_detail::dptr(in), n,
                                                   "gelu_erf_forward");
}
template <CudaReal T>
void silu_forward(const Cuda& ctx, T* out, const T* in, std::int64_t n) {
  cuda_detail::act_forward<cuda_detail::SiluFn>(ctx, cuda_detail::dptr(out), cuda_detail::dptr(in), n,
                                                "silu_forward");
}
template <CudaReal T>
void silu_backward(const Cuda& ctx, T* din, const T* dout, const T* in, std::int64_t n) {
  cuda_detail::act_backward<cuda_detail::SiluFn>(ctx, cuda_detail::dptr(din), cuda_detail::dptr(dout),
                                                 cuda_detail::dptr(in), n, "silu_backward");
}

}  // namespace ops
}  // namespace redi
