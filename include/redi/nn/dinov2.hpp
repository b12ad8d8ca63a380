// redi/nn/dinov2.hpp — DINOv2 with registers (Darcet et al., "Vision Transformers Need
// Registers"), the frozen feature encoder of ReDi: DINOv2-B/14 with 4 registers by default
// (facebook/dinov2-with-registers-base; torch hub dinov2_vitb14_reg), inference only.
//
// Parameters are held under the Hugging Face transformers names (Dinov2WithRegistersModel's
// state_dict), so a model.safetensors / pytorch_model.bin loads one-to-one
// (redi/weights/dinov2.hpp). The forward pass, for normalised pixels x [B, 3, H, W]
// (H, W multiples of the patch p; gh = H/p, gw = W/p, P = gh*gw patches, R registers):
//
//   e      = Conv_p(x) (projection, kernel = stride = p)                       [B, P, D]
//   pos    = position_embeddings [1 + G*G, D] (G = 37 for B/14: trained at 518 px);
//            pos_patch = bicubic-antialiased resize of the G x G table to gh x gw
//            (ops::resize_bicubic_aa: torch interpolate(size=(gh, gw), mode='bicubic',
//            align_corners=False, antialias=True), as transformers' Dinov2WithRegisters and the
//            torch hub reg models (interpolate_offset 0, interpolate_antialias True) do; the
//            legacy DINO/DINOv2 form scale_factor = (g + 0.1) / G is `pos_offset = 0.1`)
//   h0     = [cls + pos[0] ; register_tokens (no position) ; e + pos_patch]   [B, 1+R+P, D]
//            (the table is added to cls and patches BEFORE the registers are inserted)
//   block  h += lambda1 * Dense(Attn(Q, K, V of LN1(h)))      (LayerScale lambda1 [D])
//          h += lambda2 * Fc2(GELU_erf(Fc1(LN2(h))))          (LayerScale lambda2 [D])
//          LN = nn.LayerNorm(D, eps 1e-6) with affine; attention: H heads, scale hd^-0.5, q/k/v
//          with biases (packed: query, key, value are adjacent in the flat buffer, so
//          [Wq; Wk; Wv] is one [3D, D] matrix and the op contract's qkv layout)
//   out    = LayerNorm(h)[:, 1+R:, :]                          [B, P, D] (x_norm_patchtokens)
//
// mask_token is a parameter of the checkpoint (iBOT masking in pre-training) and is loaded but
// never used. Memory: one flat parameter buffer (ParamLayout) and an inference arena (Workspace)
// for one chunk of images, reused by every block; encode() runs any batch in chunks.
#pragma once
#include <algorithm>
#include <array>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <filesystem>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "redi/core/dtype.hpp"
#include "redi/core/tensor.hpp"
#include "redi/core/workspace.hpp"
#include "redi/nn/param_layout.hpp"
#include "redi/ops/cpu_backend.hpp"
#include "redi/ops/resize_aa.hpp"

namespace redi {

struct Dinov2Config {
  int channels = 3;
  int patch = 14;
  int width = 768;     // D (hidden_size)
  int depth = 12;      // num_hidden_layers
  int heads = 12;      // num_attention_heads
  int mlp_dim = 3072;  // D * mlp_ratio
  int registers = 4;   // num_register_tokens
  int pos_grid = 37;   // the stored position table covers pos_grid x pos_grid patches (518 px)
  double ln_eps = 1e-6;
  double pos_offset = 0.0;  // 0: interpolate(size=(gh, gw)); > 0: scale_factor (g + offset) / pos_grid

  /// DINOv2-B/14 with 4 registers (facebook/dinov2-with-registers-base).
  static Dinov2Config base() { return {}; }

  void validate() const {
    REDI_CHECK(channels > 0 && patch > 0 && depth > 0 && pos_grid > 0 && registers >= 0 && mlp_dim > 0,
               "Dinov2Config: bad sizes (", str(), ")");
    REDI_CHECK(heads > 0 && width > 0 && width % heads == 0, "Dinov2Config: width ", width,
               " must be a positive multiple of heads ", heads);
    REDI_CHECK(ln_eps > 0 && pos_offset >= 0, "Dinov2Config: ln_eps ", ln_eps, ", pos_offset ", pos_offset);
  }
  std::string str() const {
    std::ostringstream os;
    os << "channels=" << channels << ",patch=" << patch << ",width=" << width << ",depth=" << depth
       << ",heads=" << heads << ",mlp_dim=" << mlp_dim << ",registers=" << registers << ",pos_grid=" << pos_grid
       << ",ln_eps=" << ln_eps << ",pos_offset=" << pos_offset;
    return os.str();
  }
};

/// The parameters of Dinov2WithRegistersModel in its state_dict order, under the transformers
/// names and shapes. query, key and value (weights, then biases) are adjacent, so each layer's
/// [Wq; Wk; Wv] is one [3D, D] matrix and [bq; bk; bv] one [3D] vector in the flat buffer.
/// (Init is unused: the weights always come from a file or randomize().)
inline ParamLayout dinov2_param_layout(const Dinov2Config& cfg) {
  cfg.validate();
  ParamLayout L;
  const std::int64_t D = cfg.width, Dm = cfg.mlp_dim, p = cfg.patch, G = cfg.pos_grid;
  auto add = [&](std::string name, Shape s) { L.add(std::move(name), s, Init::Zero); };
  add("embeddings.cls_token", Shape{1, 1, D});
  add("embeddings.mask_token", Shape{1, D});
  if (cfg.registers > 0) add("embeddings.register_tokens", Shape{1, cfg.registers, D});
  add("embeddings.position_embeddings", Shape{1, 1 + G * G, D});
  add("embeddings.patch_embeddings.projection.weight", Shape{D, cfg.channels, p, p});
  add("embeddings.patch_embeddings.projection.bias", Shape{D});
  for (int i = 0; i < cfg.depth; ++i) {
    const std::string b = "encoder.layer." + std::to_string(i) + ".";
    add(b + "norm1.weight", Shape{D});
    add(b + "norm1.bias", Shape{D});
    for (const char* n : {"query", "key", "value"}) add(b + "attention.attention." + n + ".weight", Shape{D, D});
    for (const char* n : {"query", "key", "value"}) add(b + "attention.attention." + n + ".bias", Shape{D});
    add(b + "attention.output.dense.weight", Shape{D, D});
    add(b + "attention.output.dense.bias", Shape{D});
    add(b + "layer_scale1.lambda1", Shape{D});
    add(b + "norm2.weight", Shape{D});
    add(b + "norm2.bias", Shape{D});
    add(b + "mlp.fc1.weight", Shape{Dm, D});
    add(b + "mlp.fc1.bias", Shape{Dm});
    add(b + "mlp.fc2.weight", Shape{D, Dm});
    add(b + "mlp.fc2.bias", Shape{D});
    add(b + "layer_scale2.lambda1", Shape{D});
  }
  add("layernorm.weight", Shape{D});
  add("layernorm.bias", Shape{D});
  return L;
}

/// A network's weights file, specialised per network type in redi/weights/ (also declared by
/// nn/vit_encoder.hpp; redeclaring a template is harmless).
template <class Net>
struct WeightsFile;

template <CpuReal T>
class Dinov2 {
public:
  using value_type = T;

  explicit Dinov2(const Dinov2Config& cfg) : cfg_(cfg), layout_(dinov2_param_layout(cfg)) {
    auto at = [&](const std::string& name) { return layout_.find(name)->offset; };
    cls_ = at("embeddings.cls_token");
    if (cfg_.registers > 0) reg_ = at("embeddings.register_tokens");
    pos_ = at("embeddings.position_embeddings");
    pe_w_ = at("embeddings.patch_embeddings.projection.weight");
    pe_b_ = at("embeddings.patch_embeddings.projection.bias");
    for (int i = 0; i < cfg_.depth; ++i) {
      const std::string b = "encoder.layer." + std::to_string(i) + ".";
      Offs o{};
      o.ln1_w = at(b + "norm1.weight");
      o.ln1_b = at(b + "norm1.bias");
      o.qkv_w = at(b + "attention.attention.query.weight");  // [Wq; Wk; Wv] = one [3D, D] matrix
      o.qkv_b = at(b + "attention.attention.query.bias");
      o.proj_w = at(b + "attention.output.dense.weight");
      o.proj_b = at(b + "attention.output.dense.bias");
      o.ls1 = at(b + "layer_scale1.lambda1");
      o.ln2_w = at(b + "norm2.weight");
      o.ln2_b = at(b + "norm2.bias");
      o.fc1_w = at(b + "mlp.fc1.weight");
      o.fc1_b = at(b + "mlp.fc1.bias");
      o.fc2_w = at(b + "mlp.fc2.weight");
      o.fc2_b = at(b + "mlp.fc2.bias");
      o.ls2 = at(b + "layer_scale2.lambda1");
      blocks_.push_back(o);
    }
    lnf_w_ = at("layernorm.weight");
    lnf_b_ = at("layernorm.bias");
    params_ = Tensor<T>(Shape{layout_.total});
  }

  // ---- configuration and parameters
  const Dinov2Config& config() const { return cfg_; }
  const std::vector<ParamEntry>& entries() const { return layout_.entries; }
  const ParamEntry* find(const std::string& name) const { return layout_.find(name); }
  Tensor<T>& params() { return params_; }
  const Tensor<T>& params() const { return params_; }
  std::int64_t num_params() const { return layout_.total; }
  std::size_t arena_allocations() const { return ws_.allocations(); }
  /// Call after writing params() directly (the resized position table is cached per grid).
  void params_changed() { pos_cache_grid_ = {0, 0}; }

  /// Random weights for tests and benchmarks: every tensor N(0, std) (Philox, keyed by seed),
  /// then LayerNorm weights and LayerScales += 1 so the network is well conditioned.
  void randomize(std::uint64_t seed, double std = 0.02) {
    layout_.randomize(params_.data(), seed, std);
    for (const auto& e : layout_.entries)
      if (e.name.ends_with("norm1.weight") || e.name.ends_with("norm2.weight") || e.name == "layernorm.weight" ||
          e.name.ends_with(".lambda1"))
        for (std::int64_t i = 0; i < e.numel(); ++i) params_.data()[e.offset + i] += T(1);
    params_changed();
  }

  // ---- files (redi/weights/dinov2.hpp; the template parameter defers the lookup so that nn/
  // does not depend on io/)
  template <class File = WeightsFile<Dinov2>>
  auto param_refs() {
    return File::refs(*this);
  }
  /// Loads a transformers checkpoint (model.safetensors or pytorch_model.bin) strictly.
  template <class File = WeightsFile<Dinov2>>
  void load_weights(const std::filesystem::path& path) {
    File::load_weights(*this, path);
  }

  // ---- forward

  int feature_dim() const { return cfg_.width; }
  std::array<int, 2> grid(int h, int w) const { return {h / cfg_.patch, w / cfg_.patch}; }

  /// Normalised pixels [B, C, H, W] -> patch tokens out [B, gh*gw, D] (the final LayerNorm's
  /// patch rows). Runs in chunks of chunk_batch() images.
  void forward(const T* pixels, int B, int H, int W, T* out) {
    REDI_CHECK(B > 0 && H > 0 && W > 0 && H % cfg_.patch == 0 && W % cfg_.patch == 0, "Dinov2::forward: input ",
               B, "x", cfg_.channels, "x", H, "x", W, " (H and W must be positive multiples of the patch ",
               cfg_.patch, ")");
    const auto g = grid(H, W);
    const std::int64_t img = std::int64_t(cfg_.channels) * H * W, tok = std::int64_t(g[0]) * g[1] * cfg_.width;
    for (int b0 = 0; b0 < B; b0 += chunk_) {
      const int n = std::min(chunk_, B - b0);
      forward_chunk(pixels + b0 * img, n, H, W, out + b0 * tok);
    }
  }

  int chunk_batch() const { return chunk_; }
  void set_chunk_batch(int b) {
    REDI_CHECK(b > 0, "Dinov2::set_chunk_batch: ", b);
    chunk_ = b;
  }

  /// The position rows added to the patch tokens for a gh x gw grid, [gh*gw, D] (cached).
  const std::vector<T>& patch_positions(int gh, int gw) {
    if (pos_cache_grid_ == std::array<int, 2>{gh, gw}) return pos_cache_;
    const int G = cfg_.pos_grid, D = cfg_.width;
    const T* table = params_.data() + pos_ + D;  // [G*G, D], row 0 (cls) skipped
    std::vector<T> planes(std::size_t(D) * G * G), res(std::size_t(D) * gh * gw);
    for (int t = 0; t < G * G; ++t)
      for (int c = 0; c < D; ++c) planes[std::size_t(c) * G * G + std::size_t(t)] = table[std::size_t(t) * D + c];
    const double sh = cfg_.pos_offset > 0 ? double(G) / (double(gh) + cfg_.pos_offset) : 0.0;
    const double sw = cfg_.pos_offset > 0 ? double(G) / (double(gw) + cfg_.pos_offset) : 0.0;
    ops::resize_bicubic_aa(planes.data(), D, G, G, res.data(), gh, gw, sh, sw);
    pos_cache_.assign(std::size_t(gh) * gw * D, T(0));
    for (int t = 0; t < gh * gw; ++t)
      for (int c = 0; c < D; ++c) pos_cache_[std::size_t(t) * D + c] = res[std::size_t(c) * gh * gw + std::size_t(t)];
    pos_cache_grid_ = {gh, gw};
    return pos_cache_;
  }

private:
  struct Offs {
    std::int64_t ln1_w, ln1_b, qkv_w, qkv_b, proj_w, proj_b, ls1, ln2_w, ln2_b, fc1_w, fc1_b, fc2_w, fc2_b, ls2;
  };
  struct Acts {
    T *tok, *emb, *h, *ln, *qkv, *probs, *ao, *f1;
  };

  /// Lays the arena out for B images of P patches (one allocation, only when either grows).
  void ensure(int B, int P) {
    if (B <= capacity_batch_ && P <= capacity_patches_) return;
    B = std::max(B, capacity_batch_);
    P = std::max(P, capacity_patches_);
    const int D = cfg_.width, L = 1 + cfg_.registers + P, p = cfg_.patch;
    const std::int64_t N = std::int64_t(B) * L, NP = std::int64_t(B) * P;
    ws_.carve([&](Workspace<Cpu>& w) {
      auto t = [&](std::int64_t n) { return w.take<T>(n); };
      Acts a;
      a.tok = t(NP * cfg_.channels * p * p);
      a.emb = t(NP * D);
      a.h = t(N * D);
      a.ln = t(N * D);
      a.qkv = t(N * 3 * D);
      a.probs = t(std::int64_t(B) * cfg_.heads * L * L);
      a.ao = t(N * D);
      a.f1 = t(N * cfg_.mlp_dim);
      a_ = a;
    });
    capacity_patches_ = P;
    capacity_batch_ = B;
  }

  void forward_chunk(const T* x, int B, int H, int W, T* out) {
    const int D = cfg_.width, p = cfg_.patch, C = cfg_.channels, R = cfg_.registers;
    const auto g = grid(H, W);
    const int P = g[0] * g[1], L = 1 + R + P, Dm = cfg_.mlp_dim, heads = cfg_.heads;
    const std::int64_t N = std::int64_t(B) * L;
    const T eps = T(cfg_.ln_eps);
    const std::vector<T>& posp = patch_positions(g[0], g[1]);
    ensure(B, P);
    const T* Pm = params_.data();
    // embeddings
    Ops::patchify_forward(cpu, a_.tok, x, B, C, H, W, p);
    Ops::linear_forward(cpu, a_.emb, a_.tok, Pm + pe_w_, Pm + pe_b_, B * P, C * p * p, D);
    for (int b = 0; b < B; ++b) {
      T* hb = a_.h + std::int64_t(b) * L * D;
      for (int c = 0; c < D; ++c) hb[c] = Pm[cls_ + c] + Pm[pos_ + c];
      if (R > 0) std::copy(Pm + reg_, Pm + reg_ + std::int64_t(R) * D, hb + D);
      const T* e = a_.emb + std::int64_t(b) * P * D;
      T* hp = hb + std::int64_t(1 + R) * D;
      for (std::int64_t i = 0; i < std::int64_t(P) * D; ++i) hp[i] = e[i] + posp[std::size_t(i)];
    }
    // blocks
    for (const Offs& o : blocks_) {
      Ops::layernorm_affine_forward(cpu, a_.ln, a_.h, Pm + o.ln1_w, Pm + o.ln1_b, int(N), D, eps);
      Ops::linear_forward(cpu, a_.qkv, a_.ln, Pm + o.qkv_w, Pm + o.qkv_b, int(N), D, 3 * D);
      Ops::attention_forward(cpu, a_.ao, a_.probs, a_.qkv, B, L, heads, D / heads);
      Ops::linear_forward(cpu, a_.ln, a_.ao, Pm + o.proj_w, Pm + o.proj_b, int(N), D, D);
      Ops::gated_residual_forward(cpu, a_.h, a_.ln, Pm + o.ls1, 1, int(N), D, 0);
      Ops::layernorm_affine_forward(cpu, a_.ln, a_.h, Pm + o.ln2_w, Pm + o.ln2_b, int(N), D, eps);
      Ops::linear_forward(cpu, a_.f1, a_.ln, Pm + o.fc1_w, Pm + o.fc1_b, int(N), D, Dm);
      Ops::gelu_erf_forward(cpu, a_.f1, a_.f1, N * Dm);
      Ops::linear_forward(cpu, a_.ln, a_.f1, Pm + o.fc2_w, Pm + o.fc2_b, int(N), Dm, D);
      Ops::gated_residual_forward(cpu, a_.h, a_.ln, Pm + o.ls2, 1, int(N), D, 0);
    }
    // final LayerNorm on the patch rows only (a per-token op)
    for (int b = 0; b < B; ++b)
      Ops::layernorm_affine_forward(cpu, out + std::int64_t(b) * P * D, a_.h + (std::int64_t(b) * L + 1 + R) * D,
                                    Pm + lnf_w_, Pm + lnf_b_, P, D, eps);
  }

  using Ops = Backend<Cpu>;

  Dinov2Config cfg_;
  ParamLayout layout_;
  std::vector<Offs> blocks_;
  std::int64_t cls_ = 0, reg_ = 0, pos_ = 0, pe_w_ = 0, pe_b_ = 0, lnf_w_ = 0, lnf_b_ = 0;
  Tensor<T> params_;
  Workspace<Cpu> ws_;
  Acts a_{};
  int capacity_patches_ = 0, capacity_batch_ = 0, chunk_ = 16;
  std::vector<T> pos_cache_;
  std::array<int, 2> pos_cache_grid_{0, 0};
};

}  // namespace redi
