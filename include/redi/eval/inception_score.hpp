// redi/eval/inception_score.hpp — the Inception Score (Salimans et al. 2016) of class
// probabilities p(y|x) = softmax(logits) over n samples, as ADM's evaluator and improved-gan
// compute it: the samples are cut into `splits` consecutive parts [i n / s, (i+1) n / s), and
//   IS_i = exp( mean_{x in part i} KL(p(y|x) || p_i(y)) ),   p_i(y) = mean_{x in part i} p(y|x)
//   IS   = mean_i IS_i   (std_i reported too)
// with KL(p||q) = sum_y p log p - p log q (0 log 0 = 0). For n = 50,000 and 10 splits the parts
// are ADM's 5,000-sample parts. Softmax and sums in double. ADM feeds softmax(pool3 W) of the
// Inception's fc WITHOUT its bias (eval/inception.hpp: InceptionEncoder::logits).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "redi/core/error.hpp"

namespace redi::eval {

struct InceptionScore {
  double mean = 0, std = 0;  ///< over the splits (std: population, as numpy.std)
  int splits = 0;
};

/// Softmax of one row of K logits into p (double, max-subtracted).
inline void softmax_row(const float* z, int K, double* p) {
  double m = z[0];
  for (int k = 1; k < K; ++k) m = std::max(m, double(z[k]));
  double s = 0;
  for (int k = 0; k < K; ++k) s += (p[k] = std::exp(double(z[k]) - m));
  for (int k = 0; k < K; ++k) p[k] /= s;
}

/// IS of logits [n, K] (row-major) in `splits` parts (needs n >= splits).
inline InceptionScore inception_score(const float* logits, std::int64_t n, int K, int splits = 10) {
  REDI_CHECK(K >= 2 && splits >= 1 && n >= splits, "inception_score: ", n, " samples, ", K, " classes, ", splits,
             " splits (need at least one sample per split)");
  std::vector<double> P(std::size_t(n) * std::size_t(K));
#pragma omp parallel for schedule(static) if (n > 256)
  for (std::int64_t i = 0; i < n; ++i) softmax_row(logits + i * K, K, P.data() + i * K);
  InceptionScore r;
  r.splits = splits;
  std::vector<double> scores;
  std::vector<double> marg(static_cast<std::size_t>(K));
  for (int s = 0; s < splits; ++s) {
    const std::int64_t a = s * n / splits, b = (s + 1) * n / splits;
    std::fill(marg.begin(), marg.end(), 0.0);
    for (std::int64_t i = a; i < b; ++i)
      for (int k = 0; k < K; ++k) marg[std::size_t(k)] += P[std::size_t(i * K + k)];
    for (auto& m : marg) m /= double(b - a);
    double kl = 0;
    for (std::int64_t i = a; i < b; ++i)
      for (int k = 0; k < K; ++k) {
        const double p = P[std::size_t(i * K + k)];
        if (p > 0) kl += p * (std::log(p) - std::log(marg[std::size_t(k)]));
      }
    scores.push_back(std::exp(kl / double(b - a)));
  }
  for (double v : scores) r.mean += v / double(splits);
  for (double v : scores) r.std += (v - r.mean) * (v - r.mean) / double(splits);
  r.std = std::sqrt(r.std);
  return r;
}

}  // namespace redi::eval
