// tests/cuda/vae_reference.hpp — CPU references for test_cuda_vae.cu that need Eigen (the CPU
// convolution and the CPU Vae), compiled by g++ in vae_reference.cpp so nvcc never sees Eigen.
#pragma once
#include <string>
#include <vector>

#include "redi/nn/vae_layout.hpp"
#include "redi/ops/conv2d_geometry.hpp"

namespace redi::test::ref {

/// out = conv2d_forward on the CPU (fp32).
std::vector<float> conv2d(const std::vector<float>& in, const std::vector<float>& w, const std::vector<float>& b,
                          int B, int H, int W, const ops::Conv2dGeometry& g);

/// The tiny parity VAE (tests/data/vae) on the CPU: its config, host parameters, inputs and
/// the CPU outputs.
struct VaeCase {
  VaeConfig cfg;
  std::vector<float> params, images, latents, moments, decoded;
  int B = 2, H = 32, W = 32, h = 8, w = 8;
};
VaeCase tiny_vae_on_cpu();

}  // namespace redi::test::ref
