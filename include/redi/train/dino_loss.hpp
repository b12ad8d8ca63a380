// redi/train/dino_loss.hpp — the DINO self-distillation loss (Caron et al. 2021, eq. 1-2 and
// section 3.1), its gradient with respect to the student's logits, and the teacher's centre.
//
// Views are crop-major: view v of batch element b is row v * B + b; the first n_global views
// are the global crops, which the teacher sees. With teacher logits t and centre c,
//   P_t[i, b]  = softmax((t[i, b] - c) / tau_t)            (centring + sharpening; constants
//                                                           for the gradient, as in DINO)
//   Q_s[j, b]  = softmax(s[j, b] / tau_s)
//   L = 1 / (B * n_pairs) * sum_b sum_{i < n_global} sum_{j != i} H(P_t[i, b], Q_s[j, b])
// with H(p, q) = -sum_k p_k log q_k and n_pairs = n_global * n_views - n_global (every
// student view against every teacher view of another crop). Its gradient:
//   dL/ds[j, b] = (m_j Q_s[j, b] - sum_{i < n_global, i != j} P_t[i, b]) / (tau_s B n_pairs),
// m_j = the number of teacher views paired with view j.
// The centre moves after each step: c <- lambda c + (1 - lambda) mean_rows(t) (lambda = 0.9).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "redi/core/error.hpp"

namespace redi::train {

/// out[r] = softmax((t[r] - center) / temp) for r < rows (t, out [rows, K]; center [K]).
template <class T>
void dino_teacher_probs(const T* t, const double* center, int rows, int K, double temp, T* out) {
  REDI_CHECK(temp > 0 && rows > 0 && K > 0, "dino_teacher_probs: temp ", temp, ", rows ", rows, ", K ", K);
#pragma omp parallel for schedule(static) if (std::int64_t(rows) * K > 65536)
  for (int r = 0; r < rows; ++r) {
    const T* x = t + std::int64_t(r) * K;
    T* o = out + std::int64_t(r) * K;
    double mx = -1e300;
    for (int k = 0; k < K; ++k) mx = std::max(mx, (double(x[k]) - center[k]) / temp);
    double s = 0;
    std::vector<double> e(static_cast<std::size_t>(K));
    for (int k = 0; k < K; ++k) s += (e[std::size_t(k)] = std::exp((double(x[k]) - center[k]) / temp - mx));
    for (int k = 0; k < K; ++k) o[k] = T(e[std::size_t(k)] / s);
  }
}

/// The DINO loss of student logits s [n_views * B, K] against teacher probabilities
/// p [n_global * B, K] (from dino_teacher_probs); ds (may be null) is OVERWRITTEN with
/// dL/ds. Returns L (accumulated in double).
template <class T>
double dino_loss(const T* s, int n_views, const T* p, int n_global, int B, int K, double student_temp, T* ds) {
  REDI_CHECK(n_global >= 1 && n_views >= 2 && n_global <= n_views && B > 0 && K > 0 && student_temp > 0,
             "dino_loss: ", n_views, " views, ", n_global, " teacher views, B ", B, ", K ", K, ", tau_s ",
             student_temp);
  const double pairs = double(n_global) * n_views - n_global;
  const double scale = 1.0 / (double(B) * pairs);
  double total = 0;
#pragma omp parallel for schedule(static) reduction(+ : total) if (std::int64_t(n_views) * B * K > 65536)
  for (std::int64_t r = 0; r < std::int64_t(n_views) * B; ++r) {
    const int j = int(r / B), b = int(r % B);
    const T* x = s + r * K;
    std::vector<double> lq(static_cast<std::size_t>(K));  // log Q
    double mx = -1e300;
    for (int k = 0; k < K; ++k) mx = std::max(mx, double(x[k]) / student_temp);
    double z = 0;
    for (int k = 0; k < K; ++k) z += std::exp(double(x[k]) / student_temp - mx);
    const double lz = mx + std::log(z);
    for (int k = 0; k < K; ++k) lq[std::size_t(k)] = double(x[k]) / student_temp - lz;
    int m = 0;
    std::vector<double> psum(static_cast<std::size_t>(K), 0.0);
    for (int i = 0; i < n_global; ++i) {
      if (i == j) continue;
      ++m;
      const T* pi = p + (std::int64_t(i) * B + b) * K;
      double h = 0;
      for (int k = 0; k < K; ++k) {
        h -= double(pi[k]) * lq[std::size_t(k)];
        psum[std::size_t(k)] += double(pi[k]);
      }
      total += h * scale;
    }
    if (ds) {
      T* d = ds + r * K;
      for (int k = 0; k < K; ++k)
        d[k] = T((double(m) * std::exp(lq[std::size_t(k)]) - psum[std::size_t(k)]) * scale / student_temp);
    }
  }
  return total;
}

/// Row-wise self-distillation with weights (iBOT's masked-patch loss, Zhou et al. 2022, eq. 2,
/// when the rows are the masked tokens and w = 1 / (views * B * masked tokens of the row's image)):
///   L = sum_r w_r H(p_r, softmax(s_r / tau_s)),  dL/ds_r = w_r (softmax(s_r / tau_s) - p_r) / tau_s
/// s, p, ds [rows, K]; ds (may be null) is OVERWRITTEN. Returns L (accumulated in double).
template <class T>
double weighted_distill_loss(const T* s, const T* p, const double* w, int rows, int K, double student_temp, T* ds) {
  REDI_CHECK(rows >= 0 && K > 0 && student_temp > 0, "weighted_distill_loss: rows ", rows, ", K ", K, ", tau_s ",
             student_temp);
  double total = 0;
#pragma omp parallel for schedule(static) reduction(+ : total) if (std::int64_t(rows) * K > 65536)
  for (int r = 0; r < rows; ++r) {
    const T* x = s + std::int64_t(r) * K;
    const T* pr = p + std::int64_t(r) * K;
    double mx = -1e300;
    for (int k = 0; k < K; ++k) mx = std::max(mx, double(x[k]) / student_temp);
    double z = 0;
    for (int k = 0; k < K; ++k) z += std::exp(double(x[k]) / student_temp - mx);
    const double lz = mx + std::log(z);
    double h = 0;
    for (int k = 0; k < K; ++k) h -= double(pr[k]) * (double(x[k]) / student_temp - lz);
    total += w[r] * h;
    if (ds)
      for (int k = 0; k < K; ++k)
        ds[std::int64_t(r) * K + k] =
            T(w[r] * (std::exp(double(x[k]) / student_temp - lz) - double(pr[k])) / student_temp);
  }
  return total;
}

/// The teacher's centre c [K] (double), updated as an EMA of the batch-mean teacher logits.
class DinoCenter {
public:
  explicit DinoCenter(int K, double momentum = 0.9) : c_(static_cast<std::size_t>(K), 0.0), momentum_(momentum) {
    REDI_CHECK(K > 0 && momentum >= 0 && momentum <= 1, "DinoCenter: K ", K, ", momentum ", momentum);
  }
  const double* data() const { return c_.data(); }
  int size() const { return int(c_.size()); }
  double momentum() const { return momentum_; }
  /// c <- momentum c + (1 - momentum) mean over the rows of t [rows, K].
  template <class T>
  void update(const T* t, int rows) {
    REDI_CHECK(rows > 0, "DinoCenter::update: no rows");
    const int K = size();
    std::vector<double> mean(static_cast<std::size_t>(K), 0.0);
    for (int r = 0; r < rows; ++r)
      for (int k = 0; k < K; ++k) mean[std::size_t(k)] += double(t[std::int64_t(r) * K + k]);
    for (int k = 0; k < K; ++k)
      c_[std::size_t(k)] = momentum_ * c_[std::size_t(k)] + (1.0 - momentum_) * mean[std::size_t(k)] / rows;
  }

private:
  std::vector<double> c_;
  double momentum_;
};

/// Mean entropy (nats) of the rows of p [rows, K]: collapse to one prototype drives it to 0,
/// collapse to the uniform distribution to log K.
template <class T>
double mean_row_entropy(const T* p, int rows, int K) {
  double h = 0;
  for (std::int64_t i = 0; i < std::int64_t(rows) * K; ++i)
    if (p[i] > T(0)) h -= double(p[i]) * std::log(double(p[i]));
  return h / rows;
}

}  // namespace redi::train
