// Tests for the IDX (Fashion-MNIST) reader: round trips (plain and gzip), corrupt inputs with
// errors naming the file, and the real Fashion-MNIST when installed (dataset-fashion-mnist).
// LINK: needs zlib (tests/CMakeLists.txt: target_link_libraries(test_data_idx PRIVATE ZLIB::ZLIB)).
#include <gtest/gtest.h>


#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "redi/data/idx.hpp"
#include "io_test_util.hpp"

using namespace redi;
using namespace redi::data;
namespace fs = std::filesystem;
using redi::test::expect_error;
using redi::test::TempDir;

namespace {

void write_bytes(const std::string& path, const std::vector<std::uint8_t>& b) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
}
std::vector<std::uint8_t> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

std::vector<std::uint8_t> ramp(std::size_t n) {
  std::vector<std::uint8_t> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = std::uint8_t(i * 7 + 3);
  return v;
}

}  // namespace

TEST(DataIdx, RoundTripPlainAndGzip) {
  TempDir t("redi_test_idx");
  const auto px = ramp(3 * 4 * 5);
  const std::vector<std::uint8_t> lb = {2, 0, 9};
  for (bool gz : {false, true}) {
    const std::string im = t.file(gz ? "im.gz" : "im"), la = t.file(gz ? "lb.gz" : "lb");
    write_idx(im, {3, 4, 5}, px, gz);
    write_idx(la, {3}, lb, gz);
    const auto raw = read_bytes(im);
    if (gz) {
      EXPECT_EQ(raw[0], 0x1f);
      EXPECT_EQ(raw[1], 0x8b);
    } else {
      EXPECT_EQ(raw.size(), 16 + px.size());
      EXPECT_EQ(raw[3], 3);
      EXPECT_EQ(raw[15], 5);  // big-endian cols
    }
    const IdxArray a = read_idx(im, 3);
    EXPECT_EQ(a.dims, (std::vector<std::uint32_t>{3, 4, 5}));
    EXPECT_EQ(a.data, px);
    const ImageDataset ds = read_idx_dataset(im, la);
    EXPECT_EQ(ds.n, 3);
    EXPECT_EQ(ds.h, 4);
    EXPECT_EQ(ds.w, 5);
    EXPECT_EQ(ds.c, 1);
    EXPECT_EQ(ds.pixels, px);
    EXPECT_EQ(ds.labels, (std::vector<int>{2, 0, 9}));
    EXPECT_EQ(ds.num_classes, 10);
    EXPECT_EQ(ds.source, im);
  }
}

TEST(DataIdx, CorruptInputsNameTheFile) {
  TempDir t("redi_test_idx");
  const std::string im = t.file("images-idx3-ubyte"), la = t.file("labels-idx1-ubyte");
  write_idx(im, {2, 3, 3}, ramp(18));
  write_idx(la, {2}, {1, 2});
  ASSERT_NO_THROW(read_idx_dataset(im, la));

  // Bad magic (first two bytes must be zero).
  auto b = read_bytes(im);
  b[1] = 0x42;
  const std::string bad = t.file("bad-magic");
  write_bytes(bad, b);
  expect_error([&] { read_idx(bad); }, {bad, "magic"});
  // Element type other than ubyte.
  b = read_bytes(im);
  b[2] = 0x0d;
  write_bytes(bad, b);
  expect_error([&] { read_idx(bad); }, {bad, "element type"});
  // Labels file given where images are expected (rank 1 vs 3).
  expect_error([&] { read_idx_dataset(la, la); }, {la, "rank"});
  // Truncated data, truncated header, too many bytes.
  b = read_bytes(im);
  b.resize(b.size() - 1);
  const std::string tr = t.file("truncated");
  write_bytes(tr, b);
  expect_error([&] { read_idx(tr); }, {tr, "truncated"});
  b.resize(9);
  write_bytes(tr, b);
  expect_error([&] { read_idx(tr); }, {tr, "header"});
  b = read_bytes(im);
  b.push_back(0);
  write_bytes(tr, b);
  expect_error([&] { read_idx(tr); }, {tr, "trailing"});
  // Truncated gzip stream.
  const std::string gz = t.file("images.gz");
  write_idx(gz, {50, 10, 10}, ramp(5000), true);
  b = read_bytes(gz);
  b.resize(b.size() / 2);
  write_bytes(gz, b);
  expect_error([&] { read_idx(gz); }, {gz, ""});
  // Count mismatch names both files.
  const std::string la3 = t.file("labels3");
  write_idx(la3, {3}, {1, 2, 3});
  expect_error([&] { read_idx_dataset(im, la3); }, {la3, "2 images"});
  expect_error([&] { read_idx_dataset(im, la3); }, {im, "3 labels"});
  // Label out of range.
  const std::string la_bad = t.file("labels-bad");
  write_idx(la_bad, {2}, {1, 10});
  expect_error([&] { read_idx_dataset(im, la_bad); }, {la_bad, "label 10"});
  // Missing file.
  expect_error([&] { read_idx(t.file("nope")); }, {t.file("nope"), "cannot open"});
}

TEST(DataIdx, FashionMnistFinderError) {
  TempDir t("redi_test_idx");
  expect_error([&] { load_fashion_mnist(Split::Train, t.file("")); }, {"dataset-fashion-mnist", "not found"});
}

TEST(DataIdx, RealFashionMnist) {
  const std::string dir = fashion_mnist_dir();
  if (find_idx_file(dir, "train-images-idx3-ubyte").empty()) GTEST_SKIP() << "Fashion-MNIST not installed in " << dir;
  const ImageDataset tr = load_fashion_mnist(Split::Train);
  EXPECT_EQ(tr.n, 60000);
  EXPECT_EQ(tr.h, 28);
  EXPECT_EQ(tr.w, 28);
  EXPECT_EQ(tr.c, 1);
  EXPECT_EQ(tr.class_names.size(), 10u);
  std::vector<int> count(10, 0);
  for (int l : tr.labels) {
    ASSERT_GE(l, 0);
    ASSERT_LT(l, 10);
    count[std::size_t(l)]++;
  }
  for (int c : count) EXPECT_EQ(c, 6000);
  EXPECT_EQ(tr.labels[0], 9);  // the first training item is an ankle boot
  const ImageDataset te = load_fashion_mnist(Split::Test);
  EXPECT_EQ(te.n, 10000);
  const ImageDataset p = pad_to(te, 32);
  EXPECT_EQ(p.h, 32);
  EXPECT_EQ(p.image(0)[0], 0);
}

// Hostile files (issue 15): a header's claim is checked before any data is inflated, and the
// data are inflated only up to the size the header implies.
TEST(DataIdx, HeaderClaimsAreBoundedBeforeInflating) {
  TempDir t("redi_test_idx_hostile");
  // 65536 x 65536 x 1 bytes (4 GiB) claimed by a 16-byte file: refused by the default limit
  // (before: accepted by the header check, then read to the end).
  const std::string claim = t.file("claim");
  write_bytes(claim, {0, 0, 8, 3, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1});
  expect_error([&] { read_idx(claim); }, {claim, "claim more than 2147483648 bytes"});
  expect_error([&] { read_idx(claim, 0, 1000); }, {claim, "claim more than 1000 bytes"});
  // Extents whose product wraps 64 bits (2^32 * 2^32 * ...) are errors, not small arrays.
  const std::string wrap = t.file("wrap");
  write_bytes(wrap, {0, 0, 8, 3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 2, 1, 2});
  expect_error([&] { read_idx(wrap); }, {wrap, "claim more than"});
  // A gzip bomb: 16 MB of zeros behind a header claiming 10 bytes. Refused after inflating
  // 11 bytes (before: the whole stream was inflated first).
  const std::string bomb = t.file("bomb.gz");
  std::vector<std::uint8_t> big(std::size_t(16) << 20, 0);
  write_idx(bomb, {10}, big, true);
  const auto packed = fs::file_size(bomb);
  EXPECT_LT(packed, 100000u);
  expect_error([&] { read_idx(bomb); }, {bomb, "trailing bytes"});
  // The data are exactly the header's product when it is honest.
  write_idx(bomb, {2, 3}, {1, 2, 3, 4, 5, 6}, true);
  EXPECT_EQ(read_idx(bomb).data, (std::vector<std::uint8_t>{1, 2, 3, 4, 5, 6}));
}

// Fuzz findings (tests/data/fuzz/idx-*): each is a redi::Error naming the file, or a clean read.
TEST(DataIdx, FuzzRegressionsReplay) {
  for (const auto& p : test::fuzz_regression_files("idx-")) {
    try {
      const IdxArray a = read_idx(p.string());
      std::uint64_t n = 1;
      for (auto d : a.dims) n *= d;
      EXPECT_EQ(n, a.data.size()) << p;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(p.string()), std::string::npos) << e.what();
    }
  }
}
