// redi/weights/convnet.hpp — the CNN classifier's weights file (the judge's format): safetensors
// with every parameter under its name (ConvNetClassifier::entries()) and the config in
// metadata["redi.convnet"], so that ConvNetClassifier<T>::load(path) rebuilds the network.
// Serves ConvNetClassifier's save / load / load_weights / param_refs members (nn/convnet.hpp),
// which name WeightsFile so that nn/ need not include io/. Loading is strict: every name and
// shape must match, and a non-finite value is an error naming the file and tensor.
#pragma once
#include <cmath>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "redi/io/safetensors.hpp"
#include "redi/io/state_dict.hpp"
#include "redi/nn/convnet.hpp"

namespace redi {

template <CpuReal T>
struct WeightsFile<ConvNetClassifier<T>> {
  using Net = ConvNetClassifier<T>;

  static std::vector<io::ParamRef<T>> refs(Net& net) {
    std::vector<io::ParamRef<T>> r;
    for (const auto& e : net.entries()) r.push_back({e.name, e.shape, net.params().data() + e.offset});
    return r;
  }

  static void save(Net& net, const std::filesystem::path& path, std::map<std::string, std::string> metadata,
                   DType store_as) {
    metadata[Net::kMetadataKey] = net.config().str();
    io::save_state<T>(path, refs(net), store_as, metadata);
  }

  static void load_weights(Net& net, const std::filesystem::path& path) {
    load_checked(net, io::SafeTensorsFile::open(path));
  }

  static Net load(const std::filesystem::path& path) {
    const auto f = io::SafeTensorsFile::open(path);
    const auto it = f.metadata().find(Net::kMetadataKey);
    REDI_CHECK(it != f.metadata().end(), path.string(), ": no '", Net::kMetadataKey,
               "' metadata (not saved by ConvNetClassifier::save)");
    ConvNetConfig cfg;
    try {
      cfg = ConvNetConfig::parse(it->second);
    } catch (const Error& e) {
      REDI_FAIL(path.string(), ": metadata '", Net::kMetadataKey, "': ", e.what());
    }
    Net net(cfg);
    load_checked(net, f);
    return net;
  }

private:
  static void load_checked(Net& net, const io::SafeTensorsFile& f) {
    io::load_state<T>(f, refs(net));
    const T* P = net.params().data();
    for (const auto& e : net.entries())
      for (std::int64_t i = 0; i < e.numel(); ++i)
        REDI_CHECK(std::isfinite(double(P[e.offset + i])), f.label(), ": tensor '", e.name,
                   "' holds a non-finite value (", double(P[e.offset + i]), ") at element ", i);
  }
};

}  // namespace redi
