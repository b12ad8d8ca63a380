// A build without libjpeg (redi's CMake did not find it, so REDI_HAVE_JPEG is unset): image_io.hpp
// still compiles, PNG still decodes, and a JPEG is refused with an error that names the file and
// the Debian package to install. This program compiles the headers that way on purpose, whatever
// the configuration found (its own executable: no other translation unit sees the other variant).
#undef REDI_HAVE_JPEG
#include <gtest/gtest.h>

#include <vector>

#include "io_test_util.hpp"
#include "redi/data/image_io.hpp"
#include "redi/io/image_write.hpp"

using namespace redi;
using namespace redi::data;

TEST(DataJpegMissing, JpegRefusedNamingThePackage) {
  static_assert(!kHaveJpeg);
  const auto b = read_file_bytes(test::test_data_path("jpeg/baseline420.jpg").string());
  test::expect_error([&] { decode_image(b.data(), b.size(), 3, "n01440764_10026.JPEG"); },
                     {"n01440764_10026.JPEG", "no JPEG decoder", "libjpeg-dev"});
  std::vector<std::uint8_t> px(6 * 5 * 3, 9);
  const auto png = io::encode_png(px.data(), 5, 6, 3);
  EXPECT_EQ(decode_image(png.data(), png.size(), 3, "x.png").pixels, px);
}
