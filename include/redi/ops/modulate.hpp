// redi/ops/modulate.hpp — adaLN modulation and gated residuals. Tokens are [B, L, C]; the
// per-sample vectors (shift, scale, gate) live at v[b*mod_stride + c], so they can point
// straight into the adaLN output [B, 6C] (mod_stride = 6C) or its gradient.
#pragma once
#include <algorithm>
#include <cstdint>

#include "redi/core/parallel.hpp"
#include "redi/core/device.hpp"
#include "redi/core/dtype.hpp"

namespace redi::ops {

namespace detail {
inline constexpr int kModBlock = 256;  // column block for the (b, column-block) parallel loops
}

/// out = in * (1 + scale) + shift.
template <CpuReal T>
inline void modulate_forward(const Cpu&, T* out, const T* in, const T* shift, const T* scale,
                             int B, int L, int C, int mod_stride) {
  [[maybe_unused]] const std::int64_t n = std::int64_t(B) * L * C;
#pragma omp parallel for collapse(2) schedule(static) if (n > kOmpMinWork / 2)
  for (int b = 0; b < B; ++b)
    for (int l = 0; l < L; ++l) {
      const T* sh = shift + std::int64_t(b) * mod_stride;
      const T* sc = scale + std::int64_t(b) * mod_stride;
      const std::int64_t o = (std::int64_t(b) * L + l) * C;
#pragma omp simd
      for (int c = 0; c < C; ++c) out[o + c] = in[o + c] * (T(1) + sc[c]) + sh[c];
    }
}

/// din = dout * (1 + scale) ; dshift = sum_L dout ; dscale = sum_L dout * in (both overwritten,
/// at b*mod_stride + c). Null gradients are skipped.
template <CpuReal T>
inline void modulate_backward(const Cpu&, T* din, T* dshift, T* dscale, const T* dout,
                              const T* in, const T* scale, int B, int L, int C, int mod_stride) {
  [[maybe_unused]] const std::int64_t n = std::int64_t(B) * L * C;
  const int nblk = (C + detail::kModBlock - 1) / detail::kModBlock;
#pragma omp parallel for collapse(2) schedule(static) if (n > kOmpMinWork / 2)
  for (int b = 0; b < B; ++b)
    for (int blk = 0; blk < nblk; ++blk) {
      const int c0 = blk * detail::kModBlock, w = std::min(C, c0 + detail::kModBlock) - c0;
      const T* sc = scale + std::int64_t(b) * mod_stride + c0;
      T ash[detail::kModBlock] = {}, asc[detail::kModBlock] = {};
      for (int l = 0; l < L; ++l) {
        const std::int64_t o = (std::int64_t(b) * L + l) * C + c0;
        const T* g = dout + o;
        const T* x = in + o;
#pragma omp simd
        for (int c = 0; c < w; ++c) {
          ash[c] += g[c];
          asc[c] += g[c] * x[c];
        }
        if (din) {  // after the sums, so din may alias dout
          T* dx = din + o;
#pragma omp simd
          for (int c = 0; c < w; ++c) dx[c] = g[c] * (T(1) + sc[c]);
        }
      }
      if (dshift)
        for (int c = 0; c < w; ++c) dshift[std::int64_t(b) * mod_stride + c0 + c] = ash[c];
      if (dscale)
        for (int c = 0; c < w; ++c) dscale[std::int64_t(b) * mod_stride + c0 + c] = asc[c];
    }
}

/// out = x + gate * y, out of place (one pass instead of a copy and an in-place pass); out may
/// alias x (then it is the in-place op below, bit for bit).
template <CpuReal T>
inline void gated_residual_forward(const Cpu&, T* out, const T* x, const T* y, const T* gate, int B,
                                   int L, int C, int mod_stride) {
  [[maybe_unused]] const std::int64_t n = std::int64_t(B) * L * C;
#pragma omp parallel for collapse(2) schedule(static) if (n > kOmpMinWork / 2)
  for (int b = 0; b < B; ++b)
    for (int l = 0; l < L; ++l) {
      const T* g = gate + std::int64_t(b) * mod_stride;
      const std::int64_t o = (std::int64_t(b) * L + l) * C;
#pragma omp simd
      for (int c = 0; c < C; ++c) out[o + c] = x[o + c] + g[c] * y[o + c];
    }
}

/// x += gate * y.
template <CpuReal T>
inline void gated_residual_forward(const Cpu& cpu, T* x, const T* y, const T* gate, int B, int L,
                                   int C, int mod_stride) {
  gated_residual_forward(cpu, x, static_cast<const T*>(x), y, gate, B, L, C, mod_stride);
}

/// dy = dx * gate (overwritten) ; dgate = sum_L dx * y (overwritten, at b*mod_stride + c).
/// The gradient w.r.t. the residual stream x passes through unchanged (the caller keeps dx).
template <CpuReal T>
inline void gated_residual_backward(const Cpu&, T* dy, T* dgate, const T* dx, const T* y,
                                    const T* gate, int B, int L, int C, int mod_stride) {
  [[maybe_unused]] const std::int64_t n = std::int64_t(B) * L * C;
  const int nblk = (C + detail::kModBlock - 1) / detail::kModBlock;
#pragma omp parallel for collapse(2) schedule(static) if (n > kOmpMinWork / 2)
  for (int b = 0; b < B; ++b)
    for (int blk = 0; blk < nblk; ++blk) {
      const int c0 = blk * detail::kModBlock, w = std::min(C, c0 + detail::kModBlock) - c0;
      const T* gt = gate + std::int64_t(b) * mod_stride + c0;
      T acc[detail::kModBlock] = {};
      for (int l = 0; l < L; ++l) {
        const std::int64_t o = (std::int64_t(b) * L + l) * C + c0;
        const T* g = dx + o;
        const T* yy = y + o;
#pragma omp simd
        for (int c = 0; c < w; ++c) acc[c] += g[c] * yy[c];
        if (dy) {  // after the sum, so dy may alias dx or y
          T* d = dy + o;
#pragma omp simd
          for (int c = 0; c < w; ++c) d[c] = g[c] * gt[c];
        }
      }
      if (dgate)
        for (int c = 0; c < w; ++c) dgate[std::int64_t(b) * mod_stride + c0 + c] = acc[c];
    }
}

}  // namespace redi::ops
