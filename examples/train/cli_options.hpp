// examples/train/cli_options.hpp — redi_train's parsed settings, shared by its translation
// units (main.cpp parses, data_prep.cpp builds the training set, run_sit.cpp / run_dit.cpp hold
// the compile-time model instantiations), and the flag parsing redi_train and
// redi_train_imagenet share.
#pragma once
#include <cstdint>
#include <string>

#include "redi/train/cli.hpp"
#include "redi/redi_model.hpp"
#include "redi/train/trainer.hpp"

namespace redi_examples {

using redi::cli::Args;
using redi::cli::UsageError;

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
  redi::StepConfig train{};
  // run
  int batch = 64;
  std::int64_t steps = 1000;
  bool hflip = false;
  redi::Recompute recompute = redi::Recompute::None;  // --recompute (memory only)
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
  // ranks (mpirun -np W redi_train ...): nullptr = one process (docs/distributed.md)
  redi::dist::Communicator* comm = nullptr;
};

/// --depth/--width/--heads/--patch (overriding the preset already in c.model), --r (0..max_r,
/// default 8) and --learn-sigma (dit only).
inline void parse_geometry_flags(const Args& a, CliOptions& c, int max_r) {
  c.model.depth = int(a.integer("depth", c.model.depth, 1, 256));
  c.model.width = int(a.integer("width", c.model.width, 4, 16384));
  c.model.heads = int(a.integer("heads", c.model.heads, 1, 256));
  c.model.patch = int(a.integer("patch", c.model.patch, 1, 8));
  c.model.feature_channels = int(a.integer("r", 8, 0, max_r));
  c.model.learn_sigma = a.flag("learn-sigma");
  if (c.model.learn_sigma && c.backbone != "dit") throw UsageError("--learn-sigma: only the dit backbone learns sigma");
}

/// --sampler (sit: sde | euler | heun; dit: ddpm | ddim), --sample-steps (default 250 for sde and
/// ddpm, else 50; at least 2 for sde, else at least min_steps), --guidance (rg needs --r > 0),
/// --cfg, --rg (defaults cfg, rg) and --num-samples. c.backbone and c.model are parsed already.
inline void parse_sampling_flags(const Args& a, CliOptions& c, int min_steps, double cfg, double rg) {
  const bool flow = c.backbone == "sit";
  c.sampler = flow ? a.choice("sampler", "sde", {"sde", "euler", "heun"}) : a.choice("sampler", "ddpm", {"ddpm", "ddim"});
  const int def_steps = c.sampler == "sde" || c.sampler == "ddpm" ? 250 : 50;
  c.sample_steps = int(a.integer("sample-steps", def_steps, c.sampler == "sde" ? 2 : min_steps, 1000));
  c.guidance = a.choice("guidance", "cfg", {"none", "cfg", "cfg-joint", "rg", "cfg+rg"});
  if ((c.guidance == "rg" || c.guidance == "cfg+rg") && c.model.feature_channels == 0)
    throw UsageError("--guidance " + c.guidance + ": representation guidance needs --r > 0");
  c.cfg_scale = a.real("cfg", cfg, 0.0, 1000.0);
  c.rg_scale = a.real("rg", rg, 0.0, 1000.0);
  c.num_samples = int(a.integer("num-samples", 0, 0, 100'000'000));
}

/// Loads the data set and (r > 0) computes its PCA features; caches the encoder, PCA and
/// normalisation in the output directory so that a resumed run sees the same z.
redi::data::TrainSet prepare_data(const CliOptions& c);

int run_sit(const CliOptions& c, const redi::data::TrainSet& data);  // run_sit.cpp
int run_dit(const CliOptions& c, const redi::data::TrainSet& data);  // run_dit.cpp
/// The same on the GPU with BF16Mixed precision (examples/train_imagenet/run_cuda.cu; only in
/// builds with CUDA, where REDI_EXAMPLES_HAVE_CUDA is defined).
int run_cuda(const CliOptions& c, const redi::data::TrainSet& data);

}  // namespace redi_examples
