// Tests for the representation pipeline: PCA fit against a direct eigendecomposition, the
// projection formula, features -> latent grid (bilinear), PC normalisation, safetensors
// save/load (and the authors' DINOv2 PCA file when present), the FeatureEncoder plumbing.
// No link dependencies beyond redi::redi.
#include <gtest/gtest.h>

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <random>
#include <set>
#include <string>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "redi/core/paths.hpp"
#include "redi/data/features.hpp"
#include "redi/data/pca.hpp"
#include "redi/data/pca_io.hpp"
#include "redi/io/safetensors.hpp"
#include "io_test_util.hpp"

using namespace redi;
using namespace redi::data;

namespace {

/// n x d rows: x = offset + scale * (A g), g ~ N(0, I) with A giving well-separated variances.
std::vector<float> correlated(int n, int d, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> nd;
  Eigen::MatrixXd A(d, d);
  for (int i = 0; i < d; ++i)
    for (int j = 0; j < d; ++j) A(i, j) = nd(rng) * 0.3 + (i == j ? 1.0 + 0.5 * (d - i) : 0.0);
  std::vector<float> x(std::size_t(n) * std::size_t(d));
  for (int r = 0; r < n; ++r) {
    Eigen::VectorXd g(d);
    for (int j = 0; j < d; ++j) g[j] = nd(rng);
    const Eigen::VectorXd v = A * g;
    for (int j = 0; j < d; ++j) x[std::size_t(r) * std::size_t(d) + std::size_t(j)] = float(50.0 + 10.0 * j + (1.0 + j % 3) * v[j]);
  }
  return x;
}

struct Ref {
  Eigen::VectorXd mean, sd, evals;
  Eigen::MatrixXd evecs;  // columns, by decreasing eigenvalue
};

/// Two-pass standardisation and covariance in double, then SelfAdjointEigenSolver.
Ref reference(const std::vector<float>& x, int n, int d) {
  Ref r;
  r.mean = Eigen::VectorXd::Zero(d);
  r.sd = Eigen::VectorXd::Zero(d);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < d; ++j) r.mean[j] += x[std::size_t(i * d + j)];
  r.mean /= n;
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < d; ++j) r.sd[j] += std::pow(x[std::size_t(i * d + j)] - r.mean[j], 2);
  r.sd = (r.sd / n).cwiseSqrt();
  Eigen::MatrixXd Z(n, d);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < d; ++j) Z(i, j) = (x[std::size_t(i * d + j)] - r.mean[j]) / r.sd[j];
  Eigen::MatrixXd C = Eigen::MatrixXd::Zero(d, d);
  for (int i = 0; i < n; ++i) C += Z.row(i).transpose() * Z.row(i);
  C /= (n - 1);
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es(C);
  r.evals = es.eigenvalues().reverse();
  r.evecs = es.eigenvectors().rowwise().reverse();
  return r;
}

}  // namespace

TEST(DataPca, MatchesDirectEigendecomposition) {
  const int n = 3000, d = 10;
  const auto x = correlated(n, d, 1);
  const Pca p = fit_pca(x.data(), n, d);
  const Ref r = reference(x, n, d);
  ASSERT_EQ(p.num_components, d);
  for (int j = 0; j < d; ++j) {
    EXPECT_NEAR(p.feature_mean[std::size_t(j)], r.mean[j], 1e-4 * std::abs(r.mean[j]));
    EXPECT_NEAR(p.feature_std[std::size_t(j)], r.sd[j], 1e-5 * r.sd[j]);
    EXPECT_EQ(p.pca_mean[std::size_t(j)], 0.f);
  }
  for (int k = 0; k < d; ++k) {
    EXPECT_NEAR(p.explained_variance[std::size_t(k)], r.evals[k], 1e-5 * r.evals[0]) << k;
    if (k) {
      EXPECT_GT(p.explained_variance[std::size_t(k - 1)], p.explained_variance[std::size_t(k)]);
    }
    // Sign-invariant comparison, then the sign convention (largest |entry| positive).
    Eigen::VectorXd c(d);
    for (int j = 0; j < d; ++j) c[j] = p.components[std::size_t(k * d + j)];
    EXPECT_NEAR(std::abs(c.dot(r.evecs.col(k))), 1.0, 1e-5) << k;
    Eigen::Index arg = 0;
    c.cwiseAbs().maxCoeff(&arg);
    EXPECT_GT(c[arg], 0.0);
    for (int l = 0; l < d; ++l) {
      double dot = 0;
      for (int j = 0; j < d; ++j) dot += double(p.components[std::size_t(k * d + j)]) * p.components[std::size_t(l * d + j)];
      EXPECT_NEAR(dot, k == l ? 1.0 : 0.0, 1e-6);
    }
  }
  // Projected fitting data: zero mean, variance = explained_variance (ddof 1), uncorrelated.
  const int rk = 4;
  std::vector<float> z(std::size_t(n) * rk);
  pca_project(p, rk, x.data(), n, z.data());
  for (int a = 0; a < rk; ++a)
    for (int b = 0; b <= a; ++b) {
      double s = 0, m = 0;
      for (int i = 0; i < n; ++i) m += z[std::size_t(i * rk + a)];
      m /= n;
      for (int i = 0; i < n; ++i) s += double(z[std::size_t(i * rk + a)]) * z[std::size_t(i * rk + b)];
      s /= (n - 1);
      EXPECT_NEAR(m, 0.0, 1e-4);
      EXPECT_NEAR(s, a == b ? p.explained_variance[std::size_t(a)] : 0.0, 2e-4 * p.explained_variance[0]) << a << b;
    }
}

TEST(DataPca, StreamingEqualsOneShotAndTruncation) {
  const int n = 1000, d = 6;
  const auto x = correlated(n, d, 2);
  const Pca one = fit_pca(x.data(), n, d);
  PcaFitter f(d);
  int at = 0;
  for (int step : {1, 7, 300, 0, 92, 600}) {
    f.add(x.data() + std::size_t(at) * d, step);
    at += step;
  }
  ASSERT_EQ(at, n);
  EXPECT_EQ(f.count(), n);
  PcaFitOptions opt;
  opt.num_components = 3;
  const Pca three = f.fit(opt);
  EXPECT_EQ(three.num_components, 3);
  EXPECT_EQ(three.components.size(), 18u);
  for (std::size_t i = 0; i < three.components.size(); ++i) EXPECT_NEAR(three.components[i], one.components[i], 1e-5);
  for (int k = 0; k < 3; ++k)
    EXPECT_NEAR(three.explained_variance[std::size_t(k)], one.explained_variance[std::size_t(k)], 1e-5 * one.explained_variance[0]);
  EXPECT_THROW(PcaFitter(3).fit(), Error);
}

TEST(DataPca, FixedStandardisationGivesPcaMean) {
  const int n = 500, d = 4;
  const auto x = correlated(n, d, 3);
  PcaFitOptions opt;
  opt.fixed_mean = {40.f, 70.f, 60.f, 90.f};
  opt.fixed_std = {2.f, 3.f, 4.f, 5.f};
  const Pca p = fit_pca(x.data(), n, d, opt);
  const Ref r = reference(x, n, d);
  for (int j = 0; j < d; ++j) {
    EXPECT_EQ(p.feature_mean[std::size_t(j)], opt.fixed_mean[std::size_t(j)]);
    EXPECT_NEAR(p.pca_mean[std::size_t(j)], (r.mean[j] - opt.fixed_mean[std::size_t(j)]) / opt.fixed_std[std::size_t(j)], 1e-4);
  }
  // Constant channel: std floored to 1, only centred.
  std::vector<float> c(200 * 2);
  for (int i = 0; i < 200; ++i) c[std::size_t(2 * i)] = 5.f, c[std::size_t(2 * i + 1)] = float(i % 7);
  const Pca q = fit_pca(c.data(), 200, 2);
  EXPECT_EQ(q.feature_std[0], 1.f);
  EXPECT_NEAR(q.explained_variance[1], 0.f, 1e-6);
}

TEST(DataPca, ProjectionFormula) {
  const int d = 7, K = 5, T = 9, r = 3;
  std::mt19937 rng(4);
  std::uniform_real_distribution<float> u(-2.f, 2.f);
  Pca p;
  p.dim = d, p.num_components = K;
  for (int j = 0; j < d; ++j) {
    p.feature_mean.push_back(u(rng));
    p.feature_std.push_back(0.5f + std::abs(u(rng)));
    p.pca_mean.push_back(u(rng) * 0.1f);
  }
  for (int i = 0; i < K * d; ++i) p.components.push_back(u(rng));
  for (int k = 0; k < K; ++k) p.explained_variance.push_back(float(K - k));
  std::vector<float> f(std::size_t(T * d)), z(std::size_t(T * r));
  for (auto& v : f) v = u(rng) * 3.f;
  pca_project(p, r, f.data(), T, z.data());
  for (int t = 0; t < T; ++t)
    for (int k = 0; k < r; ++k) {
      double want = 0;
      for (int j = 0; j < d; ++j)
        want += ((double(f[std::size_t(t * d + j)]) - p.feature_mean[std::size_t(j)]) / p.feature_std[std::size_t(j)] -
                 p.pca_mean[std::size_t(j)]) *
                p.components[std::size_t(k * d + j)];
      EXPECT_NEAR(z[std::size_t(t * r + k)], want, 1e-5) << t << " " << k;
    }
  EXPECT_THROW(pca_project(p, K + 1, f.data(), T, z.data()), Error);
}

TEST(DataPca, FeaturesToLatentReshapesAndResizes) {
  // Identity PCA on 2 channels (mean 0, std 1): z = f. Grid 2x2 -> 4x4 per channel.
  Pca p;
  p.dim = 2, p.num_components = 2;
  p.feature_mean = {0.f, 0.f};
  p.feature_std = {1.f, 1.f};
  p.pca_mean = {0.f, 0.f};
  p.components = {1.f, 0.f, 0.f, 1.f};
  p.explained_variance = {4.f, 1.f};
  // feats [1, 2, 2, 2]: channel 0 = {0, 4, 8, 12}, channel 1 = its negative.
  const float feats[8] = {0, -0, 4, -4, 8, -8, 12, -12};
  float out[2 * 16];
  features_to_latent(p, 2, feats, 1, 2, 2, out, 4, 4);
  const float want[16] = {0, 1, 3, 4, 2, 3, 5, 6, 6, 7, 9, 10, 8, 9, 11, 12};
  for (int i = 0; i < 16; ++i) {
    EXPECT_EQ(out[i], want[i]) << i;
    EXPECT_EQ(out[16 + i], -want[i]) << i;
  }
  // Same size: channels-first transpose only. With normalisation from explained variance.
  const PcNormalization nz = PcNormalization::from_explained_variance(p, 2);
  EXPECT_EQ(nz.std, (std::vector<float>{2.f, 1.f}));
  float same[8];
  features_to_latent(p, 1, feats, 1, 2, 2, same, 2, 2);
  EXPECT_EQ(same[0], 0.f);
  EXPECT_EQ(same[3], 12.f);
  features_to_latent(p, 2, feats, 1, 2, 2, same, 2, 2, &nz);
  EXPECT_EQ(same[1], 2.f);    // 4 / 2
  EXPECT_EQ(same[4 + 2], -8.f);  // -8 / 1
  nz.invert(same, 1, 4);
  EXPECT_EQ(same[1], 4.f);
}

TEST(DataPca, PcStatsAndNormalisationFile) {
  const int B = 3, r = 2, plane = 50;
  std::vector<float> z(std::size_t(B * r * plane));
  for (int b = 0; b < B; ++b)
    for (int k = 0; k < r; ++k)
      for (int i = 0; i < plane; ++i) z[std::size_t((b * r + k) * plane + i)] = (k ? 100.f : -3.f) + float((i + b) % 5) * (k + 1);
  PcStats st(r);
  st.add(z.data(), 1, plane);
  st.add(z.data() + r * plane, 2, plane);
  const PcNormalization n = st.finish();
  std::vector<float> y = z;
  n.apply(y.data(), B, plane);
  for (int k = 0; k < r; ++k) {
    double m = 0, v = 0;
    for (int b = 0; b < B; ++b)
      for (int i = 0; i < plane; ++i) m += y[std::size_t((b * r + k) * plane + i)];
    m /= B * plane;
    for (int b = 0; b < B; ++b)
      for (int i = 0; i < plane; ++i) v += std::pow(y[std::size_t((b * r + k) * plane + i)] - m, 2);
    EXPECT_NEAR(m, 0.0, 1e-5);
    EXPECT_NEAR(v / (B * plane), 1.0, 1e-5);
  }
  const auto path = std::filesystem::temp_directory_path() / "redi_test_pcnorm.safetensors";
  save_pc_normalization(path, n);
  const PcNormalization back = load_pc_normalization(path);
  EXPECT_EQ(back.mean, n.mean);
  EXPECT_EQ(back.std, n.std);
  std::filesystem::remove(path);
}

TEST(DataPca, SaveLoadHasExactlyTheAuthorsKeys) {
  const int n = 400, d = 5;
  const auto x = correlated(n, d, 5);
  const Pca p = fit_pca(x.data(), n, d);
  const auto path = std::filesystem::temp_directory_path() / "redi_test_pca.safetensors";
  save_pca(path, p, {{"encoder", "test"}});
  {
    const auto f = io::SafeTensorsFile::open(path);
    const auto names = f.names();
    EXPECT_EQ(std::set<std::string>(names.begin(), names.end()),
              (std::set<std::string>{"feature_mean", "feature_std", "pca_mean", "components", "explained_variance"}));
    EXPECT_EQ(f.info("components").shape, (std::vector<std::int64_t>{d, d}));
    EXPECT_EQ(f.info("components").dtype_name, "F32");
    EXPECT_EQ(f.metadata().at("encoder"), "test");
  }
  const Pca q = load_pca(path);
  EXPECT_EQ(q.components, p.components);
  EXPECT_EQ(q.feature_mean, p.feature_mean);
  EXPECT_EQ(q.feature_std, p.feature_std);
  EXPECT_EQ(q.pca_mean, p.pca_mean);
  EXPECT_EQ(q.explained_variance, p.explained_variance);
  const Pca two = load_pca(path, 2);
  EXPECT_EQ(two.num_components, 2);
  EXPECT_EQ(two.components.size(), std::size_t(2 * d));
  // A file missing a key names the file and the key.
  {
    io::SafeTensorsWriter w;
    w.add("feature_mean", Shape{d}, p.feature_mean.data());
    w.write(path);
  }
  try {
    load_pca(path);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("redi_test_pca.safetensors"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("feature_std"), std::string::npos);
  }
  std::filesystem::remove(path);
}

TEST(DataPca, AuthorsDinoV2File) {
  // Shipped in the repository's data/ folder (data/README.md): never skipped.
  const std::string path = redi::data_file("dinov2_vitb14_reg_pca.safetensors").string();
  const Pca p = load_pca(path);
  ASSERT_EQ(p.dim, 768);
  ASSERT_EQ(p.num_components, 768);
  const double want[8] = {5.77, 4.90, 4.79, 4.20, 4.01, 3.77, 3.68, 3.56};
  for (int k = 0; k < 8; ++k) EXPECT_NEAR(std::sqrt(p.explained_variance[std::size_t(k)]), want[k], 0.006) << k;
  for (int k = 0; k < 8; ++k) {
    double nrm = 0;
    for (int j = 0; j < 768; ++j) nrm += double(p.components[std::size_t(k * 768 + j)]) * p.components[std::size_t(k * 768 + j)];
    EXPECT_NEAR(nrm, 1.0, 1e-4) << k;
  }
  // A feature equal to feature_mean + feature_std * (pca_mean + c_0) projects to e_0.
  std::vector<float> f(768);
  for (int j = 0; j < 768; ++j)
    f[std::size_t(j)] = p.feature_mean[std::size_t(j)] +
                        p.feature_std[std::size_t(j)] * (p.pca_mean[std::size_t(j)] + p.components[std::size_t(j)]);
  float z[8];
  pca_project(p, 8, f.data(), 1, z);
  EXPECT_NEAR(z[0], 1.f, 1e-3f);
  for (int k = 1; k < 8; ++k) EXPECT_NEAR(z[k], 0.f, 1e-3f) << k;
}

TEST(DataFeatures, PatchPixelEncoderPipeline) {
  static_assert(FeatureEncoder<PatchPixelEncoder>);
  ImageDataset ds;
  ds.n = 6, ds.h = 8, ds.w = 8, ds.c = 1, ds.num_classes = 2, ds.source = "toy";
  for (int i = 0; i < 6 * 64; ++i) ds.pixels.push_back(std::uint8_t((i * 29 + (i / 7) * 3) % 256));
  for (int i = 0; i < 6; ++i) ds.labels.push_back(i % 2);
  PatchPixelEncoder enc(2, 1);
  PcaFitter fitter(enc.feature_dim());
  std::vector<std::int64_t> idx = {0, 1, 2, 3, 4, 5};
  accumulate_features(enc, ds, idx, 4, fitter);
  EXPECT_EQ(fitter.count(), 6 * 16);
  PcaFitOptions opt;
  opt.num_components = 3;
  const Pca p = fitter.fit(opt);
  const Batch b = make_batch(ds, std::span<const std::int64_t>(idx).first(2));
  const Tensor<float> feats = encode_features(enc, b.images.view());
  ASSERT_EQ(feats.shape(), (Shape{2, 4, 4, 4}));
  // Patch (1, 2) of image 1: pixels (2..3, 4..5) in (i, j) order.
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 2; ++j)
      EXPECT_EQ(feats[((1 * 4 + 1) * 4 + 2) * 4 + i * 2 + j], b.images[64 + (2 + i) * 8 + 4 + j]);
  const Tensor<float> z = encode_to_latent(enc, p, 3, b.images.view(), 8, 8);
  ASSERT_EQ(z.shape(), (Shape{2, 3, 8, 8}));
  std::vector<float> direct(2 * 3 * 64);
  features_to_latent(p, 3, feats.data(), 2, 4, 4, direct.data(), 8, 8);
  for (std::size_t i = 0; i < direct.size(); ++i) EXPECT_EQ(z[std::int64_t(i)], direct[i]);
  const Tensor<float> pre = dinov2_preprocess(b.images.view(), 14);
  EXPECT_EQ(pre.shape(), (Shape{2, 3, 14, 14}));
}

// DINOv2 preprocessing runs its images on OpenMP threads: each image's result is the one it gets
// alone, and the batch does not depend on the thread count.
TEST(DataPca, Dinov2PreprocessPerImageAndThreadIndependent) {
  const std::int64_t B = 5, H = 37, W = 29;
  Tensor<float> x(Shape{B, 3, H, W});
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  for (std::int64_t i = 0; i < x.numel(); ++i) x[i] = u(rng);
  const Tensor<float> all = dinov2_preprocess(x.view(), 22);
  ASSERT_EQ(all.shape(), (Shape{B, 3, 22, 22}));
  const std::int64_t per = 3 * 22 * 22;
  for (std::int64_t b = 0; b < B; ++b) {
    const View<const float> one{x.data() + b * 3 * H * W, Shape{1, 3, H, W}};
    const Tensor<float> single = dinov2_preprocess(one, 22);
    for (std::int64_t i = 0; i < per; ++i) ASSERT_EQ(single[i], all[b * per + i]) << "image " << b << " element " << i;
  }
#ifdef _OPENMP
  const int threads = omp_get_max_threads();
  omp_set_num_threads(threads > 1 ? 1 : 2);
  const Tensor<float> other = dinov2_preprocess(x.view(), 22);
  omp_set_num_threads(threads);
  for (std::int64_t i = 0; i < all.numel(); ++i) ASSERT_EQ(other[i], all[i]) << "element " << i;
#endif
}

// Hostile files (issue 15): a NaN or Inf in a PCA or PC-normalisation file would silently poison
// every feature projected with it; it is an error naming the file, the tensor and the index.
TEST(DataPca, NonFiniteValuesAreErrors) {
  const auto path = std::filesystem::temp_directory_path() / "redi_test_pca_nan.safetensors";
  const int d = 3;
  std::vector<float> mean = {0.f, 1.f, 2.f}, sd = {1.f, 1.f, 1.f}, pm = {0.f, 0.f, 0.f};
  std::vector<float> comp = {1, 0, 0, 0, 1, 0}, ev = {2.f, 1.f};
  auto write = [&] {
    io::SafeTensorsWriter w;
    w.add("feature_mean", Shape{d}, mean.data());
    w.add("feature_std", Shape{d}, sd.data());
    w.add("pca_mean", Shape{d}, pm.data());
    w.add("components", Shape{2, d}, comp.data());
    w.add("explained_variance", Shape{2}, ev.data());
    w.write(path);
  };
  write();
  EXPECT_EQ(load_pca(path).num_components, 2);
  mean[1] = std::numeric_limits<float>::quiet_NaN();
  write();
  redi::test::expect_error([&] { load_pca(path); },
                           {"redi_test_pca_nan.safetensors", "'feature_mean'[1] = nan is not finite"});
  mean[1] = 1.f;
  comp[4] = std::numeric_limits<float>::infinity();
  write();
  redi::test::expect_error([&] { load_pca(path); }, {"redi_test_pca_nan.safetensors", "'components'[4] = inf"});
  // PC normalisation.
  std::vector<float> m = {0.f, -std::numeric_limits<float>::infinity()}, s = {1.f, 2.f};
  {
    io::SafeTensorsWriter w;
    w.add("pc_mean", Shape{2}, m.data());
    w.add("pc_std", Shape{2}, s.data());
    w.write(path);
  }
  redi::test::expect_error([&] { load_pc_normalization(path); },
                           {"redi_test_pca_nan.safetensors", "'pc_mean'[1] = -inf is not finite"});
  std::filesystem::remove(path);
}

// Fuzz findings (tests/data/fuzz/pca-*): each is a redi::Error naming the file, or a clean load.
TEST(DataPca, FuzzRegressionsReplay) {
  for (const auto& p : redi::test::fuzz_regression_files("pca-")) {
    for (int which = 0; which < 2; ++which) {
      try {
        if (which == 0) load_pca(p);
        else load_pc_normalization(p);
      } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find(p.string()), std::string::npos) << e.what();
      }
    }
  }
}
