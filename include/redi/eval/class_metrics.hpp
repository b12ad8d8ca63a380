// redi/eval/class_metrics.hpp — what a classifier's predictions say about a set of samples:
//
//   class accuracy   (conditional samples) the fraction of samples the classifier assigns to the
//                    label they were generated for;
//   class coverage   (any samples, meant for unconditional ones) from the histogram n_1..n_K of
//                    predicted classes over N samples, p_c = n_c / N:
//                      coverage        = exp(H(p)) / K,  H(p) = -sum_c p_c ln p_c   (0 ln 0 = 0)
//                                        the effective number of classes as a fraction of K: 1 for
//                                        a uniform histogram, 1/K when every sample is one class;
//                      classes_covered = #{c : n_c >= N / (2K)}, the classes that receive at
//                                        least half their fair share.
#pragma once
#include <cmath>
#include <cstdint>
#include <vector>

#include "redi/core/error.hpp"

namespace redi::eval {

struct ClassCoverage {
  std::vector<std::int64_t> histogram;  ///< predicted-class counts, K entries
  double entropy = 0;                   ///< H(p) in nats
  double coverage = 0;                  ///< exp(H) / K, in [1/K, 1]
  int classes_covered = 0;              ///< classes with n_c >= N / (2K)
};

/// Coverage of `n` predicted classes in [0, K).
inline ClassCoverage class_coverage(const int* pred, std::int64_t n, int K) {
  REDI_CHECK(n > 0 && K > 0, "class_coverage: ", n, " predictions over ", K, " classes");
  ClassCoverage c;
  c.histogram.assign(std::size_t(K), 0);
  for (std::int64_t i = 0; i < n; ++i) {
    REDI_CHECK(pred[i] >= 0 && pred[i] < K, "class_coverage: prediction ", pred[i], " outside [0, ", K, ")");
    ++c.histogram[std::size_t(pred[i])];
  }
  for (std::int64_t h : c.histogram) {
    if (h > 0) {
      const double p = double(h) / double(n);
      c.entropy -= p * std::log(p);
    }
    // n_c >= N / (2K), in integers
    if (2 * std::int64_t(K) * h >= n) ++c.classes_covered;
  }
  c.coverage = std::exp(c.entropy) / double(K);
  return c;
}

/// The fraction of i with pred[i] == labels[i].
inline double class_accuracy(const int* pred, const int* labels, std::int64_t n) {
  REDI_CHECK(n > 0, "class_accuracy: no samples");
  std::int64_t hits = 0;
  for (std::int64_t i = 0; i < n; ++i) hits += pred[i] == labels[i];
  return double(hits) / double(n);
}

}  // namespace redi::eval
