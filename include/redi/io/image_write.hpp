// redi/io/image_write.hpp — float images to uint8, image grids, and a small PNG encoder.
//
// DEPENDENCY: zlib (Debian zlib1g-dev; CMake ZLIB::ZLIB) for the PNG's deflate stream
// (compress2) and chunk CRCs (crc32). Only this header needs it.
//
// PNG written: 8-bit greyscale (1 channel), RGB (3) or RGBA (4), no interlace, filter type 0
// (None) on every row, one IDAT chunk, then IEND. Any PNG decoder reads it.
// Pixel conversion (the ADM evaluator's): p = uint8(clamp(127.5 x + 128, 0, 255)), truncating,
// as in DiT/SiT's sample_ddp.py (x = -1 -> 0, x = 1 -> 255).
#pragma once
#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "redi/core/error.hpp"
#include "redi/io/atomic_file.hpp"

namespace redi::io {

/// One float in [-1, 1] to a byte: uint8(clamp(127.5 x + 128, 0, 255)) (NaN -> 0).
inline std::uint8_t to_uint8_pixel(float x) {
  const float v = 127.5f * x + 128.0f;
  if (!(v > 0.0f)) return 0;
  if (v >= 255.0f) return 255;
  return std::uint8_t(v);
}

/// Images [n, c, h, w] (NCHW float in [-1, 1]) to uint8 NHWC (what the ADM .npz holds).
inline std::vector<std::uint8_t> to_uint8_nhwc(const float* x, int n, int c, int h, int w) {
  REDI_CHECK(n >= 0 && c > 0 && h > 0 && w > 0, "to_uint8_nhwc: bad shape [", n, ", ", c, ", ", h, ", ", w, "]");
  std::vector<std::uint8_t> out(std::size_t(n) * std::size_t(c) * std::size_t(h) * std::size_t(w));
  const std::size_t plane = std::size_t(h) * std::size_t(w);
  for (std::size_t b = 0; b < std::size_t(n); ++b)
    for (std::size_t k = 0; k < std::size_t(c); ++k)
      for (std::size_t p = 0; p < plane; ++p)
        out[(b * plane + p) * std::size_t(c) + k] = to_uint8_pixel(x[(b * std::size_t(c) + k) * plane + p]);
  return out;
}

/// An 8-bit image, HWC row-major.
struct Image8 {
  int w = 0, h = 0, c = 0;
  std::vector<std::uint8_t> pixels;
};

/// Tiles n images (uint8 NHWC, each h x w x c) into a grid of `cols` columns with `pad` pixels
/// of `pad_value` around and between the tiles.
inline Image8 make_grid(const std::uint8_t* nhwc, int n, int h, int w, int c, int cols, int pad = 2,
                        std::uint8_t pad_value = 255) {
  REDI_CHECK(n > 0 && h > 0 && w > 0 && (c == 1 || c == 3 || c == 4) && cols > 0 && pad >= 0,
             "make_grid: bad arguments (n=", n, ", ", h, "x", w, "x", c, ", cols=", cols, ", pad=", pad, ")");
  cols = std::min(cols, n);
  const int rows = (n + cols - 1) / cols;
  Image8 g;
  g.c = c;
  g.w = cols * w + (cols + 1) * pad;
  g.h = rows * h + (rows + 1) * pad;
  g.pixels.assign(std::size_t(g.w) * std::size_t(g.h) * std::size_t(c), pad_value);
  const std::size_t row_bytes = std::size_t(w) * std::size_t(c);
  for (int i = 0; i < n; ++i) {
    const int gy = pad + (i / cols) * (h + pad), gx = pad + (i % cols) * (w + pad);
    for (int y = 0; y < h; ++y)
      std::copy_n(nhwc + (std::size_t(i) * std::size_t(h) + std::size_t(y)) * row_bytes, row_bytes,
                  g.pixels.data() + ((std::size_t(gy + y) * std::size_t(g.w)) + std::size_t(gx)) * std::size_t(c));
  }
  return g;
}

namespace detail {
inline void put_be32(std::vector<std::uint8_t>& o, std::uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) o.push_back(std::uint8_t(v >> s));
}
inline void put_chunk(std::vector<std::uint8_t>& o, const char type[4], const std::uint8_t* data, std::size_t n) {
  REDI_CHECK(n <= 0x7fffffffu, "PNG: chunk of ", n, " bytes is too large");
  put_be32(o, std::uint32_t(n));
  const std::size_t start = o.size();
  o.insert(o.end(), type, type + 4);
  if (n) o.insert(o.end(), data, data + n);
  const uLong crc = ::crc32(::crc32(0L, Z_NULL, 0), o.data() + start, uInt(n + 4));
  put_be32(o, std::uint32_t(crc));
}
}  // namespace detail

/// PNG file bytes of a w x h image with c = 1, 3 or 4 channels (HWC uint8). `level` is the zlib
/// compression level (0 = stored ... 9 = smallest).
inline std::vector<std::uint8_t> encode_png(const std::uint8_t* hwc, int w, int h, int c, int level = 6) {
  REDI_CHECK(w > 0 && h > 0 && (c == 1 || c == 3 || c == 4), "encode_png: bad image ", w, "x", h, "x", c,
             " (1, 3 or 4 channels)");
  REDI_CHECK(level >= 0 && level <= 9, "encode_png: zlib level ", level, " not in [0, 9]");
  const std::size_t row = std::size_t(w) * std::size_t(c);
  std::vector<std::uint8_t> raw((row + 1) * std::size_t(h));
  for (std::size_t y = 0; y < std::size_t(h); ++y) {
    raw[y * (row + 1)] = 0;  // filter: None
    std::copy_n(hwc + y * row, row, raw.data() + y * (row + 1) + 1);
  }
  REDI_CHECK(raw.size() < (std::size_t(1) << 31), "encode_png: image too large (", raw.size(), " bytes)");
  uLongf zlen = ::compressBound(uLong(raw.size()));
  std::vector<std::uint8_t> z(zlen);
  const int rc = ::compress2(z.data(), &zlen, raw.data(), uLong(raw.size()), level);
  REDI_CHECK(rc == Z_OK, "encode_png: zlib compress2 failed (code ", rc, ")");
  std::vector<std::uint8_t> out = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  std::vector<std::uint8_t> ihdr;
  detail::put_be32(ihdr, std::uint32_t(w));
  detail::put_be32(ihdr, std::uint32_t(h));
  const std::uint8_t color = c == 1 ? 0 : (c == 3 ? 2 : 6);
  ihdr.insert(ihdr.end(), {8, color, 0, 0, 0});  // depth 8, colour type, deflate, filter 0, no interlace
  detail::put_chunk(out, "IHDR", ihdr.data(), ihdr.size());
  detail::put_chunk(out, "IDAT", z.data(), std::size_t(zlen));
  detail::put_chunk(out, "IEND", nullptr, 0);
  return out;
}

/// Writes a PNG atomically (temporary file + rename).
inline void write_png(const std::filesystem::path& path, const std::uint8_t* hwc, int w, int h, int c, int level = 6) {
  const std::vector<std::uint8_t> bytes = encode_png(hwc, w, h, c, level);
  AtomicFile f(path);
  f.put(reinterpret_cast<const std::byte*>(bytes.data()), bytes.size());
  f.commit();
}
inline void write_png(const std::filesystem::path& path, const Image8& im, int level = 6) {
  write_png(path, im.pixels.data(), im.w, im.h, im.c, level);
}

/// Float images [n, c, h, w] in [-1, 1] (c = 1 or 3) as a PNG grid of `cols` columns.
inline void write_image_grid(const std::filesystem::path& path, const float* x, int n, int c, int h, int w, int cols,
                             int pad = 2) {
  REDI_CHECK(c == 1 || c == 3, path.string(), ": an image grid needs 1 or 3 channels, got ", c);
  const std::vector<std::uint8_t> u8 = to_uint8_nhwc(x, n, c, h, w);
  write_png(path, make_grid(u8.data(), n, h, w, c, cols, pad));
}

}  // namespace redi::io
