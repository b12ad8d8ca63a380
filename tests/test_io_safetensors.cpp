// Tests for redi/io: the JSON parser, safetensors read/write (round trips, every corrupt-file
// case, the real DINOv2 PCA file) and the state-dict API.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "redi/core/paths.hpp"
#include "redi/io/json.hpp"
#include "redi/io/safetensors.hpp"
#include "redi/io/state_dict.hpp"
#include "io_test_util.hpp"

using namespace redi;
using namespace redi::io;
namespace fs = std::filesystem;
using redi::test::expect_error;
using redi::test::write_file;

namespace {

const auto& kTmp = test::add_program_temp_dir("redi_io_st");
fs::path temp_dir() { return kTmp.path(); }

std::string le64(std::uint64_t n) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[std::size_t(i)] = char((n >> (8 * i)) & 0xff);
  return s;
}

/// A safetensors file from a header text and `data_bytes` zero bytes of data.
fs::path st_file(const std::string& name, const std::string& header, std::size_t data_bytes) {
  fs::path p = temp_dir() / name;
  write_file(p, le64(header.size()) + header + std::string(data_bytes, '\0'));
  return p;
}

void expect_open_error(const std::string& name, const std::string& header, std::size_t data,
                       std::initializer_list<std::string> parts) {
  fs::path p = st_file(name, header, data);
  std::vector<std::string> all(parts);
  all.push_back(name);
  try {
    SafeTensorsFile::open(p);
  } catch (const Error& e) {
    std::string msg = e.what();
    for (const auto& part : all)
      EXPECT_NE(msg.find(part), std::string::npos) << "message: " << msg << "\nmissing: " << part;
    return;
  }
  ADD_FAILURE() << name << ": expected a redi::Error";
}

}  // namespace

// ------------------------------------------------------------------------------------- JSON
TEST(Json, ParsesValuesAndEscapes) {
  auto v = json::parse(R"( {"a": [1, -2.5e3, true, false, null], "s": "x\"\\\/\n\u00e9\ud83d\ude00",
                           "big": 18446744073709551615, "i": 9007199254740993} )");
  ASSERT_TRUE(v.is_object());
  const auto& a = v.find("a")->array();
  ASSERT_EQ(a.size(), 5u);
  std::int64_t i = 0;
  EXPECT_TRUE(a[0].int64(i));
  EXPECT_EQ(i, 1);
  EXPECT_EQ(a[1].as_double(), -2500.0);
  EXPECT_FALSE(a[1].is_int64());
  EXPECT_TRUE(a[2].as_bool());
  EXPECT_TRUE(a[4].is_null());
  EXPECT_EQ(v.find("s")->str(), "x\"\\/\n\xc3\xa9\xf0\x9f\x98\x80");
  EXPECT_FALSE(v.find("big")->is_int64());  // does not fit int64: never silently rounded
  EXPECT_TRUE(v.find("i")->int64(i));
  EXPECT_EQ(i, 9007199254740993);  // exact, not via double
  EXPECT_EQ(json::parse(json::quote("a\"b\\c\n\x01")).str(), "a\"b\\c\n\x01");
}

TEST(Json, RejectsMalformedWithOffset) {
  expect_error([] { json::parse(R"({"a":1,})", "doc"); }, {"doc", "byte 7", "string key"});
  expect_error([] { json::parse(R"({"a":1} x)", "doc"); }, {"byte 8", "after the JSON value"});
  expect_error([] { json::parse(R"({"a":1,"a":2})"); }, {"duplicate key \"a\""});
  expect_error([] { json::parse("[01]"); }, {"leading zero"});
  expect_error([] { json::parse("\"\\ud800x\""); }, {"surrogate"});
  expect_error([] { json::parse("\"a\tb\""); }, {"control character"});
  expect_error([] { json::parse("[1,2"); }, {"unterminated array"});
  expect_error([] { json::parse("\"abc"); }, {"unterminated string"});
  expect_error([] { json::parse("nul"); }, {"expected 'null'"});
  expect_error([] { json::parse(std::string(200, '[')); }, {"nesting"});
  expect_error([] { json::parse(""); }, {"unexpected end"});
}

// ------------------------------------------------------------------------------ round trips
TEST(SafeTensors, RoundTripEveryDtype) {
  std::vector<float> f32 = {0.f, 1.f, -2.5f, 3.14159274f, 1e-8f, -65504.f};
  std::vector<double> f64 = {0.1, -1e300, 3.141592653589793};
  std::vector<half> f16;
  std::vector<bf16> b16;
  for (float x : f32) { f16.push_back(half(x)); b16.push_back(bf16(x)); }
  std::vector<std::int32_t> i32 = {0, -1, 2147483647, -2147483647 - 1};
  std::vector<std::int64_t> i64 = {0, -1, 9007199254740993, -9223372036854775807 - 1};
  std::vector<std::uint8_t> u8 = {0, 1, 127, 255, 7, 8};

  SafeTensorsWriter w;
  w.add("f32", DType::F32, {2, 3}, f32.data());
  w.add("f64", DType::F64, {3}, f64.data());
  w.add("f16", DType::F16, {6}, f16.data());
  w.add("bf16", DType::BF16, {3, 2}, b16.data());
  w.add("i32", DType::I32, {4}, i32.data());
  w.add("i64", DType::I64, {2, 2}, i64.data());
  w.add("u8", DType::U8, {1, 2, 3}, u8.data());
  w.add<float>("as_bf16", Shape{6}, f32.data(), DType::BF16);
  w.add<float>("as_f16", Shape{6}, f32.data(), DType::F16);
  w.add<float>("as_f64", Shape{6}, f32.data(), DType::F64);
  w.add("scalar", DType::F32, {}, f32.data() + 2);
  w.add("empty", DType::F32, {0, 4}, nullptr);
  fs::path p = temp_dir() / "roundtrip.safetensors";
  w.write(p, {{"format", "pt"}, {"note", "quote\" and \\ and \u00e9"}});

  SafeTensorsFile f = SafeTensorsFile::open(p);
  EXPECT_EQ(f.names().size(), 12u);
  EXPECT_EQ(f.names()[0], "f32");  // insertion order kept
  EXPECT_EQ(f.metadata().at("format"), "pt");
  EXPECT_EQ(f.metadata().at("note"), "quote\" and \\ and \u00e9");
  EXPECT_EQ(f.trailing_bytes(), 0u);
  EXPECT_EQ((8 + f.header_size()) % 8, 0u);
  EXPECT_EQ(f.info("bf16").dtype, DType::BF16);
  EXPECT_EQ(f.info("u8").shape, (std::vector<std::int64_t>{1, 2, 3}));

  EXPECT_EQ(f.read<float>("f32", Shape{2, 3}), f32);  // exact
  EXPECT_EQ(f.read<double>("f64"), f64);
  EXPECT_EQ(f.read<std::int32_t>("i32"), i32);
  EXPECT_EQ(f.read<std::int64_t>("i64"), i64);
  EXPECT_EQ(f.read<std::uint8_t>("u8"), u8);
  auto h = f.read<half>("f16");
  auto b = f.read<bf16>("bf16");
  auto hb = f.read<float>("as_f16"), bb = f.read<float>("as_bf16");
  for (std::size_t i = 0; i < f32.size(); ++i) {
    EXPECT_EQ(h[i].bits, f16[i].bits);
    EXPECT_EQ(b[i].bits, b16[i].bits);
    EXPECT_EQ(hb[i], float(half(f32[i])));  // exactly one rounding
    EXPECT_EQ(bb[i], float(bf16(f32[i])));
  }
  EXPECT_EQ(f.read<float>("as_f64"), f32);
  EXPECT_EQ(f.read<double>("f32")[3], double(f32[3]));  // widening
  EXPECT_EQ(f.read<std::int64_t>("i32")[2], 2147483647);
  EXPECT_EQ(f.read<float>("scalar", Shape{}), std::vector<float>{-2.5f});
  EXPECT_TRUE(f.read<float>("empty", Shape{0, 4}).empty());
  EXPECT_EQ(f.bytes("f32").size(), 24u);

  // No temporary left behind; overwriting works.
  w.write(p);
  int files = 0;
  for (const auto& e : fs::directory_iterator(temp_dir()))
    files += e.path().filename().string().find("roundtrip") != std::string::npos;
  EXPECT_EQ(files, 1);
  EXPECT_TRUE(SafeTensorsFile::open(p).metadata().empty());
}

TEST(SafeTensors, WriterRejectsBadInput) {
  SafeTensorsWriter w;
  float x = 1;
  w.add<float>("a", Shape{1}, &x);
  expect_error([&] { w.add<float>("a", Shape{1}, &x); }, {"'a' added twice"});
  std::int32_t k = 1;
  expect_error([&] { w.add<std::int32_t>("k", Shape{1}, &k, DType::F16); }, {"'k'", "cannot store"});
  expect_error([&] { w.write(temp_dir() / "no_such_dir" / "x.safetensors"); },
               {"x.safetensors", "cannot create temporary file"});
}

// ---------------------------------------------------------------------------- corrupt files
TEST(SafeTensors, FileLevelErrors) {
  expect_error([] { SafeTensorsFile::open(temp_dir() / "missing.safetensors"); },
               {"missing.safetensors", "cannot open"});
  write_file(temp_dir() / "tiny.safetensors", "abcde");
  expect_error([] { SafeTensorsFile::open(temp_dir() / "tiny.safetensors"); },
               {"tiny.safetensors", "5 bytes", "too short"});
  write_file(temp_dir() / "trunc.safetensors", le64(1000) + "{}");
  expect_error([] { SafeTensorsFile::open(temp_dir() / "trunc.safetensors"); },
               {"trunc.safetensors", "header length 1000 exceeds the file size 10"});
  write_file(temp_dir() / "huge.safetensors", le64(200'000'000) + "{}");
  expect_error([] { SafeTensorsFile::open(temp_dir() / "huge.safetensors"); },
               {"huge.safetensors", "200000000", "implausibly large"});
  expect_open_error("badjson.safetensors", R"({"w":{"dtype":"F32",})", 0,
                    {"invalid JSON at byte 28"});
  expect_open_error("array.safetensors", "[1, 2]", 0, {"JSON array, expected an object"});
  expect_error([] { SafeTensorsFile::from_bytes({}, "in-memory"); }, {"in-memory", "too short"});
}

TEST(SafeTensors, EntryLevelErrors) {
  const std::string ok = R"("shape":[2],"data_offsets":[0,8])";
  expect_open_error("nodtype.safetensors", R"({"w":{)" + ok + "}}", 8,
                    {"tensor 'w'", "missing \"dtype\""});
  expect_open_error("noshape.safetensors", R"({"w":{"dtype":"F32","data_offsets":[0,8]}})", 8,
                    {"tensor 'w'", "missing \"shape\""});
  expect_open_error("nooffs.safetensors", R"({"w":{"dtype":"F32","shape":[2]}})", 8,
                    {"tensor 'w'", "missing \"data_offsets\""});
  expect_open_error("notobj.safetensors", R"({"w":[1]})", 0,
                    {"tensor 'w'", "entry is a JSON array"});
  expect_open_error("dtypenum.safetensors", R"({"w":{"dtype":4,)" + ok + "}}", 8,
                    {"tensor 'w'", "\"dtype\" is a JSON number, expected string"});
  expect_open_error("shapestr.safetensors",
                    R"({"w":{"dtype":"F32","shape":"2","data_offsets":[0,8]}})", 8,
                    {"tensor 'w'", "\"shape\" is a JSON string, expected array"});
  expect_open_error("shapeneg.safetensors",
                    R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8,
                    {"tensor 'w'", "non-negative integers, found -2"});
  expect_open_error("shapefrac.safetensors",
                    R"({"w":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}})", 8,
                    {"tensor 'w'", "found 2.0"});
  expect_open_error("offs3.safetensors",
                    R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8,9]}})", 9,
                    {"tensor 'w'", "3 entries, expected 2"});
  expect_open_error("unkdtype.safetensors", R"({"w":{"dtype":"F33",)" + ok + "}}", 8,
                    {"tensor 'w'", "unknown dtype \"F33\""});
  expect_open_error("backwards.safetensors",
                    R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", 8,
                    {"tensor 'w'", "[8, 0] end before begin"});
  expect_open_error("pastend.safetensors",
                    R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 8,
                    {"tensor 'w'", "run past the end of the data buffer (8 bytes)"});
  expect_open_error("badsize.safetensors",
                    R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8,
                    {"tensor 'w'", "span 8 bytes but shape [3] of F32 needs 12 bytes"});
  expect_open_error("hugeshape.safetensors",
                    R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})",
                    8, {"tensor 'w'", "shape holds more than 1099511627776 elements"});
  expect_open_error("overlap.safetensors",
                    R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                    R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                    12, {"tensors 'a'", "'b'", "overlap"});
  expect_open_error("dupname.safetensors",
                    R"({"a":{"dtype":"F32",)" + ok + R"(},"a":{"dtype":"F32",)" + ok + "}}", 8,
                    {"duplicate key \"a\""});
  expect_open_error("badmeta.safetensors", R"({"__metadata__":{"step":5}})", 0,
                    {"\"__metadata__\" value for \"step\"", "expected a string"});
}

TEST(SafeTensors, ReadErrorsAndTolerances) {
  // 'idx' is I64, 'w' F32 [2,3], 'flag' BOOL; 7 unused bytes at the end; a 4-byte gap.
  std::string header =
      R"({"idx":{"dtype":"I64","shape":[2],"data_offsets":[0,16]},)"
      R"("w":{"dtype":"F32","shape":[2,3],"data_offsets":[20,44]},)"
      R"("flag":{"dtype":"BOOL","shape":[1],"data_offsets":[44,45],"extra":"ignored"}})";
  fs::path p = st_file("reads.safetensors", header, 45 + 7);
  SafeTensorsFile f = SafeTensorsFile::open(p);
  EXPECT_EQ(f.trailing_bytes(), 7u);
  EXPECT_FALSE(f.info("flag").supported);
  EXPECT_EQ(f.info("flag").dtype_name, "BOOL");
  expect_error([&] { f.read<float>("idx"); },
               {"reads.safetensors", "tensor 'idx' is I64, cannot convert it to F32"});
  expect_error([&] { f.read<float>("w", Shape{3, 2}); },
               {"reads.safetensors", "tensor 'w' has shape [2, 3], expected [3, 2]"});
  expect_error([&] { f.read<float>("flag"); }, {"tensor 'flag' has dtype BOOL"});
  expect_error([&] { f.info("nope"); }, {"reads.safetensors", "no tensor named 'nope'"});
  std::vector<float> small(5);
  expect_error([&] { f.read_into<float>("w", std::span<float>(small)); },
               {"tensor 'w' has 6 elements", "destination holds 5"});
  EXPECT_EQ(f.read<std::int64_t>("idx"), (std::vector<std::int64_t>{0, 0}));
  expect_error([&] { f.read<std::int32_t>("idx"); }, {"I64, cannot convert it to I32"});
}

// ---------------------------------------------------------------------------- state dicts
TEST(StateDict, SaveLoadStrictAndReports) {
  std::vector<float> w(6), bias(3);
  for (int i = 0; i < 6; ++i) w[std::size_t(i)] = 0.5f * float(i) - 1.f;
  for (int i = 0; i < 3; ++i) bias[std::size_t(i)] = float(i) + 0.25f;
  std::vector<ParamRef<float>> params = {{"layer.weight", Shape{2, 3}, w.data()},
                                         {"layer.bias", Shape{3}, bias.data()}};
  fs::path p = temp_dir() / "state.safetensors";
  save_state(p, params, DType::BF16, {{"step", "7"}});
  EXPECT_EQ(SafeTensorsFile::open(p).metadata().at("step"), "7");

  std::vector<float> w2(6, 9.f), b2(3, 9.f);
  std::vector<ParamRef<float>> dst = {{"layer.weight", Shape{2, 3}, w2.data()},
                                      {"layer.bias", Shape{3}, b2.data()}};
  LoadReport rep = load_state(p, dst);
  EXPECT_EQ(rep.loaded.size(), 2u);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(w2[std::size_t(i)], float(bf16(w[std::size_t(i)])));
  EXPECT_EQ(b2, bias);  // all exactly representable in bf16

  // Missing and unexpected keys: strict lists them; non-strict reports them.
  std::vector<float> extra(4, 9.f);
  std::vector<ParamRef<float>> other = {{"layer.weight", Shape{2, 3}, w2.data()},
                                        {"head.weight", Shape{4}, extra.data()}};
  expect_error([&] { load_state(p, other); },
               {"state.safetensors", "1 missing key(s): head.weight",
                "1 unexpected key(s): layer.bias"});
  rep = load_state(p, other, {.strict = false, .prefix = ""});
  EXPECT_EQ(rep.missing, std::vector<std::string>{"head.weight"});
  EXPECT_EQ(rep.unexpected, std::vector<std::string>{"layer.bias"});
  EXPECT_EQ(extra[0], 9.f);

  // Shape mismatch anywhere: nothing is written.
  std::vector<float> w3(6, 9.f), b3(3, 9.f);
  std::vector<ParamRef<float>> bad = {{"layer.weight", Shape{2, 3}, w3.data()},
                                      {"layer.bias", Shape{1, 3}, b3.data()}};
  expect_error([&] { load_state(p, bad); },
               {"state.safetensors", "tensor 'layer.bias' has shape [3], expected [1, 3]"});
  EXPECT_EQ(w3[0], 9.f);

  // Prefix: the file's "layer." names map to parameters "weight", "bias".
  std::vector<ParamRef<float>> pre = {{"weight", Shape{2, 3}, w3.data()},
                                      {"bias", Shape{3}, b3.data()}};
  load_state(p, pre, {.prefix = "layer."});
  EXPECT_EQ(b3, bias);
  std::fill(b3.begin(), b3.end(), 0.f);
  load_state(SafeTensorsFile::open(p), pre, {.prefix = "layer."});  // from an open source
  EXPECT_EQ(b3, bias);

  // Doubles in, F64 file, doubles out, exact.
  std::vector<double> d = {1.0 / 3, -2.0 / 7};
  std::vector<ParamRef<double>> dp = {{"d", Shape{2}, d.data()}};
  save_state(temp_dir() / "d.safetensors", dp);
  std::vector<double> d2(2);
  std::vector<ParamRef<double>> dq = {{"d", Shape{2}, d2.data()}};
  load_state(temp_dir() / "d.safetensors", dq);
  EXPECT_EQ(d2, d);
}

// ------------------------------------------------------------------------- the real file
TEST(SafeTensors, RealDinoV2PcaFile) {
  // Shipped in the repository's data/ folder (data/README.md): never skipped.
  const fs::path p = redi::data_file("dinov2_vitb14_reg_pca.safetensors");
  SafeTensorsFile f = SafeTensorsFile::open(p);
  for (const char* k : {"feature_mean", "feature_std", "pca_mean", "explained_variance"}) {
    ASSERT_TRUE(f.contains(k)) << k;
    EXPECT_EQ(f.info(k).dtype, DType::F32) << k;
    EXPECT_EQ(f.info(k).shape, std::vector<std::int64_t>{768}) << k;
  }
  EXPECT_EQ(f.info("components").dtype, DType::F32);
  EXPECT_EQ(f.names().size(), 5u);
  auto c = f.read<double>("components", Shape{768, 768});
  // Rows orthonormal: C C^T = I.
  double worst = 0;
  for (int i = 0; i < 768; ++i)
    for (int j = i; j < 768; ++j) {
      double s = 0;
      for (int k = 0; k < 768; ++k) s += c[std::size_t(i * 768 + k)] * c[std::size_t(j * 768 + k)];
      worst = std::max(worst, std::fabs(s - (i == j ? 1.0 : 0.0)));
    }
  EXPECT_LT(worst, 1e-4);
  auto ev = f.read<float>("explained_variance", Shape{768});
  const double stds[8] = {5.77, 4.90, 4.79, 4.20, 4.01, 3.77, 3.68, 3.56};
  for (int i = 0; i < 8; ++i) EXPECT_NEAR(std::sqrt(ev[std::size_t(i)]), stds[i], 0.01) << i;
  for (int i = 1; i < 768; ++i) EXPECT_LE(ev[std::size_t(i)], ev[std::size_t(i - 1)]);
  auto sd = f.read<float>("feature_std", Shape{768});
  for (float s : sd) EXPECT_GT(s, 0.f);
}
