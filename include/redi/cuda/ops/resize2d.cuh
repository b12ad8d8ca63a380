// redi/cuda/ops/resize2d.cuh — nearest 2x upsampling and per-side zero padding of NCHW tensors,
// forward only; mirror redi/ops/upsample.hpp and redi/ops/pad2d.hpp. T = float or bf16 (copies).
#pragma once
#include "redi/cuda/ops/common.cuh"

namespace redi {
namespace cuda_detail {

template <class D>
__global__ void upsample_nearest2x_kernel(D* out, const D* in, std::int64_t planes, int H, int W) {
  const std::int64_t OW = 2 * std::int64_t(W), OP = 4 * std::int64_t(H) * W, n = planes * OP;
  REDI_GRID_STRIDE(i, n) {
    const std::int64_t pc = i / OP, r = i % OP, y = r / OW, x = r % OW;
    out[i] = in[pc * H * W + (y >> 1) * W + (x >> 1)];
  }
}

template <class D>
__global__ void pad2d_kernel(D* out, const D* in, std::int64_t planes, int H, int W, int top, int left, int OH,
                             int OW) {
  const std::int64_t OP = std::int64_t(OH) * OW, n = planes * OP;
  REDI_GRID_STRIDE(i, n) {
    const std::int64_t pc = i / OP, r = i % OP;
    const int y = int(r / OW) - top, x = int(r % OW) - left;
    out[i] = (y >= 0 && y < H && x >= 0 && x < W) ? in[pc * H * W + std::int64_t(y) * W + x] : st<D>(0.0f);
  }
}

}  // namespace cuda_detail

namespace ops {

/// out [B, C, 2H, 2W], out[b, c, y, x] = in[b, c, y/2, x/2].
template <CudaReal T>
void upsample_nearest2x_forward(const Cuda& ctx, T* out, const T* in, int B, int C, int H, int W) {
  using namespace cuda_detail;
  const std::int64_t planes = std::int64_t(B) * C, n = planes * 4 * H * W;
  if (n == 0) return;
  upsample_nearest2x_kernel<<<grid_for(n, kThreads), kThreads, 0, ctx.stream()>>>(dptr(out), dptr(in), planes, H, W);
  REDI_CUDA_LAUNCH_CHECK("upsample_nearest2x_forward");
}

/// out [B, C, H + top + bottom, W + left + right]: in at (top, left), zeros around.
template <CudaReal T>
void pad2d_forward(const Cuda& ctx, T* out, const T* in, int B, int C, int H, int W, int top, int bottom, int left,
                   int right) {
  using namespace cuda_detail;
  const int OH = H + top + bottom, OW = W + left + right;
  const std::int64_t planes = std::int64_t(B) * C, n = planes * OH * OW;
  if (n == 0) return;
  pad2d_kernel<<<grid_for(n, kThreads), kThreads, 0, ctx.stream()>>>(dptr(out), dptr(in), planes, H, W, top, left,
                                                                      OH, OW);
  REDI_CUDA_LAUNCH_CHECK("pad2d_forward");
}

}  // namespace ops
}  // namespace redi
