// redi/ops/copy.hpp — device-local copies (activations, labels, channel blocks).
#pragma once
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "redi/core/device.hpp"

namespace redi::ops {

/// dst[0..n) = src[0..n) (non-overlapping), any trivially copyable element type.
template <class T>
  requires std::is_trivially_copyable_v<T>
inline void copy(const Cpu&, T* dst, const T* src, std::int64_t n) {
  if (n > 0 && dst != src) std::memcpy(dst, src, std::size_t(n) * sizeof(T));
}

}  // namespace redi::ops
