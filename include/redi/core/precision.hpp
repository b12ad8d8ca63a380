// redi/core/precision.hpp — compile-time precision policies (host C++, no CUDA needed).
// A policy names the element type of every buffer class of a model:
//   compute_t : activations and the weights the kernels read
//   master_t  : the optimiser's copy of the weights (what checkpoints hold)
//   grad_t    : parameter gradients
//   moment_t  : AdamW m and v
//   stats_t   : LayerNorm mean/rstd, attention log-sum-exp, timesteps and other fp32 side data
//   has_compute_copy : true when compute_t != master_t (the model keeps a compute copy of the
//                      master weights and refreshes it before a forward after any change)
//
//   UniformPrecision<T> : everything T (the CPU's float and double; FP32 on the GPU, where TF32
//                         GEMMs are a run-time flag on the context: Cuda::set_tf32)
//   BF16Mixed           : bf16 activations and compute weights, fp32 accumulation inside every
//                         kernel and GEMM; fp32 master weights, gradients, moments and stats
//                         (PyTorch's bf16 autocast with fp32 parameters). GPU only.
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
  static constexpr bool has_compute_copy = true;
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

static_assert(Precision<FP32> && Precision<BF16Mixed> && Precision<UniformPrecision<double>>);
static_assert(std::is_same_v<precision_t<float>::compute_t, float>);
static_assert(std::is_same_v<precision_t<BF16Mixed>::master_t, float>);

}  // namespace redi
