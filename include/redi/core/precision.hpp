// redi/core/precision.hpp — compile-time precision policies (host C++, no CUDA needed).
// A policy names the element type of every buffer class of a model:
//   compute_t : activations and the weights the kernels read
//   master_t  : the optimiser's copy of the weights (what checkpoints hold)
//   grad_t    : parameter gradients
//   moment_t  : AdamW m and v
//   stats_t   : LayerNorm mean/rstd, attention log-sum-exp, timesteps and other fp32 side data
//   residual_t: the residual stream h of the transformer, its gradient dh, and every gradient
//               accumulated across blocks (the conditioning gradient dL/dSiLU(c)): the values
//               that receive one addition per block (56 for dh at depth 28) and so must not be
//               rounded to the compute type at each addition
//   has_compute_copy : true when compute_t != master_t (the model keeps a compute copy of the
//                      master weights and refreshes it before a forward after any change)
//
//   UniformPrecision<T> : everything T (the CPU's float and double; FP32 on the GPU, where TF32
//                         GEMMs are a run-time flag on the context: Cuda::set_tf32)
//   BF16Mixed           : bf16 GEMM operands, attention and the other activations, bf16 compute
//                         weights, fp32 accumulation inside every kernel and GEMM; fp32 residual
//                         stream h, dh and cross-block gradient sums; fp32 master weights,
//                         gradients, moments and stats (PyTorch's bf16 autocast with fp32
//                         parameters: there too h stays fp32, since h + bf16 branch promotes to
//                         fp32, and LayerNorm runs in fp32). GPU only.
//   BF16Emulated        : BF16Mixed's buffer classes, emulated on the CPU in float: compute_t is
//                         float and the emulating device (ops/bf16_emulation.hpp) rounds every
//                         compute-type output to bf16 where the GPU stores bf16, so CI sees the
//                         drift BF16Mixed has (tests/test_bf16_emulation.cpp).
//
// Model templates take either a policy or a plain scalar (float, double), which means
// UniformPrecision<scalar>: redi::Transformer<float, ...> == redi::Transformer<redi::FP32, ...>.
#pragma once
#include <concepts>
#include <string_view>
#include <type_traits>

#include "redi/core/dtype.hpp"

namespace redi {

template <class T>
struct UniformPrecision {
  using compute_t = T;
  using master_t = T;
  using grad_t = T;
  using moment_t = T;
  using stats_t = T;
  using residual_t = T;
  static constexpr bool has_compute_copy = false;
  static constexpr std::string_view name = std::is_same_v<T, double> ? "fp64" : "fp32";
};

struct FP32 : UniformPrecision<float> {};

struct BF16Mixed {
  using compute_t = bf16;
  using master_t = float;
  using grad_t = float;
  using moment_t = float;
  using stats_t = float;
  using residual_t = float;
  static constexpr bool has_compute_copy = true;
  static constexpr std::string_view name = "bf16-mixed";
};

/// BF16Mixed on the CPU, in float with bf16 rounding done by the device (redi::Bf16Emulator,
/// redi/ops/bf16_emulation.hpp); has_compute_copy: the model keeps a rounded copy of the
/// weights and takes BF16Mixed's code paths (fp32 timestep features, then one cast; the
/// embedding and the residual stream in separate buffers, one conversion between them).
struct BF16Emulated {
  using compute_t = float;
  using master_t = float;
  using grad_t = float;
  using moment_t = float;
  using stats_t = float;
  using residual_t = float;
  static constexpr bool has_compute_copy = true;
  static constexpr std::string_view name = "bf16-emulated";
};

template <class P>
concept Precision = requires {
  typename P::compute_t;
  typename P::master_t;
  typename P::grad_t;
  typename P::moment_t;
  typename P::stats_t;
  typename P::residual_t;
  { P::has_compute_copy } -> std::convertible_to<bool>;
  { P::name } -> std::convertible_to<std::string_view>;
};

/// The policy behind a model's precision argument: a policy stays itself, a scalar T means
/// UniformPrecision<T>.
template <class T>
struct precision_of {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                "redi: a model's precision argument is float, double, redi::FP32 or "
                "redi::BF16Mixed (bf16 storage alone is not a model precision: use BF16Mixed)");
  using type = UniformPrecision<T>;
};
template <class P>
  requires Precision<P>
struct precision_of<P> {
  using type = P;
};
template <class T>
using precision_t = typename precision_of<T>::type;

static_assert(Precision<FP32> && Precision<BF16Mixed> && Precision<BF16Emulated> &&
              Precision<UniformPrecision<double>>);
static_assert(std::is_same_v<precision_t<float>::compute_t, float>);
static_assert(std::is_same_v<precision_t<BF16Mixed>::master_t, float>);
static_assert(std::is_same_v<precision_t<BF16Mixed>::residual_t, float>);

}  // namespace redi
