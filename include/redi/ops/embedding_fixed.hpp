// redi/ops/embedding_fixed.hpp — the fixed sin-cos tables of official DiT (docs/method.md section 9):
// the 2-D position table and the sinusoidal timestep features. Computed in double, stored in T.
#pragma once
#include <cmath>
#include <cstdint>

#include "redi/core/device.hpp"
#include "redi/core/dtype.hpp"
#include "redi/core/error.hpp"

namespace redi::ops {

/// out [gh*gw, D], token = row*gw + col. Channels [0, D/2) encode the column index, [D/2, D)
/// the row index, each half as [sin(pos w_k) | cos(pos w_k)], w_k = 10000^(-k/(D/4)),
/// k = 0 .. D/4-1. D must be a multiple of 4.
template <CpuReal T>
inline void pos_embed_2d(T* out, int gh, int gw, int D) {
  REDI_CHECK(D % 4 == 0, "pos_embed_2d: D=", D, " must be a multiple of 4");
  const int q = D / 4;
  for (int y = 0; y < gh; ++y)
    for (int x = 0; x < gw; ++x) {
      T* o = out + (std::int64_t(y) * gw + x) * D;
      for (int k = 0; k < q; ++k) {
        const double w = 1.0 / std::pow(10000.0, double(k) / double(q));
        o[k] = T(std::sin(x * w));
        o[q + k] = T(std::cos(x * w));
        o[2 * q + k] = T(std::sin(y * w));
        o[3 * q + k] = T(std::cos(y * w));
      }
    }
}

/// out [N, dim] = [cos(t f_k) | sin(t f_k)], f_k = exp(-ln(max_period) k / (dim/2)),
/// k = 0 .. dim/2-1; an odd dim gets a trailing zero (as in DiT).
template <CpuReal T>
inline void timestep_embedding(const Cpu&, T* out, const T* t, int N, int dim = 256,
                               double max_period = 10000) {
  const int half = dim / 2;
  for (int n = 0; n < N; ++n) {
    T* o = out + std::int64_t(n) * dim;
    for (int k = 0; k < half; ++k) {
      const double f = std::exp(-std::log(max_period) * double(k) / double(half));
      const double a = double(t[n]) * f;
      o[k] = T(std::cos(a));
      o[half + k] = T(std::sin(a));
    }
    if (dim % 2) o[dim - 1] = T(0);
  }
}

}  // namespace redi::ops
