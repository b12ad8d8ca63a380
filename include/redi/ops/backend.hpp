// redi/ops/backend.hpp — which code runs an op is a type: redi::Backend<Dev>, specialised once
// per device tag, with every op of the contract (docs/ops.md) as a static member taking the
// device context first:
//
//   Backend<Cpu>   redi/ops/cpu_backend.hpp  the CPU ops of redi/ops/*.hpp (OpenBLAS/Eigen, OpenMP)
//   Backend<Cuda>  redi/cuda/backend.cuh     the CUDA ops of redi/cuda/ops/*.cuh (nvcc only)
//
// Device-generic code (nn/, the optimiser, the device bridge) calls Backend<Dev>::op(ctx, ...)
// and includes only this header: the member is looked up when the template is instantiated, so
// it does not matter which backend header came first, and a model header compiles the same way
// under g++ and nvcc. A program includes the backend of each device it runs on (redi/redi.hpp
// includes the CPU one). A new device — a test device, another accelerator — is one more
// specialisation; tests/test_device_path.cpp has one (host memory behind a non-host tag).
//
// OpsBackend<Dev, T, S, G, R> lists the contract for compute type T, statistics type S (LayerNorm
// mean/rstd, timesteps), gradient/master type G and residual type R (the transformer's residual
// stream and cross-block gradient sums, core/precision.hpp: LayerNorm reads R and writes T, its
// backward writes R, gated residuals add T into R, accumulate adds into R); models
// static_assert it, so a missing backend is one readable error instead of a failed overload
// resolution deep inside a block.
#pragma once
#include <concepts>
#include <cstdint>

#include "redi/ops/conv2d_geometry.hpp"  // Conv2dGeometry (a plain struct, shared by every backend)
#include "redi/ops/optim.hpp"  // AdamWConfig (a plain struct, shared by every backend)

namespace redi {

/// The ops of device Dev. Only specialisations are defined (see the header comment).
template <class Dev>
struct Backend;

/// Whether Backend<Dev> has a fused (flash) attention for element type T
/// (flash_attention_supported / _forward / _backward, docs/ops.md).
template <class Dev, class T>
inline constexpr bool has_flash_attention = Backend<Dev>::template has_flash_attention<T>;

/// The op contract a model of compute type T (statistics S, gradients and master weights G)
/// needs from Backend<Dev>.
template <class Dev, class T, class S = T, class G = T, class R = T>
concept OpsBackend = requires(const Dev& d, T* x, const T* cx, S* s, const S* cs, G* g, const G* cg, R* h,
                              const R* ch, int* iy, const int* cy, int i, std::int64_t n, double r,
                              const ops::AdamWConfig& acfg) {
  // data movement and element types
  Backend<Dev>::copy(d, x, cx, n);
  Backend<Dev>::copy(d, iy, cy, n);
  Backend<Dev>::copy_strided(d, x, n, cx, n, n, n);
  Backend<Dev>::convert(d, x, cg, n);
  Backend<Dev>::convert(d, g, cx, n);
  Backend<Dev>::convert(d, x, cs, n);
  Backend<Dev>::convert(d, x, ch, n);
  Backend<Dev>::convert(d, h, cx, n);
  Backend<Dev>::copy(d, h, ch, n);
  // token layout
  Backend<Dev>::patchify_forward(d, x, cx, i, i, i, i, i);
  Backend<Dev>::unpatchify_forward(d, x, cx, i, i, i, i, i);
  Backend<Dev>::unpatchify_backward(d, x, cx, i, i, i, i, i);
  // dense layers, norms, activations
  Backend<Dev>::linear_forward(d, x, cx, cx, cx, i, i, i);
  Backend<Dev>::linear_backward(d, x, g, g, cx, cx, cx, i, i, i);
  Backend<Dev>::linear_gelu_forward(d, x, x, cx, cx, cx, i, i, i);   // the MLP's fc1 + GELU (pre kept)
  Backend<Dev>::linear_dgelu_backward(d, x, g, cx, cx, cx, i, i, i); // fc2's din * gelu'(pre), fc1's db
  Backend<Dev>::layernorm_forward(d, x, s, s, ch, i, i);
  Backend<Dev>::layernorm_backward(d, h, cx, ch, cs, cs, i, i);
  Backend<Dev>::layernorm_backward_accumulate(d, h, cx, ch, cs, cs, i, i);  // h += LN'(...), one pass
  Backend<Dev>::modulate_forward(d, x, cx, cx, cx, i, i, i, i);
  Backend<Dev>::layernorm_modulate_forward(d, x, x, s, s, ch, cx, cx, i, i, i, i);  // LN then modulate, one op
  Backend<Dev>::modulate_backward(d, x, x, x, cx, cx, cx, i, i, i, i);
  Backend<Dev>::gated_residual_forward(d, h, cx, cx, i, i, i, i);
  Backend<Dev>::gated_residual_forward(d, h, ch, cx, cx, i, i, i, i);  // out of place: h = h' + gate * x
  Backend<Dev>::gated_residual_backward(d, x, x, ch, cx, cx, i, i, i, i);
  Backend<Dev>::gelu_forward(d, x, cx, n);
  Backend<Dev>::gelu_backward(d, x, cx, cx, n);
  Backend<Dev>::silu_forward(d, x, cx, n);
  Backend<Dev>::silu_backward(d, x, cx, cx, n);
  Backend<Dev>::add_inplace(d, x, cx, n);
  Backend<Dev>::accumulate(d, h, cx, n);  // h += x into an R accumulator (dsc over the blocks)
  Backend<Dev>::accumulate(d, h, ch, n);  // dh += LayerNorm's input gradient
  Backend<Dev>::add_broadcast(d, x, cx, n, n);
  // attention (probs saved; scratch for the backward from attention_scratch_elems)
  Backend<Dev>::attention_forward(d, x, x, cx, i, i, i, i);
  Backend<Dev>::attention_backward(d, x, x, cx, cx, cx, i, i, i, i);
  { Backend<Dev>::attention_scratch_elems(i, i, i, i) } -> std::convertible_to<std::int64_t>;
  // conditioning
  Backend<Dev>::embedding_forward(d, x, cx, cy, i, i);
  Backend<Dev>::embedding_backward(d, g, cx, cy, i, i);
  Backend<Dev>::timestep_embedding(d, s, cs, i, i);
  // the optimiser step over the flat buffers (train/optimizer.hpp)
  { Backend<Dev>::sum_squares(d, cg, n) } -> std::convertible_to<double>;
  Backend<Dev>::scale_inplace(d, g, n, r);
  Backend<Dev>::adamw_step(d, g, cg, g, g, n, acfg, n);
  Backend<Dev>::adamw_step(d, g, cg, g, g, n, acfg, n, x);  // and the compute copy, same pass
  Backend<Dev>::ema_update(d, g, cg, n, r);
};

/// The forward-only ops of convolutional inference networks (the SD-VAE, nn/vae.hpp) for element
/// type T: convolution (scratch from conv2d_scratch_elems), GroupNorm (+ SiLU), nearest 2x
/// upsampling, per-side zero padding, GEMM and row softmax (the VAE's spatial attention), copies.
template <class Dev, class T>
concept ConvOpsBackend = requires(const Dev& d, T* x, const T* cx, int i, std::int64_t n, double r, bool f,
                                  const ops::Conv2dGeometry& g) {
  Backend<Dev>::copy(d, x, cx, n);
  Backend<Dev>::add_inplace(d, x, cx, n);
  Backend<Dev>::scale_inplace(d, x, n, r);
  Backend<Dev>::gemm(d, f, f, i, i, i, T(1), cx, i, cx, i, T(0), x, i);
  Backend<Dev>::softmax_forward(d, x, cx, i, i);
  { Backend<Dev>::conv2d_scratch_elems(g, i, i, i) } -> std::convertible_to<std::int64_t>;
  Backend<Dev>::conv2d_forward(d, x, cx, cx, cx, i, i, i, g, x, n);
  Backend<Dev>::group_norm_forward(d, x, cx, cx, cx, i, i, n, i, r, f);
  Backend<Dev>::upsample_nearest2x_forward(d, x, cx, i, i, i, i);
  Backend<Dev>::pad2d_forward(d, x, cx, i, i, i, i, i, i, i, i);
};

/// The forward-only ops of a ViT feature encoder (DINOv2, nn/dinov2.hpp) for element type T on
/// top of linear_forward, attention_forward and gated_residual_forward: the affine LayerNorm,
/// the exact (erf) GELU, broadcast add and the row copies that assemble the token sequence.
template <class Dev, class T>
concept VitInferenceBackend = requires(const Dev& d, T* x, const T* cx, int i, std::int64_t n) {
  Backend<Dev>::copy(d, x, cx, n);
  Backend<Dev>::copy_strided(d, x, n, cx, n, n, n);
  Backend<Dev>::add_broadcast(d, x, cx, n, n);
  Backend<Dev>::patchify_forward(d, x, cx, i, i, i, i, i);
  Backend<Dev>::linear_forward(d, x, cx, cx, cx, i, i, i);
  Backend<Dev>::attention_forward(d, x, x, cx, i, i, i, i);
  Backend<Dev>::gated_residual_forward(d, x, cx, cx, i, i, i, i);
  Backend<Dev>::gelu_erf_forward(d, x, cx, n);
  Backend<Dev>::layernorm_affine_forward(d, x, cx, cx, cx, i, i, T(1e-6));
};

}  // namespace redi
