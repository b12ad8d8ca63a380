// DINOv2 with registers (nn/dinov2.hpp, weights/dinov2.hpp) and its new ops: PyTorch parity
// (tests/data/dinov2/, made by make_dinov2_ref.py there: an independent float64 PyTorch
// implementation of the published architecture on random weights under the transformers names),
// sensitivity of the parity to misused weights, the loader's errors, the full-size name table.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "io_test_util.hpp"
#include "redi/data/features.hpp"
#include "redi/io/safetensors.hpp"
#include "redi/nn/dinov2.hpp"
#include "redi/ops/activation.hpp"
#include "redi/ops/layernorm.hpp"
#include "redi/ops/resize_aa.hpp"
#include "redi/weights/dinov2.hpp"

namespace fs = std::filesystem;
using namespace redi;
using redi::test::expect_error;
using redi::test::test_data_path;

namespace {

fs::path tiny_path() { return test_data_path("dinov2/tiny_dinov2.safetensors"); }
io::SafeTensorsFile ref() { return io::SafeTensorsFile::open(test_data_path("dinov2/dinov2_ref.safetensors")); }

/// max |a - b| / max |b|.
template <class A>
double rel_err(const std::vector<A>& a, const std::vector<double>& b) {
  EXPECT_EQ(a.size(), b.size());
  double num = 0, den = 0;
  for (std::size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    num = std::max(num, std::abs(double(a[i]) - b[i]));
    den = std::max(den, std::abs(b[i]));
  }
  return num / den;
}

template <class T>
std::vector<T> run(Dinov2<T>& net, const std::vector<T>& pixels, int B, int H, int W) {
  const auto g = net.grid(H, W);
  std::vector<T> out(std::size_t(B) * g[0] * g[1] * net.feature_dim());
  net.forward(pixels.data(), B, H, W, out.data());
  return out;
}

/// The C++ preprocessing of case A's uint8 images: [-1, 1] floats -> dinov2_preprocess(42).
std::vector<float> case_a_pixels_cpp() {
  const auto u8 = ref().read<std::int64_t>("case_a_u8");
  Tensor<float> x(Shape{2, 3, 48, 48});
  for (std::size_t i = 0; i < u8.size(); ++i) x.data()[i] = float(u8[i]) / 127.5f - 1.f;
  const Tensor<float> p = data::dinov2_preprocess(x.view(), 42);
  return {p.data(), p.data() + p.numel()};
}

}  // namespace

// ---- ops

TEST(Dinov2Ops, ResizeBicubicAntialiasMatchesTorch) {
  const auto f = ref();
  const auto in = f.read<double>("resize_in");  // [2, 37, 37]
  struct Case { const char* key; int oh, ow; double s; };
  for (const Case c : {Case{"resize_size16", 16, 16, 0.0}, Case{"resize_legacy16", 16, 16, 37.0 / 16.1},
                       Case{"resize_up", 40, 45, 0.0}, Case{"resize_rect", 9, 23, 0.0}}) {
    const auto want = f.read<double>(c.key);
    std::vector<double> got(std::size_t(2) * c.oh * c.ow);
    ops::resize_bicubic_aa(in.data(), 2, 37, 37, got.data(), c.oh, c.ow, c.s, c.s);
    EXPECT_LT(rel_err(got, want), 1e-13) << c.key;
    const std::vector<float> inf(in.begin(), in.end());
    std::vector<float> gotf(got.size());
    ops::resize_bicubic_aa(inf.data(), 2, 37, 37, gotf.data(), c.oh, c.ow, c.s, c.s);
    EXPECT_LT(rel_err(gotf, want), 1e-6) << c.key;
  }
  // the legacy scale differs from the size-given one by far more than the tolerance
  EXPECT_GT(rel_err(f.read<double>("resize_legacy16"), f.read<double>("resize_size16")), 1e-3);
  // equal sizes: an exact copy
  std::vector<double> same(in.size());
  ops::resize_bicubic_aa(in.data(), 2, 37, 37, same.data(), 37, 37);
  EXPECT_EQ(same, in);
}

TEST(Dinov2Ops, GeluErfFloatMatchesStdErf) {
  std::vector<float> x, y;
  for (int i = -4000; i <= 4000; ++i) x.push_back(float(i) * 0.0025f);  // [-10, 10]
  y.resize(x.size());
  ops::gelu_erf_forward(cpu, y.data(), x.data(), std::int64_t(x.size()));
  double worst_abs = 0, worst_rel = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double e = 0.5 * double(x[i]) * std::erfc(-double(x[i]) / std::sqrt(2.0));
    worst_abs = std::max(worst_abs, std::abs(double(y[i]) - e));
    if (std::abs(e) > 1e-20) worst_rel = std::max(worst_rel, std::abs(double(y[i]) - e) / std::abs(e));
  }
  EXPECT_LT(worst_abs, 2e-6);
  EXPECT_LT(worst_rel, 2e-5);  // relative even in the far negative tail (erfc form)
  // it is NOT the tanh approximation (which differs by ~1e-3 near |x| = 2)
  std::vector<float> t(x.size());
  ops::gelu_forward(cpu, t.data(), x.data(), std::int64_t(x.size()));
  double diff = 0;
  for (std::size_t i = 0; i < x.size(); ++i) diff = std::max(diff, std::abs(double(t[i]) - double(y[i])));
  EXPECT_GT(diff, 1e-4);
  // double: exactly the formula
  const std::vector<double> xd{-3.0, -0.5, 0.0, 0.7, 2.5};
  std::vector<double> yd(xd.size());
  ops::gelu_erf_forward(cpu, yd.data(), xd.data(), 5);
  for (std::size_t i = 0; i < xd.size(); ++i) EXPECT_EQ(yd[i], 0.5 * xd[i] * std::erfc(-xd[i] * 0.70710678118654752440));
}

TEST(Dinov2Ops, LayerNormAffineEqualsNormalisedTimesGammaPlusBeta) {
  const int rows = 5, C = 37;
  std::vector<double> x(rows * C), g(C), b(C), y(rows * C), plain(rows * C);
  for (int i = 0; i < rows * C; ++i) x[std::size_t(i)] = std::sin(0.37 * i) * (1 + i % 7);
  for (int c = 0; c < C; ++c) g[std::size_t(c)] = 1.0 + 0.1 * c, b[std::size_t(c)] = 0.05 * c - 0.3;
  ops::layernorm_affine_forward(cpu, y.data(), x.data(), g.data(), b.data(), rows, C, 1e-6);
  ops::layernorm_forward(cpu, plain.data(), static_cast<double*>(nullptr), static_cast<double*>(nullptr), x.data(),
                         rows, C, 1e-6);
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < C; ++c) {
      const std::size_t i = std::size_t(r * C + c);
      EXPECT_NEAR(y[i], plain[i] * g[std::size_t(c)] + b[std::size_t(c)], 1e-13);
    }
}

// ---- preprocessing and the network

TEST(Dinov2, PreprocessingMatchesTheAuthorsPipeline) {
  const auto want = ref().read<double>("case_a_pixels");
  const auto got = case_a_pixels_cpp();
  double worst = 0;
  for (std::size_t i = 0; i < want.size(); ++i) worst = std::max(worst, std::abs(double(got[i]) - want[i]));
  EXPECT_LT(worst, 5e-5);  // float pipeline vs float64 reference (|pixels| up to ~2.6)
}

TEST(Dinov2, ConfigIsReadFromTheCheckpoint) {
  const Dinov2Config c = dinov2_config_from_file(tiny_path());
  EXPECT_EQ(c.width, 16);
  EXPECT_EQ(c.heads, 2);  // from the metadata; width / 64 otherwise
  EXPECT_EQ(c.depth, 2);
  EXPECT_EQ(c.mlp_dim, 64);
  EXPECT_EQ(c.registers, 4);
  EXPECT_EQ(c.patch, 14);
  EXPECT_EQ(c.pos_grid, 37);
  EXPECT_EQ(c.channels, 3);
}

TEST(Dinov2, FloatMatchesPyTorchReference) {
  auto net = load_dinov2<float>(tiny_path());
  const auto f = ref();
  // case A: uint8 -> the C++ preprocessing -> network (3x3 grid at 42 px: the 37x37 table shrunk)
  const auto a = run(net, case_a_pixels_cpp(), 2, 42, 42);
  const double ea = rel_err(a, f.read<double>("case_a_tokens"));
  EXPECT_LT(ea, 1e-4);
  // case B: a rectangular 2x5 grid
  const auto pb = f.read<float>("case_b_pixels");
  const double eb = rel_err(run(net, pb, 1, 28, 70), f.read<double>("case_b_tokens"));
  EXPECT_LT(eb, 1e-4);
  std::cout << "[dinov2 parity] float: case A (uint8 -> tokens) rel err " << ea << ", case B " << eb << "\n";
  // the arena does not grow for a batch it already fits
  const auto before = net.arena_allocations();
  (void)run(net, pb, 1, 28, 70);
  EXPECT_EQ(net.arena_allocations(), before);
  // images are independent: chunks of one image give the batch's result
  net.set_chunk_batch(1);
  const auto a1 = run(net, case_a_pixels_cpp(), 2, 42, 42);
  EXPECT_LT(rel_err(a1, std::vector<double>(a.begin(), a.end())), 1e-6);
}

TEST(Dinov2, DoubleMatchesPyTorchReferenceToRoundOff) {
  auto net = load_dinov2<double>(tiny_path());
  const auto f = ref();
  const auto pa = f.read<double>("case_a_pixels");  // float32 values
  const double ea = rel_err(run(net, pa, 2, 42, 42), f.read<double>("case_a32_tokens"));
  const double eb = rel_err(run(net, f.read<double>("case_b_pixels"), 1, 28, 70), f.read<double>("case_b_tokens"));
  EXPECT_LT(ea, 1e-10);
  EXPECT_LT(eb, 1e-10);
  std::cout << "[dinov2 parity] double: case A rel err " << ea << ", case B " << eb << "\n";
}

TEST(Dinov2, LegacyPositionResizeMatchesItsReference) {
  Dinov2Config c = dinov2_config_from_file(tiny_path());
  c.pos_offset = 0.1;
  Dinov2<double> net(c);
  net.load_weights(tiny_path());
  const auto f = ref();
  const auto out = run(net, f.read<double>("case_a_pixels"), 2, 42, 42);
  EXPECT_LT(rel_err(out, f.read<double>("case_c_tokens")), 1e-10);
  EXPECT_GT(rel_err(out, f.read<double>("case_a32_tokens")), 1e-3);  // and it is not the default
}

TEST(Dinov2, ParityFailsWhenAWeightIsMisused) {
  const auto f = ref();
  const auto pa = f.read<double>("case_a_pixels");
  const auto want = f.read<double>("case_a32_tokens");
  auto base = load_dinov2<double>(tiny_path());
  ASSERT_LT(rel_err(run(base, pa, 2, 42, 42), want), 1e-10);
  auto swap_tensors = [](Dinov2<double>& n, const std::string& a, const std::string& b) {
    const auto *ea = n.find(a), *eb = n.find(b);
    ASSERT_TRUE(ea && eb) << a << " " << b;
    ASSERT_EQ(ea->numel(), eb->numel());
    std::swap_ranges(n.params().data() + ea->offset, n.params().data() + ea->offset + ea->numel(),
                     n.params().data() + eb->offset);
  };
  auto transpose = [](Dinov2<double>& n, const std::string& a) {
    const auto* e = n.find(a);
    const std::int64_t r = e->shape[0];
    double* w = n.params().data() + e->offset;
    for (std::int64_t i = 0; i < r; ++i)
      for (std::int64_t j = i + 1; j < r; ++j) std::swap(w[i * r + j], w[j * r + i]);
  };
  auto zero = [](Dinov2<double>& n, const std::string& a) {
    const auto* e = n.find(a);
    std::fill_n(n.params().data() + e->offset, e->numel(), 0.0);
  };
  const std::string l0 = "encoder.layer.0.", l1 = "encoder.layer.1.";
  const std::vector<std::pair<std::string, std::function<void(Dinov2<double>&)>>> misuses = {
      {"query <-> key", [&](auto& n) { swap_tensors(n, l0 + "attention.attention.query.weight", l0 + "attention.attention.key.weight"); }},
      {"key <-> value bias", [&](auto& n) { swap_tensors(n, l1 + "attention.attention.key.bias", l1 + "attention.attention.value.bias"); }},
      {"dense transposed", [&](auto& n) { transpose(n, l1 + "attention.output.dense.weight"); }},
      {"layer_scale1 <-> layer_scale2", [&](auto& n) { swap_tensors(n, l0 + "layer_scale1.lambda1", l0 + "layer_scale2.lambda1"); }},
      {"norm1 <-> norm2", [&](auto& n) { swap_tensors(n, l1 + "norm1.weight", l1 + "norm2.weight"); }},
      {"layers swapped", [&](auto& n) { swap_tensors(n, l0 + "mlp.fc1.weight", l1 + "mlp.fc1.weight"); }},
      {"registers zeroed", [&](auto& n) { zero(n, "embeddings.register_tokens"); }},
      {"cls zeroed", [&](auto& n) { zero(n, "embeddings.cls_token"); }},
      {"final layernorm bias zeroed", [&](auto& n) { zero(n, "layernorm.bias"); }},
      {"projection bias zeroed", [&](auto& n) { zero(n, "embeddings.patch_embeddings.projection.bias"); }},
  };
  for (const auto& [what, corrupt] : misuses) {
    auto net = load_dinov2<double>(tiny_path());
    corrupt(net);
    net.params_changed();
    EXPECT_GT(rel_err(run(net, pa, 2, 42, 42), want), 1e-3) << what;
  }
  // the mask token is loaded but never used (pre-training only)
  auto net = load_dinov2<double>(tiny_path());
  zero(net, "embeddings.mask_token");
  EXPECT_LT(rel_err(run(net, pa, 2, 42, 42), want), 1e-10);
}

// ---- files

TEST(Dinov2, BinWithClassifierPrefixLoadsLikeSafetensors) {
  const auto st = test_data_path("dinov2/tiny_dinov2_w8.safetensors"), bin = test_data_path("dinov2/tiny_dinov2_w8.bin");
  const Dinov2Config cs = dinov2_config_from_file(st), cb = dinov2_config_from_file(bin, 2);
  EXPECT_EQ(cs.str(), cb.str());
  EXPECT_EQ(cb.pos_grid, 3);
  EXPECT_EQ(cb.registers, 2);
  auto a = load_dinov2<float>(st);
  auto b = load_dinov2<float>(bin, 2);
  ASSERT_EQ(a.num_params(), b.num_params());
  EXPECT_TRUE(std::equal(a.params().data(), a.params().data() + a.num_params(), b.params().data()));
}

TEST(Dinov2, LoaderErrorsNameTheFileAndTheTensor) {
  const fs::path dir = fs::temp_directory_path() / "redi_test_dinov2_loader";
  fs::create_directories(dir);
  const auto src = io::SafeTensorsFile::open(tiny_path());
  const Dinov2Config cfg = dinov2_config_from_file(tiny_path());
  auto write_variant = [&](const fs::path& p, const std::string& drop, const std::string& extra,
                           const std::string& reshape) {
    io::SafeTensorsWriter w;
    std::vector<std::vector<float>> keep;
    for (const auto& n : src.names()) {
      if (n == drop) continue;
      keep.push_back(src.read<float>(n));
      Shape s = Shape::from(src.info(n).shape);
      if (n == reshape) s = Shape{std::int64_t(keep.back().size())};
      w.add(n, s, keep.back().data());
    }
    std::vector<float> one{1.f};
    if (!extra.empty()) w.add(extra, Shape{1}, one.data());
    w.write(p, {{"num_attention_heads", "2"}});
  };
  const auto missing = dir / "missing.safetensors", unexpected = dir / "unexpected.safetensors",
             shape = dir / "shape.safetensors", trunc = dir / "trunc.safetensors";
  write_variant(missing, "encoder.layer.1.mlp.fc2.bias", "", "");
  write_variant(unexpected, "", "encoder.layer.0.extra.weight", "");
  write_variant(shape, "", "", "encoder.layer.0.attention.attention.value.weight");
  {
    std::ifstream in(tiny_path(), std::ios::binary);
    std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::ofstream(trunc, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size() - 1000));
  }
  auto load = [&](const fs::path& p) {
    Dinov2<float> n(cfg);
    n.load_weights(p);
  };
  expect_error([&] { load(missing); }, {"missing.safetensors", "missing", "encoder.layer.1.mlp.fc2.bias"});
  expect_error([&] { load(unexpected); }, {"unexpected.safetensors", "unexpected", "encoder.layer.0.extra.weight"});
  expect_error([&] { load(shape); }, {"shape.safetensors", "encoder.layer.0.attention.attention.value.weight"});
  expect_error([&] { load(trunc); }, {"trunc.safetensors"});
  expect_error([&] { (void)dinov2_config_from_file(trunc); }, {"trunc.safetensors"});
  fs::remove_all(dir);
}

TEST(Dinov2, FullSizeNamesAndShapesAreTheTransformersOnes) {
  // the committed table (written by the reference script from its independent state_dict listing)
  std::ifstream in(test_data_path("dinov2/dinov2_base_names.txt"));
  ASSERT_TRUE(in.good());
  std::map<std::string, std::string> want;
  std::string line;
  std::int64_t total = 0;
  while (std::getline(in, line)) {
    if (line.rfind("# total ", 0) == 0) total = std::stoll(line.substr(8));
    if (line.empty() || line[0] == '#') continue;
    std::istringstream is(line);
    std::string name, shape;
    is >> name >> shape;
    want[name] = shape;
  }
  const ParamLayout L = dinov2_param_layout(Dinov2Config::base());  // no weights allocated
  ASSERT_EQ(L.entries.size(), want.size());
  for (const auto& e : L.entries) {
    std::string s;
    for (int d = 0; d < e.shape.rank; ++d) s += (d ? "x" : "") + std::to_string(e.shape[d]);
    ASSERT_TRUE(want.count(e.name)) << e.name;
    EXPECT_EQ(want[e.name], s) << e.name;
  }
  EXPECT_EQ(L.total, total);
  EXPECT_EQ(L.total, 86583552);  // facebook/dinov2-with-registers-base, with the mask token
  const auto* pe = L.find("embeddings.position_embeddings");
  EXPECT_EQ(pe->shape[1], 1 + 37 * 37);
}
