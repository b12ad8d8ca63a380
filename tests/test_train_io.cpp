// Tests for the training outputs: the .npz writer/reader (own parser; numpy when a python3 with
// numpy is on the PATH — CI does not need it), the PNG writer (chunk CRCs, zlib stream, and a
// decode with stb_image when libstb is linked), JSONL lines, and the Frechet distance.
#include <gtest/gtest.h>
#include <zlib.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "redi/core/philox.hpp"
#include "redi/io/image_write.hpp"
#include "redi/io/npz.hpp"
#include "redi/train/metrics_log.hpp"
#include "redi/train/samples.hpp"
#include "io_test_util.hpp"

#if defined(REDI_TEST_HAVE_STB)
#if __has_include(<stb/stb_image.h>)
#include <stb/stb_image.h>
#else
#include <stb_image.h>
#endif
#endif

using namespace redi;
namespace fs = std::filesystem;

namespace {
fs::path temp_dir(const std::string& name) { return test::fresh_temp_dir("redi_test_train_io_" + name); }
std::vector<unsigned char> slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), {}};
}
std::uint32_t be32(const unsigned char* p) {
  return (std::uint32_t(p[0]) << 24) | (std::uint32_t(p[1]) << 16) | (std::uint32_t(p[2]) << 8) | p[3];
}
bool have_numpy() { return std::system("python3 -c 'import numpy' >/dev/null 2>&1") == 0; }
}  // namespace

TEST(Npz, HeaderIsNumpyV1AndAligned) {
  const std::vector<std::int64_t> s{1000, 32, 32, 1};
  const std::string h = io::npy_header("|u1", s);
  EXPECT_EQ(h.size() % 64, 0u);
  EXPECT_EQ(h.substr(0, 6), "\x93NUMPY");
  EXPECT_EQ(h[6], 1);
  EXPECT_EQ(h.back(), '\n');
  EXPECT_NE(h.find("'descr': '|u1', 'fortran_order': False, 'shape': (1000, 32, 32, 1), }"), std::string::npos);
  const std::vector<std::int64_t> one{7};
  EXPECT_NE(io::npy_header("<i8", one).find("'shape': (7,)"), std::string::npos);
}

class NpzRoundTrip : public ::testing::TestWithParam<bool> {};

TEST_P(NpzRoundTrip, WriteThenRead) {
  const fs::path dir = temp_dir(GetParam() ? "z64" : "plain");
  std::vector<std::uint8_t> px(5 * 4 * 3 * 1);
  for (std::size_t i = 0; i < px.size(); ++i) px[i] = std::uint8_t(i * 7);
  std::vector<std::int64_t> lab{0, 1, 2, 3, 4};
  std::vector<float> f{1.5f, -2.25f, 3.0f};
  io::NpzWriter w;
  w.force_zip64(GetParam());
  w.add("arr_0", {5, 4, 3, 1}, px.data());
  w.add("arr_1", {5}, lab.data());
  w.add("floats", {3}, f.data());
  w.write(dir / "a.npz");
  const auto z = io::NpzFile::open(dir / "a.npz");
  ASSERT_EQ(z.names().size(), 3u);
  EXPECT_EQ(z.info("arr_0").descr, "|u1");
  EXPECT_EQ(z.info("arr_0").shape, (std::vector<std::int64_t>{5, 4, 3, 1}));
  EXPECT_EQ(z.read<std::uint8_t>("arr_0"), px);
  EXPECT_EQ(z.read<std::int64_t>("arr_1"), lab);
  EXPECT_EQ(z.read<double>("arr_1"), (std::vector<double>{0, 1, 2, 3, 4}));
  EXPECT_EQ(z.read<float>("floats"), f);
  EXPECT_THROW(z.info("arr_9"), Error);
  // The zip's stored CRCs match the entries (a zip tool / numpy would check them).
  const auto bytes = slurp(dir / "a.npz");
  EXPECT_EQ(bytes[0], 'P');
  EXPECT_EQ(bytes[1], 'K');
  if (have_numpy()) {
    const std::string cmd = "python3 -c \"import numpy as np; d = np.load('" + (dir / "a.npz").string() +
                            "'); a = d['arr_0']; assert a.dtype == np.uint8 and a.shape == (5, 4, 3, 1); "
                            "assert int(a[4, 3, 2, 0]) == (59 * 7) % 256; assert list(d['arr_1']) == [0, 1, 2, 3, 4]; "
                            "assert d['floats'][1] == -2.25\"";
    EXPECT_EQ(std::system(cmd.c_str()), 0) << "numpy could not read the file";
  }
  fs::remove_all(dir);
}
INSTANTIATE_TEST_SUITE_P(Zip64, NpzRoundTrip, ::testing::Values(false, true));

TEST(Npz, CorruptArchivesAreErrors) {
  const fs::path dir = temp_dir("corrupt");
  std::vector<std::uint8_t> px(100, 3);
  io::NpzWriter w;
  w.add("arr_0", {100}, px.data());
  w.write(dir / "a.npz");
  auto bytes = slurp(dir / "a.npz");
  { std::ofstream(dir / "t.npz", std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), 60); }
  EXPECT_THROW(io::NpzFile::open(dir / "t.npz"), Error);
  // Damage the .npy magic inside the entry (local header 30 + name 9 bytes).
  bytes[30 + 9] = 'X';
  { std::ofstream(dir / "m.npz", std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size())); }
  try {
    io::NpzFile::open(dir / "m.npz");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("arr_0"), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}

TEST(Png, ChunksCrcsAndPixels) {
  const fs::path dir = temp_dir("png");
  const int w = 13, h = 7;
  for (int c : {1, 3, 4}) {
    std::vector<std::uint8_t> px(std::size_t(w) * h * c);
    for (std::size_t i = 0; i < px.size(); ++i) px[i] = std::uint8_t((i * 31) ^ (i >> 3));
    const fs::path p = dir / ("im" + std::to_string(c) + ".png");
    io::write_png(p, px.data(), w, h, c);
    const auto b = slurp(p);
    ASSERT_GT(b.size(), 8u + 25 + 12);
    EXPECT_EQ(std::vector<unsigned char>(b.begin(), b.begin() + 8),
              (std::vector<unsigned char>{0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'}));
    // Walk the chunks, check each CRC, collect IDAT.
    std::size_t pos = 8;
    std::vector<unsigned char> idat;
    std::vector<std::string> types;
    while (pos + 12 <= b.size()) {
      const std::uint32_t len = be32(&b[pos]);
      const std::string type(reinterpret_cast<const char*>(&b[pos + 4]), 4);
      types.push_back(type);
      const uLong crc = crc32(crc32(0L, Z_NULL, 0), &b[pos + 4], uInt(len + 4));
      EXPECT_EQ(be32(&b[pos + 8 + len]), std::uint32_t(crc)) << type;
      if (type == "IHDR") {
        EXPECT_EQ(be32(&b[pos + 8]), std::uint32_t(w));
        EXPECT_EQ(be32(&b[pos + 12]), std::uint32_t(h));
      }
      if (type == "IDAT") idat.insert(idat.end(), &b[pos + 8], &b[pos + 8] + len);
      pos += 12 + len;
    }
    EXPECT_EQ(pos, b.size());
    EXPECT_EQ(types, (std::vector<std::string>{"IHDR", "IDAT", "IEND"}));
    // Inflate and compare with the pixels (filter byte 0 per row).
    std::vector<unsigned char> raw(std::size_t(h) * (std::size_t(w) * c + 1));
    uLongf n = raw.size();
    ASSERT_EQ(uncompress(raw.data(), &n, idat.data(), uLong(idat.size())), Z_OK);
    ASSERT_EQ(n, raw.size());
    for (int y = 0; y < h; ++y) {
      EXPECT_EQ(raw[std::size_t(y) * (w * c + 1)], 0);
      EXPECT_EQ(0, std::memcmp(&raw[std::size_t(y) * (w * c + 1) + 1], &px[std::size_t(y) * w * c], std::size_t(w) * c));
    }
#if defined(REDI_TEST_HAVE_STB)
    int dw = 0, dh = 0, dc = 0;
    unsigned char* d = stbi_load(p.string().c_str(), &dw, &dh, &dc, 0);
    ASSERT_NE(d, nullptr) << stbi_failure_reason();
    EXPECT_EQ(dw, w);
    EXPECT_EQ(dh, h);
    EXPECT_EQ(dc, c);
    EXPECT_EQ(0, std::memcmp(d, px.data(), px.size()));
    stbi_image_free(d);
#endif
  }
  fs::remove_all(dir);
}

TEST(Png, GridAndPixelConversion) {
  EXPECT_EQ(io::to_uint8_pixel(-1.f), 0);
  EXPECT_EQ(io::to_uint8_pixel(1.f), 255);
  EXPECT_EQ(io::to_uint8_pixel(0.f), 128);
  EXPECT_EQ(io::to_uint8_pixel(5.f), 255);
  EXPECT_EQ(io::to_uint8_pixel(-5.f), 0);
  EXPECT_EQ(io::to_uint8_pixel(std::nanf("")), 0);
  std::vector<float> x(2 * 3 * 2 * 2);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = float(i) / 12.f - 0.5f;
  const auto u = io::to_uint8_nhwc(x.data(), 2, 3, 2, 2);  // NCHW -> NHWC
  EXPECT_EQ(u[1], io::to_uint8_pixel(x[4]));                // (b0, y0, x0, c1) = NCHW index 4
  std::vector<std::uint8_t> tiles(5 * 2 * 2, 9);
  const auto g = io::make_grid(tiles.data(), 5, 2, 2, 1, 3, 1, 255);
  EXPECT_EQ(g.w, 3 * 2 + 4);
  EXPECT_EQ(g.h, 2 * 2 + 3);
  EXPECT_EQ(g.pixels[0], 255);
  EXPECT_EQ(g.pixels[std::size_t(1 * g.w + 1)], 9);
  EXPECT_EQ(g.pixels[std::size_t(4 * g.w + 7)], 255);  // the sixth tile is empty padding
}

TEST(MetricsLog, JsonLinesParseBack) {
  train::JsonObject o;
  o.add("step", std::int64_t(12)).add("loss", 0.1).add("nan", std::nan("")).add("name", "a\"b").add("ok", true);
  const json::Value v = json::parse(o.str(), "line");
  EXPECT_EQ(v.find("step")->str(), "12");
  EXPECT_EQ(v.find("loss")->as_double(), 0.1);
  EXPECT_TRUE(v.find("nan")->is_null());
  EXPECT_EQ(v.find("name")->str(), "a\"b");
  EXPECT_EQ(train::format_duration(65), "1m05s");
  EXPECT_EQ(train::format_duration(3725), "1h02m05s");
}


// train::sample_images hands draw() whole packed samples ([x | z], the features on the image
// grid or on their own grid) with global row indices, keeps exactly the image channels, and
// write_samples' npz reads back as the same pixels and labels.
TEST(SampleImages, KeepTheImageChannelsOfPackedSamples) {
  for (int feature_size : {0, 4}) {
    ModelConfig mc;
    mc.input_size = 8, mc.patch = 2, mc.image_channels = 1, mc.feature_channels = 3, mc.width = 8;
    mc.depth = 1, mc.heads = 1, mc.feature_size = feature_size;
    const std::int64_t per = mc.input_elems(), nx = 64;
    EXPECT_EQ(per, nx + 3 * (feature_size ? 16 : 64));
    std::vector<int> labels{0, 1, 2, 0, 1, 2, 0};
    std::vector<std::uint64_t> seen;
    const auto s = train::sample_images(mc, labels, 5, [&](float* out, const SampleRequest& req) {
      for (int b = 0; b < req.B; ++b) {
        const std::uint64_t row = req.first_index + std::uint64_t(b);
        seen.push_back(row);
        for (std::int64_t e = 0; e < per; ++e)  // image values in [-1, 1] encode the row; z = 9
          out[b * per + e] = e < nx ? float(-1.0 + 0.25 * double(row)) : 9.f;
      }
    }, /*batch=*/3);
    ASSERT_EQ(seen.size(), labels.size());
    for (std::size_t i = 0; i < seen.size(); ++i) EXPECT_EQ(seen[i], i);
    ASSERT_EQ(s.x.size(), labels.size() * nx);
    for (std::size_t i = 0; i < labels.size(); ++i)
      for (std::int64_t e = 0; e < nx; ++e) ASSERT_EQ(s.x[i * nx + e], float(-1.0 + 0.25 * double(i))) << i << " " << e;
    const fs::path dir = temp_dir("samples_" + std::to_string(feature_size));
    const auto u8 = train::write_samples(dir, s, 100, 4);
    const auto back = io::load_sample_npz(dir / "samples.npz");
    EXPECT_EQ(back.pixels, u8);
    EXPECT_EQ(back.labels, labels);
    EXPECT_TRUE(fs::exists(dir / "samples.png"));
  }
}
