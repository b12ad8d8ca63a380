// redi/ops/pool.hpp — 2-D max and average pooling over NCHW tensors, forward and backward, and
// global average pooling. Semantics are PyTorch's (floor output size, ceil_mode = False):
//
//   window of output (y, x): rows y*sh - pt .. y*sh - pt + KH - 1, columns x*sw - pl .. + KW - 1
//   OH = (H + pt + pb - KH) / sh + 1,  OW = (W + pl + pr - KW) / sw + 1
//   max pool:  out = max over the in-bounds window entries (padding never wins, as -inf);
//              backward routes dout to the FIRST maximum in row-major window order (PyTorch's
//              choice among ties)
//   avg pool:  out = sum over the in-bounds entries / divisor, divisor = KH*KW when
//              count_include_pad (padding counts as zeros) else the number of in-bounds entries
//              (Inception's FID blocks use 3x3 / stride 1 / pad 1 without the padding)
//   global average pool: out [B, C] = mean over H*W
//
// Every op is parallel over (image, channel) planes, each plane written by one thread in a
// fixed order: results do not depend on the thread count. Input gradients are overwritten.
#pragma once
#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>

#include "redi/core/device.hpp"
#include "redi/core/dtype.hpp"
#include "redi/core/error.hpp"

namespace redi::ops {

struct Pool2dGeometry {
  int kernel_h = 2, kernel_w = 2;
  int stride_h = 2, stride_w = 2;
  int pad_top = 0, pad_bottom = 0, pad_left = 0, pad_right = 0;
  bool count_include_pad = true;  // average pooling only

  /// k x k window, one stride (default k), the same padding on every side.
  static Pool2dGeometry square(int k, int stride = -1, int pad = 0, bool count_include_pad = true) {
    if (stride < 0) stride = k;
    return {k, k, stride, stride, pad, pad, pad, pad, count_include_pad};
  }
  int out_h(int H) const { return (H + pad_top + pad_bottom - kernel_h) / stride_h + 1; }
  int out_w(int W) const { return (W + pad_left + pad_right - kernel_w) / stride_w + 1; }
  std::string str() const {
    return std::to_string(kernel_h) + "x" + std::to_string(kernel_w) + " stride " + std::to_string(stride_h) + "x" +
           std::to_string(stride_w) + " pad (" + std::to_string(pad_top) + "," + std::to_string(pad_bottom) + "," +
           std::to_string(pad_left) + "," + std::to_string(pad_right) + ")";
  }
  /// Throws unless valid for H x W input. As in PyTorch, padding may not exceed half the window
  /// (so no window lies entirely in the padding).
  void check(int H, int W) const {
    REDI_CHECK(kernel_h > 0 && kernel_w > 0 && stride_h > 0 && stride_w > 0 && pad_top >= 0 && pad_bottom >= 0 &&
                   pad_left >= 0 && pad_right >= 0,
               "pool2d: invalid geometry ", str());
    REDI_CHECK(2 * std::max(pad_top, pad_bottom) <= kernel_h && 2 * std::max(pad_left, pad_right) <= kernel_w,
               "pool2d: padding of ", str(), " exceeds half the window");
    REDI_CHECK(H > 0 && W > 0 && H + pad_top + pad_bottom >= kernel_h && W + pad_left + pad_right >= kernel_w,
               "pool2d: window ", str(), " does not fit a ", H, "x", W, " input");
  }
};

namespace detail {
/// Calls f(plane_index) for every (image, channel) plane, in parallel when the work is large.
template <class F>
inline void for_each_plane(std::int64_t planes, std::int64_t work_per_plane, F&& f) {
#pragma omp parallel for schedule(static) if (planes * work_per_plane > 32768 && planes > 1)
  for (std::int64_t p = 0; p < planes; ++p) f(p);
}
struct Window {
  int y0, y1, x0, x1;  // in-bounds rows [y0, y1), columns [x0, x1)
};
inline Window pool_window(const Pool2dGeometry& g, int H, int W, int y, int x) {
  const int ys = y * g.stride_h - g.pad_top, xs = x * g.stride_w - g.pad_left;
  return {std::max(ys, 0), std::min(ys + g.kernel_h, H), std::max(xs, 0), std::min(xs + g.kernel_w, W)};
}
}  // namespace detail

/// The divisor of output (y, x) for H x W input.
inline int avgpool_divisor(const Pool2dGeometry& g, int H, int W, int y, int x) {
  if (!g.count_include_pad) {
    const auto w = detail::pool_window(g, H, W, y, x);
    return (w.y1 - w.y0) * (w.x1 - w.x0);
  }
  // PyTorch: the window clipped to the PADDED input (so a window hanging past the padding, with
  // ceil_mode off this cannot happen, would count less).
  const int ys = y * g.stride_h - g.pad_top, xs = x * g.stride_w - g.pad_left;
  const int ye = std::min(ys + g.kernel_h, H + g.pad_bottom), xe = std::min(xs + g.kernel_w, W + g.pad_right);
  return (ye - ys) * (xe - xs);
}

/// out [B, C, OH, OW] = max over each window of in [B, C, H, W].
template <CpuReal T>
inline void maxpool2d_forward(const Cpu&, T* out, const T* in, int B, int C, int H, int W, const Pool2dGeometry& g) {
  g.check(H, W);
  const int OH = g.out_h(H), OW = g.out_w(W);
  detail::for_each_plane(std::int64_t(B) * C, std::int64_t(H) * W, [&](std::int64_t p) {
    const T* src = in + p * H * W;
    T* dst = out + p * OH * OW;
    for (int y = 0; y < OH; ++y)
      for (int x = 0; x < OW; ++x) {
        const auto w = detail::pool_window(g, H, W, y, x);
        T m = -std::numeric_limits<T>::infinity();
        for (int yy = w.y0; yy < w.y1; ++yy)
          for (int xx = w.x0; xx < w.x1; ++xx) m = std::max(m, src[yy * W + xx]);
        dst[y * OW + x] = m;
      }
  });
}

/// din [B, C, H, W] (overwritten): each dout goes to its window's first maximum of `in`.
template <CpuReal T>
inline void maxpool2d_backward(const Cpu&, T* din, const T* dout, const T* in, int B, int C, int H, int W,
                               const Pool2dGeometry& g) {
  g.check(H, W);
  const int OH = g.out_h(H), OW = g.out_w(W);
  detail::for_each_plane(std::int64_t(B) * C, std::int64_t(H) * W, [&](std::int64_t p) {
    const T* src = in + p * H * W;
    const T* d = dout + p * OH * OW;
    T* dst = din + p * H * W;
    std::fill(dst, dst + std::int64_t(H) * W, T(0));
    for (int y = 0; y < OH; ++y)
      for (int x = 0; x < OW; ++x) {
        const auto w = detail::pool_window(g, H, W, y, x);
        int arg = w.y0 * W + w.x0;
        for (int yy = w.y0; yy < w.y1; ++yy)
          for (int xx = w.x0; xx < w.x1; ++xx)
            if (src[yy * W + xx] > src[arg]) arg = yy * W + xx;
        dst[arg] += d[y * OW + x];
      }
  });
}

/// out [B, C, OH, OW] = mean over each window of in [B, C, H, W] (divisor: see the header).
template <CpuReal T>
inline void avgpool2d_forward(const Cpu&, T* out, const T* in, int B, int C, int H, int W, const Pool2dGeometry& g) {
  g.check(H, W);
  const int OH = g.out_h(H), OW = g.out_w(W);
  detail::for_each_plane(std::int64_t(B) * C, std::int64_t(H) * W, [&](std::int64_t p) {
    const T* src = in + p * H * W;
    T* dst = out + p * OH * OW;
    for (int y = 0; y < OH; ++y)
      for (int x = 0; x < OW; ++x) {
        const auto w = detail::pool_window(g, H, W, y, x);
        T s = T(0);
        for (int yy = w.y0; yy < w.y1; ++yy)
          for (int xx = w.x0; xx < w.x1; ++xx) s += src[yy * W + xx];
        dst[y * OW + x] = s / T(avgpool_divisor(g, H, W, y, x));
      }
  });
}

/// din [B, C, H, W] (overwritten) = each dout / divisor, spread over its window.
template <CpuReal T>
inline void avgpool2d_backward(const Cpu&, T* din, const T* dout, int B, int C, int H, int W, const Pool2dGeometry& g) {
  g.check(H, W);
  const int OH = g.out_h(H), OW = g.out_w(W);
  detail::for_each_plane(std::int64_t(B) * C, std::int64_t(H) * W, [&](std::int64_t p) {
    const T* d = dout + p * OH * OW;
    T* dst = din + p * H * W;
    std::fill(dst, dst + std::int64_t(H) * W, T(0));
    for (int y = 0; y < OH; ++y)
      for (int x = 0; x < OW; ++x) {
        const auto w = detail::pool_window(g, H, W, y, x);
        const T v = d[y * OW + x] / T(avgpool_divisor(g, H, W, y, x));
        for (int yy = w.y0; yy < w.y1; ++yy)
          for (int xx = w.x0; xx < w.x1; ++xx) dst[yy * W + xx] += v;
      }
  });
}

/// out [B, C] = mean of each H x W plane of in [B, C, H, W] (summed in T, in order).
template <CpuReal T>
inline void global_avgpool_forward(const Cpu&, T* out, const T* in, int B, int C, int H, int W) {
  const std::int64_t P = std::int64_t(H) * W;
  REDI_CHECK(P > 0, "global_avgpool: empty ", H, "x", W, " planes");
  const T inv = T(1) / T(P);
  detail::for_each_plane(std::int64_t(B) * C, P, [&](std::int64_t p) {
    const T* s = in + p * P;
    T acc = T(0);
    for (std::int64_t i = 0; i < P; ++i) acc += s[i];
    out[p] = acc * inv;
  });
}

/// din [B, C, H, W] (overwritten) = dout [B, C] / (H*W) everywhere in the plane.
template <CpuReal T>
inline void global_avgpool_backward(const Cpu&, T* din, const T* dout, int B, int C, int H, int W) {
  const std::int64_t P = std::int64_t(H) * W;
  REDI_CHECK(P > 0, "global_avgpool: empty ", H, "x", W, " planes");
  const T inv = T(1) / T(P);
  detail::for_each_plane(std::int64_t(B) * C, P, [&](std::int64_t p) {
    std::fill(din + p * P, din + (p + 1) * P, dout[p] * inv);
  });
}

}  // namespace redi::ops
