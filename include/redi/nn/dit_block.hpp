// redi/nn/dit_block.hpp — the adaLN-Zero DiT block, forward and backward side by side:
//   shift1,scale1,gate1,shift2,scale2,gate2 = Linear(SiLU(c))          (mod, [B, 6D])
//   h_mid = h_in  + gate1 * Proj(Attn(Qkv(LN(h_in)  * (1 + scale1) + shift1)))
//   h_out = h_mid + gate2 * Fc2(GELU(Fc1(LN(h_mid) * (1 + scale2) + shift2)))
// Written once over the op contract (docs/ops.md): Backend<Ctx> (redi/ops/backend.hpp) runs
// every op, so the device is the type of the context argument.
// Types: T activations and compute weights, G parameter gradients, S LayerNorm statistics and
// the attention log-sum-exp, R the residual stream (h_in, h_mid, h_out), its gradient dh and
// the conditioning gradient dsc summed over the blocks (one type everywhere on the CPU;
// bf16 / fp32 / fp32 / fp32 for BF16Mixed, as PyTorch autocast: only what feeds a GEMM or the
// attention is bf16). The R values are touched by LayerNorm (reads R, writes T), the gated
// residual (R = R + T * T, written out of place: h_mid and h_out in one pass each, no copy
// of h_in / h_mid first), LayerNorm's backward (adds into R in its own pass:
// layernorm_backward_accumulate) and Ops::accumulate (R += T or R):
// none of the 2 x depth additions into h or dh, nor the depth additions into dsc, rounds to T.
// Attention: the exact-contract op (probs [B, H, S, S] saved), or, where the device has one
// for this shape (has_flash_attention<Ctx, T> and acts.lse set), the fused flash op that
// saves only the per-row log-sum-exp.
// Recomputation (nn/recompute.hpp): a block carved with a policy other than None keeps only
// some activations; block_backward first re-runs the forward of the others (the same op calls
// as block_forward, from the saved h_in / h_mid and mod) into buffers shared by all blocks.
#pragma once
#include <cstdint>
#include <type_traits>

#include "redi/core/error.hpp"
#include "redi/nn/recompute.hpp"
#include "redi/ops/backend.hpp"

namespace redi {

struct BlockDims {
  int B, S, D, H, Dm;  // batch, tokens per sample, width, heads, MLP width
  std::int64_t N() const { return std::int64_t(B) * S; }
};

template <class T>
struct BlockWeights {
  const T *qkv_w, *qkv_b, *proj_w, *proj_b, *fc1_w, *fc1_b, *fc2_w, *fc2_b, *ada_w, *ada_b;
};

template <class G>
struct BlockGrads {
  G *qkv_w, *qkv_b, *proj_w, *proj_b, *fc1_w, *fc1_b, *fc2_w, *fc2_b, *ada_w, *ada_b;
};

/// Activations a block saves for its backward pass, carved from the model's arena (a
/// Workspace, core/workspace.hpp). With `flash`, lse [B, H, S] replaces probs. With a
/// recomputation policy (nn/recompute.hpp) the buffers the policy recomputes are not the
/// block's own: they point into one shared set (carve_shared) that every block reuses.
template <class T, class S = T, class R = T>
struct BlockActs {
  T *mod;                                        // [B, 6D]
  R *h_in, *h_mid;                               // residual stream (block input, after attention)
  T *ln1, *m1, *qkv, *probs, *ao, *a;            // attention branch
  T *ln2, *m2, *f1, *g, *f2;                     // MLP branch
  S *mean1, *rstd1, *mean2, *rstd2, *lse;        // statistics
  Recompute recompute = Recompute::None;         // what block_backward re-runs first

  /// The block's buffers under policy r: mod and h_in always; the attention branch, h_mid and
  /// the MLP branch unless r recomputes them, in which case they are `shared`'s (a set carved
  /// by carve_shared with the same r, dims and flash; needed unless r == None).
  template <class W>
  void carve(W& w, const BlockDims& d, bool flash, Recompute r = Recompute::None,
             const BlockActs* shared = nullptr) {
    REDI_CHECK(r == Recompute::None || shared != nullptr, "BlockActs::carve: recompute policy ",
               recompute_name(r), " needs the shared set of recomputed buffers");
    *this = BlockActs{};
    recompute = r;
    mod = w.template take<T>(std::int64_t(d.B) * 6 * d.D);
    h_in = w.template take<R>(d.N() * d.D);
    if (recomputes_attention(r)) share_attention(*shared);
    else take_attention(w, d, flash);
    h_mid = recomputes_mid(r) ? shared->h_mid : w.template take<R>(d.N() * d.D);
    if (recomputes_mlp(r)) share_mlp(*shared);
    else take_mlp(w, d);
  }

  /// The set shared by the blocks of policy r: only the buffers r recomputes (the rest null).
  template <class W>
  void carve_shared(W& w, const BlockDims& d, bool flash, Recompute r) {
    *this = BlockActs{};
    if (recomputes_attention(r)) take_attention(w, d, flash);
    if (recomputes_mid(r)) h_mid = w.template take<R>(d.N() * d.D);
    if (recomputes_mlp(r)) take_mlp(w, d);
  }

private:
  template <class W>
  void take_attention(W& w, const BlockDims& d, bool flash) {
    const std::int64_t N = d.N(), D = d.D;
    ln1 = w.template take<T>(N * D); m1 = w.template take<T>(N * D);
    qkv = w.template take<T>(3 * N * D);
    probs = flash ? nullptr : w.template take<T>(std::int64_t(d.B) * d.H * d.S * d.S);
    lse = flash ? w.template take<S>(std::int64_t(d.B) * d.H * d.S) : nullptr;
    ao = w.template take<T>(N * D); a = w.template take<T>(N * D);
    mean1 = w.template take<S>(N); rstd1 = w.template take<S>(N);
  }
  template <class W>
  void take_mlp(W& w, const BlockDims& d) {
    const std::int64_t N = d.N(), D = d.D;
    ln2 = w.template take<T>(N * D); m2 = w.template take<T>(N * D);
    f1 = w.template take<T>(N * d.Dm); g = w.template take<T>(N * d.Dm); f2 = w.template take<T>(N * D);
    mean2 = w.template take<S>(N); rstd2 = w.template take<S>(N);
  }
  void share_attention(const BlockActs& o) {
    ln1 = o.ln1; m1 = o.m1; qkv = o.qkv; probs = o.probs; lse = o.lse; ao = o.ao; a = o.a;
    mean1 = o.mean1; rstd1 = o.rstd1;
  }
  void share_mlp(const BlockActs& o) {
    ln2 = o.ln2; m2 = o.m2; f1 = o.f1; g = o.g; f2 = o.f2; mean2 = o.mean2; rstd2 = o.rstd2;
  }
};

/// Scratch shared by all blocks' backward passes (carved next to the activations). LayerNorm's
/// input gradient needs none: it is added into dh in the LayerNorm backward's own pass
/// (layernorm_backward_accumulate). R is kept for the callers' spelling; nothing here is R.
template <class T, class R = T>
struct BlockScratch {
  T *d_big2, *dqkv, *att, *d_small, *dtmp, *dmod, *dsc_tmp;

  template <class W>
  void carve(W& w, const BlockDims& d, bool flash) {
    using Ops = Backend<typename W::device_type>;
    const std::int64_t N = d.N(), D = d.D;
    d_big2 = w.template take<T>(N * d.Dm);
    dqkv = w.template take<T>(3 * N * D);
    att = flash ? nullptr : w.template take<T>(Ops::attention_scratch_elems(d.B, d.S, d.H, D / d.H));
    d_small = w.template take<T>(N * D); dtmp = w.template take<T>(N * D);
    dmod = w.template take<T>(std::int64_t(d.B) * 6 * D); dsc_tmp = w.template take<T>(std::int64_t(d.B) * D);
  }
};

namespace detail {

/// The attention branch's forward, LN1 .. proj: a.a from a.h_in and a.mod (not the residual).
template <class Ctx, class T, class St, class R>
void block_attention_forward(const Ctx& ctx, const BlockDims& d, const BlockWeights<T>& w,
                             const BlockActs<T, St, R>& a) {
  using Ops = Backend<Ctx>;
  const int B = d.B, S = d.S, D = d.D, H = d.H, rows = int(d.N());
  const int ms = 6 * D;  // stride between samples in mod
  const T *shift1 = a.mod, *scale1 = a.mod + D;
  Ops::layernorm_modulate_forward(ctx, a.ln1, a.m1, a.mean1, a.rstd1, a.h_in, shift1, scale1, B, S, D, ms);
  Ops::linear_forward(ctx, a.qkv, a.m1, w.qkv_w, w.qkv_b, rows, D, 3 * D);
  if constexpr (has_flash_attention<Ctx, T>) {
    if (a.lse) Ops::flash_attention_forward(ctx, a.ao, a.lse, a.qkv, B, S, H, D / H);
    else Ops::attention_forward(ctx, a.ao, a.probs, a.qkv, B, S, H, D / H);
  } else {
    Ops::attention_forward(ctx, a.ao, a.probs, a.qkv, B, S, H, D / H);
  }
  Ops::linear_forward(ctx, a.a, a.ao, w.proj_w, w.proj_b, rows, D, D);
}

/// The attention residual: a.h_mid = a.h_in + gate1 * a.a (out of place: one pass).
template <class Ctx, class T, class St, class R>
void block_attention_residual(const Ctx& ctx, const BlockDims& d, const BlockActs<T, St, R>& a) {
  using Ops = Backend<Ctx>;
  const int D = d.D;
  Ops::gated_residual_forward(ctx, a.h_mid, static_cast<const R*>(a.h_in), a.a, a.mod + 2 * D, d.B, d.S, D, 6 * D);
}

/// The MLP branch's forward, LN2 .. fc2: a.f2 from a.h_mid and a.mod (not the residual).
template <class Ctx, class T, class St, class R>
void block_mlp_forward(const Ctx& ctx, const BlockDims& d, const BlockWeights<T>& w,
                       const BlockActs<T, St, R>& a) {
  using Ops = Backend<Ctx>;
  const int B = d.B, S = d.S, D = d.D, rows = int(d.N());
  const int ms = 6 * D;
  const T *shift2 = a.mod + 3 * D, *scale2 = a.mod + 4 * D;
  Ops::layernorm_modulate_forward(ctx, a.ln2, a.m2, a.mean2, a.rstd2, a.h_mid, shift2, scale2, B, S, D, ms);
  Ops::linear_gelu_forward(ctx, a.g, a.f1, a.m2, w.fc1_w, w.fc1_b, rows, D, d.Dm);  // f1 = pre-GELU
  Ops::linear_forward(ctx, a.f2, a.g, w.fc2_w, w.fc2_b, rows, d.Dm, D);
}

}  // namespace detail

/// Forward. `h_in` is copied into acts.h_in; the result is written to h_out (may alias h_in).
template <class Ctx, class T, class St, class R>
void block_forward(const Ctx& ctx, const BlockDims& d, const BlockWeights<T>& w, const T* sc,
                   BlockActs<T, St, R>& a, const R* h_in, R* h_out) {
  using Ops = Backend<Ctx>;
  const int B = d.B, S = d.S, D = d.D;
  const int ms = 6 * D;  // stride between samples in mod
  Ops::linear_forward(ctx, a.mod, sc, w.ada_w, w.ada_b, B, D, 6 * D);
  const T* gate2 = a.mod + 5 * D;

  if (a.h_in != h_in) Ops::copy(ctx, a.h_in, h_in, d.N() * D);
  detail::block_attention_forward(ctx, d, w, a);   // attention branch
  detail::block_attention_residual(ctx, d, a);     // h_mid = h_in + gate1 * a
  detail::block_mlp_forward(ctx, d, w, a);         // MLP branch
  Ops::gated_residual_forward(ctx, h_out, static_cast<const R*>(a.h_mid), a.f2, gate2, B, S, D, ms);  // out of place
}

/// Backward. On entry dh = dL/dh_out; on exit dh = dL/dh_in. Parameter gradients accumulate
/// into g; dL/d(SiLU(c)) is ADDED to dsc (an R accumulator: the sum over the blocks).
template <class Ctx, class T, class G, class St, class R>
void block_backward(const Ctx& ctx, const BlockDims& d, const BlockWeights<T>& w,
                    const BlockGrads<G>& g, const BlockActs<T, St, R>& a, const T* sc, R* dh, R* dsc,
                    const BlockScratch<T, R>& s) {
  using Ops = Backend<Ctx>;
  const int B = d.B, S = d.S, D = d.D, H = d.H, rows = int(d.N());
  const int ms = 6 * D;
  const T *scale1 = a.mod + D, *gate1 = a.mod + 2 * D, *scale2 = a.mod + 4 * D, *gate2 = a.mod + 5 * D;
  T *dshift1 = s.dmod, *dscale1 = s.dmod + D, *dgate1 = s.dmod + 2 * D;
  T *dshift2 = s.dmod + 3 * D, *dscale2 = s.dmod + 4 * D, *dgate2 = s.dmod + 5 * D;

  // recomputation (nn/recompute.hpp): what this block did not keep, from h_in, h_mid and mod
  if (recomputes_mid(a.recompute)) {  // Block: the attention branch, then h_mid, from h_in
    detail::block_attention_forward(ctx, d, w, a);
    detail::block_attention_residual(ctx, d, a);
  }
  if (recomputes_mlp(a.recompute)) detail::block_mlp_forward(ctx, d, w, a);

  // MLP branch: h_out = h_mid + gate2 * f2
  Ops::gated_residual_backward(ctx, s.d_small, dgate2, dh, a.f2, gate2, B, S, D, ms);
  Ops::linear_backward(ctx, static_cast<T*>(nullptr), g.fc2_w, g.fc2_b, s.d_small, a.g, w.fc2_w, rows, d.Dm, D);
  Ops::linear_dgelu_backward(ctx, s.d_big2, g.fc1_b, s.d_small, w.fc2_w, a.f1, rows, d.Dm, D);  // + fc1's db
  Ops::linear_backward(ctx, s.d_small, g.fc1_w, static_cast<G*>(nullptr), s.d_big2, a.m2, w.fc1_w, rows, D, d.Dm);
  Ops::modulate_backward(ctx, s.dtmp, dshift2, dscale2, s.d_small, a.ln2, scale2, B, S, D, ms);
  Ops::layernorm_backward_accumulate(ctx, dh, s.dtmp, a.h_mid, a.mean2, a.rstd2, rows, D);  // dh = dL/dh_mid
  // attention branch: h_mid = h_in + gate1 * a
  if (a.recompute == Recompute::Attention) detail::block_attention_forward(ctx, d, w, a);
  Ops::gated_residual_backward(ctx, s.d_small, dgate1, dh, a.a, gate1, B, S, D, ms);
  Ops::linear_backward(ctx, s.dtmp, g.proj_w, g.proj_b, s.d_small, a.ao, w.proj_w, rows, D, D);
  if constexpr (has_flash_attention<Ctx, T>) {
    if (a.lse) Ops::flash_attention_backward(ctx, s.dqkv, s.dtmp, a.qkv, a.ao, a.lse, B, S, H, D / H);
    else Ops::attention_backward(ctx, s.dqkv, s.att, s.dtmp, a.qkv, a.probs, B, S, H, D / H);
  } else {
    Ops::attention_backward(ctx, s.dqkv, s.att, s.dtmp, a.qkv, a.probs, B, S, H, D / H);
  }
  Ops::linear_backward(ctx, s.d_small, g.qkv_w, g.qkv_b, s.dqkv, a.m1, w.qkv_w, rows, D, 3 * D);
  Ops::modulate_backward(ctx, s.dtmp, dshift1, dscale1, s.d_small, a.ln1, scale1, B, S, D, ms);
  Ops::layernorm_backward_accumulate(ctx, dh, s.dtmp, a.h_in, a.mean1, a.rstd1, rows, D);  // dh = dL/dh_in
  // adaLN modulation
  Ops::linear_backward(ctx, s.dsc_tmp, g.ada_w, g.ada_b, s.dmod, sc, w.ada_w, B, D, 6 * D);
  Ops::accumulate(ctx, dsc, s.dsc_tmp, std::int64_t(B) * D);
}

}  // namespace redi
