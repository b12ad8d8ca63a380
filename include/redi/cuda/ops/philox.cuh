// redi/cuda/ops/philox.cuh — Philox normal/uniform fills on the GPU, bit-identical to
// redi::philox::fill_normal / redi::philox::uniform on the CPU. Each thread evaluates the very
// same REDI_HD functions of redi/core/philox.hpp, whose device path uses only correctly
// rounded double intrinsics (__dmul_rn, __dadd_rn, __dsub_rn, __ddiv_rn, __dsqrt_rn) — nvcc
// never contracts those into FMA, so --fmad needs no special setting. The conversion to T is
// the CPU's: double -> float (RNE), then float -> bf16 (RNE) for bf16.
#pragma once
#include "redi/core/philox.hpp"
#include "redi/cuda/ops/common.cuh"

namespace redi {
namespace cuda_detail {

template <class T> __device__ __forceinline__ T from_double(double v);
template <> __device__ __forceinline__ float from_double<float>(double v) { return float(v); }
template <> __device__ __forceinline__ bf16 from_double<bf16>(double v) {
  return bf16(float(v));  // the CPU's T(v): double -> float -> bf16
}

/// Thread t handles Philox block first_blk + t (4 normals) and writes its part of [0, n).
template <class T>
__global__ void fill_normal_kernel(T* out, std::uint64_t n, std::uint64_t seed,
                                   std::uint64_t stream, std::uint64_t offset,
                                   std::uint64_t nblocks) {
  const std::uint64_t first_blk = offset / 4;
  for (std::uint64_t t = std::uint64_t(blockIdx.x) * blockDim.x + threadIdx.x; t < nblocks;
       t += std::uint64_t(blockDim.x) * gridDim.x) {
    const std::uint64_t blk = first_blk + t;
    double v[4];
    philox::normal4(seed, stream, blk, v);
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const std::uint64_t idx = blk * 4 + std::uint64_t(j);
      if (idx < offset) continue;
      const std::uint64_t k = idx - offset;
      if (k < n) out[k] = from_double<T>(v[j]);
    }
  }
}

template <class T>
__global__ void fill_uniform_kernel(T* out, std::uint64_t n, std::uint64_t seed,
                                    std::uint64_t stream, std::uint64_t offset) {
  for (std::uint64_t k = std::uint64_t(blockIdx.x) * blockDim.x + threadIdx.x; k < n;
       k += std::uint64_t(blockDim.x) * gridDim.x)
    out[k] = from_double<T>(philox::uniform(seed, stream, offset + k));
}

}  // namespace cuda_detail

namespace ops {

/// out[k] = T(philox::normal(seed, stream, offset + k)), k < n — bit-identical to
/// redi::philox::fill_normal(out, n, seed, stream, offset).
template <CudaReal T>
void fill_normal(const Cuda& ctx, T* out, std::size_t n, std::uint64_t seed,
                 std::uint64_t stream, std::uint64_t offset = 0) {
  if (n == 0) return;
  const std::uint64_t first_blk = offset / 4;
  const std::uint64_t last_blk = (offset + n - 1) / 4;
  const std::uint64_t nblocks = last_blk - first_blk + 1;
  constexpr int threads = 128;  // double-heavy, register-hungry
  cuda_detail::fill_normal_kernel<T><<<cuda_detail::grid_for(std::int64_t(nblocks), threads),
                                       threads, 0, ctx.stream()>>>(out, n, seed, stream, offset,
                                                                   nblocks);
  REDI_CUDA_LAUNCH_CHECK("fill_normal");
}

/// out[k] = T(philox::uniform(seed, stream, offset + k)) in [0, 1), k < n.
template <CudaReal T>
void fill_uniform(const Cuda& ctx, T* out, std::size_t n, std::uint64_t seed,
                  std::uint64_t stream, std::uint64_t offset = 0) {
  if (n == 0) return;
  constexpr int threads = 256;
  cuda_detail::fill_uniform_kernel<T><<<cuda_detail::grid_for(std::int64_t(n), threads), threads,
                                        0, ctx.stream()>>>(out, n, seed, stream, offset);
  REDI_CUDA_LAUNCH_CHECK("fill_uniform");
}

}  // namespace ops

namespace philox {
/// GPU overload of redi::philox::fill_normal (same numbers, bit for bit).
template <CudaReal T>
void fill_normal(const Cuda& ctx, T* out, std::size_t n, std::uint64_t seed,
                 std::uint64_t stream, std::uint64_t offset = 0) {
  ops::fill_normal(ctx, out, n, seed, stream, offset);
}
}  // namespace philox

}  // namespace redi
