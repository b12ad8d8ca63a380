// The offline feature encoder (redi/nn/vit_encoder.hpp, redi/train/encoder_training.hpp):
// finite-difference gradients of the whole ViT classifier in double, save/load, determinism,
// the feature/PCA glue, and a short supervised training run on Fashion-MNIST (skipped when the
// dataset is not installed).
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <sstream>
#include <vector>

#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "gradcheck.hpp"
#include "redi/core/philox.hpp"
#include "redi/data/features.hpp"
#if __has_include(<zlib.h>)  // the Fashion-MNIST reader needs zlib (linked by tests/CMakeLists.txt)
#include "redi/data/idx.hpp"
#define REDI_TEST_HAVE_IDX 1
#endif
#include "redi/nn/vit_encoder.hpp"
#include "redi/train/encoder_training.hpp"

using namespace redi;

static_assert(data::FeatureEncoder<ViTEncoder<float>>);
static_assert(data::FeatureEncoder<ViTEncoder<double>>);

namespace {

ViTEncoderConfig tiny_config() {
  ViTEncoderConfig c;
  c.image_size = 8;
  c.channels = 2;
  c.patch = 2;
  c.width = 16;
  c.depth = 2;
  c.heads = 2;
  c.mlp_ratio = 2;
  c.num_classes = 3;
  return c;
}

template <class T>
std::vector<T> normals(std::size_t n, std::uint64_t stream, double s = 1.0) {
  std::vector<T> v(n);
  philox::fill_normal(v.data(), n, 91, stream);
  for (auto& x : v) x = T(x * s);
  return v;
}

/// n synthetic images (h x h x c) of bright rectangles on black, label = which quadrant holds
/// the rectangle's centre (4 classes): structured enough for features and a learnable task.
data::ImageDataset synthetic_dataset(int n, int h, int c, std::uint64_t seed) {
  data::ImageDataset ds;
  ds.n = n, ds.h = h, ds.w = h, ds.c = c, ds.num_classes = 4, ds.source = "synthetic";
  ds.pixels.assign(std::size_t(n) * h * h * c, 0);
  for (int i = 0; i < n; ++i) {
    auto u = [&](int k) { return philox::uniform(seed, std::uint64_t(i), std::uint64_t(k)); };
    const int w = 2 + int(u(0) * h / 3), hh = 2 + int(u(1) * h / 3);
    const int x0 = int(u(2) * (h - w)), y0 = int(u(3) * (h - hh));
    const auto val = std::uint8_t(128 + int(u(4) * 127));
    for (int y = y0; y < y0 + hh; ++y)
      for (int x = x0; x < x0 + w; ++x)
        for (int k = 0; k < c; ++k) ds.pixels[((std::size_t(i) * h + y) * h + x) * c + k] = val;
    ds.labels.push_back((2 * (y0 + hh / 2) >= h ? 2 : 0) + (2 * (x0 + w / 2) >= h ? 1 : 0));
  }
  ds.validate();
  return ds;
}

/// One OpenMP thread for the rest of this process (every ctest case is its own process): on a
/// shared, oversubscribed 2-core machine libgomp's spinning barriers made the small matrices of
/// these tests up to 10x slower with 2 threads (docs/encoder.md).
void one_thread() {
#ifdef _OPENMP
  omp_set_num_threads(1);
#endif
}

std::filesystem::path temp_file(const std::string& name) {
  return std::filesystem::temp_directory_path() /
         ("redi_test_encoder_" + std::to_string(::getpid()) + "_" + name);
}

}  // namespace

// loss = mean cross-entropy(enc(x), y); analytic gradient by backward_cross_entropy; every
// parameter tensor checked at up to 48 entries with Richardson-extrapolated central differences.
TEST(EncoderGrad, CrossEntropyAllParameters) {
  one_thread();  // thousands of tiny forwards
  ViTEncoder<double> enc(tiny_config(), 3);
  enc.randomize(5, 0.3);
  const int B = 3;
  const auto& c = enc.config();
  std::vector<double> x = normals<double>(std::size_t(B) * c.channels * c.image_size * c.image_size, 1);
  const std::vector<int> y = {0, 2, 1};
  auto loss = [&] {
    enc.forward(x.data(), B);
    return enc.cross_entropy(y.data());
  };
  loss();
  enc.zero_grad();
  enc.backward_cross_entropy(y.data());
  const std::vector<double> g = enc.grads().to_host();
  for (const auto& e : enc.entries()) {
    double* p = enc.params().data() + e.offset;
    const double* ge = g.data() + e.offset;
    std::int64_t wi = -1;
    const double worst = test::max_rel_error_richardson(loss, p, e.numel(), ge, 1e-4, 48, &wi);
    EXPECT_LT(worst, 1e-5) << e.name << "[" << wi << "]: analytic " << ge[wi] << " numeric "
                           << test::richardson_derivative(loss, p + wi);
  }
}

// With the initialisation (zero head) the logits are zero; the features are LayerNorm outputs.
TEST(Encoder, InitAndShapes) {
  ViTEncoder<float> enc(tiny_config(), 1);
  const int B = 2, L = 16, D = 16;
  std::vector<float> x = normals<float>(std::size_t(B) * 2 * 64, 2);
  enc.forward(x.data(), B);
  for (int i = 0; i < B * 3; ++i) EXPECT_EQ(enc.logits()[i], 0.f);
  for (int t = 0; t < B * L; ++t) {
    double s = 0, q = 0;
    for (int c = 0; c < D; ++c) s += enc.features()[t * D + c], q += double(enc.features()[t * D + c]) * enc.features()[t * D + c];
    EXPECT_NEAR(s / D, 0.0, 1e-5);
    EXPECT_NEAR(q / D, 1.0, 1e-3);
  }
  EXPECT_EQ(enc.find("blocks.1.modulation")->numel(), 6 * D);
  EXPECT_EQ(enc.find("blocks.0.adaLN_modulation.1.weight"), nullptr);  // sc = 0: not a parameter
  // One arena allocation for repeated batches of the same or smaller size.
  enc.forward(x.data(), 1);
  enc.forward(x.data(), B);
  EXPECT_EQ(enc.arena_allocations(), 1u);
  auto g = enc.grid(8, 8);
  EXPECT_EQ(g[0], 4);
  EXPECT_EQ(g[1], 4);
}

TEST(Encoder, SaveLoadRoundTripIsBitExact) {
  ViTEncoder<float> enc(tiny_config(), 7);
  enc.randomize(8, 0.2);
  const auto path = temp_file("roundtrip.safetensors");
  enc.save(path, {{"note", "test"}});
  ViTEncoder<float> back = ViTEncoder<float>::load(path);
  EXPECT_EQ(back.config().str(), enc.config().str());
  ASSERT_EQ(back.num_params(), enc.num_params());
  EXPECT_EQ(std::memcmp(back.params().data(), enc.params().data(), enc.params().bytes()), 0);
  std::vector<float> x = normals<float>(std::size_t(2) * 2 * 64, 3);
  enc.forward(x.data(), 2);
  back.forward(x.data(), 2);
  EXPECT_EQ(std::memcmp(back.features(), enc.features(), sizeof(float) * 2 * 16 * 16), 0);
  EXPECT_EQ(std::memcmp(back.logits(), enc.logits(), sizeof(float) * 2 * 3), 0);
  // load_weights into an encoder of another shape fails and names the tensor.
  ViTEncoderConfig other = tiny_config();
  other.width = 32;
  ViTEncoder<float> wrong(other);
  EXPECT_THROW(wrong.load_weights(path), Error);
  std::filesystem::remove(path);
}

TEST(EncoderTraining, SameSeedGivesIdenticalWeights) {
  const data::ImageDataset ds = synthetic_dataset(96, 16, 1, 11);
  train::EncoderTrainConfig cfg;
  cfg.model.image_size = 16;
  cfg.model.patch = 4;
  cfg.model.width = 32;
  cfg.model.depth = 2;
  cfg.model.heads = 2;
  cfg.model.num_classes = 4;
  cfg.steps = 15;
  cfg.batch = 16;
  cfg.warmup_steps = 3;
  cfg.seed = 5;
  const ViTEncoder<float> a = train::train_encoder(ds, cfg);
  const ViTEncoder<float> b = train::train_encoder(ds, cfg);
  EXPECT_EQ(std::memcmp(a.params().data(), b.params().data(), a.params().bytes()), 0);
  cfg.seed = 6;
  const ViTEncoder<float> c = train::train_encoder(ds, cfg);
  EXPECT_NE(std::memcmp(a.params().data(), c.params().data(), a.params().bytes()), 0);
}

TEST(EncoderTraining, RejectsUnpaddedImages) {
  const data::ImageDataset ds = synthetic_dataset(8, 28, 1, 1);
  train::EncoderTrainConfig cfg;  // image_size 32
  try {
    train::train_encoder(ds, cfg);
    FAIL() << "expected redi::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("pad_to"), std::string::npos) << e.what();
  }
}

// Shapes of the glue, z = bilinear(PCA(features)) matches features_to_latent on the encoder's
// own features, and the PC channels come out by decreasing variance.
TEST(EncoderFeatures, PcaFeaturesShapesAndDecreasingVariance) {
  const data::ImageDataset ds = synthetic_dataset(160, 32, 1, 4);
  ViTEncoderConfig mc;  // the quickstart geometry: 32x32x1, patch 4 -> 8x8 grid, D = 64
  mc.num_classes = 4;
  ViTEncoder<float> enc(mc, 2);
  enc.randomize(3, 0.05);  // an untrained but not degenerate encoder
  const int r = 8;
  const data::Pca pca = train::fit_feature_pca(enc, ds, 128, r);
  EXPECT_EQ(pca.dim, 64);
  EXPECT_EQ(pca.num_components, r);
  const Tensor<float> z = train::extract_pca_features(enc, ds, pca, r);
  ASSERT_EQ(z.shape(), (Shape{160, r, 32, 32}));
  // The same as the library's per-image path on the encoder's [B, 8, 8, 64] features.
  const std::vector<std::int64_t> idx = {5, 77};
  const data::Batch b = data::make_batch(ds, idx);
  const Tensor<float> f = data::encode_features(enc, b.images.view());
  ASSERT_EQ(f.shape(), (Shape{2, 8, 8, 64}));
  std::vector<float> ref(std::size_t(2) * r * 32 * 32);
  data::features_to_latent(pca, r, f.data(), 2, 8, 8, ref.data(), 32, 32);
  for (int j = 0; j < 2; ++j)
    for (std::size_t i = 0; i < std::size_t(r) * 1024; ++i)
      ASSERT_NEAR(z[std::int64_t(idx[std::size_t(j)]) * r * 1024 + std::int64_t(i)], ref[std::size_t(j) * r * 1024 + i],
                  1e-4 * (1 + std::fabs(ref[std::size_t(j) * r * 1024 + i])));  // GEMM blocking differs by batch
  // Per-channel variance over all images and pixels.
  auto channel_variance = [&](const Tensor<float>& t) {
    const std::int64_t plane = t.shape()[2] * t.shape()[3];
    std::vector<double> var(static_cast<std::size_t>(r));
    for (int k = 0; k < r; ++k) {
      double s = 0, q = 0, n = 0;
      for (int i = 0; i < t.shape()[0]; ++i)
        for (std::int64_t p = 0; p < plane; ++p) {
          const double v = t[(std::int64_t(i) * r + k) * plane + p];
          s += v, q += v * v, n += 1;
        }
      var[std::size_t(k)] = q / n - (s / n) * (s / n);
    }
    return var;
  };
  // At the encoder's own 8x8 grid (the resize is then the identity) and with the PCA fitted on
  // all 160 images, channel k's variance is the k-th eigenvalue (population vs sample: 1 - 1/n).
  const data::Pca all = train::fit_feature_pca(enc, ds, 0, r);
  std::vector<std::int64_t> every(160);
  for (int i = 0; i < 160; ++i) every[std::size_t(i)] = i;
  Tensor<float> zg(Shape{160, r, 8, 8});
  train::extract_pca_features(enc, ds, every, all, r, zg.view());
  const auto vg = channel_variance(zg);
  const double n_tok = 160.0 * 64;
  for (int k = 0; k < r; ++k) {
    EXPECT_NEAR(vg[std::size_t(k)], all.explained_variance[std::size_t(k)] * (n_tok - 1) / n_tok,
                1e-3 * all.explained_variance[0]) << "channel " << k;
    if (k + 1 < r) {
      EXPECT_GE(vg[std::size_t(k)], vg[std::size_t(k + 1)] * (1 - 1e-5)) << "channel " << k;
    }
  }
  // At 32x32 the bilinear resize smooths channels by different amounts, so only the leading
  // channels are compared (5% slack).
  const auto v = channel_variance(z);
  for (int k = 0; k < 3; ++k) EXPECT_GT(v[std::size_t(k)], 0.95 * v[std::size_t(k + 1)]) << "channel " << k;
  EXPECT_GT(v[0], 2 * v[std::size_t(r - 1)]);
}

// Supervised training on 2,000 Fashion-MNIST images (padded to 32x32), 400 x 32 images:
// clearly above chance (10%) on 1,000 test images, by the head and by k-NN.
TEST(EncoderTraining, FashionMnistSubsetLearns) {
#ifndef REDI_TEST_HAVE_IDX
  GTEST_SKIP() << "built without zlib: no Fashion-MNIST reader";
#else
  const std::string dir = data::fashion_mnist_dir();
  if (data::find_idx_file(dir, "train-images-idx3-ubyte").empty() ||
      data::find_idx_file(dir, "t10k-images-idx3-ubyte").empty())
    GTEST_SKIP() << "Fashion-MNIST not installed in " << dir;
  one_thread();  // the thresholds below were measured with one thread
  const data::ImageDataset full = data::pad_to(data::load_fashion_mnist(data::Split::Train, dir), 32);
  const data::ImageDataset test = data::pad_to(data::load_fashion_mnist(data::Split::Test, dir), 32);
  std::vector<std::int64_t> idx;
  for (std::int64_t i = 0; i < 2000; ++i) idx.push_back(i * 29 % full.n);
  const data::ImageDataset train = data::subset(full, idx);
  train::EncoderTrainConfig cfg;
  // the default model: width 64, depth 2, 4 heads, patch 4
  cfg.steps = 400;
  cfg.batch = 32;
  cfg.warmup_steps = 20;
  cfg.log_every = 100;
  std::ostringstream log;
  train::EncoderTrainStats st;
  ViTEncoder<float> enc = train::train_encoder(train, cfg, &log, &st);
  std::cout << log.str();
  EXPECT_NE(log.str().find("NOT DINO"), std::string::npos);
  EXPECT_EQ(st.steps, 400);
  train::EncoderEvalOptions eo;
  eo.test_size = 1000;
  eo.memory_size = 2000;
  const train::EncoderEval ev = train::evaluate_encoder(enc, train, test, eo);
  std::cout << "head accuracy " << ev.linear_head_accuracy << ", k-NN accuracy " << ev.knn_accuracy << " ("
            << st.seconds << " s training, " << ev.seconds << " s evaluation)\n";
  EXPECT_EQ(ev.test_images, 1000);
  EXPECT_GT(ev.linear_head_accuracy, 0.55);  // measured 0.66 (1 thread)
  EXPECT_GT(ev.knn_accuracy, 0.6);           // measured 0.73
#endif
}
