// redi/cuda/ops/activation.cuh — GELU (tanh approximation) and SiLU, forward and backward,
// computed in fp32 (tanhf/expf, no fast-math); the exact (erf) GELU forward (DINOv2's MLP,
// erfcf). Mirrors redi/ops/activation.hpp.
#pragma once
#include "redi/cuda/ops/common.cuh"

namespace redi {
namespace cuda_detail {

constexpr float kGeluK = 0.7978845608028654f;  // sqrt(2/pi)
constexpr float kGeluC = 0.044715f;

template <class D>
__global__ void gelu_fwd_kernel(D* out, const D* in, std::int64_t n) {
  REDI_GRID_STRIDE(i, n) {
    float x = ld(in[i]);
    float u = kGeluK * (x + kGeluC * x * x * x);
    out[i] = st<D>(0.5f * x * (1.0f + tanhf(u)));
  }
}
template <class D>
__global__ void gelu_bwd_kernel(D* din, const D* dout, const D* in, std::int64_t n) {
  REDI_GRID_STRIDE(i, n) {
    float x = ld(in[i]);
    float u = kGeluK * (x + kGeluC * x * x * x);
    float t = tanhf(u);
    float du = kGeluK * (1.0f + 3.0f * kGeluC * x * x);
    float g = 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * du;
    din[i] = st<D>(ld(dout[i]) * g);
  }
}
/// x Phi(x) = 0.5 x erfc(-x / sqrt 2) (CUDA's erfcf: max 4 ulp, no cancellation for x < 0).
template <class D>
__global__ void gelu_erf_fwd_kernel(D* out, const D* in, std::int64_t n) {
  REDI_GRID_STRIDE(i, n) {
    const float x = ld(in[i]);
    out[i] = st<D>(0.5f * x * erfcf(-x * 0.70710678118654752f));
  }
}
template <class D>
__global__ void silu_fwd_kernel(D* out, const D* in, std::int64_t n) {
  REDI_GRID_STRIDE(i, n) {
    float x = ld(in[i]);
    out[i] = st<D>(x / (1.0f + expf(-x)));
  }
}
template <class D>
__global__ void silu_bwd_kernel(D* din, const D* dout, const D* in, std::int64_t n) {
  REDI_GRID_STRIDE(i, n) {
    float x = ld(in[i]);
    float s = 1.0f / (1.0f + expf(-x));
    din[i] = st<D>(ld(dout[i]) * s * (1.0f + x * (1.0f - s)));
  }
}

}  // namespace cuda_detail

namespace ops {

template <CudaReal T>
void gelu_forward(const Cuda& ctx, T* out, const T* in, std::int64_t n) {
  if (n <= 0) return;
  using namespace cuda_detail;
  gelu_fwd_kernel<<<grid_for(n, kThreads), kThreads, 0, ctx.stream()>>>(dptr(out), dptr(in), n);
  REDI_CUDA_LAUNCH_CHECK("gelu_forward");
}
template <CudaReal T>
void gelu_backward(const Cuda& ctx, T* din, const T* dout, const T* in, std::int64_t n) {
  if (n <= 0 || !din) return;
  using namespace cuda_detail;
  gelu_bwd_kernel<<<grid_for(n, kThreads), kThreads, 0, ctx.stream()>>>(dptr(din), dptr(dout),
                                                                         dptr(in), n);
  REDI_CUDA_LAUNCH_CHECK("gelu_backward");
}
/// Exact GELU (nn.GELU(approximate='none')), forward only; out may alias in.
template <CudaReal T>
void gelu_erf_forward(const Cuda& ctx, T* out, const T* in, std::int64_t n) {
  if (n <= 0) return;
  using namespace cuda_detail;
  gelu_erf_fwd_kernel<<<grid_for(n, kThreads), kThreads, 0, ctx.stream()>>>(dptr(out), dptr(in), n);
  REDI_CUDA_LAUNCH_CHECK("gelu_erf_forward");
}
template <CudaReal T>
void silu_forward(const Cuda& ctx, T* out, const T* in, std::int64_t n) {
  if (n <= 0) return;
  using namespace cuda_detail;
  silu_fwd_kernel<<<grid_for(n, kThreads), kThreads, 0, ctx.stream()>>>(dptr(out), dptr(in), n);
  REDI_CUDA_LAUNCH_CHECK("silu_forward");
}
template <CudaReal T>
void silu_backward(const Cuda& ctx, T* din, const T* dout, const T* in, std::int64_t n) {
  if (n <= 0 || !din) return;
  using namespace cuda_detail;
  silu_bwd_kernel<<<grid_for(n, kThreads), kThreads, 0, ctx.stream()>>>(dptr(din), dptr(dout),
                                                                         dptr(in), n);
  REDI_CUDA_LAUNCH_CHECK("silu_backward");
}

}  // namespace ops
}  // namespace redi
