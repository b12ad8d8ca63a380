// redi/eval/judge.hpp — redi's independent judge of generated Fashion-MNIST images: a small CNN
// classifier (redi/nn/convnet.hpp, trained by redi/train/judge_training.hpp, weights shipped as
// data/judge/fashion_mnist_cnn.safetensors) that is never a feature source for ReDi. Its
// penultimate features (global-average-pooled, 128-d) give the Frechet distance and
// precision/recall; its head gives class accuracy and class coverage. docs/evaluation.md.
//
//   redi::eval::Judge judge = redi::eval::Judge::load();
//   redi::eval::ReferenceSet ref = judge.reference(test);           // test: padded ImageDataset
//   redi::eval::JudgeReport rep = judge.report(u8_nhwc, n, labels_or_null, ref);
//   rep.set_floor(judge.floor(val, n, ref));                        // real held-out images
//   std::cout << rep.summary();  write(rep.to_json());
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include "redi/core/paths.hpp"
#include "redi/data/dataset.hpp"
#include "redi/data/sampler.hpp"
#include "redi/eval/class_metrics.hpp"
#include "redi/eval/feature_encoder.hpp"
#include "redi/eval/frechet.hpp"
#include "redi/eval/precision_recall.hpp"
#include "redi/weights/convnet.hpp"
#include "redi/train/metrics_log.hpp"

namespace redi::eval {

/// What the judge says about a set of images (samples, or real images for the floor).
struct JudgeReport {
  static constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
  std::string feature_space, reference;
  std::int64_t n = 0, n_reference = 0;
  double fd = kNaN;                        ///< Frechet distance to the reference, judge features
  double precision = kNaN, recall = kNaN;  ///< improved precision / recall, k = k
  int k = 3;
  bool has_labels = false;
  double class_accuracy = kNaN;            ///< fraction classified as their label (labels given)
  int num_classes = 0;
  ClassCoverage coverage;                  ///< of the predicted classes
  // The floor: the same measures for n real held-out images (set_floor; floor_n == 0: none).
  std::string floor_source;
  std::int64_t floor_n = 0;
  double floor_fd = kNaN, floor_precision = kNaN, floor_recall = kNaN, floor_class_accuracy = kNaN,
         floor_coverage = kNaN;

  /// Records `real` (a report on real held-out images, Judge::floor) as this report's floor.
  void set_floor(const JudgeReport& real) {
    floor_source = real.floor_source;
    floor_n = real.n;
    floor_fd = real.fd;
    floor_precision = real.precision;
    floor_recall = real.recall;
    floor_class_accuracy = real.class_accuracy;
    floor_coverage = real.coverage.coverage;
  }

  /// One JSON object (NaN -> null).
  std::string to_json() const {
    train::JsonObject o;
    o.add("feature_space", feature_space).add("reference", reference).add("n_reference", n_reference);
    o.add("n", n).add("fd", fd).add("precision", precision).add("recall", recall).add("k", k);
    o.add("class_accuracy", class_accuracy);
    std::string hist = "[";
    for (std::size_t c = 0; c < coverage.histogram.size(); ++c)
      hist += (c ? "," : "") + std::to_string(coverage.histogram[c]);
    hist += "]";
    o.add("coverage", coverage.coverage).add("classes_covered", coverage.classes_covered);
    o.add("num_classes", num_classes).add("entropy", coverage.entropy).raw("class_histogram", hist);
    if (floor_n > 0) {
      train::JsonObject f;
      f.add("source", floor_source).add("n", floor_n).add("fd", floor_fd).add("precision", floor_precision);
      f.add("recall", floor_recall).add("class_accuracy", floor_class_accuracy).add("coverage", floor_coverage);
      o.add("floor", f);
      o.add("fd_over_floor", floor_fd > 0 ? fd / floor_fd : kNaN);
    }
    return o.str();
  }

  /// A few human-readable lines.
  std::string summary() const {
    auto num = [](double v, int prec = 4) {
      if (!std::isfinite(v)) return std::string("-");
      char b[32];
      std::snprintf(b, sizeof b, "%.*f", prec, v);
      return std::string(b);
    };
    std::string s;
    s += "judge: " + feature_space + "\n";
    s += "reference: " + reference + " (" + std::to_string(n_reference) + " images)\n";
    s += "                  samples (" + std::to_string(n) + ")";
    if (floor_n > 0) s += "   floor: real " + floor_source + " (" + std::to_string(floor_n) + ")";
    s += "\n";
    auto row = [&](const char* name, double v, double f, int prec = 4) {
      std::string r = std::string(name);
      r.resize(18, ' ');
      r += num(v, prec);
      if (floor_n > 0) {
        r.resize(40, ' ');
        r += num(f, prec);
      }
      s += r + "\n";
    };
    row("FD", fd, floor_fd, 3);
    row("precision", precision, floor_precision);
    row("recall", recall, floor_recall);
    row("class accuracy", class_accuracy, floor_class_accuracy);
    row("coverage", coverage.coverage, floor_coverage);
    s += "classes covered   " + std::to_string(coverage.classes_covered) + " / " + std::to_string(num_classes) + "\n";
    return s;
  }
};

class Judge {
public:
  /// The shipped weights, under redi::data_dir().
  static constexpr const char* kDefaultFile = "judge/fashion_mnist_cnn.safetensors";
  static constexpr int kBatch = 256;

  /// The shipped judge (redi::data_file(kDefaultFile); a redi::Error says how to point redi at
  /// its data folder when it is missing).
  static Judge load() { return load(data_file(kDefaultFile)); }
  /// A judge from weights saved by ConvNetClassifier::save (errors name the file and tensor).
  static Judge load(const std::filesystem::path& path) {
    return Judge(ConvNetClassifier<float>::load(path), path.filename().string());
  }

  explicit Judge(ConvNetClassifier<float> net, std::string weights_name = "")
      : net_(std::move(net)), weights_(std::move(weights_name)) {}

  ConvNetClassifier<float>& net() { return net_; }
  int num_classes() const { return net_.num_classes(); }
  int image_size() const { return net_.config().image_size; }
  int channels() const { return net_.config().channels; }

  // ---- eval::FeatureEncoder
  int feature_dim() const { return net_.feature_dim(); }
  std::string feature_space() const {
    return "judge CNN " + net_.config().layers + " (" + std::to_string(feature_dim()) + "-d penultimate)" +
           (weights_.empty() ? "" : ", " + weights_);
  }
  void features(const std::uint8_t* nhwc, std::int64_t n, int h, int w, int c, float* out) {
    check_shape(h, w, c, "Judge::features");
    classify(nhwc, n, out, nullptr);
  }

  /// Features [n, D] (optional) and predicted classes [n] (optional) of n judge-sized images.
  void classify(const std::uint8_t* nhwc, std::int64_t n, float* feats, int* pred) {
    const int S = image_size(), C = channels(), D = feature_dim(), K = num_classes();
    const std::size_t per = std::size_t(S) * std::size_t(S) * std::size_t(C), plane = std::size_t(S) * std::size_t(S);
    for (std::int64_t s = 0; s < n; s += kBatch) {
      const int nb = int(std::min<std::int64_t>(kBatch, n - s));
      x_.resize(std::size_t(nb) * per);
      for (int b = 0; b < nb; ++b) {
        const std::uint8_t* img = nhwc + std::size_t(s + b) * per;
        float* o = x_.data() + std::size_t(b) * per;
        for (std::size_t p = 0; p < plane; ++p)
          for (int k = 0; k < C; ++k) o[std::size_t(k) * plane + p] = data::to_unit_range(img[p * std::size_t(C) + std::size_t(k)]);
      }
      net_.forward(x_.data(), nb);
      if (feats) std::copy_n(net_.features(), std::size_t(nb) * std::size_t(D), feats + std::size_t(s) * std::size_t(D));
      if (pred)
        for (int b = 0; b < nb; ++b) {
          const float* z = net_.logits() + std::int64_t(b) * K;
          pred[s + b] = int(std::max_element(z, z + K) - z);
        }
    }
  }

  /// The reference set of n judge-sized images.
  ReferenceSet reference(const std::uint8_t* nhwc, std::int64_t n, std::string name, int k = 3) {
    return ReferenceSet::build(*this, nhwc, n, image_size(), image_size(), channels(), std::move(name), k);
  }
  /// The reference set of a dataset (e.g. the padded Fashion-MNIST test split).
  ReferenceSet reference(const data::ImageDataset& ds, int k = 3) {
    check_shape(ds.h, ds.w, ds.c, ds.source.c_str());
    return reference(ds.pixels.data(), ds.n, ds.source + " (" + std::to_string(ds.n) + ")", k);
  }

  /// Judges n judge-sized images (uint8 NHWC, [n, 32, 32, 1] for the Fashion-MNIST judge);
  /// labels (n entries in [0, K), or null) are the classes they were generated for.
  JudgeReport report(const std::uint8_t* nhwc, std::int64_t n, const int* labels, const ReferenceSet& ref) {
    REDI_CHECK(ref.feature_space == feature_space(), "Judge::report: reference ", ref.name, " was made in '",
               ref.feature_space, "', not in this judge's feature space '", feature_space(), "'");
    REDI_CHECK(n > ref.k, "Judge::report: ", n, " samples (precision/recall with k = ", ref.k, " need more than ",
               ref.k, ")");
    const int D = feature_dim(), K = num_classes();
    std::vector<float> f(std::size_t(n) * std::size_t(D));
    std::vector<int> pred(static_cast<std::size_t>(n));
    classify(nhwc, n, f.data(), pred.data());
    JudgeReport r;
    r.feature_space = feature_space();
    r.reference = ref.name;
    r.n_reference = ref.n;
    r.n = n;
    r.num_classes = K;
    r.k = ref.k;
    r.fd = frechet_distance(f.data(), n, D, ref);
    const auto pr = precision_recall(ref.features.data(), ref.n, f.data(), n, D, ref.k, &ref.radii_sq);
    r.precision = pr.precision;
    r.recall = pr.recall;
    r.coverage = class_coverage(pred.data(), n, K);
    if (labels) {
      for (std::int64_t i = 0; i < n; ++i)
        REDI_CHECK(labels[i] >= 0 && labels[i] < K, "Judge::report: label ", labels[i], " of sample ", i,
                   " outside [0, ", K, ")");
      r.has_labels = true;
      r.class_accuracy = class_accuracy(pred.data(), labels, n);
    }
    return r;
  }
  /// Judges the images of a dataset (with its labels when use_labels).
  JudgeReport report(const data::ImageDataset& ds, const ReferenceSet& ref, bool use_labels = true) {
    check_shape(ds.h, ds.w, ds.c, ds.source.c_str());
    return report(ds.pixels.data(), ds.n, use_labels ? ds.labels.data() : nullptr, ref);
  }

  /// The floor: the report for n real images of `heldout` (images that neither the judge nor
  /// the generator trained on, and not in the reference), the first n of a fixed permutation
  /// (all when n >= heldout.n), with their labels. FD depends on n: use the samples' n.
  JudgeReport floor(const data::ImageDataset& heldout, std::int64_t n, const ReferenceSet& ref,
                    std::uint64_t seed = 0x666c6f6f72ull /* "floor" */) {
    std::vector<std::int64_t> idx;
    if (n >= heldout.n) {
      idx.resize(std::size_t(heldout.n));
      std::iota(idx.begin(), idx.end(), std::int64_t(0));
    } else {
      idx = data::epoch_permutation(heldout.n, seed, 0);
      idx.resize(std::size_t(n));
      std::sort(idx.begin(), idx.end());
    }
    const data::ImageDataset sub = data::subset(heldout, idx);
    JudgeReport r = report(sub, ref, true);
    r.floor_source = heldout.source;
    return r;
  }

private:
  void check_shape(int h, int w, int c, const char* who) const {
    REDI_CHECK(h == image_size() && w == image_size() && c == channels(), who, ": ", h, "x", w, "x", c,
               " images; the judge takes ", image_size(), "x", image_size(), "x", channels(),
               (h == 28 ? " (pad Fashion-MNIST 28 -> 32 first: data::pad_to)" : ""));
  }

  ConvNetClassifier<float> net_;
  std::string weights_;
  std::vector<float> x_;
};
static_assert(FeatureEncoder<Judge>);

}  // namespace redi::eval
