// redi/ops/resize_aa.hpp — antialiased bicubic resampling of float planes with the semantics of
// torch.nn.functional.interpolate(mode='bicubic', align_corners=False, antialias=True), written
// from its published definition (the separable "AA" resampling PyTorch shares with Pillow):
//
//   for an axis of n_in -> n_out samples, with s = the input/output scale
//     (n_in / n_out when the output size is given; 1 / scale_factor when a scale factor is),
//   support = 2 * max(s, 1)          (the Keys kernel's support 2, widened when shrinking)
//   center  = s * (i + 0.5)          (output sample i, in input pixel units)
//   taps j in [xmin, xmin + xsize),  xmin  = max(trunc(center - support + 0.5), 0),
//                                    xsize = min(trunc(center + support + 0.5), n_in) - xmin
//   w_j     = K((j - center + 0.5) / max(s, 1)),  normalised to sum 1 over the taps
//   K(x)    = Keys cubic convolution with a = -0.5 (NOT the -0.75 of plain bicubic):
//             (a+2)|x|^3 - (a+3)|x|^2 + 1 for |x| < 1;  a(|x|^3 - 5|x|^2 + 8|x| - 4) for |x| < 2
//
// The width pass runs first, then the height pass (PyTorch's order), each skipped when its size
// does not change; weights and sums in double, stored as T. At equal sizes the kernel hits the
// integer taps only (K(0) = 1, K(+-1) = K(+-2) = 0), so the result is an exact copy.
// Used for DINOv2's position-table resize (nn/dinov2.hpp). Host code, CPU only.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "redi/core/error.hpp"

namespace redi::ops {

namespace detail {

inline double keys_cubic_aa(double x) {
  constexpr double a = -0.5;
  if (x < 0) x = -x;
  if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
  return 0;
}

/// Taps of one axis: first[i], count[i], weights w[i * max_taps + k].
struct AaTaps {
  std::vector<int> first, count;
  std::vector<double> w;
  int max_taps = 0;
};

inline AaTaps aa_taps(int n_in, int n_out, double scale) {
  AaTaps t;
  const double support = scale >= 1.0 ? 2.0 * scale : 2.0;
  const double inv = scale >= 1.0 ? 1.0 / scale : 1.0;
  t.max_taps = int(std::ceil(support)) * 2 + 1;
  t.first.resize(std::size_t(n_out));
  t.count.resize(std::size_t(n_out));
  t.w.assign(std::size_t(n_out) * std::size_t(t.max_taps), 0.0);
  for (int i = 0; i < n_out; ++i) {
    const double center = scale * (i + 0.5);
    const auto xmin = std::max<std::int64_t>(std::int64_t(center - support + 0.5), 0);  // trunc, as the C++ cast
    const auto xmax = std::min<std::int64_t>(std::int64_t(center + support + 0.5), n_in);
    const int xsize = int(std::max<std::int64_t>(xmax - xmin, 0));
    REDI_CHECK(xsize <= t.max_taps, "resize_bicubic_aa: internal tap count ", xsize);
    double total = 0;
    double* w = t.w.data() + std::size_t(i) * std::size_t(t.max_taps);
    for (int j = 0; j < xsize; ++j) total += (w[j] = keys_cubic_aa((double(j + xmin) - center + 0.5) * inv));
    if (total != 0)
      for (int j = 0; j < xsize; ++j) w[j] /= total;
    t.first[std::size_t(i)] = int(xmin);
    t.count[std::size_t(i)] = xsize;
  }
  return t;
}

}  // namespace detail

/// `planes` planes of h x w -> oh x ow (see the header comment). scale_h / scale_w <= 0 use
/// h / oh and w / ow (interpolate(size=...)); pass 1 / scale_factor for interpolate(scale_factor=...).
template <class T>
inline void resize_bicubic_aa(const T* in, int planes, int h, int w, T* out, int oh, int ow, double scale_h = 0,
                              double scale_w = 0) {
  REDI_CHECK(h > 0 && w > 0 && oh > 0 && ow > 0 && planes >= 0, "resize_bicubic_aa: bad sizes ", h, "x", w, " -> ",
             oh, "x", ow);
  if (scale_h <= 0) scale_h = double(h) / double(oh);
  if (scale_w <= 0) scale_w = double(w) / double(ow);
  const std::size_t P = std::size_t(planes);
  // width pass: [P, h, w] -> [P, h, ow]
  std::vector<T> mid;
  const T* src = in;
  if (ow != w) {
    const auto tw = detail::aa_taps(w, ow, scale_w);
    mid.resize(P * std::size_t(h) * std::size_t(ow));
    for (std::size_t r = 0; r < P * std::size_t(h); ++r) {
      const T* x = in + r * std::size_t(w);
      T* y = mid.data() + r * std::size_t(ow);
      for (int i = 0; i < ow; ++i) {
        const double* k = tw.w.data() + std::size_t(i) * std::size_t(tw.max_taps);
        double s = 0;
        for (int j = 0; j < tw.count[std::size_t(i)]; ++j) s += k[j] * double(x[tw.first[std::size_t(i)] + j]);
        y[i] = T(s);
      }
    }
    src = mid.data();
  }
  // height pass: [P, h, ow] -> [P, oh, ow]
  if (oh == h) {
    std::copy(src, src + P * std::size_t(h) * std::size_t(ow), out);
    return;
  }
  const auto th = detail::aa_taps(h, oh, scale_h);
  for (std::size_t p = 0; p < P; ++p) {
    const T* x = src + p * std::size_t(h) * std::size_t(ow);
    T* y = out + p * std::size_t(oh) * std::size_t(ow);
    for (int i = 0; i < oh; ++i) {
      const double* k = th.w.data() + std::size_t(i) * std::size_t(th.max_taps);
      for (int c = 0; c < ow; ++c) {
        double s = 0;
        for (int j = 0; j < th.count[std::size_t(i)]; ++j)
          s += k[j] * double(x[std::size_t(th.first[std::size_t(i)] + j) * std::size_t(ow) + std::size_t(c)]);
        y[std::size_t(i) * std::size_t(ow) + std::size_t(c)] = T(s);
      }
    }
  }
}

}  // namespace redi::ops
