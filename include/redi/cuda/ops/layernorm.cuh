// redi/cuda/ops/layernorm.cuh — LayerNorm without affine over the last dim (biased variance,
// eps inside the sqrt, two-pass mean/variance in fp32), its backward, and the fused adaLN
// variant used by every DiT block:
//   layernorm_modulate_forward : out = LN(in) * (1 + scale[b]) + shift[b]
//   layernorm_modulate_backward: din, dshift, dscale from dout (LN output xhat is recomputed
//                                from in, mean, rstd; nothing else is saved).
// One warp per row. Statistics (mean, rstd) may be fp32 while the data is bf16 (S != T).
// Mirrors redi/ops/layernorm.hpp (+ redi/ops/modulate.hpp for the fused op).
#pragma once
#include "redi/cuda/ops/modulate.cuh"
#include "redi/cuda/ops/softmax.cuh"  // kRowsPerBlock

namespace redi {
namespace cuda_detail {

template <class D, class S>
__global__ void ln_fwd_kernel(D* out, S* mean, S* rstd, const D* in, int rows, int C, float eps,
                              const D* shift, const D* scale, int L, int mod_stride) {
  const int row = blockIdx.x * kRowsPerBlock + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;
  const D* x = in + std::int64_t(row) * C;
  D* y = out + std::int64_t(row) * C;
  float s = 0.0f;
  for (int c = lane; c < C; c += 32) s += ld(x[c]);
  const float mu = warp_sum(s) / float(C);
  float ss = 0.0f;
  for (int c = lane; c < C; c += 32) {
    const float d = ld(x[c]) - mu;
    ss += d * d;
  }
  const float rs = 1.0f / sqrtf(warp_sum(ss) / float(C) + eps);
  if (shift) {
    const std::int64_t v = std::int64_t(row / L) * mod_stride;
    for (int c = lane; c < C; c += 32)
      y[c] = st<D>((ld(x[c]) - mu) * rs * (1.0f + ld(scale[v + c])) + ld(shift[v + c]));
  } else {
    for (int c = lane; c < C; c += 32) y[c] = st<D>((ld(x[c]) - mu) * rs);
  }
  if (lane == 0) {
    if (mean) mean[row] = st<S>(mu);
    if (rstd) rstd[row] = st<S>(rs);
  }
}

/// din = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dout (or dout * (1 + scale[b]) when
/// fused with modulate).
template <class D, class S>
__global__ void ln_bwd_kernel(D* din, const D* dout, const D* in, const S* mean, const S* rstd,
                              int rows, int C, const D* scale, int L, int mod_stride) {
  const int row = blockIdx.x * kRowsPerBlock + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;
  const D* x = in + std::int64_t(row) * C;
  const D* gr = dout + std::int64_t(row) * C;
  D* dx = din + std::int64_t(row) * C;
  const float mu = ld(mean[row]), rs = ld(rstd[row]);
  const D* sc = scale ? scale + std::int64_t(row / L) * mod_stride : nullptr;
  float sg = 0.0f, sgx = 0.0f;
  for (int c = lane; c < C; c += 32) {
    float g = ld(gr[c]);
    if (sc) g *= 1.0f + ld(sc[c]);
    sg += g;
    sgx += g * ((ld(x[c]) - mu) * rs);
  }
  const float mg = warp_sum(sg) / float(C), mgx = warp_sum(sgx) / float(C);
  for (int c = lane; c < C; c += 32) {
    float g = ld(gr[c]);
    if (sc) g *= 1.0f + ld(sc[c]);
    dx[c] = st<D>(rs * (g - mg - ((ld(x[c]) - mu) * rs) * mgx));
  }
}

template <class D, class S>
void ln_forward(const Cuda& ctx, D* out, S* mean, S* rstd, const D* in, int rows, int C,
                float eps, const D* shift, const D* scale, int L, int mod_stride,
                const char* what) {
  if (rows <= 0 || C <= 0) return;
  const unsigned grid = unsigned((rows + kRowsPerBlock - 1) / kRowsPerBlock);
  ln_fwd_kernel<<<grid, kRowsPerBlock * 32, 0, ctx.stream()>>>(out, mean, rstd, in, rows, C, eps,
                                                               shift, scale, L, mod_stride);
  REDI_CUDA_LAUNCH_CHECK(what);
}

template <class D, class S>
void ln_backward(const Cuda& ctx, D* din, const D* dout, const D* in, const S* mean,
                 const S* rstd, int rows, int C, const D* scale, int L, int mod_stride,
                 const char* what) {
  if (rows <= 0 || C <= 0 || !din) return;
  const unsigned grid = unsigned((rows + kRowsPerBlock - 1) / kRowsPerBlock);
  ln_bwd_kernel<<<grid, kRowsPerBlock * 32, 0, ctx.stream()>>>(din, dout, in, mean, rstd, rows, C,
                                                               scale, L, mod_stride);
  REDI_CUDA_LAUNCH_CHECK(what);
}

}  // namespace cuda_detail

namespace ops {

/// out = (in - mean) * rstd per row; saves mean and rstd = 1/sqrt(var + eps) (either may be
/// null). S (statistics) may differ from T (e.g. fp32 stats for bf16 data).
template <CudaReal T, CudaReal S>
void layernorm_forward(const Cuda& ctx, T* out, S* mean, S* rstd, const T* in, int rows, int C,
                       CudaScalar eps = 1e-6) {
  using namespace cuda_detail;
  ln_forward(ctx, dptr(out), dptr(mean), dptr(rstd), dptr(in), rows, C, eps.v,
             static_cast<const dev_t<T>*>(nullptr), static_cast<const dev_t<T>*>(nullptr), 1, 0,
             "layernorm_forward");
}

template <CudaReal T, CudaReal S>
void layernorm_backward(const Cuda& ctx, T* din, const T* dout, const T* in, const S* mean,
                        const S* rstd, int rows, int C) {
  using namespace cuda_detail;
  ln_backward(ctx, dptr(din), dptr(dout), dptr(in), dptr(mean), dptr(rstd), rows, C,
              static_cast<const dev_t<T>*>(nullptr), 1, 0, "layernorm_backward");
}

/// Fused LN + adaLN modulate over tokens [B, L, C]:
/// out = LN(in) * (1 + scale[b*mod_stride + c]) + shift[b*mod_stride + c]; saves mean, rstd
/// (per row, B*L rows; required for the backward).
template <CudaReal T, CudaReal S>
void layernorm_modulate_forward(const Cuda& ctx, T* out, S* mean, S* rstd, const T* in,
                                const T* shift, const T* scale, int B, int L, int C,
                                int mod_stride, CudaScalar eps = 1e-6) {
  using namespace cuda_detail;
  REDI_CHECK(shift && scale, "layernorm_modulate_forward: shift and scale are required");
  ln_forward(ctx, dptr(out), dptr(mean), dptr(rstd), dptr(in), B * L, C, eps.v, dptr(shift),
             dptr(scale), L, mod_stride, "layernorm_modulate_forward");
}

/// Backward of layernorm_modulate_forward: din (overwritten; may alias dout), dshift =
/// sum_L dout, dscale = sum_L dout * xhat (overwritten, at b*mod_stride + c). Null gradients
/// are skipped. Equals modulate_backward on xhat = LN(in) followed by layernorm_backward.
template <CudaReal T, CudaReal S>
void layernorm_modulate_backward(const Cuda& ctx, T* din, T* dshift, T* dscale, const T* dout,
                                 const T* in, const S* mean, const S* rstd, const T* scale,
                                 int B, int L, int C, int mod_stride) {
  using namespace cuda_detail;
  // Column sums first: they read dout, which din may overwrite.
  if (dshift || dscale)
    col_reduce<ColMode::LnModulate>(ctx, static_cast<dev_t<T>*>(nullptr), dptr(dshift),
                                    dptr(dscale), dptr(dout), dptr(in),
                                    static_cast<const dev_t<T>*>(nullptr), dptr(mean),
                                    dptr(rstd), B, L, C, mod_stride,
                                    "layernorm_modulate_backward (column sums)");
  ln_backward(ctx, dptr(din), dptr(dout), dptr(in), dptr(mean), dptr(rstd), B * L, C,
              dptr(scale), L, mod_stride, "layernorm_modulate_backward");
}

}  // namespace ops
}  // namespace redi
