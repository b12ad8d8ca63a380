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

using namespace redi;
using namespace std::string_literals;
using namespace redi::io;
namespace fs = std::filesystem;
using redi::test::expect_error;

namespace {

std::string le(std::uint64_t v, int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s += char((v >> (8 * i)) & 0xff);
  return s;
}
std::vector<std::byte> to_bytes(const std::string& s) {
  std::vector<std::byte> v(s.size());
  std::memcpy(v.data(), s.data(), s.size());
  return v;
}
std::uint32_t crc_of(const std::string& s) {
  return zip::crc32(std::span<const std::byte>(reinterpret_cast<const std::byte*>(s.data()),
                                               s.size()));
}

/// A ZIP writer for stored entries, optionally with zip64 records.
struct ZipWriter {
  struct E { std::string name, data; std::uint16_t method; std::uint32_t crc; std::uint64_t off; };
  std::vector<E> entries;
  void add(std::string name, std::string data, std::uint16_t method = 0, bool bad_crc = false) {
    std::uint32_t c = crc_of(data) ^ (bad_crc ? 1u : 0u);
    entries.push_back({std::move(name), std::move(data), method, c, 0});
  }
  std::string finish(bool zip64 = false) {
    std::string out;
    for (auto& e : entries) {
      e.off = out.size();
      out += le(0x04034b50, 4) + le(20, 2) + le(0, 2) + le(e.method, 2) + le(0, 4) +
             le(e.crc, 4) + le(e.data.size(), 4) + le(e.data.size(), 4) + le(e.name.size(), 2) +
             le(0, 2) + e.name + e.data;
    }
    const std::uint64_t cd = out.size();
    for (const auto& e : entries) {
      std::string extra = zip64 ? le(1, 2) + le(24, 2) + le(e.data.size(), 8) +
                                      le(e.data.size(), 8) + le(e.off, 8)
                                : "";
      std::uint64_t big = 0xffffffffu;
      out += le(0x02014b50, 4) + le(45, 2) + le(45, 2) + le(0, 2) + le(e.method, 2) + le(0, 4) +
             le(e.crc, 4) + le(zip64 ? big : e.data.size(), 4) +
             le(zip64 ? big : e.data.size(), 4) + le(e.name.size(), 2) + le(extra.size(), 2) +
             le(0, 2) + le(0, 2) + le(0, 2) + le(0, 4) + le(zip64 ? big : e.off, 4) + e.name +
             extra;
    }
    const std::uint64_t cd_size = out.size() - cd;
    if (zip64) {
      const std::uint64_t z = out.size();
      out += le(0x06064b50, 4) + le(44, 8) + le(45, 2) + le(45, 2) + le(0, 4) + le(0, 4) +
             le(entries.size(), 8) + le(entries.size(), 8) + le(cd_size, 8) + le(cd, 8);
      out += le(0x07064b50, 4) + le(0, 4) + le(z, 8) + le(1, 4);
      out += le(0x06054b50, 4) + le(0, 4) + le(0xffff, 2) + le(0xffff, 2) +
             le(0xffffffffu, 4) + le(0xffffffffu, 4) + le(0, 2);
    } else {
      out += le(0x06054b50, 4) + le(0, 4) + le(entries.size(), 2) + le(entries.size(), 2) +
             le(cd_size, 4) + le(cd, 4) + le(0, 2);
    }
    return out;
  }
};

/// Emits pickle opcodes.
struct Pickler {
  std::string b;
  Pickler& raw(const std::string& s) { b += s; return *this; }
  Pickler& op(char c) { b += c; return *this; }
  Pickler& str(const std::string& s) { return op('X').raw(le(s.size(), 4) + s); }
  Pickler& sstr(const std::string& s) { return op('\x8c').raw(le(s.size(), 1) + s); }
  Pickler& int1(int v) { return op('K').raw(le(std::uint64_t(v), 1)); }
  Pickler& global(const std::string& m, const std::string& n) { return op('c').raw(m + "\n" + n + "\n"); }
  Pickler& ints(const std::vector<std::int64_t>& v) {  // a tuple of ints
    op('(');
    for (auto x : v) {
      if (x >= 0 && x < 256) int1(int(x));
      else op('\x8a').raw(le(8, 1) + le(std::uint64_t(x), 8));  // LONG1
    }
    return op('t');
  }
  /// _rebuild_tensor_v2(('storage', torch.<type>, key, 'cpu', numel), off, shape, stride, False,
  /// OrderedDict())
  Pickler& tensor(const std::string& type, const std::string& key, std::int64_t numel,
                  std::int64_t off, const std::vector<std::int64_t>& shape,
                  const std::vector<std::int64_t>& stride) {
    global("torch._utils", "_rebuild_tensor_v2").op('(');
    op('(').str("storage").global("torch", type).str(key).str("cpu");
    ints({numel}).raw("\x85").op('0');  // (exercise TUPLE1 + POP), then the real element count
    if (numel < 256) int1(int(numel)); else op('J').raw(le(std::uint64_t(numel), 4));
    op('t').op('Q').int1(int(off)).ints(shape).ints(stride).op('\x89');
    global("collections", "OrderedDict").op(')').op('R');
    return op('t').op('R');
  }
};

std::string f32_bytes(const std::vector<float>& v) {
  std::string s(v.size() * 4, '\0');
  std::memcpy(s.data(), v.data(), s.size());
  return s;
}

/// A checkpoint {"w": F32[2,2], "nested": {"t": F32[3,2] transposed view of 'w2' storage,
/// 7: F16[2]}} written with protocol-4 style opcodes (FRAME, MEMOIZE, SHORT_BINUNICODE).
std::string good_pickle() {
  Pickler p;
  p.op('\x80').raw("\x04").op('\x95').raw(le(0, 8)).op('}').op('\x94').op('(');
  p.sstr("w").op('\x94').tensor("FloatStorage", "0", 4, 0, {2, 2}, {2, 1}).op('r').raw(le(1000, 4));
  p.sstr("nested").global("collections", "OrderedDict").op(')').op('R').op('(');
  p.str("t").tensor("FloatStorage", "1", 6, 0, {3, 2}, {1, 3});
  p.op('J').raw(le(7, 4)).tensor("HalfStorage", "2", 3, 1, {2}, {1});
  p.op('u').op('}').sstr("_metadata").op('j').raw(le(1000, 4)).op('s').op('b');
  p.sstr("again").op('h').raw(le(1, 1));  // memo 1 = the string "w" (MEMOIZE)
  p.sstr("pos").op('M').raw(le(300, 2));
  p.op('u').op('.');
  return p.b;
}

const auto& kTmp = test::add_program_temp_dir("redi_io_torch");
fs::path temp_dir() { return kTmp.path(); }

std::string good_zip(bool zip64 = false) {
  ZipWriter z;
  z.add("ckpt/data.pkl", good_pickle());
  z.add("ckpt/data/0", f32_bytes({1, 2, 3, 4}));
  z.add("ckpt/data/1", f32_bytes({0, 1, 2, 3, 4, 5}));
  std::string h = le(half::from_float(9.f), 2) + le(half::from_float(0.5f), 2) +
                  le(half::from_float(-1.f), 2);
  z.add("ckpt/data/2", h);
  z.add("ckpt/version", "3\n");
  return z.finish(zip64);
}

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
  expect_error([&] { from(bad_crc.finish()); }, {"a/data.pkl fails its CRC check"});
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
