// redi/cuda/backend.cuh — Backend<Cuda>: the op contract (redi/ops/backend.hpp, docs/ops.md)
// served by the CUDA ops of redi/cuda/ops/*.cuh (fp32, or bf16 storage with fp32 arithmetic;
// parameter gradients and statistics may be fp32 next to bf16 activations). nvcc only: include
// it in the .cu files that run models on a GPU, e.g. ReDi<..., BF16Mixed, Cuda>.
#pragma once
#include <concepts>
#include <cstdint>

#include "redi/cuda/ops/ops.cuh"
#include "redi/ops/backend.hpp"

namespace redi {

template <>
struct Backend<Cuda> {
  /// The cuDNN fused SDPA serves bf16 (where flash_attention_supported says so for the shape).
  template <class T>
  static constexpr bool has_flash_attention = std::same_as<T, bf16>;

  // ---- data movement and element types
  template <class T>
  static void copy(const Cuda& c, T* dst, const T* src, std::int64_t n) { ops::copy(c, dst, src, n); }
  template <class T>
  static void copy_strided(const Cuda& c, T* dst, std::int64_t dst_stride, const T* src, std::int64_t src_stride,
                           std::int64_t rows, std::int64_t cols) {
    ops::copy_strided(c, dst, dst_stride, src, src_stride, rows, cols);
  }
  template <class To, class From>
  static void convert(const Cuda& c, To* out, const From* in, std::int64_t n) { ops::convert(c, out, in, n); }

  // ---- token layout
  template <class T>
  static void patchify_forward(const Cuda& c, T* tokens, const T* img, int B, int C, int H, int W, int p) {
    ops::patchify_forward(c, tokens, img, B, C, H, W, p);
  }
  template <class T>
  static void patchify_backward(const Cuda& c, T* dimg, const T* dtokens, int B, int C, int H, int W, int p) {
    ops::patchify_backward(c, dimg, dtokens, B, C, H, W, p);
  }
  template <class T>
  static void unpatchify_forward(const Cuda& c, T* img, const T* tokens, int B, int C, int H, int W, int p) {
    ops::unpatchify_forward(c, img, tokens, B, C, H, W, p);
  }
  template <class T>
  static void unpatchify_backward(const Cuda& c, T* dtokens, const T* dimg, int B, int C, int H, int W, int p) {
    ops::unpatchify_backward(c, dtokens, dimg, B, C, H, W, p);
  }

  // ---- dense layers, norms, activations
  template <class T>
  static void linear_forward(const Cuda& c, T* out, const T* in, const T* W, const T* b, int rows, int in_f,
                             int out_f) {
    ops::linear_forward(c, out, in, W, b, rows, in_f, out_f);
  }
  template <class T, class G>
  static void linear_backward(const Cuda& c, T* din, G* dW, G* db, const T* dout, const T* in, const T* W,
                              int rows, int in_f, int out_f) {
    ops::linear_backward(c, din, dW, db, dout, in, W, rows, in_f, out_f);
  }
  template <class T>
  static void linear_gelu_forward(const Cuda& c, T* out, T* pre, const T* in, const T* W, const T* b, int rows,
                                  int in_f, int out_f) {
    ops::linear_gelu_forward(c, out, pre, in, W, b, rows, in_f, out_f);
  }
  template <class T, class G>
  static void linear_dgelu_backward(const Cuda& c, T* dpre, G* dbpre, const T* dout, const T* W, const T* pre,
                                    int rows, int f, int out_n) {
    ops::linear_dgelu_backward(c, dpre, dbpre, dout, W, pre, rows, f, out_n);
  }
  template <class T, class S, class R>
  static void layernorm_forward(const Cuda& c, T* out, S* mean, S* rstd, const R* in, int rows, int C) {
    ops::layernorm_forward(c, out, mean, rstd, in, rows, C);
  }
  template <class T, class S, class R>
  static void layernorm_backward(const Cuda& c, R* din, const T* dout, const R* in, const S* mean, const S* rstd,
                                 int rows, int C) {
    ops::layernorm_backward(c, din, dout, in, mean, rstd, rows, C);
  }
  template <class T, class S, class R>
  static void layernorm_backward_accumulate(const Cuda& c, R* acc, const T* dout, const R* in, const S* mean,
                                            const S* rstd, int rows, int C) {
    ops::layernorm_backward_accumulate(c, acc, dout, in, mean, rstd, rows, C);
  }
  template <class T, class S, class R>
  static void layernorm_modulate_forward(const Cuda& c, T* ln, T* out, S* mean, S* rstd, const R* in, const T* shift,
                                         const T* scale, int B, int L, int C, int mod_stride) {
    ops::layernorm_modulate_forward(c, ln, out, mean, rstd, in, shift, scale, B, L, C, mod_stride);
  }
  template <class T>
  static void modulate_forward(const Cuda& c, T* out, const T* in, const T* shift, const T* scale, int B, int L,
                               int C, int mod_stride) {
    ops::modulate_forward(c, out, in, shift, scale, B, L, C, mod_stride);
  }
  template <class T>
  static void modulate_backward(const Cuda& c, T* din, T* dshift, T* dscale, const T* dout, const T* in,
                                const T* scale, int B, int L, int C, int mod_stride) {
    ops::modulate_backward(c, din, dshift, dscale, dout, in, scale, B, L, C, mod_stride);
  }
  template <class T, class R>
  static void gated_residual_forward(const Cuda& c, R* x, const T* y, const T* gate, int B, int L, int C,
                                     int mod_stride) {
    ops::gated_residual_forward(c, x, y, gate, B, L, C, mod_stride);
  }
  template <class T, class R>
  static void gated_residual_forward(const Cuda& c, R* out, const R* x, const T* y, const T* gate, int B, int L,
                                     int C, int mod_stride) {  // out = x + gate * y
    ops::gated_residual_forward(c, out, x, y, gate, B, L, C, mod_stride);
  }
  template <class T, class R>
  static void gated_residual_backward(const Cuda& c, T* dy, T* dgate, const R* dx, const T* y, const T* gate,
                                      int B, int L, int C, int mod_stride) {
    ops::gated_residual_backward(c, dy, dgate, dx, y, gate, B, L, C, mod_stride);
  }
  template <class T>
  static void gelu_forward(const Cuda& c, T* out, const T* in, std::int64_t n) { ops::gelu_forward(c, out, in, n); }
  template <class T>
  static void gelu_backward(const Cuda& c, T* din, const T* dout, const T* in, std::int64_t n) {
    ops::gelu_backward(c, din, dout, in, n);
  }
  template <class T>
  static void gelu_erf_forward(const Cuda& c, T* out, const T* in, std::int64_t n) {
    ops::gelu_erf_forward(c, out, in, n);
  }
  template <class T>
  static void layernorm_affine_forward(const Cuda& c, T* out, const T* in, const T* gamma, const T* beta, int rows,
                                       int C, CudaScalar eps) {
    ops::layernorm_affine_forward(c, out, in, gamma, beta, rows, C, eps);
  }
  template <class T>
  static void silu_forward(const Cuda& c, T* out, const T* in, std::int64_t n) { ops::silu_forward(c, out, in, n); }
  template <class T>
  static void silu_backward(const Cuda& c, T* din, const T* dout, const T* in, std::int64_t n) {
    ops::silu_backward(c, din, dout, in, n);
  }
  template <class T>
  static void add_inplace(const Cuda& c, T* x, const T* y, std::int64_t n) { ops::add_inplace(c, x, y, n); }
  template <class R, class T>
  static void accumulate(const Cuda& c, R* acc, const T* y, std::int64_t n) { ops::accumulate(c, acc, y, n); }
  template <class T>
  static void add_broadcast(const Cuda& c, T* x, const T* row, std::int64_t outer, std::int64_t inner) {
    ops::add_broadcast(c, x, row, outer, inner);
  }

  // ---- attention: the exact op (probs saved) and the fused flash op (lse saved, bf16)
  template <class T>
  static void attention_forward(const Cuda& c, T* out, T* probs, const T* qkv, int B, int L, int H, int hd) {
    ops::attention_forward(c, out, probs, qkv, B, L, H, hd);
  }
  template <class T>
  static void attention_backward(const Cuda& c, T* dqkv, T* scratch, const T* dout, const T* qkv, const T* probs,
                                 int B, int L, int H, int hd) {
    ops::attention_backward(c, dqkv, scratch, dout, qkv, probs, B, L, H, hd);
  }
  static std::int64_t attention_scratch_elems(int B, int L, int H, int hd) {
    (void)hd;
    return std::int64_t(B) * H * L * L;  // as ops::attention_scratch_elems(ctx, ...)
  }
  template <class T>
  static bool flash_attention_supported(const Cuda& c, int B, int L, int H, int hd, bool backward = true) {
    return ops::flash_attention_supported<T>(c, B, L, H, hd, backward);
  }
  static void flash_attention_forward(const Cuda& c, bf16* out, float* lse, const bf16* qkv, int B, int L, int H,
                                      int hd) {
    ops::flash_attention_forward(c, out, lse, qkv, B, L, H, hd);
  }
  static void flash_attention_backward(const Cuda& c, bf16* dqkv, const bf16* dout, const bf16* qkv,
                                       const bf16* out, const float* lse, int B, int L, int H, int hd) {
    ops::flash_attention_backward(c, dqkv, dout, qkv, out, lse, B, L, H, hd);
  }

  // ---- conditioning
  template <class T>
  static void embedding_forward(const Cuda& c, T* out, const T* table, const int* idx, int N, int D) {
    ops::embedding_forward(c, out, table, idx, N, D);
  }
  template <class G, class T>
  static void embedding_backward(const Cuda& c, G* dtable, const T* dout, const int* idx, int N, int D) {
    ops::embedding_backward(c, dtable, dout, idx, N, D);
  }
  template <class T>
  static void timestep_embedding(const Cuda& c, T* out, const T* t, int N, int dim) {
    ops::timestep_embedding(c, out, t, N, dim);
  }

  // ---- the optimiser step
  template <class T>
  static double sum_squares(const Cuda& c, const T* x, std::int64_t n) { return ops::sum_squares(c, x, n); }
  template <class T>
  static void scale_inplace(const Cuda& c, T* x, std::int64_t n, double s) { ops::scale_inplace(c, x, n, T(s)); }
  template <class P, class G, class C = bf16>
  static void adamw_step(const Cuda& c, P* param, const G* grad, P* m, P* v, std::int64_t n,
                         const ops::AdamWConfig& cfg, std::int64_t step, C* compute_copy = nullptr) {
    ops::adamw_step(c, param, grad, m, v, n, cfg, step, compute_copy);
  }
  template <class E, class P>
  static void ema_update(const Cuda& c, E* ema, const P* param, std::int64_t n, double decay) {
    ops::ema_update(c, ema, param, n, decay);
  }

  // ---- the joint loss's per-element half (cuda/ops/joint_loss.cuh; the device path of ReDi's loss)
  template <class T>
  static void joint_loss_inputs(const Cuda& c, T* input, T* target, const T* x0, const T* z0,
                                const ops::LossSample* s, int B, std::int64_t nx, std::int64_t nz,
                                std::uint64_t key, ops::LossTarget tgt, bool zero_z) {
    ops::joint_loss_inputs(c, input, target, x0, z0, s, B, nx, nz, key, tgt, zero_z);
  }
  template <class T>
  static void joint_loss_grad(const Cuda& c, T* dout, double* sums, const T* out, const T* target,
                              const ops::LossSample* s, int B, std::int64_t nx, std::int64_t nz, double invB) {
    ops::joint_loss_grad(c, dout, sums, out, target, s, B, nx, nz, invB);
  }

  // ---- the samplers' per-element ops (cuda/ops/sampler_steps.cuh; redi::DeviceSampler)
  template <class T>
  static void fill_normal_rows(const Cuda& c, T* dst, int B, std::int64_t n, std::uint64_t seed,
                               const std::uint64_t* index, std::uint32_t purpose, std::uint32_t step) {
    ops::fill_normal_rows(c, dst, B, n, seed, index, purpose, step);
  }
  template <class T>
  static void guidance_inputs(const Cuda& c, T* in, T* time, int* labels, const T* x, const int* y,
                              const ops::GuideSpec& g, double t) {
    ops::guidance_inputs(c, in, time, labels, x, y, g, t);
  }
  template <class T>
  static void guidance_combine(const Cuda& c, T* pred, const T* out, const ops::GuideSpec& g, double w, double wr) {
    ops::guidance_combine(c, pred, out, g, w, wr);
  }
  template <class T>
  static void flow_step(const Cuda& c, T* x, const T* v, const T* noise, std::int64_t n, ops::FlowStep kind,
                        double t, double h, double norm, double sd) {
    ops::flow_step(c, x, v, noise, n, kind, t, h, norm, sd);
  }
  template <class T>
  static void heun_step(const Cuda& c, T* out, const T* x, const T* v1, const T* v2, std::int64_t n, double h) {
    ops::heun_step(c, out, x, v1, v2, n, h);
  }
  template <class T>
  static void ddpm_step(const Cuda& c, T* x, const T* pred, const T* noise, const ops::DdpmStep& s) {
    ops::ddpm_step(c, x, pred, noise, s);
  }
  template <class T>
  static void impose_known(const Cuda& c, T* x, const float* known, const T* zn, int B, std::int64_t nin,
                           std::int64_t nx, double a, double cz) {
    ops::impose_known(c, x, known, zn, B, nin, nx, a, cz);
  }

  // ---- convolutional inference (the frozen SD-VAE, nn/vae.hpp; forward only)
  template <class T>
  static void gemm(const Cuda& c, bool ta, bool tb, int M, int N, int K, T alpha, const T* A, int lda, const T* B,
                   int ldb, T beta, T* C, int ldc) {
    ops::gemm(c, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  }
  template <class T>
  static void softmax_forward(const Cuda& c, T* out, const T* in, int rows, int cols) {
    ops::softmax_forward(c, out, in, rows, cols);
  }
  /// Scratch elements conv2d_forward needs (the padded input of an asymmetric pad, else 0).
  static std::int64_t conv2d_scratch_elems(const ops::Conv2dGeometry& g, int H, int W, int images) {
    return ops::conv2d_scratch_elems_cuda(g, H, W, images);
  }
  template <class T>
  static void conv2d_forward(const Cuda& c, T* out, const T* in, const T* Wt, const T* b, int B, int H, int W,
                             const ops::Conv2dGeometry& g, T* scratch, std::int64_t scratch_elems) {
    ops::conv2d_forward(c, out, in, Wt, b, B, H, W, g, scratch, scratch_elems);
  }
  template <class T>
  static void group_norm_forward(const Cuda& c, T* out, const T* in, const T* gamma, const T* beta, int B, int C,
                                 std::int64_t P, int groups, double eps, bool silu) {
    ops::group_norm_forward(c, out, in, gamma, beta, B, C, P, groups, eps, silu);
  }
  template <class T>
  static void upsample_nearest2x_forward(const Cuda& c, T* out, const T* in, int B, int C, int H, int W) {
    ops::upsample_nearest2x_forward(c, out, in, B, C, H, W);
  }
  template <class T>
  static void pad2d_forward(const Cuda& c, T* out, const T* in, int B, int C, int H, int W, int top, int bottom,
                            int left, int right) {
    ops::pad2d_forward(c, out, in, B, C, H, W, top, bottom, left, right);
  }
};

static_assert(OpsBackend<Cuda, float> && OpsBackend<Cuda, bf16, float, float, float>);
static_assert(ConvOpsBackend<Cuda, float> && ConvOpsBackend<Cuda, bf16>);
static_assert(VitInferenceBackend<Cuda, float> && VitInferenceBackend<Cuda, bf16>);

}  // namespace redi
