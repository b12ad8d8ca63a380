// redi/weights/official.hpp — reading a DiT / SiT / ReDi transformer out of a checkpoint whose
// configuration is not stored in it: the official `.pt` files (a bare state_dict, or a training
// checkpoint {"model", "ema", "opt", "args"}) and redi's own files.
//
//   auto src = redi::io::TorchCheckpoint::open("SiT-XL-2-256.pt");
//   std::string prefix = redi::state_dict_prefix(src);           // "ema." when present, else "model.", else ""
//   redi::InferredModel m = redi::infer_model_config(src, prefix, {.image_channels = 4});
//
// The geometry follows from the tensor shapes (official names, docs/method.md section 9):
//   x_embedder.proj.weight [D, Cin, p, p]         width D, patch p, input channels
//   z_embedder.proj.weight [D, r, pz, pz]         present: features have their own embedder
//                                                 (Separate fusion, or their own grid: pz != p)
//   pos_embed [1, L, D]                           grid sqrt(L), input_size = grid * p
//   blocks.N.*                                    depth = largest N + 1
//   blocks.0.mlp.fc1.weight [Dm, D]               mlp_ratio = Dm / D
//   t_embedder.mlp.0.weight [D, F]                freq_dim F
//   y_embedder.embedding_table.weight [K + 1, D]  K classes (+ the null class)
//   final_layer.linear.weight [p*p*Cout, D]       Cout = 2 x channels: learned sigma
// The number of heads is not in the shapes: the DiT/SiT presets' (width 384: 6, 768: 12,
// 1024 and 1152: 16) unless given; the image channels split Cin = Cx + r (default Cx = 4, the
// SD-VAE's latents). Anything inconsistent is a redi::Error naming the file and the tensor.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include "redi/io/common.hpp"
#include "redi/nn/config.hpp"

namespace redi {

/// "ema." if the source holds ema.* tensors, else "model." if model.*, else "" (a bare state_dict).
template <io::TensorSource Src>
std::string state_dict_prefix(const Src& src) {
  bool model = false;
  for (const auto& n : src.names()) {
    if (n.rfind("ema.", 0) == 0) return "ema.";
    model = model || n.rfind("model.", 0) == 0;
  }
  return model ? "model." : "";
}

struct InferOptions {
  int image_channels = 4;  ///< Cx (the rest of the embedder's input channels are features)
  int heads = 0;           ///< 0: the preset's for the width
};

struct InferredModel {
  ModelConfig cfg;
  bool has_z_embedder = false;  ///< separate feature embedder/head (Separate fusion or own grid)
};

template <io::TensorSource Src>
InferredModel infer_model_config(const Src& src, const std::string& prefix, const InferOptions& opt = {}) {
  const std::string& f = src.label();
  auto shape = [&](const std::string& n) -> std::vector<std::int64_t> {
    REDI_CHECK(src.contains(prefix + n), f, ": no tensor '", prefix + n,
               "' (not a DiT/SiT/ReDi state_dict under prefix '", prefix, "')");
    return src.info(prefix + n).shape;
  };
  auto want = [&](bool ok, const std::string& n, const char* what) {
    REDI_CHECK(ok, f, ": tensor '", prefix + n, "' has shape ", io::shape_str(src.info(prefix + n).shape), ": ", what);
  };
  InferredModel m;
  ModelConfig& c = m.cfg;
  const auto xe = shape("x_embedder.proj.weight");
  want(xe.size() == 4 && xe[2] == xe[3], "x_embedder.proj.weight", "expected [D, C, p, p]");
  c.width = int(xe[0]);
  c.patch = int(xe[2]);
  const int cin_x = int(xe[1]);
  m.has_z_embedder = src.contains(prefix + "z_embedder.proj.weight");
  int pz = c.patch;
  if (m.has_z_embedder) {
    const auto ze = shape("z_embedder.proj.weight");
    want(ze.size() == 4 && ze[0] == c.width, "z_embedder.proj.weight", "expected [D, r, pz, pz]");
    c.image_channels = cin_x;
    c.feature_channels = int(ze[1]);
    pz = int(ze[2]);
  } else {
    REDI_CHECK(opt.image_channels > 0 && opt.image_channels <= cin_x, f, ": x_embedder takes ", cin_x,
               " channels, fewer than the ", opt.image_channels, " image channels");
    c.image_channels = opt.image_channels;
    c.feature_channels = cin_x - opt.image_channels;
  }
  const auto pos = shape("pos_embed");
  want(pos.size() == 3 && pos[2] == c.width, "pos_embed", "expected [1, L, D]");
  const int grid = int(std::lround(std::sqrt(double(pos[1]))));
  want(std::int64_t(grid) * grid == pos[1], "pos_embed", "L is not a square grid");
  c.input_size = grid * c.patch;
  if (pz != c.patch) c.feature_size = c.input_size * pz / c.patch;
  int depth = 0;
  for (const auto& n : src.names()) {
    if (n.rfind(prefix + "blocks.", 0) != 0) continue;
    const std::string rest = n.substr(prefix.size() + 7);
    depth = std::max(depth, std::stoi(rest.substr(0, rest.find('.'))) + 1);
  }
  REDI_CHECK(depth > 0, f, ": no '", prefix, "blocks.N.*' tensors");
  c.depth = depth;
  const auto fc1 = shape("blocks.0.mlp.fc1.weight");
  want(fc1.size() == 2 && fc1[1] == c.width && fc1[0] % c.width == 0, "blocks.0.mlp.fc1.weight", "expected [r*D, D]");
  c.mlp_ratio = int(fc1[0] / c.width);
  const auto t0 = shape("t_embedder.mlp.0.weight");
  want(t0.size() == 2 && t0[0] == c.width, "t_embedder.mlp.0.weight", "expected [D, F]");
  c.freq_dim = int(t0[1]);
  const auto y = shape("y_embedder.embedding_table.weight");
  want(y.size() == 2 && y[1] == c.width && y[0] >= 2, "y_embedder.embedding_table.weight", "expected [K + 1, D]");
  c.num_classes = int(y[0] - 1);
  const auto fl = shape("final_layer.linear.weight");
  const int pp = c.patch * c.patch;
  want(fl.size() == 2 && fl[0] % pp == 0, "final_layer.linear.weight", "expected [p*p*C, D]");
  const int cout = int(fl[0] / pp), cplain = m.has_z_embedder ? c.image_channels : c.channels_in();
  want(cout == cplain || cout == 2 * cplain, "final_layer.linear.weight", "output channels match neither C nor 2C");
  c.learn_sigma = cout == 2 * cplain;
  c.heads = opt.heads;
  if (c.heads <= 0) {
    c.heads = c.width == 384 ? 6 : c.width == 768 ? 12 : (c.width == 1024 || c.width == 1152) ? 16 : 0;
    REDI_CHECK(c.heads > 0, f, ": width ", c.width, " is no DiT/SiT preset; give the number of heads");
  }
  c.validate();
  return m;
}

}  // namespace redi
