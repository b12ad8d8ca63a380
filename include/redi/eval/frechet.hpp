// redi/eval/frechet.hpp — the Frechet distance between two Gaussians fitted to feature sets:
// FID when the features are Inception's, FD in any other encoder's space (the judge's,
// redi/eval/judge.hpp; the quickstart encoder's). GaussianStats accumulates mean and covariance
// in double, one batch of feature rows at a time.
#pragma once
#include <Eigen/Dense>

#include <cstdint>

#include "redi/core/error.hpp"

namespace redi::eval {

// Frechet distance between N(mu1, S1) and N(mu2, S2):
//   FD = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^{1/2})
// with tr((S1 S2)^{1/2}) = sum_i sqrt(lambda_i(S1^{1/2} S2 S1^{1/2})) (a symmetric PSD matrix, so
// no complex square root is needed; eigenvalue round-off below 0 is clamped).

/// Mean and covariance (ddof 1, like numpy.cov) of feature rows, accumulated in double.
class GaussianStats {
public:
  explicit GaussianStats(int dim) : dim_(dim), sum_(Eigen::VectorXd::Zero(dim)), outer_(Eigen::MatrixXd::Zero(dim, dim)) {
    REDI_CHECK(dim > 0, "GaussianStats: dimension ", dim);
  }
  int dim() const { return dim_; }
  std::int64_t count() const { return n_; }
  /// Adds `rows` feature vectors (row-major, rows x dim).
  void add(const float* x, std::int64_t rows) {
    for (std::int64_t r = 0; r < rows; ++r) {
      Eigen::VectorXd v = Eigen::Map<const Eigen::VectorXf>(x + r * dim_, dim_).cast<double>();
      if (n_ == 0) shift_ = v;
      v -= shift_;
      sum_ += v;
      outer_.selfadjointView<Eigen::Lower>().rankUpdate(v);
      ++n_;
    }
  }
  Eigen::VectorXd mean() const {
    REDI_CHECK(n_ > 0, "GaussianStats: no samples");
    return shift_ + sum_ / double(n_);
  }
  Eigen::MatrixXd covariance() const {
    REDI_CHECK(n_ >= 2, "GaussianStats: ", n_, " samples (a covariance needs 2)");
    const Eigen::VectorXd m = sum_ / double(n_);
    Eigen::MatrixXd c = outer_.selfadjointView<Eigen::Lower>();
    c -= double(n_) * m * m.transpose();
    return c / double(n_ - 1);
  }

private:
  int dim_;
  std::int64_t n_ = 0;
  Eigen::VectorXd shift_, sum_;
  Eigen::MatrixXd outer_;
};

inline double frechet_distance(const Eigen::VectorXd& mu1, const Eigen::MatrixXd& s1, const Eigen::VectorXd& mu2,
                               const Eigen::MatrixXd& s2) {
  REDI_CHECK(mu1.size() == mu2.size() && s1.rows() == mu1.size() && s1.cols() == mu1.size() &&
                 s2.rows() == mu1.size() && s2.cols() == mu1.size(),
             "frechet_distance: inconsistent sizes");
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> e1(s1);
  REDI_CHECK(e1.info() == Eigen::Success, "frechet_distance: eigendecomposition failed");
  const Eigen::VectorXd ev = e1.eigenvalues().cwiseMax(0.0).cwiseSqrt();
  const Eigen::MatrixXd r1 = e1.eigenvectors() * ev.asDiagonal() * e1.eigenvectors().transpose();
  const Eigen::MatrixXd m = r1 * s2 * r1;
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> em(0.5 * (m + m.transpose()), Eigen::EigenvaluesOnly);
  REDI_CHECK(em.info() == Eigen::Success, "frechet_distance: eigendecomposition failed");
  const double tr_sqrt = em.eigenvalues().cwiseMax(0.0).cwiseSqrt().sum();
  return (mu1 - mu2).squaredNorm() + s1.trace() + s2.trace() - 2.0 * tr_sqrt;
}

inline double frechet_distance(const GaussianStats& a, const GaussianStats& b) {
  return frechet_distance(a.mean(), a.covariance(), b.mean(), b.covariance());
}

}  // namespace redi::eval
