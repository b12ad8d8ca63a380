// redi/io/state_dict.hpp — loading and saving a model's parameter list by name.
//
//   std::vector<redi::io::ParamRef<float>> params = model.params();   // {name, shape, data}
//   redi::io::load_state("ckpt.safetensors", params);                  // strict by default
//   redi::io::load_state("SiT-XL-2.pt", params, {.prefix = "ema."});   // torch zip checkpoint
//   redi::io::save_state("out.safetensors", params, redi::DType::BF16, {{"step", "1000"}});
//
// load_state validates everything (names, shapes, dtypes) before it writes any parameter, so a
// failed load leaves the model untouched.
#pragma once
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "redi/io/common.hpp"
#include "redi/io/safetensors.hpp"
#include "redi/io/torch_pickle.hpp"

namespace redi::io {

/// A named host parameter buffer of `shape.numel()` elements.
template <Storable T>
struct ParamRef {
  std::string name;
  Shape shape;
  T* data = nullptr;
};

struct LoadOptions {
  /// Missing parameters and unexpected file tensors (under `prefix`) are errors; otherwise
  /// they are only reported in LoadReport.
  bool strict = true;
  /// File tensor name = prefix + parameter name (e.g. "ema." or "model." for torch
  /// checkpoints holding several state dicts); tensors outside the prefix are ignored.
  std::string prefix;
};

struct LoadReport {
  std::vector<std::string> loaded;      ///< parameter names filled
  std::vector<std::string> missing;     ///< parameter names absent from the file (non-strict)
  std::vector<std::string> unexpected;  ///< file names (prefix stripped) matching no parameter
};

/// Loads `params` from any TensorSource (SafeTensorsFile, TorchCheckpoint).
template <Storable T, TensorSource Src>
LoadReport load_state(const Src& src, std::span<const ParamRef<T>> params,
                      const LoadOptions& opt = {}) {
  LoadReport rep;
  std::map<std::string, bool, std::less<>> wanted;
  for (const auto& p : params) {
    if (wanted.count(p.name)) REDI_FAIL("load_state: parameter '", p.name, "' listed twice");
    wanted[p.name] = true;
  }
  for (const auto& n : src.names()) {
    if (n.compare(0, opt.prefix.size(), opt.prefix) != 0) continue;
    std::string key = n.substr(opt.prefix.size());
    if (!wanted.count(key)) rep.unexpected.push_back(key);
  }
  for (const auto& p : params)
    if (!src.contains(opt.prefix + p.name)) rep.missing.push_back(p.name);
  if (opt.strict && (!rep.missing.empty() || !rep.unexpected.empty())) {
    std::string msg;
    if (!rep.missing.empty())
      msg += std::to_string(rep.missing.size()) + " missing key(s): " + join_names(rep.missing);
    if (!rep.unexpected.empty())
      msg += (msg.empty() ? "" : "; ") + std::to_string(rep.unexpected.size()) +
             " unexpected key(s): " + join_names(rep.unexpected);
    REDI_FAIL(src.label(), ": strict load", opt.prefix.empty() ? "" : " (prefix '",
              opt.prefix, opt.prefix.empty() ? "" : "')", " failed: ", msg);
  }
  // Validate every present tensor before touching any parameter.
  for (const auto& p : params) {
    std::string key = opt.prefix + p.name;
    if (!src.contains(key)) continue;
    check_read<T>(src.label(), key, src.info(key), std::size_t(p.shape.numel()), &p.shape);
    if (!p.data && p.shape.numel() > 0)
      REDI_FAIL("load_state: parameter '", p.name, "' has no data pointer");
  }
  for (const auto& p : params) {
    std::string key = opt.prefix + p.name;
    if (!src.contains(key)) continue;
    src.read_into(key, std::span<T>(p.data, std::size_t(p.shape.numel())));
    rep.loaded.push_back(p.name);
  }
  return rep;
}

template <Storable T, TensorSource Src>
LoadReport load_state(const Src& src, const std::vector<ParamRef<T>>& params,
                      const LoadOptions& opt = {}) {
  return load_state<T>(src, std::span<const ParamRef<T>>(params), opt);
}

/// Whether `path` starts like a ZIP archive (a torch.save checkpoint) rather than safetensors.
inline bool is_zip_file(const std::filesystem::path& path) {
  std::ifstream f(path, std::ios::binary);
  char m[4] = {};
  return f.read(m, 4) && m[0] == 'P' && m[1] == 'K' && m[2] == 3 && m[3] == 4;
}

/// Loads from a file: a torch.save zip checkpoint when the file is a ZIP, else safetensors.
template <Storable T>
LoadReport load_state(const std::filesystem::path& path, std::span<const ParamRef<T>> params,
                      const LoadOptions& opt = {}) {
  if (is_zip_file(path)) return load_state<T>(TorchCheckpoint::open(path), params, opt);
  return load_state<T>(SafeTensorsFile::open(path), params, opt);
}
template <Storable T>
LoadReport load_state(const std::filesystem::path& path, const std::vector<ParamRef<T>>& params,
                      const LoadOptions& opt = {}) {
  return load_state<T>(path, std::span<const ParamRef<T>>(params), opt);
}

/// Saves `params` as safetensors (atomically), each stored as `store_as` (F32, F64, F16, BF16
/// for float types; one rounding), with `metadata` in "__metadata__".
template <Storable T>
void save_state(const std::filesystem::path& path, std::span<const ParamRef<T>> params,
                DType store_as = dtype_of<T>::value,
                const std::map<std::string, std::string>& metadata = {}) {
  SafeTensorsWriter w;
  for (const auto& p : params) w.add<T>(p.name, p.shape, p.data, store_as);
  w.write(path, metadata);
}
template <Storable T>
void save_state(const std::filesystem::path& path, const std::vector<ParamRef<T>>& params,
                DType store_as = dtype_of<T>::value,
                const std::map<std::string, std::string>& metadata = {}) {
  save_state<T>(path, std::span<const ParamRef<T>>(params), store_as, metadata);
}

}  // namespace redi::io
