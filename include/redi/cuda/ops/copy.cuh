// redi/cuda/ops/copy.cuh — device-local copies, stream-ordered: contiguous (copy) and a block of
// rows between two row-strided layouts (copy_strided, one cudaMemcpy2DAsync). Mirrors
// redi/ops/copy.hpp; the element-type conversion is in elementwise.cuh.
#pragma once
#include <cstdint>
#include <type_traits>

#include "redi/cuda/ops/common.cuh"

namespace redi::ops {

/// dst[0..n) = src[0..n) (device to device).
template <class T>
  requires std::is_trivially_copyable_v<T>
void copy(const Cuda& ctx, T* dst, const T* src, std::int64_t n) {
  if (n > 0 && dst != src)
    ctx.copy_async(dst, src, std::size_t(n) * sizeof(T), cudaMemcpyDeviceToDevice);
}

/// dst[r * dst_stride + c] = src[r * src_stride + c] for r < rows, c < cols (device to device,
/// non-overlapping).
template <class T>
  requires std::is_trivially_copyable_v<T>
void copy_strided(const Cuda& ctx, T* dst, std::int64_t dst_stride, const T* src, std::int64_t src_stride,
                  std::int64_t rows, std::int64_t cols) {
  if (rows <= 0 || cols <= 0) return;
  REDI_CUDA_CHECK(cudaMemcpy2DAsync(dst, std::size_t(dst_stride) * sizeof(T), src,
                                    std::size_t(src_stride) * sizeof(T), std::size_t(cols) * sizeof(T),
                                    std::size_t(rows), cudaMemcpyDeviceToDevice, ctx.stream()));
}

}  // namespace redi::ops
