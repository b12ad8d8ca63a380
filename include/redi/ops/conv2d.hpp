// redi/ops/conv2d.hpp — 2-D convolution (cross-correlation, as PyTorch's Conv2d) over NCHW
// tensors with bias, any kernel size, any stride, and padding given per side (top, bottom,
// left, right; zeros), forward and backward.
//
//   out[b, o, y, x] = bias[o] + sum_{c, i, j} W[o, c, i, j] * in[b, c, y*sh - pt + i, x*sw - pl + j]
//   OH = (H + pt + pb - KH) / sh + 1,  OW = (W + pl + pr - KW) / sw + 1   (floor; in outside = 0)
//
// W is [OC, C, KH, KW] (PyTorch layout). The computation is im2col + GEMM over a chunk of n
// images at a time, all of the chunk in one product:
//   col [C*KH*KW, n*OH*OW]   col[(c,i,j), b*OH*OW + y*OW + x] = in[b, c, y*sh - pt + i, x*sw - pl + j]
//   forward   outT [OC, n*OH*OW] = W [OC, C*KH*KW] * col ; out[b, o] = outT[o, b-th block] + bias[o]
//   backward  doutT [OC, n*OH*OW] (dout regrouped) ;  db[o] += sum doutT[o, :]
//             dW += doutT * col^T ;  dcol = W^T * doutT (written over col) ;  din = col2im(dcol)
// col2im gathers, for every input pixel, its kernel taps in a fixed order (one thread per
// (image, channel) plane), so results do not depend on the thread count; dW and db accumulate
// chunk by chunk in image order.
//
// 3x3 kernels with stride 1 and at least 8 channels in and out: the forward is Winograd's
// F(2x2, 3x3) (ops/conv2d_winograd.hpp, 2.25x fewer GEMM flops) whenever the caller's scratch
// holds its U, V and M for one image, which it does whenever it holds im2col's for OC <= 1.6 C
// (and in the VAE, whose scratch is sized for its largest convolution); otherwise im2col below. The backward is im2col always.
//
// 1x1 kernels with stride 1 and no padding ("pointwise") skip im2col: per image,
// out_b [OC, H*W] = W [OC, C] * in_b [C, H*W], and need no scratch.
//
// Scratch: the caller passes `scratch` of `scratch_elems` elements; the op processes
// n = min(B, scratch_elems / conv2d_scratch_per_image(g, H, W)) images per chunk (at least one
// image's worth is required). conv2d_scratch_elems(g, H, W, n) is the size for chunks of n.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>

#include "redi/core/device.hpp"
#include "redi/core/dtype.hpp"
#include "redi/core/error.hpp"
#include "redi/ops/conv2d_geometry.hpp"
#include "redi/ops/conv2d_winograd.hpp"
#include "redi/ops/gemm.hpp"

namespace redi::ops {

/// Scratch elements per image of a chunk (0 for pointwise convolutions).
inline std::int64_t conv2d_scratch_per_image(const Conv2dGeometry& g, int H, int W) {
  if (g.pointwise()) return 0;
  return (g.col_rows() + g.out_channels) * std::int64_t(g.out_h(H)) * g.out_w(W);
}
/// Scratch elements for chunks of `images` images (forward and backward need the same).
inline std::int64_t conv2d_scratch_elems(const Conv2dGeometry& g, int H, int W, int images = 1) {
  return conv2d_scratch_per_image(g, H, W) * std::max(1, images);
}

namespace detail {

inline int conv2d_chunk(const Conv2dGeometry& g, int B, int H, int W, std::int64_t scratch_elems) {
  const std::int64_t per = conv2d_scratch_per_image(g, H, W);
  if (per == 0) return B;
  REDI_CHECK(scratch_elems >= per, "conv2d: ", g.str(), " on ", H, "x", W, " needs ", per,
             " scratch elements per image, got ", scratch_elems);
  return int(std::min<std::int64_t>(B, scratch_elems / per));
}

/// The output columns [xs, xe) whose input column x*sw - pl + j lies in [0, W) (kernel tap j).
inline std::pair<int, int> valid_columns(const Conv2dGeometry& g, int W, int OW, int j) {
  const int lo = g.pad_left - j, hi = W - 1 + g.pad_left - j;  // need lo <= x*sw <= hi
  if (hi < 0) return {0, 0};
  const int xs = lo <= 0 ? 0 : (lo + g.stride_w - 1) / g.stride_w;
  const int xe = std::min(OW, hi / g.stride_w + 1);
  return {std::min(xs, xe), xe};
}

/// col [C*KH*KW, n*OH*OW] from images in[0..n) (NCHW, H x W).
template <CpuReal T>
void im2col(T* col, const T* in, int n, int H, int W, const Conv2dGeometry& g) {
  const int OH = g.out_h(H), OW = g.out_w(W), KH = g.kernel_h, KW = g.kernel_w;
  const std::int64_t P = std::int64_t(OH) * OW, ld = std::int64_t(n) * P, rows = g.col_rows();
  const std::int64_t plane = std::int64_t(H) * W;
#pragma omp parallel for schedule(static) if (rows * ld > 32768)
  for (std::int64_t r = 0; r < rows; ++r) {
    const int c = int(r / (KH * KW)), i = int(r / KW % KH), j = int(r % KW);
    const auto [xs, xe] = valid_columns(g, W, OW, j);
    for (int b = 0; b < n; ++b) {
      const T* src = in + (std::int64_t(b) * g.in_channels + c) * plane;
      T* dst = col + r * ld + std::int64_t(b) * P;
      for (int y = 0; y < OH; ++y) {
        T* d = dst + std::int64_t(y) * OW;
        const int iy = y * g.stride_h - g.pad_top + i;
        if (iy < 0 || iy >= H || xs == xe) {
          std::fill(d, d + OW, T(0));
          continue;
        }
        const T* s = src + std::int64_t(iy) * W;
        const int off = j - g.pad_left;  // input column of output column x: x*sw + off
        std::fill(d, d + xs, T(0));
        if (g.stride_w == 1) {
          std::copy(s + (xs + off), s + (xe + off), d + xs);
        } else {
          for (int x = xs; x < xe; ++x) d[x] = s[x * g.stride_w + off];
        }
        std::fill(d + xe, d + OW, T(0));
      }
    }
  }
}

/// din[0..n) (NCHW, overwritten) = the sum, for every input pixel, of the col entries that
/// read it (taps in (i, j) order).
template <CpuReal T>
void col2im(T* din, const T* col, int n, int H, int W, const Conv2dGeometry& g) {
  const int OH = g.out_h(H), OW = g.out_w(W), KH = g.kernel_h, KW = g.kernel_w, C = g.in_channels;
  const std::int64_t P = std::int64_t(OH) * OW, ld = std::int64_t(n) * P, plane = std::int64_t(H) * W;
#pragma omp parallel for schedule(static) if (std::int64_t(n) * C * plane * KH * KW > 32768)
  for (std::int64_t bc = 0; bc < std::int64_t(n) * C; ++bc) {
    const int b = int(bc / C), c = int(bc % C);
    T* dst = din + bc * plane;
    std::fill(dst, dst + plane, T(0));
    for (int i = 0; i < KH; ++i)
      for (int j = 0; j < KW; ++j) {
        const T* src = col + ((std::int64_t(c) * KH + i) * KW + j) * ld + std::int64_t(b) * P;
        // plain ints, not a structured binding: clang < 16 cannot capture a binding into the
        // outlined `omp simd` region
        const std::pair<int, int> cols = valid_columns(g, W, OW, j);
        const int xs = cols.first, xe = cols.second;
        for (int y = 0; y < OH; ++y) {
          const int iy = y * g.stride_h - g.pad_top + i;
          if (iy < 0 || iy >= H) continue;
          T* d = dst + std::int64_t(iy) * W;
          const T* s = src + std::int64_t(y) * OW;
          const int off = j - g.pad_left;
          if (g.stride_w == 1) {
#pragma omp simd
            for (int x = xs; x < xe; ++x) d[x + off] += s[x];
          } else {
            for (int x = xs; x < xe; ++x) d[x * g.stride_w + off] += s[x];
          }
        }
      }
  }
}

}  // namespace detail

/// out [B, OC, OH, OW] = conv(in [B, C, H, W], W [OC, C, KH, KW]) + b (b may be null).
template <CpuReal T>
inline void conv2d_forward(const Cpu& dev, T* out, const T* in, const T* Wt, const T* b, int B, int H, int W,
                           const Conv2dGeometry& g, T* scratch, std::int64_t scratch_elems) {
  g.check(H, W);
  if (B <= 0) return;
  const int OC = g.out_channels, C = g.in_channels, OH = g.out_h(H), OW = g.out_w(W);
  const std::int64_t P = std::int64_t(OH) * OW, K = g.col_rows();
  if (g.pointwise()) {
    for (int bi = 0; bi < B; ++bi)
      gemm<T>(dev, false, false, OC, int(P), C, T(1), Wt, C, in + std::int64_t(bi) * C * P, int(P), T(0),
              out + std::int64_t(bi) * OC * P, int(P));
    if (b) {
#pragma omp parallel for schedule(static) if (std::int64_t(B) * OC * P > 32768)
      for (std::int64_t bo = 0; bo < std::int64_t(B) * OC; ++bo) {
        T* o = out + bo * P;
        const T v = b[bo % OC];
#pragma omp simd
        for (std::int64_t p = 0; p < P; ++p) o[p] += v;
      }
    }
    return;
  }
  if (conv2d_winograd_applies(g)) {
    // U once (16 OC C), then V and M per image of the chunk
    const std::int64_t u = 16 * std::int64_t(OC) * C, per = conv2d_winograd_scratch_elems(g, H, W, 1) - u;
    if (scratch_elems >= u + per) {
      const int wchunk = int(std::min<std::int64_t>(B, (scratch_elems - u) / per));
      conv2d_winograd_forward<T>(dev, out, in, Wt, b, B, H, W, g, scratch, wchunk);
      return;
    }
  }
  const int chunk = detail::conv2d_chunk(g, B, H, W, scratch_elems);
  for (int b0 = 0; b0 < B; b0 += chunk) {
    const int n = std::min(chunk, B - b0);
    const std::int64_t ld = std::int64_t(n) * P;
    T* col = scratch;
    T* outT = scratch + K * ld;
    detail::im2col(col, in + std::int64_t(b0) * C * H * W, n, H, W, g);
    gemm<T>(dev, false, false, OC, int(ld), int(K), T(1), Wt, int(K), col, int(ld), T(0), outT, int(ld));
#pragma omp parallel for schedule(static) if (std::int64_t(n) * OC * P > 32768)
    for (std::int64_t bo = 0; bo < std::int64_t(n) * OC; ++bo) {
      const int bi = int(bo / OC), o = int(bo % OC);
      const T* s = outT + std::int64_t(o) * ld + std::int64_t(bi) * P;
      T* d = out + (std::int64_t(b0 + bi) * OC + o) * P;
      const T v = b ? b[o] : T(0);
#pragma omp simd
      for (std::int64_t p = 0; p < P; ++p) d[p] = s[p] + v;
    }
  }
}

/// din [B, C, H, W] (overwritten) ; dW [OC, C, KH, KW] += ; db [OC] += ; any may be null.
/// `in` is needed for dW only, `Wt` for din only.
template <CpuReal T>
inline void conv2d_backward(const Cpu& dev, T* din, T* dW, T* db, const T* dout, const T* in, const T* Wt, int B,
                            int H, int W, const Conv2dGeometry& g, T* scratch, std::int64_t scratch_elems) {
  g.check(H, W);
  if (B <= 0) return;
  const int OC = g.out_channels, C = g.in_channels, OH = g.out_h(H), OW = g.out_w(W);
  const std::int64_t P = std::int64_t(OH) * OW, K = g.col_rows();
  if (db) {
    // Per channel, images in order, each image's plane summed in a fixed order.
#pragma omp parallel for schedule(static) if (std::int64_t(B) * OC * P > 32768)
    for (int o = 0; o < OC; ++o) {
      double acc = 0;
      for (int bi = 0; bi < B; ++bi) {
        const T* d = dout + (std::int64_t(bi) * OC + o) * P;
        T s = T(0);
#pragma omp simd reduction(+ : s)
        for (std::int64_t p = 0; p < P; ++p) s += d[p];
        acc += double(s);
      }
      db[o] += T(acc);
    }
  }
  if (!din && !dW) return;
  if (g.pointwise()) {
    for (int bi = 0; bi < B; ++bi) {
      const T* d = dout + std::int64_t(bi) * OC * P;
      if (dW) gemm<T>(dev, false, true, OC, C, int(P), T(1), d, int(P), in + std::int64_t(bi) * C * P, int(P), T(1), dW, C);
      if (din) gemm<T>(dev, true, false, C, int(P), OC, T(1), Wt, C, d, int(P), T(0), din + std::int64_t(bi) * C * P, int(P));
    }
    return;
  }
  const int chunk = detail::conv2d_chunk(g, B, H, W, scratch_elems);
  for (int b0 = 0; b0 < B; b0 += chunk) {
    const int n = std::min(chunk, B - b0);
    const std::int64_t ld = std::int64_t(n) * P;
    T* col = scratch;
    T* doutT = scratch + K * ld;
#pragma omp parallel for schedule(static) if (std::int64_t(n) * OC * P > 32768)
    for (std::int64_t bo = 0; bo < std::int64_t(n) * OC; ++bo) {
      const int bi = int(bo / OC), o = int(bo % OC);
      std::copy_n(dout + (std::int64_t(b0 + bi) * OC + o) * P, P, doutT + std::int64_t(o) * ld + std::int64_t(bi) * P);
    }
    if (dW) {
      detail::im2col(col, in + std::int64_t(b0) * C * H * W, n, H, W, g);
      gemm<T>(dev, false, true, OC, int(K), int(ld), T(1), doutT, int(ld), col, int(ld), T(1), dW, int(K));
    }
    if (din) {
      gemm<T>(dev, true, false, int(K), int(ld), OC, T(1), Wt, int(K), doutT, int(ld), T(0), col, int(ld));
      detail::col2im(din + std::int64_t(b0) * C * H * W, col, n, H, W, g);
    }
  }
}

}  // namespace redi::ops
