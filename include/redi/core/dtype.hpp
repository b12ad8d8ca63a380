// redi/core/dtype.hpp — element types: float/double compute types on the CPU, and the 16-bit
// storage types bf16 and half (bit-exact, round-to-nearest-even conversions) used on the GPU
// and in safetensors files.
#pragma once
#include <cstdint>
#include <cstring>
#include <string_view>
#include <type_traits>

#include "redi/core/macros.hpp"

namespace redi {

/// bfloat16 storage: the top 16 bits of an IEEE float.
struct bf16 {
  std::uint16_t bits = 0;
  bf16() = default;
  REDI_HD explicit bf16(float f) : bits(from_float(f)) {}
  REDI_HD explicit operator float() const { return to_float(bits); }
  REDI_HD static std::uint16_t from_float(float f) {
    std::uint32_t u;
    std::memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return std::uint16_t((u >> 16) | 0x40u);  // quiet NaN
    std::uint32_t rounding = 0x7fffu + ((u >> 16) & 1u);                             // RNE
    return std::uint16_t((u + rounding) >> 16);
  }
  REDI_HD static float to_float(std::uint16_t b) {
    std::uint32_t u = std::uint32_t(b) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }
};

/// IEEE binary16 storage.
struct half {
  std::uint16_t bits = 0;
  half() = default;
  REDI_HD explicit half(float f) : bits(from_float(f)) {}
  REDI_HD explicit operator float() const { return to_float(bits); }
  REDI_HD static std::uint16_t from_float(float f) {
    std::uint32_t x;
    std::memcpy(&x, &f, 4);
    std::uint32_t sign = (x >> 16) & 0x8000u;
    std::uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) return std::uint16_t(sign | 0x7e00u);          // NaN
    if (ax >= 0x477ff000u) return std::uint16_t(sign | 0x7c00u);         // overflow -> inf
    if (ax < 0x38800000u) {                                              // subnormal / zero
      if (ax < 0x33000000u) return std::uint16_t(sign);                  // < 2^-25 -> 0
      std::uint32_t e = ax >> 23;
      std::uint32_t m = (ax & 0x7fffffu) | 0x800000u;
      std::uint32_t shift = 126u - e;                                    // 14..24
      std::uint32_t r = m >> shift;
      std::uint32_t rem = m & ((1u << shift) - 1u);
      std::uint32_t halfway = 1u << (shift - 1u);
      if (rem > halfway || (rem == halfway && (r & 1u))) ++r;
      return std::uint16_t(sign | r);
    }
    std::uint32_t r = ((ax - 0x38000000u) >> 13);
    std::uint32_t rem = ax & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (r & 1u))) ++r;
    return std::uint16_t(sign | r);
  }
  REDI_HD static float to_float(std::uint16_t h) {
    std::uint32_t sign = std::uint32_t(h & 0x8000u) << 16;
    std::uint32_t e = (h >> 10) & 0x1fu;
    std::uint32_t m = h & 0x3ffu;
    std::uint32_t u;
    if (e == 0) {
      if (m == 0) {
        u = sign;
      } else {  // subnormal: normalise
        int shift = 0;
        while (!(m & 0x400u)) { m <<= 1; ++shift; }
        m &= 0x3ffu;
        u = sign | (std::uint32_t(113 - shift) << 23) | (m << 13);
      }
    } else if (e == 31) {
      u = sign | 0x7f800000u | (m << 13);
    } else {
      u = sign | ((e + 112u) << 23) | (m << 13);
    }
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }
};

/// Run-time element type tag (file formats, dispatch).
enum class DType : std::uint8_t { F32, F64, F16, BF16, I32, I64, U8 };

constexpr std::string_view dtype_name(DType d) {
  switch (d) {
    case DType::F32: return "F32";
    case DType::F64: return "F64";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
    case DType::I32: return "I32";
    case DType::I64: return "I64";
    case DType::U8: return "U8";
  }
  return "?";
}

constexpr std::size_t dtype_size(DType d) {
  switch (d) {
    case DType::F64: case DType::I64: return 8;
    case DType::F32: case DType::I32: return 4;
    case DType::F16: case DType::BF16: return 2;
    case DType::U8: return 1;
  }
  return 0;
}

template <class T> struct dtype_of;
template <> struct dtype_of<float> { static constexpr DType value = DType::F32; };
template <> struct dtype_of<double> { static constexpr DType value = DType::F64; };
template <> struct dtype_of<half> { static constexpr DType value = DType::F16; };
template <> struct dtype_of<bf16> { static constexpr DType value = DType::BF16; };
template <> struct dtype_of<std::int32_t> { static constexpr DType value = DType::I32; };
template <> struct dtype_of<std::int64_t> { static constexpr DType value = DType::I64; };
template <> struct dtype_of<std::uint8_t> { static constexpr DType value = DType::U8; };

/// Types the CPU computes in.
template <class T>
concept CpuReal = std::same_as<T, float> || std::same_as<T, double>;

/// Types a tensor may store.
template <class T>
concept Storable = requires { dtype_of<T>::value; };

}  // namespace redi
