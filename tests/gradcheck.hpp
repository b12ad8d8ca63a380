// tests/gradcheck.hpp — finite-difference gradient checking for double-precision ops and
// whole models, shared by the op tests and the model tests.
//
// Typical use: pick random weights w, define loss(x) = sum(w .* f(x)) (see weighted_sum), run the
// backward with dout = w to get the analytic gradient g, then
//   EXPECT_LT(max_rel_error([&] { return loss(); }, x, n, g.data()), 1e-6);
// where loss_fn re-runs the forward on the *current* contents of x (the checker perturbs x in
// place, one element at a time, and restores it).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace redi::test {

/// |a - b| / max(floor, |a| + |b|): relative where the values are large, absolute (scaled by
/// 1/floor) near zero, so gradients that are zero up to rounding do not produce huge ratios.
inline double rel_error(double a, double b, double floor = 1e-6) {
  return std::fabs(a - b) / std::max(floor, std::fabs(a) + std::fabs(b));
}

struct GradCheckResult {
  double max_rel = 0;        // worst relative error over the checked entries
  std::int64_t worst = -1;   // its index
  double analytic = 0, numeric = 0;  // the two values there
  std::int64_t checked = 0;  // number of entries checked
  std::string str() const {
    std::ostringstream os;
    os << "max_rel=" << max_rel << " at [" << worst << "] analytic=" << analytic
       << " numeric=" << numeric << " (" << checked << " entries)";
    return os.str();
  }
};

/// Central differences (loss(x + h e_i) - loss(x - h e_i)) / 2h against analytic_grad[i] for
/// every i in [0, n) with i % stride == 0 (stride > 1 samples large tensors). loss_fn() -> double
/// must evaluate the loss at the current contents of x. x is restored exactly afterwards.
template <class F>
GradCheckResult grad_check(F&& loss_fn, double* x, std::int64_t n, const double* analytic_grad,
                           double h = 1e-6, double floor = 1e-6, std::int64_t stride = 1) {
  GradCheckResult r;
  for (std::int64_t i = 0; i < n; i += std::max<std::int64_t>(1, stride)) {
    const double x0 = x[i];
    x[i] = x0 + h;
    const double lp = loss_fn();
    x[i] = x0 - h;
    const double lm = loss_fn();
    x[i] = x0;
    const double num = (lp - lm) / (2 * h);
    const double e = rel_error(analytic_grad[i], num, floor);
    ++r.checked;
    if (e > r.max_rel || r.worst < 0) {
      r.max_rel = e;
      r.worst = i;
      r.analytic = analytic_grad[i];
      r.numeric = num;
    }
  }
  return r;
}

/// The worst relative error of grad_check (the simple form).
template <class F>
double max_rel_error(F&& loss_fn, double* x, std::int64_t n, const double* analytic_grad,
                     double h = 1e-6, double floor = 1e-6) {
  return grad_check(loss_fn, x, n, analytic_grad, h, floor).max_rel;
}

/// sum w .* y, accumulated in long double (keeps the finite-difference noise down).
inline double weighted_sum(const double* w, const double* y, std::int64_t n) {
  long double s = 0;
  for (std::int64_t i = 0; i < n; ++i) s += static_cast<long double>(w[i]) * y[i];
  return static_cast<double>(s);
}

/// Uniform [lo, hi) values from a fixed seed.
template <class T = double>
std::vector<T> uniform(std::int64_t n, std::uint64_t seed, double lo = -1, double hi = 1) {
  std::mt19937_64 g(seed);
  std::uniform_real_distribution<double> d(lo, hi);
  std::vector<T> v(static_cast<std::size_t>(n));
  for (auto& x : v) x = static_cast<T>(d(g));
  return v;
}

/// Standard normal values from a fixed seed.
template <class T = double>
std::vector<T> normal(std::int64_t n, std::uint64_t seed, double stddev = 1) {
  std::mt19937_64 g(seed);
  std::normal_distribution<double> d(0.0, stddev);
  std::vector<T> v(static_cast<std::size_t>(n));
  for (auto& x : v) x = static_cast<T>(d(g));
  return v;
}

/// Element-wise copy between precisions.
template <class To, class From>
std::vector<To> cast(const std::vector<From>& v) {
  return std::vector<To>(v.begin(), v.end());
}

/// max |a - b| / max(floor, max |b|): error relative to the size of the reference.
template <class A, class B>
double max_scaled_diff(const std::vector<A>& a, const std::vector<B>& b, double floor = 1e-30) {
  double mx = 0, ref = floor;
  for (std::size_t i = 0; i < a.size() && i < b.size(); ++i) {
    mx = std::max(mx, std::fabs(double(a[i]) - double(b[i])));
    ref = std::max(ref, std::fabs(double(b[i])));
  }
  return a.size() == b.size() ? mx / ref : 1e300;
}

/// Richardson-extrapolated central difference of loss_fn() with respect to *x:
/// (4 D(h/2) - D(h)) / 3, error O(h^4). For strongly curved losses (randomised whole models)
/// where plain central differences need an h so small that round-off dominates. *x is restored.
template <class F>
double richardson_derivative(F&& loss_fn, double* x, double h = 1e-3) {
  auto central = [&](double hh) {
    const double x0 = *x;
    *x = x0 + hh;
    const double lp = loss_fn();
    *x = x0 - hh;
    const double lm = loss_fn();
    *x = x0;
    return (lp - lm) / (2 * hh);
  };
  return (4 * central(h / 2) - central(h)) / 3;
}

/// Worst rel_error(analytic[i], richardson_derivative at x[i]) over ~`samples` evenly strided
/// entries of x[0, n). Fills `at` with the worst index when given.
template <class F>
double max_rel_error_richardson(F&& loss_fn, double* x, std::int64_t n, const double* analytic,
                                double floor = 1e-4, std::int64_t samples = 48,
                                std::int64_t* at = nullptr, double h = 1e-3) {
  double worst = 0;
  const std::int64_t stride = std::max<std::int64_t>(1, n / std::max<std::int64_t>(1, samples));
  for (std::int64_t i = 0; i < n; i += stride) {
    const double e = rel_error(analytic[i], richardson_derivative(loss_fn, x + i, h), floor);
    if (e > worst || (at && *at < 0)) {
      worst = e;
      if (at) *at = i;
    }
  }
  return worst;
}

}  // namespace redi::test
