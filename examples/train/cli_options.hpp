// examples/train/cli_options.hpp — redi_train's parsed settings, shared by its translation
// units (main.cpp parses, data_prep.cpp builds the training set, run_sit.cpp / run_dit.cpp hold
// the compile-time model instantiations).
#pragma once
#include <cstdint>
#include <string>

#include "redi/redi_model.hpp"
#include "redi/train/trainer.hpp"

namespace redi_examples {

struct CliOptions {
  // data
  std::string dataset = "fashion-mnist";  // fashion-mnist | cifar10 | folder:PATH
  std::string data_dir;
  int image_size = 32;                    // folder: ADM center crop to this size
  int channels = 3;                       // folder: 1 or 3
  // features
  std::string features = "encoder";       // encoder (trained ViT) | patch (raw-patch PCA)
  int encoder_steps = 600;
  bool pc_norm = true;                    // per-channel normalisation of the PCs
  // model
  std::string backbone = "sit", fusion = "merged";
  redi::ModelConfig model{};
  double lambda_z = 1.0, p_drop = 0.0, label_drop = 0.1;
  bool per_sample_drop = false;
  redi::TrainConfig train{};
  // run
  int batch = 64;
  std::int64_t steps = 1000;
  bool hflip = false;
  std::string out = "runs/train";
  int log_every = 50;
  std::int64_t sample_every = 0, ckpt_every = 1000;
  std::string resume;                     // "", "auto" or a checkpoint path
  double max_minutes = 0;
  // sampling
  std::string sampler;                    // sit: sde | euler | heun; dit: ddpm | ddim
  int sample_steps = 0;
  std::string guidance = "cfg";           // none | cfg | cfg-joint | rg | cfg+rg
  double cfg_scale = 1.5, rg_scale = 1.5;
  int num_samples = 0, grid = 64;
};

/// Loads the data set and (r > 0) computes its PCA features; caches the encoder, PCA and
/// normalisation in the output directory so that a resumed run sees the same z.
redi::train::TrainSet prepare_data(const CliOptions& c);

int run_sit(const CliOptions& c, const redi::train::TrainSet& data);  // run_sit.cpp
int run_dit(const CliOptions& c, const redi::train::TrainSet& data);  // run_dit.cpp

}  // namespace redi_examples
