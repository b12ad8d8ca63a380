// redi/cuda/ops/group_norm.cuh — GroupNorm over NCHW with a per-channel affine and optional
// fused SiLU, forward only; mirrors redi/ops/group_norm.hpp (same contract, out may alias in).
// One block per (image, group): a two-pass mean / squared-deviation reduction in fp32 over the
// group's C/G planes, then the affine (+ SiLU) pass. T = float or bf16 (fp32 arithmetic).
#pragma once
#include "redi/cuda/ops/common.cuh"

namespace redi {
namespace cuda_detail {

constexpr int kGnThreads = 512;

/// Sum of v over the block (every thread gets the result). `red` holds 32 floats.
__device__ __forceinline__ float block_sum(float v, float* red) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  v = warp_sum(v);
  __syncthreads();  // red may still be read from a previous call
  if (lane == 0) red[warp] = v;
  __syncthreads();
  float t = threadIdx.x < blockDim.x / 32 ? red[threadIdx.x] : 0.0f;
  if (warp == 0) t = warp_sum(t);
  if (threadIdx.x == 0) red[0] = t;
  __syncthreads();
  return red[0];
}

template <class D>
__global__ void __launch_bounds__(kGnThreads)
    group_norm_kernel(D* out, const D* in, const D* gamma, const D* beta, int C, std::int64_t P, int groups,
                      float eps, bool silu) {
  __shared__ float red[32];
  const int b = blockIdx.x / groups, g = blockIdx.x % groups, cg = C / groups;
  const std::int64_t base = (std::int64_t(b) * C + std::int64_t(g) * cg) * P, n = std::int64_t(cg) * P;
  const D* x = in + base;
  float s = 0.0f;
  for (std::int64_t i = threadIdx.x; i < n; i += blockDim.x) s += ld(x[i]);
  const float mu = block_sum(s, red) / float(n);
  float ss = 0.0f;
  for (std::int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    const float d = ld(x[i]) - mu;
    ss += d * d;
  }
  const float rs = rsqrtf(block_sum(ss, red) / float(n) + eps);
  D* y = out + base;
  for (std::int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    const int ch = g * cg + int(i / P);
    const float ga = gamma ? ld(gamma[ch]) : 1.0f, be = beta ? ld(beta[ch]) : 0.0f;
    float v = (ld(x[i]) - mu) * rs * ga + be;
    if (silu) v = v / (1.0f + __expf(-v));
    y[i] = st<D>(v);
  }
}

}  // namespace cuda_detail

namespace ops {

/// out [B, C, P] = GroupNorm(in) * gamma + beta (then SiLU when `silu`); see redi/ops/group_norm.hpp.
template <CudaReal T>
void group_norm_forward(const Cuda& ctx, T* out, const T* in, const T* gamma, const T* beta, int B, int C,
                        std::int64_t P, int groups, double eps, bool silu = false) {
  REDI_CHECK(groups > 0 && C > 0 && C % groups == 0, "group_norm_forward: ", C, " channels in ", groups, " groups");
  REDI_CHECK(P > 0 && B >= 0, "group_norm_forward: plane of ", P, " elements, batch ", B);
  if (B == 0) return;
  using namespace cuda_detail;
  group_norm_kernel<<<unsigned(B) * unsigned(groups), kGnThreads, 0, ctx.stream()>>>(
      dptr(out), dptr(in), dptr(gamma), dptr(beta), C, P, groups, float(eps), silu);
  REDI_CUDA_LAUNCH_CHECK("group_norm_forward");
}

}  // namespace ops
}  // namespace redi
