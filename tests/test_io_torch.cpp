// Tests for redi/io/torch_pickle.hpp and zip.hpp: checkpoints written byte by byte here (a
// minimal ZIP + pickle writer, so CI needs no PyTorch), every corruption the reader must name,
// and a real torch.save file (tests/data/io/tiny_torch_ckpt.pt, from make_torch_ckpt.py).
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "redi/io/state_dict.hpp"
#include "redi/io/torch_pickle.hpp"
#include "io_test_util.hpp"
#include "torch_test_writer.hpp"

using namespace redi;
using namespace std::string_literals;
using namespace redi::io;
namespace fs = std::filesystem;
using redi::test::expect_error;
using namespace redi::test::torchw;

namespace {

std::vector<std::byte> to_bytes(const std::string& s) {
  std::vector<std::byte> v(s.size());
  std::memcpy(v.data(), s.data(), s.size());
  return v;
}

const auto& kTmp = test::add_program_temp_dir("redi_io_torch");
fs::path temp_dir() { return kTmp.path(); }

TorchCheckpoint from(const std::string& bytes, TorchOptions opt = {}) {
  return TorchCheckpoint::from_bytes(to_bytes(bytes), "synthetic.pt", opt);
}

}  // namespace

TEST(Zip, Crc32KnownAnswer) { EXPECT_EQ(crc_of("123456789"), 0xcbf43926u); }

TEST(TorchCheckpoint, ReadsSyntheticCheckpoint) {
  for (bool zip64 : {false, true}) {
    TorchCheckpoint c = from(good_zip(zip64));
    EXPECT_EQ(c.names(), (std::vector<std::string>{"w", "nested.t", "nested.7"}));
    EXPECT_EQ(c.read<float>("w", Shape{2, 2}), (std::vector<float>{1, 2, 3, 4}));
    EXPECT_EQ(c.read<float>("nested.t", Shape{3, 2}), (std::vector<float>{0, 3, 1, 4, 2, 5}));
    EXPECT_EQ(c.read<float>("nested.7"), (std::vector<float>{0.5f, -1.f}));
    EXPECT_EQ(c.info("nested.7").dtype, DType::F16);
    EXPECT_TRUE(c.opaque_globals().empty());
  }
}

TEST(TorchCheckpoint, UnknownGlobalsAreInertOrRejected) {
  // {"x": os.system("echo pwned")}: never called; strict_globals makes it an error.
  Pickler p;
  p.op('\x80').raw("\x02").op('}').op('(').str("x").global("os", "system").str("echo pwned");
  p.raw("\x85").op('R').op('u').op('.');
  ZipWriter z;
  z.add("a/data.pkl", p.b);
  std::string zip = z.finish();
  TorchCheckpoint c = from(zip);
  EXPECT_TRUE(c.names().empty());
  EXPECT_EQ(c.opaque_globals(), std::vector<std::string>{"os.system"});
  expect_error([&] { from(zip, {.strict_globals = true}); },
               {"synthetic.pt", "a/data.pkl byte 10", "GLOBAL 'os.system' is not in the allow-list"});
}

TEST(TorchCheckpoint, NamesBadPickles) {
  auto with_pickle = [](const std::string& pk) {
    ZipWriter z;
    z.add("a/data.pkl", pk);
    z.add("a/data/0", f32_bytes({1, 2}));
    return z.finish();
  };
  expect_error([&] { from(with_pickle("\x80\x02}I1\n.")); },
               {"synthetic.pt", "a/data.pkl byte 3", "unsupported pickle opcode 0x49 ('I')"});
  expect_error([&] { from(with_pickle("\x80\x02}")); }, {"a/data.pkl", "without STOP"});
  expect_error([&] { from(with_pickle("\x80\x02X\xff"s + std::string(3, '\0') + "ab")); }, {"truncated pickle"});
  expect_error([&] { from(with_pickle("\x80\x02h\x05.")); }, {"byte 2", "memo key 5 not set"});
  expect_error([&] { from(with_pickle("\x80\x02u.")); }, {"no MARK"});
  Pickler big;
  big.op('}').str("w").tensor("FloatStorage", "0", 2, 0, {4}, {1}).op('s').op('.');
  expect_error([&] { from(with_pickle(big.b)); },
               {"synthetic.pt", "tensor 'w' (offset 0, shape [4], stride [1])",
                "reaches past its storage of 2 elements"});
  Pickler gone;
  gone.op('}').str("w").tensor("FloatStorage", "9", 2, 0, {2}, {1}).op('s').op('.');
  expect_error([&] { from(with_pickle(gone.b)); },
               {"tensor 'w'", "storage entry 'a/data/9' is missing"});
  Pickler lie;  // persistent id claims 4 elements, the entry holds 2
  lie.op('}').str("w").tensor("FloatStorage", "0", 4, 0, {2}, {1}).op('s').op('.');
  expect_error([&] { from(with_pickle(lie.b)); }, {"tensor 'w'", "fewer than its 4 elements"});
  Pickler i64;
  i64.op('}').str("ids").tensor("LongStorage", "0", 1, 0, {1}, {1}).op('s').op('.');
  TorchCheckpoint c = from(with_pickle(i64.b));
  expect_error([&] { c.read<float>("ids"); }, {"tensor 'ids' is I64, cannot convert it to F32"});
  expect_error([&] { c.read<std::int64_t>("ids", Shape{2}); },
               {"tensor 'ids' has shape [1], expected [2]"});
}

TEST(TorchCheckpoint, NamesBadArchives) {
  std::string zip = good_zip();
  expect_error([&] { from("PK\3\4 not really a zip at all"); },
               {"synthetic.pt", "no end-of-central-directory"});
  expect_error([&] { from(zip.substr(0, 100) + zip.substr(zip.size() - 22)); },
               {"synthetic.pt", "corrupt zip archive"});
  ZipWriter bad_crc;
  bad_crc.add("a/data.pkl", "\x80\x02}.", 0, true);
  expect_error([&] { from(bad_crc.finish()); }, {"entry 'a/data.pkl' fails its CRC-32 check"});
  ZipWriter deflated;
  deflated.add("a/data.pkl", "\x80\x02}.", 8);
  expect_error([&] { from(deflated.finish()); }, {"'a/data.pkl' is compressed (method 8)"});
  ZipWriter nopkl;
  nopkl.add("a/other", "x");
  expect_error([&] { from(nopkl.finish()); }, {"no <archive>/data.pkl"});
  ZipWriter bigendian;
  bigendian.add("a/data.pkl", "\x80\x02}.");
  bigendian.add("a/byteorder", "big");
  expect_error([&] { from(bigendian.finish()); }, {"byteorder 'big'"});
  expect_error([&] { from("\x80\x02\x8a\x0a" + std::string(40, 'x')); }, {"legacy (pre-1.6"});
  expect_error([] { TorchCheckpoint::open(temp_dir() / "absent.pt"); },
               {"absent.pt", "cannot open"});
}

TEST(TorchCheckpoint, LoadStateDispatchesOnZipMagic) {
  fs::path p = temp_dir() / "synthetic.pt";
  test::write_file(p, good_zip());
  std::vector<float> t(6), h(2);
  std::vector<ParamRef<float>> params = {{"t", Shape{3, 2}, t.data()}, {"7", Shape{2}, h.data()}};
  LoadReport r = load_state(p, params, {.strict = true, .prefix = "nested."});
  EXPECT_EQ(r.loaded.size(), 2u);
  EXPECT_EQ(t, (std::vector<float>{0, 3, 1, 4, 2, 5}));
  expect_error([&] { load_state(p, params); },
               {"synthetic.pt", "2 missing key(s): t, 7", "3 unexpected key(s): w, nested.t"});
}

TEST(TorchCheckpoint, RealTorchSaveFile) {
  const fs::path p = test::test_data_path("io/tiny_torch_ckpt.pt");
  if (!fs::exists(p)) GTEST_SKIP() << p << " not present";
  TorchCheckpoint c = TorchCheckpoint::open(p);
  EXPECT_EQ(c.opaque_globals(), std::vector<std::string>{"argparse.Namespace"});
  EXPECT_EQ(c.read<float>("model.0.weight", Shape{2, 3}),
            (std::vector<float>{-0.5f, -0.25f, 0.f, 0.25f, 0.5f, 0.75f}));
  EXPECT_EQ(c.read<float>("model.0.bias"), (std::vector<float>{1.5f, -2.f}));
  EXPECT_EQ(c.read<float>("ema.1.bias"), (std::vector<float>{0.f, 0.25f}));
  EXPECT_EQ(c.read<float>("extra.f16", Shape{2, 2}),
            (std::vector<float>{-0.5f, -0.25f, 0.f, 0.25f}));
  EXPECT_EQ(c.info("extra.bf16").dtype, DType::BF16);
  EXPECT_EQ(c.read<float>("extra.bf16"), (std::vector<float>{-0.5f, -0.25f, 0.f}));
  EXPECT_EQ(c.read<double>("extra.f64"), (std::vector<double>{0.0, 1.0 / 3}));
  EXPECT_EQ(c.read<std::int64_t>("extra.i64"),
            (std::vector<std::int64_t>{0, -1, std::int64_t(1) << 40}));
  EXPECT_EQ(c.read<std::int32_t>("extra.i32"), (std::vector<std::int32_t>{7, -7}));
  EXPECT_EQ(c.read<std::uint8_t>("extra.u8"), (std::vector<std::uint8_t>{0, 255, 3}));
  EXPECT_FALSE(c.info("extra.flag").supported);
  expect_error([&] { c.read<float>("extra.flag"); }, {"tiny_torch_ckpt.pt", "BoolStorage"});
  EXPECT_EQ(c.read<float>("extra.transposed", Shape{3, 4}),
            (std::vector<float>{0, 3, 6, 9, 1, 4, 7, 10, 2, 5, 8, 11}));
  EXPECT_EQ(c.read<float>("extra.sliced", Shape{3}), (std::vector<float>{4, 7, 10}));
  EXPECT_EQ(c.read<float>("extra.scalar", Shape{}), std::vector<float>{3.5f});
  EXPECT_EQ(c.read<float>("extra.param"), (std::vector<float>{10.f, 11.f}));

  // The "ema" state dict into a model's parameter list (strict, by prefix).
  std::vector<float> w(6), b(2), g(2), beta(2);
  std::vector<ParamRef<float>> params = {{"0.weight", Shape{2, 3}, w.data()},
                                         {"0.bias", Shape{2}, b.data()},
                                         {"1.weight", Shape{2}, g.data()},
                                         {"1.bias", Shape{2}, beta.data()}};
  load_state(p, params, {.strict = true, .prefix = "ema."});
  EXPECT_EQ(w, (std::vector<float>{-1.f, -0.5f, 0.f, 0.5f, 1.f, 1.5f}));
  EXPECT_EQ(g, (std::vector<float>{2.f, 1.f}));
}
