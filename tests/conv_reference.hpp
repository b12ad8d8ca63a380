// tests/conv_reference.hpp — the direct-loop reference of a 2-D convolution (long double sums)
// that the convolution tests compare the op contract's im2col and Winograd paths against.
#pragma once
#include <cstddef>
#include <vector>

#include "redi/ops/conv2d_geometry.hpp"

namespace redi::test {

/// Direct convolution in long double: out [B, OC, OH, OW].
template <class T>
std::vector<double> conv_direct(const std::vector<T>& x, const std::vector<T>& w, const T* b, int B, int H, int W,
                                const ops::Conv2dGeometry& g) {
  const int OH = g.out_h(H), OW = g.out_w(W), C = g.in_channels, OC = g.out_channels;
  std::vector<double> y(std::size_t(B) * OC * OH * OW);
  for (int n = 0; n < B; ++n)
    for (int o = 0; o < OC; ++o)
      for (int oy = 0; oy < OH; ++oy)
        for (int ox = 0; ox < OW; ++ox) {
          long double s = b ? b[o] : 0;
          for (int c = 0; c < C; ++c)
            for (int i = 0; i < g.kernel_h; ++i)
              for (int j = 0; j < g.kernel_w; ++j) {
                const int iy = oy * g.stride_h - g.pad_top + i, ix = ox * g.stride_w - g.pad_left + j;
                if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                s += (long double)w[((std::size_t(o) * C + c) * g.kernel_h + i) * g.kernel_w + j] *
                     x[((std::size_t(n) * C + c) * H + iy) * W + ix];
              }
          y[((std::size_t(n) * OC + o) * OH + oy) * OW + ox] = double(s);
        }
  return y;
}

}  // namespace redi::test
