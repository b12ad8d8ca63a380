// Frozen-feature probes (redi/train/probes.hpp): weighted k-NN against hand-computed votes, the
// linear probe on separable data (hyper-parameters chosen on validation), and the probe written
// into a ViTEncoder's head classifying exactly as the probe does.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "redi/core/philox.hpp"
#include "redi/train/probes.hpp"

using namespace redi;

namespace {
train::FeatureSet make_set(const std::vector<std::vector<float>>& rows, const std::vector<int>& labels, int classes) {
  train::FeatureSet f;
  f.n = int(rows.size());
  f.dim = int(rows[0].size());
  f.num_classes = classes;
  for (const auto& r : rows) f.x.insert(f.x.end(), r.begin(), r.end());
  f.labels = labels;
  return f;
}

/// n points per class around class centres (3 classes in 4-D), noise s.
train::FeatureSet gaussian_blobs(int n, double s, std::uint64_t seed) {
  const float centres[3][4] = {{3, 0, 0, 1}, {0, 3, 0, 1}, {0, 0, 3, 1}};
  train::FeatureSet f;
  f.n = 3 * n, f.dim = 4, f.num_classes = 3;
  for (int i = 0; i < 3 * n; ++i) {
    const int c = i % 3;
    for (int d = 0; d < 4; ++d) f.x.push_back(centres[c][d] + float(s * philox::normal(seed, std::uint64_t(i), std::uint64_t(d))));
    f.labels.push_back(c);
  }
  return f;
}
}  // namespace

// Cosine similarity ignores the norm; the vote is weighted by exp(cos / T): one very close
// neighbour of class 1 outvotes two farther ones of class 0 at T = 0.07, not at T = 10.
TEST(Probes, KnnWeightedVotes) {
  const float a = 0.8f, b = std::sqrt(1 - a * a);
  const auto mem = make_set({{1, 0}, {a, b}, {a, -b}, {-1, 0}}, {1, 0, 0, 2}, 3);
  const auto q = make_set({{5, 0}}, {1}, 3);  // cos = 1 with memory 0, 0.8 with 1 and 2
  EXPECT_EQ(train::knn_accuracy(mem, q, 3, 0.07), 1.0);   // e^(1/.07) > 2 e^(.8/.07)
  EXPECT_EQ(train::knn_accuracy(mem, q, 3, 10.0), 0.0);   // nearly equal weights: class 0 wins 2:1
  EXPECT_EQ(train::knn_accuracy(mem, q, 1, 10.0), 1.0);   // the nearest alone
  const auto blobs = gaussian_blobs(50, 0.3, 1), other = gaussian_blobs(20, 0.3, 2);
  EXPECT_EQ(train::knn_accuracy(blobs, other, 20), 1.0);
  EXPECT_THROW(train::knn_accuracy(blobs, make_set({{1, 0}}, {0}, 3)), Error);  // dims differ
}

TEST(Probes, LinearProbeSeparatesBlobsAndPicksOnValidation) {
  const auto tr = gaussian_blobs(100, 0.8, 3), va = gaussian_blobs(50, 0.8, 4), te = gaussian_blobs(50, 0.8, 5);
  train::LinearProbeConfig cfg;
  cfg.epochs = 20;
  cfg.batch = 32;
  const auto p = train::fit_linear_probe(tr, va, cfg);
  EXPECT_GT(p.val_accuracy, 0.95);
  EXPECT_GT(p.accuracy(te), 0.95);
  EXPECT_DOUBLE_EQ(p.accuracy(va), p.val_accuracy);
  // The chosen pair is the best on validation among the grid.
  for (double lr : cfg.lrs)
    for (double wd : cfg.weight_decays) {
      train::LinearProbeConfig one = cfg;
      one.lrs = {lr};
      one.weight_decays = {wd};
      EXPECT_LE(train::fit_linear_probe(tr, va, one).val_accuracy, p.val_accuracy);
    }
}

// set_linear_head: the encoder's logits are W pooled + b of the probe (standardisation folded in).
TEST(Probes, ProbeBecomesTheEncoderHead) {
#ifdef _OPENMP
  omp_set_num_threads(1);
#endif
  ViTEncoderConfig ec;
  ec.image_size = 8, ec.patch = 4, ec.width = 8, ec.depth = 1, ec.heads = 2, ec.num_classes = 10;
  ViTEncoder<float> enc(ec, 1);
  enc.randomize(2, 0.3);
  data::ImageDataset ds;
  ds.n = 60, ds.h = ds.w = 8, ds.c = 1, ds.num_classes = 3, ds.source = "random";
  for (int i = 0; i < 60 * 64; ++i) ds.pixels.push_back(std::uint8_t(255 * philox::uniform(3, 0, std::uint64_t(i))));
  for (int i = 0; i < 60; ++i) ds.labels.push_back(i % 3);
  const auto f = train::encode_pooled(enc, ds);
  train::LinearProbeConfig cfg;
  cfg.epochs = 5;
  const auto p = train::fit_linear_probe(f, f, cfg);
  train::set_linear_head(enc, p);
  const auto b = data::make_batch(ds, std::vector<std::int64_t>{0, 1, 2, 3, 4});
  enc.forward(b.images.data(), 5);
  int agree = 0;
  for (int i = 0; i < 5; ++i) {
    for (int c = 0; c < 3; ++c) {
      double z = p.b[std::size_t(c)];
      for (int d = 0; d < 8; ++d) z += double(p.W[std::size_t(c) * 8 + d]) * enc.pooled()[i * 8 + d];
      EXPECT_NEAR(enc.logits()[i * 10 + c], z, 1e-4 * (1 + std::fabs(z)));
    }
    const float* z = enc.logits() + i * 10;
    agree += int(std::max_element(z, z + 10) - z) < 3;  // classes the probe does not know never win
  }
  EXPECT_EQ(agree, 5);
  // the probe's accuracy equals the head's on the same images
  std::vector<std::int64_t> all(60);
  std::iota(all.begin(), all.end(), std::int64_t(0));
  std::vector<float> tmp(60 * 8);
  EXPECT_NEAR(double(train::pooled_features(enc, ds, all, tmp.data())) / 60, p.accuracy(f), 1e-12);
}
