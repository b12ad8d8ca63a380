// NpzWriter::add_generated (redi/io/npz.hpp): an array streamed from a fill function is written
// byte for byte as the same array from memory (plain and zip64 records, an empty array, a fill
// that must be called in order over the whole array), and reads back through NpzFile.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "io_test_util.hpp"
#include "redi/io/npz.hpp"

using namespace redi;
using namespace redi::test;

namespace {

std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

TEST(NpzGenerated, SameBytesAsFromMemory) {
  TempDir d("redi_npz_generated");
  std::vector<std::uint8_t> pix(5 * 7 * 3 * 11);
  for (std::size_t i = 0; i < pix.size(); ++i) pix[i] = std::uint8_t(i * 37 + 5);
  const std::vector<std::int64_t> lab{4, 3, 2, 1, 0};
  for (bool z64 : {false, true}) {
    io::NpzWriter a, b;
    a.force_zip64(z64);
    b.force_zip64(z64);
    a.add("arr_0", {5, 7, 3, 11}, pix.data());
    a.add("arr_1", {5}, lab.data());
    std::uint64_t next = 0;
    int calls = 0;
    b.add_generated<std::uint8_t>("arr_0", {5, 7, 3, 11}, [&](std::uint64_t first, std::size_t n, std::byte* dst) {
      ++calls;
      if (first == 0) next = 0;  // the second pass starts again
      EXPECT_EQ(first, next) << "fill called out of order";
      std::memcpy(dst, pix.data() + first, n);
      next = first + n;
    });
    b.add("arr_1", {5}, lab.data());
    a.write(d / "a.npz");
    b.write(d / "b.npz");
    EXPECT_EQ(calls, 2) << "one pass for the CRC, one to write";
    EXPECT_EQ(slurp(d / "a.npz"), slurp(d / "b.npz")) << "zip64 " << z64;
    const auto f = io::NpzFile::open(d / "b.npz");
    EXPECT_EQ(f.read<std::uint8_t>("arr_0"), pix);
    EXPECT_EQ(f.read<std::int64_t>("arr_1"), lab);
  }
  io::NpzWriter e;
  e.add_generated<float>("empty", {0, 3}, [](std::uint64_t, std::size_t, std::byte*) { FAIL() << "no data to fill"; });
  e.write(d / "e.npz");
  EXPECT_EQ(io::NpzFile::open(d / "e.npz").info("empty").shape, (std::vector<std::int64_t>{0, 3}));
  io::NpzWriter bad;
  EXPECT_THROW(bad.add_generated<float>("x", {1}, io::NpzWriter::Fill{}), Error);
}

}  // namespace
