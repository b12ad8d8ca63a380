// redi/core/checked.hpp — overflow-checked arithmetic on sizes and offsets, the one helper every
// file reader uses before it trusts a number from a file (docs/security.md).
//
//   std::uint64_t end;
//   if (!checked::add(off, len, end) || end > size) fail(...);        // no wrap-around
//   std::int64_t n = checked::numel(shape, limits::kMaxElements,     // throws redi::Error
//                                   file, ": tensor 'w'");           //   naming file + field
//
// add/mul return false on overflow (the result is then unspecified); the *_or_fail forms throw a
// redi::Error whose message is the caller's parts followed by what overflowed. Built on the
// compiler's __builtin_*_overflow (g++, clang, nvcc's host pass), so they cost one flag test.
#pragma once
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <type_traits>

#include "redi/core/error.hpp"

namespace redi::checked {

/// a + b into out; false when the exact result does not fit T.
template <class T>
  requires std::is_integral_v<T>
[[nodiscard]] constexpr bool add(T a, T b, T& out) {
  return !__builtin_add_overflow(a, b, &out);
}
/// a * b into out; false when the exact result does not fit T.
template <class T>
  requires std::is_integral_v<T>
[[nodiscard]] constexpr bool mul(T a, T b, T& out) {
  return !__builtin_mul_overflow(a, b, &out);
}

/// a + b, or a redi::Error "<what...>: <a> + <b> overflows".
template <class T, class... What>
  requires std::is_integral_v<T>
T add_or_fail(T a, T b, What&&... what) {
  T r{};
  if (!add(a, b, r)) REDI_FAIL(std::forward<What>(what)..., ": ", a, " + ", b, " overflows");
  return r;
}
/// a * b, or a redi::Error "<what...>: <a> * <b> overflows".
template <class T, class... What>
  requires std::is_integral_v<T>
T mul_or_fail(T a, T b, What&&... what) {
  T r{};
  if (!mul(a, b, r)) REDI_FAIL(std::forward<What>(what)..., ": ", a, " * ", b, " overflows");
  return r;
}

/// The element count of `shape`: every extent must be >= 0 and the product <= max_elements
/// (a shape with a zero extent has 0 elements whatever the others are, but each extent is
/// still checked against max_elements). Otherwise a redi::Error naming `what...`.
template <class... What>
std::int64_t numel(std::span<const std::int64_t> shape, std::int64_t max_elements, What&&... what) {
  std::int64_t n = 1;
  bool zero = false;
  for (std::int64_t d : shape) {
    if (d < 0) REDI_FAIL(what..., ": negative extent ", d);
    if (d > max_elements)
      REDI_FAIL(what..., ": extent ", d, " exceeds the limit of ", max_elements, " elements");
    if (d == 0) zero = true;
  }
  if (zero) return 0;
  for (std::int64_t d : shape)
    if (!mul(n, d, n) || n > max_elements)
      REDI_FAIL(what..., ": shape holds more than ", max_elements, " elements (the limit)");
  return n;
}

/// Whether [offset, offset + len) lies inside [0, size) — computed without wrap-around.
constexpr bool in_range(std::uint64_t offset, std::uint64_t len, std::uint64_t size) {
  return offset <= size && len <= size - offset;
}

}  // namespace redi::checked
