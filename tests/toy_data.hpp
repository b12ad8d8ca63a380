// tests/toy_data.hpp — a learnable toy dataset for model tests (CPU and CUDA): x and z are
// class-dependent constant images plus a little noise, so the joint loss falls well below its
// initial value within a few hundred steps.
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include "redi/core/philox.hpp"
#include "redi/nn/config.hpp"

namespace redi::test {

struct ToyData {
  std::vector<float> x, z;  // [B, Cx, H, W], [B, max(r, 1), H, W]
  std::vector<int> y;       // b % num_classes
  ToyData(const ModelConfig& c, int B, std::uint64_t seed) {
    const int HW = c.input_size * c.input_size, nc = c.num_classes;
    x.resize(std::size_t(B) * c.image_channels * HW);
    z.resize(std::size_t(B) * std::max(1, c.feature_channels) * HW);
    std::vector<float> nx(x.size()), nz(z.size());
    philox::fill_normal(nx.data(), nx.size(), seed, 1);
    philox::fill_normal(nz.data(), nz.size(), seed, 2);
    for (int b = 0; b < B; ++b) {
      y.push_back(b % nc);
      for (int ch = 0; ch < c.image_channels; ++ch)
        for (int p = 0; p < HW; ++p) {
          const std::size_t i = (std::size_t(b) * c.image_channels + ch) * HW + p;
          x[i] = 0.8f * float((y[b] + ch) % 2 ? 1 : -1) + 0.1f * nx[i];
        }
      // features: a checkerboard whose signed amplitude encodes the class, in [-1, 1]
      const float amp = (2.0f / float(nc)) * (float(y[b]) - 0.5f * float(nc - 1));
      for (int ch = 0; ch < c.feature_channels; ++ch)
        for (int p = 0; p < HW; ++p) {
          const std::size_t i = (std::size_t(b) * c.feature_channels + ch) * HW + p;
          z[i] = amp * (p % 2 ? 1.f : -1.f) + 0.1f * nz[i];
        }
    }
  }
};

}  // namespace redi::test
