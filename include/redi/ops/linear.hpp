// redi/ops/linear.hpp — fully connected layer in PyTorch layout (W is [out_f, in_f]),
// forward and backward, on top of gemm. The float forward uses the AVX-512 kernel of
// ops/linear_avx512.hpp where the build targets AVX-512 and the shape suits it.
#pragma once
#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "redi/core/parallel.hpp"
#include "redi/ops/gemm.hpp"
#include "redi/ops/linear_avx512.hpp"

namespace redi::ops {

/// out[rows,out_f] = in[rows,in_f] * W^T + b ; b may be null.
template <CpuReal T>
inline void linear_forward(const Cpu& dev, T* out, const T* in, const T* W, const T* b, int rows,
                           int in_f, int out_f) {
  if constexpr (std::is_same_v<T, float>) {
    if (linear_avx512_applies(rows, in_f, out_f)) {
      linear_forward_avx512(out, in, W, b, rows, in_f, out_f);
      return;
    }
  }
  gemm<T>(dev, false, true, rows, out_f, in_f, T(1), in, in_f, W, in_f, T(0), out, out_f);
  if (b) {
    [[maybe_unused]] const std::int64_t n = std::int64_t(rows) * out_f;
#pragma omp parallel for schedule(static) if (n > kOmpMinWork)
    for (int r = 0; r < rows; ++r) {
      T* o = out + std::int64_t(r) * out_f;
#pragma omp simd
      for (int j = 0; j < out_f; ++j) o[j] += b[j];
    }
  }
}

/// din = dout * W (overwritten) ; dW += dout^T * in ; db += column sums of dout.
/// Any of din, dW, db may be null (skipped).
template <CpuReal T>
inline void linear_backward(const Cpu& dev, T* din, T* dW, T* db, const T* dout, const T* in,
                            const T* W, int rows, int in_f, int out_f) {
  if (din)
    gemm<T>(dev, false, false, rows, in_f, out_f, T(1), dout, out_f, W, in_f, T(0), din, in_f);
  if (dW)
    gemm<T>(dev, true, false, out_f, in_f, rows, T(1), dout, out_f, in, in_f, T(1), dW, in_f);
  if (db) {
    // Column sums: each thread owns a block of columns and walks all rows (row-contiguous loads).
    constexpr int kBlock = 64;
    const int nblocks = (out_f + kBlock - 1) / kBlock;
    [[maybe_unused]] const std::int64_t n = std::int64_t(rows) * out_f;
#pragma omp parallel for schedule(static) if (n > kOmpMinWork && nblocks > 1)
    for (int blk = 0; blk < nblocks; ++blk) {
      const int c0 = blk * kBlock, c1 = std::min(out_f, c0 + kBlock), w = c1 - c0;
      T acc[kBlock] = {};
      for (int r = 0; r < rows; ++r) {
        const T* d = dout + std::int64_t(r) * out_f + c0;
#pragma omp simd
        for (int j = 0; j < w; ++j) acc[j] += d[j];
      }
      for (int j = 0; j < w; ++j) db[c0 + j] += acc[j];
    }
  }
}

}  // namespace redi::ops
