// redi/nn/param_layout.hpp — where every trainable tensor of a network lives in its flat
// parameter buffer (llm.c style: one buffer, gradients, AdamW moments and EMA in buffers of the
// same size at the same offsets), under its state_dict name, and how it is initialised.
//   ParamLayout        the generic list: add(name, shape, init) -> offset; initialize, randomize
//   TransformerLayout  the DiT/SiT/ReDi layout in the official PyTorch state_dict order
//                      (docs/method.md section 9) with the named offsets the forward pass uses
// The ViT encoder (vit_encoder.hpp) builds its own list with ParamLayout::add.
#pragma once
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "redi/core/philox.hpp"
#include "redi/core/tensor.hpp"
#include "redi/nn/config.hpp"
#include "redi/nn/fusion.hpp"

namespace redi {

enum class Init : std::uint8_t { Zero, XavierUniform, Normal002 };

struct ParamEntry {
  std::string name;
  Shape shape;          // official shape (conv weights 4-D)
  std::int64_t offset;  // into the flat buffer, in elements
  Init init;
  std::int64_t numel() const { return shape.numel(); }
  // Fan-in / fan-out of the matrix view [rows, numel/rows] (xavier).
  std::int64_t rows() const { return shape[0]; }
  std::int64_t cols() const { return numel() / shape[0]; }
};

/// Offsets of one block's tensors (weights [out, in], PyTorch layout).
struct BlockOffsets {
  std::int64_t qkv_w, qkv_b, proj_w, proj_b, fc1_w, fc1_b, fc2_w, fc2_b, ada_w, ada_b;
};

/// A network's parameters in one flat buffer, in the order they were added.
struct ParamLayout {
  std::vector<ParamEntry> entries;
  std::int64_t total = 0;

  /// Appends a tensor; returns its offset.
  std::int64_t add(std::string name, Shape shape, Init init) {
    const std::int64_t off = total;
    entries.push_back({std::move(name), shape, off, init});
    total += shape.numel();
    return off;
  }

  const ParamEntry* find(const std::string& name) const {
    for (const auto& e : entries)
      if (e.name == name) return &e;
    return nullptr;
  }

  /// Each entry's init (DiT's: xavier-uniform matrices, zero biases, N(0, 0.02) embeddings),
  /// drawn from Philox keyed by (seed, entry index, element index).
  template <class T>
  void initialize(T* params, std::uint64_t seed) const {
    for (std::size_t k = 0; k < entries.size(); ++k) {
      const auto& e = entries[k];
      T* w = params + e.offset;
      const std::int64_t n = e.numel();
      switch (e.init) {
        case Init::Zero:
          for (std::int64_t i = 0; i < n; ++i) w[i] = T(0);
          break;
        case Init::XavierUniform: {
          const double bound = std::sqrt(6.0 / double(e.rows() + e.cols()));
          for (std::int64_t i = 0; i < n; ++i)
            w[i] = T((2.0 * philox::uniform(seed, k, std::uint64_t(i)) - 1.0) * bound);
          break;
        }
        case Init::Normal002:
          for (std::int64_t i = 0; i < n; ++i) w[i] = T(0.02 * philox::normal(seed, k, std::uint64_t(i)));
          break;
      }
    }
  }

  /// Every entry from N(0, std) — for gradient checks, where zero inits would hide terms.
  template <class T>
  void randomize(T* params, std::uint64_t seed, double std) const {
    for (std::size_t k = 0; k < entries.size(); ++k)
      for (std::int64_t i = 0; i < entries[k].numel(); ++i)
        params[entries[k].offset + i] = T(std * philox::normal(seed, 1000 + k, std::uint64_t(i)));
  }

  /// Every entry plus N(0, std) noise (the same draws as randomize).
  template <class T>
  void perturb(T* params, std::uint64_t seed, double std) const {
    for (std::size_t k = 0; k < entries.size(); ++k)
      for (std::int64_t i = 0; i < entries[k].numel(); ++i)
        params[entries[k].offset + i] += T(std * philox::normal(seed, 1000 + k, std::uint64_t(i)));
  }
};

/// The DiT/SiT/ReDi transformer's layout, in the official state_dict order, with the offsets
/// the forward and backward passes read.
struct TransformerLayout : ParamLayout {
  std::int64_t xemb_w, xemb_b, zemb_w = -1, zemb_b = -1;
  std::int64_t t0_w, t0_b, t2_w, t2_b, ytab;
  std::vector<BlockOffsets> blocks;
  std::int64_t fada_w, fada_b, flin_w, flin_b, zlin_w = -1, zlin_b = -1;

  template <Fusion F>
  static TransformerLayout make(const ModelConfig& c) {
    c.validate();
    TransformerLayout L;
    const std::int64_t D = c.width, p = c.patch, Dm = std::int64_t(c.width) * c.mlp_ratio;
    auto add = [&](std::string name, Shape s, Init init) { return L.add(std::move(name), s, init); };
    // Separate embedders and heads: Separate fusion, or features on their own grid.
    const bool separate = std::same_as<F, Separate> || c.own_feature_grid();
    const std::int64_t pz = c.feature_patch();
    const int cx_out = c.learn_sigma ? 2 * c.image_channels : c.image_channels;
    const int cz_out = c.learn_sigma ? 2 * c.feature_channels : c.feature_channels;
    if (separate) {
      REDI_CHECK(c.feature_channels > 0,
                 "Separate fusion needs feature_channels > 0 (r = 0 is the plain model: use Merged)");
      L.xemb_w = add("x_embedder.proj.weight", Shape{D, c.image_channels, p, p}, Init::XavierUniform);
      L.xemb_b = add("x_embedder.proj.bias", Shape{D}, Init::Zero);
      L.zemb_w = add("z_embedder.proj.weight", Shape{D, c.feature_channels, pz, pz}, Init::XavierUniform);
      L.zemb_b = add("z_embedder.proj.bias", Shape{D}, Init::Zero);
    } else {
      L.xemb_w = add("x_embedder.proj.weight", Shape{D, c.channels_in(), p, p}, Init::XavierUniform);
      L.xemb_b = add("x_embedder.proj.bias", Shape{D}, Init::Zero);
    }
    L.t0_w = add("t_embedder.mlp.0.weight", Shape{D, c.freq_dim}, Init::Normal002);
    L.t0_b = add("t_embedder.mlp.0.bias", Shape{D}, Init::Zero);
    L.t2_w = add("t_embedder.mlp.2.weight", Shape{D, D}, Init::Normal002);
    L.t2_b = add("t_embedder.mlp.2.bias", Shape{D}, Init::Zero);
    L.ytab = add("y_embedder.embedding_table.weight", Shape{c.num_classes + 1, D}, Init::Normal002);
    for (int i = 0; i < c.depth; ++i) {
      std::string b = "blocks." + std::to_string(i) + ".";
      BlockOffsets o{};
      o.qkv_w = add(b + "attn.qkv.weight", Shape{3 * D, D}, Init::XavierUniform);
      o.qkv_b = add(b + "attn.qkv.bias", Shape{3 * D}, Init::Zero);
      o.proj_w = add(b + "attn.proj.weight", Shape{D, D}, Init::XavierUniform);
      o.proj_b = add(b + "attn.proj.bias", Shape{D}, Init::Zero);
      o.fc1_w = add(b + "mlp.fc1.weight", Shape{Dm, D}, Init::XavierUniform);
      o.fc1_b = add(b + "mlp.fc1.bias", Shape{Dm}, Init::Zero);
      o.fc2_w = add(b + "mlp.fc2.weight", Shape{D, Dm}, Init::XavierUniform);
      o.fc2_b = add(b + "mlp.fc2.bias", Shape{D}, Init::Zero);
      o.ada_w = add(b + "adaLN_modulation.1.weight", Shape{6 * D, D}, Init::Zero);
      o.ada_b = add(b + "adaLN_modulation.1.bias", Shape{6 * D}, Init::Zero);
      L.blocks.push_back(o);
    }
    L.fada_w = add("final_layer.adaLN_modulation.1.weight", Shape{2 * D, D}, Init::Zero);
    L.fada_b = add("final_layer.adaLN_modulation.1.bias", Shape{2 * D}, Init::Zero);
    if (separate) {
      L.flin_w = add("final_layer.linear.weight", Shape{p * p * cx_out, D}, Init::Zero);
      L.flin_b = add("final_layer.linear.bias", Shape{p * p * cx_out}, Init::Zero);
      L.zlin_w = add("final_layer.z_linear.weight", Shape{pz * pz * cz_out, D}, Init::Zero);
      L.zlin_b = add("final_layer.z_linear.bias", Shape{pz * pz * cz_out}, Init::Zero);
    } else {
      L.flin_w = add("final_layer.linear.weight", Shape{p * p * c.channels_out(), D}, Init::Zero);
      L.flin_b = add("final_layer.linear.bias", Shape{p * p * c.channels_out()}, Init::Zero);
    }
    return L;
  }
};

}  // namespace redi
