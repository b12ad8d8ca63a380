// redi/ops/pad2d.hpp — zero padding of NCHW tensors given per side, forward only:
//
//   out [B, C, H + top + bottom, W + left + right];
//   out[b, c, y + top, x + left] = in[b, c, y, x], every other entry 0
//
// The CPU convolution pads implicitly (Conv2dGeometry's per-side padding); this op is the CPU
// reference of the CUDA one, which pads explicitly before a cuDNN convolution whose padding is
// not symmetric (the SD-VAE's (0, 1, 0, 1) pad before its stride-2 convolutions).
#pragma once
#include <algorithm>
#include <cstdint>

#include "redi/core/device.hpp"
#include "redi/core/dtype.hpp"

namespace redi::ops {

template <CpuReal T>
inline void pad2d_forward(const Cpu&, T* out, const T* in, int B, int C, int H, int W, int top, int bottom,
                          int left, int right) {
  const int OH = H + top + bottom, OW = W + left + right;
  const std::int64_t planes = std::int64_t(B) * C;
#pragma omp parallel for schedule(static) if (planes * OH * OW > 32768)
  for (std::int64_t pc = 0; pc < planes; ++pc) {
    const T* s = in + pc * H * W;
    T* d = out + pc * OH * OW;
    std::fill(d, d + std::int64_t(top) * OW, T(0));
    for (int y = 0; y < H; ++y) {
      T* r = d + std::int64_t(y + top) * OW;
      std::fill(r, r + left, T(0));
      std::copy_n(s + std::int64_t(y) * W, W, r + left);
      std::fill(r + left + W, r + OW, T(0));
    }
    std::fill(d + std::int64_t(top + H) * OW, d + std::int64_t(OH) * OW, T(0));
  }
}

}  // namespace redi::ops
