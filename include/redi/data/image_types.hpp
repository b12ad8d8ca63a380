// redi/data/image_types.hpp — what the image decoders share: the decoded image, the limits checked
// from a file's header before anything proportional to the image is allocated, format detection
// by signature (never by file name), and the channel conversions of PIL's Image.convert that the
// JPEG decoder needs.
//
//   grey (L) from RGB:  L = (19595 R + 38470 G + 7471 B + 2^15) >> 16   (PIL's ITU-R 601-2 luma,
//                        16-bit fixed point; Image.convert("L"))
//   RGB from CMYK:      PIL reads a JPEG's CMYK as Adobe-inverted ("CMYK;I": C = 255 - stored),
//                        then R = clip(nk - C nk / 255) with nk = 255 - K, the division PIL's
//                        MULDIV255 (t = a b + 128; ((t >> 8) + t) >> 8); G, B likewise.
//                        For the stored bytes that is R = s_K - MULDIV255(255 - s_C, s_K).
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "redi/core/error.hpp"

namespace redi::data {

/// A decoded image, HWC uint8.
struct DecodedImage {
  int h = 0, w = 0, c = 0;
  int file_channels = 0;  ///< channels stored in the file before conversion (JPEG: components)
  std::vector<std::uint8_t> pixels;
};

/// Bounds on a decoded image, checked from the file's header before decoding.
struct ImageLimits {
  int max_side = 16384;                             ///< width and height at most this
  std::int64_t max_pixels = std::int64_t(1) << 26;  ///< width * height at most this (64 Mpx)
  /// JPEG: libjpeg's warnings (corrupt entropy-coded data it concealed, extraneous bytes before a
  /// marker, a bad progression, ...) are errors. false tolerates them as PIL does (it prints
  /// them and decodes); a premature end of data (a truncated file) is an error either way.
  bool strict_jpeg = true;
  int max_jpeg_scans = 1000;  ///< JPEG: progressive scans at most this (real files have ~10)
};

/// Width and height (from a header) within `limits`; redi::Error naming `what` otherwise.
inline void check_image_size(int w, int h, const ImageLimits& limits, const std::string& what) {
  REDI_CHECK(w > 0 && h > 0 && w <= limits.max_side && h <= limits.max_side &&
                 std::int64_t(w) * std::int64_t(h) <= limits.max_pixels,
             what, ": image is ", w, "x", h, " pixels; the limits are ", limits.max_side, " per side and ",
             limits.max_pixels, " in all (ImageLimits)");
}

/// Whether `data` starts with the PNG signature.
inline bool is_png(const std::uint8_t* data, std::size_t size) {
  static const std::uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  return size >= 8 && std::equal(sig, sig + 8, data);
}

/// Whether `data` starts as a JPEG does (SOI marker FF D8, then a marker FF xx).
inline bool is_jpeg(const std::uint8_t* data, std::size_t size) {
  return size >= 3 && data[0] == 0xff && data[1] == 0xd8 && data[2] == 0xff;
}

namespace image_convert {

/// PIL's L24: grey from one RGB pixel.
inline std::uint8_t luma(const std::uint8_t* rgb) {
  return std::uint8_t((std::uint32_t(rgb[0]) * 19595u + std::uint32_t(rgb[1]) * 38470u +
                       std::uint32_t(rgb[2]) * 7471u + 0x8000u) >> 16);
}

/// PIL's MULDIV255(a, b): a b / 255, rounded, for a, b in [0, 255].
inline int muldiv255(int a, int b) {
  const int t = a * b + 128;
  return ((t >> 8) + t) >> 8;
}

/// RGB from the CMYK bytes a JPEG stores (Adobe-inverted, as PIL assumes for every CMYK JPEG).
inline void rgb_from_stored_cmyk(const std::uint8_t* s, std::uint8_t* rgb) {
  const int nk = s[3];  // 255 - K with K = 255 - stored
  for (int i = 0; i < 3; ++i) rgb[i] = std::uint8_t(std::clamp(nk - muldiv255(255 - s[i], nk), 0, 255));
}

/// `n` pixels of `in_c` channels (1: grey, 3: RGB) into `out_c` channels (1, 3, or 4 = RGB +
/// opaque alpha): grey -> RGB replicates, RGB -> grey is luma().
inline void convert_pixels(const std::uint8_t* in, int in_c, std::uint8_t* out, int out_c, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i, in += in_c, out += out_c) {
    std::uint8_t rgb[3];
    if (in_c == 1) rgb[0] = rgb[1] = rgb[2] = in[0];
    else rgb[0] = in[0], rgb[1] = in[1], rgb[2] = in[2];
    if (out_c == 1) {
      out[0] = in_c == 1 ? in[0] : luma(rgb);
    } else {
      out[0] = rgb[0], out[1] = rgb[1], out[2] = rgb[2];
      if (out_c == 4) out[3] = 255;
    }
  }
}

}  // namespace image_convert
}  // namespace redi::data
