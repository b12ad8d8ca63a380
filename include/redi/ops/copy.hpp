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
