// redi/viz/ticks.hpp — axis ranges, "nice" tick values, tick labels and the data-to-pixel map.
//
// Linear ticks: the step is the smallest of {1, 2, 5} x 10^k for which the ticks
// floor(lo/step) step, ..., ceil(hi/step) step — which always cover [lo, hi] — number at most
// max_ticks; the axis then spans the first to the last tick. Log ticks (lo > 0): when they fit,
// the values {1, 2, 5} x 10^k from the last one <= lo to the first one >= hi; otherwise powers of
// ten covering [lo, hi] (every k-th power when there are too many). A degenerate range
// (lo == hi) is widened first.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "redi/core/error.hpp"

namespace redi::viz {

struct Ticks {
  std::vector<double> values;  ///< ascending; first <= lo, last >= hi
  double step = 0;             ///< linear: the tick spacing; log: 0
  bool log = false;
  double lo() const { return values.front(); }
  double hi() const { return values.back(); }
};

/// The smallest value of the form {1, 2, 5} x 10^k that is >= raw (raw > 0).
inline double nice_step(double raw) {
  REDI_CHECK(raw > 0 && std::isfinite(raw), "nice_step: ", raw, " is not a positive finite number");
  const double p = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * p >= raw * (1 - 1e-12)) return m * p;
  return 10.0 * p;
}

namespace detail {
inline double next_nice(double step) {
  const double p = std::pow(10.0, std::floor(std::log10(step) + 1e-9)), m = std::round(step / p);
  return (m < 1.5 ? 2.0 : (m < 3.5 ? 5.0 : 10.0)) * p;
}
/// Widens a degenerate or numerically empty range.
inline void widen(double& lo, double& hi) {
  if (hi - lo > 1e-12 * std::max(std::abs(lo), std::abs(hi))) return;
  const double d = lo == 0 ? 1.0 : 0.1 * std::abs(lo);
  lo -= d, hi += d;
}
}  // namespace detail

/// Linear ticks covering [lo, hi], 2..max_ticks of them (max_ticks >= 3: a range around 0 needs
/// three ticks, -step, 0, step).
inline Ticks linear_ticks(double lo, double hi, int max_ticks = 6) {
  REDI_CHECK(std::isfinite(lo) && std::isfinite(hi) && lo <= hi, "linear_ticks: bad range [", lo, ", ", hi, "]");
  REDI_CHECK(max_ticks >= 3 && max_ticks <= 1000, "linear_ticks: max_ticks ", max_ticks, " outside [3, 1000]");
  detail::widen(lo, hi);
  double step = nice_step((hi - lo) / (max_ticks - 1));
  std::int64_t a = 0, b = 0;
  for (;;) {
    a = std::int64_t(std::floor(lo / step + 1e-9)), b = std::int64_t(std::ceil(hi / step - 1e-9));
    if (b - a + 1 <= max_ticks) break;
    step = detail::next_nice(step);
  }
  Ticks t;
  t.step = step;
  for (std::int64_t i = a; i <= b; ++i) t.values.push_back(double(i) * step);
  return t;
}

/// Log ticks covering [lo, hi] (0 < lo <= hi), at most max_ticks of them (max_ticks >= 2).
inline Ticks log_ticks(double lo, double hi, int max_ticks = 6) {
  REDI_CHECK(std::isfinite(lo) && std::isfinite(hi) && lo > 0 && lo <= hi, "log_ticks: bad range [", lo, ", ", hi,
             "] (a log axis needs positive values)");
  REDI_CHECK(max_ticks >= 2 && max_ticks <= 1000, "log_ticks: max_ticks ", max_ticks, " outside [2, 1000]");
  auto e0 = std::int64_t(std::floor(std::log10(lo) + 1e-9)), e1 = std::int64_t(std::ceil(std::log10(hi) - 1e-9));
  if (e1 <= e0) e1 = e0 + 1;
  Ticks t;
  t.log = true;
  const std::int64_t decades = e1 - e0;
  if (decades <= 4) {  // 1, 2, 5 in each decade, from the last <= lo to the first >= hi
    std::vector<double> all;
    for (std::int64_t e = e0; e < e1; ++e)
      for (double m : {1.0, 2.0, 5.0}) all.push_back(m * std::pow(10.0, double(e)));
    all.push_back(std::pow(10.0, double(e1)));
    std::size_t a = 0, b = all.size() - 1;
    while (a + 1 < all.size() && all[a + 1] <= lo * (1 + 1e-12)) ++a;
    while (b > a + 1 && all[b - 1] >= hi * (1 - 1e-12)) --b;
    if (int(b - a + 1) <= max_ticks) {
      t.values.assign(all.begin() + std::ptrdiff_t(a), all.begin() + std::ptrdiff_t(b) + 1);
      return t;
    }
  }
  std::int64_t k = 1;  // every k-th decade from e0, up to the first power >= 10^e1
  while ((decades + k - 1) / k + 1 > max_ticks) ++k;
  for (std::int64_t e = e0; e < e1 + k; e += k) t.values.push_back(std::pow(10.0, double(e)));
  return t;
}

/// "1e-5" rather than "1e-05"; "2e6" rather than "2e+06".
inline std::string compact_exponent(std::string s) {
  const auto e = s.find('e');
  if (e == std::string::npos) return s;
  std::string mant = s.substr(0, e), ex = s.substr(e + 1);
  const bool neg = !ex.empty() && ex[0] == '-';
  if (!ex.empty() && (ex[0] == '-' || ex[0] == '+')) ex.erase(0, 1);
  while (ex.size() > 1 && ex[0] == '0') ex.erase(0, 1);
  return mant + "e" + (neg ? "-" : "") + ex;
}

/// A tick label: `v` with as many decimals as `step` needs (step 0: as `v` itself needs);
/// exponent notation for magnitudes >= 1e6 or steps below 1e-4.
inline std::string format_tick(double v, double step) {
  if (!std::isfinite(v)) return v != v ? "nan" : (v > 0 ? "inf" : "-inf");
  const double res = step > 0 ? step : std::abs(v);
  char buf[48];
  if (v == 0 || std::abs(v) < 1e-9 * res) {  // zero, also when rounding left 1e-17
    if (step <= 0 || step < 1e-4 || step >= 1) return "0";
    std::snprintf(buf, sizeof buf, "%.*f", int(-std::floor(std::log10(step) + 1e-9)), 0.0);
    return buf;
  }
  const int vexp = int(std::floor(std::log10(std::abs(v)) + 1e-9));
  const int sexp = int(std::floor(std::log10(res) + 1e-9));
  if (std::abs(v) >= 1e6 || res < 1e-4) {
    std::snprintf(buf, sizeof buf, "%.*e", std::max(0, vexp - sexp), v);
    return compact_exponent(buf);
  }
  std::snprintf(buf, sizeof buf, "%.*f", std::max(0, -sexp), v);
  return buf;
}

inline std::vector<std::string> tick_labels(const Ticks& t) {
  std::vector<std::string> out;
  for (double v : t.values) out.push_back(format_tick(v, t.step));
  return out;
}

/// Maps data values on [lo, hi] (linear or log10) onto continuous pixel coordinates
/// [p_lo, p_hi] (p_hi < p_lo for a y axis, whose pixels grow downwards).
struct Axis {
  double lo = 0, hi = 1;
  bool log = false;
  double p_lo = 0, p_hi = 1;
  double fraction(double v) const {
    return log ? (std::log10(v) - std::log10(lo)) / (std::log10(hi) - std::log10(lo)) : (v - lo) / (hi - lo);
  }
  double to_pixel(double v) const { return p_lo + fraction(v) * (p_hi - p_lo); }
  /// The pixel (column or row index) that holds `v`.
  int pixel_index(double v) const { return int(std::floor(to_pixel(v))); }
};

}  // namespace redi::viz
