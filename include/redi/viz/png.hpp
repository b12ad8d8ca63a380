// redi/viz/png.hpp — a Canvas as PNG bytes or a PNG file, through redi's PNG encoder
// (redi/io/image_write.hpp: RGB, written atomically).
//
// DEPENDENCY: zlib (ZLIB::ZLIB), as io/image_write.hpp; the rest of redi/viz needs nothing.
#pragma once
#include <cstdint>
#include <filesystem>
#include <vector>

#include "redi/io/image_write.hpp"
#include "redi/viz/canvas.hpp"

namespace redi::viz {

inline std::vector<std::uint8_t> encode_png(const Canvas& c, int level = 6) {
  return io::encode_png(c.pixels().data(), c.width(), c.height(), 3, level);
}

inline void save_png(const Canvas& c, const std::filesystem::path& path, int level = 6) {
  io::write_png(path, c.pixels().data(), c.width(), c.height(), 3, level);
}

}  // namespace redi::viz
