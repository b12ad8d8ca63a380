// redi/nn/vit_encoder.hpp — a small pre-LN Vision Transformer trained offline as redi's
// stand-in for DINOv2 (which cannot be downloaded here): patch embed + fixed 2-D sin-cos
// position table, N transformer blocks, a final LayerNorm, mean pooling and a linear
// classification head. Its patch features (the last block's tokens after the final LayerNorm,
// [B, gh, gw, D]) are what the ReDi pipeline PCA-reduces (docs/method.md section 4); see
// docs/encoder.md.
//
// The blocks ARE nn::block_forward / nn::block_backward (the DiT block) with a zero conditioning
// vector: with sc = 0 the adaLN output equals its bias, so
//   h_mid = h_in  + gate1 * Attn(LN(h_in)  * (1 + scale1) + shift1)
//   h_out = h_mid + gate2 * MLP (LN(h_mid) * (1 + scale2) + shift2)
// is a pre-LN ViT block whose LayerNorm affine is (1 + scale, shift) and whose gates are a
// learned per-channel layer scale. Only the bias is a parameter ("blocks.i.modulation", [6D],
// chunks shift1, scale1, gate1, shift2, scale2, gate2; init 0, 0, gate_init, 0, 0, gate_init).
// The adaLN weight multiplies sc = 0, so it is not a parameter: every block reads one shared
// all-zero [6D, D] matrix and its gradient is never formed (null gradient pointer).
// The final LayerNorm has no affine: the head is linear after a mean pool and the PCA
// standardises each channel, so a per-channel scale/shift there would change nothing.
//
// Memory is llm.c style, as in Transformer: one flat parameter buffer (a ParamLayout, order =
// entries()), one gradient buffer of the same size, one activation arena (a Workspace) laid
// out for the largest batch seen. CPU only; the ops run through Backend<Cpu>.
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
#include "redi/core/philox.hpp"
#include "redi/core/tensor.hpp"
#include "redi/core/workspace.hpp"
#include "redi/nn/dit_block.hpp"
#include "redi/nn/param_layout.hpp"
#include "redi/ops/cpu_backend.hpp"

namespace redi {

struct ViTEncoderConfig {
  int image_size = 32;  // H == W of the input
  int channels = 1;     // C (1: Fashion-MNIST, 3: CIFAR-10)
  int patch = 4;        // p: grid = image_size / patch
  int width = 64;       // D = feature_dim()
  int depth = 2;        // 2 beat 4 at the quickstart's fixed CPU budget (docs/encoder.md)
  int heads = 4;
  int mlp_ratio = 4;
  int num_classes = 10;
  double gate_init = 1.0;  // initial layer scale (gates of both branches)

  int grid() const { return image_size / patch; }
  int tokens() const { return grid() * grid(); }

  void validate() const {
    REDI_CHECK(patch > 0 && image_size > 0 && image_size % patch == 0, "ViTEncoderConfig: image_size ",
               image_size, " must be a positive multiple of patch ", patch);
    REDI_CHECK(channels > 0, "ViTEncoderConfig: channels must be > 0");
    REDI_CHECK(depth > 0, "ViTEncoderConfig: depth must be > 0");
    REDI_CHECK(heads > 0 && width % heads == 0, "ViTEncoderConfig: width ", width, " must be divisible by heads ",
               heads);
    REDI_CHECK(width % 4 == 0, "ViTEncoderConfig: width ", width, " must be divisible by 4 (2-D sin-cos table)");
    REDI_CHECK(mlp_ratio >= 1, "ViTEncoderConfig: mlp_ratio must be >= 1");
    REDI_CHECK(num_classes >= 2, "ViTEncoderConfig: num_classes must be >= 2");
  }

  /// "image_size=32,channels=1,..." (stored in saved files' metadata as "redi.vit_encoder").
  std::string str() const {
    std::ostringstream os;
    os.precision(17);
    os << "image_size=" << image_size << ",channels=" << channels << ",patch=" << patch << ",width=" << width
       << ",depth=" << depth << ",heads=" << heads << ",mlp_ratio=" << mlp_ratio << ",num_classes=" << num_classes
       << ",gate_init=" << gate_init;
    return os.str();
  }
  static ViTEncoderConfig parse(const std::string& s) {
    ViTEncoderConfig c;
    std::istringstream is(s);
    std::string kv;
    while (std::getline(is, kv, ',')) {
      const auto eq = kv.find('=');
      REDI_CHECK(eq != std::string::npos, "ViTEncoderConfig::parse: '", kv, "' is not key=value");
      const std::string k = kv.substr(0, eq), v = kv.substr(eq + 1);
      int* f = k == "image_size" ? &c.image_size : k == "channels" ? &c.channels : k == "patch" ? &c.patch
             : k == "width" ? &c.width : k == "depth" ? &c.depth : k == "heads" ? &c.heads
             : k == "mlp_ratio" ? &c.mlp_ratio : k == "num_classes" ? &c.num_classes : nullptr;
      if (k == "gate_init") c.gate_init = std::stod(v);
      else if (f) *f = std::stoi(v);
      else REDI_FAIL("ViTEncoderConfig::parse: unknown key '", k, "'");
    }
    c.validate();
    return c;
  }
};

/// A network's weights file (safetensors), specialised per network type in redi/weights/.
template <class Net>
struct WeightsFile;

template <CpuReal T>
class ViTEncoder {
public:
  using value_type = T;
  static constexpr const char* kMetadataKey = "redi.vit_encoder";

  explicit ViTEncoder(const ViTEncoderConfig& cfg, std::uint64_t seed = 0) : cfg_(cfg) {
    cfg_.validate();
    const std::int64_t D = cfg_.width, Dm = D * cfg_.mlp_ratio, p = cfg_.patch;
    auto add = [&](std::string name, Shape s, Init init) { return layout_.add(std::move(name), s, init); };
    pe_w_ = add("patch_embed.weight", Shape{D, cfg_.channels, p, p}, Init::XavierUniform);
    pe_b_ = add("patch_embed.bias", Shape{D}, Init::Zero);
    for (int i = 0; i < cfg_.depth; ++i) {
      const std::string b = "blocks." + std::to_string(i) + ".";
      Offs o{};
      o.qkv_w = add(b + "attn.qkv.weight", Shape{3 * D, D}, Init::XavierUniform);
      o.qkv_b = add(b + "attn.qkv.bias", Shape{3 * D}, Init::Zero);
      o.proj_w = add(b + "attn.proj.weight", Shape{D, D}, Init::XavierUniform);
      o.proj_b = add(b + "attn.proj.bias", Shape{D}, Init::Zero);
      o.fc1_w = add(b + "mlp.fc1.weight", Shape{Dm, D}, Init::XavierUniform);
      o.fc1_b = add(b + "mlp.fc1.bias", Shape{Dm}, Init::Zero);
      o.fc2_w = add(b + "mlp.fc2.weight", Shape{D, Dm}, Init::XavierUniform);
      o.fc2_b = add(b + "mlp.fc2.bias", Shape{D}, Init::Zero);
      o.mod = add(b + "modulation", Shape{6 * D}, Init::Zero);  // gates set below
      blocks_.push_back(o);
    }
    head_w_ = add("head.weight", Shape{cfg_.num_classes, D}, Init::Zero);
    head_b_ = add("head.bias", Shape{cfg_.num_classes}, Init::Zero);
    params_ = Tensor<T>(Shape{layout_.total});
    grads_ = Tensor<T>(Shape{layout_.total});
    zero_ada_w_ = Tensor<T>(Shape{6 * D, D});
    pos_ = Tensor<T>(Shape{cfg_.tokens(), D});
    ops::pos_embed_2d(pos_.data(), cfg_.grid(), cfg_.grid(), cfg_.width);
    initialize(seed);
  }

  // ---- configuration and parameters
  const ViTEncoderConfig& config() const { return cfg_; }
  const std::vector<ParamEntry>& entries() const { return layout_.entries; }
  const ParamLayout& layout() const { return layout_; }
  const ParamEntry* find(const std::string& name) const { return layout_.find(name); }
  Tensor<T>& params() { return params_; }
  Tensor<T>& grads() { return grads_; }
  const Tensor<T>& params() const { return params_; }
  const Tensor<T>& grads() const { return grads_; }
  std::int64_t num_params() const { return layout_.total; }
  void zero_grad() { grads_.zero(); }
  std::size_t arena_allocations() const { return ws_.allocations(); }

  /// Initialisation: xavier-uniform matrices (Philox keyed by (seed, entry index)), zero
  /// biases, zero head, modulation = (0, 0, gate_init, 0, 0, gate_init).
  void initialize(std::uint64_t seed) {
    T* P = params_.data();
    layout_.initialize(P, seed);
    const int D = cfg_.width;
    for (const auto& o : blocks_)
      for (int c = 0; c < D; ++c) P[o.mod + 2 * D + c] = P[o.mod + 5 * D + c] = T(cfg_.gate_init);
  }

  /// Every parameter from N(init value, std): for gradient checks (zero inits hide terms).
  void randomize(std::uint64_t seed, double std) { layout_.perturb(params_.data(), seed, std); }

  // ---- files (defined by WeightsFile<ViTEncoder<T>> in redi/weights/vit_encoder.hpp, which
  // redi/redi.hpp and redi/train/encoder_training.hpp include; the template parameter only
  // defers the lookup, so that nn/ does not depend on io/)

  /// Views of every parameter under its name (for io::save_state / io::load_state).
  template <class File = WeightsFile<ViTEncoder>>
  auto param_refs() {
    return File::refs(*this);
  }
  /// Saves safetensors with the config in metadata[kMetadataKey] (plus `metadata`).
  template <class File = WeightsFile<ViTEncoder>>
  void save(const std::filesystem::path& path, std::map<std::string, std::string> metadata = {},
            DType store_as = dtype_of<T>::value) {
    File::save(*this, path, std::move(metadata), store_as);
  }
  /// Loads weights saved by save() into this encoder (strict: names and shapes must match).
  template <class File = WeightsFile<ViTEncoder>>
  void load_weights(const std::filesystem::path& path) {
    File::load_weights(*this, path);
  }
  /// An encoder built from the config stored in the file, with its weights.
  template <class File = WeightsFile<ViTEncoder>>
  static ViTEncoder load(const std::filesystem::path& path) {
    return File::load(path);
  }

  // ---- forward / backward

  /// images [B, C, S, S] (in [-1, 1]) -> features() [B, gh, gw, D], pooled() [B, D],
  /// logits() [B, K]; saves what backward needs.
  ///
  /// Masked image modelling (iBOT): with `mask` [B, gh, gw] (nonzero = masked) and
  /// `mask_token` [D], the patch embedding of every masked token is replaced by mask_token
  /// before the position table is added. Both must stay alive until backward.
  void forward(const T* images, int B, const std::uint8_t* mask = nullptr, const T* mask_token = nullptr) {
    REDI_CHECK((mask == nullptr) == (mask_token == nullptr), "ViTEncoder::forward: mask and mask_token go together");
    ensure_batch(B);
    const int D = cfg_.width, L = cfg_.tokens(), p = cfg_.patch, S = cfg_.image_size, C = cfg_.channels;
    const int N = B * L, K = cfg_.num_classes;
    const T* P = params_.data();
    Ops::patchify_forward(cpu, a_.tok, images, B, C, S, S, p);
    T* h = a_.blocks[0].h_in;
    Ops::linear_forward(cpu, h, a_.tok, P + pe_w_, P + pe_b_, N, C * p * p, D);
    mask_ = mask;
    if (mask)
      for (int t = 0; t < N; ++t)
        if (mask[t]) std::copy(mask_token, mask_token + D, h + std::int64_t(t) * D);
    Ops::add_broadcast(cpu, h, pos_.data(), B, std::int64_t(L) * D);
    std::fill(a_.sc, a_.sc + std::int64_t(B) * D, T(0));
    for (int i = 0; i < cfg_.depth; ++i) {
      T* next = i + 1 < cfg_.depth ? a_.blocks[i + 1].h_in : a_.hN;
      block_forward(cpu, dims_, weights(i), a_.sc, a_.blocks[i], h, next);
      h = next;
    }
    Ops::layernorm_forward(cpu, a_.feat, a_.meanf, a_.rstdf, a_.hN, N, D);
    const T inv = T(1) / T(L);
    for (int b = 0; b < B; ++b) {
      T* o = a_.pooled + std::int64_t(b) * D;
      std::fill(o, o + D, T(0));
      for (int l = 0; l < L; ++l) {
        const T* f = a_.feat + (std::int64_t(b) * L + l) * D;
        for (int c = 0; c < D; ++c) o[c] += f[c];
      }
      for (int c = 0; c < D; ++c) o[c] *= inv;
    }
    Ops::linear_forward(cpu, a_.logits, a_.pooled, P + head_w_, P + head_b_, B, D, K);
  }

  int batch() const { return batch_; }
  const T* features() const { return a_.feat; }  ///< [B, gh, gw, D] of the last forward
  const T* pooled() const { return a_.pooled; }   ///< [B, D]: mean of features() over tokens
  const T* logits() const { return a_.logits; }   ///< [B, num_classes]

  /// Mean softmax cross-entropy of the last forward's logits against labels [B] (in double);
  /// `correct` (optional) receives the number of argmax hits.
  double cross_entropy(const int* labels, int* correct = nullptr, T* dlogits = nullptr) const {
    const int B = batch_, K = cfg_.num_classes;
    double loss = 0;
    int hits = 0;
    std::vector<double> pr(std::size_t(K), 0.0);
    for (int b = 0; b < B; ++b) {
      const T* z = a_.logits + std::int64_t(b) * K;
      REDI_CHECK(labels[b] >= 0 && labels[b] < K, "ViTEncoder: label ", labels[b], " outside [0, ", K, ")");
      const int arg = int(std::max_element(z, z + K) - z);
      hits += arg == labels[b];
      double s = 0;
      for (int k = 0; k < K; ++k) s += (pr[std::size_t(k)] = std::exp(double(z[k]) - double(z[arg])));
      loss += std::log(s) - (double(z[labels[b]]) - double(z[arg]));
      if (dlogits)
        for (int k = 0; k < K; ++k)
          dlogits[std::int64_t(b) * K + k] = T((pr[std::size_t(k)] / s - (k == labels[b] ? 1.0 : 0.0)) / B);
    }
    if (correct) *correct = hits;
    return loss / B;
  }

  /// Cross-entropy of the last forward and its backward (gradients ACCUMULATE into grads()).
  double backward_cross_entropy(const int* labels, int* correct = nullptr) {
    const double loss = cross_entropy(labels, correct, a_.dlogits);
    backward(a_.dlogits);
    return loss;
  }

  /// Backward from dL/dlogits [B, K] of the last forward; ACCUMULATES into grads().
  void backward(const T* dlogits) {
    const int B = batch_, D = cfg_.width, K = cfg_.num_classes;
    const T* P = params_.data();
    T* G = grads_.data();
    Ops::linear_backward(cpu, a_.dpooled, G + head_w_, G + head_b_, dlogits, a_.pooled, P + head_w_, B, D, K);
    backward_features(a_.dpooled, nullptr);
  }

  /// Backward from dL/dpooled [B, D] and/or dL/dfeatures [B, gh, gw, D] of the last forward
  /// (either may be null; the head is not involved): self-supervised objectives on the pooled
  /// or patch features. ACCUMULATES into grads() (not into the head's entries) and, after a
  /// masked forward, dL/dmask_token into dmask_token [D] (when given).
  void backward_features(const T* dpooled, const T* dfeatures, T* dmask_token = nullptr) {
    const int B = batch_, D = cfg_.width, L = cfg_.tokens(), p = cfg_.patch, N = B * L;
    const T* P = params_.data();
    T* G = grads_.data();
    const T inv = T(1) / T(L);
    for (int b = 0; b < B; ++b)
      for (int l = 0; l < L; ++l) {
        const std::int64_t row = (std::int64_t(b) * L + l) * D;
        T* d = a_.dfeat + row;
        const T* s = dpooled ? dpooled + std::int64_t(b) * D : nullptr;
        for (int c = 0; c < D; ++c) d[c] = (s ? s[c] * inv : T(0)) + (dfeatures ? dfeatures[row + c] : T(0));
      }
    Ops::layernorm_backward(cpu, a_.dh, a_.dfeat, a_.hN, a_.meanf, a_.rstdf, N, D);
    for (int i = cfg_.depth - 1; i >= 0; --i)
      block_backward(cpu, dims_, weights(i), grads(i), a_.blocks[i], a_.sc, a_.dh, a_.dsc, scratch_);
    if (mask_)  // masked tokens came from mask_token, not from the patch embedding
      for (int t = 0; t < N; ++t)
        if (mask_[t]) {
          T* d = a_.dh + std::int64_t(t) * D;
          if (dmask_token)
            for (int c = 0; c < D; ++c) dmask_token[c] += d[c];
          std::fill(d, d + D, T(0));
        }
    Ops::linear_backward(cpu, static_cast<T*>(nullptr), G + pe_w_, G + pe_b_, a_.dh, a_.tok, P + pe_w_, N,
                         cfg_.channels * p * p, D);
  }

  // ---- data::FeatureEncoder
  int feature_dim() const { return cfg_.width; }
  std::array<int, 2> grid(int h, int w) const { return {h / cfg_.patch, w / cfg_.patch}; }
  /// images [B, C, S, S] float in [-1, 1] -> feats [B, gh, gw, D] (runs in chunks of
  /// encode_batch() images, so any B works with a bounded arena).
  void encode(View<const float> images, View<float> feats) {
    const int C = cfg_.channels, S = cfg_.image_size, g = cfg_.grid(), D = cfg_.width;
    REDI_CHECK(images.shape.rank == 4 && images.shape[1] == C && images.shape[2] == S && images.shape[3] == S,
               "ViTEncoder::encode: images ", images.shape.str(), ", expected [B, ", C, ", ", S, ", ", S, "]");
    const std::int64_t B = images.shape[0];
    REDI_CHECK(feats.shape == (Shape{B, g, g, D}), "ViTEncoder::encode: features ", feats.shape.str(),
               ", expected [", B, ", ", g, ", ", g, ", ", D, "]");
    const std::int64_t img = std::int64_t(C) * S * S, out = std::int64_t(g) * g * D;
    std::vector<T> conv;
    for (std::int64_t b0 = 0; b0 < B; b0 += encode_batch_) {
      const int n = int(std::min<std::int64_t>(encode_batch_, B - b0));
      const float* src = images.data + b0 * img;
      if constexpr (std::same_as<T, float>) {
        forward(src, n);
      } else {
        conv.assign(src, src + n * img);
        forward(conv.data(), n);
      }
      std::copy(a_.feat, a_.feat + n * out, feats.data + b0 * out);
    }
  }
  int encode_batch() const { return encode_batch_; }
  void set_encode_batch(int b) {
    REDI_CHECK(b > 0, "ViTEncoder::set_encode_batch: ", b);
    encode_batch_ = b;
  }

private:
  struct Offs {
    std::int64_t qkv_w, qkv_b, proj_w, proj_b, fc1_w, fc1_b, fc2_w, fc2_b, mod;
  };
  struct Acts {
    T *tok, *hN, *feat, *meanf, *rstdf, *pooled, *logits, *sc, *dsc, *dlogits, *dpooled, *dfeat, *dh;
    std::vector<BlockActs<T>> blocks;
  };

  BlockWeights<T> weights(int i) const {
    const T* P = params_.data();
    const Offs& o = blocks_[std::size_t(i)];
    return {P + o.qkv_w, P + o.qkv_b, P + o.proj_w, P + o.proj_b, P + o.fc1_w,
            P + o.fc1_b, P + o.fc2_w, P + o.fc2_b, zero_ada_w_.data(), P + o.mod};
  }
  BlockGrads<T> grads(int i) {
    T* G = grads_.data();
    const Offs& o = blocks_[std::size_t(i)];
    return {G + o.qkv_w, G + o.qkv_b, G + o.proj_w, G + o.proj_b, G + o.fc1_w,
            G + o.fc1_b, G + o.fc2_w, G + o.fc2_b, nullptr, G + o.mod};
  }

  /// Lays the activations out in the arena for batch B (one allocation, only when B grows).
  void ensure_batch(int B) {
    REDI_CHECK(B > 0, "ViTEncoder::forward: batch size must be > 0, got ", B);
    const int D = cfg_.width, L = cfg_.tokens(), p = cfg_.patch, K = cfg_.num_classes;
    batch_ = B;
    dims_ = BlockDims{B, L, D, cfg_.heads, D * cfg_.mlp_ratio};
    if (B <= capacity_) return;
    const BlockDims cap = dims_;
    const std::int64_t N = std::int64_t(B) * L, ND = N * D, BD = std::int64_t(B) * D, BK = std::int64_t(B) * K;
    ws_.carve([&](Workspace<Cpu>& w) {
      auto t = [&](std::int64_t n) { return w.take<T>(n); };
      Acts a;
      a.tok = t(N * cfg_.channels * p * p);
      a.blocks.resize(std::size_t(cfg_.depth));
      for (auto& blk : a.blocks) blk.carve(w, cap, /*flash=*/false);
      a.hN = t(ND); a.feat = t(ND); a.meanf = t(N); a.rstdf = t(N);
      a.pooled = t(BD); a.logits = t(BK); a.sc = t(BD); a.dsc = t(BD);
      a.dlogits = t(BK); a.dpooled = t(BD); a.dfeat = t(ND); a.dh = t(ND);
      scratch_.carve(w, cap, /*flash=*/false);
      a_ = std::move(a);
    });
    capacity_ = B;
  }

  using Ops = Backend<Cpu>;  // the ops (redi/ops/cpu_backend.hpp)

  ViTEncoderConfig cfg_;
  ParamLayout layout_;
  std::vector<Offs> blocks_;
  std::int64_t pe_w_ = 0, pe_b_ = 0, head_w_ = 0, head_b_ = 0;
  Tensor<T> params_, grads_, zero_ada_w_, pos_;
  Workspace<Cpu> ws_;  // the activation arena (core/workspace.hpp)
  Acts a_{};
  BlockScratch<T> scratch_{};
  BlockDims dims_{};
  const std::uint8_t* mask_ = nullptr;  // the last forward's token mask (iBOT), or null
  int batch_ = 0, capacity_ = 0, encode_batch_ = 64;
};

}  // namespace redi
