// redi/ops/conv2d_winograd.hpp — the forward 3x3, stride-1 convolution by Winograd's minimal
// filtering F(2x2, 3x3) (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks",
// 2016): 16 multiplies per 2x2 output tile and channel pair instead of 36, so 2.25x fewer
// GEMM flops than im2col. Used by conv2d_forward (ops/conv2d.hpp) when it applies; the
// backward stays im2col. Same contract as conv2d_forward (any per-side zero padding, bias).
//
// 1-D F(2,3), with d the 4 inputs of a tile and g the 3 taps:
//   y = A^T [ (G g) . (B^T d) ]
//   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]   G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]
//   A^T = [1 1 1 0; 0 1 -1 -1]
// 2-D (nested): U = G g G^T (4x4 per (o, c)), V = B^T d B (4x4 per tile and channel, d the 4x4
// input window at rows 2*ty - pad_top + 0..3, columns 2*tx - pad_left + 0..3, zeros outside),
// M = U . V summed over channels — for each of the 16 positions xi one GEMM
//   M[xi] [OC, n*T] = U[xi] [OC, C] * V[xi] [C, n*T]        (T = ceil(OH/2) * ceil(OW/2) tiles)
// — and Y = A^T M A + bias, the 2x2 outputs of the tile (the last row / column dropped when
// OH / OW is odd). In exact arithmetic this is the convolution; in floating point the sums are
// ordered differently (G's halves are exact; the transforms add at most 4 terms each), errors
// are of the order of im2col's (tests/test_ops_conv_winograd.cpp bounds them against direct
// loops in double and float). Results do not depend on the thread count (the transforms are
// per element, the GEMMs as im2col's).
//
// The 16 products run on ops/linear_avx512.hpp's AVX-512 kernel in float when the build targets
// AVX-512 and n*T is a multiple of 32 (every VAE layer at 256 px), else on the BLAS.
//
// Scratch (elements): 16*OC*C (U) + 16*(C + OC)*n*T (V, M) for chunks of n images.
#pragma once
#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "redi/core/device.hpp"
#include "redi/core/dtype.hpp"
#include "redi/ops/conv2d_geometry.hpp"
#include "redi/ops/gemm.hpp"
#include "redi/ops/linear_avx512.hpp"

namespace redi::ops {

/// 3x3 kernel, stride 1 (any padding), at least 8 channels in and out (below that the
/// convolution is memory-bound and im2col is as good).
inline bool conv2d_winograd_applies(const Conv2dGeometry& g) {
  return g.kernel_h == 3 && g.kernel_w == 3 && g.stride_h == 1 && g.stride_w == 1 && g.in_channels >= 8 &&
         g.out_channels >= 8;
}
/// 2x2 output tiles per image.
inline std::int64_t conv2d_winograd_tiles(const Conv2dGeometry& g, int H, int W) {
  return std::int64_t((g.out_h(H) + 1) / 2) * ((g.out_w(W) + 1) / 2);
}
/// Scratch elements for chunks of `images` images.
inline std::int64_t conv2d_winograd_scratch_elems(const Conv2dGeometry& g, int H, int W, int images) {
  return 16 * std::int64_t(g.out_channels) * g.in_channels +
         16 * std::int64_t(g.in_channels + g.out_channels) * std::max(1, images) * conv2d_winograd_tiles(g, H, W);
}

namespace detail {

/// U[xi][o][c] = (G g G^T)[xi] for g = Wt[o, c] (3x3).
template <CpuReal T>
void winograd_weights(T* U, const T* Wt, int OC, int C) {
  const std::int64_t oc = std::int64_t(OC) * C;
  constexpr int block = 256;
  // blocks of 256 (o, c) pairs: transposed into gt[tap][pair] (L1), then the transform
  // vectorised across the pairs (contiguous loads and stores)
#pragma omp parallel if (oc > 4096)
  {
    std::vector<T> gt(9 * std::size_t(block));
#pragma omp for schedule(static)
    for (std::int64_t k0 = 0; k0 < oc; k0 += block) {
      const int nk = int(std::min<std::int64_t>(block, oc - k0));
      for (int k = 0; k < nk; ++k)
        for (int j = 0; j < 9; ++j) gt[std::size_t(j) * block + k] = Wt[(k0 + k) * 9 + j];
      const T *g0 = gt.data(), *g1 = g0 + block, *g2 = g1 + block, *g3 = g2 + block, *g4 = g3 + block;
      const T *g5 = g4 + block, *g6 = g5 + block, *g7 = g6 + block, *g8 = g7 + block;
      T* u = U + k0;
#pragma omp simd
      for (int k = 0; k < nk; ++k) {
        // G g: rows t0..t3 (3 columns each)
        const T t00 = g0[k], t01 = g1[k], t02 = g2[k];
        const T t10 = T(0.5) * (g0[k] + g3[k] + g6[k]), t11 = T(0.5) * (g1[k] + g4[k] + g7[k]),
                t12 = T(0.5) * (g2[k] + g5[k] + g8[k]);
        const T t20 = T(0.5) * (g0[k] - g3[k] + g6[k]), t21 = T(0.5) * (g1[k] - g4[k] + g7[k]),
                t22 = T(0.5) * (g2[k] - g5[k] + g8[k]);
        const T t30 = g6[k], t31 = g7[k], t32 = g8[k];
        // (G g) G^T, row i -> xi = 4i + 0..3
        u[0 * oc + k] = t00;
        u[1 * oc + k] = T(0.5) * (t00 + t01 + t02);
        u[2 * oc + k] = T(0.5) * (t00 - t01 + t02);
        u[3 * oc + k] = t02;
        u[4 * oc + k] = t10;
        u[5 * oc + k] = T(0.5) * (t10 + t11 + t12);
        u[6 * oc + k] = T(0.5) * (t10 - t11 + t12);
        u[7 * oc + k] = t12;
        u[8 * oc + k] = t20;
        u[9 * oc + k] = T(0.5) * (t20 + t21 + t22);
        u[10 * oc + k] = T(0.5) * (t20 - t21 + t22);
        u[11 * oc + k] = t22;
        u[12 * oc + k] = t30;
        u[13 * oc + k] = T(0.5) * (t30 + t31 + t32);
        u[14 * oc + k] = T(0.5) * (t30 - t31 + t32);
        u[15 * oc + k] = t32;
      }
    }
  }
}

/// V[xi][c][b*T + ty*TW + tx] = (B^T d B)[xi] for the tiles of images in[0..n).
template <CpuReal T>
void winograd_input(T* V, const T* in, int n, int H, int W, const Conv2dGeometry& g) {
  const int C = g.in_channels, TH = (g.out_h(H) + 1) / 2, TW = (g.out_w(W) + 1) / 2, pl = g.pad_left;
  const std::int64_t T1 = std::int64_t(TH) * TW, ld = std::int64_t(n) * T1, stride = std::int64_t(C) * ld;
  const int L = TW + 1;  // even / odd columns of a window row: e[x] = col 2x - pl, o[x] = col 2x + 1 - pl
  // x ranges whose column lies in [0, W): 0 <= 2x - pl < W, 0 <= 2x + 1 - pl < W
  const int xe0 = std::min(L, (pl + 1) / 2), xe1 = std::max(xe0, std::min(L, (W - 1 + pl) / 2 + 1));
  const int xo0 = std::min(L, pl / 2), xo1 = W - 2 + pl < 0 ? xo0 : std::max(xo0, std::min(L, (W - 2 + pl) / 2 + 1));
#pragma omp parallel if (std::int64_t(n) * C * H * W > 32768)
  {
    std::vector<T> buf(std::size_t(16) * L);
    T* e[4] = {buf.data(), buf.data() + L, buf.data() + 2 * L, buf.data() + 3 * L};
    T* od[4] = {buf.data() + 4 * L, buf.data() + 5 * L, buf.data() + 6 * L, buf.data() + 7 * L};
    T* we = buf.data() + 8 * L;   // one B^T row combination, even columns
    T* wo = buf.data() + 12 * L;  // ... odd columns (4 rows of L each, reused per k)
#pragma omp for schedule(static)
    for (std::int64_t bc = 0; bc < std::int64_t(n) * C; ++bc) {
      const int b = int(bc / C), c = int(bc % C);
      const T* src = in + bc * std::int64_t(H) * W;
      T* dst = V + std::int64_t(c) * ld + std::int64_t(b) * T1;
      for (int ty = 0; ty < TH; ++ty) {
        for (int r = 0; r < 4; ++r) {
          const int iy = 2 * ty - g.pad_top + r;
          if (iy < 0 || iy >= H) {
            std::fill(e[r], e[r] + L, T(0));
            std::fill(od[r], od[r] + L, T(0));
            continue;
          }
          const T* row = src + std::int64_t(iy) * W;
          std::fill(e[r], e[r] + L, T(0));
          std::fill(od[r], od[r] + L, T(0));
#pragma omp simd
          for (int x = xe0; x < xe1; ++x) e[r][x] = row[2 * x - pl];
#pragma omp simd
          for (int x = xo0; x < xo1; ++x) od[r][x] = row[2 * x + 1 - pl];
        }
        T* out = dst + std::int64_t(ty) * TW;
        for (int k = 0; k < 4; ++k) {
          // B^T along the rows: w_k = (d0 - d2, d1 + d2, d2 - d1, d1 - d3)[k]
          const int a = k == 0 ? 0 : 1, bb = k == 3 ? 3 : 2;
          const T sa = k == 2 ? T(-1) : T(1), sb = (k == 0 || k == 3) ? T(-1) : T(1);
#pragma omp simd
          for (int x = 0; x < L; ++x) {
            we[x] = sa * e[a][x] + sb * e[bb][x];
            wo[x] = sa * od[a][x] + sb * od[bb][x];
          }
          // B along the columns: window columns (e[tx], o[tx], e[tx+1], o[tx+1])
          T* v0 = out + std::int64_t(k * 4 + 0) * stride;
          T* v1 = out + std::int64_t(k * 4 + 1) * stride;
          T* v2 = out + std::int64_t(k * 4 + 2) * stride;
          T* v3 = out + std::int64_t(k * 4 + 3) * stride;
#pragma omp simd
          for (int tx = 0; tx < TW; ++tx) {
            v0[tx] = we[tx] - we[tx + 1];
            v1[tx] = wo[tx] + we[tx + 1];
            v2[tx] = we[tx + 1] - wo[tx];
            v3[tx] = wo[tx] - wo[tx + 1];
          }
        }
      }
    }
  }
}

/// out[b, o] (OH x OW) = A^T M A + bias for the tiles of M[xi][o][b*T + t].
template <CpuReal T>
void winograd_output(T* out, const T* M, const T* bias, int n, int OH, int OW, int OC) {
  const int TH = (OH + 1) / 2, TW = (OW + 1) / 2;
  const std::int64_t T1 = std::int64_t(TH) * TW, ld = std::int64_t(n) * T1, stride = std::int64_t(OC) * ld;
#pragma omp parallel if (std::int64_t(n) * OC * OH * OW > 32768)
  {
    std::vector<T> buf(std::size_t(4) * TW);
    T* y00 = buf.data();
    T* y01 = y00 + TW;
    T* y10 = y01 + TW;
    T* y11 = y10 + TW;
#pragma omp for schedule(static)
    for (std::int64_t bo = 0; bo < std::int64_t(n) * OC; ++bo) {
      const int b = int(bo / OC), o = int(bo % OC);
      const T v = bias ? bias[o] : T(0);
      T* dst = out + bo * std::int64_t(OH) * OW;
      const T* m = M + std::int64_t(o) * ld + std::int64_t(b) * T1;
      for (int ty = 0; ty < TH; ++ty) {
        const T* mt = m + std::int64_t(ty) * TW;
        const T *m0 = mt, *m1 = mt + stride, *m2 = mt + 2 * stride, *m3 = mt + 3 * stride;
        const T *m4 = mt + 4 * stride, *m5 = mt + 5 * stride, *m6 = mt + 6 * stride, *m7 = mt + 7 * stride;
        const T *m8 = mt + 8 * stride, *m9 = mt + 9 * stride, *m10 = mt + 10 * stride, *m11 = mt + 11 * stride;
        const T *m12 = mt + 12 * stride, *m13 = mt + 13 * stride, *m14 = mt + 14 * stride, *m15 = mt + 15 * stride;
#pragma omp simd
        for (int tx = 0; tx < TW; ++tx) {
          // A^T along the rows (index k of xi = 4k + j), then along the columns
          const T s00 = m0[tx] + m4[tx] + m8[tx], s01 = m1[tx] + m5[tx] + m9[tx];
          const T s02 = m2[tx] + m6[tx] + m10[tx], s03 = m3[tx] + m7[tx] + m11[tx];
          const T s10 = m4[tx] - m8[tx] - m12[tx], s11 = m5[tx] - m9[tx] - m13[tx];
          const T s12 = m6[tx] - m10[tx] - m14[tx], s13 = m7[tx] - m11[tx] - m15[tx];
          y00[tx] = s00 + s01 + s02 + v;
          y01[tx] = s01 - s02 - s03 + v;
          y10[tx] = s10 + s11 + s12 + v;
          y11[tx] = s11 - s12 - s13 + v;
        }
        const int full = OW / 2;  // tiles with both output columns inside
        for (int r = 0; r < 2 && 2 * ty + r < OH; ++r) {
          T* d = dst + std::int64_t(2 * ty + r) * OW;
          const T* a = r == 0 ? y00 : y10;
          const T* c = r == 0 ? y01 : y11;
          for (int tx = 0; tx < full; ++tx) {
            d[2 * tx] = a[tx];
            d[2 * tx + 1] = c[tx];
          }
          if (OW % 2) d[OW - 1] = a[full];
        }
      }
    }
  }
}

}  // namespace detail

/// out [B, OC, OH, OW] = conv(in, Wt) + b by F(2x2, 3x3), chunks of `chunk` images;
/// scratch >= conv2d_winograd_scratch_elems(g, H, W, chunk). Requires conv2d_winograd_applies(g).
template <CpuReal T>
inline void conv2d_winograd_forward(const Cpu& dev, T* out, const T* in, const T* Wt, const T* b, int B, int H,
                                    int W, const Conv2dGeometry& g, T* scratch, int chunk) {
  const int OC = g.out_channels, C = g.in_channels, OH = g.out_h(H), OW = g.out_w(W);
  const std::int64_t T1 = conv2d_winograd_tiles(g, H, W), oc = std::int64_t(OC) * C;
  T* U = scratch;
  detail::winograd_weights(U, Wt, OC, C);
  for (int b0 = 0; b0 < B; b0 += chunk) {
    const int n = std::min(chunk, B - b0);
    const std::int64_t ld = std::int64_t(n) * T1;
    T* V = U + 16 * oc;
    T* M = V + 16 * std::int64_t(C) * ld;
    detail::winograd_input(V, in + std::int64_t(b0) * C * H * W, n, H, W, g);
    for (int xi = 0; xi < 16; ++xi) {
      if constexpr (std::is_same_v<T, float>) {
        if (detail::kHaveLinearAvx512 && ld % 32 == 0) {  // AVX-512 build: ops/linear_avx512.hpp
          gemm_avx512(M + xi * OC * ld, int(ld), U + xi * oc, C, V + xi * C * ld, int(ld), false, nullptr, OC, C,
                      int(ld));
          continue;
        }
      }
      gemm<T>(dev, false, false, OC, int(ld), C, T(1), U + xi * oc, C, V + xi * C * ld, int(ld), T(0),
              M + xi * OC * ld, int(ld));
    }
    detail::winograd_output(out + std::int64_t(b0) * OC * OH * OW, M, b, n, OH, OW, OC);
  }
}

}  // namespace redi::ops
