// redi/weights/transformer.hpp — a transformer's weights as an official PyTorch state_dict
// (docs/method.md section 9): the flat parameter buffer under its official names, plus the
// fixed `pos_embed [1, L, D]` that the public checkpoints carry. Loads safetensors files and
// PyTorch zip checkpoints (no code executed) alike; saves safetensors. weights/ sits above nn/
// (the networks) and io/ (the file formats): neither of those includes the other.
#pragma once
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "redi/io/state_dict.hpp"
#include "redi/nn/transformer.hpp"

namespace redi {

/// Views of every tensor of `net` under its state_dict name (host memory only).
template <class T, Fusion F>
std::vector<io::ParamRef<T>> state_refs(Transformer<T, F, Cpu>& net) {
  std::vector<io::ParamRef<T>> refs;
  const ModelConfig& c = net.config();
  refs.push_back({"pos_embed", Shape{1, c.tokens(), c.width}, const_cast<T*>(net.pos_embed().data())});
  for (const auto& e : net.layout().entries)
    refs.push_back({e.name, e.shape, net.params().data() + e.offset});
  return refs;
}

/// Save as safetensors (atomically), stored as `store_as` (F32, F16 or BF16).
template <class T, Fusion F>
void save_weights(Transformer<T, F, Cpu>& net, const std::filesystem::path& path,
                  DType store_as = DType::F32, std::map<std::string, std::string> metadata = {}) {
  const ModelConfig& c = net.config();
  metadata.emplace("format", "pt");
  metadata.emplace("redi.fusion", F::name);
  metadata.emplace("redi.config", "input_size=" + std::to_string(c.input_size) +
                                      " patch=" + std::to_string(c.patch) +
                                      " Cx=" + std::to_string(c.image_channels) +
                                      " r=" + std::to_string(c.feature_channels) +
                                      " depth=" + std::to_string(c.depth) +
                                      " width=" + std::to_string(c.width) +
                                      " heads=" + std::to_string(c.heads) +
                                      " classes=" + std::to_string(c.num_classes) +
                                      " learn_sigma=" + std::to_string(int(c.learn_sigma)));
  io::save_state<T>(path, state_refs(net), store_as, metadata);
}

/// Load an official or redi state_dict into `net`. Strict by default: a missing or
/// unexpected key, a wrong shape or an unconvertible dtype throws redi::Error naming the file
/// and the tensor, and leaves `net` unchanged. `prefix` selects e.g. "ema." or "model." in a
/// training checkpoint.
template <class T, Fusion F>
io::LoadReport load_weights(Transformer<T, F, Cpu>& net, const std::filesystem::path& path,
                            const io::LoadOptions& opt = {}) {
  return io::load_state<T>(path, state_refs(net), opt);
}

}  // namespace redi
