// Hostile-file regressions for the io readers (issue 15, docs/security.md): each test crafts the
// file an attacker would (or replays one committed under tests/data/fuzz/) and asserts a
// redi::Error naming the file and the field. Before the fixes these files crashed the reader
// (wild reads, stack overflow), were silently accepted, or allocated gigabytes.
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "redi/core/checked.hpp"
#include "redi/io/json.hpp"
#include "redi/io/npz.hpp"
#include "redi/io/safetensors.hpp"
#include "redi/io/state_dict.hpp"
#include "redi/io/torch_pickle.hpp"
#include "redi/nn/config.hpp"
#include "io_test_util.hpp"
#include "torch_test_writer.hpp"

using namespace redi;
using namespace redi::io;
using namespace std::string_literals;
using redi::test::expect_error;
using namespace redi::test::torchw;
namespace fs = std::filesystem;

namespace {

std::vector<std::byte> to_bytes(const std::string& s) {
  std::vector<std::byte> v(s.size());
  std::memcpy(v.data(), s.data(), s.size());
  return v;
}
TorchCheckpoint torch_from(const std::string& bytes, TorchOptions opt = {}) {
  return TorchCheckpoint::from_bytes(to_bytes(bytes), "evil.pt", opt);
}
NpzFile npz_from(const std::string& bytes) { return NpzFile::from_bytes(to_bytes(bytes), "evil.npz"); }
SafeTensorsFile st_from(const std::string& header, const std::string& data = "") {
  return SafeTensorsFile::from_bytes(to_bytes(le(header.size(), 8) + header + data), "evil.safetensors");
}
/// A checkpoint whose data.pkl is {"w": <tensor>} over storage "0" of `storage_bytes` bytes.
std::string one_tensor_ckpt(const std::string& type, std::int64_t numel, std::int64_t off,
                            const std::vector<std::int64_t>& shape, const std::vector<std::int64_t>& stride,
                            const std::string& storage_bytes) {
  Pickler p;
  p.op('}').str("w").tensor(type, "0", numel, off, shape, stride).op('s').op('.');
  ZipWriter z;
  z.add("a/data.pkl", p.b);
  z.add("a/data/0", storage_bytes);
  return z.finish();
}
std::size_t find_sig(const std::string& s, std::uint32_t sig, std::size_t from = 0) {
  return s.find(le(sig, 4), from);
}
void put_le(std::string& s, std::size_t at, std::uint64_t v, int n) { s.replace(at, std::size_t(n), le(v, n)); }

std::string npy(const std::string& dict, const std::string& data) {
  return "\x93NUMPY\x01\x00"s + le(dict.size(), 2) + dict + data;
}

}  // namespace

// ---- checked arithmetic
TEST(Checked, AddMulNumel) {
  std::uint64_t u = 0;
  EXPECT_FALSE(checked::add<std::uint64_t>(~std::uint64_t(0) - 7, 56, u));  // the zip64 wrap
  EXPECT_TRUE(checked::add<std::uint64_t>(1, 2, u));
  EXPECT_EQ(u, 3u);
  std::int64_t i = 0;
  EXPECT_FALSE(checked::mul<std::int64_t>(std::int64_t(1) << 62, 2, i));
  EXPECT_FALSE(checked::in_range(~std::uint64_t(0) - 7, 56, 1000));
  EXPECT_TRUE(checked::in_range(944, 56, 1000));
  EXPECT_FALSE(checked::in_range(945, 56, 1000));
  const std::int64_t two32 = std::int64_t(1) << 32;
  EXPECT_EQ(checked::numel(std::vector<std::int64_t>{2, 3}, 100, "x"), 6);
  EXPECT_EQ(checked::numel(std::vector<std::int64_t>{0, 7}, 100, "x"), 0);
  // 2^32 * 2^32 wraps to 0 in 64 bits: must be an error, not an empty array.
  expect_error([&] { checked::numel(std::vector<std::int64_t>{two32, two32}, kMaxTensorElements, "f", ": a"); },
               {"f: a", "more than"});
  expect_error([&] { checked::numel(std::vector<std::int64_t>{-1}, 10, "f"); }, {"negative extent -1"});
  expect_error([&] { checked::add_or_fail<std::int64_t>(std::numeric_limits<std::int64_t>::max(), 1, "f: off"); },
               {"f: off", "overflows"});
}

// ---- zip
TEST(HostileZip, Zip64LocatorOffsetThatWrapsIsAnError) {
  std::string zip = good_zip(true);
  const std::size_t loc = find_sig(zip, 0x07064b50u);
  ASSERT_NE(loc, std::string::npos);
  put_le(zip, loc + 8, ~std::uint64_t(0) - 7, 8);  // z + 56 wraps to 48 (read before the buffer)
  expect_error([&] { torch_from(zip); }, {"evil.pt", "bad zip64 end-of-central-directory offset"});
}

TEST(HostileZip, Zip64ExtraLocalOffsetThatWrapsIsAnError) {
  std::string zip = good_zip(true);
  const std::size_t cd = find_sig(zip, 0x02014b50u);
  ASSERT_NE(cd, std::string::npos);
  const std::size_t name_len = std::size_t(std::uint8_t(zip[cd + 28])) | std::size_t(std::uint8_t(zip[cd + 29])) << 8;
  put_le(zip, cd + 46 + name_len + 4 + 16, ~std::uint64_t(0) - 10, 8);  // local + 30 wraps
  expect_error([&] { torch_from(zip); }, {"evil.pt", "bad local header for entry 'ckpt/data.pkl'"});
  // A size in the zip64 extra that runs past the file.
  zip = good_zip(true);
  put_le(zip, cd + 46 + name_len + 4 + 8, ~std::uint64_t(0) - 1, 8);
  expect_error([&] { torch_from(zip); }, {"evil.pt", "runs past the end of the file"});
}

TEST(HostileZip, DuplicateNamesCorruptCrcAndHugeCounts) {
  ZipWriter dup;
  dup.add("a/data.pkl", "\x80\x02}.");
  dup.add("a/data.pkl", "\x80\x02}.");
  expect_error([&] { torch_from(dup.finish()); }, {"evil.pt", "entry name 'a/data.pkl' occurs twice"});
  // A flipped bit in a tensor's storage (not only data.pkl) fails the CRC-32.
  std::string zip = good_zip();
  const std::size_t at = zip.find(f32_bytes({1, 2, 3, 4}));
  ASSERT_NE(at, std::string::npos);
  zip[at + 5] ^= 0x10;
  expect_error([&] { torch_from(zip); }, {"evil.pt", "entry 'ckpt/data/0' fails its CRC-32 check"});
  // An end record claiming 65534 entries in a 100-byte directory: refused before allocating.
  zip = good_zip();
  const std::size_t eocd = find_sig(zip, 0x06054b50u);
  put_le(zip, eocd + 10, 65534, 2);
  expect_error([&] { torch_from(zip); }, {"evil.pt", "65534 entries cannot fit"});
}

// ---- torch pickle
TEST(HostileTorch, OffsetPlusStrideOverflowIsAnError) {
  const std::int64_t big = std::int64_t(1) << 62;
  // Before: (2-1)*2^62 + (2-1)*2^62 = 2^63 wrapped negative and passed the bounds check.
  expect_error([&] { torch_from(one_tensor_ckpt("FloatStorage", 2, 0, {2, 2}, {big, big}, f32_bytes({1, 2}))); },
               {"evil.pt", "tensor 'w' (offset 0, shape [2, 2]", "reaches past its storage of 2 elements"});
  expect_error([&] {
    torch_from(one_tensor_ckpt("FloatStorage", 2, 0, {2}, {std::numeric_limits<std::int64_t>::max()},
                               f32_bytes({1, 2})));
  }, {"tensor 'w'", "reaches past its storage"});
  expect_error([&] { torch_from(one_tensor_ckpt("FloatStorage", 2, 0, {4}, {-1}, f32_bytes({1, 2}))); },
               {"tensor 'w'", "negative"});
}

TEST(HostileTorch, StrideZeroGiantTensorIsAnErrorNotBadAlloc) {
  // 2^40 elements (4 TiB of F32) over a 1-element storage: refused at open.
  expect_error([&] {
    torch_from(one_tensor_ckpt("FloatStorage", 1, 0, {std::int64_t(1) << 40}, {0}, f32_bytes({1})));
  }, {"evil.pt", "tensor 'w'", "max_expanded"});
  // A small expanded tensor is fine and reads the repeated value.
  auto c = torch_from(one_tensor_ckpt("FloatStorage", 1, 0, {3}, {0}, f32_bytes({7})));
  EXPECT_EQ(c.read<float>("w"), (std::vector<float>{7, 7, 7}));
  // Shape products that overflow int64 are errors naming the tensor.
  const std::int64_t two32 = std::int64_t(1) << 32;
  expect_error([&] {
    torch_from(one_tensor_ckpt("FloatStorage", 1, 0, {two32, two32, 4096}, {0, 0, 0}, f32_bytes({1})));
  }, {"evil.pt: tensor 'w'", "limit"});
}

TEST(HostileTorch, UnsupportedDtypesAreValidatedToo) {
  // BoolStorage (not readable by redi) still gets every bounds check.
  expect_error([&] { torch_from(one_tensor_ckpt("BoolStorage", 2, 0, {5}, {1}, "\1\0"s)); },
               {"evil.pt", "tensor 'w'", "reaches past its storage of 2 elements"});
  auto c = torch_from(one_tensor_ckpt("BoolStorage", 2, 0, {2}, {1}, "\1\0"s));
  EXPECT_FALSE(c.info("w").supported);
  expect_error([&] { c.read<float>("w"); }, {"evil.pt", "tensor 'w' has dtype BoolStorage"});
}

TEST(HostileTorch, DeepNestingIsRefusedWhileParsingWithoutRecursion) {
  // 200 KB of nested 1-tuples: before, the walk refused it but the recursive teardown of the
  // nested objects overflowed the stack. Now parsing stops at depth 64.
  std::string pk = "\x80\x02)"s + std::string(200000, '\x85') + ".";
  ZipWriter z;
  z.add("a/data.pkl", pk);
  expect_error([&] { torch_from(z.finish()); }, {"evil.pt", "a/data.pkl byte", "nested deeper than 64"});
  // The same with lists grown by APPEND.
  std::string lists = "\x80\x02"s;
  for (int i = 0; i < 100000; ++i) lists += "]";
  for (int i = 0; i < 99999; ++i) lists += "a";
  ZipWriter z2;
  z2.add("a/data.pkl", lists + ".");
  expect_error([&] { torch_from(z2.finish()); }, {"evil.pt", "nested deeper than 64"});
  // A list that contains itself (a cycle through the memo): refused by the walk, nothing leaks.
  ZipWriter z3;
  z3.add("a/data.pkl", "\x80\x02]q"s + '\0' + "h" + '\0' + "a.");  // ] BINPUT 0, BINGET 0, APPEND
  expect_error([&] { torch_from(z3.finish()); }, {"evil.pt", "nesting deeper than 64"});
}

TEST(HostileTorch, SharedReferenceAmplificationIsBounded) {
  // {"x": [[T] * n] * n}: a pickle of ~2n bytes naming n^2 tensors. Before: accepted (a 27 KB
  // pickle gave 4M tensors, 1.3 GB). Now: the tensor-count and node limits.
  auto amp = [](int n) {
    Pickler p;
    p.op('}').str("x").op(']').op('(').tensor("FloatStorage", "0", 1, 0, {1}, {1}).op('q').raw(le(0, 1));
    for (int i = 1; i < n; ++i) p.op('h').raw(le(0, 1));
    p.op('e').op('q').raw(le(1, 1)).op('0').op(']').op('(');
    for (int i = 0; i < n; ++i) p.op('h').raw(le(1, 1));
    p.op('e').op('s').op('.');
    ZipWriter z;
    z.add("a/data.pkl", p.b);
    z.add("a/data/0", f32_bytes({1}));
    return z.finish();
  };
  const std::string zip = amp(600);
  EXPECT_LT(zip.size(), 5000u);
  expect_error([&] { torch_from(zip); }, {"evil.pt", "more than 262144 tensors"});
  expect_error([&] { torch_from(zip, {.max_nodes = 5000}); }, {"evil.pt", "more than 5000 nodes"});
  // Within the limits the same structure loads (shared storages are legitimate).
  auto c = torch_from(amp(100));
  EXPECT_EQ(c.names().size(), 10000u);
  EXPECT_EQ(c.read<float>("x.99.99"), std::vector<float>{1});
  // Opaque globals wrapped a thousand times stay short.
  std::string wrap = "\x80\x02"s + "cos\nsystem\n";
  for (int i = 0; i < 1000; ++i) wrap += ")R";
  ZipWriter z2;
  z2.add("a/data.pkl", wrap + ".");
  auto c2 = torch_from(z2.finish());
  EXPECT_EQ(c2.opaque_globals(), std::vector<std::string>{"os.system"});
}

// ---- npz
TEST(HostileNpz, DuplicateEntryNamesAreRejected) {
  // Before: header from the first "a.npy" (data at byte 128 of its entry), bytes from the last
  // (a 65-byte entry) -> bytes() returned a span of 2^64-64 bytes.
  std::string dict = "{'descr': '|u1', 'fortran_order': False, 'shape': (100000,), }";
  dict += std::string(117 - dict.size(), ' ') + "\n";  // data at byte 10 + 118 = 128
  ZipWriter z;
  z.add("a.npy", npy(dict, std::string(64, 'x')));
  z.add("a.npy", npy("{'descr': '|u1', 'fortran_order': False, 'shape': (1,)}\n", "y"));  // 66 bytes
  expect_error([&] { npz_from(z.finish()); }, {"evil.npz", "entry name 'a.npy' occurs twice"});
}

TEST(HostileNpz, HeaderIsValidatedAsNumpyDoes) {
  auto one = [](const std::string& dict, const std::string& data = "") {
    ZipWriter z;
    z.add("x.npy", npy(dict, data));
    return npz_from(z.finish());
  };
  EXPECT_EQ(one("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }\n", f32_bytes({2.5f})).read<float>("x"),
            std::vector<float>{2.5f});
  EXPECT_TRUE(one("{'descr': '<f4', 'fortran_order': False, 'shape': (), }\n", f32_bytes({1})).info("x").shape.empty());
  expect_error([&] { one("{'descr': '<f4', 'fortran_order': False, 'shape': (3), }\n"); },
               {"evil.npz: array 'x'", "an int, not a tuple"});
  expect_error([&] { one("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), 'x': 1}\n"); },
               {"array 'x'", "unexpected key 'x'"});
  expect_error([&] { one("{'descr': '<f4', 'shape': (3,)}\n"); }, {"array 'x'", "lacks 'fortran_order'"});
  expect_error([&] { one("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (3,)}\n"); },
               {"key 'descr' occurs twice"});
  expect_error([&] { one("{'descr': '<f4', 'fortran_order': 0, 'shape': (3,)}\n"); }, {"not True or False"});
  expect_error([&] { one("{'descr': '<f4', 'fortran_order': False, 'shape': (-3,)}\n"); }, {"non-integer"});
  expect_error([&] { one("{'descr': '<f4', 'fortran_order': False, 'shape': (3,)} junk\n"); },
               {"characters after the header dict"});
  // A shape whose product wraps int64 (2^32 * 2^32 = 0 mod 2^64) was an empty array before.
  expect_error([&] { one("{'descr': '|u1', 'fortran_order': False, 'shape': (4294967296, 4294967296), }\n"); },
               {"evil.npz: array 'x'", "'shape' [4294967296, 4294967296]", "more than"});
  expect_error([&] { one("{'descr': '|u1', 'fortran_order': False, 'shape': (99999999999999999999,)}\n"); },
               {"does not fit 64 bits"});
  // numpy's header size limit.
  expect_error([&] { one("{'descr': '|u1', 'fortran_order': False, 'shape': (1,)}" + std::string(20000, ' ') + "\n"); },
               {"longer than numpy's limit of 10000"});
  // n * element size checked; unsupported dtypes named.
  expect_error([&] { one("{'descr': '>f4', 'fortran_order': False, 'shape': (1,)}\n", "abcd").read<float>("x"); },
               {"array 'x'", "unsupported dtype '>f4'"});
  expect_error([&] { one("{'descr': '<f8', 'fortran_order': False, 'shape': (3,)}\n", "abcd").read<double>("x"); },
               {"array 'x'", "4 data bytes for shape [3] of <f8"});
}

// ---- JSON
TEST(HostileJson, DuplicateKeyCheckIsLinearAndNamesTheOffset) {
  std::string doc = "{";
  const int n = 100000;
  for (int i = 0; i < n; ++i) doc += (i ? ",\"k" : "\"k") + std::to_string(i) + "\":0";
  const auto t0 = std::chrono::steady_clock::now();
  const json::Value v = json::parse(doc + "}", "big.json");
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(v.object().size(), std::size_t(n));
  EXPECT_LT(s, 5.0) << "100k keys took " << s << " s (the old quadratic check: ~12 s)";
  const std::size_t at = doc.size() + 1;  // offset of the repeated key
  expect_error([&] { json::parse(doc + ",\"k77\":1}", "big.json"); },
               {"big.json: invalid JSON at byte " + std::to_string(at), "duplicate key \"k77\""});
  expect_error([] { json::parse(R"({"a":1,"b":2,"a":3})", "small.json"); },
               {"small.json: invalid JSON at byte 13", "duplicate key \"a\""});
}

TEST(HostileJson, ValueCountAndDepthAreBounded) {
  std::string arr = "[0";
  for (int i = 0; i < 2000; ++i) arr += ",0";
  arr += "]";
  EXPECT_EQ(json::parse(arr, "a.json").array().size(), 2001u);
  expect_error([&] { json::parse(arr, "a.json", 0, {.max_values = 100}); }, {"a.json", "more than 100 values"});
  std::string deep = std::string(200, '[') + std::string(200, ']');
  expect_error([&] { json::parse(deep, "d.json"); }, {"d.json", "nesting deeper than 128"});
  // The default value limit applies to safetensors headers (3M values in a 6 MB header).
  std::string many = "{\"t\":{\"dtype\":\"F32\",\"shape\":[1";
  for (int i = 0; i < 2200000; ++i) many += ",1";
  many += "],\"data_offsets\":[0,4]}}";
  expect_error([&] { st_from(many, "abcd"); }, {"evil.safetensors: safetensors header", "more than 2097152 values"});
}

TEST(HostileJson, IntMemberRange) {
  const json::Value v = json::parse(R"({"width": -4, "depth": 12, "big": 18446744073709551615, "f": 1.5})");
  EXPECT_EQ(json::int_member(v, "depth", "cfg", 1, 1024), 12);
  expect_error([&] { json::int_member(v, "width", "cfg", 1, 65536); }, {"cfg: 'width' = -4 is outside [1, 65536]"});
  expect_error([&] { json::int_member(v, "big", "cfg", 0, 10); }, {"cfg: 'big' is 18446744073709551615"});
  expect_error([&] { json::int_member(v, "f", "cfg", 0, 10); }, {"cfg: 'f' is 1.5, expected an integer"});
  expect_error([&] { json::int_member(v, "nope", "cfg", 0, 10); }, {"cfg: no member 'nope'"});
}

// ---- safetensors
TEST(HostileSafetensors, ShapeProductsAreChecked) {
  expect_error([] { st_from(R"({"w":{"dtype":"F32","shape":[2199023255552,0],"data_offsets":[0,0]}})"); },
               {"evil.safetensors: tensor 'w': shape [2199023255552, 0]", "extent 2199023255552 exceeds"});
  expect_error([] { st_from(R"({"w":{"dtype":"BOOL","shape":[1099511627776,2],"data_offsets":[0,0]}})"); },
               {"tensor 'w'", "more than 1099511627776 elements"});
  // An empty tensor with sane extents is still fine.
  EXPECT_EQ(st_from(R"({"w":{"dtype":"F32","shape":[0,3],"data_offsets":[0,0]}})").info("w").numel(), 0);
}

// ---- metadata integers (a checkpoint's redi.step) and model configurations
TEST(HostileMetadata, StepOutOfRangeIsAnError) {
  const std::map<std::string, std::string> md = {
      {"redi.step", "18446744073709551615"}, {"ok", "42"}, {"neg", "-1"}, {"txt", "12a"}};
  EXPECT_EQ(metadata_int(md, "ok", "c.safetensors", 0, std::numeric_limits<std::int64_t>::max()), 42);
  expect_error([&] { metadata_int(md, "redi.step", "c.safetensors", 0, std::numeric_limits<std::int64_t>::max()); },
               {"c.safetensors: metadata 'redi.step' = \"18446744073709551615\" is outside [0, "});
  expect_error([&] { metadata_int(md, "neg", "c.safetensors", 0, 10); }, {"'neg' = \"-1\" is outside [0, 10]"});
  expect_error([&] { metadata_int(md, "txt", "c.safetensors", 0, 10); }, {"'txt' = \"12a\" is not an integer"});
  expect_error([&] { metadata_int(md, "absent", "c.safetensors", 0, 10); }, {"metadata has no 'absent'"});
}

TEST(HostileModelConfig, NegativeOrHugeFieldsAreErrors) {
  ModelConfig c;
  c.width = -4;
  c.heads = 2;
  expect_error([&] { c.validate(); }, {"ModelConfig: width -4 outside [1, 65536]"});
  c = ModelConfig{};
  c.depth = 1 << 30;
  expect_error([&] { c.validate(); }, {"ModelConfig: depth 1073741824 outside [1, 1024]"});
  c = ModelConfig{};
  c.freq_dim = -2;
  expect_error([&] { c.validate(); }, {"freq_dim -2 outside"});
  c = ModelConfig{};
  c.input_size = 1 << 20;
  c.patch = 2;
  expect_error([&] { c.validate(); }, {"input_size 1048576 outside"});
  EXPECT_NO_THROW(ModelConfig{}.validate());
  EXPECT_NO_THROW(ModelConfig{}.preset("XL/2").validate());
}

// ---- every committed fuzz regression file: a redi::Error naming it, or a clean load
TEST(HostileReplay, CommittedFuzzRegressionsAreErrors) {
  auto bytes = [](const fs::path& p) {
    std::ifstream f(p, std::ios::binary);
    const std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    return to_bytes(s);
  };
  int n = 0;
  for (const char* prefix : {"torch-", "zip-", "npz-", "safetensors-", "checkpoint-", "json-"})
    for (const fs::path& p : test::fuzz_regression_files(prefix)) {
      const std::string name = p.string(), pre = prefix;
      try {
        if (pre == "torch-") {
          auto c = TorchCheckpoint::from_bytes(bytes(p), name);
          for (const auto& t : c.names())
            if (c.info(t).supported) c.read<double>(t);
        } else if (pre == "zip-") {
          zip::Archive z(FileImage::from_bytes(bytes(p), name));
          for (const auto& e : z.entries()) (void)z.bytes(e);
        } else if (pre == "npz-") {
          auto z = NpzFile::from_bytes(bytes(p), name);
          for (const auto& a : z.names()) z.read<double>(a);
        } else if (pre == "safetensors-" || pre == "checkpoint-") {
          auto f = SafeTensorsFile::from_bytes(bytes(p), name);
          for (const auto& t : f.names())
            if (f.info(t).supported) f.read<double>(t);
        } else {
          auto b = bytes(p);
          json::parse(std::string_view(reinterpret_cast<const char*>(b.data()), b.size()), name);
        }
      } catch (const Error& err) {
        EXPECT_NE(std::string(err.what()).find(name), std::string::npos) << err.what();
      }
      ++n;
    }
  std::printf("replayed %d io fuzz regression files\n", n);
}
