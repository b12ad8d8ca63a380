// The evaluation metrics (redi/eval/): the Frechet distance against closed forms, improved
// precision/recall on constructed point sets with known answers and against a brute-force
// implementation, class coverage and accuracy on constructed predictions, and ReferenceSet.
#include <gtest/gtest.h>

#include <Eigen/Dense>

#include <algorithm>
#include <cmath>
#include <vector>

#include "io_test_util.hpp"
#include "redi/core/philox.hpp"
#include "redi/eval/class_metrics.hpp"
#include "redi/eval/feature_encoder.hpp"
#include "redi/eval/frechet.hpp"
#include "redi/eval/precision_recall.hpp"

using namespace redi;
using namespace redi::test;

namespace {

// ---------------------------------------------------------------------------------------------
// Frechet distance

TEST(FrechetDistance, MatchesClosedForms) {
  // Identical Gaussians: 0. Diagonal covariances: sum (m1-m2)^2 + (s1 - s2)^2 per axis.
  Eigen::VectorXd m1(2), m2(2);
  m1 << 0, 1;
  m2 << 3, 1;
  Eigen::MatrixXd s1 = Eigen::Vector2d(4, 1).asDiagonal(), s2 = Eigen::Vector2d(1, 9).asDiagonal();
  EXPECT_NEAR(eval::frechet_distance(m1, s1, m1, s1), 0.0, 1e-9);
  EXPECT_NEAR(eval::frechet_distance(m1, s1, m2, s2), 9.0 + 1.0 + 4.0, 1e-9);
  // Sample statistics of two draws from the same distribution are close; a shift shows.
  const int n = 4000, d = 3;
  std::vector<float> a(std::size_t(n) * d), b(a.size());
  philox::fill_normal(a.data(), a.size(), 1, 1);
  philox::fill_normal(b.data(), b.size(), 1, 2);
  eval::GaussianStats sa(d), sb(d), sc(d);
  sa.add(a.data(), n);
  sb.add(b.data(), n);
  for (auto& v : b) v += 1.0f;
  sc.add(b.data(), n);
  EXPECT_LT(eval::frechet_distance(sa, sb), 0.02);
  EXPECT_NEAR(eval::frechet_distance(sa, sc), 3.0, 0.1);
}

// Non-commuting 2x2 covariances: for M = S1 S2 (positive eigenvalues),
// tr(M^{1/2}) = sqrt(tr M + 2 sqrt(det M)), so FD has a closed form.
TEST(FrechetDistance, NonCommutingCovariancesMatchTheTwoByTwoClosedForm) {
  for (int t = 0; t < 20; ++t) {
    Eigen::Matrix2d A, B;
    for (int i = 0; i < 4; ++i) {
      A.data()[i] = philox::normal(3, std::uint64_t(t), std::uint64_t(i));
      B.data()[i] = philox::normal(4, std::uint64_t(t), std::uint64_t(i));
    }
    const Eigen::Matrix2d S1 = A * A.transpose() + 0.1 * Eigen::Matrix2d::Identity();
    const Eigen::Matrix2d S2 = B * B.transpose() + 0.1 * Eigen::Matrix2d::Identity();
    const Eigen::Vector2d mu1(philox::normal(5, t, 0), philox::normal(5, t, 1)), mu2(philox::normal(6, t, 0), 0.5);
    const Eigen::Matrix2d M = S1 * S2;
    const double tr_sqrt = std::sqrt(M.trace() + 2 * std::sqrt(M.determinant()));
    const double want = (mu1 - mu2).squaredNorm() + S1.trace() + S2.trace() - 2 * tr_sqrt;
    const double got = eval::frechet_distance(mu1, Eigen::MatrixXd(S1), mu2, Eigen::MatrixXd(S2));
    EXPECT_NEAR(got, want, 1e-10 * (1 + std::fabs(want))) << t;
    // Symmetric in its arguments.
    EXPECT_NEAR(eval::frechet_distance(mu2, Eigen::MatrixXd(S2), mu1, Eigen::MatrixXd(S1)), want,
                1e-10 * (1 + std::fabs(want)));
  }
  // One dimension: FD(N(m1, a^2), N(m2, b^2)) = (m1 - m2)^2 + (a - b)^2.
  Eigen::VectorXd a(1), b(1);
  a << 1.5;
  b << -0.5;
  EXPECT_NEAR(eval::frechet_distance(a, Eigen::MatrixXd::Constant(1, 1, 9.0), b, Eigen::MatrixXd::Constant(1, 1, 0.25)),
              4.0 + 2.5 * 2.5, 1e-12);
  expect_error([&] { eval::frechet_distance(a, Eigen::MatrixXd::Identity(2, 2), b, Eigen::MatrixXd::Identity(1, 1)); },
               {"inconsistent sizes"});
}

TEST(FrechetDistance, AgainstAReferenceSet) {
  const int n = 500, d = 4;
  std::vector<float> a(std::size_t(n) * d), b(a.size());
  philox::fill_normal(a.data(), a.size(), 7, 1);
  philox::fill_normal(b.data(), b.size(), 7, 2);
  for (auto& v : b) v *= 2.0f;
  const auto ref = eval::ReferenceSet::from_features(a.data(), n, d, "a", "toy");
  eval::GaussianStats sa(d), sb(d);
  sa.add(a.data(), n);
  sb.add(b.data(), n);
  EXPECT_DOUBLE_EQ(eval::frechet_distance(b.data(), n, d, ref), eval::frechet_distance(sb, sa));
  EXPECT_NEAR(eval::frechet_distance(a.data(), n, d, ref), 0.0, 1e-9);
  EXPECT_EQ(ref.radii_sq.size(), std::size_t(n));
  expect_error([&] { eval::frechet_distance(b.data(), n, d - 1, ref); }, {"dimension 3", "has 4"});
  expect_error([&] { eval::ReferenceSet::from_features(a.data(), 3, d, "tiny", "toy"); }, {"tiny", "3 images"});
}

// ---------------------------------------------------------------------------------------------
// Improved precision and recall

std::vector<float> on_line(std::initializer_list<double> xs) {
  std::vector<float> v;
  for (double x : xs) {
    v.push_back(float(x));
    v.push_back(0.f);
  }
  return v;
}

TEST(PrecisionRecall, ConstructedSetsOnALine) {
  // Real points 0..9 on a line: every k = 1 radius is 1, every k = 2 radius is 1 (both
  // neighbours at distance 1), except the ends (0 and 9: k = 2 radius 2).
  const auto X = on_line({0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
  const auto r1 = eval::knn_radii_squared(X.data(), 10, 2, 1);
  for (double r : r1) EXPECT_DOUBLE_EQ(r, 1.0);
  const auto r2 = eval::knn_radii_squared(X.data(), 10, 2, 2);
  EXPECT_DOUBLE_EQ(r2[0], 4.0);
  EXPECT_DOUBLE_EQ(r2[5], 1.0);
  EXPECT_DOUBLE_EQ(r2[9], 4.0);
  // Generated {0.5, 4.2, 4.4}: all within 1 of a real point -> precision 1. Their k = 1 radii are
  // 3.7, 0.2, 0.2: the ball around 0.5 holds real 0..4, the others nothing new -> recall 5/10.
  const auto G = on_line({0.5, 4.2, 4.4});
  auto pr = eval::precision_recall(X.data(), 10, G.data(), 3, 2, 1);
  EXPECT_DOUBLE_EQ(pr.precision, 1.0);
  EXPECT_DOUBLE_EQ(pr.recall, 0.5);
  // {0.5, 4.2, 30}: 30 is off the real manifold -> precision 2/3; k = 1 radii 3.7, 3.7, 25.8 ->
  // balls cover [-3.2, 4.2], [0.5, 7.9], [4.2, 55.8]: all of 0..9 -> recall 1.
  const auto G2 = on_line({0.5, 4.2, 30});
  pr = eval::precision_recall(X.data(), 10, G2.data(), 3, 2, 1);
  EXPECT_NEAR(pr.precision, 2.0 / 3.0, 1e-15);
  EXPECT_DOUBLE_EQ(pr.recall, 1.0);
  // The same set: 1 and 1. Far apart: 0 and 0.
  pr = eval::precision_recall(X.data(), 10, X.data(), 10, 2, 3);
  EXPECT_DOUBLE_EQ(pr.precision, 1.0);
  EXPECT_DOUBLE_EQ(pr.recall, 1.0);
  const auto far = on_line({100, 101, 102, 103, 104});
  pr = eval::precision_recall(X.data(), 10, far.data(), 5, 2, 3);
  EXPECT_DOUBLE_EQ(pr.precision, 0.0);
  EXPECT_DOUBLE_EQ(pr.recall, 0.0);
  // Duplicates count as neighbours (as in ADM's evaluator): four copies of a point have radius
  // 0 at k = 3.
  const auto dup = on_line({0, 0, 0, 0, 5});
  const auto rd = eval::knn_radii_squared(dup.data(), 5, 2, 3);
  EXPECT_DOUBLE_EQ(rd[0], 0.0);
  EXPECT_DOUBLE_EQ(rd[4], 25.0);
  expect_error([&] { eval::knn_radii_squared(X.data(), 3, 2, 3); }, {"3 points", "3-th nearest"});
}

/// The textbook algorithm, with direct distance sums and full sorts.
eval::PrecisionRecall brute_force(const std::vector<float>& X, int nx, const std::vector<float>& G, int ng, int d,
                                  int k) {
  auto dist2 = [&](const float* a, const float* b) {
    double s = 0;
    for (int i = 0; i < d; ++i) s += (double(a[i]) - double(b[i])) * (double(a[i]) - double(b[i]));
    return s;
  };
  auto radii = [&](const std::vector<float>& P, int n) {
    std::vector<double> r(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) {
      std::vector<double> ds;
      for (int j = 0; j < n; ++j)
        if (j != i) ds.push_back(dist2(&P[std::size_t(i) * d], &P[std::size_t(j) * d]));
      std::sort(ds.begin(), ds.end());
      r[std::size_t(i)] = ds[std::size_t(k - 1)];
    }
    return r;
  };
  auto frac = [&](const std::vector<float>& Q, int nq, const std::vector<float>& P, int np,
                  const std::vector<double>& r) {
    int in = 0;
    for (int i = 0; i < nq; ++i) {
      bool any = false;
      for (int j = 0; j < np && !any; ++j) any = dist2(&Q[std::size_t(i) * d], &P[std::size_t(j) * d]) <= r[std::size_t(j)];
      in += any;
    }
    return double(in) / nq;
  };
  eval::PrecisionRecall pr;
  pr.k = k;
  pr.precision = frac(G, ng, X, nx, radii(X, nx));
  pr.recall = frac(X, nx, G, ng, radii(G, ng));
  return pr;
}

TEST(PrecisionRecall, MatchesBruteForce) {
  // Several sizes (including more than one distance chunk of 256 rows) and shifts/scales.
  struct Case { int nx, ng, d, k; float shift, scale; };
  for (const Case c : {Case{300, 250, 5, 3, 0.5f, 1.0f}, Case{600, 300, 8, 3, 0.0f, 0.6f}, Case{120, 400, 3, 5, 1.0f, 1.5f},
                       Case{50, 50, 16, 1, 0.2f, 1.0f}}) {
    std::vector<float> X(std::size_t(c.nx) * c.d), G(std::size_t(c.ng) * c.d);
    philox::fill_normal(X.data(), X.size(), 11, std::uint64_t(c.nx));
    philox::fill_normal(G.data(), G.size(), 12, std::uint64_t(c.ng));
    for (std::size_t i = 0; i < G.size(); ++i) G[i] = G[i] * c.scale + (i % std::size_t(c.d) == 0 ? c.shift : 0.f);
    const auto want = brute_force(X, c.nx, G, c.ng, c.d, c.k);
    const auto got = eval::precision_recall(X.data(), c.nx, G.data(), c.ng, c.d, c.k);
    EXPECT_EQ(got.precision, want.precision) << c.nx << " " << c.ng;
    EXPECT_EQ(got.recall, want.recall) << c.nx << " " << c.ng;
    EXPECT_GT(got.precision, 0.0);
    EXPECT_LT(got.precision, 1.0);
    // Cached real radii give the same answer.
    const auto rr = eval::knn_radii_squared(X.data(), c.nx, c.d, c.k);
    const auto cached = eval::precision_recall(X.data(), c.nx, G.data(), c.ng, c.d, c.k, &rr);
    EXPECT_EQ(cached.precision, got.precision);
    EXPECT_EQ(cached.recall, got.recall);
  }
}

// ---------------------------------------------------------------------------------------------
// Class coverage and accuracy

TEST(ClassMetrics, CoverageOnConstructedPredictions) {
  const int K = 10;
  std::vector<int> uniform(1000);
  for (int i = 0; i < 1000; ++i) uniform[std::size_t(i)] = i % K;
  auto c = eval::class_coverage(uniform.data(), 1000, K);
  EXPECT_NEAR(c.coverage, 1.0, 1e-12);
  EXPECT_NEAR(c.entropy, std::log(10.0), 1e-12);
  EXPECT_EQ(c.classes_covered, 10);
  EXPECT_EQ(c.histogram, std::vector<std::int64_t>(10, 100));
  // One class: 1/K, one class covered.
  const std::vector<int> one(500, 3);
  c = eval::class_coverage(one.data(), 500, K);
  EXPECT_NEAR(c.coverage, 0.1, 1e-12);
  EXPECT_EQ(c.classes_covered, 1);
  // Two classes, half each: exp(ln 2) / 10.
  std::vector<int> two(400);
  for (int i = 0; i < 400; ++i) two[std::size_t(i)] = i % 2 ? 7 : 2;
  c = eval::class_coverage(two.data(), 400, K);
  EXPECT_NEAR(c.coverage, 0.2, 1e-12);
  EXPECT_EQ(c.classes_covered, 2);
  // The half-fair-share boundary (N = 100, K = 10: n_c >= 5): counts 5 and 4.
  std::vector<int> p;
  for (int k = 0; k < 10; ++k)
    for (int j = 0; j < (k == 0 ? 14 : k < 6 ? 5 + (k == 1) * 6 : 4); ++j) p.push_back(k);
  // class 0: 14, class 1: 11, classes 2..5: 5 each, classes 6..9: 4 each -> 14+11+20+16 = 61
  ASSERT_EQ(p.size(), 61u);
  c = eval::class_coverage(p.data(), 61, K);  // N / (2K) = 3.05: every class is covered
  EXPECT_EQ(c.classes_covered, 10);
  p.resize(100, 0);  // class 0 gets 39 more: N = 100, threshold 5
  c = eval::class_coverage(p.data(), 100, K);
  EXPECT_EQ(c.classes_covered, 6);  // classes 0..5
  double h = 0;
  for (auto n : c.histogram)
    if (n) h -= n / 100.0 * std::log(n / 100.0);
  EXPECT_NEAR(c.coverage, std::exp(h) / 10, 1e-12);
  const std::vector<int> bad = {0, 10};
  expect_error([&] { eval::class_coverage(bad.data(), 2, K); }, {"prediction 10"});

  const std::vector<int> pred = {0, 1, 2, 3}, lab = {0, 1, 0, 0};
  EXPECT_DOUBLE_EQ(eval::class_accuracy(pred.data(), lab.data(), 4), 0.5);
}

}  // namespace
