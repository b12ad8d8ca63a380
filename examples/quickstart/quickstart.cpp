// redi_quickstart — ReDi end to end on Fashion-MNIST, on a CPU, in about a quarter of an hour:
//   1. Fashion-MNIST, padded 28 -> 32, pixels in [-1, 1] (pixel space: Cx = 1, no VAE);
//   2. an offline encoder (a small supervised ViT, redi/train/encoder_training.hpp) as the
//      stand-in for DINOv2; PCA of its patch features to r = 8 channels, each channel
//      normalised to mean 0 / std 1 (SPEC section 9);
//   3. a small SiT with Merged fusion, flow matching, trained with redi::train::Trainer;
//   4. 1000 class-conditional samples (100 per class) with CFG on the image channel plus
//      representation guidance (Combine<CFG<VaeOnly>, RepGuidance>);
//   5. a quality number: the Frechet distance between the samples and the 10,000 test images in
//      the encoder's mean-pooled feature space (lower is better), written to eval.json.
// --plain trains the plain SiT (r = 0, CFG only) with the same budget, for the comparison.
// Outputs (in --out): samples.png, samples.npz (ADM evaluator format), metrics.jsonl,
// checkpoint.safetensors, eval.json. The encoder, PCA and normalisation are cached in
// --encoder-dir and reused by later runs with the same encoder settings.
// docs/training.md explains the sizing (measured step times).
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <numeric>
#include <string>
#include <vector>

#include "../train/cli_args.hpp"
#include "redi/data/idx.hpp"
#include "redi/data/pca_io.hpp"
#include "redi/io/image_write.hpp"
#include "redi/io/npz.hpp"
#include "redi/redi_model.hpp"
#include "redi/train/encoder_training.hpp"
#include "redi/eval/frechet.hpp"
#include "redi/train/metrics_log.hpp"
#include "redi/train/trainer.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace fs = std::filesystem;
using redi_examples::Args;
using redi_examples::UsageError;
using Model = redi::ReDi<redi::SiT, redi::Merged, redi::FlowMatching>;
using clk = std::chrono::steady_clock;

namespace {

const char* kUsage = R"(usage: redi_quickstart [options]
ReDi on Fashion-MNIST (pixel space, 32x32): trains an encoder + PCA (r = 8), a small SiT with
Merged fusion and flow matching, samples 1000 images with CFG + representation guidance and
reports a Frechet distance. Everything is deterministic for a given thread count.
  --plain               the plain SiT (r = 0, CFG only) with the same budget (default out
                        runs/quickstart_plain)
  --steps N             SiT training steps (default 2000)
  --minutes M           wall-clock budget of this program in minutes (default 12.5); training
                        stops early, with a message, if it would not leave time to sample
  --batch N             batch size (default 64)
  --width N --depth N --heads N --patch N   SiT size (default 128, 4, 4, 4)
  --lr X                AdamW learning rate (default 1e-3, warm-up 200 steps)
  --lambda-z X          feature-loss weight (default 1)
  --p-drop X            representation dropout for RG training (default 0.2)
  --ema X               EMA decay (default 0.995)
  --sampler S           euler | heun | sde (default euler)
  --sample-steps N      sampler steps (default 20)
  --cfg X               CFG scale on the image channel (default 2.0)
  --rg X                representation guidance scale (default 1.1; 1 = off)
  --samples-per-class N (default 100)
  --encoder-steps N     encoder training steps (default 600)
  --seed N              run seed (default 0)
  --out DIR             output directory (default runs/quickstart)
  --encoder-dir DIR     encoder cache (default runs/encoder)
  --data DIR            Fashion-MNIST directory (default: $REDI_FASHION_MNIST_DIR or
                        /usr/share/datasets/fashion-mnist)
  --threads N           OpenMP threads (default: all cores)
  --from CKPT           skip training: sample and evaluate the checkpoint CKPT (written by an
                        earlier run with the same model flags), e.g. to try other guidance
  --help
)";

double since(clk::time_point t) { return std::chrono::duration<double>(clk::now() - t).count(); }

struct Features {
  redi::ViTEncoder<float> enc;
  redi::data::Pca pca;
  redi::data::PcNormalization norm;
};

/// Trains (or loads from `dir`) the encoder, fits (or loads) the PCA and the PC normalisation.
Features encoder_and_pca(const redi::data::ImageDataset& train, const fs::path& dir, int steps, std::uint64_t seed,
                         int r) {
  fs::create_directories(dir);
  const fs::path ef = dir / "encoder.safetensors", pf = dir / "pca.safetensors", nf = dir / "pc_norm.safetensors";
  redi::train::EncoderTrainConfig ec;
  ec.steps = steps;
  ec.seed = seed;
  ec.log_every = 100;
  const std::string key = ec.model.str() + ",steps=" + std::to_string(steps) + ",seed=" + std::to_string(seed) +
                          ",r=" + std::to_string(r);
  if (fs::exists(ef) && fs::exists(pf) && fs::exists(nf)) {
    const auto md = redi::io::SafeTensorsFile::open(nf).metadata();
    if (auto it = md.find("quickstart.key"); it != md.end() && it->second == key) {
      std::cout << "[quickstart] encoder, PCA and normalisation from the cache " << dir.string() << "\n";
      return {redi::ViTEncoder<float>::load(ef), redi::data::load_pca(pf), redi::data::load_pc_normalization(nf)};
    }
  }
  const auto t0 = clk::now();
  auto enc = redi::train::train_encoder(train, ec, &std::cout);
  std::cout << "[quickstart] encoder trained in " << redi::train::format_duration(since(t0)) << "\n";
  enc.save(ef);
  const auto t1 = clk::now();
  auto pca = redi::train::fit_feature_pca(enc, train, 5000, r, seed);
  // Per-channel normalisation fitted on what the model sees (the r PCs on the encoder grid).
  std::vector<std::int64_t> idx(5000);
  std::iota(idx.begin(), idx.end(), std::int64_t(0));
  const int g = enc.config().grid();
  redi::Tensor<float> z(redi::Shape{std::int64_t(idx.size()), r, g, g});
  redi::train::extract_pca_features(enc, train, idx, pca, r, z.view());
  redi::data::PcStats stats(r);
  stats.add(z.data(), std::int64_t(idx.size()), std::int64_t(g) * g);
  auto norm = stats.finish();
  std::cout << "[quickstart] PCA (r = " << r << ") fitted in " << redi::train::format_duration(since(t1))
            << "; PC std before normalisation:";
  for (float s : norm.std) std::cout << " " << s;
  std::cout << "\n";
  redi::data::save_pca(pf, pca);
  redi::data::save_pc_normalization(nf, norm, {{"quickstart.key", key}});
  return {std::move(enc), std::move(pca), std::move(norm)};
}

/// Mean-pooled encoder features of a uint8 image set, into Gaussian statistics; returns how
/// many images the encoder's classifier head assigns to their label.
std::int64_t pooled_stats(redi::ViTEncoder<float>& enc, const redi::data::ImageDataset& ds,
                          redi::eval::GaussianStats& st) {
  std::vector<std::int64_t> idx(static_cast<std::size_t>(ds.n));
  std::iota(idx.begin(), idx.end(), std::int64_t(0));
  std::vector<float> f(std::size_t(ds.n) * std::size_t(enc.feature_dim()));
  const std::int64_t correct = redi::train::pooled_features(enc, ds, idx, f.data());
  st.add(f.data(), ds.n);
  return correct;
}

template <class G>
void sample_all(Model& m, float* out, const std::vector<int>& labels, const std::string& sampler, int steps,
                const redi::GuidanceOptions& go, std::uint64_t seed) {
  const int N = int(labels.size()), Cin = m.net().config().channels_in(), B = 125;
  const std::size_t per = std::size_t(Cin) * 32 * 32;
  const auto t0 = clk::now();
  for (int s = 0; s < N; s += B) {
    redi::SampleRequest req;
    req.B = std::min(B, N - s);
    req.labels = labels.data() + s;
    req.seed = seed;
    req.first_index = std::uint64_t(s);
    float* o = out + std::size_t(s) * per;
    if (sampler == "euler") m.sample<redi::OdeEuler, G>(o, req, {.num_steps = steps}, go);
    else if (sampler == "heun") m.sample<redi::OdeHeun, G>(o, req, {.num_steps = steps}, go);
    else m.sample<redi::SdeEulerMaruyama, G>(o, req, {.num_steps = steps}, go);
    const double el = since(t0);
    std::cout << "[quickstart] sampled " << s + req.B << "/" << N << "  "
              << redi::train::format_duration(el) << "  ETA "
              << redi::train::format_duration(el / (s + req.B) * (N - s - req.B)) << std::endl;
  }
}

int run(const Args& a) {
  const auto t_start = clk::now();
  const bool plain = a.flag("plain");
  const int r = plain ? 0 : 8;
  const std::int64_t steps = a.integer("steps", 2000, 1, 10'000'000);
  const double minutes = a.real("minutes", 12.5, 0.5, 1e6);
  const int batch = int(a.integer("batch", 64, 1, 4096));
  const std::string sampler = a.choice("sampler", "euler", {"euler", "heun", "sde"});
  const int sample_steps = int(a.integer("sample-steps", 20, sampler == "sde" ? 2 : 1, 1000));
  const int per_class = int(a.integer("samples-per-class", 100, 1, 10000));
  const std::uint64_t seed = std::uint64_t(a.integer("seed", 0, 0, INT64_MAX));
  const fs::path out = a.str("out", plain ? "runs/quickstart_plain" : "runs/quickstart");
  redi::GuidanceOptions go;
  go.cfg_scale = a.real("cfg", 2.0, 0.0, 100.0);
  go.rg_scale = a.real("rg", 1.1, 0.0, 100.0);
  Model::Options o;
  o.model.input_size = 32;
  o.model.image_channels = 1;
  o.model.feature_channels = r;
  o.model.num_classes = 10;
  o.model.width = int(a.integer("width", 128, 8, 4096));
  o.model.depth = int(a.integer("depth", 4, 1, 64));
  o.model.heads = int(a.integer("heads", 4, 1, 64));
  o.model.patch = int(a.integer("patch", 4, 1, 8));
  o.loss.lambda_z = a.real("lambda-z", 1.0, 0.0, 100.0);
  o.loss.p_drop = plain ? 0.0 : a.real("p-drop", 0.2, 0.0, 1.0);
  o.train.adamw.lr = a.real("lr", 1e-3, 1e-7, 1.0);
  o.train.warmup_steps = 200;
  o.train.grad_clip = 1.0;
  o.train.ema_decay = a.real("ema", 0.995, 0.0, 1.0);
  o.train.seed = seed;
  o.init_seed = seed;
  try {
    o.model.validate();
  } catch (const redi::Error& e) {
    throw UsageError(std::string("invalid model size: ") + e.what());
  }
#if defined(_OPENMP)
  if (a.has("threads")) omp_set_num_threads(int(a.integer("threads", 2, 1, 1024)));
  std::cout << "[quickstart] " << omp_get_max_threads() << " OpenMP threads\n";
#endif

  // 1. data
  const std::string dir = a.str("data");
  const auto train = redi::data::pad_to(redi::data::load_fashion_mnist(redi::data::Split::Train, dir), 32);
  const auto test = redi::data::pad_to(redi::data::load_fashion_mnist(redi::data::Split::Test, dir), 32);
  std::cout << "[quickstart] Fashion-MNIST: " << train.n << " train / " << test.n << " test images, 32x32x1\n";

  // 2. encoder + PCA (also used by the plain run: the evaluation needs it)
  const auto t_enc = clk::now();
  Features feat = encoder_and_pca(train, a.str("encoder-dir", "runs/encoder"),
                                  int(a.integer("encoder-steps", 600, 1, 1'000'000)), seed, 8);
  redi::train::TrainSet data = redi::train::TrainSet::from_images(train, "fashion-mnist-train-32");
  if (r > 0) {
    const int g = feat.enc.config().grid();
    std::vector<std::int64_t> idx(static_cast<std::size_t>(train.n));
    std::iota(idx.begin(), idx.end(), std::int64_t(0));
    data.r = r; data.zh = g; data.zw = g;
    data.z.resize(std::size_t(train.n) * r * g * g);
    redi::train::extract_pca_features(feat.enc, train, idx, feat.pca, r,
                                       redi::View<float>{data.z.data(), redi::Shape{train.n, r, g, g}}, &feat.norm);
  }
  const double enc_s = since(t_enc);
  std::cout << "[quickstart] features ready in " << redi::train::format_duration(enc_s) << "\n";

  // 3. train
  Model model(o);
  std::cout << "[quickstart] " << (plain ? "plain SiT" : "ReDi SiT") << " Merged/FlowMatching: width "
            << o.model.width << ", depth " << o.model.depth << ", patch " << o.model.patch << ", r = " << r << ", "
            << model.net().num_params() << " parameters\n";
  // Time left for training = budget - elapsed - the sampling time, estimated from one timed
  // forward pass of the sampling batch (branches x 125 rows).
  const int branches = plain ? 2 : 3, N = 10 * per_class;
  const int nfe = sampler == "heun" ? 2 * sample_steps : sample_steps;
  double fwd_s = 0;
  {
    const int rows = branches * 125;
    std::vector<float> xin(std::size_t(rows) * (1 + r) * 1024, 0.f), tv(std::size_t(rows), 0.5f),
        outv(xin.size());
    std::vector<int> yv(std::size_t(rows), 0);
    model.ema().forward(xin.data(), tv.data(), yv.data(), rows, outv.data());  // warm-up (allocations)
    const auto t = clk::now();
    model.ema().forward(xin.data(), tv.data(), yv.data(), rows, outv.data());
    fwd_s = since(t);
  }
  const double sample_est = fwd_s * nfe * double(N) / 125.0 + 20.0;  // + evaluation
  redi::train::TrainerConfig tc;
  tc.steps = steps;
  tc.batch = batch;
  tc.data_seed = seed;
  tc.log_every = 50;
  tc.sample_every = -1;
  tc.ckpt_every = 500;
  tc.out_dir = out.string();
  tc.max_seconds = std::max(30.0, minutes * 60.0 - since(t_start) - sample_est);
  std::cout << "[quickstart] training budget " << redi::train::format_duration(tc.max_seconds) << " (sampling "
            << N << " images estimated at " << redi::train::format_duration(sample_est) << ")\n";
  fs::create_directories(out);
  redi::train::Trainer<Model> trainer(model, data, tc, &std::cout);
  const auto t_train = clk::now();
  if (a.has("from")) {
    const auto st = redi::train::load_checkpoint(a.str("from"), model);
    std::cout << "[quickstart] no training: sampling " << a.str("from") << " (step " << st.step << ")\n";
  } else {
    trainer.run();
  }
  const double train_s = since(t_train);

  // 4. sample
  std::vector<int> labels(static_cast<std::size_t>(N));
  for (int i = 0; i < N; ++i) labels[std::size_t(i)] = i / per_class;
  std::vector<float> gen(std::size_t(N) * (1 + r) * 1024);
  const auto t_sample = clk::now();
  if (plain) sample_all<redi::CFG<redi::VaeOnly>>(model, gen.data(), labels, sampler, sample_steps, go, seed + 1);
  else sample_all<redi::Combine<redi::CFG<redi::VaeOnly>, redi::RepGuidance>>(model, gen.data(), labels, sampler,
                                                                             sample_steps, go, seed + 1);
  const double sample_s = since(t_sample);
  std::vector<float> img(std::size_t(N) * 1024);
  for (int i = 0; i < N; ++i)
    std::copy_n(gen.data() + std::size_t(i) * (1 + r) * 1024, 1024, img.data() + std::size_t(i) * 1024);
  const auto u8 = redi::io::to_uint8_nhwc(img.data(), N, 1, 32, 32);
  redi::io::save_sample_npz(out / "samples.npz", u8.data(), N, 32, 32, 1, labels.data());
  const int cols = per_class % 50 == 0 ? 50 : std::min(per_class, 50);
  redi::io::write_png(out / "samples.png", redi::io::make_grid(u8.data(), N, 32, 32, 1, cols));

  // 5. evaluate: FD in the encoder's pooled-feature space, vs the 10,000 test images
  const auto t_eval = clk::now();
  redi::data::ImageDataset gds;
  gds.n = N; gds.h = 32; gds.w = 32; gds.c = 1; gds.pixels = u8; gds.labels = labels; gds.num_classes = 10;
  gds.source = "generated samples";
  const int D = feat.enc.feature_dim();
  redi::eval::GaussianStats s_test(D), s_gen(D), s_ref(D);
  pooled_stats(feat.enc, test, s_test);
  const std::int64_t gen_correct = pooled_stats(feat.enc, gds, s_gen);
  const auto ref_idx = redi::train::detail::first_of_permutation(train.n, N, seed ^ 0x726566u);
  pooled_stats(feat.enc, redi::data::subset(train, ref_idx), s_ref);
  const double fd = redi::eval::frechet_distance(s_gen, s_test), fd_ref = redi::eval::frechet_distance(s_ref, s_test);
  const double acc = double(gen_correct) / N;
  const double total_s = since(t_start);
  std::cout << "[quickstart] FD (encoder pooled features, " << N << " samples vs " << test.n
            << " test images): " << fd << "   [" << N << " real train images: " << fd_ref << "]\n"
            << "[quickstart] encoder classifies " << 100.0 * acc << "% of the samples as their class\n"
            << "[quickstart] wrote " << (out / "samples.png").string() << ", " << (out / "samples.npz").string()
            << ", " << (out / "eval.json").string() << "; total " << redi::train::format_duration(total_s) << "\n";
  redi::train::JsonObject ev;
  ev.add("variant", plain ? "plain" : "redi").add("r", r).add("fd_pooled_encoder", fd);
  ev.add("fd_reference_real_train", fd_ref).add("sample_class_accuracy", acc);
  ev.add("samples", N).add("test_images", test.n).add("steps_trained", model.step()).add("steps_requested", steps);
  if (a.has("from")) ev.add("from_checkpoint", a.str("from"));
  ev.add("stopped_early", trainer.stopped_early()).add("batch", batch).add("parameters", model.net().num_params());
  ev.add("model", redi::train::to_json(o.model)).add("lambda_z", o.loss.lambda_z).add("p_drop", o.loss.p_drop);
  ev.add("lr", o.train.adamw.lr).add("sampler", sampler).add("sample_steps", sample_steps);
  ev.add("cfg_scale", go.cfg_scale).add("rg_scale", plain ? 1.0 : go.rg_scale);
  redi::train::JsonObject secs;
  secs.add("features", enc_s).add("train", train_s).add("sample", sample_s).add("eval", since(t_eval));
  secs.add("total", total_s);
  ev.add("seconds", secs);
  if (!trainer.history().empty()) ev.add("final_loss", trainer.history().back().loss);
#if defined(_OPENMP)
  ev.add("threads", omp_get_max_threads());
#endif
  std::ofstream(out / "eval.json") << ev.str() << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return redi_examples::cli_main("redi_quickstart", [&] {
    const Args a(argc, argv,
                 {"steps", "minutes", "batch", "width", "depth", "heads", "patch", "lr", "lambda-z", "p-drop", "ema",
                  "sampler", "sample-steps", "cfg", "rg", "samples-per-class", "encoder-steps", "seed", "out",
                  "encoder-dir", "data", "threads", "from"},
                 {"plain", "help"});
    if (a.flag("help")) {
      std::cout << kUsage;
      return 0;
    }
    return run(a);
  });
}
