// JPEG decoding (redi/data/jpeg.hpp, libjpeg-turbo): pixel parity with PIL on committed fixtures
// (tests/data/jpeg/, made by make_jpeg_fixtures.py there), format detection by signature,
// ImageNet-named files in an image folder, and hostile files (truncated, corrupt markers, SOF
// dimensions, scan limit, non-JPEG with a .jpg name, empty): each a redi::Error naming the file.
// Without libjpeg (REDI_HAVE_JPEG unset) only the refusal is checked.
// LINK: stb (PNG side of image_io.hpp), libjpeg through redi::redi.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "io_test_util.hpp"
#include "redi/data/image_io.hpp"
#include "redi/io/image_write.hpp"
#include "redi/io/npz.hpp"

using namespace redi;
using namespace redi::data;
namespace fs = std::filesystem;
using redi::test::expect_error;
using redi::test::TempDir;

namespace {

std::string fixture(const std::string& name) { return test::test_data_path("jpeg/" + name).string(); }

std::vector<std::uint8_t> bytes_of(const std::string& path) { return read_file_bytes(path); }

void write_bytes(const fs::path& p, const std::vector<std::uint8_t>& b) {
  fs::create_directories(p.parent_path());
  std::ofstream f(p, std::ios::binary);
  f.write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
}

/// Offset of the first marker FF <code> at or after `from`; npos if none.
std::size_t find_marker(const std::vector<std::uint8_t>& b, std::uint8_t code, std::size_t from = 2) {
  for (std::size_t i = from; i + 1 < b.size(); ++i)
    if (b[i] == 0xff && b[i + 1] == code) return i;
  return std::string::npos;
}

/// Offset of the frame header (SOF0 baseline or SOF2 progressive).
std::size_t find_sof(const std::vector<std::uint8_t>& b) {
  const std::size_t s0 = find_marker(b, 0xc0), s2 = find_marker(b, 0xc2);
  return std::min(s0, s2);
}

/// The SOF header with height/width replaced (big-endian 16-bit at +5 and +7).
std::vector<std::uint8_t> with_size(std::vector<std::uint8_t> b, int h, int w) {
  const std::size_t s = find_sof(b);
  EXPECT_NE(s, std::string::npos);
  b[s + 5] = std::uint8_t(h >> 8), b[s + 6] = std::uint8_t(h & 0xff);
  b[s + 7] = std::uint8_t(w >> 8), b[s + 8] = std::uint8_t(w & 0xff);
  return b;
}

}  // namespace

#if defined(REDI_HAVE_JPEG) && REDI_HAVE_JPEG

// Every fixture decodes to exactly PIL's Image.open(f).convert("RGB") (same libjpeg-turbo, same
// ISLOW IDCT and fancy upsampling): baseline 4:2:0 / 4:2:2 / 4:4:4, progressive, odd sizes,
// grey (replicated), Adobe CMYK (PIL's inversion and formula), and an EXIF orientation of 6 that
// is ignored. "<name>_L" references check channels = 1 (PIL's convert("L")).
TEST(DataJpeg, PixelParityWithPil) {
  const auto refs = io::NpzFile::open(fixture("refs.npz"));
  int files = 0, exact = 0;
  for (const std::string& key : refs.names()) {
    const bool grey = key.ends_with("_L");
    const std::string file = fixture((grey ? key.substr(0, key.size() - 2) : key) + ".jpg");
    const auto& shape = refs.info(key).shape;
    const std::vector<std::uint8_t> want = refs.read<std::uint8_t>(key);
    const DecodedImage im = decode_image_file(file, grey ? 1 : 3);
    ASSERT_EQ(im.h, shape[0]) << key;
    ASSERT_EQ(im.w, shape[1]) << key;
    ASSERT_EQ(im.c, grey ? 1 : 3) << key;
    ASSERT_EQ(im.pixels.size(), want.size()) << key;
    int max_diff = 0;
    for (std::size_t i = 0; i < want.size(); ++i)
      max_diff = std::max(max_diff, std::abs(int(im.pixels[i]) - int(want[i])));
    EXPECT_EQ(max_diff, 0) << key << ": largest difference to PIL";
    exact += max_diff == 0;
    ++files;
  }
  EXPECT_EQ(files, 11);  // 9 files, 2 of them also as L
  EXPECT_EQ(exact, files);
  // Components stored in the file; channels = 4 is the RGB plus opaque alpha.
  EXPECT_EQ(decode_image_file(fixture("grey.jpg")).file_channels, 1);
  EXPECT_EQ(decode_image_file(fixture("cmyk_adobe.jpg")).file_channels, 4);
  EXPECT_EQ(decode_image_file(fixture("progressive420.jpg")).file_channels, 3);
  const auto rgb = refs.read<std::uint8_t>("odd37x23_progressive");
  const DecodedImage rgba = decode_image_file(fixture("odd37x23_progressive.jpg"), 4);
  ASSERT_EQ(rgba.pixels.size(), rgb.size() / 3 * 4);
  for (std::size_t i = 0; i < rgb.size() / 3; ++i) {
    for (int k = 0; k < 3; ++k) ASSERT_EQ(rgba.pixels[4 * i + std::size_t(k)], rgb[3 * i + std::size_t(k)]) << i;
    ASSERT_EQ(rgba.pixels[4 * i + 3], 255) << i;
  }
  // EXIF orientation 6 would display the 37x23 image as 23x37: the stored grid is returned.
  const DecodedImage ex = decode_image_file(fixture("exif_orientation6.jpg"));
  EXPECT_EQ(ex.h, 23);
  EXPECT_EQ(ex.w, 37);
}

// The signature decides: a JPEG named .png and a PNG named .JPEG both decode.
TEST(DataJpeg, FormatBySignatureNotName) {
  TempDir t("redi_test_jpeg_sig");
  const auto jpg = bytes_of(fixture("baseline444.jpg"));
  write_bytes(t / "actually_jpeg.png", jpg);
  const auto ref = decode_image_file(fixture("baseline444.jpg"));
  EXPECT_EQ(decode_image_file((t / "actually_jpeg.png").string()).pixels, ref.pixels);
  std::vector<std::uint8_t> px(5 * 4 * 3);
  for (std::size_t i = 0; i < px.size(); ++i) px[i] = std::uint8_t(i * 7);
  io::write_png(t / "actually_png.JPEG", px.data(), 4, 5, 3);
  EXPECT_EQ(decode_image_file((t / "actually_png.JPEG").string()).pixels, px);
}

// ImageNet names (n01440764/n01440764_10026.JPEG) mixed with PNGs in one folder.
TEST(DataJpeg, ImageNetFolderWithJpegAndPng) {
  TempDir t("redi_test_jpeg_folder");
  const std::vector<std::string> jpegs = {"baseline420.jpg", "progressive420.jpg", "grey.jpg", "cmyk_adobe.jpg"};
  write_bytes(t / "n01440764" / "n01440764_10026.JPEG", bytes_of(fixture(jpegs[0])));
  write_bytes(t / "n01440764" / "n01440764_10027.JPEG", bytes_of(fixture(jpegs[1])));
  write_bytes(t / "n01443537" / "n01443537_2.JPEG", bytes_of(fixture(jpegs[2])));
  write_bytes(t / "n01443537" / "n01443537_3.jpeg", bytes_of(fixture(jpegs[3])));
  std::vector<std::uint8_t> px(20 * 30 * 3, 77);
  io::write_png(t / "n01443537" / "n01443537_9.png", px.data(), 30, 20, 3);
  const ImageDataset ds = load_image_folder(t.str(), {.channels = 3, .image_size = 16});
  ASSERT_EQ(ds.n, 5);
  EXPECT_EQ(ds.class_names, (std::vector<std::string>{"n01440764", "n01443537"}));
  EXPECT_EQ(ds.labels, (std::vector<int>{0, 0, 1, 1, 1}));
  // Each crop is the ADM center crop of the decoded (PIL-equal) image.
  const std::vector<std::string> order = {jpegs[0], jpegs[1], jpegs[2], jpegs[3]};
  for (std::size_t k = 0; k < order.size(); ++k) {
    const DecodedImage im = decode_image_file(fixture(order[k]));
    const auto crop = center_crop_adm(im.pixels.data(), im.h, im.w, 3, 16);
    EXPECT_TRUE(std::equal(crop.begin(), crop.end(), ds.image(int(k)))) << order[k];
  }
}

// Hostile files: each a redi::Error naming the file, raised before anything proportional to the
// claimed size is allocated.
TEST(DataJpeg, HostileFilesAreErrorsNamingTheFile) {
  TempDir t("redi_test_jpeg_hostile");
  const auto base = bytes_of(fixture("baseline420.jpg"));
  const auto prog = bytes_of(fixture("progressive420.jpg"));
  auto expect_file_error = [&](const std::string& name, const std::vector<std::uint8_t>& b,
                               std::initializer_list<std::string> parts, const ImageLimits& lim = {}) {
    const std::string p = (t / name).string();
    write_bytes(p, b);
    std::vector<std::string> all(parts);
    expect_error([&] { decode_image_file(p, 3, lim); }, {p});
    for (const auto& part : all) expect_error([&] { decode_image_file(p, 3, lim); }, {part});
  };
  // Truncated (baseline, progressive): premature end is an error even when not strict.
  const std::vector<std::uint8_t> cut(base.begin(), base.begin() + std::ptrdiff_t(base.size() * 6 / 10));
  expect_file_error("trunc.jpg", cut, {"Premature end of JPEG file"});
  expect_file_error("trunc_lenient.jpg", cut, {"Premature end of JPEG file"}, {.strict_jpeg = false});
  const std::vector<std::uint8_t> pcut(prog.begin(), prog.begin() + std::ptrdiff_t(prog.size() / 2));
  expect_file_error("trunc_prog.jpg", pcut, {"Premature end of JPEG file"}, {.strict_jpeg = false});
  // Cut inside the headers: libjpeg's error, not a crash.
  expect_file_error("cut_header.jpg", std::vector<std::uint8_t>(base.begin(), base.begin() + 40), {"bad JPEG header"});
  expect_file_error("soi_only.jpg", {0xff, 0xd8, 0xff}, {"bad JPEG header"});
  // Corrupt markers: the SOF marker replaced by an undefined one; the DHT length cut to 2.
  {
    auto b = base;
    b[find_sof(b) + 1] = 0x01;  // FF 01 (TEM), then no frame header
    expect_file_error("bad_marker.jpg", b, {"cannot decode JPEG"});
    auto c = base;
    const std::size_t dht = find_marker(c, 0xc4);
    ASSERT_NE(dht, std::string::npos);
    c[dht + 2] = 0, c[dht + 3] = 2;
    expect_file_error("bad_dht.jpg", c, {"cannot decode JPEG"});
  }
  // Garbage before the SOS marker: libjpeg warns ("3 extraneous bytes before marker 0xda");
  // strict (default) refuses it, lenient decodes the same pixels as the clean file (as PIL does).
  {
    auto b = base;
    const std::size_t sos = find_marker(b, 0xda);
    ASSERT_NE(sos, std::string::npos);
    b.insert(b.begin() + std::ptrdiff_t(sos), {0x12, 0x34, 0x56});
    expect_file_error("extraneous.jpg", b, {"3 extraneous bytes before marker 0xda"});
    const std::string p = (t / "extraneous.jpg").string();
    EXPECT_EQ(decode_image_file(p, 3, {.strict_jpeg = false}).pixels,
              decode_image_file(fixture("baseline420.jpg")).pixels);
  }
  // SOF dimensions: zero (libjpeg's own check), over a side, over the pixel count: the last two
  // are redi's ImageLimits message from the header (a 2 KB file claiming 60000^2 pixels); past
  // 65500 libjpeg itself refuses.
  expect_file_error("zero_w.jpg", with_size(base, 48, 0), {"cannot decode JPEG"});
  expect_file_error("zero_h.jpg", with_size(base, 0, 64), {"cannot decode JPEG"});
  expect_file_error("huge.jpg", with_size(base, 60000, 60000), {"60000x60000 pixels", "ImageLimits"});
  expect_file_error("too_big.jpg", with_size(base, 65535, 65535), {"Maximum supported image dimension"});
  expect_file_error("many.jpg", with_size(base, 4097, 16384), {"16384x4097 pixels", "ImageLimits"});
  expect_file_error("huge_prog.jpg", with_size(prog, 60000, 30), {"30x60000 pixels", "ImageLimits"});
  expect_file_error("limits.jpg", base, {"64x48 pixels"}, {.max_side = 40});
  // Scan limit on progressive files (the fixture has more than 2 scans).
  expect_file_error("scans.jpg", prog, {"more than 2 scans"}, {.max_jpeg_scans = 2});
  EXPECT_NO_THROW(decode_image_file(fixture("progressive420.jpg"), 3, {.max_jpeg_scans = 20}));
  // Not a JPEG (or PNG) although named .jpg; an empty file; a missing file.
  const std::string text = "GIF89a this is not a JPEG at all";
  expect_file_error("text.jpg", std::vector<std::uint8_t>(text.begin(), text.end()), {"neither a PNG nor a JPEG"});
  expect_file_error("empty.JPEG", {}, {"0 bytes"});
  expect_error([&] { decode_image_file((t / "missing.jpg").string()); }, {"missing.jpg", "cannot open"});
  // Bad channel count.
  expect_error([&] { decode_jpeg(base.data(), base.size(), 5, "ch.jpg"); }, {"ch.jpg", "5 channels"});
}

// Every prefix of a valid file (baseline and progressive) is an error naming it or, for the
// whole file, a clean decode: no crash, leak (the sanitizer stage) or other exception type.
TEST(DataJpeg, EveryTruncationIsAnError) {
  for (const char* name : {"odd37x23_420.jpg", "odd37x23_progressive.jpg", "cmyk_adobe.jpg"}) {
    const auto b = bytes_of(fixture(name));
    int errors = 0;
    for (std::size_t n = 1; n < b.size(); n += 7) {
      try {
        decode_image(b.data(), n, 3, name);
        ADD_FAILURE() << name << " cut to " << n << " bytes decoded";
      } catch (const Error& e) {
        ASSERT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
        ++errors;
      }
    }
    EXPECT_GT(errors, 100) << name;
  }
}

#else  // no libjpeg in this build

TEST(DataJpeg, RefusedWithoutLibjpeg) {
  EXPECT_FALSE(kHaveJpeg);
  const auto b = bytes_of(fixture("baseline420.jpg"));
  expect_error([&] { decode_image(b.data(), b.size(), 3, "photo.JPEG"); }, {"photo.JPEG", "libjpeg-dev"});
}

#endif
