// redi/nn/transformer.hpp — the DiT/SiT transformer over the fused ReDi token layout, with a
// hand-written backward pass. llm.c-style memory: one flat parameter buffer (official
// state_dict order, see param_layout.hpp), one gradient buffer of the same size, one
// activation arena (a Workspace, core/workspace.hpp) laid out for the largest batch seen
// (allocated once; later steps of that size allocate nothing), and a second, smaller one for
// inference (infer(): one block's activations, reused by every block, nothing kept for a
// backward pass). Every op runs through Backend<Dev> (ops/backend.hpp).
// Selective activation recomputation (set_recompute, nn/recompute.hpp): the training arena
// keeps only what the policy saves per block plus one shared set of the recomputed buffers;
// backward() re-runs those forward parts block by block (the same results, bit for bit).
//
// Precision (redi/core/precision.hpp): Transformer<float|double, F, Dev> computes in one type;
// Transformer<BF16Mixed, F, Cuda> keeps fp32 master weights (params()), fp32 gradients
// (grads()) and fp32 statistics, and runs every kernel on bf16 activations and a bf16 copy of
// the weights. That copy is refreshed at the next forward after any non-const params() access.
// The residual stream (h0 .. hN), its gradient dh and the conditioning gradient dsc summed over
// the blocks are residual_type (fp32 under BF16Mixed, as in PyTorch autocast); the token
// embedding is computed in the compute type (emb) and converted once into h0, and dh / dsc are
// converted once to the compute type where a GEMM or SiLU's backward reads them.
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
#include "redi/core/workspace.hpp"
#include "redi/nn/config.hpp"
#include "redi/nn/dit_block.hpp"
#include "redi/nn/fusion.hpp"
#include "redi/nn/param_layout.hpp"
#include "redi/nn/recompute.hpp"
#include "redi/ops/backend.hpp"
#include "redi/ops/embedding_fixed.hpp"  // the position table (host)

namespace redi {

template <class Prec, Fusion F = Merged, Device Dev = Cpu>
class Transformer {
public:
  using precision = precision_t<Prec>;
  using value_type = typename precision::compute_t;   // activations: forward/backward I/O
  using master_type = typename precision::master_t;   // params()
  using grad_type = typename precision::grad_t;       // grads()
  using stats_type = typename precision::stats_t;
  using residual_type = typename precision::residual_t;  // h, dh, dsc (see above)
  using time_type = stats_type;                        // the timesteps forward() takes
  using fusion = F;
  using device_type = Dev;

private:
  using T = value_type;
  using M = master_type;
  using G = grad_type;
  using S = stats_type;
  using R = residual_type;
  static constexpr bool kCopy = precision::has_compute_copy;  // mixed precision: BF16Mixed's code paths
  static_assert(kCopy || std::same_as<R, T>,
                "redi::Transformer: a single-type precision keeps its residual stream in that type");
  static_assert(!Dev::is_host || (CpuReal<T> && !kCopy),
                "redi::Transformer<P, F, Cpu>: the CPU computes in float or double; "
                "redi::BF16Mixed needs redi::Cuda (redi/cuda/backend.cuh)");
  static_assert(std::same_as<G, M>, "redi::Transformer: gradients are kept in the master type");
  static_assert(OpsBackend<Dev, T, S, G, R>,
                "redi::Transformer<P, F, Dev>: no ops backend for this device and precision in this translation "
                "unit. Include <redi/ops/cpu_backend.hpp> (or <redi/redi.hpp>) for redi::Cpu, or "
                "<redi/cuda/backend.cuh> (compiled by nvcc) for redi::Cuda; see redi/ops/backend.hpp");
  using Ops = Backend<Dev>;  // the ops of this device

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
      : cfg_(cfg), ctx_(ctx), layout_(TransformerLayout::make<F>(cfg)),
        params_(Shape{layout_.total}), grads_(Shape{layout_.total}),
        pos_(Shape{cfg.tokens(), cfg.width}) {
    if constexpr (kCopy) wc_ = Tensor<T, Dev>(Shape{layout_.total});
    std::vector<M> pos(static_cast<std::size_t>(cfg.tokens()) * cfg.width);
    ops::pos_embed_2d(pos.data(), cfg.grid(), cfg.grid(), cfg.width);
    if constexpr (!kCopy) {
      pos_.from_host(pos);
    } else {  // the device's conversion (round to the compute type)
      Tensor<M, Dev> pm(Shape{cfg.tokens(), cfg.width});
      pm.from_host(pos);
      Ops::convert(ctx_, pos_.data(), pm.data(), pm.numel());
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
  const TransformerLayout& layout() const { return layout_; }
  /// The master weights. A non-const access marks the compute copy (BF16Mixed) stale.
  Tensor<M, Dev>& params() { stale_ = true; return params_; }
  Tensor<G, Dev>& grads() { return grads_; }
  const Tensor<M, Dev>& params() const { return params_; }
  const Tensor<G, Dev>& grads() const { return grads_; }
  const Tensor<T, Dev>& pos_embed() const { return pos_; }
  std::int64_t num_params() const { return layout_.total; }
  /// For an optimiser that writes the compute copy in its own pass (train::Optimizer::step):
  /// the copy to write (null without one), then compute_copy_written() once it holds the
  /// updated master weights (no conversion pass before the next forward).
  T* compute_copy_target() {
    if constexpr (kCopy) return wc_.data();
    else return nullptr;
  }
  void compute_copy_written() { stale_ = false; }
  void zero_grad() { grads_.zero(); }
  /// Number of arena growths (training and inference arenas; each growth is one allocation).
  std::size_t arena_allocations() const { return train_ws_.allocations() + infer_ws_.allocations(); }
  /// Bytes held by the training / inference arenas.
  std::size_t train_arena_bytes() const { return train_ws_.capacity(); }
  std::size_t infer_arena_bytes() const { return infer_ws_.capacity(); }
  /// Whether the last arena carve chose the device's fused flash attention.
  bool uses_flash_attention() const { return flash_; }

  /// Selective activation recomputation (nn/recompute.hpp) for the training forward/backward:
  /// which block activations forward() keeps and which backward() re-runs. Changing the policy
  /// releases the training arena (the next forward() lays it out anew, at the policy's size)
  /// and cancels a pending backward(). Gradients and losses do not depend on the policy.
  void set_recompute(Recompute r) {
    if (r == recompute_) return;
    recompute_ = r;
    train_ws_ = Workspace<Dev>{};
    a_ = Acts{};
    scratch_ = BlockScratch<T, R>{};
    capacity_ = 0;
    batch_ = 0;
  }
  Recompute recompute() const { return recompute_; }

  /// Training forward; saves what backward needs. x [B, Cin, H, W], t [B], y [B] -> out.
  void forward(const T* x, const time_type* t, const int* y, int B, T* out) {
    ensure(a_, train_ws_, capacity_, B, /*train=*/true);
    batch_ = B;
    run_forward(a_, x, t, y, B, out, /*train=*/true);
  }

  /// Inference forward: same output as forward() (bit-identical on the CPU), keeps nothing
  /// for a backward pass and needs one block's activations instead of depth blocks'.
  void infer(const T* x, const time_type* t, const int* y, int B, T* out) {
    ensure(ia_, infer_ws_, icapacity_, B, /*train=*/false);
    run_forward(ia_, x, t, y, B, out, /*train=*/false);
  }

  /// Backward from dL/dout [B, Cout, H, W] of the last forward; ACCUMULATES into grads().
  void backward(const T* dout) {
    REDI_CHECK(batch_ > 0, "Transformer::backward: call forward() first");
    const int B = batch_, D = cfg_.width, L = cfg_.tokens(), p = cfg_.patch, Hs = cfg_.input_size;
    const int S_ = seq(), Cx = cfg_.image_channels, r = cfg_.feature_channels;
    const std::int64_t BL = std::int64_t(B) * L, BD = std::int64_t(B) * D;
    const BlockDims dims = dims_for(B);
    const T* P = weights_ptr();
    G* Gp = grads_.data();
    auto& a = a_;
    auto& s = scratch_;
    // --- final layer
    if (!split()) {
      const int Co = cfg_.channels_out();
      Ops::unpatchify_backward(ctx_, a.dotok_x, dout, B, Co, Hs, Hs, p);
      Ops::linear_backward(ctx_, a.dmf, Gp + layout_.flin_w, Gp + layout_.flin_b, a.dotok_x, a.mf,
                           P + layout_.flin_w, int(BL), D, p * p * Co);
    } else {
      const int cxo = cx_out(), czo = cz_out(), Fz = cfg_.feature_grid(), pz = cfg_.feature_patch();
      out_to_heads(a, dout, B);
      Ops::unpatchify_backward(ctx_, a.dotok_x, a.img_x, B, cxo, Hs, Hs, p);
      Ops::unpatchify_backward(ctx_, a.dotok_z, a.img_z, B, czo, Fz, Fz, pz);
      if constexpr (kSeparate) {
        Ops::linear_backward(ctx_, a.dmfx, Gp + layout_.flin_w, Gp + layout_.flin_b, a.dotok_x, a.mfx,
                             P + layout_.flin_w, int(BL), D, p * p * cxo);
        Ops::linear_backward(ctx_, a.dmfz, Gp + layout_.zlin_w, Gp + layout_.zlin_b, a.dotok_z, a.mfz,
                             P + layout_.zlin_w, int(BL), D, pz * pz * czo);
        join_halves(a.dmf, a.dmfx, a.dmfz, B);
      } else {  // Merged, two heads on the same tokens: their input gradients add
        Ops::linear_backward(ctx_, a.dmf, Gp + layout_.flin_w, Gp + layout_.flin_b, a.dotok_x, a.mf,
                             P + layout_.flin_w, int(BL), D, p * p * cxo);
        Ops::linear_backward(ctx_, a.dmfz, Gp + layout_.zlin_w, Gp + layout_.zlin_b, a.dotok_z, a.mf,
                             P + layout_.zlin_w, int(BL), D, pz * pz * czo);
        Ops::add_inplace(ctx_, a.dmf, a.dmfz, BL * D);
      }
    }
    Ops::modulate_backward(ctx_, s.dtmp, a.dmodf, a.dmodf + D, a.dmf, a.lnf, a.modf + D, B, S_, D, 2 * D);
    Ops::layernorm_backward(ctx_, a.dh, s.dtmp, a.hN, a.meanf, a.rstdf, B * S_, D);
    if constexpr (kCopy) {  // the final layer's share starts the R sum over the blocks
      Ops::linear_backward(ctx_, s.dsc_tmp, Gp + layout_.fada_w, Gp + layout_.fada_b, a.dmodf, a.sc,
                           P + layout_.fada_w, B, D, 2 * D);
      Ops::convert(ctx_, a.dsc, s.dsc_tmp, BD);
    } else {
      Ops::linear_backward(ctx_, a.dsc, Gp + layout_.fada_w, Gp + layout_.fada_b, a.dmodf, a.sc,
                           P + layout_.fada_w, B, D, 2 * D);
    }
    // --- blocks, last to first
    for (int i = cfg_.depth - 1; i >= 0; --i)
      block_backward(ctx_, dims, weights(i), grads(i), a.blocks[i], a.sc, a.dh, a.dsc, s);
    // --- conditioning (dsc, summed over the blocks in R, read in the compute type)
    const T* dsc = nullptr;
    if constexpr (kCopy) {
      Ops::convert(ctx_, s.dsc_tmp, a.dsc, BD);
      dsc = s.dsc_tmp;
    } else {
      dsc = a.dsc;
    }
    Ops::silu_backward(ctx_, a.dc, dsc, a.c, BD);
    Ops::embedding_backward(ctx_, Gp + layout_.ytab, a.dc, a.labels, B, D);
    Ops::linear_backward(ctx_, a.dt1s, Gp + layout_.t2_w, Gp + layout_.t2_b, a.dc, a.t1s,
                         P + layout_.t2_w, B, D, D);
    Ops::silu_backward(ctx_, a.dt1, a.dt1s, a.t1, BD);
    Ops::linear_backward(ctx_, static_cast<T*>(nullptr), Gp + layout_.t0_w, Gp + layout_.t0_b, a.dt1,
                         a.tfreq, P + layout_.t0_w, B, cfg_.freq_dim, D);
    // --- token embedding (no gradient to the input); dL/demb = dh, in the compute type
    const T* dh = nullptr;
    if constexpr (kCopy) {
      Ops::convert(ctx_, s.d_small, a.dh, dims.N() * D);
      dh = s.d_small;
    } else {
      dh = a.dh;
    }
    if (!split()) {
      Ops::linear_backward(ctx_, static_cast<T*>(nullptr), Gp + layout_.xemb_w, Gp + layout_.xemb_b, dh,
                           a.tok_x, P + layout_.xemb_w, int(BL), cfg_.channels_in() * p * p, D);
    } else {
      const int pz = cfg_.feature_patch();
      const T* dhx = dh;  // Merged: both embeddings were added into the same tokens
      const T* dhz = dh;
      if constexpr (kSeparate) {
        split_halves(a.hx, a.hz, dh, B);
        dhx = a.hx;
        dhz = a.hz;
      }
      Ops::linear_backward(ctx_, static_cast<T*>(nullptr), Gp + layout_.xemb_w, Gp + layout_.xemb_b, dhx,
                           a.tok_x, P + layout_.xemb_w, int(BL), Cx * p * p, D);
      Ops::linear_backward(ctx_, static_cast<T*>(nullptr), Gp + layout_.zemb_w, Gp + layout_.zemb_b, dhz,
                           a.tok_z, P + layout_.zemb_w, int(BL), r * pz * pz, D);
    }
  }

private:
  struct Acts {
    T *tok_x = nullptr, *tok_z = nullptr, *hx = nullptr, *hz = nullptr;
    T *emb = nullptr;            // the token embedding (compute type; h0 itself when R == T)
    R *h0 = nullptr, *hN = nullptr;  // residual stream in and out of the blocks
    T *tfreq, *t1, *t1s, *c, *yemb, *sc;
    S *tfreq_s = nullptr;  // fp32 timestep features before the bf16 cast (BF16Mixed)
    std::vector<BlockActs<T, S, R>> blocks;
    BlockActs<T, S, R> recomputed{};  // the buffers every block recomputes (training, policy != None)
    T *modf, *lnf, *mf, *mfx = nullptr, *mfz = nullptr;
    S *meanf, *rstdf;
    T *otok_x, *otok_z = nullptr, *img_x = nullptr, *img_z = nullptr;
    // backward (training arena only)
    T *dotok_x = nullptr, *dotok_z = nullptr, *dmf = nullptr, *dmfx = nullptr, *dmfz = nullptr,
      *dmodf = nullptr, *dc = nullptr, *dt1s = nullptr, *dt1 = nullptr;
    R *dh = nullptr, *dsc = nullptr;  // residual gradient, conditioning gradient (summed over blocks)
    int* labels;  // the last forward's labels, for the embedding's backward
  };

  static constexpr bool kSeparate = std::same_as<F, Separate>;
  /// Separate embedders and heads for image and features (Separate fusion, or own feature grid).
  bool split() const { return kSeparate || cfg_.own_feature_grid(); }
  int seq() const { return cfg_.tokens() * F::sequence_factor; }
  int cx_out() const { return cfg_.learn_sigma ? 2 * cfg_.image_channels : cfg_.image_channels; }
  int cz_out() const { return cfg_.learn_sigma ? 2 * cfg_.feature_channels : cfg_.feature_channels; }
  BlockDims dims_for(int B) const {
    return BlockDims{B, seq(), cfg_.width, cfg_.heads, cfg_.width * cfg_.mlp_ratio};
  }

  /// The weights the kernels read: the master buffer, or its (refreshed) compute copy.
  const T* weights_ptr() const {
    if constexpr (kCopy) return wc_.data();
    else return params_.data();
  }
  void sync_compute_copy() {
    if constexpr (kCopy) {
      if (stale_) Ops::convert(ctx_, wc_.data(), params_.data(), layout_.total);
    }
    stale_ = false;
  }

  BlockWeights<T> weights(int i) const {
    const T* P = weights_ptr();
    const auto& o = layout_.blocks[i];
    return {P + o.qkv_w, P + o.qkv_b, P + o.proj_w, P + o.proj_b, P + o.fc1_w,
            P + o.fc1_b, P + o.fc2_w, P + o.fc2_b, P + o.ada_w, P + o.ada_b};
  }
  BlockGrads<G> grads(int i) {
    G* Gp = grads_.data();
    const auto& o = layout_.blocks[i];
    return {Gp + o.qkv_w, Gp + o.qkv_b, Gp + o.proj_w, Gp + o.proj_b, Gp + o.fc1_w,
            Gp + o.fc1_b, Gp + o.fc2_w, Gp + o.fc2_b, Gp + o.ada_w, Gp + o.ada_b};
  }

  /// The forward pass over the acts of one arena. train: every block keeps its activations;
  /// otherwise block 0's acts serve every block (h ping-pongs through hN).
  void run_forward(Acts& a, const T* x, const time_type* t, const int* y, int B, T* out, bool train) {
    sync_compute_copy();
    Ops::copy(ctx_, a.labels, y, B);
    const int D = cfg_.width, L = cfg_.tokens(), p = cfg_.patch, Hs = cfg_.input_size;
    const int S_ = seq(), Cx = cfg_.image_channels, r = cfg_.feature_channels;
    const std::int64_t HW = std::int64_t(Hs) * Hs;
    const T* P = weights_ptr();
    const std::int64_t BL = std::int64_t(B) * L;
    const BlockDims dims = dims_for(B);
    // --- embed tokens
    if (!split()) {
      const int Cin = cfg_.channels_in();
      Ops::patchify_forward(ctx_, a.tok_x, x, B, Cin, Hs, Hs, p);
      Ops::linear_forward(ctx_, a.emb, a.tok_x, P + layout_.xemb_w, P + layout_.xemb_b, int(BL),
                          Cin * p * p, D);
      Ops::add_broadcast(ctx_, a.emb, pos_.data(), B, std::int64_t(L) * D);
    } else {
      // Each modality of the packed sample [x | z] gathered into the output heads' image buffers
      // (free until the final layer writes them), then patchified on its own grid.
      const int Fz = cfg_.feature_grid(), pz = cfg_.feature_patch();
      const std::int64_t nin = cfg_.input_elems(), FF = std::int64_t(Fz) * Fz;
      Ops::copy_strided(ctx_, a.img_x, Cx * HW, x, nin, B, Cx * HW);
      Ops::copy_strided(ctx_, a.img_z, r * FF, x + Cx * HW, nin, B, r * FF);
      Ops::patchify_forward(ctx_, a.tok_x, a.img_x, B, Cx, Hs, Hs, p);
      Ops::patchify_forward(ctx_, a.tok_z, a.img_z, B, r, Fz, Fz, pz);
      if constexpr (kSeparate) {  // [x tokens ; z tokens], each half with the position table
        Ops::linear_forward(ctx_, a.hx, a.tok_x, P + layout_.xemb_w, P + layout_.xemb_b, int(BL),
                            Cx * p * p, D);
        Ops::linear_forward(ctx_, a.hz, a.tok_z, P + layout_.zemb_w, P + layout_.zemb_b, int(BL),
                            r * pz * pz, D);
        join_halves(a.emb, a.hx, a.hz, B);
        Ops::add_broadcast(ctx_, a.emb, pos_.data(), 2 * std::int64_t(B), std::int64_t(L) * D);
      } else {  // Merged: h = x W_x + z W_z (+ positions)
        Ops::linear_forward(ctx_, a.emb, a.tok_x, P + layout_.xemb_w, P + layout_.xemb_b, int(BL),
                            Cx * p * p, D);
        Ops::linear_forward(ctx_, a.hz, a.tok_z, P + layout_.zemb_w, P + layout_.zemb_b, int(BL),
                            r * pz * pz, D);
        Ops::add_inplace(ctx_, a.emb, a.hz, BL * D);
        Ops::add_broadcast(ctx_, a.emb, pos_.data(), B, std::int64_t(L) * D);
      }
    }
    if constexpr (kCopy) Ops::convert(ctx_, a.h0, a.emb, dims.N() * D);  // into the residual stream
    // --- conditioning c = t_emb + y_emb, sc = SiLU(c)
    if constexpr (!kCopy) {
      Ops::timestep_embedding(ctx_, a.tfreq, t, B, cfg_.freq_dim);
    } else {  // fp32 features of the fp32 timesteps, then one cast
      Ops::timestep_embedding(ctx_, a.tfreq_s, t, B, cfg_.freq_dim);
      Ops::convert(ctx_, a.tfreq, a.tfreq_s, std::int64_t(B) * cfg_.freq_dim);
    }
    Ops::linear_forward(ctx_, a.t1, a.tfreq, P + layout_.t0_w, P + layout_.t0_b, B, cfg_.freq_dim, D);
    Ops::silu_forward(ctx_, a.t1s, a.t1, std::int64_t(B) * D);
    Ops::linear_forward(ctx_, a.c, a.t1s, P + layout_.t2_w, P + layout_.t2_b, B, D, D);
    Ops::embedding_forward(ctx_, a.yemb, P + layout_.ytab, y, B, D);
    Ops::add_inplace(ctx_, a.c, a.yemb, std::int64_t(B) * D);
    Ops::silu_forward(ctx_, a.sc, a.c, std::int64_t(B) * D);
    // --- blocks
    const R* h = a.h0;
    for (int i = 0; i < cfg_.depth; ++i) {
      if (train) {
        R* next = (i + 1 < cfg_.depth) ? a.blocks[i + 1].h_in : a.hN;
        block_forward(ctx_, dims, weights(i), a.sc, a.blocks[i], h, next);
        h = next;
      } else {
        block_forward(ctx_, dims, weights(i), a.sc, a.blocks[0], h, a.hN);
        h = a.hN;
      }
    }
    // --- final layer: LN, adaLN (shift, scale), linear, unpatchify
    Ops::linear_forward(ctx_, a.modf, a.sc, P + layout_.fada_w, P + layout_.fada_b, B, D, 2 * D);
    Ops::layernorm_forward(ctx_, a.lnf, a.meanf, a.rstdf, a.hN, B * S_, D);
    Ops::modulate_forward(ctx_, a.mf, a.lnf, a.modf, a.modf + D, B, S_, D, 2 * D);
    if (!split()) {
      const int Co = cfg_.channels_out();
      Ops::linear_forward(ctx_, a.otok_x, a.mf, P + layout_.flin_w, P + layout_.flin_b, int(BL), D,
                          p * p * Co);
      Ops::unpatchify_forward(ctx_, out, a.otok_x, B, Co, Hs, Hs, p);
    } else {
      const int cxo = cx_out(), czo = cz_out(), Fz = cfg_.feature_grid(), pz = cfg_.feature_patch();
      const T* mx = a.mf;  // Merged: both heads read the same tokens
      const T* mz = a.mf;
      if constexpr (kSeparate) {
        split_halves(a.mfx, a.mfz, a.mf, B);  // the x-token and z-token halves
        mx = a.mfx;
        mz = a.mfz;
      }
      Ops::linear_forward(ctx_, a.otok_x, mx, P + layout_.flin_w, P + layout_.flin_b, int(BL), D,
                          p * p * cxo);
      Ops::linear_forward(ctx_, a.otok_z, mz, P + layout_.zlin_w, P + layout_.zlin_b, int(BL), D,
                          pz * pz * czo);
      Ops::unpatchify_forward(ctx_, a.img_x, a.otok_x, B, cxo, Hs, Hs, p);
      Ops::unpatchify_forward(ctx_, a.img_z, a.otok_z, B, czo, Fz, Fz, pz);
      heads_to_out(a, out, B);
    }
  }

  /// Separate fusion's token sequence [B, 2L, D] (per sample: the L x tokens, then the L z
  /// tokens) from its halves hx, hz [B, L, D], and back.
  void join_halves(T* seq, const T* hx, const T* hz, int B) {
    const std::int64_t LD = std::int64_t(cfg_.tokens()) * cfg_.width;
    Ops::copy_strided(ctx_, seq, 2 * LD, hx, LD, B, LD);
    Ops::copy_strided(ctx_, seq + LD, 2 * LD, hz, LD, B, LD);
  }
  void split_halves(T* hx, T* hz, const T* seq, int B) {
    const std::int64_t LD = std::int64_t(cfg_.tokens()) * cfg_.width;
    Ops::copy_strided(ctx_, hx, LD, seq, 2 * LD, B, LD);
    Ops::copy_strided(ctx_, hz, LD, seq + LD, 2 * LD, B, LD);
  }

  /// Separate heads: the two heads' images img_x [B, cxo, H, W] and img_z [B, czo, F, F] are
  /// blocks of the packed out [B, nout] = [eps_x eps_z | v_x v_z] (learn_sigma adds the second
  /// half). fn(img block, its per-sample stride, offset in out, elements per sample).
  template <class Fn>
  void for_each_head_block(const Acts& a, Fn&& fn) const {
    const int Cx = cfg_.image_channels, r = cfg_.feature_channels;
    const std::int64_t HW = std::int64_t(cfg_.input_size) * cfg_.input_size;
    const std::int64_t FF = std::int64_t(cfg_.feature_grid()) * cfg_.feature_grid();
    const std::int64_t nin = cfg_.input_elems(), nx = Cx * HW, sx = cx_out() * HW, sz = cz_out() * FF;
    fn(a.img_x, sx, 0, nx);
    fn(a.img_z, sz, nx, r * FF);
    if (cfg_.learn_sigma) {
      fn(a.img_x + nx, sx, nin, nx);
      fn(a.img_z + r * FF, sz, nin + nx, r * FF);
    }
  }
  std::int64_t out_elems() const { return cfg_.learn_sigma ? 2 * cfg_.input_elems() : cfg_.input_elems(); }
  void heads_to_out(const Acts& a, T* out, int B) {
    const std::int64_t so = out_elems();
    for_each_head_block(a, [&](T* img, std::int64_t si, std::int64_t o, std::int64_t n) {
      Ops::copy_strided(ctx_, out + o, so, img, si, B, n);
    });
  }
  void out_to_heads(const Acts& a, const T* dout, int B) {
    const std::int64_t so = out_elems();
    for_each_head_block(a, [&](T* img, std::int64_t si, std::int64_t o, std::int64_t n) {
      Ops::copy_strided(ctx_, img, si, dout + o, so, B, n);
    });
  }

  /// Whether the device's fused flash attention serves this model at batch B (train: forward and
  /// backward; inference: the forward alone — no backward plan is built for an inference batch).
  bool flash_for(int B, bool train) const {
    if constexpr (has_flash_attention<Dev, T>)
      return Ops::template flash_attention_supported<T>(ctx_, B, seq(), cfg_.heads, cfg_.width / cfg_.heads, train);
    else
      return false;
  }

  /// Points acts' buffers into `ws` (core/workspace.hpp) for batch B; the arena grows (one
  /// allocation) only when B exceeds the largest batch `cap` it was laid out for.
  /// An allocation failure while growing (Workspace::reserve frees the old arena first, so the
  /// peak stays one arena) throws after making the model safe and usable again: the old buffers
  /// are gone, so nothing may point at them — acts is re-laid out for the previous batch `cap`
  /// (an allocation of the size that existed before), or, if that fails too, emptied with cap
  /// 0 (the next forward carves anew); a pending backward() is cancelled either way (its
  /// activations were in the freed arena). Weights and gradients are untouched.
  void ensure(Acts& acts, Workspace<Dev>& ws, int& cap, int B, bool train) {
    REDI_CHECK(B > 0, "Transformer::forward: batch size must be > 0, got ", B);
    if (B <= cap) return;
    const bool flash = flash_for(B, train);
    try {
      ws.carve([&](Workspace<Dev>& w) { acts = layout_acts(w, B, train, flash); });
    } catch (...) {
      const int old = cap;
      acts = Acts{};
      cap = 0;
      if (train) {
        batch_ = 0;
        scratch_ = BlockScratch<T, R>{};
      }
      if (old > 0) {
        try {
          const bool f = flash_for(old, train);
          ws.carve([&](Workspace<Dev>& w) { acts = layout_acts(w, old, train, f); });
          cap = old;
          flash_ = f;
        } catch (...) {
          acts = Acts{};
        }
      }
      throw;
    }
    cap = B;
    flash_ = flash;
  }

  /// Every buffer of a forward (and, with `train`, backward) pass at batch B.
  Acts layout_acts(Workspace<Dev>& w, int B, bool train, bool flash) {
    const BlockDims d = dims_for(B);
    const int D = cfg_.width, L = cfg_.tokens(), p = cfg_.patch, Hs = cfg_.input_size;
    const int Cx = cfg_.image_channels, r = cfg_.feature_channels;
    const std::int64_t BL = std::int64_t(B) * L, ND = d.N() * D, BD = std::int64_t(B) * D;
    const std::int64_t HW = std::int64_t(Hs) * Hs, BS = std::int64_t(B) * seq();
    const std::int64_t pz = cfg_.feature_patch(), FF = std::int64_t(cfg_.feature_grid()) * cfg_.feature_grid();
    auto t = [&](std::int64_t n) { return w.template take<T>(n); };
    auto st = [&](std::int64_t n) { return w.template take<S>(n); };
    Acts a;
    if (!split()) {
      a.tok_x = t(BL * cfg_.channels_in() * p * p);
    } else {
      a.tok_x = t(BL * Cx * p * p);
      a.tok_z = t(BL * r * pz * pz);
      if (kSeparate) a.hx = t(BL * D);
      a.hz = t(BL * D);
    }
    a.tfreq = t(std::int64_t(B) * cfg_.freq_dim);
    if constexpr (kCopy) a.tfreq_s = st(std::int64_t(B) * cfg_.freq_dim);
    a.t1 = t(BD); a.t1s = t(BD); a.c = t(BD); a.yemb = t(BD); a.sc = t(BD);
    a.blocks.resize(train ? cfg_.depth : 1);
    const Recompute rc = train ? recompute_ : Recompute::None;
    a.recomputed.carve_shared(w, d, flash, rc);
    for (auto& blk : a.blocks) blk.carve(w, d, flash, rc, &a.recomputed);
    a.h0 = a.blocks[0].h_in;  // block 0's input
    if constexpr (kCopy) a.emb = t(ND);  // converted into h0
    else a.emb = a.h0;                   // the embedding writes straight into h0
    a.hN = w.template take<R>(ND);
    a.modf = t(2 * BD); a.lnf = t(ND); a.meanf = st(BS); a.rstdf = st(BS);
    a.mf = t(ND);
    if (!split()) {
      a.otok_x = t(BL * p * p * cfg_.channels_out());
      if (train) a.dotok_x = t(BL * p * p * cfg_.channels_out());
    } else {
      if (kSeparate) { a.mfx = t(BL * D); a.mfz = t(BL * D); }
      a.otok_x = t(BL * p * p * cx_out()); a.otok_z = t(BL * pz * pz * cz_out());
      a.img_x = t(std::int64_t(B) * cx_out() * HW); a.img_z = t(std::int64_t(B) * cz_out() * FF);
      if (train) {
        if (kSeparate) a.dmfx = t(BL * D);
        a.dmfz = t(BL * D);
        a.dotok_x = t(BL * p * p * cx_out()); a.dotok_z = t(BL * pz * pz * cz_out());
      }
    }
    if (train) {
      a.dmf = t(ND); a.dmodf = t(2 * BD); a.dc = t(BD);
      a.dh = w.template take<R>(ND); a.dsc = w.template take<R>(BD);
      a.dt1s = t(BD); a.dt1 = t(BD);
      scratch_.carve(w, d, flash);
    }
    a.labels = w.template take<int>(B);
    return a;
  }

  ModelConfig cfg_;
  Dev ctx_;
  TransformerLayout layout_;
  Tensor<M, Dev> params_;
  Tensor<G, Dev> grads_;
  Tensor<T, Dev> pos_, wc_;        // position table; compute copy of params_ (BF16Mixed)
  Workspace<Dev> train_ws_, infer_ws_;  // training / inference activations (the memory planner)
  Acts a_, ia_;
  BlockScratch<T, R> scratch_{};
  int batch_ = 0, capacity_ = 0, icapacity_ = 0;
  bool stale_ = true, flash_ = false;
  Recompute recompute_ = Recompute::None;
};

}  // namespace redi
