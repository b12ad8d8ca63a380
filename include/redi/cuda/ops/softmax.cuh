// redi/cuda/ops/softmax.cuh — row softmax (max-subtracted) and its backward, one warp per row,
// fp32 arithmetic. `out` may alias `in`, `din` may alias `dout` (each lane reads an element
// before it writes it). Mirrors redi/ops/softmax.hpp.
#pragma once
#include "redi/cuda/ops/common.cuh"

namespace redi {
namespace cuda_detail {

constexpr int kRowsPerBlock = 8;  // one warp per row, 8 warps per block

template <class D, class Di>
__global__ void softmax_fwd_kernel(D* out, const Di* in, std::int64_t rows, int cols) {
  const std::int64_t row = std::int64_t(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;
  const Di* x = in + row * cols;
  D* y = out + row * cols;
  float mx = -INFINITY;
  for (int c = lane; c < cols; c += 32) mx = fmaxf(mx, ld(x[c]));
  mx = warp_max(mx);
  float s = 0.0f;
  for (int c = lane; c < cols; c += 32) s += expf(ld(x[c]) - mx);
  s = warp_sum(s);
  const float inv = 1.0f / s;
  for (int c = lane; c < cols; c += 32) y[c] = st<D>(expf(ld(x[c]) - mx) * inv);
}

template <class D>
__global__ void softmax_bwd_kernel(D* din, const D* dout, const D* out, std::int64_t rows,
                                   int cols) {
  const std::int64_t row = std::int64_t(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;
  const D* g = dout + row * cols;
  const D* y = out + row * cols;
  D* dx = din + row * cols;
  float dot = 0.0f;
  for (int c = lane; c < cols; c += 32) dot += ld(g[c]) * ld(y[c]);
  dot = warp_sum(dot);
  for (int c = lane; c < cols; c += 32) dx[c] = st<D>(ld(y[c]) * (ld(g[c]) - dot));
}

/// in may be of another type Ti (the attention's fp32 scores, bf16 probs out).
template <class T, class Ti>
void softmax_forward_rows(const Cuda& ctx, T* out, const Ti* in, std::int64_t rows, int cols) {
  if (rows <= 0 || cols <= 0) return;
  const unsigned grid = unsigned((rows + kRowsPerBlock - 1) / kRowsPerBlock);
  softmax_fwd_kernel<<<grid, kRowsPerBlock * 32, 0, ctx.stream()>>>(dptr(out), dptr(in), rows,
                                                                      cols);
  REDI_CUDA_LAUNCH_CHECK("softmax_forward");
}

template <class T>
void softmax_backward_rows(const Cuda& ctx, T* din, const T* dout, const T* out,
                           std::int64_t rows, int cols) {
  if (rows <= 0 || cols <= 0 || !din) return;
  const unsigned grid = unsigned((rows + kRowsPerBlock - 1) / kRowsPerBlock);
  softmax_bwd_kernel<<<grid, kRowsPerBlock * 32, 0, ctx.stream()>>>(dptr(din), dptr(dout),
                                                                      dptr(out), rows, cols);
  REDI_CUDA_LAUNCH_CHECK("softmax_backward");
}

}  // namespace cuda_detail

namespace ops {

template <CudaReal T>
void softmax_forward(const Cuda& ctx, T* out, const T* in, int rows, int cols) {
  cuda_detail::softmax_forward_rows(ctx, out, in, rows, cols);
}

template <CudaReal T>
void softmax_backward(const Cuda& ctx, T* din, const T* dout, const T* out, int rows, int cols) {
  cuda_detail::softmax_backward_rows(ctx, din, dout, out, rows, cols);
}

}  // namespace ops
}  // namespace redi
