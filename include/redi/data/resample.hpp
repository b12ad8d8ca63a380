// redi/data/resample.hpp — image resampling, written from the published definitions:
//  * pil_resize: the algorithm of Pillow's Image.resize for 8-bit images (separable convolution,
//    horizontal pass first, filter support widened by the scale when shrinking (antialiasing),
//    weights normalised per output pixel, 22-bit fixed-point weights, round-half-up and clip to
//    uint8 after each pass). Filters: BOX (1 on (-0.5, 0.5], support 0.5) and BICUBIC (Keys
//    cubic convolution with a = -0.5, support 2). A pass whose size does not change is skipped.
//  * center_crop_adm: guided-diffusion's center_crop_arr (the ADM / DiT ImageNet preprocessing).
//  * resize_bilinear / resize_bicubic: torch.nn.functional.interpolate on float planes with
//    align_corners=False (no antialiasing): source coordinate (dst + 0.5) * in/out - 0.5;
//    bilinear clamps negative coordinates to 0 and repeats the last row/column; bicubic uses
//    a = -0.75 and clamps tap indices to the image.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "redi/core/error.hpp"

namespace redi::data {

enum class PilFilter { Box, Bicubic };

namespace detail {

inline double pil_box(double x) { return (x > -0.5 && x <= 0.5) ? 1.0 : 0.0; }
inline double pil_bicubic(double x) {
  constexpr double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
  if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
  return 0.0;
}

inline constexpr int kPilPrecisionBits = 32 - 8 - 2;

/// Per output index: first input index, tap count, and fixed-point weights (ksize per output).
struct PilCoeffs {
  int ksize = 0;
  std::vector<int> first, count;
  std::vector<std::int32_t> k;
};

inline PilCoeffs pil_coeffs(int in_size, int out_size, PilFilter f) {
  const double support0 = f == PilFilter::Box ? 0.5 : 2.0;
  const double scale = double(in_size) / double(out_size);
  const double filterscale = std::max(scale, 1.0);
  const double support = support0 * filterscale;
  PilCoeffs c;
  c.ksize = int(std::ceil(support)) * 2 + 1;
  c.first.resize(std::size_t(out_size));
  c.count.resize(std::size_t(out_size));
  c.k.assign(std::size_t(out_size) * std::size_t(c.ksize), 0);
  std::vector<double> w(std::size_t(c.ksize));
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = (xx + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    int xmin = int(center - support + 0.5);  // C truncation, as in Pillow
    if (xmin < 0) xmin = 0;
    int xmax = int(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double ww = 0.0;
    for (int x = 0; x < xmax; ++x) {
      const double t = (x + xmin - center + 0.5) * ss;
      w[std::size_t(x)] = f == PilFilter::Box ? pil_box(t) : pil_bicubic(t);
      ww += w[std::size_t(x)];
    }
    for (int x = 0; x < xmax; ++x) {
      const double v = ww != 0.0 ? w[std::size_t(x)] / ww : w[std::size_t(x)];
      const double s = v * double(1 << kPilPrecisionBits);
      c.k[std::size_t(xx) * std::size_t(c.ksize) + std::size_t(x)] = std::int32_t(v < 0 ? s - 0.5 : s + 0.5);
    }
    c.first[std::size_t(xx)] = xmin;
    c.count[std::size_t(xx)] = xmax;
  }
  return c;
}

inline std::uint8_t pil_clip8(std::int64_t acc) {
  const std::int64_t v = acc >> kPilPrecisionBits;  // arithmetic shift: floor
  return std::uint8_t(std::clamp<std::int64_t>(v, 0, 255));
}

}  // namespace detail

/// Resizes an h x w x c uint8 image (HWC) to oh x ow with Pillow's algorithm (see the top).
inline std::vector<std::uint8_t> pil_resize(const std::uint8_t* in, int h, int w, int c, int oh, int ow,
                                            PilFilter f) {
  REDI_CHECK(h > 0 && w > 0 && c > 0 && oh > 0 && ow > 0, "pil_resize: bad sizes ", h, "x", w, "x", c,
             " -> ", oh, "x", ow);
  const std::size_t C = std::size_t(c);
  std::vector<std::uint8_t> cur(in, in + std::size_t(h) * std::size_t(w) * C);
  constexpr std::int64_t half = std::int64_t(1) << (detail::kPilPrecisionBits - 1);
  if (ow != w) {  // horizontal pass
    const auto co = detail::pil_coeffs(w, ow, f);
    std::vector<std::uint8_t> tmp(std::size_t(h) * std::size_t(ow) * C);
    for (int y = 0; y < h; ++y)
      for (int xx = 0; xx < ow; ++xx) {
        const std::int32_t* k = &co.k[std::size_t(xx) * std::size_t(co.ksize)];
        const int x0 = co.first[std::size_t(xx)], cnt = co.count[std::size_t(xx)];
        for (std::size_t ch = 0; ch < C; ++ch) {
          std::int64_t acc = half;
          for (int x = 0; x < cnt; ++x)
            acc += std::int64_t(cur[(std::size_t(y) * std::size_t(w) + std::size_t(x0 + x)) * C + ch]) * k[x];
          tmp[(std::size_t(y) * std::size_t(ow) + std::size_t(xx)) * C + ch] = detail::pil_clip8(acc);
        }
      }
    cur.swap(tmp);
    w = ow;
  }
  if (oh != h) {  // vertical pass
    const auto co = detail::pil_coeffs(h, oh, f);
    std::vector<std::uint8_t> tmp(std::size_t(oh) * std::size_t(w) * C);
    for (int yy = 0; yy < oh; ++yy) {
      const std::int32_t* k = &co.k[std::size_t(yy) * std::size_t(co.ksize)];
      const int y0 = co.first[std::size_t(yy)], cnt = co.count[std::size_t(yy)];
      for (std::size_t xc = 0; xc < std::size_t(w) * C; ++xc) {
        std::int64_t acc = half;
        for (int y = 0; y < cnt; ++y) acc += std::int64_t(cur[std::size_t(y0 + y) * std::size_t(w) * C + xc]) * k[y];
        tmp[std::size_t(yy) * std::size_t(w) * C + xc] = detail::pil_clip8(acc);
      }
    }
    cur.swap(tmp);
  }
  return cur;
}

/// guided-diffusion's center_crop_arr: while min(h, w) >= 2 * size, halve both sides (floor)
/// with BOX; then BICUBIC-resize so the short side is `size` (long side round(x * size / min),
/// Python round-half-even); then take the centered size x size crop (offset (extent - size) / 2,
/// floor). Returns size * size * c bytes (HWC).
inline std::vector<std::uint8_t> center_crop_adm(const std::uint8_t* in, int h, int w, int c, int size) {
  REDI_CHECK(size > 0 && h > 0 && w > 0 && c > 0, "center_crop_adm: bad sizes ", h, "x", w, "x", c,
             " -> ", size);
  std::vector<std::uint8_t> img(in, in + std::size_t(h) * std::size_t(w) * std::size_t(c));
  while (std::min(h, w) >= 2 * size) {
    img = pil_resize(img.data(), h, w, c, h / 2, w / 2, PilFilter::Box);
    h /= 2;
    w /= 2;
  }
  const double scale = double(size) / double(std::min(h, w));
  const int nh = int(std::nearbyint(double(h) * scale));  // round half to even, like Python's round
  const int nw = int(std::nearbyint(double(w) * scale));
  if (nh != h || nw != w) {
    img = pil_resize(img.data(), h, w, c, nh, nw, PilFilter::Bicubic);
    h = nh;
    w = nw;
  }
  const int oy = (h - size) / 2, ox = (w - size) / 2;
  REDI_CHECK(oy >= 0 && ox >= 0, "center_crop_adm: internal size error");
  std::vector<std::uint8_t> out(std::size_t(size) * std::size_t(size) * std::size_t(c));
  const std::size_t row = std::size_t(size) * std::size_t(c);
  for (int y = 0; y < size; ++y)
    std::copy_n(img.data() + (std::size_t(y + oy) * std::size_t(w) + std::size_t(ox)) * std::size_t(c), row,
                out.data() + std::size_t(y) * row);
  return out;
}

// ---------------------------------------------------------------------------------------------
// PyTorch-semantics float resizing of planes (channels-first), align_corners = False.

namespace detail {
/// A 2-tap (linear) filter position: l0 x[i0] + l1 x[i1].
struct LinTap {
  int i0, i1;
  float l0, l1;
  /// The filtered value of p[i * stride].
  float apply(const float* p, std::size_t stride) const {
    return l0 * p[std::size_t(i0) * stride] + l1 * p[std::size_t(i1) * stride];
  }
};
/// A 4-tap (cubic) filter position: sum_k w[k] x[idx[k]].
struct CubicTap {
  int idx[4];
  float w[4];
  float apply(const float* p, std::size_t stride) const {
    return w[0] * p[std::size_t(idx[0]) * stride] + w[1] * p[std::size_t(idx[1]) * stride] +
           w[2] * p[std::size_t(idx[2]) * stride] + w[3] * p[std::size_t(idx[3]) * stride];
  }
};
inline std::vector<LinTap> linear_taps(int in, int out) {
  std::vector<LinTap> t(static_cast<std::size_t>(out));
  const float scale = float(in) / float(out);
  for (int d = 0; d < out; ++d) {
    float src = scale * (float(d) + 0.5f) - 0.5f;
    if (src < 0.f) src = 0.f;
    int i0 = int(src);  // src >= 0: truncation is floor
    if (i0 > in - 1) i0 = in - 1;
    const int i1 = i0 + (i0 < in - 1 ? 1 : 0);
    const float l1 = std::min(std::max(src - float(i0), 0.f), 1.f);
    t[std::size_t(d)] = {i0, i1, 1.f - l1, l1};
  }
  return t;
}
inline void cubic_weights(float t, float w[4]) {
  constexpr float A = -0.75f;
  auto near = [](float x) { return ((A + 2.f) * x - (A + 3.f)) * x * x + 1.f; };     // |x| <= 1
  auto far = [](float x) { return ((A * x - 5.f * A) * x + 8.f * A) * x - 4.f * A; };  // 1 < |x| < 2
  w[0] = far(t + 1.f);
  w[1] = near(t);
  w[2] = near(1.f - t);
  w[3] = far(2.f - t);
}
inline std::vector<CubicTap> cubic_taps(int in_size, int out_size) {
  std::vector<CubicTap> t(static_cast<std::size_t>(out_size));
  const float scale = float(in_size) / float(out_size);
  for (int d = 0; d < out_size; ++d) {
    const float src = scale * (float(d) + 0.5f) - 0.5f;  // no clamping for cubic
    const float fl = std::floor(src);
    const int i = int(fl);
    cubic_weights(src - fl, t[std::size_t(d)].w);
    for (int k = 0; k < 4; ++k) t[std::size_t(d)].idx[k] = std::clamp(i - 1 + k, 0, in_size - 1);
  }
  return t;
}

/// Separable resize of `planes` planes of h x w floats to oh x ow: each row with the taps tx
/// (one per output column), then each column with ty (one per output row).
template <class Tap>
inline void separable_resize(const float* in, int planes, int h, int w, float* out, int oh, int ow,
                             const std::vector<Tap>& ty, const std::vector<Tap>& tx) {
  std::vector<float> rows(std::size_t(h) * std::size_t(ow));
  for (int p = 0; p < planes; ++p) {
    const float* src = in + std::size_t(p) * std::size_t(h) * std::size_t(w);
    float* dst = out + std::size_t(p) * std::size_t(oh) * std::size_t(ow);
    for (int y = 0; y < h; ++y) {
      const float* r = src + std::size_t(y) * std::size_t(w);
      for (int x = 0; x < ow; ++x) rows[std::size_t(y) * std::size_t(ow) + std::size_t(x)] = tx[std::size_t(x)].apply(r, 1);
    }
    for (int y = 0; y < oh; ++y) {
      const Tap& t = ty[std::size_t(y)];
      for (int x = 0; x < ow; ++x)
        dst[std::size_t(y) * std::size_t(ow) + std::size_t(x)] = t.apply(rows.data() + x, std::size_t(ow));
    }
  }
}
}  // namespace detail

/// Bilinear resize of `planes` planes of h x w floats to oh x ow (torch, align_corners=False).
/// When the sizes are equal the output is an exact copy.
inline void resize_bilinear(const float* in, int planes, int h, int w, float* out, int oh, int ow) {
  REDI_CHECK(h > 0 && w > 0 && oh > 0 && ow > 0 && planes >= 0, "resize_bilinear: bad sizes ", h, "x", w,
             " -> ", oh, "x", ow);
  detail::separable_resize(in, planes, h, w, out, oh, ow, detail::linear_taps(h, oh), detail::linear_taps(w, ow));
}

/// Bicubic resize (torch mode='bicubic', a = -0.75, align_corners=False, no antialias) of
/// `planes` planes of h x w floats to oh x ow. Used by DINOv2 preprocessing (REPA/ReDi resize
/// to 224 with F.interpolate(..., mode='bicubic')).
inline void resize_bicubic(const float* in, int planes, int h, int w, float* out, int oh, int ow) {
  REDI_CHECK(h > 0 && w > 0 && oh > 0 && ow > 0 && planes >= 0, "resize_bicubic: bad sizes ", h, "x", w,
             " -> ", oh, "x", ow);
  detail::separable_resize(in, planes, h, w, out, oh, ow, detail::cubic_taps(h, oh), detail::cubic_taps(w, ow));
}

}  // namespace redi::data
