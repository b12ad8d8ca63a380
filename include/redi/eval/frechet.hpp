// redi/eval/frechet.hpp — the Frechet distance between two Gaussians fitted to feature sets:
// FID when the features are Inception's, FD in any other encoder's space (the judge's,
// redi/eval/judge.hpp; the quickstart encoder's). GaussianStats accumulates mean and covariance
// in double, one batch of feature rows at a time.
#pragma once
#include <Eigen/Dense>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "redi/core/error.hpp"

#if defined(REDI_HAVE_LAPACK)
// LAPACK (in OpenBLAS's library): symmetric eigendecomposition, divide and conquer.
extern "C" void dsyevd_(const char* jobz, const char* uplo, const int* n, double* a, const int* lda, double* w,
                        double* work, const int* lwork, int* iwork, const int* liwork, int* info);
#endif

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
  /// Adds `rows` feature vectors (row-major, rows x dim), 256 at a time: sum += sum_r v_r and
  /// outer += V V^T (a symmetric rank-k update) for v = x - shift (shift = the first row seen,
  /// which keeps the covariance's cancellation small).
  void add(const float* x, std::int64_t rows) {
    if (rows <= 0) return;
    if (n_ == 0) shift_ = Eigen::Map<const Eigen::VectorXf>(x, dim_).cast<double>();
    constexpr std::int64_t kChunk = 256;
    Eigen::MatrixXd V;
    for (std::int64_t r0 = 0; r0 < rows; r0 += kChunk) {
      const std::int64_t m = std::min(kChunk, rows - r0);
      V = Eigen::Map<const Eigen::MatrixXf>(x + r0 * dim_, dim_, Eigen::Index(m)).cast<double>();
      V.colwise() -= shift_;
      sum_ += V.rowwise().sum();
      outer_.selfadjointView<Eigen::Lower>().rankUpdate(V);
    }
    n_ += rows;
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

namespace detail {
/// Eigenvalues (ascending) and, when `vectors`, eigenvectors (columns, written over `a`) of the
/// symmetric matrix `a`: LAPACK's dsyevd (divide and conquer over a blocked tridiagonalisation,
/// level-3 BLAS) when redi's OpenBLAS carries LAPACK (REDI_HAVE_LAPACK, set by CMake) — about 10x Eigen's
/// unblocked solver at d = 2048 —, else Eigen's SelfAdjointEigenSolver.
inline Eigen::VectorXd symmetric_eigen(Eigen::MatrixXd& a, bool vectors) {
  const int n = int(a.rows());
  Eigen::VectorXd w(n);
#if defined(REDI_HAVE_LAPACK)
  const char jobz = vectors ? 'V' : 'N', uplo = 'L';
  int info = 0, lwork = -1, liwork = -1, iwq = 0;
  double wq = 0;
  dsyevd_(&jobz, &uplo, &n, a.data(), &n, w.data(), &wq, &lwork, &iwq, &liwork, &info);
  REDI_CHECK(info == 0, "frechet_distance: LAPACK dsyevd workspace query failed (info ", info, ")");
  lwork = int(wq);
  liwork = iwq;
  std::vector<double> work(std::size_t(std::max(1, lwork)));
  std::vector<int> iwork(std::size_t(std::max(1, liwork)));
  dsyevd_(&jobz, &uplo, &n, a.data(), &n, w.data(), work.data(), &lwork, iwork.data(), &liwork, &info);
  REDI_CHECK(info == 0, "frechet_distance: eigendecomposition failed (LAPACK dsyevd info ", info, ")");
#else
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> e(a, vectors ? Eigen::ComputeEigenvectors : Eigen::EigenvaluesOnly);
  REDI_CHECK(e.info() == Eigen::Success, "frechet_distance: eigendecomposition failed");
  w = e.eigenvalues();
  if (vectors) a = e.eigenvectors();
#endif
  return w;
}
}  // namespace detail

inline double frechet_distance(const Eigen::VectorXd& mu1, const Eigen::MatrixXd& s1, const Eigen::VectorXd& mu2,
                               const Eigen::MatrixXd& s2) {
  REDI_CHECK(mu1.size() == mu2.size() && s1.rows() == mu1.size() && s1.cols() == mu1.size() &&
                 s2.rows() == mu1.size() && s2.cols() == mu1.size(),
             "frechet_distance: inconsistent sizes");
  Eigen::MatrixXd v = 0.5 * (s1 + s1.transpose());
  const Eigen::VectorXd ev = detail::symmetric_eigen(v, true).cwiseMax(0.0).cwiseSqrt();
  const Eigen::MatrixXd r1 = v * ev.asDiagonal() * v.transpose();
  const Eigen::MatrixXd m = r1 * s2 * r1;
  Eigen::MatrixXd ms = 0.5 * (m + m.transpose());
  const double tr_sqrt = detail::symmetric_eigen(ms, false).cwiseMax(0.0).cwiseSqrt().sum();
  return (mu1 - mu2).squaredNorm() + s1.trace() + s2.trace() - 2.0 * tr_sqrt;
}

inline double frechet_distance(const GaussianStats& a, const GaussianStats& b) {
  return frechet_distance(a.mean(), a.covariance(), b.mean(), b.covariance());
}

}  // namespace redi::eval
