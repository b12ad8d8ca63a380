// The ADM suite's metrics: FD against SciPy's sqrtm-based FID and a 60-digit reference on hard
// covariances (tests/data/eval/make_fd_ref.py), FD against the closed form for commuting
// Gaussians, batched covariance accumulation, the Inception Score on constructed logits and
// against a direct implementation, precision/recall against a brute force, ADM reference files
// (round trip, corrupt and foreign files), and the whole suite end to end on synthetic weights.
#include <gtest/gtest.h>

#include <Eigen/Dense>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "io_test_util.hpp"
#include "redi/core/philox.hpp"
#include "redi/eval/adm.hpp"
#include "redi/io/safetensors.hpp"
#include "redi/weights/inception_synthetic.hpp"

using namespace redi;
using redi::test::expect_error;

namespace {

std::vector<float> gaussian_rows(std::int64_t n, int d, std::uint64_t seed, double scale = 1.0) {
  std::vector<float> v(std::size_t(n) * std::size_t(d));
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = float(scale * philox::normal(seed, 0, i));
  return v;
}

}  // namespace

TEST(FidReference, MatchesScipyAndTheHighPrecisionReferenceOnHardCovariances) {
  const auto f = io::SafeTensorsFile::open(test::test_data_path("eval/fd_ref.safetensors"));
  for (const char* c : {"wellcond", "rankdef", "spectrum", "close", "disjoint"}) {
    const std::string k = c;
    const auto m1 = f.read<double>(k + ".mu1"), m2 = f.read<double>(k + ".mu2");
    const auto s1 = f.read<double>(k + ".s1"), s2 = f.read<double>(k + ".s2");
    const auto fd = f.read<double>(k + ".fd");  // scipy, float64 eigh, 60-digit truth
    const int d = int(m1.size());
    using RM = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    const double got = eval::frechet_distance(Eigen::Map<const Eigen::VectorXd>(m1.data(), d),
                                              Eigen::MatrixXd(Eigen::Map<const RM>(s1.data(), d, d)),
                                              Eigen::Map<const Eigen::VectorXd>(m2.data(), d),
                                              Eigen::MatrixXd(Eigen::Map<const RM>(s2.data(), d, d)));
    const double vs_true = std::abs(got - fd[2]) / std::abs(fd[2]), vs_scipy = std::abs(got - fd[0]) / std::abs(fd[0]);
    std::printf("%-9s FD %.12g  rel err vs 60-digit %.2e, vs scipy sqrtm %.2e (scipy vs 60-digit %.2e)\n", c, got,
                vs_true, vs_scipy, std::abs(fd[0] - fd[2]) / std::abs(fd[2]));
    EXPECT_LT(vs_true, 1e-6) << c;
    EXPECT_LT(vs_scipy, 1e-6) << c;
  }
}

TEST(FidReference, CommutingGaussiansMatchTheClosedForm) {
  // S1 = Q diag(a) Q^T, S2 = Q diag(b) Q^T: FD = |mu1 - mu2|^2 + sum (sqrt a - sqrt b)^2.
  const int d = 96;
  Eigen::MatrixXd G(d, d);
  for (int i = 0; i < d; ++i)
    for (int j = 0; j < d; ++j) G(i, j) = std::sin(1.7 * i + 0.3 * j * j + 1.0);
  const Eigen::HouseholderQR<Eigen::MatrixXd> qr(G);
  const Eigen::MatrixXd Q = qr.householderQ();
  Eigen::VectorXd a(d), b(d), mu1(d), mu2(d);
  double want = 0;
  for (int i = 0; i < d; ++i) {
    a(i) = std::pow(10.0, -8.0 + 11.0 * i / (d - 1));
    b(i) = i % 3 == 0 ? 0.0 : 1.0 + 0.5 * std::cos(i);  // singular S2
    mu1(i) = 0.1 * i;
    mu2(i) = 0.1 * i + (i % 2 ? 0.5 : -0.25);
    want += (mu1(i) - mu2(i)) * (mu1(i) - mu2(i)) + (std::sqrt(a(i)) - std::sqrt(b(i))) * (std::sqrt(a(i)) - std::sqrt(b(i)));
  }
  const Eigen::MatrixXd S1 = Q * a.asDiagonal() * Q.transpose(), S2 = Q * b.asDiagonal() * Q.transpose();
  const double got = eval::frechet_distance(mu1, S1, mu2, S2);
  EXPECT_NEAR(got, want, 1e-6 * want);
  EXPECT_NEAR(eval::frechet_distance(mu2, S2, mu1, S1), want, 1e-6 * want);
}

TEST(FidReference, BatchedStatisticsEqualTheTwoPassCovariance) {
  const int d = 40;
  const std::int64_t n = 1000;
  auto x = gaussian_rows(n, d, 7, 3.0);
  for (std::int64_t i = 0; i < n; ++i) x[std::size_t(i * d)] += 1000.0f;  // a large offset: cancellation
  eval::GaussianStats st(d);
  std::int64_t r = 0;
  for (std::int64_t step : {1, 7, 300, 1, 691}) {  // uneven pieces across the 256-row chunks
    st.add(x.data() + r * d, step);
    r += step;
  }
  ASSERT_EQ(st.count(), n);
  const Eigen::MatrixXd X =
      Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(x.data(), n, d).cast<double>();
  const Eigen::VectorXd mu = X.colwise().mean();
  const Eigen::MatrixXd C = (X.rowwise() - mu.transpose()).transpose() * (X.rowwise() - mu.transpose()) / double(n - 1);
  EXPECT_LT((st.mean() - mu).cwiseAbs().maxCoeff(), 1e-9);
  EXPECT_LT((st.covariance() - C).cwiseAbs().maxCoeff(), 1e-9);
}

TEST(InceptionScore, ConstructedLogits) {
  const int K = 1008;
  {  // every sample the same distribution: KL = 0, IS = 1
    std::vector<float> z(std::size_t(500) * K);
    for (std::size_t i = 0; i < z.size(); ++i) z[i] = float(std::sin(double(i % K)));
    const auto is = eval::inception_score(z.data(), 500, K, 10);
    EXPECT_NEAR(is.mean, 1.0, 1e-12);
    EXPECT_NEAR(is.std, 0.0, 1e-12);
  }
  {  // confident predictions spread evenly over m classes in every split: IS = m
    for (int m : {1, 4, 10}) {
      std::vector<float> z(std::size_t(1000) * K, 0.f);
      for (int i = 0; i < 1000; ++i) z[std::size_t(i) * K + std::size_t(i % m)] = 80.f;
      const auto is = eval::inception_score(z.data(), 1000, K, 10);
      EXPECT_NEAR(is.mean, double(m), 1e-9 * m) << m;
    }
  }
  {  // one split all class 0, the next all class 1...: each split has IS 1
    std::vector<float> z(std::size_t(100) * K, 0.f);
    for (int i = 0; i < 100; ++i) z[std::size_t(i) * K + std::size_t(i / 10)] = 80.f;
    EXPECT_NEAR(eval::inception_score(z.data(), 100, K, 10).mean, 1.0, 1e-9);
    EXPECT_NEAR(eval::inception_score(z.data(), 100, K, 1).mean, 10.0, 1e-8);  // one split: 10 classes
  }
}

TEST(InceptionScore, MatchesADirectImplementationOfADMsFormula) {
  // ADM: parts of split_size rows; kl = mean_rows sum_k p (log p - log mean_part p); IS = mean exp(kl).
  const int K = 50, n = 230, splits = 5;  // 230 / 5 = 46 rows per part (ADM's split_size 46)
  const auto zf = gaussian_rows(n, K, 11, 2.0);
  std::vector<double> scores;
  for (int s = 0; s < splits; ++s) {
    const int a = s * 46, b = a + 46;
    std::vector<std::vector<double>> P;
    std::vector<double> marg(K, 0.0);
    for (int i = a; i < b; ++i) {
      std::vector<double> p(K);
      double sum = 0;
      for (int k = 0; k < K; ++k) sum += (p[std::size_t(k)] = std::exp(double(zf[std::size_t(i * K + k)])));
      for (auto& v : p) v /= sum;
      for (int k = 0; k < K; ++k) marg[std::size_t(k)] += p[std::size_t(k)] / 46.0;
      P.push_back(p);
    }
    double kl = 0;
    for (const auto& p : P)
      for (int k = 0; k < K; ++k) kl += p[std::size_t(k)] * (std::log(p[std::size_t(k)]) - std::log(marg[std::size_t(k)])) / 46.0;
    scores.push_back(std::exp(kl));
  }
  double want = 0;
  for (double v : scores) want += v / splits;
  const auto is = eval::inception_score(zf.data(), n, K, splits);
  EXPECT_NEAR(is.mean, want, 1e-12 * want);
  expect_error([&] { eval::inception_score(zf.data(), 3, K, 10); }, {"3 samples", "10 splits"});
}

TEST(PrecisionRecallAdm, MatchesABruteForceManifoldTest) {
  // The ADM manifold test written out naively: radius_i = (k+1)-th smallest squared distance of
  // row i to its own set (itself included, 0); q is inside when |q - x_i|^2 <= radius_i for some i.
  const int d = 9, k = 3;
  const std::int64_t nr = 300, ng = 270;
  const auto R = gaussian_rows(nr, d, 21), G = gaussian_rows(ng, d, 22, 1.3);
  auto d2 = [&](const float* a, const float* b) {
    double s = 0;
    for (int j = 0; j < d; ++j) s += (double(a[j]) - b[j]) * (double(a[j]) - b[j]);
    return s;
  };
  auto radii = [&](const std::vector<float>& X, std::int64_t n) {
    std::vector<double> r(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) {
      std::vector<double> all;
      for (std::int64_t j = 0; j < n; ++j) all.push_back(d2(&X[std::size_t(i * d)], &X[std::size_t(j * d)]));
      std::sort(all.begin(), all.end());
      r[std::size_t(i)] = all[std::size_t(k)];
    }
    return r;
  };
  auto frac = [&](const std::vector<float>& Q, std::int64_t nq, const std::vector<float>& X, std::int64_t nx,
                  const std::vector<double>& rad) {
    std::int64_t in = 0;
    for (std::int64_t i = 0; i < nq; ++i) {
      bool hit = false;
      for (std::int64_t j = 0; j < nx && !hit; ++j) hit = d2(&Q[std::size_t(i * d)], &X[std::size_t(j * d)]) <= rad[std::size_t(j)];
      in += hit;
    }
    return double(in) / double(nq);
  };
  const auto pr = eval::precision_recall(R.data(), nr, G.data(), ng, d, k);
  EXPECT_DOUBLE_EQ(pr.precision, frac(G, ng, R, nr, radii(R, nr)));
  EXPECT_DOUBLE_EQ(pr.recall, frac(R, nr, G, ng, radii(G, ng)));
  EXPECT_GT(pr.precision, 0.2);
  EXPECT_LT(pr.precision, 1.0);
}

namespace {
eval::InceptionEncoder synthetic_encoder(int S) {
  InceptionV3<float> net(S);
  load_inception(net, inception_synthetic_weights());
  return eval::InceptionEncoder(std::move(net), "synthetic");
}
std::vector<std::uint8_t> images(std::int64_t n, int h, int c, std::uint64_t seed, int lo = 0, int hi = 256) {
  std::vector<std::uint8_t> v(std::size_t(n) * std::size_t(h * h * c));
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = std::uint8_t(lo + int(philox::uniform(seed, 1, i) * (hi - lo)));
  return v;
}
}  // namespace

TEST(AdmSuite, ReferenceRoundTripAndSelfEvaluation) {
  test::TempDir dir("adm_suite");
  auto enc = synthetic_encoder(75);
  const int n = 12, h = 20;
  const auto real = images(n, h, 3, 1);
  const auto st = eval::make_adm_reference(enc, dir / "ref.npz", real.data(), n, h, h, 3, {}, 5);
  const auto ref = eval::AdmBatch::open(dir / "ref.npz", enc.spatial_dim());
  ASSERT_TRUE(ref.stats().has_value());
  EXPECT_EQ(ref.n(), n);
  EXPECT_EQ((ref.stats()->mu - st.mu).cwiseAbs().maxCoeff(), 0.0);
  EXPECT_EQ((ref.stats()->sigma_s - st.sigma_s).cwiseAbs().maxCoeff(), 0.0);
  EXPECT_TRUE(std::equal(real.begin(), real.end(), ref.pixels()));
  // The reference against itself: FID = sFID = 0, precision = recall = 1.
  const auto self = eval::adm_evaluate(enc, ref, ref, 7);
  // (not bit-zero: other network batch sizes round the features differently)
  EXPECT_LT(std::abs(self.fid), 1e-6 * st.sigma.trace());
  EXPECT_LT(std::abs(self.sfid), 1e-6 * st.sigma_s.trace());
  std::printf("self FID %.3g sFID %.3g (traces %.3g, %.3g)\n", self.fid, self.sfid, st.sigma.trace(), st.sigma_s.trace());
  EXPECT_EQ(self.precision, 1.0);
  EXPECT_EQ(self.recall, 1.0);
  EXPECT_TRUE(self.reference_stats_from_file);
  // Dark, low-contrast samples: further away than the reference from itself; the stats read
  // from the file and computed from arr_0 give the same FID.
  const auto fake = images(10, 16, 1, 2, 0, 40);
  io::save_sample_npz(dir / "samples.npz", fake.data(), 10, 16, 16, 1);
  const auto samples = eval::AdmBatch::open(dir / "samples.npz", enc.spatial_dim());
  EXPECT_FALSE(samples.stats().has_value());
  std::int64_t calls = 0;
  const auto res = eval::adm_evaluate(enc, samples, ref, 8, [&](const std::string&, std::int64_t, std::int64_t) { ++calls; });
  EXPECT_EQ(calls, 3 + 3);  // per pass: one at the start, one per batch of 8 (12 and 10 images)
  EXPECT_GT(res.fid, 1e-3);
  EXPECT_GT(res.sfid, 1e-3);
  EXPECT_GE(res.inception_score, 1.0 - 1e-9);  // 1 sample per split here: IS = 1
  // Without the statistics in the file, they are computed from arr_0: the same as those written.
  const auto again = eval::adm_activations(enc, ref.pixels(), ref.n(), ref.h(), ref.w(), ref.c(), false, {}, 8).stats();
  EXPECT_LT((again.mu - st.mu).cwiseAbs().maxCoeff(), 1e-5);
  EXPECT_LT((again.sigma - st.sigma).cwiseAbs().maxCoeff(), 1e-5);
  EXPECT_LT((again.sigma_s - st.sigma_s).cwiseAbs().maxCoeff(), 1e-5);
  const std::string js = res.to_json();
  for (const char* key : {"\"inception_score\":", "\"fid\":", "\"sfid\":", "\"precision\":", "\"recall\":"})
    EXPECT_NE(js.find(key), std::string::npos) << key;
  EXPECT_NE(res.table().find("sFID: "), std::string::npos);
}

TEST(AdmSuite, CorruptAndForeignReferencesNameTheFileAndArray) {
  test::TempDir dir("adm_bad");
  const auto px = images(4, 8, 3, 3);
  std::vector<double> mu(2048, 0.0), sig(16, 0.0), mus(63, 0.0), sigs(63 * 63, 0.0);
  {
    io::NpzWriter z;  // stats without sigma_s
    z.add("arr_0", {4, 8, 8, 3}, px.data());
    z.add("mu", {2048}, mu.data());
    z.write(dir / "partial.npz");
    expect_error([&] { eval::AdmBatch::open(dir / "partial.npz", 63); }, {"partial.npz", "no array 'sigma'"});
  }
  {
    io::NpzWriter z;  // sigma of the wrong shape
    z.add("arr_0", {4, 8, 8, 3}, px.data());
    z.add("mu", {2048}, mu.data());
    z.add("sigma", {4, 4}, sig.data());
    z.add("mu_s", {63}, mus.data());
    z.add("sigma_s", {63, 63}, sigs.data());
    z.write(dir / "shape.npz");
    expect_error([&] { eval::AdmBatch::open(dir / "shape.npz", 63); },
                 {"shape.npz", "array 'sigma'", "[4, 4]", "expected [2048, 2048]"});
    expect_error([&] { eval::AdmBatch::open(dir / "shape.npz", 2023); }, {"shape.npz", "array 'sigma'"});
  }
  {
    io::NpzWriter z;  // float images
    std::vector<float> f(4 * 8 * 8 * 3, 0.5f);
    z.add("arr_0", {4, 8, 8, 3}, f.data());
    z.write(dir / "float.npz");
    expect_error([&] { eval::AdmBatch::open(dir / "float.npz"); }, {"float.npz", "array 'arr_0'", "dtype '<f4'"});
  }
  {
    io::NpzWriter z;  // no images
    z.add("mu", {2048}, mu.data());
    z.write(dir / "noimg.npz");
    expect_error([&] { eval::AdmBatch::open(dir / "noimg.npz"); }, {"noimg.npz", "no array 'arr_0'"});
  }
  test::write_file(dir / "foreign.npz", "this is not a zip archive at all, just text");
  expect_error([&] { eval::AdmBatch::open(dir / "foreign.npz"); }, {"foreign.npz"});
  expect_error([&] { eval::AdmBatch::open(dir / "missing.npz"); }, {"missing.npz"});
}
