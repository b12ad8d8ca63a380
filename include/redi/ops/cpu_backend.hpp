// redi/ops/cpu_backend.hpp — Backend<Cpu>: the op contract (redi/ops/backend.hpp, docs/ops.md)
// served by the CPU ops of this folder, T = float or double. Include it in programs that run
// models on the CPU (redi/redi.hpp does). The context argument is `const Cpu&`, so a test
// device derived from Cpu can reuse this table by deriving its Backend from it.
#pragma once
#include <cstdint>

#include "redi/core/device.hpp"
#include "redi/ops/backend.hpp"
#include "redi/ops/joint_loss.hpp"
#include "redi/ops/linear_gelu.hpp"
#include "redi/ops/ops.hpp"
#include "redi/ops/sampler_steps.hpp"

namespace redi {

template <>
struct Backend<Cpu> {
  template <class T>
  static constexpr bool has_flash_attention = false;

  // ---- data movement and element types
  template <class T>
  static void copy(const Cpu& c, T* dst, const T* src, std::int64_t n) { ops::copy(c, dst, src, n); }
  template <class T>
  static void copy_strided(const Cpu& c, T* dst, std::int64_t dst_stride, const T* src, std::int64_t src_stride,
                           std::int64_t rows, std::int64_t cols) {
    ops::copy_strided(c, dst, dst_stride, src, src_stride, rows, cols);
  }
  template <class To, class From>
  static void convert(const Cpu& c, To* out, const From* in, std::int64_t n) { ops::convert(c, out, in, n); }

  // ---- token layout
  template <CpuReal T>
  static void patchify_forward(const Cpu& c, T* tokens, const T* img, int B, int C, int H, int W, int p) {
    ops::patchify_forward(c, tokens, img, B, C, H, W, p);
  }
  template <CpuReal T>
  static void patchify_backward(const Cpu& c, T* dimg, const T* dtokens, int B, int C, int H, int W, int p) {
    ops::patchify_backward(c, dimg, dtokens, B, C, H, W, p);
  }
  template <CpuReal T>
  static void unpatchify_forward(const Cpu& c, T* img, const T* tokens, int B, int C, int H, int W, int p) {
    ops::unpatchify_forward(c, img, tokens, B, C, H, W, p);
  }
  template <CpuReal T>
  static void unpatchify_backward(const Cpu& c, T* dtokens, const T* dimg, int B, int C, int H, int W, int p) {
    ops::unpatchify_backward(c, dtokens, dimg, B, C, H, W, p);
  }

  // ---- dense layers, norms, activations
  template <CpuReal T>
  static void linear_forward(const Cpu& c, T* out, const T* in, const T* W, const T* b, int rows, int in_f,
                             int out_f) {
    ops::linear_forward(c, out, in, W, b, rows, in_f, out_f);
  }
  template <CpuReal T>
  static void linear_backward(const Cpu& c, T* din, T* dW, T* db, const T* dout, const T* in, const T* W,
                              int rows, int in_f, int out_f) {
    ops::linear_backward(c, din, dW, db, dout, in, W, rows, in_f, out_f);
  }
  template <CpuReal T>
  static void linear_gelu_forward(const Cpu& c, T* out, T* pre, const T* in, const T* W, const T* b, int rows,
                                  int in_f, int out_f) {
    ops::linear_gelu_forward(c, out, pre, in, W, b, rows, in_f, out_f);
  }
  template <CpuReal T>
  static void linear_dgelu_backward(const Cpu& c, T* dpre, T* dbpre, const T* dout, const T* W, const T* pre,
                                    int rows, int f, int out_n) {
    ops::linear_dgelu_backward(c, dpre, dbpre, dout, W, pre, rows, f, out_n);
  }
  template <CpuReal T>
  static void layernorm_forward(const Cpu& c, T* out, T* mean, T* rstd, const T* in, int rows, int C) {
    ops::layernorm_forward(c, out, mean, rstd, in, rows, C);
  }
  template <CpuReal T>
  static void layernorm_backward(const Cpu& c, T* din, const T* dout, const T* in, const T* mean, const T* rstd,
                                 int rows, int C) {
    ops::layernorm_backward(c, din, dout, in, mean, rstd, rows, C);
  }
  template <CpuReal T>
  static void layernorm_backward_accumulate(const Cpu& c, T* acc, const T* dout, const T* in, const T* mean,
                                            const T* rstd, int rows, int C) {
    ops::layernorm_backward_accumulate(c, acc, dout, in, mean, rstd, rows, C);
  }
  template <CpuReal T>
  static void modulate_forward(const Cpu& c, T* out, const T* in, const T* shift, const T* scale, int B, int L,
                               int C, int mod_stride) {
    ops::modulate_forward(c, out, in, shift, scale, B, L, C, mod_stride);
  }
  /// ln = LayerNorm(in) (mean, rstd saved), out = ln * (1 + scale) + shift: the block's
  /// LN + adaLN modulation in one op (one pass on the GPU); here the two ops, so bit for bit theirs.
  template <CpuReal T>
  static void layernorm_modulate_forward(const Cpu& c, T* ln, T* out, T* mean, T* rstd, const T* in,
                                         const T* shift, const T* scale, int B, int L, int C, int mod_stride) {
    ops::layernorm_forward(c, ln, mean, rstd, in, B * L, C);
    ops::modulate_forward(c, out, static_cast<const T*>(ln), shift, scale, B, L, C, mod_stride);
  }
  template <CpuReal T>
  static void modulate_backward(const Cpu& c, T* din, T* dshift, T* dscale, const T* dout, const T* in,
                                const T* scale, int B, int L, int C, int mod_stride) {
    ops::modulate_backward(c, din, dshift, dscale, dout, in, scale, B, L, C, mod_stride);
  }
  template <CpuReal T>
  static void gated_residual_forward(const Cpu& c, T* x, const T* y, const T* gate, int B, int L, int C,
                                     int mod_stride) {
    ops::gated_residual_forward(c, x, y, gate, B, L, C, mod_stride);
  }
  template <CpuReal T>
  static void gated_residual_forward(const Cpu& c, T* out, const T* x, const T* y, const T* gate, int B, int L,
                                     int C, int mod_stride) {  // out = x + gate * y
    ops::gated_residual_forward(c, out, x, y, gate, B, L, C, mod_stride);
  }
  template <CpuReal T>
  static void gated_residual_backward(const Cpu& c, T* dy, T* dgate, const T* dx, const T* y, const T* gate,
                                      int B, int L, int C, int mod_stride) {
    ops::gated_residual_backward(c, dy, dgate, dx, y, gate, B, L, C, mod_stride);
  }
  template <CpuReal T>
  static void gelu_forward(const Cpu& c, T* out, const T* in, std::int64_t n) { ops::gelu_forward(c, out, in, n); }
  template <CpuReal T>
  static void gelu_backward(const Cpu& c, T* din, const T* dout, const T* in, std::int64_t n) {
    ops::gelu_backward(c, din, dout, in, n);
  }
  template <CpuReal T>
  static void gelu_erf_forward(const Cpu& c, T* out, const T* in, std::int64_t n) {
    ops::gelu_erf_forward(c, out, in, n);
  }
  template <CpuReal T>
  static void layernorm_affine_forward(const Cpu& c, T* out, const T* in, const T* gamma, const T* beta, int rows,
                                       int C, T eps) {
    ops::layernorm_affine_forward(c, out, in, gamma, beta, rows, C, eps);
  }
  template <CpuReal T>
  static void silu_forward(const Cpu& c, T* out, const T* in, std::int64_t n) { ops::silu_forward(c, out, in, n); }
  template <CpuReal T>
  static void silu_backward(const Cpu& c, T* din, const T* dout, const T* in, std::int64_t n) {
    ops::silu_backward(c, din, dout, in, n);
  }
  template <CpuReal T>
  static void add_inplace(const Cpu& c, T* x, const T* y, std::int64_t n) { ops::add_inplace(c, x, y, n); }
  /// acc += y into a residual-type accumulator (the transformer's dh and conditioning gradient;
  /// on the CPU residual and compute types are the same: add_inplace).
  template <CpuReal T>
  static void accumulate(const Cpu& c, T* acc, const T* y, std::int64_t n) { ops::add_inplace(c, acc, y, n); }
  template <CpuReal T>
  static void add_broadcast(const Cpu& c, T* x, const T* row, std::int64_t outer, std::int64_t inner) {
    ops::add_broadcast(c, x, row, outer, inner);
  }

  // ---- attention
  template <CpuReal T>
  static void attention_forward(const Cpu& c, T* out, T* probs, const T* qkv, int B, int L, int H, int hd) {
    ops::attention_forward(c, out, probs, qkv, B, L, H, hd);
  }
  template <CpuReal T>
  static void attention_backward(const Cpu& c, T* dqkv, T* scratch, const T* dout, const T* qkv, const T* probs,
                                 int B, int L, int H, int hd) {
    ops::attention_backward(c, dqkv, scratch, dout, qkv, probs, B, L, H, hd);
  }
  static std::int64_t attention_scratch_elems(int B, int L, int H, int hd) {
    return ops::attention_scratch_elems(B, L, H, hd);
  }

  // ---- conditioning
  template <CpuReal T>
  static void embedding_forward(const Cpu& c, T* out, const T* table, const int* idx, int N, int D) {
    ops::embedding_forward(c, out, table, idx, N, D);
  }
  template <CpuReal T>
  static void embedding_backward(const Cpu& c, T* dtable, const T* dout, const int* idx, int N, int D) {
    ops::embedding_backward(c, dtable, dout, idx, N, D);
  }
  template <CpuReal T>
  static void timestep_embedding(const Cpu& c, T* out, const T* t, int N, int dim) {
    ops::timestep_embedding(c, out, t, N, dim);
  }

  // ---- the optimiser step
  template <CpuReal T>
  static double sum_squares(const Cpu& c, const T* x, std::int64_t n) { return ops::sum_squares(c, x, n); }
  template <CpuReal T>
  static void scale_inplace(const Cpu& c, T* x, std::int64_t n, double s) { ops::scale_inplace(c, x, n, T(s)); }
  template <CpuReal T>
  static void adamw_step(const Cpu& c, T* param, const T* grad, T* m, T* v, std::int64_t n,
                         const ops::AdamWConfig& cfg, std::int64_t step, T* compute_copy = nullptr) {
    ops::adamw_step(c, param, grad, m, v, n, cfg, step, compute_copy);
  }
  template <CpuReal T>
  static void ema_update(const Cpu& c, T* ema, const T* param, std::int64_t n, double decay) {
    ops::ema_update(c, ema, param, n, decay);
  }

  // ---- the joint loss's per-element half (ops/joint_loss.hpp; the device path of ReDi's loss)
  template <CpuReal T>
  static void joint_loss_inputs(const Cpu& c, T* input, T* target, const T* x0, const T* z0,
                                const ops::LossSample* s, int B, std::int64_t nx, std::int64_t nz,
                                std::uint64_t key, ops::LossTarget tgt, bool zero_z) {
    ops::joint_loss_inputs(c, input, target, x0, z0, s, B, nx, nz, key, tgt, zero_z);
  }
  template <CpuReal T>
  static void joint_loss_grad(const Cpu& c, T* dout, double* sums, const T* out, const T* target,
                              const ops::LossSample* s, int B, std::int64_t nx, std::int64_t nz, double invB) {
    ops::joint_loss_grad(c, dout, sums, out, target, s, B, nx, nz, invB);
  }

  // ---- the samplers' per-element ops (ops/sampler_steps.hpp; redi::DeviceSampler)
  template <CpuReal T>
  static void fill_normal_rows(const Cpu& c, T* dst, int B, std::int64_t n, std::uint64_t seed,
                               const std::uint64_t* index, std::uint32_t purpose, std::uint32_t step) {
    ops::fill_normal_rows(c, dst, B, n, seed, index, purpose, step);
  }
  template <CpuReal T>
  static void guidance_inputs(const Cpu& c, T* in, T* time, int* labels, const T* x, const int* y,
                              const ops::GuideSpec& g, double t) {
    ops::guidance_inputs(c, in, time, labels, x, y, g, t);
  }
  template <CpuReal T>
  static void guidance_combine(const Cpu& c, T* pred, const T* out, const ops::GuideSpec& g, double w, double wr) {
    ops::guidance_combine(c, pred, out, g, w, wr);
  }
  template <CpuReal T>
  static void flow_step(const Cpu& c, T* x, const T* v, const T* noise, std::int64_t n, ops::FlowStep kind,
                        double t, double h, double norm, double sd) {
    ops::flow_step(c, x, v, noise, n, kind, t, h, norm, sd);
  }
  template <CpuReal T>
  static void heun_step(const Cpu& c, T* out, const T* x, const T* v1, const T* v2, std::int64_t n, double h) {
    ops::heun_step(c, out, x, v1, v2, n, h);
  }
  template <CpuReal T>
  static void ddpm_step(const Cpu& c, T* x, const T* pred, const T* noise, const ops::DdpmStep& s) {
    ops::ddpm_step(c, x, pred, noise, s);
  }
  template <CpuReal T>
  static void impose_known(const Cpu& c, T* x, const float* known, const T* zn, int B, std::int64_t nin,
                           std::int64_t nx, double a, double cz) {
    ops::impose_known(c, x, known, zn, B, nin, nx, a, cz);
  }

  // ---- convolutional inference (the frozen SD-VAE, nn/vae.hpp; forward only)
  template <CpuReal T>
  static void gemm(const Cpu& c, bool ta, bool tb, int M, int N, int K, T alpha, const T* A, int lda, const T* B,
                   int ldb, T beta, T* C, int ldc) {
    ops::gemm<T>(c, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  }
  template <CpuReal T>
  static void softmax_forward(const Cpu& c, T* out, const T* in, int rows, int cols) {
    ops::softmax_forward(c, out, in, rows, cols);
  }
  /// Scratch elements conv2d_forward needs for chunks of `images` images (im2col + output).
  static std::int64_t conv2d_scratch_elems(const ops::Conv2dGeometry& g, int H, int W, int images) {
    return ops::conv2d_scratch_elems(g, H, W, images);
  }
  template <CpuReal T>
  static void conv2d_forward(const Cpu& c, T* out, const T* in, const T* Wt, const T* b, int B, int H, int W,
                             const ops::Conv2dGeometry& g, T* scratch, std::int64_t scratch_elems) {
    ops::conv2d_forward(c, out, in, Wt, b, B, H, W, g, scratch, scratch_elems);
  }
  template <CpuReal T>
  static void group_norm_forward(const Cpu& c, T* out, const T* in, const T* gamma, const T* beta, int B, int C,
                                 std::int64_t P, int groups, double eps, bool silu) {
    ops::group_norm_forward(c, out, in, gamma, beta, B, C, P, groups, eps, silu);
  }
  template <CpuReal T>
  static void upsample_nearest2x_forward(const Cpu& c, T* out, const T* in, int B, int C, int H, int W) {
    ops::upsample_nearest2x_forward(c, out, in, B, C, H, W);
  }
  template <CpuReal T>
  static void pad2d_forward(const Cpu& c, T* out, const T* in, int B, int C, int H, int W, int top, int bottom,
                            int left, int right) {
    ops::pad2d_forward(c, out, in, B, C, H, W, top, bottom, left, right);
  }
};

static_assert(OpsBackend<Cpu, float> && OpsBackend<Cpu, double>);
static_assert(ConvOpsBackend<Cpu, float> && ConvOpsBackend<Cpu, double>);
static_assert(VitInferenceBackend<Cpu, float> && VitInferenceBackend<Cpu, double>);

}  // namespace redi
