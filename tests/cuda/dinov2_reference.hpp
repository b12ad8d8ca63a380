// tests/cuda/dinov2_reference.hpp — CPU references for test_cuda_dinov2.cu (the affine LayerNorm,
// the exact GELU and the whole Dinov2<float> on the CPU, whose GEMMs need OpenBLAS/Eigen),
// compiled by g++ in dinov2_reference.cpp so the CPU side is exactly the CPU build's code.
#pragma once
#include <string>
#include <vector>

#include "redi/nn/dinov2.hpp"

namespace redi::test::ref {

/// ops::layernorm_affine_forward on the CPU (fp32).
std::vector<float> layernorm_affine(const std::vector<float>& x, const std::vector<float>& gamma,
                                    const std::vector<float>& beta, int rows, int C, float eps);
/// ops::gelu_erf_forward on the CPU (fp32).
std::vector<float> gelu_erf(const std::vector<float>& x);

/// A DINOv2 on the CPU: its config, host parameters, a batch of normalised pixels [B, 3, H, W]
/// and the CPU tokens [B, gh*gw, D]; torch_tokens: the committed PyTorch reference when there is one.
struct Dinov2Case {
  Dinov2Config cfg;
  std::vector<float> params, pixels, tokens;
  std::vector<double> torch_tokens;
  int B = 0, H = 0, W = 0;
  std::string weights;  // the checkpoint file, when loaded from one
};
/// The parity fixture (tests/data/dinov2: width 16, depth 2, 2 heads, 4 registers) on case A's
/// pixels (2 x 3 x 42 x 42, the 37x37 table shrunk to 3x3), with the PyTorch float64 tokens.
Dinov2Case tiny_dinov2_on_cpu();
/// Random weights (Philox) at a wider shape: width 96, 6 heads of 16, depth 3, MLP 384,
/// 4 registers, 5 images of 112 x 168 (an 8 x 12 grid: 101 tokens).
Dinov2Case random_dinov2_on_cpu();

}  // namespace redi::test::ref
