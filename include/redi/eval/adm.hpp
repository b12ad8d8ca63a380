// redi/eval/adm.hpp — the ADM evaluation suite (openai/guided-diffusion evaluations/evaluator.py)
// in redi: Inception Score, FID, sFID, improved precision and recall of a sample batch against a
// reference batch, both ADM-format npz files, with the FID Inception of eval/inception.hpp.
//
// A reference batch (ADM's VIRTUAL_imagenet256_labeled.npz, or redi_eval --make-ref) holds
//   arr_0    uint8 [N, H, W, C] (C = 3, or 1)  the real images (precision/recall)
//   mu       float64 [2048]        sigma   float64 [2048, 2048]   pool3 mean / covariance (FID)
//   mu_s     float64 [2023]        sigma_s float64 [2023, 2023]   spatial (sFID: 7 x 17 x 17, NHWC)
// (the statistics optional as a group: without them they are computed from arr_0). A sample batch
// needs arr_0 only. Any other content (a missing array, a wrong shape or dtype, a file that is not
// an npz) is a redi::Error naming the file and the array.
//
// Evaluation, as ADM: FID = FD(samples' pool3 stats, reference mu/sigma); sFID = FD of the spatial
// stats; IS over 10 splits of softmax(pool3 W_fc) (eval/inception_score.hpp); precision/recall
// with k = 3 between the reference's and the samples' pool3 features (eval/precision_recall.hpp:
// the same manifold test as ADM's batched ManifoldEstimator, distances in double instead of
// TensorFlow's float16/float32). Images stream from the memory-mapped npz through the network
// `batch` at a time: only the 2048-d pool3 features of each set are held (for precision/recall
// and IS), the spatial features go straight into their running statistics.
#pragma once
#include <Eigen/Dense>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "redi/eval/frechet.hpp"
#include "redi/eval/inception.hpp"
#include "redi/eval/inception_score.hpp"
#include "redi/eval/precision_recall.hpp"
#include "redi/io/npz.hpp"
#include "redi/train/metrics_log.hpp"

namespace redi::eval {

struct AdmStats {
  Eigen::VectorXd mu, mu_s;
  Eigen::MatrixXd sigma, sigma_s;
};

/// An opened ADM-format npz: a view of arr_0 in the mapped file, and the statistics if present.
class AdmBatch {
public:
  /// Opens `path`; spatial_dim is the expected length of mu_s (InceptionV3::spatial_dim()).
  static AdmBatch open(const std::filesystem::path& path, int spatial_dim = 2023) {
    AdmBatch b(io::NpzFile::open(path), path.string());
    const std::string what = " (an ADM batch holds arr_0 uint8 [N, H, W, 3]; a reference also mu [2048], "
                             "sigma [2048, 2048], mu_s [" + std::to_string(spatial_dim) + "], sigma_s [" +
                             std::to_string(spatial_dim) + ", " + std::to_string(spatial_dim) + "])";
    REDI_CHECK(b.file_.contains("arr_0"), b.path_, ": no array 'arr_0' (the images)", what);
    const io::NpyInfo& i = b.file_.info("arr_0");
    REDI_CHECK(i.descr == "|u1" || i.descr == "<u1", b.path_, ": array 'arr_0' has dtype '", i.descr,
               "', expected uint8", what);
    REDI_CHECK(i.shape.size() == 4 && i.shape[0] > 0 && (i.shape[3] == 3 || i.shape[3] == 1), b.path_,
               ": array 'arr_0' has shape ", io::shape_str(i.shape), ", expected [N, H, W, 3]", what);
    REDI_CHECK(!i.fortran_order, b.path_, ": array 'arr_0' is in Fortran order");
    b.n_ = i.shape[0];
    b.h_ = int(i.shape[1]);
    b.w_ = int(i.shape[2]);
    b.c_ = int(i.shape[3]);
    const auto bytes = b.file_.bytes("arr_0");
    REDI_CHECK(std::int64_t(bytes.size()) == i.numel(), b.path_, ": array 'arr_0' holds ", bytes.size(),
               " bytes for shape ", io::shape_str(i.shape), " (truncated?)");
    b.pixels_ = {reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()};
    const char* keys[] = {"mu", "sigma", "mu_s", "sigma_s"};
    int present = 0;
    for (const char* k : keys) present += b.file_.contains(k) ? 1 : 0;
    if (present > 0) {
      for (const char* k : keys)
        REDI_CHECK(b.file_.contains(k), b.path_, ": has statistics but no array '", k, "'", what);
      AdmStats s;
      s.mu = b.vector("mu", 2048, what);
      s.sigma = b.matrix("sigma", 2048, what);
      s.mu_s = b.vector("mu_s", spatial_dim, what);
      s.sigma_s = b.matrix("sigma_s", spatial_dim, what);
      b.stats_ = std::move(s);
    }
    return b;
  }

  const std::string& path() const { return path_; }
  std::int64_t n() const { return n_; }
  int h() const { return h_; }
  int w() const { return w_; }
  int c() const { return c_; }
  const std::uint8_t* pixels() const { return pixels_.data(); }
  const std::optional<AdmStats>& stats() const { return stats_; }

private:
  AdmBatch(io::NpzFile f, std::string path) : file_(std::move(f)), path_(std::move(path)) {}
  Eigen::VectorXd vector(const char* k, int d, const std::string& what) const {
    const io::NpyInfo& i = file_.info(k);
    REDI_CHECK(i.shape.size() == 1 && i.shape[0] == d, path_, ": array '", k, "' has shape ", io::shape_str(i.shape),
               ", expected [", d, "]", what);
    const auto v = file_.read<double>(k);
    for (std::size_t j = 0; j < v.size(); ++j)
      REDI_CHECK(std::isfinite(v[j]), path_, ": array '", k, "' holds a non-finite value at ", j);
    return Eigen::Map<const Eigen::VectorXd>(v.data(), d);
  }
  Eigen::MatrixXd matrix(const char* k, int d, const std::string& what) const {
    const io::NpyInfo& i = file_.info(k);
    REDI_CHECK(i.shape.size() == 2 && i.shape[0] == d && i.shape[1] == d, path_, ": array '", k, "' has shape ",
               io::shape_str(i.shape), ", expected [", d, ", ", d, "]", what);
    const auto v = file_.read<double>(k);
    for (std::size_t j = 0; j < v.size(); ++j)
      REDI_CHECK(std::isfinite(v[j]), path_, ": array '", k, "' holds a non-finite value at ", j);
    return Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(v.data(), d, d);
  }

  io::NpzFile file_;
  std::string path_;
  std::int64_t n_ = 0;
  int h_ = 0, w_ = 0, c_ = 0;
  std::span<const std::uint8_t> pixels_;
  std::optional<AdmStats> stats_;
};

/// Called before the first and after every network batch: (images done, images in total).
using AdmProgress = std::function<void(std::int64_t, std::int64_t)>;

/// The Inception activations of a set of images: pool3 rows and the statistics of both outputs.
struct AdmActivations {
  std::int64_t n = 0;
  std::vector<float> pool3;  ///< [n, 2048] (empty when not kept)
  GaussianStats pool{2048}, spatial{1};
  AdmStats stats() const { return {pool.mean(), spatial.mean(), pool.covariance(), spatial.covariance()}; }
};

/// Runs n images (uint8 NHWC h x w x c) through the encoder `batch` at a time.
inline AdmActivations adm_activations(InceptionEncoder& enc, const std::uint8_t* nhwc, std::int64_t n, int h, int w,
                                      int c, bool keep_pool3, const AdmProgress& progress = {}, int batch = 64) {
  AdmActivations a;
  a.n = n;
  a.spatial = GaussianStats(enc.spatial_dim());
  const std::size_t per = std::size_t(h) * std::size_t(w) * std::size_t(c);
  if (keep_pool3) a.pool3.resize(std::size_t(n) * 2048);
  std::vector<float> p(std::size_t(batch) * 2048), s(std::size_t(batch) * std::size_t(enc.spatial_dim()));
  if (progress) progress(0, n);
  for (std::int64_t i = 0; i < n; i += batch) {
    const std::int64_t nb = std::min<std::int64_t>(batch, n - i);
    float* pool = keep_pool3 ? a.pool3.data() + i * 2048 : p.data();
    enc.encode(nhwc + std::size_t(i) * per, nb, h, w, c, pool, s.data());
    a.pool.add(pool, nb);
    a.spatial.add(s.data(), nb);
    if (progress) progress(i + nb, n);
  }
  return a;
}

struct AdmResult {
  std::string samples, reference, feature_space;
  std::int64_t n = 0, n_reference = 0;
  bool reference_stats_from_file = false;
  double inception_score = 0, inception_score_std = 0, fid = 0, sfid = 0, precision = 0, recall = 0;
  int is_splits = 10, k = 3;

  std::string to_json() const {
    train::JsonObject o;
    o.add("samples", samples).add("reference", reference).add("feature_space", feature_space);
    o.add("n", n).add("n_reference", n_reference).add("reference_stats_from_file", reference_stats_from_file);
    o.add("inception_score", inception_score).add("inception_score_std", inception_score_std);
    o.add("is_splits", is_splits).add("fid", fid).add("sfid", sfid).add("precision", precision);
    o.add("recall", recall).add("k", k);
    return o.str();
  }
  /// ADM's five lines.
  std::string table() const {
    char b[512];
    std::snprintf(b, sizeof b,
                  "Inception Score: %.6g\nFID: %.6g\nsFID: %.6g\nPrecision: %.6g\nRecall: %.6g\n", inception_score,
                  fid, sfid, precision, recall);
    return b;
  }
};

/// The suite for `samples` against `ref` (see the header). `progress` gets a label per pass.
inline AdmResult adm_evaluate(InceptionEncoder& enc, const AdmBatch& samples, const AdmBatch& ref, int batch = 64,
                              const std::function<void(const std::string&, std::int64_t, std::int64_t)>& progress = {},
                              int k = 3, int is_splits = 10) {
  REDI_CHECK(samples.n() > k && ref.n() > k, "adm_evaluate: ", samples.n(), " samples and ", ref.n(),
             " reference images (precision/recall with k = ", k, " need more than ", k, " each)");
  auto pass = [&](const std::string& label) -> AdmProgress {
    if (!progress) return {};
    return [&progress, label](std::int64_t d, std::int64_t t) { progress(label, d, t); };
  };
  const AdmActivations r = adm_activations(enc, ref.pixels(), ref.n(), ref.h(), ref.w(), ref.c(), true,
                                           pass("reference"), batch);
  const AdmActivations s = adm_activations(enc, samples.pixels(), samples.n(), samples.h(), samples.w(),
                                           samples.c(), true, pass("samples"), batch);
  AdmResult res;
  res.samples = samples.path();
  res.reference = ref.path();
  res.feature_space = enc.feature_space();
  res.n = samples.n();
  res.n_reference = ref.n();
  res.k = k;
  res.is_splits = is_splits;
  const AdmStats rs = ref.stats() ? *ref.stats() : r.stats();
  res.reference_stats_from_file = ref.stats().has_value();
  const AdmStats ss = s.stats();
  res.fid = frechet_distance(ss.mu, ss.sigma, rs.mu, rs.sigma);
  res.sfid = frechet_distance(ss.mu_s, ss.sigma_s, rs.mu_s, rs.sigma_s);
  std::vector<float> logits(std::size_t(samples.n()) * std::size_t(enc.num_classes()));
  enc.logits(s.pool3.data(), samples.n(), logits.data());
  const InceptionScore is = inception_score(logits.data(), samples.n(), enc.num_classes(), is_splits);
  res.inception_score = is.mean;
  res.inception_score_std = is.std;
  const PrecisionRecall pr = precision_recall(r.pool3.data(), r.n, s.pool3.data(), s.n, 2048, k);
  res.precision = pr.precision;
  res.recall = pr.recall;
  return res;
}

/// Writes an ADM reference batch: arr_0 = the images, and their statistics (see the header).
inline void write_adm_reference(const std::filesystem::path& path, const std::uint8_t* nhwc, std::int64_t n, int h,
                                int w, int c, const AdmStats& st) {
  REDI_CHECK(n > 0 && (c == 3 || c == 1), path.string(), ": cannot write a reference of ", n, " images with ", c,
             " channels");
  auto row_major = [](const Eigen::MatrixXd& m) {
    return Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>(m);
  };
  const auto sg = row_major(st.sigma), sgs = row_major(st.sigma_s);
  io::NpzWriter z;
  z.add("arr_0", {n, h, w, c}, nhwc);
  z.add("mu", {st.mu.size()}, st.mu.data());
  z.add("sigma", {sg.rows(), sg.cols()}, sg.data());
  z.add("mu_s", {st.mu_s.size()}, st.mu_s.data());
  z.add("sigma_s", {sgs.rows(), sgs.cols()}, sgs.data());
  z.write(path);
}

/// Makes a reference batch from n images: runs them through the encoder and writes the file.
inline AdmStats make_adm_reference(InceptionEncoder& enc, const std::filesystem::path& path, const std::uint8_t* nhwc,
                                   std::int64_t n, int h, int w, int c, const AdmProgress& progress = {},
                                   int batch = 64) {
  REDI_CHECK(n >= 2, path.string(), ": a reference needs at least 2 images (a covariance), got ", n);
  const AdmActivations a = adm_activations(enc, nhwc, n, h, w, c, false, progress, batch);
  AdmStats st = a.stats();
  write_adm_reference(path, nhwc, n, h, w, c, st);
  return st;
}

}  // namespace redi::eval
