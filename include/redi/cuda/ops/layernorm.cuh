// redi/cuda/ops/layernorm.cuh — LayerNorm without affine over the last dim (biased variance,
// eps inside the sqrt, two-pass mean/variance in fp32) and its backward. One warp per row.
// Statistics (mean, rstd) may be fp32 while the data is bf16 (S != T), and the input may be of
// the residual type R (fp32 residual stream under BF16Mixed: LayerNorm reads R and writes T; its
// backward writes R). Mirrors redi/ops/layernorm.hpp; also the affine forward (nn.LayerNorm with
// weight and bias, DINOv2's norms, inference only).
#pragma once
#include "redi/cuda/ops/common.cuh"
#include "redi/cuda/ops/softmax.cuh"  // kRowsPerBlock

namespace redi {
namespace cuda_detail {

/// One row's two-pass fp32 statistics, one warp per row: mu = mean(x), rs = 1 / sqrt(mean((x -
/// mu)^2) + eps) (the arithmetic of the CPU's row_stats, summed in warp order).
template <class Di>
__device__ inline void warp_row_stats(const Di* x, int C, float eps, int lane, float& mu, float& rs) {
  float s = 0.0f;
  for (int c = lane; c < C; c += 32) s += ld(x[c]);
  mu = warp_sum(s) / float(C);
  float ss = 0.0f;
  for (int c = lane; c < C; c += 32) {
    const float d = ld(x[c]) - mu;
    ss += d * d;
  }
  rs = 1.0f / sqrtf(warp_sum(ss) / float(C) + eps);
}

/// With mod_out: also mod_out = out * (1 + scale) + shift from the stored (rounded) out, the
/// modulate kernel's arithmetic, per sample b = row / L at v[b * mod_stride + c].
template <class D, class S, class Di>
__global__ void ln_fwd_kernel(D* out, S* mean, S* rstd, const Di* in, int rows, int C, float eps,
                              D* mod_out = nullptr, const D* shift = nullptr, const D* scale = nullptr,
                              int L = 1, int mod_stride = 0) {
  const int row = blockIdx.x * kRowsPerBlock + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;
  const Di* x = in + std::int64_t(row) * C;
  D* y = out + std::int64_t(row) * C;
  float mu, rs;
  warp_row_stats(x, C, eps, lane, mu, rs);
  if (!mod_out) {
    for (int c = lane; c < C; c += 32) y[c] = st<D>((ld(x[c]) - mu) * rs);
  } else {
    D* m = mod_out + std::int64_t(row) * C;
    const std::int64_t v0 = std::int64_t(row / L) * mod_stride;
    for (int c = lane; c < C; c += 32) {
      const D yc = st<D>((ld(x[c]) - mu) * rs);
      y[c] = yc;
      m[c] = st<D>(ld(yc) * (1.0f + ld(scale[v0 + c])) + ld(shift[v0 + c]));
    }
  }
  if (lane == 0) {
    if (mean) mean[row] = st<S>(mu);
    if (rstd) rstd[row] = st<S>(rs);
  }
}

/// din = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dout; with Accumulate, din += that
/// (the sum in fp32, one rounding to Do).
template <bool Accumulate, class Do, class D, class Di, class S>
__global__ void ln_bwd_kernel(Do* din, const D* dout, const Di* in, const S* mean, const S* rstd,
                              int rows, int C) {
  const int row = blockIdx.x * kRowsPerBlock + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;
  const Di* x = in + std::int64_t(row) * C;
  const D* gr = dout + std::int64_t(row) * C;
  Do* dx = din + std::int64_t(row) * C;
  const float mu = ld(mean[row]), rs = ld(rstd[row]);
  float sg = 0.0f, sgx = 0.0f;
  for (int c = lane; c < C; c += 32) {
    const float g = ld(gr[c]);
    sg += g;
    sgx += g * ((ld(x[c]) - mu) * rs);
  }
  const float mg = warp_sum(sg) / float(C), mgx = warp_sum(sgx) / float(C);
  for (int c = lane; c < C; c += 32) {
    const float g = ld(gr[c]);
    const float v = rs * (g - mg - ((ld(x[c]) - mu) * rs) * mgx);
    if constexpr (Accumulate) dx[c] = st<Do>(ld(dx[c]) + v);
    else dx[c] = st<Do>(v);
  }
}

/// y = (x - mean) * rstd * gamma + beta, one warp per row, the same two-pass fp32 statistics as
/// ln_fwd_kernel. out may alias in (each lane rewrites only the elements it read).
template <class D>
__global__ void ln_affine_fwd_kernel(D* out, const D* in, const D* gamma, const D* beta, int rows, int C, float eps) {
  const int row = blockIdx.x * kRowsPerBlock + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;
  const D* x = in + std::int64_t(row) * C;
  D* y = out + std::int64_t(row) * C;
  float mu, rs;
  warp_row_stats(x, C, eps, lane, mu, rs);
  for (int c = lane; c < C; c += 32) y[c] = st<D>((ld(x[c]) - mu) * rs * ld(gamma[c]) + ld(beta[c]));
}

template <class D, class S, class Di>
void ln_forward(const Cuda& ctx, D* out, S* mean, S* rstd, const Di* in, int rows, int C,
                float eps, const char* what) {
  if (rows <= 0 || C <= 0) return;
  const unsigned grid = unsigned((rows + kRowsPerBlock - 1) / kRowsPerBlock);
  ln_fwd_kernel<<<grid, kRowsPerBlock * 32, 0, ctx.stream()>>>(out, mean, rstd, in, rows, C, eps);
  REDI_CUDA_LAUNCH_CHECK(what);
}

template <bool Accumulate = false, class Do, class D, class Di, class S>
void ln_backward(const Cuda& ctx, Do* din, const D* dout, const Di* in, const S* mean,
                 const S* rstd, int rows, int C, const char* what) {
  if (rows <= 0 || C <= 0 || !din) return;
  const unsigned grid = unsigned((rows + kRowsPerBlock - 1) / kRowsPerBlock);
  ln_bwd_kernel<Accumulate><<<grid, kRowsPerBlock * 32, 0, ctx.stream()>>>(din, dout, in, mean, rstd, rows, C);
  REDI_CUDA_LAUNCH_CHECK(what);
}

}  // namespace cuda_detail

namespace ops {

/// out = (in - mean) * rstd per row; saves mean and rstd = 1/sqrt(var + eps) (either may be
/// null). S (statistics) may differ from T (e.g. fp32 stats for bf16 data), and so may the
/// input's type R (the fp32 residual stream).
template <CudaReal T, CudaReal S, CudaReal R>
void layernorm_forward(const Cuda& ctx, T* out, S* mean, S* rstd, const R* in, int rows, int C,
                       CudaScalar eps = 1e-6) {
  using namespace cuda_detail;
  ln_forward(ctx, dptr(out), dptr(mean), dptr(rstd), dptr(in), rows, C, eps.v, "layernorm_forward");
}

/// ln = LayerNorm(in) as layernorm_forward, and out = ln * (1 + scale) + shift as
/// modulate_forward on the stored ln (rows B * L, per-sample vectors at v[b * mod_stride + c]) in
/// the same pass: one read of the residual stream and no re-read of ln. Same arithmetic as the
/// two ops in sequence.
template <CudaReal T, CudaReal S, CudaReal R>
void layernorm_modulate_forward(const Cuda& ctx, T* ln, T* out, S* mean, S* rstd, const R* in, const T* shift,
                                const T* scale, int B, int L, int C, int mod_stride, CudaScalar eps = 1e-6) {
  using namespace cuda_detail;
  const int rows = B * L;
  if (rows <= 0 || C <= 0) return;
  const unsigned grid = unsigned((rows + kRowsPerBlock - 1) / kRowsPerBlock);
  ln_fwd_kernel<<<grid, kRowsPerBlock * 32, 0, ctx.stream()>>>(dptr(ln), dptr(mean), dptr(rstd), dptr(in), rows, C,
                                                               eps.v, dptr(out), dptr(shift), dptr(scale), L,
                                                               mod_stride);
  REDI_CUDA_LAUNCH_CHECK("layernorm_modulate_forward");
}

/// din (the residual type R, like the input) = dL/din from dout (T).
template <CudaReal T, CudaReal S, CudaReal R>
void layernorm_backward(const Cuda& ctx, R* din, const T* dout, const R* in, const S* mean,
                        const S* rstd, int rows, int C) {
  using namespace cuda_detail;
  ln_backward(ctx, dptr(din), dptr(dout), dptr(in), dptr(mean), dptr(rstd), rows, C, "layernorm_backward");
}

/// acc (the residual type R) += dL/din: layernorm_backward added into the residual gradient in
/// the same pass (no write and re-read of a separate input gradient).
template <CudaReal T, CudaReal S, CudaReal R>
void layernorm_backward_accumulate(const Cuda& ctx, R* acc, const T* dout, const R* in, const S* mean,
                                   const S* rstd, int rows, int C) {
  using namespace cuda_detail;
  ln_backward<true>(ctx, dptr(acc), dptr(dout), dptr(in), dptr(mean), dptr(rstd), rows, C,
                    "layernorm_backward_accumulate");
}

/// out = (in - mean) * rstd * gamma + beta per row of C elements (nn.LayerNorm with
/// elementwise_affine=True), statistics in fp32, none saved. Forward only; out may alias in.
template <CudaReal T>
void layernorm_affine_forward(const Cuda& ctx, T* out, const T* in, const T* gamma, const T* beta, int rows, int C,
                              CudaScalar eps = 1e-6) {
  using namespace cuda_detail;
  if (rows <= 0 || C <= 0) return;
  const unsigned grid = unsigned((rows + kRowsPerBlock - 1) / kRowsPerBlock);
  ln_affine_fwd_kernel<<<grid, kRowsPerBlock * 32, 0, ctx.stream()>>>(dptr(out), dptr(in), dptr(gamma), dptr(beta),
                                                                      rows, C, eps.v);
  REDI_CUDA_LAUNCH_CHECK("layernorm_affine_forward");
}

}  // namespace ops
}  // namespace redi
