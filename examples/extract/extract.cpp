// redi_extract — an ImageNet-layout image folder -> the shards redi_train_imagenet reads:
// ADM centre crop -> SD-VAE latents and DINOv2-B/14-reg patch features -> PCA -> r channels.
// See --help and docs/pipeline.md ("DINOv2 features and extraction").
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include "extract_pipeline.hpp"
#include "redi/core/philox.hpp"
#include "redi/data/pca_io.hpp"
#include "redi/io/atomic_file.hpp"
#include "redi/nn/vae.hpp"
#include "redi/ops/cpu_backend.hpp"
#include "redi/train/cli.hpp"
#include "redi/weights/dinov2.hpp"
#include "redi/weights/vae.hpp"

#if defined(REDI_EXTRACT_HAVE_CUDA)
namespace redi_extract {
MomentsFn make_cuda_vae(const redi::VaeConfig& cfg, const std::string& path);  // vae_cuda.cu
redi::Dinov2Encoder make_cuda_dinov2(const std::string& path, int heads);       // dinov2_cuda.cu
}
#endif

namespace fs = std::filesystem;
using redi::cli::Args;
using redi::cli::UsageError;
using namespace redi_extract;

namespace {

const char* kUsage = R"(usage: redi_extract --images DIR --out DIR --vae FILE --dinov2 FILE [options]
An ImageNet-layout folder (DIR/<class>/<image>.{png,jpg,jpeg}, any case: ImageNet's .JPEG files are
read as they are, the signature picks the decoder; classes = sorted sub-folder names)
-> ADM centre crop to --size -> SD-VAE latents and DINOv2 patch features -> PCA -> shards
OUT/shard_NNNNN.safetensors that redi_train_imagenet --data OUT reads as they are:
  latents [n, 4, size/8, size/8]  0.18215 * VAE posterior mean (--latents sample: one sample)
  labels [n] (I64), z [n, R, 16, 16] (R = --r PCA channels), image_index [n], flipped [n]
Weights: --vae diffusion_pytorch_model.safetensors|.bin (stabilityai/sd-vae-ft-ema, diffusers names)
         --dinov2 model.safetensors|pytorch_model.bin (facebook/dinov2-with-registers-base)
PCA: --pca FILE (the authors' file, e.g. data/dinov2_vitb14_reg_pca.safetensors) or, without it,
     fitted here first on --pca-images random images (default 76800, as the paper; streaming
     covariance: memory 768^2 doubles) and written to OUT/pca/pca.safetensors (all 768 axes).
Options:
  --r N (8)              PCA channels stored (train with --r <= N)
  --flips                also store the mirrored image as a second sample (2x disk and time)
  --lenient-jpeg         decode JPEGs that libjpeg warns about (corrupt data it concealed), as PIL
                         does; default: such a file is an error naming it. Truncated files always are.
  --latents mean|sample  (mean)   --seed N (0: PCA subset and posterior samples)
  --size N (256)         crop size (DINOv2 sees 224 * size / 256)
  --shard-size N (10000) images per shard   --batch N (32)   --limit N (first N images only)
  --dtype f32|f16|bf16 (f32)  storage of latents and z (the reader converts to float)
  --device cpu|cuda (cpu; cuda runs the VAE and DINOv2 on GPU 0)   --threads N
  --vae-channels 128,256,512,512 --vae-layers 2 --vae-groups 32   (sd-vae-ft-ema; for small test nets)
  --dinov2-heads N       (default: the file's metadata, else width / 64)
Resumable: OUT/extract.txt records the options and the listing; a rerun with the same ones skips
the complete shards (and a fitted PCA) and continues; different ones are an error.
Exit status: 0 done, 1 error (names the file), 2 usage error.
)";

std::vector<int> parse_ints(const std::string& flag, const std::string& s) {
  std::vector<int> v;
  std::stringstream ss(s);
  std::string tok;
  while (std::getline(ss, tok, ',')) {
    try {
      v.push_back(std::stoi(tok));
    } catch (...) {
      throw UsageError("--" + flag + ": '" + s + "' is not a comma-separated list of integers");
    }
  }
  if (v.empty()) throw UsageError("--" + flag + ": empty list");
  return v;
}

std::string hms(double s) {
  if (!(s >= 0) || s > 1e9) return "?";
  const long t = long(s + 0.5);
  char b[32];
  std::snprintf(b, sizeof b, "%ldh%02ldm%02lds", t / 3600, (t / 60) % 60, t % 60);
  return b;
}

/// Prints "[extract] <stage> i/n  x img/s  ETA ..." at most every `every` seconds (and at the end).
class Progress {
public:
  Progress(std::string stage, std::int64_t total, double every = 5.0)
      : stage_(std::move(stage)), total_(total), every_(every), t0_(clock::now()), last_(t0_) {}
  void update(std::int64_t done, std::int64_t done_this_run, bool force = false) {
    const auto now = clock::now();
    if (!force && std::chrono::duration<double>(now - last_).count() < every_) return;
    last_ = now;
    const double el = std::chrono::duration<double>(now - t0_).count();
    const double rate = el > 0 ? double(done_this_run) / el : 0.0;
    std::cout << "[extract] " << stage_ << " " << done << "/" << total_ << " images  " << rate << " img/s  ETA "
              << (rate > 0 ? hms(double(total_ - done) / rate) : std::string("?")) << "  elapsed " << hms(el) << "\n";
  }

private:
  using clock = std::chrono::steady_clock;
  std::string stage_;
  std::int64_t total_;
  double every_;
  clock::time_point t0_, last_;
};

void write_text_atomic(const fs::path& p, const std::string& text) {
  redi::io::AtomicFile f(p);
  f.put(reinterpret_cast<const std::byte*>(text.data()), text.size());
  f.commit();
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace

int main(int argc, char** argv) {
  return redi::cli::run_main("redi_extract", [&] {
    const Args a(argc, argv,
                 {"images", "out", "vae", "dinov2", "pca", "pca-images", "r", "latents", "seed", "size", "shard-size",
                  "batch", "limit", "dtype", "device", "threads", "vae-channels", "vae-layers", "vae-groups",
                  "dinov2-heads"},
                 {"help", "flips", "lenient-jpeg"});
    if (a.flag("help")) {
      std::cout << kUsage;
      return 0;
    }
    for (const char* k : {"images", "out", "vae", "dinov2"})
      if (!a.has(k)) throw UsageError(std::string("--") + k + " is required (see --help)");
    const int R = int(a.integer("r", 8, 1, 4096));
    const bool flips = a.flag("flips");
    redi::data::ImageLimits limits;
    limits.strict_jpeg = !a.flag("lenient-jpeg");
    const std::string latent_mode = a.choice("latents", "mean", {"mean", "sample"});
    const auto seed = std::uint64_t(a.integer("seed", 0, 0, INT64_MAX));
    const int S = int(a.integer("size", 256, 8, 4096));
    const std::int64_t shard_size = a.integer("shard-size", 10000, 1, INT64_MAX);
    const int batch = int(a.integer("batch", 32, 1, 1 << 16));
    const std::int64_t pca_images = a.integer("pca-images", 76800, 2, INT64_MAX);
    const std::string dtype_name = a.choice("dtype", "f32", {"f32", "f16", "bf16"});
    const redi::DType store = dtype_name == "f16" ? redi::DType::F16 : dtype_name == "bf16" ? redi::DType::BF16
                                                                                           : redi::DType::F32;
    const std::string device = a.choice("device", "cpu", {"cpu", "cuda"});
#if !defined(REDI_EXTRACT_HAVE_CUDA)
    if (device == "cuda")
      throw UsageError("--device cuda: this redi_extract was built without CUDA (configure redi with "
                       "-DREDI_WITH_CUDA=ON on a machine with nvcc)");
#endif
    redi::VaeConfig vcfg = redi::VaeConfig::sd_vae_ft_ema();
    if (a.has("vae-channels")) vcfg.block_out_channels = parse_ints("vae-channels", a.str("vae-channels"));
    vcfg.layers_per_block = int(a.integer("vae-layers", vcfg.layers_per_block, 1, 64));
    vcfg.norm_groups = int(a.integer("vae-groups", vcfg.norm_groups, 1, 4096));
    vcfg.validate();
    REDI_CHECK(S % vcfg.downsample_factor() == 0, "--size ", S, " is not a multiple of the VAE's factor ",
               vcfg.downsample_factor());
    redi::cli::apply_threads_flag(a);

    // ---- listing and the run's record
    const fs::path out = a.str("out");
    const auto listing = redi::data::list_image_folder(a.str("images"));
    std::int64_t N = std::int64_t(listing.files.size());
    if (a.has("limit")) N = std::min(N, a.integer("limit", N, 1, INT64_MAX));
    REDI_CHECK(listing.class_names.size() <= 1000, a.str("images"), ": ", listing.class_names.size(),
               " classes; redi_train_imagenet takes at most 1000");
    fs::create_directories(out);
    std::ostringstream rec;
    rec << "images=" << fs::absolute(a.str("images")).lexically_normal().string() << "\nn=" << N
        << "\nclasses=" << listing.class_names.size() << "\nsize=" << S << "\nr=" << R << "\nflips=" << flips
        << "\nlatents=" << latent_mode << "\nseed=" << seed << "\nshard_size=" << shard_size << "\ndtype=" << dtype_name
        << "\nvae=" << vcfg.str() << "\npca=" << (a.has("pca") ? a.str("pca") : "fit:" + std::to_string(pca_images))
        << "\n";
    if (!limits.strict_jpeg) rec << "lenient_jpeg=1\n";  // absent by default: older records stay valid
    std::uint64_t h = 1469598103934665603ull;  // FNV-1a of the listing: a changed folder is a new run
    for (std::int64_t i = 0; i < N; ++i)
      for (char c : listing.files[std::size_t(i)] + "\n") h = (h ^ std::uint8_t(c)) * 1099511628211ull;
    rec << "listing_fnv1a=" << h << "\n";
    const fs::path rec_path = out / "extract.txt";
    if (fs::exists(rec_path)) {
      REDI_CHECK(read_text(rec_path) == rec.str(), rec_path.string(),
                 ": this output folder was started with other options or another image listing; use a new --out "
                 "(recorded:\n", read_text(rec_path), "now:\n", rec.str(), ")");
      std::cout << "[extract] resuming in " << out.string() << "\n";
    } else {
      write_text_atomic(rec_path, rec.str());
    }
    {
      std::string cls;
      for (std::size_t k = 0; k < listing.class_names.size(); ++k) cls += listing.class_names[k] + "\n";
      write_text_atomic(out / "classes.txt", cls);
    }

    // ---- networks
    const int dino_heads = int(a.integer("dinov2-heads", 0, 0, 4096));
#if defined(REDI_EXTRACT_HAVE_CUDA)
    redi::Dinov2Encoder dino = device == "cuda" ? make_cuda_dinov2(a.str("dinov2"), dino_heads)
                                                : redi::Dinov2Encoder(redi::load_dinov2<float>(a.str("dinov2"), dino_heads));
#else
    redi::Dinov2Encoder dino(redi::load_dinov2<float>(a.str("dinov2"), dino_heads));
#endif
    std::cout << "[extract] DINOv2 " << dino.config().str() << " (" << dino.num_params() << " parameters) on "
              << (dino.on_host() ? "cpu" : "cuda") << "\n";
    MomentsFn moments_fn;
    std::unique_ptr<redi::Vae<float>> vae_cpu;
    if (device == "cpu") {
      vae_cpu = std::make_unique<redi::Vae<float>>(vcfg);
      redi::load_vae_weights(*vae_cpu, a.str("vae"));
      moments_fn = [&](const float* x, int n, int s, float* m) { vae_cpu->encode(m, x, n, s, s); };
    } else {
#if defined(REDI_EXTRACT_HAVE_CUDA)
      moments_fn = make_cuda_vae(vcfg, a.str("vae"));
#endif
    }
    std::cout << "[extract] VAE " << vcfg.str() << " on " << device << "\n";

    // ---- PCA: given, fitted earlier in this folder, or fitted now
    redi::data::Pca pca;
    const fs::path pca_out = out / "pca" / "pca.safetensors";  // not in OUT: every OUT/*.safetensors is a shard
    if (a.has("pca")) {
      pca = redi::data::load_pca(a.str("pca"));
    } else if (fs::exists(pca_out)) {
      pca = redi::data::load_pca(pca_out);
      std::cout << "[extract] PCA: " << pca_out.string() << " (fitted earlier)\n";
    } else {
      const std::int64_t m = std::min(pca_images, N);
      std::vector<std::int64_t> order(static_cast<std::size_t>(N));
      std::iota(order.begin(), order.end(), 0);
      for (std::int64_t i = N - 1; i > 0; --i)  // Fisher-Yates with Philox: the subset depends on seed only
        std::swap(order[std::size_t(i)], order[std::size_t(std::int64_t(redi::philox::uniform(seed, 77, std::uint64_t(i)) * double(i + 1)) % (i + 1))]);
      order.resize(std::size_t(m));
      std::sort(order.begin(), order.end());
      redi::data::PcaFitter fitter(dino.feature_dim());
      Progress prog("PCA fit", m);
      for (std::int64_t s = 0; s < m; s += batch) {
        const int n = int(std::min<std::int64_t>(batch, m - s));
        std::vector<std::string> files;
        for (int i = 0; i < n; ++i) files.push_back(listing.files[std::size_t(order[std::size_t(s + i)])]);
        const auto x = to_float_nchw(load_crops(files, S, false, limits), n, S);
        const auto g = dino.grid(S, S);
        redi::Tensor<float> f(redi::Shape{n, g[0], g[1], dino.feature_dim()});
        dino.encode(x.view(), f.view());
        fitter.add(f.data(), std::int64_t(n) * g[0] * g[1]);
        prog.update(s + n, s + n, s + n == m);
      }
      pca = fitter.fit({});
      fs::create_directories(pca_out.parent_path());
      redi::data::save_pca(pca_out, pca, {{"fitted_by", "redi_extract"}, {"images", std::to_string(m)},
                                          {"seed", std::to_string(seed)}});
      std::cout << "[extract] PCA fitted on " << m << " images (" << fitter.count() << " tokens) -> "
                << pca_out.string() << "\n";
    }
    REDI_CHECK(pca.dim == dino.feature_dim(), "PCA dimension ", pca.dim, " != DINOv2 width ", dino.feature_dim());
    REDI_CHECK(R <= pca.num_components, "--r ", R, " but the PCA has ", pca.num_components, " axes");

    // ---- shards
    const int copies = flips ? 2 : 1, f = vcfg.downsample_factor(), lc = vcfg.latent_channels;
    const auto g = dino.grid(S, S);
    const std::int64_t K = (N + shard_size - 1) / shard_size;
    Progress prog("extract", N);
    std::int64_t done = 0, done_run = 0;
    double t_load = 0, t_vae = 0, t_dino = 0;
    using clock = std::chrono::steady_clock;
    auto secs = [](clock::time_point t) { return std::chrono::duration<double>(clock::now() - t).count(); };
    for (std::int64_t k = 0; k < K; ++k) {
      const std::int64_t i0 = k * shard_size, i1 = std::min(N, i0 + shard_size);
      char name[64];
      std::snprintf(name, sizeof name, "shard_%05lld.safetensors", static_cast<long long>(k));
      const fs::path path = out / name;
      if (shard_complete(path.string(), (i1 - i0) * copies)) {
        done = i1;
        continue;
      }
      ShardData sd{lc, S / f, S / f, R, g[0], g[1], {}, {}, {}, {}, {}};
      for (std::int64_t s = i0; s < i1; s += batch) {
        const int n = int(std::min<std::int64_t>(batch, i1 - s)), nb = n * copies;
        auto t = clock::now();
        const std::vector<std::string> files(listing.files.begin() + s, listing.files.begin() + s + n);
        const auto x = to_float_nchw(load_crops(files, S, flips, limits), nb, S);
        t_load += secs(t);
        t = clock::now();
        std::vector<float> mom(std::size_t(nb) * 2 * lc * (S / f) * (S / f)), lat(mom.size() / 2);
        moments_fn(x.data(), nb, S, mom.data());
        redi::vae_latents(lat.data(), mom.data(), nb, S / f, S / f, vcfg,
                          latent_mode == "mean" ? redi::VaeLatentMode::Mean : redi::VaeLatentMode::Sample, seed,
                          std::uint64_t(s * copies));
        sd.latents.insert(sd.latents.end(), lat.begin(), lat.end());
        t_vae += secs(t);
        t = clock::now();
        std::vector<float> z(std::size_t(nb) * R * g[0] * g[1]);
        project_features(dino, pca, R, x, z.data());
        sd.z.insert(sd.z.end(), z.begin(), z.end());
        t_dino += secs(t);
        for (int i = 0; i < n; ++i)
          for (int c = 0; c < copies; ++c) {
            sd.labels.push_back(listing.labels[std::size_t(s + i)]);
            sd.index.push_back(s + i);
            sd.flipped.push_back(std::uint8_t(c));
          }
        done = s + n;
        done_run += n;
        prog.update(done, done_run);
      }
      sd.write(path.string(), store, {{"redi.extract", rec.str()}});
      prog.update(done, done_run, true);
      std::cout << "[extract] wrote " << path.string() << " (" << sd.n() << " samples)\n";
    }
    if (done_run > 0)
      std::cout << "[extract] done: " << done_run << " images this run; seconds in decode+crop " << t_load
                << ", VAE " << t_vae << ", DINOv2+PCA " << t_dino << "\n";
    else
      std::cout << "[extract] nothing to do: all " << K << " shards are complete\n";
    return 0;
  });
}
