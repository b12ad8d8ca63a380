// tests/fuzz/fuzz_models.hpp — the tiny model whose checkpoints fuzz_checkpoint loads; the seed
// generator writes a checkpoint of the same model, so mutations reach every tensor check.
#pragma once
#include "redi/redi.hpp"  // the model type and the CPU ops backend

namespace redi::fuzz {

using CkptModel = ReDi<SiT, Merged, FlowMatching>;

inline CkptModel::Options ckpt_model_options() {
  CkptModel::Options o;
  o.model.input_size = 4;
  o.model.patch = 2;
  o.model.image_channels = 1;
  o.model.feature_channels = 1;
  o.model.depth = 1;
  o.model.width = 8;
  o.model.heads = 2;
  o.model.mlp_ratio = 1;
  o.model.num_classes = 2;
  o.model.freq_dim = 8;
  return o;
}

}  // namespace redi::fuzz
