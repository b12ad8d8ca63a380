// redi/ops/upsample.hpp — nearest-neighbour 2x upsampling of NCHW tensors, forward only (the
// SD-VAE decoder's Upsample2D: F.interpolate(scale_factor=2, mode="nearest")):
//
//   out[b, c, y, x] = in[b, c, y / 2, x / 2]      out is [B, C, 2H, 2W]
#pragma once
#include <cstdint>

#include "redi/core/device.hpp"
#include "redi/core/dtype.hpp"

namespace redi::ops {

template <CpuReal T>
inline void upsample_nearest2x_forward(const Cpu&, T* out, const T* in, int B, int C, int H, int W) {
  const std::int64_t planes = std::int64_t(B) * C, ow = 2 * std::int64_t(W);
#pragma omp parallel for schedule(static) if (planes * H * W > 16384)
  for (std::int64_t pc = 0; pc < planes; ++pc) {
    const T* s = in + pc * H * W;
    T* d = out + pc * 4 * H * W;
    for (int y = 0; y < H; ++y) {
      T* r0 = d + 2 * std::int64_t(y) * ow;
      const T* sr = s + std::int64_t(y) * W;
#pragma omp simd
      for (std::int64_t x = 0; x < ow; ++x) r0[x] = sr[x >> 1];
      T* r1 = r0 + ow;
#pragma omp simd
      for (std::int64_t x = 0; x < ow; ++x) r1[x] = r0[x];
    }
  }
}

}  // namespace redi::ops
