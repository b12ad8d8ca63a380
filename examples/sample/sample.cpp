// redi_sample — a trained DiT / SiT / ReDi model to decoded images: a redi training checkpoint
// (or weights file), or an official `.pt` (its "ema" state_dict), sampled with any sampler and
// guidance, decoded by the SD-VAE, written as the ADM evaluator's npz (uint8 [N, H, W, 3] arr_0,
// labels arr_1) and a PNG grid. Samples are produced in chunks written atomically, so a run of
// 50,000 survives interruption: rerun the same command and it resumes at the first missing
// chunk (the settings must match; they are recorded in <out>/sample_run.txt). Labels are
// balanced in order as the ADM protocol: sample i has class floor(i * K / N) (N/K per class).
// Sample i's noise depends only on (seed, i), so chunks do not depend on what ran before.
#include <algorithm>
#include <chrono>
#include <cstring>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "generator.hpp"
#include "redi/ops/cpu_backend.hpp"
#include "redi/core/philox.hpp"
#include "redi/io/atomic_file.hpp"
#include "redi/io/image_write.hpp"
#include "redi/io/npz.hpp"
#include "redi/io/safetensors.hpp"
#include "redi/io/torch_pickle.hpp"
#include "redi/train/checkpoint.hpp"
#include "redi/train/cli.hpp"
#include "redi/train/metrics_log.hpp"
#include "redi/weights/official.hpp"

namespace fs = std::filesystem;
using redi::cli::Args;
using redi::cli::UsageError;
using redi_sample::Settings;

namespace {

const char* kUsage = R"(usage: redi_sample --ckpt FILE --vae FILE [options]
Samples a trained DiT / SiT / ReDi model, decodes the latents with the SD-VAE and writes
<out>/samples.npz (the ADM evaluator's format: arr_0 uint8 [N, H, W, 3], arr_1 labels) and
<out>/samples.png (a grid of samples spread over the run). Resumable: chunks are written to
<out>/chunks/ atomically; rerunning the same command continues where it stopped.
Model (--ckpt FILE):
  a redi training checkpoint (safetensors; its "ema." weights and recorded configuration), or
  a state_dict file (safetensors or torch .pt) with the official DiT/SiT/ReDi names, bare or
  inside a training checkpoint {"model", "ema", ...} (the "ema" dict is used); the geometry
  is read from the tensor shapes (redi/weights/official.hpp), and these say what shapes cannot:
  --backbone sit|dit (sit)   --fusion merged|separate (separate when a z_embedder is present)
  --heads N (the DiT/SiT preset for the width)   --image-channels N (4)   --prefix P (auto)
VAE (--vae FILE): diffusers AutoencoderKL weights (diffusion_pytorch_model.safetensors or .bin),
  default geometry sd-vae-ft-ema; --vae-channels 128,256,512,512 --vae-layers 2 --vae-groups 32
  --vae-scale 0.18215 (latents are divided by it before decoding)   --vae-batch N (8 per pass)
Sampling:
  --num-samples N (50000)  --num-classes K (the model's)  --seed N (0)  --batch N (32)
  --sampler sde|euler|heun (sit; default sde) ddpm|ddim (dit; default ddpm)
  --sample-steps N (250 sde/ddpm, else 50)  --guidance none|cfg|cfg-joint|rg|cfg+rg (cfg)
  --cfg X (1.5)  --rg X (1.5)
Run: --out DIR (runs/sample)  --chunk N (1000 samples per chunk file)  --grid N (64)
  --device cpu|cuda (cpu)  --precision fp32|bf16 (cuda only; fp32)  --threads N
  --save-latents (also <out>/chunks/latents_*.npz)  --max-chunks N (stop after N new chunks)
Exit status: 0 done (or stopped by --max-chunks), 1 error, 2 usage error.
)";

std::string kv_lines(const Settings& s) {
  std::ostringstream o;
  o.precision(17);
  o << "ckpt=" << s.ckpt << "\nckpt_bytes=" << fs::file_size(s.ckpt) << "\nprefix=" << s.prefix
    << "\nbackbone=" << s.backbone << "\nfusion=" << s.fusion << "\nmodel=" << redi::train::to_json(s.model).str()
    << "\nvae=" << s.vae_path << "\nvae_bytes=" << fs::file_size(s.vae_path) << "\nvae_config=" << s.vae.str()
    << "\nsampler=" << s.sampler << "\nsample_steps=" << s.sample_steps << "\nguidance=" << s.guidance
    << "\ncfg=" << s.cfg_scale << "\nrg=" << s.rg_scale << "\nnum_samples=" << s.num_samples
    << "\nnum_classes=" << s.num_classes << "\nchunk=" << s.chunk << "\nbatch=" << s.batch << "\nseed=" << s.seed
    << "\ndevice=" << s.device << "\nprecision=" << s.precision << "\n";
  return o.str();
}

/// Records the settings, or checks them against the record of an earlier run in `out`.
void check_or_record(const Settings& s) {
  const fs::path rec = fs::path(s.out) / "sample_run.txt";
  const std::string now = kv_lines(s);
  if (fs::exists(rec)) {
    std::ifstream in(rec);
    std::stringstream was;
    was << in.rdbuf();
    if (was.str() == now) return;
    std::istringstream a(was.str()), b(now);
    std::string la, lb;
    while (std::getline(a, la) && std::getline(b, lb))
      REDI_CHECK(la == lb, rec.string(), ": this output folder holds a run with other settings (", la, " vs now ", lb,
                 "); use another --out, or the same settings to resume");
    REDI_FAIL(rec.string(), ": unreadable run record; use another --out");
  }
  fs::create_directories(fs::path(s.out) / "chunks");
  redi::io::AtomicFile f(rec);
  f.put(reinterpret_cast<const std::byte*>(now.data()), now.size());
  f.commit();
}

fs::path chunk_path(const Settings& s, int k, const char* kind = "samples") {
  char name[64];
  std::snprintf(name, sizeof(name), "%s_%05d.npz", kind, k);
  return fs::path(s.out) / "chunks" / name;
}

int label_of(const Settings& s, std::int64_t i) { return int(i * s.num_classes / s.num_samples); }

/// Reads chunk files one at a time (the last one read stays cached).
struct ChunkReader {
  const Settings& s;
  int cached = -1;
  std::vector<std::uint8_t> pix;
  const std::uint8_t* chunk(int k) {
    if (k != cached) {
      pix = redi::io::NpzFile::open(chunk_path(s, k)).read<std::uint8_t>("arr_0");
      cached = k;
    }
    return pix.data();
  }
};

/// Settings from the command line (model geometry from the checkpoint).
Settings parse(const Args& a) {
  Settings s;
  if (!a.has("ckpt")) throw UsageError("--ckpt FILE is required (see --help)");
  if (!a.has("vae")) throw UsageError("--vae FILE is required (the SD-VAE's weights; see --help)");
  s.ckpt = a.str("ckpt");
  s.vae_path = a.str("vae");
  s.out = a.str("out", "runs/sample");
  s.device = a.choice("device", "cpu", {"cpu", "cuda"});
  s.precision = a.choice("precision", "fp32", {"fp32", "bf16"});
  if (s.precision == "bf16" && s.device != "cuda") throw UsageError("--precision bf16: only with --device cuda");
#if !defined(REDI_SAMPLE_HAVE_CUDA)
  if (s.device == "cuda")
    throw UsageError("--device cuda: this redi_sample was built without CUDA (configure redi with "
                     "-DREDI_WITH_CUDA=ON on a machine with nvcc)");
#endif
  REDI_CHECK(fs::is_regular_file(s.ckpt), s.ckpt, ": --ckpt file not found");
  REDI_CHECK(fs::is_regular_file(s.vae_path), s.vae_path, ": --vae file not found");
  // the model
  bool redi_ckpt = false;
  if (!redi::io::is_zip_file(s.ckpt)) {
    const auto f = redi::io::SafeTensorsFile::open(s.ckpt);
    const auto& md = f.metadata();
    if (md.count("redi.model") && md.count("redi.type")) {
      redi_ckpt = true;
      s.model = redi::train::model_config_from_json(md.at("redi.model"), s.ckpt + ": metadata 'redi.model'");
      const std::string type = md.at("redi.type");  // e.g. SiT/Merged/FlowMatching/F32
      s.backbone = type.rfind("DiT", 0) == 0 ? "dit" : "sit";
      s.fusion = type.find("/Separate/") != std::string::npos ? "separate" : "merged";
      s.prefix = a.str("prefix", redi::state_dict_prefix(f));
    }
  }
  if (!redi_ckpt) {
    auto infer = [&](const auto& src) {
      s.prefix = a.str("prefix", redi::state_dict_prefix(src));
      const auto m = redi::infer_model_config(
          src, s.prefix, {.image_channels = int(a.integer("image-channels", 4, 1, 64)), .heads = int(a.integer("heads", 0, 0, 256))});
      s.model = m.cfg;
      s.fusion = a.choice("fusion", m.has_z_embedder && !m.cfg.own_feature_grid() ? "separate" : "merged",
                          {"merged", "separate"});
    };
    if (redi::io::is_zip_file(s.ckpt))
      infer(redi::io::TorchCheckpoint::open(s.ckpt));
    else
      infer(redi::io::SafeTensorsFile::open(s.ckpt));
    s.backbone = a.choice("backbone", "sit", {"sit", "dit"});
    if (s.model.learn_sigma && s.backbone != "dit")
      throw UsageError("the checkpoint learns sigma (2x output channels): pass --backbone dit");
  }
  if (s.fusion == "separate" && s.model.feature_channels == 0) throw UsageError("--fusion separate: the model has r = 0");
  // sampling
  const bool flow = s.backbone == "sit";
  s.sampler = flow ? a.choice("sampler", "sde", {"sde", "euler", "heun"}) : a.choice("sampler", "ddpm", {"ddpm", "ddim"});
  s.sample_steps = int(a.integer("sample-steps", s.sampler == "sde" || s.sampler == "ddpm" ? 250 : 50,
                                 s.sampler == "sde" ? 2 : 1, 1000));
  s.guidance = a.choice("guidance", "cfg", {"none", "cfg", "cfg-joint", "rg", "cfg+rg"});
  if ((s.guidance == "rg" || s.guidance == "cfg+rg") && s.model.feature_channels == 0)
    throw UsageError("--guidance " + s.guidance + ": representation guidance needs a model with features (r > 0)");
  s.cfg_scale = a.real("cfg", 1.5, 0.0, 1000.0);
  s.rg_scale = a.real("rg", 1.5, 0.0, 1000.0);
  s.num_samples = int(a.integer("num-samples", 50000, 1, 100'000'000));
  s.num_classes = int(a.integer("num-classes", s.model.num_classes, 1, s.model.num_classes));
  s.seed = std::uint64_t(a.integer("seed", 0, 0, INT64_MAX));
  s.batch = int(a.integer("batch", 32, 1, 1 << 16));
  s.chunk = int(a.integer("chunk", 1000, 1, 1 << 20));
  s.grid = int(a.integer("grid", 64, 0, 10000));
  s.max_chunks = int(a.integer("max-chunks", 0, 0, 1 << 30));
  s.save_latents = a.flag("save-latents");
  // the VAE
  s.vae = redi::VaeConfig::sd_vae_ft_ema();
  if (a.has("vae-channels")) {
    s.vae.block_out_channels.clear();
    std::stringstream in(a.str("vae-channels"));
    std::string tok;
    while (std::getline(in, tok, ',')) {
      try {
        s.vae.block_out_channels.push_back(std::stoi(tok));
      } catch (...) {
        throw UsageError("--vae-channels: '" + a.str("vae-channels") + "' is not a comma-separated list of widths");
      }
    }
  }
  s.vae.layers_per_block = int(a.integer("vae-layers", 2, 1, 16));
  s.vae.norm_groups = int(a.integer("vae-groups", 32, 1, 1024));
  s.vae.scaling_factor = a.real("vae-scale", 0.18215, 1e-6, 1e6);
  s.vae.latent_channels = s.model.image_channels;
  try {
    s.vae.validate();
  } catch (const redi::Error& e) {
    throw UsageError(std::string("--vae-*: ") + e.what());
  }
  s.vae_batch = int(a.integer("vae-batch", 8, 1, 1 << 16));
  return s;
}

int run(const Settings& s) {
  check_or_record(s);
  const int S = s.model.input_size, f = s.vae.downsample_factor(), H = S * f, C = s.vae.out_channels;
  const int chunks = int((std::int64_t(s.num_samples) + s.chunk - 1) / s.chunk);
  std::cout << "[redi_sample] " << s.backbone << "/" << s.fusion << " " << redi::train::to_json(s.model).str()
            << " from " << s.ckpt << (s.prefix.empty() ? "" : " (" + s.prefix + ")") << "; " << s.num_samples
            << " samples (" << chunks << " chunks) at " << H << "x" << H << ", " << s.sampler << " "
            << s.sample_steps << " steps, guidance " << s.guidance << " on " << s.device << "\n";
  std::unique_ptr<redi_sample::Generator> gen;
  int done_now = 0;
  const auto t0 = std::chrono::steady_clock::now();
  std::int64_t produced = 0;
  for (int k = 0; k < chunks; ++k) {
    if (fs::exists(chunk_path(s, k))) continue;
    if (s.max_chunks > 0 && done_now >= s.max_chunks) {
      std::cout << "[redi_sample] stopped after " << done_now << " chunk(s) (--max-chunks); rerun to resume\n";
      return 0;
    }
    if (!gen) gen = s.device == "cuda" ? redi_sample::make_cuda_generator(s) : redi_sample::make_cpu_generator(s);
    const std::int64_t c0 = std::int64_t(k) * s.chunk;
    const int n = int(std::min<std::int64_t>(s.chunk, s.num_samples - c0));
    std::vector<int> labels(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) labels[std::size_t(i)] = label_of(s, c0 + i);
    const std::size_t zimg = std::size_t(s.model.image_channels) * S * S, pimg = std::size_t(C) * H * H;
    std::vector<float> z(std::size_t(n) * zimg), img(std::size_t(n) * pimg);
    for (int b0 = 0; b0 < n; b0 += s.batch) {
      const int b = std::min(s.batch, n - b0);
      gen->sample(z.data() + std::size_t(b0) * zimg, labels.data() + b0, b, std::uint64_t(c0 + b0));
      gen->decode(img.data() + std::size_t(b0) * pimg, z.data() + std::size_t(b0) * zimg, b);
      produced += b;
      const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      const std::int64_t left = s.num_samples - (c0 + b0 + b);
      std::cout << "[redi_sample] " << (c0 + b0 + b) << "/" << s.num_samples << "  " << produced / el
                << " img/s  ETA " << redi::train::format_duration(left * el / produced) << std::endl;
    }
    const auto u8 = redi::io::to_uint8_nhwc(img.data(), n, C, H, H);
    if (s.save_latents) {
      redi::io::NpzWriter w;
      w.add("latents", {n, s.model.image_channels, S, S}, z.data());
      w.write(chunk_path(s, k, "latents"));
    }
    redi::io::save_sample_npz(chunk_path(s, k), u8.data(), n, H, H, C, labels.data());  // atomic: last
    ++done_now;
  }
  // every chunk is present: the evaluator's file, streamed from the chunks
  ChunkReader rd{s, -1, {}};
  const std::uint64_t per = std::uint64_t(H) * H * C, chunk_bytes = per * std::uint64_t(s.chunk);
  std::vector<std::int64_t> labels(std::size_t(s.num_samples));
  for (int i = 0; i < s.num_samples; ++i) labels[std::size_t(i)] = label_of(s, i);
  redi::io::NpzWriter w;
  w.add_generated<std::uint8_t>("arr_0", {s.num_samples, H, H, C}, [&](std::uint64_t first, std::size_t n, std::byte* dst) {
    while (n > 0) {
      const int k = int(first / chunk_bytes);
      const std::uint64_t off = first % chunk_bytes;
      const std::uint64_t have = std::min<std::uint64_t>(n, std::min<std::uint64_t>(chunk_bytes, std::uint64_t(s.num_samples) * per - std::uint64_t(k) * chunk_bytes) - off);
      std::memcpy(dst, rd.chunk(k) + off, std::size_t(have));
      dst += have, first += have, n -= std::size_t(have);
    }
  });
  w.add("arr_1", {s.num_samples}, labels.data());
  w.write(fs::path(s.out) / "samples.npz");
  const int g = std::min(s.grid, s.num_samples);
  if (g > 0) {
    std::vector<std::uint8_t> pick(std::size_t(g) * per);
    for (int i = 0; i < g; ++i) {
      const std::int64_t idx = std::int64_t(i) * s.num_samples / g;
      std::memcpy(pick.data() + std::size_t(i) * per, rd.chunk(int(idx / s.chunk)) + std::uint64_t(idx % s.chunk) * per, per);
    }
    const int cols = std::max(1, int(std::ceil(std::sqrt(double(g)))));
    redi::io::write_png(fs::path(s.out) / "samples.png", redi::io::make_grid(pick.data(), g, H, H, C, cols));
  }
  std::cout << "[redi_sample] wrote " << (fs::path(s.out) / "samples.npz").string() << " (" << s.num_samples << " x "
            << H << "x" << H << "x" << C << " uint8, ADM format) and samples.png\n";
  return 0;
}

}  // namespace

namespace redi_sample {
std::unique_ptr<Generator> make_cpu_generator(const Settings& s) { return make_generator<float>(s, redi::Cpu{}); }
#if !defined(REDI_SAMPLE_HAVE_CUDA)
std::unique_ptr<Generator> make_cuda_generator(const Settings&) { REDI_FAIL("redi_sample: built without CUDA"); }
#endif
}  // namespace redi_sample

int main(int argc, char** argv) {
  return redi::cli::run_main("redi_sample", [&] {
    const Args a(argc, argv,
                 {"ckpt", "vae", "out", "device", "precision", "prefix", "backbone", "fusion", "heads",
                  "image-channels", "sampler", "sample-steps", "guidance", "cfg", "rg", "num-samples", "num-classes",
                  "seed", "batch", "chunk", "grid", "max-chunks", "vae-channels", "vae-layers", "vae-groups",
                  "vae-scale", "vae-batch", "threads"},
                 {"help", "save-latents"});
    if (a.flag("help")) {
      std::cout << kUsage;
      return 0;
    }
    redi::cli::apply_threads_flag(a);
    return run(parse(a));
  });
}
