// redi/eval/precision_recall.hpp — improved precision and recall (Kynkaenniemi et al. 2019,
// "Improved Precision and Recall Metric for Assessing Generative Models"), brute force.
//
// Each set of feature vectors approximates its manifold by the union of balls around its points,
// ball i having radius r_i = the distance from point i to its k-th nearest neighbour in the same
// set (k = 3 by default; the point itself does not count, duplicates do — the same as ADM's
// evaluator, which takes the (k+1)-th smallest distance including the zero to itself). Then
//   precision = fraction of generated points inside the REAL manifold  (some real i: |g - x_i| <= r_i)
//   recall    = fraction of real points inside the GENERATED manifold  (some generated j: |x - g_j| <= r_j)
// Distances are Euclidean, computed in double as |a|^2 + |b|^2 - 2 a.b over chunks of rows (a
// GEMM per chunk) and compared squared.
#pragma once
#include <Eigen/Dense>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "redi/core/error.hpp"

namespace redi::eval {

using RowMatrixD = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

namespace detail {
inline RowMatrixD to_double(const float* x, std::int64_t n, int dim) {
  return Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(x, n, dim)
      .cast<double>();
}
inline constexpr Eigen::Index kDistanceChunk = 256;  // query rows per distance block

/// Squared distances of query rows [q0, q0 + nq) of Q to every row of R: [nq, R.rows()].
inline void squared_distances(const RowMatrixD& Q, const Eigen::VectorXd& qn, Eigen::Index q0, Eigen::Index nq,
                              const RowMatrixD& R, const Eigen::VectorXd& rn, RowMatrixD& out) {
  out.noalias() = -2.0 * Q.middleRows(q0, nq) * R.transpose();
  out.colwise() += qn.segment(q0, nq);
  out.rowwise() += rn.transpose();
  out = out.cwiseMax(0.0);
}
}  // namespace detail

/// Squared k-NN radii of the rows of X [n, dim] within X (see the header). Needs n > k.
inline std::vector<double> knn_radii_squared(const float* X, std::int64_t n, int dim, int k = 3) {
  REDI_CHECK(k >= 1 && n > k, "knn_radii: ", n, " points cannot have a ", k, "-th nearest neighbour");
  REDI_CHECK(dim > 0, "knn_radii: dimension ", dim);
  const RowMatrixD A = detail::to_double(X, n, dim);
  const Eigen::VectorXd an = A.rowwise().squaredNorm();
  std::vector<double> radii(static_cast<std::size_t>(n));
  RowMatrixD d;
  for (Eigen::Index q0 = 0; q0 < n; q0 += detail::kDistanceChunk) {
    const Eigen::Index nq = std::min<Eigen::Index>(detail::kDistanceChunk, n - q0);
    detail::squared_distances(A, an, q0, nq, A, an, d);
#pragma omp parallel for schedule(static)
    for (Eigen::Index i = 0; i < nq; ++i) {
      double* row = d.data() + i * d.cols();
      row[q0 + i] = 0.0;  // itself: exactly 0, the first of the k + 1 smallest
      std::nth_element(row, row + k, row + d.cols());
      radii[std::size_t(q0 + i)] = row[k];
    }
  }
  return radii;
}

/// The fraction of the rows of Q [nq, dim] within the manifold of R [nr, dim] with squared
/// radii `radii_sq` (nr entries): |q - r_i|^2 <= radii_sq[i] for some i.
inline double manifold_fraction(const float* Q, std::int64_t nq, const float* R, std::int64_t nr,
                                const std::vector<double>& radii_sq, int dim) {
  REDI_CHECK(nq > 0 && nr > 0 && dim > 0 && radii_sq.size() == std::size_t(nr), "manifold_fraction: ", nq,
             " queries, ", nr, " manifold points with ", radii_sq.size(), " radii, dimension ", dim);
  const RowMatrixD A = detail::to_double(Q, nq, dim), B = detail::to_double(R, nr, dim);
  const Eigen::VectorXd an = A.rowwise().squaredNorm(), bn = B.rowwise().squaredNorm();
  const Eigen::Map<const Eigen::RowVectorXd> rad(radii_sq.data(), Eigen::Index(nr));
  std::int64_t inside = 0;
  RowMatrixD d;
  for (Eigen::Index q0 = 0; q0 < nq; q0 += detail::kDistanceChunk) {
    const Eigen::Index n = std::min<Eigen::Index>(detail::kDistanceChunk, nq - q0);
    detail::squared_distances(A, an, q0, n, B, bn, d);
#pragma omp parallel for schedule(static) reduction(+ : inside)
    for (Eigen::Index i = 0; i < n; ++i) inside += (d.row(i).array() <= rad.array()).any() ? 1 : 0;
  }
  return double(inside) / double(nq);
}

struct PrecisionRecall {
  double precision = 0, recall = 0;
  int k = 3;
};

/// Precision and recall of generated features G [ng, dim] against real features X [nr, dim].
/// `real_radii_sq` (optional) are knn_radii_squared(X, nr, dim, k), when already computed.
inline PrecisionRecall precision_recall(const float* X, std::int64_t nr, const float* G, std::int64_t ng, int dim,
                                        int k = 3, const std::vector<double>* real_radii_sq = nullptr) {
  std::vector<double> rr;
  if (!real_radii_sq) {
    rr = knn_radii_squared(X, nr, dim, k);
    real_radii_sq = &rr;
  }
  const std::vector<double> gr = knn_radii_squared(G, ng, dim, k);
  PrecisionRecall pr;
  pr.k = k;
  pr.precision = manifold_fraction(G, ng, X, nr, *real_radii_sq, dim);
  pr.recall = manifold_fraction(X, nr, G, ng, gr, dim);
  return pr;
}

}  // namespace redi::eval
