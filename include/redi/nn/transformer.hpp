// redi/nn/transformer.hpp — the DiT/SiT transformer over the fused ReDi token layout, with a
// hand-written backward pass. llm.c-style memory: one flat parameter buffer (official
// state_dict order, see param_layout.hpp), one gradient buffer of the same size, one
// activation arena sized for the largest batch seen (allocated once; later steps of that size
// allocate nothing).
//
// Input  [B, Cx + r, H, W] (image channels first, then feature channels), t [B], labels [B].
// Output [B, Cout, H, W], Cout = Cx + r, or 2 (Cx + r) with learn_sigma ([eps | v], x then z in each).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "redi/core/tensor.hpp"
#include "redi/nn/config.hpp"
#include "redi/nn/dit_block.hpp"
#include "redi/nn/fusion.hpp"
#include "redi/nn/param_layout.hpp"
#include "redi/ops/ops.hpp"
// Under nvcc, declare the CUDA overloads before the templates below: their qualified ops::
// calls bind at the point of definition, so a later include of the CUDA ops is not seen.
#if defined(__CUDACC__)
#include "redi/cuda/ops/ops.cuh"
#endif

namespace redi {

template <class T, Fusion F = Merged, Device Dev = Cpu>
class Transformer {
public:
  using value_type = T;
  using fusion = F;

  explicit Transformer(const ModelConfig& cfg, const Dev& ctx = Dev{}, std::uint64_t seed = 0)
      : cfg_(cfg), ctx_(ctx), layout_(ParamLayout::make<F>(cfg)),
        params_(Shape{layout_.total}), grads_(Shape{layout_.total}),
        pos_(Shape{cfg.tokens(), cfg.width}) {
    std::vector<T> host(static_cast<std::size_t>(layout_.total));
    layout_.initialize(host.data(), seed);
    params_.from_host(host);
    std::vector<T> pos(static_cast<std::size_t>(cfg.tokens()) * cfg.width);
    ops::pos_embed_2d(pos.data(), cfg.grid(), cfg.grid(), cfg.width);
    pos_.from_host(pos);
  }

  // ---- the Network contract used by objectives and samplers
  int channels_in() const { return cfg_.channels_in(); }
  int channels_out() const { return cfg_.channels_out(); }
  int image_channels() const { return cfg_.image_channels; }
  int feature_channels() const { return cfg_.feature_channels; }
  int height() const { return cfg_.input_size; }
  int width() const { return cfg_.input_size; }
  int null_class() const { return cfg_.null_class(); }
  const ModelConfig& config() const { return cfg_; }

  // ---- parameters
  const ParamLayout& layout() const { return layout_; }
  Tensor<T, Dev>& params() { return params_; }
  Tensor<T, Dev>& grads() { return grads_; }
  const Tensor<T, Dev>& params() const { return params_; }
  const Tensor<T, Dev>& grads() const { return grads_; }
  const Tensor<T, Dev>& pos_embed() const { return pos_; }
  std::int64_t num_params() const { return layout_.total; }
  void zero_grad() { grads_.zero(); }
  std::size_t arena_allocations() const { return arena_allocs_; }

  /// Forward pass; saves what backward needs. x [B, Cin, H, W], t [B], y [B] -> out [B, Cout, H, W].
  void forward(const T* x, const T* t, const int* y, int B, T* out) {
    ensure_batch(B);
    ops::copy(ctx_, a_.labels, y, B);
    const int D = cfg_.width, L = cfg_.tokens(), p = cfg_.patch, Hs = cfg_.input_size;
    const int S = seq(), Cx = cfg_.image_channels, r = cfg_.feature_channels;
    const std::int64_t HW = std::int64_t(Hs) * Hs;
    const T* P = params_.data();
    const std::int64_t BL = std::int64_t(B) * L;
    // --- embed tokens
    if constexpr (std::same_as<F, Merged>) {
      const int Cin = cfg_.channels_in();
      ops::patchify_forward(ctx_, a_.tok_x, x, B, Cin, Hs, Hs, p);
      ops::linear_forward(ctx_, a_.h0, a_.tok_x, P + layout_.xemb_w, P + layout_.xemb_b, int(BL),
                          Cin * p * p, D);
      ops::add_broadcast(ctx_, a_.h0, pos_.data(), B, std::int64_t(L) * D);
    } else {
      const int Cin = cfg_.channels_in();
      for (int b = 0; b < B; ++b) {
        const T* xb = x + std::int64_t(b) * Cin * HW;
        ops::patchify_forward(ctx_, a_.tok_x + std::int64_t(b) * L * Cx * p * p, xb, 1, Cx, Hs, Hs, p);
        ops::patchify_forward(ctx_, a_.tok_z + std::int64_t(b) * L * r * p * p, xb + Cx * HW, 1, r,
                              Hs, Hs, p);
      }
      ops::linear_forward(ctx_, a_.hx, a_.tok_x, P + layout_.xemb_w, P + layout_.xemb_b, int(BL),
                          Cx * p * p, D);
      ops::linear_forward(ctx_, a_.hz, a_.tok_z, P + layout_.zemb_w, P + layout_.zemb_b, int(BL),
                          r * p * p, D);
      for (int b = 0; b < B; ++b) {
        ops::copy(ctx_, a_.h0 + std::int64_t(b) * S * D, a_.hx + std::int64_t(b) * L * D, std::int64_t(L) * D);
        ops::copy(ctx_, a_.h0 + (std::int64_t(b) * S + L) * D, a_.hz + std::int64_t(b) * L * D,
                  std::int64_t(L) * D);
      }
      ops::add_broadcast(ctx_, a_.h0, pos_.data(), 2 * std::int64_t(B), std::int64_t(L) * D);
    }
    // --- conditioning c = t_emb + y_emb, sc = SiLU(c)
    ops::timestep_embedding(ctx_, a_.tfreq, t, B, cfg_.freq_dim);
    ops::linear_forward(ctx_, a_.t1, a_.tfreq, P + layout_.t0_w, P + layout_.t0_b, B, cfg_.freq_dim, D);
    ops::silu_forward(ctx_, a_.t1s, a_.t1, std::int64_t(B) * D);
    ops::linear_forward(ctx_, a_.c, a_.t1s, P + layout_.t2_w, P + layout_.t2_b, B, D, D);
    ops::embedding_forward(ctx_, a_.yemb, P + layout_.ytab, y, B, D);
    ops::add_inplace(ctx_, a_.c, a_.yemb, std::int64_t(B) * D);
    ops::silu_forward(ctx_, a_.sc, a_.c, std::int64_t(B) * D);
    // --- blocks
    const T* h = a_.h0;
    for (int i = 0; i < cfg_.depth; ++i) {
      T* next = (i + 1 < cfg_.depth) ? a_.blocks[i + 1].h_in : a_.hN;
      nn::block_forward(ctx_, dims_, weights(i), a_.sc, a_.blocks[i], h, next);
      h = next;
    }
    // --- final layer: LN, adaLN (shift, scale), linear, unpatchify
    ops::linear_forward(ctx_, a_.modf, a_.sc, P + layout_.fada_w, P + layout_.fada_b, B, D, 2 * D);
    ops::layernorm_forward(ctx_, a_.lnf, a_.meanf, a_.rstdf, a_.hN, B * S, D);
    ops::modulate_forward(ctx_, a_.mf, a_.lnf, a_.modf, a_.modf + D, B, S, D, 2 * D);
    if constexpr (std::same_as<F, Merged>) {
      const int Co = cfg_.channels_out();
      ops::linear_forward(ctx_, a_.otok_x, a_.mf, P + layout_.flin_w, P + layout_.flin_b, int(BL), D,
                          p * p * Co);
      ops::unpatchify_forward(ctx_, out, a_.otok_x, B, Co, Hs, Hs, p);
    } else {
      const int cxo = cx_out(), czo = cz_out();
      for (int b = 0; b < B; ++b) {  // gather the x-token and z-token halves
        ops::copy(ctx_, a_.mfx + std::int64_t(b) * L * D, a_.mf + std::int64_t(b) * S * D, std::int64_t(L) * D);
        ops::copy(ctx_, a_.mfz + std::int64_t(b) * L * D, a_.mf + (std::int64_t(b) * S + L) * D,
                  std::int64_t(L) * D);
      }
      ops::linear_forward(ctx_, a_.otok_x, a_.mfx, P + layout_.flin_w, P + layout_.flin_b, int(BL), D,
                          p * p * cxo);
      ops::linear_forward(ctx_, a_.otok_z, a_.mfz, P + layout_.zlin_w, P + layout_.zlin_b, int(BL), D,
                          p * p * czo);
      ops::unpatchify_forward(ctx_, a_.img_x, a_.otok_x, B, cxo, Hs, Hs, p);
      ops::unpatchify_forward(ctx_, a_.img_z, a_.otok_z, B, czo, Hs, Hs, p);
      heads_to_out(out, B);
    }
  }

  /// Backward from dL/dout [B, Cout, H, W] of the last forward; ACCUMULATES into grads().
  void backward(const T* dout) {
    const int B = batch_, D = cfg_.width, L = cfg_.tokens(), p = cfg_.patch, Hs = cfg_.input_size;
    const int S = seq(), Cx = cfg_.image_channels, r = cfg_.feature_channels;
    const std::int64_t BL = std::int64_t(B) * L, BD = std::int64_t(B) * D;
    const T* P = params_.data();
    T* G = grads_.data();
    auto& s = scratch_;
    // --- final layer
    if constexpr (std::same_as<F, Merged>) {
      const int Co = cfg_.channels_out();
      ops::unpatchify_backward(ctx_, a_.dotok_x, dout, B, Co, Hs, Hs, p);
      ops::linear_backward(ctx_, a_.dmf, G + layout_.flin_w, G + layout_.flin_b, a_.dotok_x, a_.mf,
                           P + layout_.flin_w, int(BL), D, p * p * Co);
    } else {
      const int cxo = cx_out(), czo = cz_out();
      out_to_heads(dout, B);
      ops::unpatchify_backward(ctx_, a_.dotok_x, a_.img_x, B, cxo, Hs, Hs, p);
      ops::unpatchify_backward(ctx_, a_.dotok_z, a_.img_z, B, czo, Hs, Hs, p);
      ops::linear_backward(ctx_, a_.dmfx, G + layout_.flin_w, G + layout_.flin_b, a_.dotok_x, a_.mfx,
                           P + layout_.flin_w, int(BL), D, p * p * cxo);
      ops::linear_backward(ctx_, a_.dmfz, G + layout_.zlin_w, G + layout_.zlin_b, a_.dotok_z, a_.mfz,
                           P + layout_.zlin_w, int(BL), D, p * p * czo);
      for (int b = 0; b < B; ++b) {
        ops::copy(ctx_, a_.dmf + std::int64_t(b) * S * D, a_.dmfx + std::int64_t(b) * L * D, std::int64_t(L) * D);
        ops::copy(ctx_, a_.dmf + (std::int64_t(b) * S + L) * D, a_.dmfz + std::int64_t(b) * L * D,
                  std::int64_t(L) * D);
      }
    }
    ops::modulate_backward(ctx_, s.dtmp, a_.dmodf, a_.dmodf + D, a_.dmf, a_.lnf, a_.modf + D, B, S, D, 2 * D);
    ops::layernorm_backward(ctx_, a_.dh, s.dtmp, a_.hN, a_.meanf, a_.rstdf, B * S, D);
    ops::linear_backward(ctx_, a_.dsc, G + layout_.fada_w, G + layout_.fada_b, a_.dmodf, a_.sc,
                         P + layout_.fada_w, B, D, 2 * D);
    // --- blocks, last to first
    for (int i = cfg_.depth - 1; i >= 0; --i)
      nn::block_backward(ctx_, dims_, weights(i), grads(i), a_.blocks[i], a_.sc, a_.dh, a_.dsc, s);
    // --- conditioning
    ops::silu_backward(ctx_, a_.dc, a_.dsc, a_.c, BD);
    ops::embedding_backward(ctx_, G + layout_.ytab, a_.dc, a_.labels, B, D);
    ops::linear_backward(ctx_, a_.dt1s, G + layout_.t2_w, G + layout_.t2_b, a_.dc, a_.t1s,
                         P + layout_.t2_w, B, D, D);
    ops::silu_backward(ctx_, a_.dt1, a_.dt1s, a_.t1, BD);
    ops::linear_backward(ctx_, static_cast<T*>(nullptr), G + layout_.t0_w, G + layout_.t0_b, a_.dt1,
                         a_.tfreq, P + layout_.t0_w, B, cfg_.freq_dim, D);
    // --- token embedding (no gradient to the input)
    if constexpr (std::same_as<F, Merged>) {
      ops::linear_backward(ctx_, static_cast<T*>(nullptr), G + layout_.xemb_w, G + layout_.xemb_b, a_.dh,
                           a_.tok_x, P + layout_.xemb_w, int(BL), cfg_.channels_in() * p * p, D);
    } else {
      for (int b = 0; b < B; ++b) {
        ops::copy(ctx_, a_.hx + std::int64_t(b) * L * D, a_.dh + std::int64_t(b) * S * D, std::int64_t(L) * D);
        ops::copy(ctx_, a_.hz + std::int64_t(b) * L * D, a_.dh + (std::int64_t(b) * S + L) * D,
                  std::int64_t(L) * D);
      }
      ops::linear_backward(ctx_, static_cast<T*>(nullptr), G + layout_.xemb_w, G + layout_.xemb_b, a_.hx,
                           a_.tok_x, P + layout_.xemb_w, int(BL), Cx * p * p, D);
      ops::linear_backward(ctx_, static_cast<T*>(nullptr), G + layout_.zemb_w, G + layout_.zemb_b, a_.hz,
                           a_.tok_z, P + layout_.zemb_w, int(BL), r * p * p, D);
    }
  }

private:
  int seq() const { return cfg_.tokens() * F::sequence_factor; }
  int cx_out() const { return cfg_.learn_sigma ? 2 * cfg_.image_channels : cfg_.image_channels; }
  int cz_out() const { return cfg_.learn_sigma ? 2 * cfg_.feature_channels : cfg_.feature_channels; }

  nn::BlockWeights<T> weights(int i) const {
    const T* P = params_.data();
    const auto& o = layout_.blocks[i];
    return {P + o.qkv_w, P + o.qkv_b, P + o.proj_w, P + o.proj_b, P + o.fc1_w,
            P + o.fc1_b, P + o.fc2_w, P + o.fc2_b, P + o.ada_w, P + o.ada_b};
  }
  nn::BlockGrads<T> grads(int i) {
    T* G = grads_.data();
    const auto& o = layout_.blocks[i];
    return {G + o.qkv_w, G + o.qkv_b, G + o.proj_w, G + o.proj_b, G + o.fc1_w,
            G + o.fc1_b, G + o.fc2_w, G + o.fc2_b, G + o.ada_w, G + o.ada_b};
  }

  /// Separate fusion: place the two heads' images (img_x [B, cxo, H, W], img_z [B, czo, H, W])
  /// into out [B, Cout, H, W] = [eps_x eps_z | v_x v_z] (learn_sigma adds the second half), and
  /// the reverse gather for the backward pass.
  template <class Fn>
  void for_each_head_block(int B, Fn&& fn) const {
    const int Cx = cfg_.image_channels, r = cfg_.feature_channels, Cin = Cx + r;
    const int Co = cfg_.channels_out(), cxo = cx_out(), czo = cz_out();
    const std::int64_t HW = std::int64_t(cfg_.input_size) * cfg_.input_size;
    auto blk = [&](T* img, int cimg, int c0, int n, int oc0, int b) {
      fn(img + (std::int64_t(b) * cimg + c0) * HW, (std::int64_t(b) * Co + oc0) * HW, n * HW);
    };
    for (int b = 0; b < B; ++b) {
      blk(a_.img_x, cxo, 0, Cx, 0, b);
      blk(a_.img_z, czo, 0, r, Cx, b);
      if (cfg_.learn_sigma) {
        blk(a_.img_x, cxo, Cx, Cx, Cin, b);
        blk(a_.img_z, czo, r, r, Cin + Cx, b);
      }
    }
  }
  void heads_to_out(T* out, int B) {
    for_each_head_block(B, [&](T* img, std::int64_t o, std::int64_t n) { ops::copy(ctx_, out + o, img, n); });
  }
  void out_to_heads(const T* dout, int B) {
    for_each_head_block(B, [&](T* img, std::int64_t o, std::int64_t n) { ops::copy(ctx_, img, dout + o, n); });
  }

  struct Acts {
    T *tok_x = nullptr, *tok_z = nullptr, *hx = nullptr, *hz = nullptr, *h0 = nullptr, *hN = nullptr;
    T *tfreq, *t1, *t1s, *c, *yemb, *sc;
    std::vector<nn::BlockActs<T>> blocks;
    T *modf, *lnf, *meanf, *rstdf, *mf, *mfx = nullptr, *mfz = nullptr;
    T *otok_x, *otok_z = nullptr, *img_x = nullptr, *img_z = nullptr;
    // backward
    T *dotok_x, *dotok_z = nullptr, *dmf, *dmfx = nullptr, *dmfz = nullptr, *dmodf, *dh, *dsc, *dc, *dt1s, *dt1;
    int* labels;  // the last forward's labels, for the embedding's backward
  };

  /// Size the arena for batch B (one allocation; only when B grows).
  void ensure_batch(int B) {
    REDI_CHECK(B > 0, "Transformer::forward: batch size must be > 0, got ", B);
    batch_ = B;
    const int D = cfg_.width, L = cfg_.tokens(), p = cfg_.patch, Hs = cfg_.input_size;
    const int S = seq(), Cx = cfg_.image_channels, r = cfg_.feature_channels;
    dims_ = nn::BlockDims{B, S, D, cfg_.heads, D * cfg_.mlp_ratio};
    if (B <= capacity_) return;
    const nn::BlockDims cap = dims_;
    const std::int64_t BL = std::int64_t(B) * L, ND = std::int64_t(B) * S * D, BD = std::int64_t(B) * D;
    const std::int64_t HW = std::int64_t(Hs) * Hs;
    for (int pass = 0; pass < 2; ++pass) {
      std::int64_t off = 0;
      auto grab = [&](std::int64_t n) -> T* {
        std::int64_t start = (off + 63) / 64 * 64;
        off = start + n;
        return pass == 0 ? nullptr : arena_.data() + start;
      };
      Acts a;
      if constexpr (std::same_as<F, Merged>) {
        a.tok_x = grab(BL * cfg_.channels_in() * p * p);
      } else {
        a.tok_x = grab(BL * Cx * p * p);
        a.tok_z = grab(BL * r * p * p);
        a.hx = grab(BL * D);
        a.hz = grab(BL * D);
      }
      a.tfreq = grab(std::int64_t(B) * cfg_.freq_dim);
      a.t1 = grab(BD); a.t1s = grab(BD); a.c = grab(BD); a.yemb = grab(BD); a.sc = grab(BD);
      a.blocks.resize(cfg_.depth);
      for (auto& blk : a.blocks) blk.carve(grab, cap);
      a.h0 = a.blocks[0].h_in;  // the embedding writes straight into block 0's input
      a.hN = grab(ND);
      a.modf = grab(2 * BD); a.lnf = grab(ND); a.meanf = grab(std::int64_t(B) * S);
      a.rstdf = grab(std::int64_t(B) * S); a.mf = grab(ND);
      if constexpr (std::same_as<F, Merged>) {
        a.otok_x = grab(BL * p * p * cfg_.channels_out());
        a.dotok_x = grab(BL * p * p * cfg_.channels_out());
      } else {
        a.mfx = grab(BL * D); a.mfz = grab(BL * D);
        a.dmfx = grab(BL * D); a.dmfz = grab(BL * D);
        a.otok_x = grab(BL * p * p * cx_out()); a.otok_z = grab(BL * p * p * cz_out());
        a.img_x = grab(std::int64_t(B) * cx_out() * HW); a.img_z = grab(std::int64_t(B) * cz_out() * HW);
        a.dotok_x = grab(BL * p * p * cx_out()); a.dotok_z = grab(BL * p * p * cz_out());
      }
      a.dmf = grab(ND); a.dmodf = grab(2 * BD); a.dh = grab(ND); a.dsc = grab(BD); a.dc = grab(BD);
      a.dt1s = grab(BD); a.dt1 = grab(BD);
      a.labels = reinterpret_cast<int*>(grab((std::int64_t(B) * sizeof(int) + sizeof(T) - 1) / sizeof(T)));
      scratch_.carve(grab, cap);
      if (pass == 0) {
        arena_ = Tensor<T, Dev>(Shape{off});
        ++arena_allocs_;
      } else {
        a_ = std::move(a);
      }
    }
    capacity_ = B;
  }

  ModelConfig cfg_;
  Dev ctx_;
  ParamLayout layout_;
  Tensor<T, Dev> params_, grads_, pos_, arena_;
  Acts a_;
  nn::BlockScratch<T> scratch_{};
  nn::BlockDims dims_{};
  int batch_ = 0, capacity_ = 0;
  std::size_t arena_allocs_ = 0;
};

}  // namespace redi
