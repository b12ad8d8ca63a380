// redi_train_imagenet — the paper's setup (docs/method.md section 8): ImageNet 256x256 as pre-extracted
// SD-VAE-ft-EMA latents (32x32x4) and DINOv2-B/14-reg patch features, PCA to r = 8 with the
// authors' PCA file, SiT-XL/2 (or DiT) with Merged fusion, batch 256, AdamW lr 1e-4, EMA 0.9999,
// 400K steps. The data cannot be extracted here (no ImageNet, VAE or DINOv2 weights), so this
// program validates its inputs and fails with messages naming what is missing; see --help.
#include <algorithm>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "redi/train/cli.hpp"
#include "../train/cli_options.hpp"
#include "redi/core/paths.hpp"
#include "redi/data/pca_io.hpp"
#include "redi/io/npz.hpp"
#include "redi/io/safetensors.hpp"

namespace fs = std::filesystem;
using redi::cli::Args;
using redi_examples::CliOptions;
using redi::cli::UsageError;

namespace {

const char* kUsage = R"(usage: redi_train_imagenet --data DIR [options]
The ReDi paper's ImageNet-256 training (SiT-XL/2 + ReDi by default) from PRE-EXTRACTED shards.
redi does not run the SD-VAE or DINOv2: extract them with the authors' PyTorch code first.
Honest expectations: on the CPU, SiT-XL/2 at batch 256 takes minutes per step; use --device cuda
(bf16 mixed precision on GPU 0, in builds with CUDA). The whole training set is held in host
memory (latents 21 GB + features 10.5 GB as float).
Data (--data DIR): every *.safetensors or *.npz file in DIR (sorted by name) is one shard with
  latents [n, 4, 32, 32]   SD-VAE-ft-EMA latent means of ADM-center-cropped 256x256 images,
                           already multiplied by 0.18215 (else pass --latent-scale 0.18215)
  labels   [n]             ImageNet class ids 0..999
  and one of
  dinov2   [n, 256, 768]   DINOv2-B/14-reg x_norm_patchtokens (224x224 input, 16x16 tokens),
                           reduced here with the PCA file (z = PCA_r, 16x16, then bilinear to 32x32)
  z        [n, R, 16, 16]  features already projected on the first R >= r PCs
Options (defaults = the paper's):
  --pca FILE             the authors' PCA (default: dinov2_vitb14_reg_pca.safetensors in redi's
                         data folder, $REDI_DATA_DIR or the repository's / install's data/)
  --latent-scale X       multiply latents by X (default 1)
  --backbone sit|dit     (sit; objective follows)  --fusion merged|separate (merged)
  --size XL/2 --depth/--width/--heads/--patch  --learn-sigma (dit)
  --r N (8; 0 = plain)  --lambda-z X (1)  --p-drop X (0; 0.2 to train representation guidance)
  --pc-norm              normalise PCs per channel (default off: the public code keeps the
                         natural scale, std 5.8 .. 3.6)
  --batch N (256)  --steps N (400000)  --lr X (1e-4)  --ema X (0.9999)  --seed N (0)
  --out DIR (runs/imagenet)  --log-every N (100)  --ckpt-every N (10000)  --resume auto|PATH
  --max-minutes M  --threads N  --device cpu|cuda (cpu; cuda = BF16Mixed on GPU 0)
  --recompute none|attention|mlp|block   recompute those activations in the backward pass
                         (none; same results, less memory: SiT-XL/2 at batch 256 in bf16 fits
                         an 80 GB card with mlp or block, docs/cuda.md "Memory")
  --sampler sde|euler|heun (sit) ddpm|ddim (dit)  --sample-steps N  --guidance G  --cfg X  --rg X
  --num-samples N        at the end: N latent samples -> samples_latents.safetensors (decode them
                         with the SD-VAE, then build the evaluator's .npz)
Exit status: 0 done, 1 error (names the missing or malformed file), 2 usage error.
)";

/// Reads a float tensor from a shard (safetensors or npz) with a shape check.
struct Shard {
  fs::path path;
  bool npz = false;
  std::vector<std::int64_t> shape(const std::string& key) const {
    if (npz) return redi::io::NpzFile::open(path).info(key).shape;
    return redi::io::SafeTensorsFile::open(path).info(key).shape;
  }
  bool has(const std::string& key) const {
    if (npz) return redi::io::NpzFile::open(path).contains(key);
    return redi::io::SafeTensorsFile::open(path).contains(key);
  }
  template <class T>
  std::vector<T> read(const std::string& key) const {
    if (npz) return redi::io::NpzFile::open(path).read<T>(key);
    return redi::io::SafeTensorsFile::open(path).read<T>(key);
  }
};

std::string shape_text(const std::vector<std::int64_t>& s) { return redi::io::shape_str(s); }

redi::data::TrainSet load_shards(const fs::path& dir, const CliOptions& c, const fs::path& pca_path, double scale) {
  REDI_CHECK(fs::is_directory(dir), dir.string(), ": --data directory not found (it must hold the latent/feature shards; "
             "see --help)");
  std::vector<Shard> shards;
  for (const auto& e : fs::directory_iterator(dir)) {
    const auto ext = e.path().extension().string();
    if (e.is_regular_file() && (ext == ".safetensors" || ext == ".npz")) shards.push_back({e.path(), ext == ".npz"});
  }
  std::sort(shards.begin(), shards.end(), [](const Shard& a, const Shard& b) { return a.path < b.path; });
  REDI_CHECK(!shards.empty(), dir.string(), ": no *.safetensors or *.npz shards found");
  const int r = c.model.feature_channels;
  redi::data::Pca pca;
  bool pca_loaded = false;
  redi::data::TrainSet t;
  t.cx = 4; t.h = 32; t.w = 32; t.r = r; t.zh = r ? 16 : 0; t.zw = r ? 16 : 0; t.num_classes = 1000;
  t.name = "imagenet-latents:" + dir.string();
  for (const auto& s : shards) {
    const std::string f = s.path.string();
    for (const char* k : {"latents", "labels"})
      REDI_CHECK(s.has(k), f, ": shard has no '", k, "' array");
    const auto ls = s.shape("latents");
    REDI_CHECK(ls.size() == 4 && ls[1] == 4 && ls[2] == 32 && ls[3] == 32, f, ": 'latents' has shape ", shape_text(ls),
               ", expected [n, 4, 32, 32]");
    const std::int64_t n = ls[0];
    REDI_CHECK(s.shape("labels") == std::vector<std::int64_t>{n}, f, ": 'labels' has shape ",
               shape_text(s.shape("labels")), ", expected [", n, "]");
    auto x = s.read<float>("latents");
    for (auto& v : x) v *= float(scale);
    t.x.insert(t.x.end(), x.begin(), x.end());
    const auto y = s.read<std::int64_t>("labels");
    for (auto v : y) {
      REDI_CHECK(v >= 0 && v < 1000, f, ": label ", v, " outside 0..999");
      t.labels.push_back(int(v));
    }
    if (r > 0) {
      std::vector<float> z;
      if (s.has("z")) {
        const auto zs = s.shape("z");
        REDI_CHECK(zs.size() == 4 && zs[0] == n && zs[1] >= r && zs[2] == 16 && zs[3] == 16, f, ": 'z' has shape ",
                   shape_text(zs), ", expected [", n, ", R >= ", r, ", 16, 16]");
        const auto all = s.read<float>("z");
        for (std::int64_t i = 0; i < n; ++i)
          z.insert(z.end(), all.begin() + std::ptrdiff_t(i * zs[1] * 256), all.begin() + std::ptrdiff_t((i * zs[1] + r) * 256));
      } else {
        REDI_CHECK(s.has("dinov2"), f, ": shard has neither 'dinov2' [n, 256, 768] nor 'z' [n, R, 16, 16] features");
        const auto ds = s.shape("dinov2");
        REDI_CHECK(ds.size() == 3 && ds[0] == n && ds[1] == 256 && ds[2] == 768, f, ": 'dinov2' has shape ",
                   shape_text(ds), ", expected [", n, ", 256, 768]");
        if (!pca_loaded) {
          REDI_CHECK(fs::exists(pca_path), pca_path.string(), ": PCA file not found (--pca; the authors' file ships in redi's data folder as "
                     "data/dinov2_vitb14_reg_pca.safetensors)");
          pca = redi::data::load_pca(pca_path, r);
          pca_loaded = true;
        }
        const auto feats = s.read<float>("dinov2");
        z.resize(std::size_t(n) * r * 256);
        redi::data::features_to_latent(pca, r, feats.data(), int(n), 16, 16, z.data(), 16, 16);
      }
      t.z.insert(t.z.end(), z.begin(), z.end());
    }
    t.n += int(n);
    std::cout << "[imagenet] " << f << ": " << n << " samples\n";
  }
  return t;
}

}  // namespace

int main(int argc, char** argv) {
  return redi::cli::run_main("redi_train_imagenet", [&] {
    const Args a(argc, argv,
                 {"data", "pca", "latent-scale", "backbone", "fusion", "size", "depth", "width", "heads", "patch", "r",
                  "lambda-z", "p-drop", "batch", "steps", "lr", "ema", "seed", "out", "log-every", "ckpt-every",
                  "resume", "max-minutes", "threads", "sampler", "sample-steps", "guidance", "cfg", "rg",
                  "num-samples", "device", "recompute"},
                 {"help", "learn-sigma", "pc-norm"});
    if (a.flag("help")) {
      std::cout << kUsage;
      return 0;
    }
    if (!a.has("data")) throw UsageError("--data DIR is required (the pre-extracted shards; see --help)");
    const fs::path data = a.str("data");
    const fs::path pca = a.str("pca", (redi::data_dir() / "dinov2_vitb14_reg_pca.safetensors").string());
    const double scale = a.real("latent-scale", 1.0, 1e-6, 1e6);
    const std::string device = a.choice("device", "cpu", {"cpu", "cuda"});
#if !defined(REDI_EXAMPLES_HAVE_CUDA)
    if (device == "cuda")
      throw UsageError("--device cuda: this redi_train_imagenet was built without CUDA (configure redi with "
                       "-DREDI_WITH_CUDA=ON on a machine with nvcc)");
#endif
    CliOptions c;
    c.dataset = "imagenet-latents";
    c.backbone = a.choice("backbone", "sit", {"sit", "dit"});
    c.fusion = a.choice("fusion", "merged", {"merged", "separate"});
    try {
      c.model.preset(a.str("size", "XL/2"));
    } catch (const redi::Error&) {
      throw UsageError("--size: '" + a.str("size") + "' is not a preset (S|B|L|XL / 2|4|8)");
    }
    c.model.input_size = 32;
    c.model.image_channels = 4;
    c.model.num_classes = 1000;
    redi_examples::parse_geometry_flags(a, c, 768);
    if (c.fusion == "separate" && c.model.feature_channels == 0) throw UsageError("--fusion separate needs --r > 0");
    c.pc_norm = a.flag("pc-norm");
    c.lambda_z = a.real("lambda-z", 1.0, 0.0, 1e6);
    c.p_drop = a.real("p-drop", 0.0, 0.0, 1.0);
    c.train.adamw.lr = a.real("lr", 1e-4, 1e-12, 10.0);
    c.train.ema_decay = a.real("ema", 0.9999, 0.0, 1.0);
    c.train.seed = std::uint64_t(a.integer("seed", 0, 0, INT64_MAX));
    c.batch = int(a.integer("batch", 256, 1, 1 << 20));
    c.steps = a.integer("steps", 400000, 0, INT64_MAX);
    c.out = a.str("out", "runs/imagenet");
    c.log_every = int(a.integer("log-every", 100, 0, INT32_MAX));
    c.ckpt_every = a.integer("ckpt-every", 10000, -1, INT64_MAX);
    c.sample_every = -1;
    c.resume = a.str("resume");
    c.max_minutes = a.real("max-minutes", 0.0, 0.0, 1e9);
    c.recompute = redi::cli::recompute_flag(a);
    redi_examples::parse_sampling_flags(a, c, 2, 2.4, 1.1);
    redi::cli::apply_threads_flag(a);

    redi::data::TrainSet t = load_shards(data, c, pca, scale);
    if (c.pc_norm && c.model.feature_channels > 0) {
      redi::data::PcStats st(c.model.feature_channels);
      st.add(t.z.data(), t.n, 256);
      st.finish().apply(t.z.data(), t.n, 256);
    }
#if defined(REDI_EXAMPLES_HAVE_CUDA)
    if (device == "cuda") return redi_examples::run_cuda(c, t);
#endif
    return c.backbone == "sit" ? redi_examples::run_sit(c, t) : redi_examples::run_dit(c, t);
  });
}
