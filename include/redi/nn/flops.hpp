// redi/nn/flops.hpp — model FLOPs per sample, for throughput and MFU reports (benchmarks, the
// trainer). Multiply-add = 2 FLOPs; counts every linear layer and attention's two
// sequence-by-sequence products; elementwise work (norms, activations, softmax) is left out.
// A training step costs 3x the forward (backward = 2 GEMMs per forward GEMM).
#pragma once
#include "redi/nn/config.hpp"
#include "redi/nn/fusion.hpp"

namespace redi {

/// Forward FLOPs of one sample; seq_factor = Fusion::sequence_factor (Separate doubles the
/// token sequence).
inline double forward_flops(const ModelConfig& c, int seq_factor) {
  const double D = c.width, L = c.tokens(), S = L * seq_factor, p2 = double(c.patch) * c.patch;
  const double pz2 = double(c.feature_patch()) * c.feature_patch();
  const double in_tok = p2 * c.image_channels + pz2 * c.feature_channels;  // values per token in
  const double out_tok = (c.learn_sigma ? 2.0 : 1.0) * in_tok;              // ... and out
  const double Dm = D * c.mlp_ratio;
  double f = 0;
  f += 2 * L * in_tok * D;                                         // patch embed(s)
  f += 2 * (c.freq_dim * D + D * D);                               // timestep MLP
  const double block = 2 * S * (3 * D * D + D * D + 2 * D * Dm)    // qkv, proj, fc1, fc2
                       + 2 * 2 * S * S * D                         // q k^T and P v
                       + 2 * D * 6 * D;                            // adaLN
  f += c.depth * block;
  f += 2 * D * 2 * D + 2 * L * D * out_tok;                        // final adaLN + linear(s)
  return f;
}

template <Fusion F>
double forward_flops(const ModelConfig& c) {
  return forward_flops(c, F::sequence_factor);
}

/// FLOPs of one training step of batch B.
template <Fusion F>
double train_step_flops(const ModelConfig& c, int B) {
  return 3.0 * forward_flops<F>(c) * B;
}

}  // namespace redi
