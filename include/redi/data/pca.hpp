// redi/data/pca.hpp — the representation pipeline's PCA (docs/method.md section 4): per-channel
// standardisation, then PCA on the standardised features; projection of a patch-feature grid
// to r principal-component channels, bilinear resize to the latent grid, channels-first; and an
// optional per-channel normalisation of those r channels.
//
// Field names and meaning match the authors' file (data/dinov2_vitb14_reg_pca.safetensors):
//   z = ((f - feature_mean) / feature_std - pca_mean) @ components[:r].T
// Save/load: redi/data/pca_io.hpp.
#pragma once
#include <Eigen/Dense>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "redi/core/error.hpp"
#include "redi/data/resample.hpp"

namespace redi::data {

/// A fitted PCA over `dim`-channel features keeping `num_components` axes.
struct Pca {
  int dim = 0, num_components = 0;
  std::vector<float> feature_mean, feature_std;  ///< [dim] standardisation
  std::vector<float> pca_mean;                   ///< [dim] mean of the standardised features
  std::vector<float> components;                 ///< [num_components, dim], rows = unit axes,
                                                 ///< by decreasing explained variance
  std::vector<float> explained_variance;         ///< [num_components] (variance along each axis)

  void validate(const std::string& what = "PCA") const {
    REDI_CHECK(dim > 0 && num_components > 0 && num_components <= dim, what, ": ", num_components,
               " components of dimension ", dim);
    REDI_CHECK(feature_mean.size() == std::size_t(dim) && feature_std.size() == std::size_t(dim) &&
                   pca_mean.size() == std::size_t(dim),
               what, ": mean/std vectors must have ", dim, " entries");
    REDI_CHECK(components.size() == std::size_t(num_components) * std::size_t(dim), what, ": components has ",
               components.size(), " entries, expected ", num_components, " x ", dim);
    REDI_CHECK(explained_variance.size() == std::size_t(num_components), what, ": explained_variance has ",
               explained_variance.size(), " entries, expected ", num_components);
    for (int i = 0; i < dim; ++i)
      REDI_CHECK(feature_std[std::size_t(i)] > 0.f && std::isfinite(feature_std[std::size_t(i)]), what,
                 ": feature_std[", i, "] = ", feature_std[std::size_t(i)], " (must be positive)");
  }
};

/// How PcaFitter::fit standardises and what it keeps.
struct PcaFitOptions {
  int num_components = 0;  ///< 0: keep all `dim`
  /// A channel whose standard deviation is below this gets feature_std = 1 (as sklearn's
  /// StandardScaler does for constant channels), so it is only centred.
  double min_std = 1e-8;
  /// Optional fixed standardisation (both empty: fitted on the data). With fixed statistics
  /// pca_mean is the mean of the standardised fitting data (0 when fitted).
  std::vector<float> fixed_mean, fixed_std;
};

/// Streams feature rows (any number of add() calls, any batch sizes) and fits the PCA.
/// Accumulates, in double, the sum and the scatter matrix of the rows minus a shift (the first
/// row seen), which keeps the one-pass covariance accurate when means are large.
///   feature_mean = mean;  feature_std = population std (ddof 0, like StandardScaler);
///   covariance of the standardised data with ddof 1 (like sklearn's PCA);
///   components = its eigenvectors by decreasing eigenvalue (SelfAdjointEigenSolver), each
///   signed so that its largest-magnitude entry is positive (sklearn >= 1.5's convention);
///   explained_variance = the eigenvalues (negative round-off clamped to 0).
/// Memory dim^2 doubles; cost rows * dim^2 flops (a rank update per batch).
class PcaFitter {
public:
  explicit PcaFitter(int dim) : dim_(dim), sum_(Eigen::VectorXd::Zero(dim)), scatter_(Eigen::MatrixXd::Zero(dim, dim)) {
    REDI_CHECK(dim > 0, "PcaFitter: dimension ", dim);
  }
  int dim() const { return dim_; }
  std::int64_t count() const { return n_; }

  /// Adds `rows` feature vectors (row-major, rows x dim floats).
  void add(const float* x, std::int64_t rows) {
    if (rows <= 0) return;
    using RowMajor = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    Eigen::Map<const RowMajor> X(x, Eigen::Index(rows), dim_);
    if (n_ == 0) shift_ = X.row(0).cast<double>().transpose();
    constexpr std::int64_t kChunk = 4096;
    for (std::int64_t r0 = 0; r0 < rows; r0 += kChunk) {
      const Eigen::Index m = Eigen::Index(std::min(kChunk, rows - r0));
      Eigen::MatrixXd Y = X.middleRows(Eigen::Index(r0), m).cast<double>();
      Y.rowwise() -= shift_.transpose();
      sum_ += Y.colwise().sum().transpose();
      scatter_.selfadjointView<Eigen::Lower>().rankUpdate(Y.transpose());
    }
    n_ += rows;
  }

  Pca fit(const PcaFitOptions& opt = {}) const {
    REDI_CHECK(n_ >= 2, "PcaFitter: ", n_, " samples (at least 2 needed)");
    const int k = opt.num_components > 0 ? opt.num_components : dim_;
    REDI_CHECK(k <= dim_, "PcaFitter: ", k, " components requested of dimension ", dim_);
    const double n = double(n_);
    const Eigen::VectorXd my = sum_ / n;
    Eigen::MatrixXd cov = scatter_.selfadjointView<Eigen::Lower>();
    cov /= n;
    cov.noalias() -= my * my.transpose();  // population covariance of the raw features
    const Eigen::VectorXd mean = shift_ + my;

    Eigen::VectorXd fmean(dim_), fstd(dim_);
    const bool fixed = !opt.fixed_mean.empty() || !opt.fixed_std.empty();
    if (fixed) {
      REDI_CHECK(opt.fixed_mean.size() == std::size_t(dim_) && opt.fixed_std.size() == std::size_t(dim_),
                 "PcaFitter: fixed_mean/fixed_std must both have ", dim_, " entries");
      for (int i = 0; i < dim_; ++i) {
        fmean[i] = opt.fixed_mean[std::size_t(i)];
        fstd[i] = opt.fixed_std[std::size_t(i)];
        REDI_CHECK(fstd[i] > 0, "PcaFitter: fixed_std[", i, "] = ", fstd[i]);
      }
    } else {
      fmean = mean;
      for (int i = 0; i < dim_; ++i) {
        const double s = std::sqrt(std::max(cov(i, i), 0.0));
        fstd[i] = s < opt.min_std ? 1.0 : s;
      }
    }
    const Eigen::VectorXd inv = fstd.cwiseInverse();
    const Eigen::VectorXd zmean = ((mean - fmean).array() * inv.array()).matrix();
    Eigen::MatrixXd zcov = inv.asDiagonal() * cov * inv.asDiagonal();
    zcov *= n / (n - 1.0);

    Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es(zcov);
    REDI_CHECK(es.info() == Eigen::Success, "PcaFitter: eigendecomposition failed");
    Pca p;
    p.dim = dim_;
    p.num_components = k;
    p.feature_mean.resize(std::size_t(dim_));
    p.feature_std.resize(std::size_t(dim_));
    p.pca_mean.resize(std::size_t(dim_));
    for (int i = 0; i < dim_; ++i) {
      p.feature_mean[std::size_t(i)] = float(fmean[i]);
      p.feature_std[std::size_t(i)] = float(fstd[i]);
      p.pca_mean[std::size_t(i)] = float(zmean[i]);
    }
    p.components.resize(std::size_t(k) * std::size_t(dim_));
    p.explained_variance.resize(std::size_t(k));
    for (int c = 0; c < k; ++c) {
      const int col = dim_ - 1 - c;  // eigenvalues ascend
      Eigen::VectorXd v = es.eigenvectors().col(col);
      Eigen::Index arg = 0;
      v.cwiseAbs().maxCoeff(&arg);
      if (v[arg] < 0) v = -v;
      for (int i = 0; i < dim_; ++i) p.components[std::size_t(c) * std::size_t(dim_) + std::size_t(i)] = float(v[i]);
      p.explained_variance[std::size_t(c)] = float(std::max(es.eigenvalues()[col], 0.0));
    }
    return p;
  }

private:
  int dim_;
  std::int64_t n_ = 0;
  Eigen::VectorXd shift_, sum_;
  Eigen::MatrixXd scatter_;
};

/// Convenience: fits on `rows` x dim row-major features in one call.
inline Pca fit_pca(const float* x, std::int64_t rows, int dim, const PcaFitOptions& opt = {}) {
  PcaFitter f(dim);
  f.add(x, rows);
  return f.fit(opt);
}

/// Projects `tokens` feature rows f [tokens, dim] onto the first r axes:
/// z [tokens, r] = ((f - feature_mean) / feature_std - pca_mean) @ components[:r].T
/// (computed literally: standardise in float, then one GEMM).
inline void pca_project(const Pca& p, int r, const float* f, std::int64_t tokens, float* z) {
  REDI_CHECK(r >= 1 && r <= p.num_components, "pca_project: r = ", r, " with ", p.num_components, " components");
  using RowMajor = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  Eigen::Map<const RowMajor> F(f, Eigen::Index(tokens), p.dim);
  Eigen::Map<const RowMajor> W(p.components.data(), r, p.dim);
  Eigen::Map<RowMajor> Z(z, Eigen::Index(tokens), r);
  Eigen::Map<const Eigen::RowVectorXf> mean(p.feature_mean.data(), p.dim), sd(p.feature_std.data(), p.dim),
      pm(p.pca_mean.data(), p.dim);
  constexpr std::int64_t kChunk = 1024;
  RowMajor G;
  for (std::int64_t t0 = 0; t0 < tokens; t0 += kChunk) {
    const Eigen::Index m = Eigen::Index(std::min(kChunk, tokens - t0));
    G = F.middleRows(Eigen::Index(t0), m);
    G.rowwise() -= mean;
    G.array().rowwise() /= sd.array();
    G.rowwise() -= pm;
    Z.middleRows(Eigen::Index(t0), m).noalias() = G * W.transpose();
  }
}

/// Per-channel affine normalisation of the r PC channels: z' = (z - mean) / std.
/// Small models may need unit-scale feature channels (docs/training.md); the public ReDi code keeps
/// the natural scale (std ~5.8, 4.9, ... for DINOv2-B), i.e. no normalisation.
struct PcNormalization {
  std::vector<float> mean, std;  ///< [r]
  int channels() const { return int(mean.size()); }

  /// mean 0, std sqrt(explained_variance[:r]): the projected channels' statistics on the PCA's
  /// own fitting set (before the bilinear resize, which shrinks the variance slightly).
  static PcNormalization from_explained_variance(const Pca& p, int r) {
    REDI_CHECK(r >= 1 && r <= p.num_components, "PcNormalization: r = ", r, " with ", p.num_components, " components");
    PcNormalization n;
    n.mean.assign(std::size_t(r), 0.f);
    for (int k = 0; k < r; ++k) n.std.push_back(std::sqrt(std::max(p.explained_variance[std::size_t(k)], 1e-12f)));
    return n;
  }
  /// Normalises `z` [B, r, H, W] (channels-first) in place.
  void apply(float* z, std::int64_t batch, std::int64_t plane) const { affine(z, batch, plane, false); }
  /// Undoes apply() (generated features back to the PCA's natural scale).
  void invert(float* z, std::int64_t batch, std::int64_t plane) const { affine(z, batch, plane, true); }

private:
  void affine(float* z, std::int64_t batch, std::int64_t plane, bool inverse) const {
    REDI_CHECK(mean.size() == std.size() && !mean.empty(), "PcNormalization: mean/std sizes ", mean.size(), " and ",
               std.size());
    const std::size_t r = mean.size();
    for (std::int64_t b = 0; b < batch; ++b)
      for (std::size_t k = 0; k < r; ++k) {
        float* p = z + (std::size_t(b) * r + k) * std::size_t(plane);
        const float m = mean[k], s = std[k];
        for (std::int64_t i = 0; i < plane; ++i) p[i] = inverse ? p[i] * s + m : (p[i] - m) / s;
      }
  }
};

/// Streams projected feature maps [B, r, H, W] and gives their per-channel mean and
/// (population) std: PcNormalization fitted on exactly what the model will see.
class PcStats {
public:
  explicit PcStats(int r) : sum_(std::size_t(r), 0.0), sq_(std::size_t(r), 0.0), shift_(std::size_t(r), 0.0) {
    REDI_CHECK(r >= 1, "PcStats: r = ", r);
  }
  void add(const float* z, std::int64_t batch, std::int64_t plane) {
    const std::size_t r = sum_.size();
    for (std::int64_t b = 0; b < batch; ++b)
      for (std::size_t k = 0; k < r; ++k) {
        const float* p = z + (std::size_t(b) * r + k) * std::size_t(plane);
        if (n_ == 0 && b == 0) shift_[k] = p[0];
        double s = 0, q = 0;
        for (std::int64_t i = 0; i < plane; ++i) {
          const double d = double(p[i]) - shift_[k];
          s += d;
          q += d * d;
        }
        sum_[k] += s;
        sq_[k] += q;
      }
    n_ += batch * plane;
  }
  PcNormalization finish(double min_std = 1e-6) const {
    REDI_CHECK(n_ > 0, "PcStats: no data");
    PcNormalization n;
    for (std::size_t k = 0; k < sum_.size(); ++k) {
      const double m = sum_[k] / double(n_);
      const double var = std::max(sq_[k] / double(n_) - m * m, 0.0);
      n.mean.push_back(float(m + shift_[k]));
      n.std.push_back(float(std::max(std::sqrt(var), min_std)));
    }
    return n;
  }

private:
  std::vector<double> sum_, sq_, shift_;
  std::int64_t n_ = 0;
};

/// The full per-image path of docs/method.md section 4: patch features [B, gh, gw, dim] (token-major,
/// channels last) -> PCA to r channels -> [r, gh, gw] -> bilinear (align_corners=False) to
/// out_h x out_w -> optional normalisation -> out [B, r, out_h, out_w].
inline void features_to_latent(const Pca& p, int r, const float* feats, int batch, int gh, int gw, float* out,
                               int out_h, int out_w, const PcNormalization* norm = nullptr) {
  REDI_CHECK(batch >= 0 && gh > 0 && gw > 0, "features_to_latent: bad grid ", gh, "x", gw);
  REDI_CHECK(!norm || norm->channels() == r, "features_to_latent: normalisation has ", norm ? norm->channels() : 0,
             " channels, r = ", r);
  const std::size_t tokens = std::size_t(gh) * std::size_t(gw);
  std::vector<float> z(tokens * std::size_t(r)), planes(tokens * std::size_t(r));
  for (int b = 0; b < batch; ++b) {
    pca_project(p, r, feats + std::size_t(b) * tokens * std::size_t(p.dim), std::int64_t(tokens), z.data());
    for (std::size_t t = 0; t < tokens; ++t)
      for (int k = 0; k < r; ++k) planes[std::size_t(k) * tokens + t] = z[t * std::size_t(r) + std::size_t(k)];
    float* o = out + std::size_t(b) * std::size_t(r) * std::size_t(out_h) * std::size_t(out_w);
    resize_bilinear(planes.data(), r, gh, gw, o, out_h, out_w);
  }
  if (norm) norm->apply(out, batch, std::int64_t(out_h) * out_w);
}

}  // namespace redi::data
