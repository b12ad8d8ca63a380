// redi/ops/bf16_emulation.hpp — BF16Mixed's numerics on the CPU, so CI sees the bf16 drift:
//   redi::Bf16Emulator<Residual>  a device tag (host memory, NOT is_host: ReDi routes it through
//                                 the DeviceBridge exactly like redi::Cuda)
//   Backend<Bf16Emulator<...>>    the CPU ops in float, each followed by round-to-nearest-even
//                                 to bf16 of the outputs the GPU stores in bf16
// used with the precision redi::BF16Emulated (core/precision.hpp: compute_t = residual_t =
// float, has_compute_copy, so the model takes BF16Mixed's code paths and keeps a rounded copy
// of the weights):
//   redi::ReDi<redi::SiT, redi::Merged, redi::FlowMatching, redi::BF16Emulated,
//              redi::Bf16Emulator<>> m(opts);
//
// The rounding rule follows the op contract's buffer classes (backend.hpp): every compute-type
// output is rounded — GEMM outputs, LayerNorm/modulation/activation outputs, attention out and
// probs, the token layout copies, conversions, input gradients, dshift/dscale/dgate — and
// nothing else: parameter gradients (G), statistics (mean, rstd, timestep features: S),
// optimiser state, and the residual-type outputs (R: gated_residual_forward's x or out,
// layernorm_backward's din, accumulate's acc), which stay fp32 as under BF16Mixed. A plain
// `copy` is not rounded (it moves R buffers; a copy of compute-type data is already rounded).
// With Residual::Bf16 the R outputs are rounded too: the residual stream, dh and the
// conditioning-gradient sum in bf16, i.e. what BF16Mixed did before it had residual_t — the
// counter-example of tests/test_bf16_emulation.cpp.
//
// What the emulation does not reproduce: the order of fp32 accumulation inside a GEMM or a
// reduction (the CPU's, not cuBLASLt's), and inside attention_forward the P V product, which
// reads the fp32 probabilities (the GPU's fallback reads the stored bf16 probs; its fused
// cuDNN path keeps P in registers). Both are fp32-rounding-level differences. Nor the MLP's
// cuBLASLt epilogues (cuda/ops/linear_gelu.cuh): the GPU applies GELU to the fp32 pre-activation
// and gelu' to the fp32 dL/d(out) before storing them; the emulation rounds them first, as the
// unfused ops (and the GPU's fallback) do. One bf16 rounding of an intermediate, no more.
#pragma once
#include <concepts>
#include <cstdint>
#include <vector>

#include "redi/core/device.hpp"
#include "redi/core/dtype.hpp"
#include "redi/core/precision.hpp"
#include "redi/ops/backend.hpp"
#include "redi/ops/cpu_backend.hpp"

namespace redi {

/// Where the emulated residual stream lives: fp32 (BF16Mixed) or bf16 (the old, drifting policy).
enum class EmulatedResidual { Fp32, Bf16 };

template <EmulatedResidual Res = EmulatedResidual::Fp32>
struct Bf16Emulator : Cpu {
  static constexpr bool is_host = false;  // a "device": the DeviceBridge stages its I/O
  static constexpr const char* name =
      Res == EmulatedResidual::Fp32 ? "cpu-bf16-emulated" : "cpu-bf16-emulated-bf16-residual";
  static constexpr EmulatedResidual residual = Res;
};

namespace ops {

/// x[i] = float(bf16(x[i])), round to nearest even (the GPU's store of an fp32 value as bf16).
inline void round_to_bf16(float* x, std::int64_t n) {
  if (!x) return;
#pragma omp parallel for schedule(static) if (n > 65536)
  for (std::int64_t i = 0; i < n; ++i) x[i] = float(bf16(x[i]));
}

/// The same over `rows` runs of `cols` elements, `stride` apart (per-sample vectors in [B, 6D]).
inline void round_to_bf16_strided(float* x, std::int64_t rows, std::int64_t cols, std::int64_t stride) {
  if (!x) return;
  for (std::int64_t r = 0; r < rows; ++r) round_to_bf16(x + r * stride, cols);
}

}  // namespace ops

template <EmulatedResidual Res>
struct Backend<Bf16Emulator<Res>> : Backend<Cpu> {
  using Base = Backend<Cpu>;
  using Ctx = Cpu;  // the emulator's context converts to the CPU's
  static constexpr bool kRoundResidual = Res == EmulatedResidual::Bf16;
  static void rnd(float* x, std::int64_t n) { ops::round_to_bf16(x, n); }
  static void rnd_res(float* x, std::int64_t n) {
    if constexpr (kRoundResidual) ops::round_to_bf16(x, n);
  }

  // ---- data movement and element types (copy: inherited, not rounded)
  static void copy_strided(const Ctx& c, float* dst, std::int64_t dst_stride, const float* src,
                           std::int64_t src_stride, std::int64_t rows, std::int64_t cols) {
    Base::copy_strided(c, dst, dst_stride, src, src_stride, rows, cols);
    ops::round_to_bf16_strided(dst, rows, cols, dst_stride);
  }
  static void convert(const Ctx& c, float* out, const float* in, std::int64_t n) {
    Base::copy(c, out, in, n);
    rnd(out, n);
  }

  // ---- token layout
  static void patchify_forward(const Ctx& c, float* tokens, const float* img, int B, int C, int H, int W, int p) {
    Base::patchify_forward(c, tokens, img, B, C, H, W, p);
    rnd(tokens, std::int64_t(B) * C * H * W);
  }
  static void patchify_backward(const Ctx& c, float* dimg, const float* dtokens, int B, int C, int H, int W,
                                int p) {
    Base::patchify_backward(c, dimg, dtokens, B, C, H, W, p);
    rnd(dimg, std::int64_t(B) * C * H * W);
  }
  static void unpatchify_forward(const Ctx& c, float* img, const float* tokens, int B, int C, int H, int W,
                                 int p) {
    Base::unpatchify_forward(c, img, tokens, B, C, H, W, p);
    rnd(img, std::int64_t(B) * C * H * W);
  }
  static void unpatchify_backward(const Ctx& c, float* dtokens, const float* dimg, int B, int C, int H, int W,
                                  int p) {
    Base::unpatchify_backward(c, dtokens, dimg, B, C, H, W, p);
    rnd(dtokens, std::int64_t(B) * C * H * W);
  }

  // ---- dense layers, norms, activations
  static void linear_forward(const Ctx& c, float* out, const float* in, const float* W, const float* b, int rows,
                             int in_f, int out_f) {
    Base::linear_forward(c, out, in, W, b, rows, in_f, out_f);
    rnd(out, std::int64_t(rows) * out_f);
  }
  static void linear_backward(const Ctx& c, float* din, float* dW, float* db, const float* dout,
                              const float* in, const float* W, int rows, int in_f, int out_f) {
    Base::linear_backward(c, din, dW, db, dout, in, W, rows, in_f, out_f);  // dW, db: fp32 grads
    rnd(din, std::int64_t(rows) * in_f);
  }
  // The fused MLP op as the composition of the rounded ops above/below (pre, out, dL/d(out) and
  // dpre each rounded, as the GPU's unfused fallback stores them; the GPU's epilogues skip the
  // rounding of pre before the GELU and of dL/d(out) before gelu': not reproduced, see above).
  static void linear_gelu_forward(const Ctx& c, float* out, float* pre, const float* in, const float* W,
                                  const float* b, int rows, int in_f, int out_f) {
    linear_forward(c, pre, in, W, b, rows, in_f, out_f);
    gelu_forward(c, out, pre, std::int64_t(rows) * out_f);
  }
  static void linear_dgelu_backward(const Ctx& c, float* dpre, float* dbpre, const float* dout, const float* W,
                                    const float* pre, int rows, int f, int out_n) {
    linear_backward(c, dpre, nullptr, nullptr, dout, nullptr, W, rows, f, out_n);
    gelu_backward(c, dpre, dpre, pre, std::int64_t(rows) * f);
    if (dbpre)  // fp32 parameter gradient: not rounded
      Base::template linear_backward<float>(c, nullptr, nullptr, dbpre, dpre, nullptr, nullptr, rows, 0, f);
  }
  static void layernorm_forward(const Ctx& c, float* out, float* mean, float* rstd, const float* in, int rows,
                                int C) {
    Base::layernorm_forward(c, out, mean, rstd, in, rows, C);  // mean, rstd: fp32 statistics
    rnd(out, std::int64_t(rows) * C);
  }
  static void layernorm_backward(const Ctx& c, float* din, const float* dout, const float* in, const float* mean,
                                 const float* rstd, int rows, int C) {
    Base::layernorm_backward(c, din, dout, in, mean, rstd, rows, C);
    rnd_res(din, std::int64_t(rows) * C);  // residual type
  }
  // The fused op as the two emulated ops it replaces (the gradient rounded to the residual type,
  // then accumulated and rounded), so the emulation's numerics do not depend on the fusion.
  static void layernorm_backward_accumulate(const Ctx& c, float* acc, const float* dout, const float* in,
                                            const float* mean, const float* rstd, int rows, int C) {
    std::vector<float> din(std::size_t(rows) * std::size_t(C));
    layernorm_backward(c, din.data(), dout, in, mean, rstd, rows, C);
    accumulate(c, acc, din.data(), std::int64_t(rows) * C);
  }
  static void layernorm_modulate_forward(const Ctx& c, float* ln, float* out, float* mean, float* rstd,
                                         const float* in, const float* shift, const float* scale, int B, int L,
                                         int C, int ms) {  // the two emulated ops: ln rounded before it is modulated
    layernorm_forward(c, ln, mean, rstd, in, B * L, C);
    modulate_forward(c, out, ln, shift, scale, B, L, C, ms);
  }
  static void modulate_forward(const Ctx& c, float* out, const float* in, const float* shift, const float* scale,
                               int B, int L, int C, int ms) {
    Base::modulate_forward(c, out, in, shift, scale, B, L, C, ms);
    rnd(out, std::int64_t(B) * L * C);
  }
  static void modulate_backward(const Ctx& c, float* din, float* dshift, float* dscale, const float* dout,
                                const float* in, const float* scale, int B, int L, int C, int ms) {
    Base::modulate_backward(c, din, dshift, dscale, dout, in, scale, B, L, C, ms);
    rnd(din, std::int64_t(B) * L * C);
    ops::round_to_bf16_strided(dshift, B, C, ms);
    ops::round_to_bf16_strided(dscale, B, C, ms);
  }
  static void gated_residual_forward(const Ctx& c, float* x, const float* y, const float* gate, int B, int L,
                                     int C, int ms) {
    Base::gated_residual_forward(c, x, y, gate, B, L, C, ms);
    rnd_res(x, std::int64_t(B) * L * C);  // residual type
  }
  static void gated_residual_forward(const Ctx& c, float* out, const float* x, const float* y, const float* gate,
                                     int B, int L, int C, int ms) {
    Base::gated_residual_forward(c, out, x, y, gate, B, L, C, ms);
    rnd_res(out, std::int64_t(B) * L * C);  // residual type
  }
  static void gated_residual_backward(const Ctx& c, float* dy, float* dgate, const float* dx, const float* y,
                                      const float* gate, int B, int L, int C, int ms) {
    Base::gated_residual_backward(c, dy, dgate, dx, y, gate, B, L, C, ms);
    rnd(dy, std::int64_t(B) * L * C);
    ops::round_to_bf16_strided(dgate, B, C, ms);
  }
  static void gelu_forward(const Ctx& c, float* out, const float* in, std::int64_t n) {
    Base::gelu_forward(c, out, in, n);
    rnd(out, n);
  }
  static void gelu_backward(const Ctx& c, float* din, const float* dout, const float* in, std::int64_t n) {
    Base::gelu_backward(c, din, dout, in, n);
    rnd(din, n);
  }
  static void silu_forward(const Ctx& c, float* out, const float* in, std::int64_t n) {
    Base::silu_forward(c, out, in, n);
    rnd(out, n);
  }
  static void silu_backward(const Ctx& c, float* din, const float* dout, const float* in, std::int64_t n) {
    Base::silu_backward(c, din, dout, in, n);
    rnd(din, n);
  }
  static void add_inplace(const Ctx& c, float* x, const float* y, std::int64_t n) {
    Base::add_inplace(c, x, y, n);
    rnd(x, n);
  }
  static void accumulate(const Ctx& c, float* acc, const float* y, std::int64_t n) {
    Base::accumulate(c, acc, y, n);
    rnd_res(acc, n);  // residual type
  }
  static void add_broadcast(const Ctx& c, float* x, const float* row, std::int64_t outer, std::int64_t inner) {
    Base::add_broadcast(c, x, row, outer, inner);
    rnd(x, outer * inner);
  }

  // ---- attention (the exact op: probs saved, rounded as the GPU's fallback stores them)
  static void attention_forward(const Ctx& c, float* out, float* probs, const float* qkv, int B, int L, int H,
                                int hd) {
    Base::attention_forward(c, out, probs, qkv, B, L, H, hd);
    rnd(out, std::int64_t(B) * L * H * hd);
    rnd(probs, std::int64_t(B) * H * L * L);
  }
  static void attention_backward(const Ctx& c, float* dqkv, float* scratch, const float* dout, const float* qkv,
                                 const float* probs, int B, int L, int H, int hd) {
    Base::attention_backward(c, dqkv, scratch, dout, qkv, probs, B, L, H, hd);
    rnd(dqkv, 3 * std::int64_t(B) * L * H * hd);
  }

  // ---- the optimiser: the compute copy written in AdamW's pass is rounded, as convert's
  static void adamw_step(const Ctx& c, float* param, const float* grad, float* m, float* v, std::int64_t n,
                         const ops::AdamWConfig& cfg, std::int64_t step, float* compute_copy = nullptr) {
    Base::adamw_step(c, param, grad, m, v, n, cfg, step, compute_copy);
    rnd(compute_copy, n);
  }

  // ---- conditioning (embedding_backward: fp32 table gradient; timestep_embedding: fp32
  // features, rounded by the convert that follows)
  static void embedding_forward(const Ctx& c, float* out, const float* table, const int* idx, int N, int D) {
    Base::embedding_forward(c, out, table, idx, N, D);
    rnd(out, std::int64_t(N) * D);
  }
};

static_assert(OpsBackend<Bf16Emulator<>, float> && OpsBackend<Bf16Emulator<EmulatedResidual::Bf16>, float>);

}  // namespace redi
