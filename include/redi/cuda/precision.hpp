// redi/cuda/precision.hpp — compile-time precision policies for the CUDA path.
//   FP32      : everything fp32 (TF32 GEMMs are a run-time flag on the context: Cuda::set_tf32).
//   BF16Mixed : activations/weights used by the kernels in bf16 storage with fp32 accumulation
//               inside every kernel and GEMM; fp32 master weights, fp32 parameter gradients
//               (linear_backward / embedding_backward accept a gradient type G != T), fp32
//               AdamW moments; after each step AdamW writes the bf16 compute copy.
#pragma once
#include <concepts>
#include <string_view>

#include "redi/core/dtype.hpp"

namespace redi {

struct FP32 {
  using compute_t = float;   ///< activations and the weights the kernels read
  using master_t = float;    ///< optimiser's copy of the weights
  using grad_t = float;      ///< parameter gradients
  using moment_t = float;    ///< AdamW m and v
  using stats_t = float;     ///< LayerNorm mean/rstd
  static constexpr bool has_compute_copy = false;  ///< master and compute weights are one buffer
  static constexpr std::string_view name = "fp32";
};

struct BF16Mixed {
  using compute_t = bf16;
  using master_t = float;
  using grad_t = float;
  using moment_t = float;
  using stats_t = float;
  static constexpr bool has_compute_copy = true;  ///< a bf16 copy of the fp32 master weights
  static constexpr std::string_view name = "bf16-mixed";
};

template <class P>
concept Precision = requires {
  typename P::compute_t;
  typename P::master_t;
  typename P::grad_t;
  typename P::moment_t;
  typename P::stats_t;
  { P::has_compute_copy } -> std::convertible_to<bool>;
  { P::name } -> std::convertible_to<std::string_view>;
};

static_assert(Precision<FP32> && Precision<BF16Mixed>);

}  // namespace redi
