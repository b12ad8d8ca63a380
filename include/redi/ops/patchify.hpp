// redi/ops/patchify.hpp — the patch gather of the stride-p patch-embedding convolution and the
// final layer's unpatchify, both pure permutations (forward and backward are each other's
// inverse). H and W must be multiples of p; gh = H/p, gw = W/p, token = gy*gw + gx.
#pragma once
#include <cstdint>

#include "redi/core/parallel.hpp"
#include "redi/core/device.hpp"
#include "redi/core/dtype.hpp"
#include "redi/core/error.hpp"

namespace redi::ops {

namespace detail {
/// Visits every (b, token, inner index, pixel index) pair once. Patch layout: inner = (c, i, j)
/// when `cij` (patchify), else (i, j, c) (unpatchify). f(token_elem_offset, pixel_offset).
template <class F>
inline void for_each_patch_elem(int B, int C, int H, int W, int p, bool cij, F&& f) {
  REDI_CHECK(p > 0 && H % p == 0 && W % p == 0, "patchify: H=", H, ", W=", W,
             " must be multiples of p=", p);
  const int gh = H / p, gw = W / p, L = gh * gw, P = C * p * p;
  [[maybe_unused]] const std::int64_t n = std::int64_t(B) * C * H * W;
#pragma omp parallel for collapse(2) schedule(static) if (n > kOmpMinWork)
  for (int b = 0; b < B; ++b)
    for (int t = 0; t < L; ++t) {
      const int gy = t / gw, gx = t % gw;
      const std::int64_t tok = (std::int64_t(b) * L + t) * P;
      for (int c = 0; c < C; ++c)
        for (int i = 0; i < p; ++i) {
          const std::int64_t pix = ((std::int64_t(b) * C + c) * H + std::int64_t(p) * gy + i) * W +
                                   std::int64_t(p) * gx;
          for (int j = 0; j < p; ++j) {
            const std::int64_t inner = cij ? (std::int64_t(c) * p + i) * p + j
                                           : (std::int64_t(i) * p + j) * C + c;
            f(tok + inner, pix + j);
          }
        }
    }
}
}  // namespace detail

/// img [B, C, H, W] -> tokens [B, (H/p)(W/p), C p p], inner (c, i, j):
/// tokens[b, gy*gw+gx, (c*p+i)*p+j] = img[b, c, p*gy+i, p*gx+j].
template <CpuReal T>
inline void patchify_forward(const Cpu&, T* tokens, const T* img, int B, int C, int H, int W,
                             int p) {
  detail::for_each_patch_elem(B, C, H, W, p, true,
                              [&](std::int64_t t, std::int64_t x) { tokens[t] = img[x]; });
}

/// dimg = inverse permutation of dtokens (overwritten; every pixel belongs to one patch).
template <CpuReal T>
inline void patchify_backward(const Cpu&, T* dimg, const T* dtokens, int B, int C, int H, int W,
                              int p) {
  detail::for_each_patch_elem(B, C, H, W, p, true,
                              [&](std::int64_t t, std::int64_t x) { dimg[x] = dtokens[t]; });
}

/// tokens [B, L, p p C] with inner (i, j, c) -> img [B, C, H, W]:
/// img[b, c, p*gy+i, p*gx+j] = tokens[b, gy*gw+gx, (i*p+j)*C+c].
template <CpuReal T>
inline void unpatchify_forward(const Cpu&, T* img, const T* tokens, int B, int C, int H, int W,
                               int p) {
  detail::for_each_patch_elem(B, C, H, W, p, false,
                              [&](std::int64_t t, std::int64_t x) { img[x] = tokens[t]; });
}

/// dtokens = gather of dimg (overwritten).
template <CpuReal T>
inline void unpatchify_backward(const Cpu&, T* dtokens, const T* dimg, int B, int C, int H, int W,
                                int p) {
  detail::for_each_patch_elem(B, C, H, W, p, false,
                              [&](std::int64_t t, std::int64_t x) { dtokens[t] = dimg[x]; });
}

}  // namespace redi::ops
