// redi/weights/vae.hpp — the SD-VAE's weights from the files its users have: diffusers'
// `diffusion_pytorch_model.safetensors` or `diffusion_pytorch_model.bin` (torch.save zip,
// read without executing anything: io/torch_pickle.hpp), under the diffusers AutoencoderKL
// names (nn/vae_layout.hpp). The mid-block attentions may use either naming:
//   current  ...attentions.0.{to_q, to_k, to_v, to_out.0}.{weight, bias}
//   older    ...attentions.0.{query, key, value, proj_attn}.{weight, bias}
// (detected per file from the encoder's attention; one file uses one naming). Loading is
// strict: a missing or unexpected tensor, a wrong shape or dtype, a truncated file or a
// non-finite value is a redi::Error naming the file and the tensor.
//
//   redi::Vae<float> vae(redi::VaeConfig::sd_vae_ft_ema());
//   redi::load_vae_weights(vae, "sd-vae-ft-ema/diffusion_pytorch_model.safetensors");
#pragma once
#include <cmath>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "redi/io/safetensors.hpp"
#include "redi/io/state_dict.hpp"
#include "redi/io/torch_pickle.hpp"
#include "redi/nn/vae.hpp"

namespace redi {

enum class VaeAttentionNames { Current, Legacy };

/// The file name of a layout name under `naming` (only the attention projections differ).
inline std::string vae_file_name(const std::string& name, VaeAttentionNames naming) {
  if (naming == VaeAttentionNames::Current) return name;
  static const std::pair<const char*, const char*> map[] = {
      {".to_q.", ".query."}, {".to_k.", ".key."}, {".to_v.", ".value."}, {".to_out.0.", ".proj_attn."}};
  for (const auto& [cur, old] : map)
    if (auto p = name.find(cur); p != std::string::npos)
      return name.substr(0, p) + old + name.substr(p + std::string(cur).size());
  return name;
}

/// Every tensor the file must hold for `cfg` (name under `naming`, shape) in layout order.
inline std::vector<std::pair<std::string, Shape>> vae_expected_tensors(const VaeConfig& cfg,
                                                                       VaeAttentionNames naming =
                                                                           VaeAttentionNames::Current) {
  std::vector<std::pair<std::string, Shape>> r;
  for (const auto& e : VaeLayout::make(cfg).entries) r.emplace_back(vae_file_name(e.name, naming), e.shape);
  return r;
}

/// Which attention naming a tensor source uses (Current unless it holds the legacy names).
template <io::TensorSource Src>
VaeAttentionNames vae_attention_naming(const Src& src) {
  return src.contains("encoder.mid_block.attentions.0.query.weight") ? VaeAttentionNames::Legacy
                                                                     : VaeAttentionNames::Current;
}

/// Loads host parameters [layout.total] from a source (strict; see the file comment).
template <CpuReal T, io::TensorSource Src>
void load_vae_params(std::vector<T>& host, const VaeLayout& L, const Src& src) {
  const VaeAttentionNames naming = vae_attention_naming(src);
  host.assign(std::size_t(L.total), T(0));
  std::vector<io::ParamRef<T>> refs;
  for (const auto& e : L.entries) refs.push_back({vae_file_name(e.name, naming), e.shape, host.data() + e.offset});
  io::load_state<T>(src, refs);
  for (const auto& e : L.entries)
    for (std::int64_t i = 0; i < e.numel(); ++i)
      REDI_CHECK(std::isfinite(double(host[std::size_t(e.offset + i)])), src.label(), ": tensor '",
                 vae_file_name(e.name, naming), "' holds a non-finite value at element ", i);
}

/// Loads `path` (safetensors, or a torch.save zip such as diffusion_pytorch_model.bin) into vae.
template <class T, class Dev>
void load_vae_weights(Vae<T, Dev>& vae, const std::filesystem::path& path) {
  std::vector<T> host;
  if (io::is_zip_file(path))
    load_vae_params(host, vae.layout(), io::TorchCheckpoint::open(path));
  else
    load_vae_params(host, vae.layout(), io::SafeTensorsFile::open(path));
  vae.set_params(host.data());
}

/// Saves vae's parameters as safetensors under the diffusers names (`naming`), config in
/// metadata["redi.vae"] (informational).
template <class T, class Dev>
void save_vae_weights(const Vae<T, Dev>& vae, const std::filesystem::path& path,
                      VaeAttentionNames naming = VaeAttentionNames::Current, DType store_as = dtype_of<T>::value) {
  auto host = vae.params_to_host();
  std::vector<io::ParamRef<T>> refs;
  for (const auto& e : vae.layout().entries)
    refs.push_back({vae_file_name(e.name, naming), e.shape, host.data() + e.offset});
  io::save_state<T>(path, refs, store_as, {{"redi.vae", vae.config().str()}});
}

}  // namespace redi
