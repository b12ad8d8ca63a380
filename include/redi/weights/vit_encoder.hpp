// redi/weights/vit_encoder.hpp — the ViT encoder's weights file: safetensors with every parameter
// under its name (ViTEncoder::entries()) and the config in metadata["redi.vit_encoder"], so that
// ViTEncoder<T>::load(path) rebuilds the encoder. Serves ViTEncoder's save / load /
// load_weights / param_refs members (nn/vit_encoder.hpp), which name WeightsFile so that nn/
// need not include io/.
#pragma once
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "redi/io/safetensors.hpp"
#include "redi/io/state_dict.hpp"
#include "redi/nn/vit_encoder.hpp"

namespace redi {

template <CpuReal T>
struct WeightsFile<ViTEncoder<T>> {
  using Encoder = ViTEncoder<T>;

  static std::vector<io::ParamRef<T>> refs(Encoder& enc) {
    std::vector<io::ParamRef<T>> r;
    for (const auto& e : enc.entries()) r.push_back({e.name, e.shape, enc.params().data() + e.offset});
    return r;
  }

  static void save(Encoder& enc, const std::filesystem::path& path, std::map<std::string, std::string> metadata,
                   DType store_as) {
    metadata[Encoder::kMetadataKey] = enc.config().str();
    io::save_state<T>(path, refs(enc), store_as, metadata);
  }

  static void load_weights(Encoder& enc, const std::filesystem::path& path) { io::load_state<T>(path, refs(enc)); }

  static Encoder load(const std::filesystem::path& path) {
    const auto f = io::SafeTensorsFile::open(path);
    const auto it = f.metadata().find(Encoder::kMetadataKey);
    REDI_CHECK(it != f.metadata().end(), path.string(), ": no '", Encoder::kMetadataKey,
               "' metadata (not saved by ViTEncoder::save)");
    Encoder enc(ViTEncoderConfig::parse(it->second));
    io::load_state<T>(f, refs(enc));
    return enc;
  }
};

}  // namespace redi
