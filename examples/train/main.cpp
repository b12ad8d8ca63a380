// redi_train — train a ReDi (or plain) DiT/SiT on Fashion-MNIST, CIFAR-10 or an image folder,
// in pixel space, on the CPU; see --help and docs/training.md.
#include <iostream>
#include <optional>
#include <string>

#include "redi/train/cli.hpp"
#include "cli_options.hpp"
#if REDI_TRAIN_HAVE_MPI
#include "redi/dist/mpi.hpp"
#endif

namespace {

const char* kUsage = R"(usage: redi_train [options]
Trains a ReDi diffusion transformer (image + PCA'd representation features, jointly) or the plain
model (--r 0) in pixel space, with checkpoints that resume bit-identically.
Data and features:
  --dataset D          fashion-mnist (padded to 32x32) | cifar10 | folder:PATH (default fashion-mnist)
  --data-dir DIR       where fashion-mnist / cifar10 live (defaults: see docs/data.md)
  --image-size N       folder: ADM center crop to N x N (default 32); --channels 1|3 (default 3)
  --r N                feature channels (PCs), 0 = the plain model (default 8)
  --features F         encoder (a small supervised ViT trained first) | patch (raw 4x4 patches)
  --encoder-steps N    (default 600)
  --no-pc-norm         keep the PCs at their natural scale (default: mean 0 / std 1 per channel)
Model (objective follows the backbone: dit -> DDPM, sit -> flow matching):
  --backbone dit|sit   (default sit)        --fusion merged|separate (default merged)
  --size S/2|S/4|B/2|...                    preset (default S/4); then optionally override
  --depth N --width N --heads N --patch N   custom geometry
  --learn-sigma        DiT only: learned variance (loss mse + vb)
Training:
  --batch N (64)  --steps N (1000)  --lr X (1e-4)  --warmup N (0)  --grad-clip X (0 = off)
  --ema X (0.9999)  --weight-decay X (0)  --seed N (0)  --hflip
  --lambda-z X (1)  --p-drop X (0; RG training, public README 0.2)  --per-sample-drop
  --label-drop X (0.1)
  --out DIR (runs/train)  --log-every N (50)  --sample-every N (0 = at the end, -1 never)
  --ckpt-every N (1000)  --resume auto|PATH  --max-minutes M (0 = no limit)  --threads N
  --recompute P        none | attention | mlp | block: recompute those activations in the backward
                       pass instead of keeping them (less memory, same results; default none)
Sampling (grids during training, and --num-samples at the end -> samples.npz, ADM format):
  --sampler S          sit: sde | euler | heun (default sde); dit: ddpm | ddim (default ddpm)
  --sample-steps N     (default: sde 250, euler/heun 50, ddpm 250, ddim 50)
  --guidance G         none | cfg | cfg-joint | rg | cfg+rg (default cfg; rg needs --r > 0)
  --cfg X (1.5)  --rg X (1.5)  --num-samples N (0)  --grid N (64 images per PNG grid)
Ranks: mpirun -np W redi_train ... (or srun) trains data-parallel: --batch is the global batch
  (a multiple of W), rank 0 logs and writes the files, the result is the one-process run's
  (docs/distributed.md).
  --help
Exit status: 0 done, 1 error (message names the file/step), 2 usage error.
)";

using redi::cli::Args;
using redi_examples::CliOptions;
using redi::cli::UsageError;

CliOptions parse(const Args& a) {
  CliOptions c;
  c.dataset = a.str("dataset", c.dataset);
  if (c.dataset != "fashion-mnist" && c.dataset != "cifar10" && c.dataset.rfind("folder:", 0) != 0)
    throw UsageError("--dataset: '" + c.dataset + "' is not fashion-mnist, cifar10 or folder:PATH");
  if (c.dataset == "folder:") throw UsageError("--dataset: folder: needs a path (folder:PATH)");
  c.data_dir = a.str("data-dir");
  c.image_size = int(a.integer("image-size", 32, 8, 4096));
  c.channels = int(a.integer("channels", 3, 1, 3));
  if (c.channels == 2) throw UsageError("--channels: 2 is not 1 or 3");
  c.features = a.choice("features", "encoder", {"encoder", "patch"});
  c.encoder_steps = int(a.integer("encoder-steps", 600, 1, 10'000'000));
  c.pc_norm = !a.flag("no-pc-norm");
  c.backbone = a.choice("backbone", "sit", {"sit", "dit"});
  c.fusion = a.choice("fusion", "merged", {"merged", "separate"});
  try {
    c.model.preset(a.str("size", "S/4"));
  } catch (const redi::Error& e) {
    throw UsageError("--size: '" + a.str("size") + "' is not a preset (S|B|L|XL / 2|4|8, e.g. S/2)");
  }
  const int input = c.dataset == "fashion-mnist" || c.dataset == "cifar10" ? 32 : c.image_size;
  c.model.input_size = input;
  c.model.image_channels = c.dataset == "fashion-mnist" ? 1 : (c.dataset == "cifar10" ? 3 : c.channels);
  c.model.num_classes = 1000;  // set from the data set in main
  redi_examples::parse_geometry_flags(a, c, 1024);
  if (c.fusion == "separate" && c.model.feature_channels == 0)
    throw UsageError("--fusion separate needs --r > 0 (r = 0 is the plain model: use merged)");
  try {
    c.model.validate();
  } catch (const redi::Error& e) {
    throw UsageError(std::string("invalid model geometry (--depth/--width/--heads/--patch): ") + e.what());
  }
  c.lambda_z = a.real("lambda-z", 1.0, 0.0, 1e6);
  c.p_drop = a.real("p-drop", 0.0, 0.0, 1.0);
  c.per_sample_drop = a.flag("per-sample-drop");
  c.label_drop = a.real("label-drop", 0.1, 0.0, 1.0);
  c.train.adamw.lr = a.real("lr", 1e-4, 1e-12, 10.0);
  c.train.adamw.weight_decay = a.real("weight-decay", 0.0, 0.0, 10.0);
  c.train.warmup_steps = int(a.integer("warmup", 0, 0, 100'000'000));
  c.train.grad_clip = a.real("grad-clip", 0.0, 0.0, 1e12);
  c.train.ema_decay = a.real("ema", 0.9999, 0.0, 1.0);
  c.train.seed = std::uint64_t(a.integer("seed", 0, 0, INT64_MAX));
  c.batch = int(a.integer("batch", 64, 1, 1 << 20));
  c.steps = a.integer("steps", 1000, 0, INT64_MAX);
  c.hflip = a.flag("hflip");
  c.recompute = redi::cli::recompute_flag(a);
  c.out = a.str("out", c.out);
  if (c.out.empty()) throw UsageError("--out: empty directory name");
  c.log_every = int(a.integer("log-every", 50, 0, INT32_MAX));
  c.sample_every = a.integer("sample-every", 0, -1, INT64_MAX);
  c.ckpt_every = a.integer("ckpt-every", 1000, -1, INT64_MAX);
  c.resume = a.str("resume");
  if (a.has("resume") && c.resume.empty()) throw UsageError("--resume: needs auto or a checkpoint path");
  c.max_minutes = a.real("max-minutes", 0.0, 0.0, 1e9);
  redi_examples::parse_sampling_flags(a, c, 1, 1.5, 1.5);
  c.grid = int(a.integer("grid", 64, 0, 10000));
  return c;
}

}  // namespace

int main(int argc, char** argv) {
#if REDI_TRAIN_HAVE_MPI
  // Under mpirun / srun: one rank per process, data-parallel (docs/distributed.md). Started
  // directly: one process, MPI untouched.
  std::optional<redi::dist::MpiRuntime> mpi_runtime;
  std::optional<redi::dist::Mpi> world;
  if (redi::dist::MpiRuntime::launched()) mpi_runtime.emplace(argc, argv), world.emplace();
#endif
  return redi::cli::run_main("redi_train", [&] {
    const Args a(argc, argv,
                 {"dataset", "data-dir", "image-size", "channels", "r", "features", "encoder-steps", "backbone",
                  "fusion", "size", "depth", "width", "heads", "patch", "batch", "steps", "lr", "warmup",
                  "grad-clip", "ema", "weight-decay", "seed", "lambda-z", "p-drop", "label-drop", "out",
                  "log-every", "sample-every", "ckpt-every", "resume", "max-minutes", "threads", "sampler",
                  "sample-steps", "guidance", "cfg", "rg", "num-samples", "grid", "recompute"},
                 {"help", "no-pc-norm", "learn-sigma", "hflip", "per-sample-drop"});
    if (a.flag("help")) {
      std::cout << kUsage;
      return 0;
    }
    CliOptions c = parse(a);
    redi::cli::apply_threads_flag(a);
#if REDI_TRAIN_HAVE_MPI
    if (world && world->size() > 1) {
      c.comm = &*world;
      if (world->rank() != 0) std::cout.setstate(std::ios::failbit);  // one console: rank 0's
    }
#endif
    // rank 0 prepares the data first and caches the encoder / PCA in --out; the other ranks
    // then load the same files (the same z bits as rank 0's)
    if (c.comm && c.comm->rank() != 0) c.comm->barrier();
    redi::data::TrainSet data = redi_examples::prepare_data(c);
    if (c.comm && c.comm->rank() == 0) c.comm->barrier();
    c.model.num_classes = data.num_classes;
    return c.backbone == "sit" ? redi_examples::run_sit(c, data) : redi_examples::run_dit(c, data);
  });
}
