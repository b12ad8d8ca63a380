// redi/train/metrics_log.hpp — what a training run reports: a one-line JSON object builder,
// an append-only JSONL log (one object per logged step), the console progress line's duration
// format, and the Frechet distance between two Gaussians (the sample-quality measure of the
// quickstart; FID when the features are Inception's).
#pragma once
#include <Eigen/Dense>

#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "redi/core/error.hpp"
#include "redi/io/json.hpp"

namespace redi::train {

/// Builds one JSON object on one line: {"step":100,"loss":0.25,...}. Doubles are written with
/// 17 significant digits (they parse back to the same double); NaN and infinities, which JSON
/// cannot hold, are written as null.
class JsonObject {
public:
  JsonObject& add(std::string_view key, double v) {
    if (!std::isfinite(v)) return raw(key, "null");
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    return raw(key, buf);
  }
  JsonObject& add(std::string_view key, float v) { return add(key, double(v)); }
  JsonObject& add(std::string_view key, std::int64_t v) { return raw(key, std::to_string(v)); }
  JsonObject& add(std::string_view key, std::uint64_t v) { return raw(key, std::to_string(v)); }
  JsonObject& add(std::string_view key, int v) { return raw(key, std::to_string(v)); }
  JsonObject& add(std::string_view key, bool v) { return raw(key, v ? "true" : "false"); }
  JsonObject& add(std::string_view key, std::string_view v) { return raw(key, json::quote(std::string(v))); }
  JsonObject& add(std::string_view key, const char* v) { return add(key, std::string_view(v)); }
  JsonObject& add(std::string_view key, const std::string& v) { return add(key, std::string_view(v)); }
  /// A nested object.
  JsonObject& add(std::string_view key, const JsonObject& o) { return raw(key, o.str()); }
  /// A pre-formatted JSON value (array, nested object, ...), inserted verbatim.
  JsonObject& raw(std::string_view key, std::string_view json_value) {
    body_ += body_.empty() ? "" : ",";
    body_ += json::quote(std::string(key));
    body_ += ':';
    body_ += json_value;
    return *this;
  }
  std::string str() const { return "{" + body_ + "}"; }
  bool empty() const { return body_.empty(); }

private:
  std::string body_;
};

/// An append-only JSON-lines file: each write() adds one object and a newline and flushes, so
/// the file is readable (and complete up to the last line) while the run goes on.
class JsonlLog {
public:
  JsonlLog() = default;
  /// Opens `path`; `append` keeps existing lines (a resumed run), otherwise the file is truncated.
  JsonlLog(const std::filesystem::path& path, bool append) { open(path, append); }
  ~JsonlLog() { close(); }
  JsonlLog(const JsonlLog&) = delete;
  JsonlLog& operator=(const JsonlLog&) = delete;

  void open(const std::filesystem::path& path, bool append) {
    close();
    path_ = path;
    f_ = std::fopen(path.string().c_str(), append ? "ab" : "wb");
    REDI_CHECK(f_ != nullptr, path.string(), ": cannot open the metrics log: ", std::strerror(errno));
  }
  bool is_open() const { return f_ != nullptr; }
  const std::filesystem::path& path() const { return path_; }
  void write(const JsonObject& o) {
    if (!f_) return;
    const std::string line = o.str() + "\n";
    if (std::fwrite(line.data(), 1, line.size(), f_) != line.size() || std::fflush(f_) != 0)
      REDI_FAIL(path_.string(), ": write to the metrics log failed: ", std::strerror(errno));
  }
  void close() {
    if (f_) std::fclose(f_);
    f_ = nullptr;
  }

private:
  std::FILE* f_ = nullptr;
  std::filesystem::path path_;
};

/// "42s", "3m05s", "1h02m03s" (negative or non-finite: "?").
inline std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const auto s = std::int64_t(std::llround(seconds));
  char buf[48];
  if (s < 60) std::snprintf(buf, sizeof buf, "%llds", (long long)s);
  else if (s < 3600) std::snprintf(buf, sizeof buf, "%lldm%02llds", (long long)(s / 60), (long long)(s % 60));
  else
    std::snprintf(buf, sizeof buf, "%lldh%02lldm%02llds", (long long)(s / 3600), (long long)(s / 60 % 60),
                  (long long)(s % 60));
  return buf;
}

// ---------------------------------------------------------------------------------------------
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

}  // namespace redi::train
