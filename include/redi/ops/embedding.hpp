// redi/ops/embedding.hpp — table lookup (class labels) and its scatter-add backward.
#pragma once
#include <cstdint>
#include <cstring>

#include "redi/core/device.hpp"
#include "redi/core/dtype.hpp"

namespace redi::ops {

/// out[n, :] = table[idx[n], :].
template <CpuReal T>
inline void embedding_forward(const Cpu&, T* out, const T* table, const int* idx, int N, int D) {
  for (int n = 0; n < N; ++n)
    std::memcpy(out + std::int64_t(n) * D, table + std::int64_t(idx[n]) * D, sizeof(T) * D);
}

/// dtable[idx[n], :] += dout[n, :] (accumulated; repeated indices add up). Serial over n, so
/// repeated indices never race.
template <CpuReal T>
inline void embedding_backward(const Cpu&, T* dtable, const T* dout, const int* idx, int N, int D) {
  if (!dtable) return;
  for (int n = 0; n < N; ++n) {
    T* dst = dtable + std::int64_t(idx[n]) * D;
    const T* src = dout + std::int64_t(n) * D;
#pragma omp simd
    for (int d = 0; d < D; ++d) dst[d] += src[d];
  }
}

}  // namespace redi::ops
