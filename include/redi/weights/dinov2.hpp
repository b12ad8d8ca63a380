// redi/weights/dinov2.hpp — DINOv2-with-registers weights from the files users already have:
// transformers' model.safetensors or pytorch_model.bin (a torch.save zip, read without executing
// anything) under Dinov2WithRegistersModel's state_dict names (nn/dinov2.hpp lists them). A
// checkpoint of Dinov2WithRegistersForImageClassification (names under "dinov2_with_registers.",
// plus a "classifier.*" head) loads too: the prefix is detected and the head ignored.
//
// Loading is strict: a missing or unexpected tensor, a wrong shape or dtype, or a truncated file
// is a redi::Error naming the file and the tensor, raised before any parameter is written.
// dinov2_config_from_file reads the sizes from the tensor shapes (the number of heads is not in
// the shapes: the safetensors metadata "num_attention_heads" when present, else width / 64, the
// head width of every published DINOv2).
#pragma once
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "redi/io/safetensors.hpp"
#include "redi/io/state_dict.hpp"
#include "redi/io/torch_pickle.hpp"
#include "redi/nn/dinov2.hpp"
#include "redi/ops/cpu_backend.hpp"  // Dinov2<T> on the CPU, as before the network took a device

namespace redi {

namespace detail {

/// "" or "dinov2_with_registers." — where the backbone's tensors live in `src`.
template <io::TensorSource Src>
std::string dinov2_prefix(const Src& src) {
  if (src.contains("embeddings.position_embeddings")) return "";
  if (src.contains("dinov2_with_registers.embeddings.position_embeddings")) return "dinov2_with_registers.";
  REDI_FAIL(src.label(), ": no tensor 'embeddings.position_embeddings' (not a transformers DINOv2 checkpoint)");
}

template <io::TensorSource Src>
Dinov2Config dinov2_config_from(const Src& src, int heads) {
  const std::string pre = dinov2_prefix(src);
  auto shape = [&](const std::string& k) -> const std::vector<std::int64_t>& {
    REDI_CHECK(src.contains(pre + k), src.label(), ": no tensor '", pre + k, "'");
    return src.info(pre + k).shape;
  };
  Dinov2Config c;
  const auto& pw = shape("embeddings.patch_embeddings.projection.weight");
  REDI_CHECK(pw.size() == 4 && pw[2] == pw[3], src.label(), ": '", pre,
             "embeddings.patch_embeddings.projection.weight' has shape ", io::shape_str(pw), ", expected [D, C, p, p]");
  c.width = int(pw[0]);
  c.channels = int(pw[1]);
  c.patch = int(pw[2]);
  const auto& pe = shape("embeddings.position_embeddings");
  REDI_CHECK(pe.size() == 3 && pe[2] == c.width, src.label(), ": '", pre, "embeddings.position_embeddings' has shape ",
             io::shape_str(pe), ", expected [1, 1 + G*G, ", c.width, "]");
  c.pos_grid = int(std::lround(std::sqrt(double(pe[1] - 1))));
  REDI_CHECK(std::int64_t(c.pos_grid) * c.pos_grid + 1 == pe[1], src.label(), ": '", pre,
             "embeddings.position_embeddings' has ", pe[1], " rows, not 1 + a square");
  c.registers = src.contains(pre + "embeddings.register_tokens") ? int(shape("embeddings.register_tokens").at(1)) : 0;
  c.depth = 0;
  while (src.contains(pre + "encoder.layer." + std::to_string(c.depth) + ".norm1.weight")) ++c.depth;
  REDI_CHECK(c.depth > 0, src.label(), ": no 'encoder.layer.0.norm1.weight'");
  c.mlp_dim = int(shape("encoder.layer.0.mlp.fc1.weight").at(0));
  c.heads = heads > 0 ? heads : std::max(1, c.width / 64);
  c.validate();
  return c;
}

}  // namespace detail

/// The configuration of the DINOv2 checkpoint at `path` (see the header comment). heads > 0
/// overrides the number of heads.
inline Dinov2Config dinov2_config_from_file(const std::filesystem::path& path, int heads = 0) {
  if (io::is_zip_file(path)) return detail::dinov2_config_from(io::TorchCheckpoint::open(path), heads);
  const auto f = io::SafeTensorsFile::open(path);
  if (heads <= 0) {
    const auto it = f.metadata().find("num_attention_heads");
    if (it != f.metadata().end()) heads = std::stoi(it->second);
  }
  return detail::dinov2_config_from(f, heads);
}

template <CpuReal T, class Dev>
struct WeightsFile<Dinov2<T, Dev>> {
  using Net = Dinov2<T, Dev>;

  /// The named tensors of a flat host buffer laid out as net's parameters.
  static std::vector<io::ParamRef<T>> refs(const Net& net, T* base) {
    std::vector<io::ParamRef<T>> r;
    for (const auto& e : net.entries()) r.push_back({e.name, e.shape, base + e.offset});
    return r;
  }
  /// The parameters themselves (host networks only).
  static std::vector<io::ParamRef<T>> refs(Net& net)
    requires(Dev::is_host)
  {
    return refs(net, net.params().data());
  }

  /// On the host straight into the parameters; on a device into a host buffer, then one upload.
  static void load_weights(Net& net, const std::filesystem::path& path) {
    std::vector<T> staging;
    T* base = nullptr;
    if constexpr (Dev::is_host) {
      base = net.params().data();
    } else {
      staging.assign(std::size_t(net.num_params()), T(0));
      base = staging.data();
    }
    if (io::is_zip_file(path)) {
      const auto src = io::TorchCheckpoint::open(path);
      io::load_state<T>(src, refs(net, base), {.strict = true, .prefix = detail::dinov2_prefix(src)});
    } else {
      const auto src = io::SafeTensorsFile::open(path);
      io::load_state<T>(src, refs(net, base), {.strict = true, .prefix = detail::dinov2_prefix(src)});
    }
    if constexpr (Dev::is_host)
      net.params_changed();
    else
      net.set_params(staging.data());
  }

  /// Saves under the transformers names (safetensors), "num_attention_heads" in the metadata.
  static void save(Net& net, const std::filesystem::path& path, DType store_as = dtype_of<T>::value) {
    std::vector<T> host = net.params_to_host();
    io::save_state<T>(path, refs(net, host.data()), store_as,
                      {{"num_attention_heads", std::to_string(net.config().heads)}});
  }
};

/// A DINOv2 built from the checkpoint's shapes, with its weights, on Dev (ctx: e.g.
/// Cuda::create(0); a GPU network needs redi/cuda/backend.cuh, i.e. a .cu file).
template <CpuReal T = float, class Dev = Cpu>
Dinov2<T, Dev> load_dinov2(const std::filesystem::path& path, int heads = 0, Dev ctx = Dev{}) {
  Dinov2<T, Dev> net(dinov2_config_from_file(path, heads), std::move(ctx));
  net.load_weights(path);
  return net;
}

}  // namespace redi
