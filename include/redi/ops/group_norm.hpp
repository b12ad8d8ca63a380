// redi/ops/group_norm.hpp — GroupNorm over NCHW tensors with a per-channel affine, forward only
// (the frozen SD-VAE, nn/vae.hpp), optionally followed by SiLU in the same pass:
//
//   x [B, C, P] (P = H*W), G groups of C/G consecutive channels;
//   mu[b,g]   = mean of x[b, c, p] over c in group g and all p
//   var[b,g]  = mean of (x - mu)^2 over the same entries (biased), rstd = 1 / sqrt(var + eps)
//   out[b,c,p] = (x[b,c,p] - mu[b,g]) * rstd[b,g] * gamma[c] + beta[c]      (then x*sigmoid(x) if silu)
//
// Statistics: two passes (mean, then squared deviations), per-plane partial sums in T, summed
// across the group's planes in double. `out` may alias `in`. Parallel over (b, g).
// PyTorch's torch.nn.GroupNorm(G, C, eps, affine=True) (diffusers' ResnetBlock2D norms: G = 32,
// eps = 1e-6) followed, with `silu`, by F.silu.
#pragma once
#include <cmath>
#include <cstdint>

#include "redi/core/device.hpp"
#include "redi/core/dtype.hpp"
#include "redi/core/error.hpp"
#include "redi/ops/vmath.hpp"

namespace redi::ops {

/// out [B, C, P] = GroupNorm(in) * gamma + beta (then SiLU when `silu`); gamma/beta [C] may be
/// null (no scale / no shift). Throws unless C % groups == 0.
template <CpuReal T>
inline void group_norm_forward(const Cpu&, T* out, const T* in, const T* gamma, const T* beta, int B, int C,
                               std::int64_t P, int groups, double eps, bool silu = false) {
  REDI_CHECK(groups > 0 && C > 0 && C % groups == 0, "group_norm_forward: ", C, " channels in ", groups, " groups");
  REDI_CHECK(P > 0 && B >= 0, "group_norm_forward: plane of ", P, " elements, batch ", B);
  const int cg = C / groups;
  const std::int64_t tasks = std::int64_t(B) * groups;
  const auto ec = detail::exp_clamp();
#pragma omp parallel for schedule(static) if (tasks * cg * P > 32768)
  for (std::int64_t t = 0; t < tasks; ++t) {
    const int b = int(t / groups), g = int(t % groups);
    const std::int64_t base = (std::int64_t(b) * C + std::int64_t(g) * cg) * P;
    const T* x = in + base;
    const std::int64_t n = std::int64_t(cg) * P;
    double s = 0;
    for (int c = 0; c < cg; ++c) {
      const T* xp = x + std::int64_t(c) * P;
      T ps = T(0);
#pragma omp simd reduction(+ : ps)
      for (std::int64_t p = 0; p < P; ++p) ps += xp[p];
      s += double(ps);
    }
    const double mu = s / double(n);
    double ss = 0;
    const T muT = T(mu);
    for (int c = 0; c < cg; ++c) {
      const T* xp = x + std::int64_t(c) * P;
      T ps = T(0);
#pragma omp simd reduction(+ : ps)
      for (std::int64_t p = 0; p < P; ++p) {
        const T d = xp[p] - muT;
        ps += d * d;
      }
      ss += double(ps);
    }
    const double rstd = 1.0 / std::sqrt(ss / double(n) + eps);
    for (int c = 0; c < cg; ++c) {
      const int ch = g * cg + c;
      const T a = T(rstd * (gamma ? double(gamma[ch]) : 1.0));
      const T sh = beta ? beta[ch] : T(0);
      const T* xp = x + std::int64_t(c) * P;
      T* yp = out + base + std::int64_t(c) * P;
      if (silu) {
#pragma omp simd
        for (std::int64_t p = 0; p < P; ++p) {
          const T y = (xp[p] - muT) * a + sh;
          yp[p] = y / (T(1) + detail::vexp(-y, ec));
        }
      } else {
#pragma omp simd
        for (std::int64_t p = 0; p < P; ++p) yp[p] = (xp[p] - muT) * a + sh;
      }
    }
  }
}

}  // namespace redi::ops
