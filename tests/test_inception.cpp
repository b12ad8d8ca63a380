// The FID Inception (nn/inception.hpp, weights/inception.hpp, eval/inception.hpp) against the
// PyTorch float64 reference of tests/data/inception/make_inception_ref.py (pseudo-random weights
// under the published names, generated on both sides by the same integer hash), and the loader's
// refusals (missing, mis-shaped, unexpected, non-finite tensors; torch ZIP and safetensors).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "io_test_util.hpp"
#include "redi/eval/inception.hpp"
#include "redi/io/safetensors.hpp"
#include "redi/weights/inception_synthetic.hpp"

namespace {

using redi::InceptionV3;

using MapSource = redi::MemoryTensors;
/// The synthetic weights (weights/inception_synthetic.hpp) — the script's make_weights().
const MapSource& weights() {
  static const MapSource w = redi::inception_synthetic_weights();
  return w;
}

struct Ref {
  redi::io::SafeTensorsFile f = redi::io::SafeTensorsFile::open(redi::test::test_data_path("inception/inception_ref.safetensors"));
  std::vector<double> get(const std::string& k) const { return f.read<double>(k); }
};

/// max |a - b| / max |b|.
template <class A>
double rel_err(const std::vector<A>& a, const std::vector<double>& b) {
  EXPECT_EQ(a.size(), b.size());
  double e = 0, m = 0;
  for (std::size_t i = 0; i < b.size() && i < a.size(); ++i) {
    e = std::max(e, std::abs(double(a[i]) - b[i]));
    m = std::max(m, std::abs(b[i]));
  }
  return e / m;
}

/// Network inputs of n images (uint8 NHWC) at S, as the encoder makes them.
std::vector<float> inputs(const std::vector<std::uint8_t>& u8, int n, int h, int c, int S) {
  std::vector<float> x(std::size_t(n) * 3 * std::size_t(S) * std::size_t(S)), tmp;
  for (int b = 0; b < n; ++b)
    redi::eval::inception_preprocess(u8.data() + std::size_t(b) * std::size_t(h * h * c), h, h, c, S,
                                     x.data() + std::size_t(b) * 3 * std::size_t(S) * std::size_t(S), tmp);
  return x;
}

TEST(Inception, LayoutMatchesTorchvisionNames) {
  InceptionV3<float> net(299);
  EXPECT_EQ(net.convs().size(), 94u);  // BasicConv2d modules of Inception3 without AuxLogits
  const auto t = redi::inception_tensors(net);
  EXPECT_EQ(t.size(), 94u * 5 + 2);
  std::int64_t n = 0;
  for (const auto& x : t) {
    std::int64_t k = 1;
    for (auto d : x.shape) k *= d;
    n += k;
  }
  // torchvision inception_v3(aux_logits=False) has 23,834,568 parameters at 1000 classes: + 8 * 2049
  // for 1008 classes, + 2 * 17,216 BatchNorm running statistics.
  EXPECT_EQ(n, 23834568 + 8 * 2049 + 2 * 17216);
  EXPECT_EQ(net.spatial_side(), 17);
  EXPECT_EQ(net.spatial_dim(), 2023);
  EXPECT_EQ(InceptionV3<float>(107).spatial_side(), 5);
}

TEST(Inception, InputPreprocessingMatchesTorch) {
  Ref r;
  const auto rgb = r.f.read<std::uint8_t>("rgb");
  const auto grey = r.f.read<std::uint8_t>("grey");
  for (auto [key, S, n, h, c, u8] : {std::tuple{"s107", 107, 2, 32, 3, &rgb}, {"s299", 299, 1, 32, 3, &rgb},
                                     {"grey80", 80, 1, 28, 1, &grey}}) {
    const auto x = inputs(*u8, n, h, c, S);
    const auto want = r.get(std::string(key) + ".input_sum");
    std::vector<double> got(want.size(), 0.0);
    const std::size_t P = std::size_t(S) * std::size_t(S);
    for (std::size_t bc = 0; bc < want.size(); ++bc)
      for (std::size_t p = 0; p < P; ++p) got[bc] += x[bc * P + p];
    for (std::size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-6 * double(P)) << key << " " << i;
  }
}

TEST(Inception, PreprocessingMatchesTorch) {
  // grey80.input: torch's float32 p / 255 -> F.interpolate(bilinear) -> 2x - 1, element by element.
  // Both are float32 evaluations of the same formula whose coordinates/weights round differently
  // (torch's float32 result is itself 6e-7 from its float64 one): a few 1e-6 apart at most.
  Ref r;
  const auto x = inputs(r.f.read<std::uint8_t>("grey"), 1, 28, 1, 80);
  const auto want = r.get("grey80.input");
  ASSERT_EQ(want.size(), 80u * 80u);
  double worst = 0;
  for (int c = 0; c < 3; ++c)
    for (std::size_t i = 0; i < want.size(); ++i) worst = std::max(worst, std::abs(double(x[c * want.size() + i]) - want[i]));
  std::printf("preprocessing: max |redi - torch| = %.3g\n", worst);
  EXPECT_LE(worst, 4e-6);
}

TEST(Inception, DoubleForwardMatchesPyTorch) {
  Ref r;
  {  // exactly torch's input: the network alone, in double
    InceptionV3<double> net(80);
    redi::load_inception(net, weights());
    const auto g = r.get("grey80.input");
    std::vector<double> x(3 * g.size());
    for (int c = 0; c < 3; ++c) std::copy(g.begin(), g.end(), x.begin() + std::ptrdiff_t(c * g.size()));
    std::vector<double> pool3(2048), spatial(std::size_t(net.spatial_dim())), logits(1008);
    net.forward(x.data(), 1, pool3.data(), spatial.data());
    net.logits(pool3.data(), 1, logits.data());
    const double ep = rel_err(pool3, r.get("grey80.pool3")), es = rel_err(spatial, r.get("grey80.spatial")),
                 el = rel_err(logits, r.get("grey80.logits"));
    std::printf("double @80, torch's input: rel err pool3 %.3g spatial %.3g logits %.3g\n", ep, es, el);
    EXPECT_LT(ep, 1e-11);
    EXPECT_LT(es, 1e-11);
    EXPECT_LT(el, 1e-11);
  }
  {  // two images at 107 through redi's preprocessing (inputs may differ from torch's by an ulp)
    InceptionV3<double> net(107);
    redi::load_inception(net, weights());
    const auto xf = inputs(r.f.read<std::uint8_t>("rgb"), 2, 32, 3, 107);
    const std::vector<double> x(xf.begin(), xf.end());
    std::vector<double> pool3(2 * 2048), spatial(2 * std::size_t(net.spatial_dim())), logits(2 * 1008);
    net.forward(x.data(), 2, pool3.data(), spatial.data());
    net.logits(pool3.data(), 2, logits.data());
    const double ep = rel_err(pool3, r.get("s107.pool3")), es = rel_err(spatial, r.get("s107.spatial")),
                 el = rel_err(logits, r.get("s107.logits"));
    std::printf("double @107: rel err pool3 %.3g spatial %.3g logits %.3g\n", ep, es, el);
    EXPECT_LT(ep, 5e-6);
    EXPECT_LT(es, 5e-6);
    EXPECT_LT(el, 5e-6);
  }
}

TEST(Inception, FloatEncoderMatchesPyTorchAt299AndGreyscale) {
  Ref r;
  for (auto [key, S, n, h, c, arr] : {std::tuple{"s299", 299, 1, 32, 3, "rgb"}, {"grey80", 80, 1, 28, 1, "grey"}}) {
    InceptionV3<float> net(S);
    redi::load_inception(net, weights());
    redi::eval::InceptionEncoder enc(std::move(net), "hashed");
    const auto u8 = r.f.read<std::uint8_t>(arr);
    std::vector<float> pool3(std::size_t(n) * 2048), spatial(std::size_t(n) * std::size_t(enc.spatial_dim())),
        logits(std::size_t(n) * 1008);
    enc.encode(u8.data(), n, h, h, c, pool3.data(), spatial.data());
    enc.logits(pool3.data(), n, logits.data());
    const double ep = rel_err(pool3, r.get(std::string(key) + ".pool3")),
                 es = rel_err(spatial, r.get(std::string(key) + ".spatial")),
                 el = rel_err(logits, r.get(std::string(key) + ".logits"));
    std::printf("float %s: rel err pool3 %.3g spatial %.3g logits %.3g\n", key, ep, es, el);
    EXPECT_LT(ep, 2e-5) << key;
    EXPECT_LT(es, 2e-5) << key;
    EXPECT_LT(el, 2e-5) << key;
  }
}

TEST(Inception, BatchesAreIndependent) {
  // A batch of 2 gives each image the pool3 of a batch of 1 (batch-major buffers, fused convs).
  InceptionV3<float> net(80);
  redi::load_inception(net, weights());
  Ref r;
  const auto x = inputs(r.f.read<std::uint8_t>("rgb"), 2, 32, 3, 80);
  std::vector<float> two(2 * 2048), one(2048);
  net.forward(x.data(), 2, two.data(), nullptr);
  net.forward(x.data() + 3 * 80 * 80, 1, one.data(), nullptr);
  for (int i = 0; i < 2048; ++i) EXPECT_NEAR(two[2048 + std::size_t(i)], one[std::size_t(i)], 1e-5f * (1 + std::abs(one[std::size_t(i)])));
}

TEST(Inception, SafetensorsFileLoadsLikeTheSource) {
  redi::test::TempDir dir("inception_st");
  const auto path = dir.path() / "inception.safetensors";
  redi::io::SafeTensorsWriter w;
  for (const auto& name : weights().names())
    w.add(name, redi::DType::F32, weights().info(name).shape, weights().values(name).data());
  w.write(path, {});
  InceptionV3<float> a(80), b(80);
  redi::load_inception(a, weights());
  redi::load_inception(b, path);
  EXPECT_EQ(a.conv_weights(), b.conv_weights());
  EXPECT_EQ(a.conv_biases(), b.conv_biases());
  EXPECT_EQ(a.fc_weight(), b.fc_weight());
}

TEST(Inception, LoaderRejectsBadFilesNamingTheTensor) {
  using redi::test::expect_error;
  InceptionV3<float> net(80);
  const auto d = redi::test::test_data_path("inception");
  expect_error([&] { redi::load_inception(net, d / "partial_inception.pt"); },
               {"partial_inception.pt", "Conv2d_2a_3x3.conv.weight", "missing"});
  expect_error([&] { redi::load_inception(net, d / "bad_shape_inception.pt"); },
               {"bad_shape_inception.pt", "Conv2d_1a_3x3.conv.weight", "shape [3, 32, 3, 3]", "expected [32, 3, 3, 3]"});
  expect_error([&] { redi::load_inception(net, d / "no_such_file.pth"); }, {"no_such_file.pth"});
  {
    MapSource s = weights();
    s.put("AuxLogits.fc.weight", {1000, 768}, std::vector<float>(768000, 0.f));
    expect_error([&] { redi::load_inception(net, s); }, {"synthetic Inception weights", "unexpected", "AuxLogits.fc.weight"});
  }
  {
    MapSource s = weights();
    s.values("Mixed_6d.branch1x1.bn.bias")[5] = std::nanf("");
    expect_error([&] { redi::load_inception(net, s); }, {"Mixed_6d.branch1x1.bn.bias", "non-finite", "element 5"});
  }
  {
    MapSource s = weights();
    s.values("Mixed_7c.branch_pool.bn.running_var")[3] = -1.f;
    expect_error([&] { redi::load_inception(net, s); }, {"Mixed_7c.branch_pool.bn.running_var", "negative"});
  }
  {
    MapSource s = weights();
    s.put("Conv2d_1a_3x3.bn.num_batches_tracked", {}, {0.f});  // optional: accepted
    EXPECT_NO_THROW(redi::load_inception(net, s));
  }
}

}  // namespace
