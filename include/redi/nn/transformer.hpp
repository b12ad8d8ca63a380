// redi/nn/transformer.hpp — the DiT/SiT transformer over the fused ReDi token layout, with a
// hand-written backward pass. llm.c-style memory: one flat parameter buffer (official
// state_dict order, see param_layout.hpp), one gradient buffer of the same size, one
// activation arena sized for the largest batch seen (allocated once; later steps of that size
// allocate nothing), and a second, smaller one for inference (infer(): one block's
// activations, reused by every block, nothing kept for a backward pass).
//
// Precision (redi/core/precision.hpp): Transformer<float|double, F, Dev> computes in one type;
// Transformer<BF16Mixed, F, Cuda> keeps fp32 master weights (params()), fp32 gradients
// (grads()) and fp32 statistics, and runs every kernel on bf16 activations and a bf16 copy of
// the weights. That copy is refreshed at the next forward after any non-const params() access.
//
// Input  [B, Cx + r, H, W] (image channels first, then feature channels), t [B] (time_type:
// fp32 under BF16Mixed, so DDPM's integer steps stay exact), labels [B].
// Output [B, Cout, H, W], Cout = Cx + r, or 2 (Cx + r) with learn_sigma ([eps | v], x then z in each).
// With features on their own grid F (ModelConfig::feature_size) a sample is the packed
// [x (Cx*H*W) | z (r*F*F)] in and out (learn_sigma: [eps_x eps_z | v_x v_z]); the image and the
// features then have their own embedders (patch p and feature_patch()) and output heads.
#pragma once
#include <concepts>
#include <cstdint>
#include <string>
#include <vector>

#include "redi/core/precision.hpp"
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

template <class Prec, Fusion F = Merged, Device Dev = Cpu>
class Transformer {
public:
  using precision = precision_t<Prec>;
  using value_type = typename precision::compute_t;   // activations: forward/backward I/O
  using master_type = typename precision::master_t;   // params()
  using grad_type = typename precision::grad_t;       // grads()
  using stats_type = typename precision::stats_t;
  using time_type = stats_type;                        // the timesteps forward() takes
  using fusion = F;
  using device_type = Dev;

private:
  using T = value_type;
  using M = master_type;
  using G = grad_type;
  using S = stats_type;
  static constexpr bool kCopy = precision::has_compute_copy;
  static_assert(!Dev::is_host || (CpuReal<T> && !kCopy),
                "redi::Transformer<P, F, Cpu>: the CPU computes in float or double; "
                "redi::BF16Mixed needs redi::Cuda (redi/cuda/ops/ops.cuh)");
  static_assert(std::same_as<G, M>, "redi::Transformer: gradients are kept in the master type");

public:
  /// Tag for a model whose weights the caller sets (all zero until then; skips the host-side
  /// DiT initialisation, ~10 s for 675M parameters).
  struct Uninitialized {};

  explicit Transformer(const ModelConfig& cfg, const Dev& ctx = Dev{}, std::uint64_t seed = 0)
      : Transformer(cfg, ctx, Uninitialized{}) {
    std::vector<M> host(static_cast<std::size_t>(layout_.total));
    layout_.initialize(host.data(), seed);
    params_.from_host(host);
  }

  Transformer(const ModelConfig& cfg, const Dev& ctx, Uninitialized)
      : cfg_(cfg), ctx_(ctx), layout_(ParamLayout::make<F>(cfg)),
        params_(Shape{layout_.total}), grads_(Shape{layout_.total}),
        pos_(Shape{cfg.tokens(), cfg.width}) {
    if constexpr (kCopy) wc_ = Tensor<T, Dev>(Shape{layout_.total});
    std::vector<M> pos(static_cast<std::size_t>(cfg.tokens()) * cfg.width);
    ops::pos_embed_2d(pos.data(), cfg.grid(), cfg.grid(), cfg.width);
    if constexpr (std::same_as<T, M>) {
      pos_.from_host(pos);
    } else {
      std::vector<T> pt(pos.size());
      ops::convert(cpu, pt.data(), pos.data(), std::int64_t(pos.size()));
      pos_.from_host(pt);
    }
  }

  // ---- the Network contract used by objectives and samplers
  int channels_in() const { return cfg_.channels_in(); }
  int channels_out() const { return cfg_.channels_out(); }
  int image_channels() const { return cfg_.image_channels; }
  int feature_channels() const { return cfg_.feature_channels; }
  int height() const { return cfg_.input_size; }
  int width() const { return cfg_.input_size; }
  int feature_height() const { return cfg_.feature_grid(); }
  int feature_width() const { return cfg_.feature_grid(); }
  int null_class() const { return cfg_.null_class(); }
  const ModelConfig& config() const { return cfg_; }
  const Dev& context() const { return ctx_; }

  // ---- parameters
  const ParamLayout& layout() const { return layout_; }
  /// The master weights. A non-const access marks the compute copy (BF16Mixed) stale.
  Tensor<M, Dev>& params() { stale_ = true; return params_; }
  Tensor<G, Dev>& grads() { return grads_; }
  const Tensor<M, Dev>& params() const { return params_; }
  const Tensor<G, Dev>& grads() const { return grads_; }
  const Tensor<T, Dev>& pos_embed() const { return pos_; }
  std::int64_t num_params() const { return layout_.total; }
  void zero_grad() { grads_.zero(); }
  /// Number of arena growths (training and inference arenas; each growth is one allocation
  /// per element type).
  std::size_t arena_allocations() const { return arena_allocs_; }
  /// Elements held by the training / inference arenas (compute type + statistics type).
  std::int64_t train_arena_elems() const { return arena_.numel() + aux_.numel(); }
  std::int64_t infer_arena_elems() const { return iarena_.numel() + iaux_.numel(); }
  /// Whether the last arena carve chose the device's fused flash attention.
  bool uses_flash_attention() const { return flash_; }

  /// Training forward; saves what backward needs. x [B, Cin, H, W], t [B], y [B] -> out.
  void forward(const T* x, const time_type* t, const int* y, int B, T* out) {
    ensure(a_, arena_, aux_, capacity_, B, /*train=*/true);
    batch_ = B;
    run_forward(a_, x, t, y, B, out, /*train=*/true);
  }

  /// Inference forward: same output as forward() (bit-identical on the CPU), keeps nothing
  /// for a backward pass and needs one block's activations instead of depth blocks'.
  void infer(const T* x, const time_type* t, const int* y, int B, T* out) {
    ensure(ia_, iarena_, iaux_, icapacity_, B, /*train=*/false);
    run_forward(ia_, x, t, y, B, out, /*train=*/false);
  }

  /// Backward from dL/dout [B, Cout, H, W] of the last forward; ACCUMULATES into grads().
  void backward(const T* dout) {
    REDI_CHECK(batch_ > 0, "Transformer::backward: call forward() first");
    const int B = batch_, D = cfg_.width, L = cfg_.tokens(), p = cfg_.patch, Hs = cfg_.input_size;
    const int S_ = seq(), Cx = cfg_.image_channels, r = cfg_.feature_channels;
    const std::int64_t BL = std::int64_t(B) * L, BD = std::int64_t(B) * D;
    const nn::BlockDims dims = dims_for(B);
    const T* P = weights_ptr();
    G* Gp = grads_.data();
    auto& a = a_;
    auto& s = scratch_;
    // --- final layer
    if (!split()) {
      const int Co = cfg_.channels_out();
      ops::unpatchify_backward(ctx_, a.dotok_x, dout, B, Co, Hs, Hs, p);
      ops::linear_backward(ctx_, a.dmf, Gp + layout_.flin_w, Gp + layout_.flin_b, a.dotok_x, a.mf,
                           P + layout_.flin_w, int(BL), D, p * p * Co);
    } else {
      const int cxo = cx_out(), czo = cz_out(), Fz = cfg_.feature_grid(), pz = cfg_.feature_patch();
      out_to_heads(a, dout, B);
      ops::unpatchify_backward(ctx_, a.dotok_x, a.img_x, B, cxo, Hs, Hs, p);
      ops::unpatchify_backward(ctx_, a.dotok_z, a.img_z, B, czo, Fz, Fz, pz);
      if constexpr (kSeparate) {
        ops::linear_backward(ctx_, a.dmfx, Gp + layout_.flin_w, Gp + layout_.flin_b, a.dotok_x, a.mfx,
                             P + layout_.flin_w, int(BL), D, p * p * cxo);
        ops::linear_backward(ctx_, a.dmfz, Gp + layout_.zlin_w, Gp + layout_.zlin_b, a.dotok_z, a.mfz,
                             P + layout_.zlin_w, int(BL), D, pz * pz * czo);
        for (int b = 0; b < B; ++b) {
          ops::copy(ctx_, a.dmf + std::int64_t(b) * S_ * D, a.dmfx + std::int64_t(b) * L * D, std::int64_t(L) * D);
          ops::copy(ctx_, a.dmf + (std::int64_t(b) * S_ + L) * D, a.dmfz + std::int64_t(b) * L * D,
                    std::int64_t(L) * D);
        }
      } else {  // Merged, two heads on the same tokens: their input gradients add
        ops::linear_backward(ctx_, a.dmf, Gp + layout_.flin_w, Gp + layout_.flin_b, a.dotok_x, a.mf,
                             P + layout_.flin_w, int(BL), D, p * p * cxo);
        ops::linear_backward(ctx_, a.dmfz, Gp + layout_.zlin_w, Gp + layout_.zlin_b, a.dotok_z, a.mf,
                             P + layout_.zlin_w, int(BL), D, pz * pz * czo);
        ops::add_inplace(ctx_, a.dmf, a.dmfz, BL * D);
      }
    }
    ops::modulate_backward(ctx_, s.dtmp, a.dmodf, a.dmodf + D, a.dmf, a.lnf, a.modf + D, B, S_, D, 2 * D);
    ops::layernorm_backward(ctx_, a.dh, s.dtmp, a.hN, a.meanf, a.rstdf, B * S_, D);
    ops::linear_backward(ctx_, a.dsc, Gp + layout_.fada_w, Gp + layout_.fada_b, a.dmodf, a.sc,
                         P + layout_.fada_w, B, D, 2 * D);
    // --- blocks, last to first
    for (int i = cfg_.depth - 1; i >= 0; --i)
      nn::block_backward(ctx_, dims, weights(i), grads(i), a.blocks[i], a.sc, a.dh, a.dsc, s);
    // --- conditioning
    ops::silu_backward(ctx_, a.dc, a.dsc, a.c, BD);
    ops::embedding_backward(ctx_, Gp + layout_.ytab, a.dc, a.labels, B, D);
    ops::linear_backward(ctx_, a.dt1s, Gp + layout_.t2_w, Gp + layout_.t2_b, a.dc, a.t1s,
                         P + layout_.t2_w, B, D, D);
    ops::silu_backward(ctx_, a.dt1, a.dt1s, a.t1, BD);
    ops::linear_backward(ctx_, static_cast<T*>(nullptr), Gp + layout_.t0_w, Gp + layout_.t0_b, a.dt1,
                         a.tfreq, P + layout_.t0_w, B, cfg_.freq_dim, D);
    // --- token embedding (no gradient to the input)
    if (!split()) {
      ops::linear_backward(ctx_, static_cast<T*>(nullptr), Gp + layout_.xemb_w, Gp + layout_.xemb_b, a.dh,
                           a.tok_x, P + layout_.xemb_w, int(BL), cfg_.channels_in() * p * p, D);
    } else {
      const int pz = cfg_.feature_patch();
      const T* dhx = a.dh;  // Merged: both embeddings were added into the same tokens
      const T* dhz = a.dh;
      if constexpr (kSeparate) {
        for (int b = 0; b < B; ++b) {
          ops::copy(ctx_, a.hx + std::int64_t(b) * L * D, a.dh + std::int64_t(b) * S_ * D, std::int64_t(L) * D);
          ops::copy(ctx_, a.hz + std::int64_t(b) * L * D, a.dh + (std::int64_t(b) * S_ + L) * D,
                    std::int64_t(L) * D);
        }
        dhx = a.hx;
        dhz = a.hz;
      }
      ops::linear_backward(ctx_, static_cast<T*>(nullptr), Gp + layout_.xemb_w, Gp + layout_.xemb_b, dhx,
                           a.tok_x, P + layout_.xemb_w, int(BL), Cx * p * p, D);
      ops::linear_backward(ctx_, static_cast<T*>(nullptr), Gp + layout_.zemb_w, Gp + layout_.zemb_b, dhz,
                           a.tok_z, P + layout_.zemb_w, int(BL), r * pz * pz, D);
    }
  }

private:
  struct Acts {
    T *tok_x = nullptr, *tok_z = nullptr, *hx = nullptr, *hz = nullptr, *h0 = nullptr, *hN = nullptr;
    T *tfreq, *t1, *t1s, *c, *yemb, *sc;
    S *tfreq_s = nullptr;  // fp32 timestep features before the bf16 cast (BF16Mixed)
    std::vector<nn::BlockActs<T, S>> blocks;
    T *modf, *lnf, *mf, *mfx = nullptr, *mfz = nullptr;
    S *meanf, *rstdf;
    T *otok_x, *otok_z = nullptr, *img_x = nullptr, *img_z = nullptr;
    // backward (training arena only)
    T *dotok_x = nullptr, *dotok_z = nullptr, *dmf = nullptr, *dmfx = nullptr, *dmfz = nullptr,
      *dmodf = nullptr, *dh = nullptr, *dsc = nullptr, *dc = nullptr, *dt1s = nullptr, *dt1 = nullptr;
    int* labels;  // the last forward's labels, for the embedding's backward
  };

  static constexpr bool kSeparate = std::same_as<F, Separate>;
  /// Separate embedders and heads for image and features (Separate fusion, or own feature grid).
  bool split() const { return kSeparate || cfg_.own_feature_grid(); }
  int seq() const { return cfg_.tokens() * F::sequence_factor; }
  int cx_out() const { return cfg_.learn_sigma ? 2 * cfg_.image_channels : cfg_.image_channels; }
  int cz_out() const { return cfg_.learn_sigma ? 2 * cfg_.feature_channels : cfg_.feature_channels; }
  nn::BlockDims dims_for(int B) const {
    return nn::BlockDims{B, seq(), cfg_.width, cfg_.heads, cfg_.width * cfg_.mlp_ratio};
  }

  /// The weights the kernels read: the master buffer, or its (refreshed) compute copy.
  const T* weights_ptr() const {
    if constexpr (kCopy) return wc_.data();
    else return params_.data();
  }
  void sync_compute_copy() {
    if constexpr (kCopy) {
      if (stale_) ops::convert(ctx_, wc_.data(), params_.data(), layout_.total);
    }
    stale_ = false;
  }

  nn::BlockWeights<T> weights(int i) const {
    const T* P = weights_ptr();
    const auto& o = layout_.blocks[i];
    return {P + o.qkv_w, P + o.qkv_b, P + o.proj_w, P + o.proj_b, P + o.fc1_w,
            P + o.fc1_b, P + o.fc2_w, P + o.fc2_b, P + o.ada_w, P + o.ada_b};
  }
  nn::BlockGrads<G> grads(int i) {
    G* Gp = grads_.data();
    const auto& o = layout_.blocks[i];
    return {Gp + o.qkv_w, Gp + o.qkv_b, Gp + o.proj_w, Gp + o.proj_b, Gp + o.fc1_w,
            Gp + o.fc1_b, Gp + o.fc2_w, Gp + o.fc2_b, Gp + o.ada_w, Gp + o.ada_b};
  }

  /// The forward pass over the acts of one arena. train: every block keeps its activations;
  /// otherwise block 0's acts serve every block (h ping-pongs through hN).
  void run_forward(Acts& a, const T* x, const time_type* t, const int* y, int B, T* out, bool train) {
    sync_compute_copy();
    ops::copy(ctx_, a.labels, y, B);
    const int D = cfg_.width, L = cfg_.tokens(), p = cfg_.patch, Hs = cfg_.input_size;
    const int S_ = seq(), Cx = cfg_.image_channels, r = cfg_.feature_channels;
    const std::int64_t HW = std::int64_t(Hs) * Hs;
    const T* P = weights_ptr();
    const std::int64_t BL = std::int64_t(B) * L;
    const nn::BlockDims dims = dims_for(B);
    // --- embed tokens
    if (!split()) {
      const int Cin = cfg_.channels_in();
      ops::patchify_forward(ctx_, a.tok_x, x, B, Cin, Hs, Hs, p);
      ops::linear_forward(ctx_, a.h0, a.tok_x, P + layout_.xemb_w, P + layout_.xemb_b, int(BL),
                          Cin * p * p, D);
      ops::add_broadcast(ctx_, a.h0, pos_.data(), B, std::int64_t(L) * D);
    } else {
      const int Fz = cfg_.feature_grid(), pz = cfg_.feature_patch();
      const std::int64_t nin = cfg_.input_elems();
      for (int b = 0; b < B; ++b) {  // the packed sample [x | z]
        const T* xb = x + std::int64_t(b) * nin;
        ops::patchify_forward(ctx_, a.tok_x + std::int64_t(b) * L * Cx * p * p, xb, 1, Cx, Hs, Hs, p);
        ops::patchify_forward(ctx_, a.tok_z + std::int64_t(b) * L * r * pz * pz, xb + Cx * HW, 1, r,
                              Fz, Fz, pz);
      }
      if constexpr (kSeparate) {  // [x tokens ; z tokens], each half with the position table
        ops::linear_forward(ctx_, a.hx, a.tok_x, P + layout_.xemb_w, P + layout_.xemb_b, int(BL),
                            Cx * p * p, D);
        ops::linear_forward(ctx_, a.hz, a.tok_z, P + layout_.zemb_w, P + layout_.zemb_b, int(BL),
                            r * pz * pz, D);
        for (int b = 0; b < B; ++b) {
          ops::copy(ctx_, a.h0 + std::int64_t(b) * S_ * D, a.hx + std::int64_t(b) * L * D, std::int64_t(L) * D);
          ops::copy(ctx_, a.h0 + (std::int64_t(b) * S_ + L) * D, a.hz + std::int64_t(b) * L * D,
                    std::int64_t(L) * D);
        }
        ops::add_broadcast(ctx_, a.h0, pos_.data(), 2 * std::int64_t(B), std::int64_t(L) * D);
      } else {  // Merged: h = x W_x + z W_z (+ positions)
        ops::linear_forward(ctx_, a.h0, a.tok_x, P + layout_.xemb_w, P + layout_.xemb_b, int(BL),
                            Cx * p * p, D);
        ops::linear_forward(ctx_, a.hz, a.tok_z, P + layout_.zemb_w, P + layout_.zemb_b, int(BL),
                            r * pz * pz, D);
        ops::add_inplace(ctx_, a.h0, a.hz, BL * D);
        ops::add_broadcast(ctx_, a.h0, pos_.data(), B, std::int64_t(L) * D);
      }
    }
    // --- conditioning c = t_emb + y_emb, sc = SiLU(c)
    if constexpr (std::same_as<T, S>) {
      ops::timestep_embedding(ctx_, a.tfreq, t, B, cfg_.freq_dim);
    } else {  // fp32 features of the fp32 timesteps, then one cast
      ops::timestep_embedding(ctx_, a.tfreq_s, t, B, cfg_.freq_dim);
      ops::convert(ctx_, a.tfreq, a.tfreq_s, std::int64_t(B) * cfg_.freq_dim);
    }
    ops::linear_forward(ctx_, a.t1, a.tfreq, P + layout_.t0_w, P + layout_.t0_b, B, cfg_.freq_dim, D);
    ops::silu_forward(ctx_, a.t1s, a.t1, std::int64_t(B) * D);
    ops::linear_forward(ctx_, a.c, a.t1s, P + layout_.t2_w, P + layout_.t2_b, B, D, D);
    ops::embedding_forward(ctx_, a.yemb, P + layout_.ytab, y, B, D);
    ops::add_inplace(ctx_, a.c, a.yemb, std::int64_t(B) * D);
    ops::silu_forward(ctx_, a.sc, a.c, std::int64_t(B) * D);
    // --- blocks
    const T* h = a.h0;
    for (int i = 0; i < cfg_.depth; ++i) {
      if (train) {
        T* next = (i + 1 < cfg_.depth) ? a.blocks[i + 1].h_in : a.hN;
        nn::block_forward(ctx_, dims, weights(i), a.sc, a.blocks[i], h, next);
        h = next;
      } else {
        nn::block_forward(ctx_, dims, weights(i), a.sc, a.blocks[0], h, a.hN);
        h = a.hN;
      }
    }
    // --- final layer: LN, adaLN (shift, scale), linear, unpatchify
    ops::linear_forward(ctx_, a.modf, a.sc, P + layout_.fada_w, P + layout_.fada_b, B, D, 2 * D);
    ops::layernorm_forward(ctx_, a.lnf, a.meanf, a.rstdf, a.hN, B * S_, D);
    ops::modulate_forward(ctx_, a.mf, a.lnf, a.modf, a.modf + D, B, S_, D, 2 * D);
    if (!split()) {
      const int Co = cfg_.channels_out();
      ops::linear_forward(ctx_, a.otok_x, a.mf, P + layout_.flin_w, P + layout_.flin_b, int(BL), D,
                          p * p * Co);
      ops::unpatchify_forward(ctx_, out, a.otok_x, B, Co, Hs, Hs, p);
    } else {
      const int cxo = cx_out(), czo = cz_out(), Fz = cfg_.feature_grid(), pz = cfg_.feature_patch();
      const T* mx = a.mf;  // Merged: both heads read the same tokens
      const T* mz = a.mf;
      if constexpr (kSeparate) {
        for (int b = 0; b < B; ++b) {  // gather the x-token and z-token halves
          ops::copy(ctx_, a.mfx + std::int64_t(b) * L * D, a.mf + std::int64_t(b) * S_ * D, std::int64_t(L) * D);
          ops::copy(ctx_, a.mfz + std::int64_t(b) * L * D, a.mf + (std::int64_t(b) * S_ + L) * D,
                    std::int64_t(L) * D);
        }
        mx = a.mfx;
        mz = a.mfz;
      }
      ops::linear_forward(ctx_, a.otok_x, mx, P + layout_.flin_w, P + layout_.flin_b, int(BL), D,
                          p * p * cxo);
      ops::linear_forward(ctx_, a.otok_z, mz, P + layout_.zlin_w, P + layout_.zlin_b, int(BL), D,
                          pz * pz * czo);
      ops::unpatchify_forward(ctx_, a.img_x, a.otok_x, B, cxo, Hs, Hs, p);
      ops::unpatchify_forward(ctx_, a.img_z, a.otok_z, B, czo, Fz, Fz, pz);
      heads_to_out(a, out, B);
    }
  }

  /// Separate heads: place the two heads' images (img_x [B, cxo, H, W], img_z [B, czo, F, F])
  /// into the packed out [B, nout] = [eps_x eps_z | v_x v_z] (learn_sigma adds the second half),
  /// and the reverse gather for the backward pass.
  template <class Fn>
  void for_each_head_block(const Acts& a, int B, Fn&& fn) const {
    const int Cx = cfg_.image_channels, r = cfg_.feature_channels, cxo = cx_out(), czo = cz_out();
    const std::int64_t HW = std::int64_t(cfg_.input_size) * cfg_.input_size;
    const std::int64_t FF = std::int64_t(cfg_.feature_grid()) * cfg_.feature_grid();
    const std::int64_t nin = cfg_.input_elems(), nout = cfg_.learn_sigma ? 2 * nin : nin, nx = Cx * HW;
    for (int b = 0; b < B; ++b) {
      const std::int64_t o = std::int64_t(b) * nout;
      fn(a.img_x + std::int64_t(b) * cxo * HW, o, nx);
      fn(a.img_z + std::int64_t(b) * czo * FF, o + nx, r * FF);
      if (cfg_.learn_sigma) {
        fn(a.img_x + (std::int64_t(b) * cxo + Cx) * HW, o + nin, nx);
        fn(a.img_z + (std::int64_t(b) * czo + r) * FF, o + nin + nx, r * FF);
      }
    }
  }
  void heads_to_out(const Acts& a, T* out, int B) {
    for_each_head_block(a, B, [&](T* img, std::int64_t o, std::int64_t n) { ops::copy(ctx_, out + o, img, n); });
  }
  void out_to_heads(const Acts& a, const T* dout, int B) {
    for_each_head_block(a, B, [&](T* img, std::int64_t o, std::int64_t n) { ops::copy(ctx_, img, dout + o, n); });
  }

  /// Whether the device's fused flash attention serves this model at batch B.
  bool flash_for(int B) const {
    if constexpr (ops::has_flash_attention<Dev, T>)
      return ops::flash_attention_supported<T>(ctx_, B, seq(), cfg_.heads, cfg_.width / cfg_.heads);
    else
      return false;
  }

  /// Point a's buffers into two arenas (compute type T and statistics type S) sized for batch
  /// B; one allocation per arena, only when B grows past `cap`.
  void ensure(Acts& acts, Tensor<T, Dev>& arena, Tensor<S, Dev>& aux, int& cap, int B, bool train) {
    REDI_CHECK(B > 0, "Transformer::forward: batch size must be > 0, got ", B);
    if (B <= cap) return;
    const bool flash = flash_for(B);
    const nn::BlockDims d = dims_for(B);
    const int D = cfg_.width, L = cfg_.tokens(), p = cfg_.patch, Hs = cfg_.input_size;
    const int Cx = cfg_.image_channels, r = cfg_.feature_channels;
    const std::int64_t BL = std::int64_t(B) * L, ND = d.N() * D, BD = std::int64_t(B) * D;
    const std::int64_t HW = std::int64_t(Hs) * Hs, BS = std::int64_t(B) * seq();
    const std::int64_t pz = cfg_.feature_patch(), FF = std::int64_t(cfg_.feature_grid()) * cfg_.feature_grid();
    for (int pass = 0; pass < 2; ++pass) {
      std::int64_t off = 0, off_s = 0;
      auto grab = [&](std::int64_t n) -> T* {
        std::int64_t start = (off + 63) / 64 * 64;
        off = start + n;
        return pass == 0 ? nullptr : arena.data() + start;
      };
      auto grab_s = [&](std::int64_t n) -> S* {
        std::int64_t start = (off_s + 63) / 64 * 64;
        off_s = start + n;
        return pass == 0 ? nullptr : aux.data() + start;
      };
      Acts a;
      if (!split()) {
        a.tok_x = grab(BL * cfg_.channels_in() * p * p);
      } else {
        a.tok_x = grab(BL * Cx * p * p);
        a.tok_z = grab(BL * r * pz * pz);
        if (kSeparate) a.hx = grab(BL * D);
        a.hz = grab(BL * D);
      }
      a.tfreq = grab(std::int64_t(B) * cfg_.freq_dim);
      if constexpr (!std::same_as<T, S>) a.tfreq_s = grab_s(std::int64_t(B) * cfg_.freq_dim);
      a.t1 = grab(BD); a.t1s = grab(BD); a.c = grab(BD); a.yemb = grab(BD); a.sc = grab(BD);
      a.blocks.resize(train ? cfg_.depth : 1);
      for (auto& blk : a.blocks) blk.carve(grab, grab_s, d, flash);
      a.h0 = a.blocks[0].h_in;  // the embedding writes straight into block 0's input
      a.hN = grab(ND);
      a.modf = grab(2 * BD); a.lnf = grab(ND); a.meanf = grab_s(BS); a.rstdf = grab_s(BS);
      a.mf = grab(ND);
      if (!split()) {
        a.otok_x = grab(BL * p * p * cfg_.channels_out());
        if (train) a.dotok_x = grab(BL * p * p * cfg_.channels_out());
      } else {
        if (kSeparate) { a.mfx = grab(BL * D); a.mfz = grab(BL * D); }
        a.otok_x = grab(BL * p * p * cx_out()); a.otok_z = grab(BL * pz * pz * cz_out());
        a.img_x = grab(std::int64_t(B) * cx_out() * HW); a.img_z = grab(std::int64_t(B) * cz_out() * FF);
        if (train) {
          if (kSeparate) a.dmfx = grab(BL * D);
          a.dmfz = grab(BL * D);
          a.dotok_x = grab(BL * p * p * cx_out()); a.dotok_z = grab(BL * pz * pz * cz_out());
        }
      }
      if (train) {
        a.dmf = grab(ND); a.dmodf = grab(2 * BD); a.dh = grab(ND); a.dsc = grab(BD); a.dc = grab(BD);
        a.dt1s = grab(BD); a.dt1 = grab(BD);
        scratch_.carve(grab, d, flash);
      }
      a.labels = reinterpret_cast<int*>(grab_s((std::int64_t(B) * sizeof(int) + sizeof(S) - 1) / sizeof(S)));
      if (pass == 0) {
        arena.reallocate(Shape{off});
        aux.reallocate(Shape{off_s});
        ++arena_allocs_;
      } else {
        acts = std::move(a);
      }
    }
    cap = B;
    flash_ = flash;
  }

  ModelConfig cfg_;
  Dev ctx_;
  ParamLayout layout_;
  Tensor<M, Dev> params_;
  Tensor<G, Dev> grads_;
  Tensor<T, Dev> pos_, wc_;        // position table; compute copy of params_ (BF16Mixed)
  Tensor<T, Dev> arena_, iarena_;  // training / inference activations
  Tensor<S, Dev> aux_, iaux_;      // their statistics (and labels)
  Acts a_, ia_;
  nn::BlockScratch<T> scratch_{};
  int batch_ = 0, capacity_ = 0, icapacity_ = 0;
  bool stale_ = true, flash_ = false;
  std::size_t arena_allocs_ = 0;
};

}  // namespace redi
