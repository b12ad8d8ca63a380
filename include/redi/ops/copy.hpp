// redi/ops/copy.hpp — device-local copies (activations, labels, channel blocks) and element
// type conversions.
#pragma once
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "redi/core/device.hpp"
#include "redi/core/dtype.hpp"

namespace redi::ops {

/// dst[0..n) = src[0..n) (non-overlapping), any trivially copyable element type.
template <class T>
  requires std::is_trivially_copyable_v<T>
inline void copy(const Cpu&, T* dst, const T* src, std::int64_t n) {
  if (n > 0 && dst != src) std::memcpy(dst, src, std::size_t(n) * sizeof(T));
}

/// dst[r * dst_stride + c] = src[r * src_stride + c] for r < rows, c < cols (non-overlapping):
/// a block of rows between two row-strided layouts in one call, e.g. one modality's half of
/// every sample's token sequence (Separate fusion) or one head's channels of every sample.
template <class T>
  requires std::is_trivially_copyable_v<T>
inline void copy_strided(const Cpu&, T* dst, std::int64_t dst_stride, const T* src, std::int64_t src_stride,
                         std::int64_t rows, std::int64_t cols) {
  if (rows <= 0 || cols <= 0) return;
  const std::size_t row_bytes = std::size_t(cols) * sizeof(T);
  for (std::int64_t r = 0; r < rows; ++r) std::memcpy(dst + r * dst_stride, src + r * src_stride, row_bytes);
}

/// out[i] = To(in[i]) (through float for the 16-bit storage types; round to nearest even).
template <class To, class From>
inline void convert(const Cpu&, To* out, const From* in, std::int64_t n) {
  constexpr bool via_float = std::is_same_v<To, bf16> || std::is_same_v<To, half> ||
                             std::is_same_v<From, bf16> || std::is_same_v<From, half>;
  for (std::int64_t i = 0; i < n; ++i) {
    if constexpr (via_float) out[i] = To(float(in[i]));
    else out[i] = To(in[i]);
  }
}

}  // namespace redi::ops
