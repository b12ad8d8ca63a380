// redi/train/checkpoint.hpp — training checkpoints of a redi::ReDi model: ONE safetensors file
// holding everything a bit-identical resume needs (docs/training.md, "Checkpoints").
//
// Tensors (all in the model's element type, F32 for float — no rounding, so a resume is exact):
//   model.<name>   the trained weights under their official state_dict names, incl. pos_embed
//   ema.<name>     the EMA weights (what sampling uses; the checkpoint to publish)
//   opt.m.<name>   AdamW first moments   (no pos_embed: it is not trained)
//   opt.v.<name>   AdamW second moments
// so `load_weights(net, ckpt, {.prefix = "ema."})` (redi/nn/weights.hpp) reads the EMA model out
// of a checkpoint directly, as it does with the official "ema"/"model" torch checkpoints.
// Metadata ("__metadata__", all strings):
//   format "pt"; redi.checkpoint "1" (layout version); redi.type "SiT/Merged/FlowMatching/F32";
//   redi.model (ModelConfig as JSON); redi.step (optimiser steps done); redi.seed (the run's
//   noise seed); redi.data_epoch / redi.data_index (BatchSampler position); redi.config (the
//   run's whole configuration as JSON); plus any caller-supplied keys.
// Files are written atomically (temporary file + fsync + rename + directory fsync,
// io/atomic_file.hpp): a kill -9 at any moment leaves the previous checkpoint or the new one.
// Device models (ReDi<..., Cuda>) are staged through host memory (4 parameter-sized float
// buffers); a checkpoint holds the fp32 master weights, so one written by a BF16Mixed GPU run
// has the same type name and layout as a float CPU run's and resumes on either.
#pragma once
#include <charconv>
#include <cstdint>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "redi/io/atomic_file.hpp"
#include "redi/io/json.hpp"
#include "redi/io/safetensors.hpp"
#include "redi/nn/config.hpp"
#include "redi/redi_model.hpp"
#include "redi/train/metrics_log.hpp"

namespace redi::train {

inline constexpr const char* kCheckpointVersion = "1";

inline JsonObject to_json(const ModelConfig& c) {
  JsonObject o;
  o.add("input_size", c.input_size).add("patch", c.patch).add("image_channels", c.image_channels);
  o.add("feature_channels", c.feature_channels).add("depth", c.depth).add("width", c.width);
  o.add("heads", c.heads).add("mlp_ratio", c.mlp_ratio).add("num_classes", c.num_classes);
  o.add("learn_sigma", c.learn_sigma).add("freq_dim", c.freq_dim);
  if (c.feature_size != 0) o.add("feature_size", c.feature_size);  // absent: the input grid
  return o;
}

/// The inverse of to_json(ModelConfig): every field must be present (`what` names the source).
inline ModelConfig model_config_from_json(const std::string& text, const std::string& what) {
  const json::Value v = json::parse(text, what);
  REDI_CHECK(v.is_object(), what, ": model configuration is not a JSON object");
  auto num = [&](const char* k) {
    const json::Value* x = v.find(k);
    std::int64_t i = 0;
    REDI_CHECK(x && x->int64(i), what, ": model configuration has no integer '", k, "'");
    return int(i);
  };
  ModelConfig c;
  c.input_size = num("input_size"); c.patch = num("patch"); c.image_channels = num("image_channels");
  c.feature_channels = num("feature_channels"); c.depth = num("depth"); c.width = num("width");
  c.heads = num("heads"); c.mlp_ratio = num("mlp_ratio"); c.num_classes = num("num_classes");
  c.freq_dim = num("freq_dim");
  const json::Value* ls = v.find("learn_sigma");
  REDI_CHECK(ls && ls->is_bool(), what, ": model configuration has no boolean 'learn_sigma'");
  c.learn_sigma = ls->as_bool();
  if (const json::Value* fs = v.find("feature_size")) {  // optional (older checkpoints: the input grid)
    std::int64_t i = 0;
    REDI_CHECK(fs->int64(i), what, ": model configuration's 'feature_size' is not an integer");
    c.feature_size = int(i);
  }
  c.validate();
  return c;
}

/// "SiT/Merged/FlowMatching/F32": the compile-time choices a checkpoint was written with.
template <class Model>
std::string model_type_name() {
  return std::string(Model::backbone::name) + "/" + Model::fusion::name + "/" + Model::objective::name + "/" +
         std::string(dtype_name(dtype_of<typename Model::value_type>::value));
}

/// The non-tensor part of a checkpoint.
struct CheckpointState {
  std::int64_t step = 0;             ///< optimiser steps done
  std::uint64_t seed = 0;            ///< StepConfig::seed of the run
  std::uint64_t data_epoch = 0;      ///< BatchSampler::Position
  std::uint64_t data_index = 0;
  std::string config_json;           ///< the run's configuration (free-form JSON)
  std::map<std::string, std::string> extra;  ///< other metadata (keys not starting with "redi.")
};

namespace detail {
template <class T>
struct CkptTensor {
  std::string name;
  Shape shape;
  T* data;
};

/// Host copies of a device model's weights, EMA, moments and position table (empty for a host
/// model, whose tensors are used in place).
template <class T>
struct HostStage {
  std::vector<T> net, ema, m, v, pos;
};

/// Every tensor of the checkpoint layout, pointing into the model (host) or into `st` (device;
/// `download` fills st from the device first, else st is only sized, for a load).
template <class Model>
std::vector<CkptTensor<typename Model::value_type>> checkpoint_tensors(Model& m, HostStage<typename Model::value_type>& st,
                                                                         bool download) {
  using T = typename Model::value_type;
  const ModelConfig& c = m.net().config();
  const Shape pos{1, c.tokens(), c.width};
  T *pn, *pe, *pm, *pv, *pos_n, *pos_e;
  if constexpr (Model::device_type::is_host) {
    pn = m.net().params().data();
    pe = m.ema().params().data();
    pm = m.adam_m().data();
    pv = m.adam_v().data();
    pos_n = const_cast<T*>(m.net().pos_embed().data());
    pos_e = const_cast<T*>(m.ema().pos_embed().data());
  } else {
    const auto n = std::size_t(m.net().num_params());
    if (download) {
      st.net = std::as_const(m.net()).params().to_host();
      st.ema = std::as_const(m.ema()).params().to_host();
      st.m = m.adam_m().to_host();
      st.v = m.adam_v().to_host();
    } else {
      st.net.resize(n); st.ema.resize(n); st.m.resize(n); st.v.resize(n);
    }
    st.pos.resize(std::size_t(c.tokens()) * c.width);
    ops::pos_embed_2d(st.pos.data(), c.grid(), c.grid(), c.width);
    pn = st.net.data(); pe = st.ema.data(); pm = st.m.data(); pv = st.v.data();
    pos_n = pos_e = st.pos.data();
  }
  std::vector<CkptTensor<T>> v;
  v.push_back({"model.pos_embed", pos, pos_n});
  for (const auto& e : m.net().layout().entries) v.push_back({"model." + e.name, e.shape, pn + e.offset});
  v.push_back({"ema.pos_embed", pos, pos_e});
  for (const auto& e : m.ema().layout().entries) v.push_back({"ema." + e.name, e.shape, pe + e.offset});
  for (const auto& e : m.net().layout().entries) v.push_back({"opt.m." + e.name, e.shape, pm + e.offset});
  for (const auto& e : m.net().layout().entries) v.push_back({"opt.v." + e.name, e.shape, pv + e.offset});
  return v;
}

/// After a load into `st`: upload it to a device model (a host model was written in place).
template <class Model>
void upload_stage(Model& m, const HostStage<typename Model::value_type>& st) {
  if constexpr (!Model::device_type::is_host) {
    m.net().params().from_host(st.net);
    m.ema().params().from_host(st.ema);
    m.adam_m().from_host(st.m);
    m.adam_v().from_host(st.v);
  } else {
    (void)m, (void)st;
  }
}

inline std::uint64_t parse_u64(const std::map<std::string, std::string>& md, const char* key, const std::string& file) {
  auto it = md.find(key);
  REDI_CHECK(it != md.end(), file, ": not a redi training checkpoint (metadata has no '", key, "')");
  std::uint64_t v = 0;
  const auto& s = it->second;
  const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  REDI_CHECK(r.ec == std::errc() && r.ptr == s.data() + s.size(), file, ": metadata '", key, "' = \"", s,
             "\" is not a non-negative integer");
  return v;
}
}  // namespace detail

/// Writes `m` (weights, EMA weights, AdamW moments) and `st` to `path` atomically.
template <class Model>
void save_checkpoint(const std::filesystem::path& path, Model& m, const CheckpointState& st) {
  using T = typename Model::value_type;
  io::SafeTensorsWriter w;
  detail::HostStage<T> stage;
  for (const auto& t : detail::checkpoint_tensors(m, stage, /*download=*/true)) w.add<T>(t.name, t.shape, t.data);
  std::map<std::string, std::string> md;
  for (const auto& [k, v] : st.extra) {
    REDI_CHECK(k.rfind("redi.", 0) != 0 && k != "format", "save_checkpoint: metadata key '", k, "' is reserved");
    md[k] = v;
  }
  md["format"] = "pt";
  md["redi.checkpoint"] = kCheckpointVersion;
  md["redi.type"] = model_type_name<Model>();
  md["redi.model"] = to_json(m.net().config()).str();
  md["redi.step"] = std::to_string(st.step);
  md["redi.seed"] = std::to_string(st.seed);
  md["redi.data_epoch"] = std::to_string(st.data_epoch);
  md["redi.data_index"] = std::to_string(st.data_index);
  md["redi.config"] = st.config_json.empty() ? "{}" : st.config_json;
  io::create_directories(path.parent_path());
  w.write(path, md);
}

/// Reads only the metadata of a checkpoint (no model needed): step, seed, position, config.
inline CheckpointState read_checkpoint_state(const io::SafeTensorsFile& f) {
  const auto& md = f.metadata();
  const std::string& file = f.label();
  auto it = md.find("redi.checkpoint");
  REDI_CHECK(it != md.end(), file, ": not a redi training checkpoint (no 'redi.checkpoint' metadata); "
             "to load plain weights use redi::load_weights");
  REDI_CHECK(it->second == kCheckpointVersion, file, ": checkpoint layout version '", it->second,
             "' is not supported (this redi writes and reads version ", kCheckpointVersion, ")");
  CheckpointState st;
  st.step = std::int64_t(detail::parse_u64(md, "redi.step", file));
  st.seed = detail::parse_u64(md, "redi.seed", file);
  st.data_epoch = detail::parse_u64(md, "redi.data_epoch", file);
  st.data_index = detail::parse_u64(md, "redi.data_index", file);
  if (auto c = md.find("redi.config"); c != md.end()) st.config_json = c->second;
  for (const auto& [k, v] : md)
    if (k.rfind("redi.", 0) != 0 && k != "format") st.extra[k] = v;
  return st;
}
inline CheckpointState read_checkpoint_state(const std::filesystem::path& path) {
  return read_checkpoint_state(io::SafeTensorsFile::open(path));
}

/// The model configuration a checkpoint was written with (to build a matching model).
inline ModelConfig read_checkpoint_model_config(const std::filesystem::path& path) {
  const auto f = io::SafeTensorsFile::open(path);
  read_checkpoint_state(f);
  auto it = f.metadata().find("redi.model");
  REDI_CHECK(it != f.metadata().end(), path.string(), ": checkpoint metadata has no 'redi.model'");
  return model_config_from_json(it->second, path.string() + ": redi.model");
}

/// Restores `m` from `path` and returns the checkpoint's state. Everything is checked before
/// anything is written (model type, model configuration, every tensor's presence, dtype and
/// shape, no unexpected tensors), so on error `m` is unchanged. The step counter of `m` is set
/// to the checkpoint's step.
template <class Model>
CheckpointState load_checkpoint(const std::filesystem::path& path, Model& m) {
  using T = typename Model::value_type;
  const auto f = io::SafeTensorsFile::open(path);
  const std::string file = f.label();
  CheckpointState st = read_checkpoint_state(f);
  const auto& md = f.metadata();
  auto type = md.find("redi.type");
  REDI_CHECK(type != md.end() && type->second == model_type_name<Model>(), file, ": checkpoint is a ",
             type == md.end() ? std::string("?") : type->second, " model, this model is ", model_type_name<Model>());
  auto cfg = md.find("redi.model");
  const std::string mine = to_json(m.net().config()).str();
  REDI_CHECK(cfg != md.end() && cfg->second == mine, file, ": model configuration differs; checkpoint has ",
             cfg == md.end() ? std::string("none") : cfg->second, ", this model has ", mine);
  detail::HostStage<T> stage;
  const auto tensors = detail::checkpoint_tensors(m, stage, /*download=*/false);
  std::set<std::string> expected;
  for (const auto& t : tensors) {
    expected.insert(t.name);
    REDI_CHECK(f.contains(t.name), file, ": checkpoint has no tensor '", t.name, "' (truncated or not a "
               "training checkpoint?)");
    const io::TensorInfo& ti = f.info(t.name);
    REDI_CHECK(ti.supported && ti.dtype == dtype_of<T>::value, file, ": tensor '", t.name, "' is ", ti.dtype_name,
               ", expected ", dtype_name(dtype_of<T>::value), " (a resume must not round)");
    REDI_CHECK(io::shape_equal(ti.shape, t.shape), file, ": tensor '", t.name, "' has shape ", io::shape_str(ti.shape),
               ", expected ", t.shape.str());
  }
  for (const auto& n : f.names())
    REDI_CHECK(expected.count(n), file, ": unexpected tensor '", n, "' in checkpoint");
  for (const auto& t : tensors) {
    if (t.name.ends_with("pos_embed")) continue;  // fixed sin-cos table, recomputed by the model
    f.read_into<T>(t.name, std::span<T>(t.data, std::size_t(t.shape.numel())));
  }
  detail::upload_stage(m, stage);
  m.set_step(st.step);
  return st;
}

}  // namespace redi::train
