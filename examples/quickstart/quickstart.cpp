// redi_quickstart — ReDi end to end on Fashion-MNIST, on a CPU, in about a quarter of an hour:
//   1. Fashion-MNIST padded 28 -> 32, pixels in [-1, 1] (pixel space: Cx = 1, no VAE); the
//      first 55,000 training images train everything, the last 5,000 are the validation split
//      (redi/data/splits.hpp), the 10,000 test images are the final reference;
//   2. a frozen feature encoder (--encoder: the committed self-supervised DINO + iBOT ViT by
//      default, or a supervised ViT trained here) and the PCA of its patch features to r channels;
//   3. a small SiT with Merged fusion and flow matching, trained with redi::train::Trainer;
//   4. 1000 samples with the run's guidance (by default unconditional with representation
//      guidance, the setting where ReDi beats the plain model at this budget: docs/results.md;
//      --conditional: CFG on the image channel plus representation guidance);
//   5. quality numbers written to eval.json: the independent judge's report (a CNN classifier
//      that is never a feature source, redi/eval/judge.hpp: Frechet distance in its features,
//      precision/recall, class coverage and accuracy), and for reference the Frechet distance in
//      the feature encoder's pooled space (a figure the ReDi model is trained towards: no judge).
// --plain trains the plain SiT (r = 0) with the same budget and settings: the matched baseline.
// Outputs (in --out): samples.png, samples.npz (ADM evaluator format), metrics.jsonl,
// checkpoint.safetensors, eval.json, and with --eval-every evals/step_N.npz along training, the
// judge's FD at each in metrics.jsonl, and curves.png (losses and judge FD against steps).
// Under mpirun -np W (docs/distributed.md): W data-parallel ranks train on batch / W each and
// split the sampling by global index; rank 0 evaluates and writes every file; the result is
// the one-process run's.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <numeric>
#include <optional>
#include <string>
#include <vector>

#include "redi/train/cli.hpp"
#include "features.hpp"
#include "redi/data/idx.hpp"
#include "redi/data/resample.hpp"
#include "redi/data/splits.hpp"
#include "redi/eval/judge.hpp"
#include "redi/io/atomic_file.hpp"
#include "redi/io/image_write.hpp"
#include "redi/io/npz.hpp"
#include "redi/redi_model.hpp"
#include "redi/eval/frechet.hpp"
#include "redi/train/metrics_log.hpp"
#include "redi/train/samples.hpp"
#include "redi/train/distributed_sampling.hpp"
#include "redi/train/trainer.hpp"
#include "redi/viz/training_curves.hpp"
#if REDI_QUICKSTART_HAVE_MPI
#include "redi/dist/mpi.hpp"
#endif

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace fs = std::filesystem;
using redi::cli::Args;
using redi::cli::UsageError;
using Model = redi::ReDi<redi::SiT, redi::Merged, redi::FlowMatching>;
using clk = std::chrono::steady_clock;

namespace {

const char* kUsage = R"(usage: redi_quickstart [options]
ReDi on Fashion-MNIST (pixel space, 32x32): a feature encoder + PCA, a small SiT with Merged
fusion and flow matching, 1000 samples with the run's guidance, and quality numbers.
Everything is deterministic for a given thread count.
  --plain               the plain SiT (r = 0) with the same budget (default out runs/quickstart_plain)
  --conditional         class-conditional (10 classes, CFG; ReDi adds RG)
  --unconditional       one class (num_classes = 1): no CFG; ReDi samples with RG alone (default)
  --r N                 PCA channels the model generates (default 8; --plain: 0)
  --encoder E           dino | supervised: the committed self-supervised (DINO + iBOT) ViT, or a
                        supervised ViT trained here (default dino; docs/results.md)
  --z-norm M            per-channel | relative | natural (default per-channel; see features.hpp)
  --z-scale X           scale of the normalised PCs (default 1)
  --feature-grid G      image | token: the features resized to the 32x32 image grid and patchified
                        like it (the paper's layout), or kept on the 8x8 token grid (one r-vector
                        per token, own embedder and head; ModelConfig::feature_size) (default token)
  --steps N             SiT training steps (default 2000)
  --minutes M           wall-clock budget of this program in minutes (default 12.5); training
                        stops early, with a message, if it would not leave time to sample
  --batch N             batch size (default 64)
  --width N --depth N --heads N --patch N   SiT size (default 128, 4, 4, 4)
  --lr X                AdamW learning rate (default 1e-3, warm-up 200 steps)
  --lambda-z X          feature-loss weight (default 1)
  --p-drop X            representation dropout for RG training (default 0.2)
  --drop-zeroes W       clean | noisy: a dropped representation zeroes the clean z before noising
                        (the authors' code) or the noisy z_t the network sees (the paper's
                        wording, and what RG sampling feeds the unconditional branch) (default clean)
  --drop-per-sample     one dropout coin per sample (default: one per batch, the authors' code)
  --ema X               EMA decay (default 0.995)
  --sampler S           euler | heun | sde (default euler)
  --sample-steps N      sampler steps (default 20)
  --guidance G          auto | none | cfg | rg | cfg+rg (default auto: conditional cfg (+rg when
                        r > 0), unconditional rg when r > 0, else none)
  --cfg X               CFG scale on the image channel (default 2.0)
  --rg X                representation guidance scale (default 1.5 unconditional, 1.1 with CFG;
                        both chosen on the validation split, docs/results.md)
  --samples N           samples drawn at the end (default 1000; balanced over the classes)
  --eval-split S        val | test: the reference images of the quality numbers (default test);
                        with test, the judge's floor (as many real validation images) is reported
  --eval-every N        also sample --eval-samples images every N steps into evals/, log the
                        judge's FD (against the --eval-split images) and draw curves.png
                        (default 500; 0: off)
  --eval-samples N      (default 200; the FD of few samples is biased upwards: compare curves
                        at equal N, and read the final eval.json for the 1000-sample figure)
  --oracle              also sample the image channels with the features held to those of the
                        first N reference images (SampleRequest::known_z): oracle_samples.npz
  --encoder-steps N     supervised encoder training steps (default 600)
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

/// The ranks of this run (one process: dist::single()).
redi::dist::Communicator* g_comm = &redi::dist::single();

struct Run {
  bool plain = false, conditional = true, oracle = false;
  int r = 8, samples = 1000, sample_steps = 20, eval_samples = 200;
  std::string sampler = "euler", guidance = "auto", eval_split = "test";
  std::int64_t eval_every = 0;
  redi::GuidanceOptions go;
  std::uint64_t seed = 0;
};

/// Samples labels.size() images in batches of 125 with the run's sampler and guidance (labels
/// all 0 when unconditional) and keeps their image channels; known_z [N, r, F, F] holds the
/// features to condition on (the oracle) when non-null.
redi::train::SampleImages draw_samples(Model& m, const Run& run, std::vector<int> labels, const float* known_z,
                                       std::uint64_t seed, bool verbose, redi::dist::Communicator* comm = nullptr) {
  const redi::ModelConfig& mc = m.net().config();
  const std::size_t zper = std::size_t(mc.feature_channels) * mc.feature_grid() * mc.feature_grid();
  std::string g = run.guidance;
  if (g == "auto") g = run.conditional ? (run.r > 0 ? "cfg+rg" : "cfg") : (run.r > 0 ? "rg" : "none");
  auto draw = [&](float* o, const redi::SampleRequest& batch) {
    redi::SampleRequest req = batch;
    if (known_z) req.known_z = known_z + std::size_t(req.first_index) * zper;
    auto with = [&]<class G>() {
      if (run.sampler == "euler") m.sample<redi::OdeEuler, G>(o, req, {.num_steps = run.sample_steps}, run.go);
      else if (run.sampler == "heun") m.sample<redi::OdeHeun, G>(o, req, {.num_steps = run.sample_steps}, run.go);
      else m.sample<redi::SdeEulerMaruyama, G>(o, req, {.num_steps = run.sample_steps}, run.go);
    };
    if (g == "none") with.template operator()<redi::NoGuidance>();
    else if (g == "cfg") with.template operator()<redi::CFG<redi::VaeOnly>>();
    else if (g == "rg") with.template operator()<redi::RepGuidance>();
    else with.template operator()<redi::Combine<redi::CFG<redi::VaeOnly>, redi::RepGuidance>>();
  };
  // split over the ranks by global index; rank 0 gets all rows (the one-process bits)
  return redi::train::sample_images_distributed(comm ? *comm : *g_comm, mc, std::move(labels), seed, draw, 125,
                                                verbose ? &std::cout : nullptr, "[quickstart]");
}

/// uint8 NHWC pixels of the samples' image channel.
std::vector<std::uint8_t> to_u8(const redi::train::SampleImages& s) {
  return redi::io::to_uint8_nhwc(s.x.data(), s.n, s.c, s.h, s.w);
}

/// Balanced labels: N samples over K classes (class i / (N / K)); all 0 when unconditional.
std::vector<int> balanced_labels(int N, int K) {
  std::vector<int> y(static_cast<std::size_t>(N), 0);
  if (K > 1)
    for (int i = 0; i < N; ++i) y[std::size_t(i)] = int(std::int64_t(i) * K / N);
  return y;
}

/// Mean-pooled encoder features of a uint8 image set into Gaussian statistics; returns how many
/// images the encoder's classifier head assigns to their label.
std::int64_t pooled_stats(redi::ViTEncoder<float>& enc, const redi::data::ImageDataset& ds,
                          redi::eval::GaussianStats& st) {
  std::vector<std::int64_t> idx(static_cast<std::size_t>(ds.n));
  std::iota(idx.begin(), idx.end(), std::int64_t(0));
  std::vector<float> f(std::size_t(ds.n) * std::size_t(enc.feature_dim()));
  const std::int64_t correct = redi::train::pooled_features(enc, ds, idx, f.data());
  st.add(f.data(), ds.n);
  return correct;
}

redi::data::ImageDataset as_dataset(const std::vector<std::uint8_t>& u8, const std::vector<int>& labels, int K) {
  redi::data::ImageDataset d;
  d.n = int(labels.size()); d.h = 32; d.w = 32; d.c = 1; d.pixels = u8; d.labels = labels; d.num_classes = K;
  d.source = "generated samples";
  return d;
}

int run_main(const Args& a) {
  const auto t_start = clk::now();
  Run run;
  run.plain = a.flag("plain");
  if (a.flag("conditional") && a.flag("unconditional")) throw UsageError("--conditional and --unconditional");
  run.conditional = a.flag("conditional");
  run.r = run.plain ? 0 : int(a.integer("r", 8, 1, quickstart::kPcaComponents));
  if (run.plain && a.has("r")) throw UsageError("--plain and --r: the plain model has r = 0");
  const std::int64_t steps = a.integer("steps", 2000, 1, 10'000'000);
  const double minutes = a.real("minutes", 12.5, 0.5, 1e6);
  const int batch = int(a.integer("batch", 64, 1, 4096));
  run.sampler = a.choice("sampler", "euler", {"euler", "heun", "sde"});
  run.sample_steps = int(a.integer("sample-steps", 20, run.sampler == "sde" ? 2 : 1, 1000));
  run.guidance = a.choice("guidance", "auto", {"auto", "none", "cfg", "rg", "cfg+rg"});
  if ((run.guidance == "rg" || run.guidance == "cfg+rg") && run.r == 0)
    throw UsageError("--guidance " + run.guidance + ": representation guidance needs a ReDi model (r > 0)");
  if ((run.guidance == "cfg" || run.guidance == "cfg+rg") && !run.conditional)
    throw UsageError("--guidance " + run.guidance + ": an unconditional model has no classifier-free guidance");
  run.samples = int(a.integer("samples", 1000, 10, 1'000'000));
  run.eval_split = a.choice("eval-split", "test", {"val", "test"});
  run.eval_every = a.integer("eval-every", 500, 0, 10'000'000);
  run.eval_samples = int(a.integer("eval-samples", 200, 10, 1'000'000));
  run.oracle = a.flag("oracle");
  if (run.oracle && run.r == 0) throw UsageError("--oracle needs a ReDi model (r > 0)");
  run.seed = std::uint64_t(a.integer("seed", 0, 0, INT64_MAX));
  const fs::path out = a.str("out", run.plain ? "runs/quickstart_plain" : "runs/quickstart");
  run.go.cfg_scale = a.real("cfg", 2.0, 0.0, 100.0);
  run.go.rg_scale = a.real("rg", run.conditional ? 1.1 : 1.5, 0.0, 100.0);
  quickstart::FeatureSettings fset;
  fset.encoder = a.choice("encoder", "dino", {"dino", "supervised"});
  fset.encoder_steps = int(a.integer("encoder-steps", 600, 1, 1'000'000));
  fset.r = run.r;
  fset.z.mode = a.choice("z-norm", "per-channel", {"per-channel", "relative", "natural"});
  fset.z.scale = a.real("z-scale", 1.0, 1e-3, 1e3);
  fset.seed = run.seed;
  fset.cache_dir = a.str("encoder-dir", "runs/encoder");
  const int K = run.conditional ? 10 : 1;

  Model::Options o;
  o.model.input_size = 32;
  o.model.image_channels = 1;
  o.model.feature_channels = run.r;
  o.model.num_classes = K;
  o.model.width = int(a.integer("width", 128, 8, 4096));
  o.model.depth = int(a.integer("depth", 4, 1, 64));
  o.model.heads = int(a.integer("heads", 4, 1, 64));
  o.model.patch = int(a.integer("patch", 4, 1, 8));
  const std::string feature_grid = a.choice("feature-grid", "token", {"image", "token"});
  if (feature_grid == "token" && run.r > 0) o.model.feature_size = o.model.input_size / o.model.patch;
  o.loss.lambda_z = a.real("lambda-z", 1.0, 0.0, 100.0);
  o.loss.p_drop = run.plain ? 0.0 : a.real("p-drop", 0.2, 0.0, 1.0);
  o.loss.label_drop_prob = run.conditional ? 0.1 : 0.0;
  o.loss.zero_noisy_z = a.choice("drop-zeroes", "clean", {"clean", "noisy"}) == "noisy";
  o.loss.rep_drop = a.flag("drop-per-sample") ? redi::RepDrop::PerSample : redi::RepDrop::PerBatch;
  o.train.adamw.lr = a.real("lr", 1e-3, 1e-7, 1.0);
  o.train.warmup_steps = 200;
  o.train.grad_clip = 1.0;
  o.train.ema_decay = a.real("ema", 0.995, 0.0, 1.0);
  o.train.seed = run.seed;
  o.init_seed = run.seed;
  try {
    o.model.validate();
  } catch (const redi::Error& e) {
    throw UsageError(std::string("invalid model size: ") + e.what());
  }
#if defined(_OPENMP)
  if (a.has("threads")) omp_set_num_threads(int(a.integer("threads", 2, 1, 1024)));
  std::cout << "[quickstart] " << omp_get_max_threads() << " OpenMP threads\n";
#endif

  // 1. data: train on the first 55,000 training images; reference = validation or test images
  const std::string dir = a.str("data");
  const auto full = redi::data::pad_to(redi::data::load_fashion_mnist(redi::data::Split::Train, dir), 32);
  auto split = redi::data::holdout(full, redi::data::kFashionMnistValidation);
  const redi::data::ImageDataset& train = split.train;
  const redi::data::ImageDataset ref = run.eval_split == "val"
                                           ? split.val
                                           : redi::data::pad_to(redi::data::load_fashion_mnist(redi::data::Split::Test, dir), 32);
  std::cout << "[quickstart] Fashion-MNIST: " << train.n << " training images, reference: " << ref.n << " "
            << run.eval_split << " images, 32x32x1\n";

  // the independent judge and its reference statistics (fails early when its weights are missing)
  redi::eval::Judge judge = redi::eval::Judge::load();
  const redi::eval::ReferenceSet judge_ref = g_comm->is_root() ? judge.reference(ref) : redi::eval::ReferenceSet{};
  std::cout << "[quickstart] judge: " << judge.feature_space() << "\n";

  // 2. encoder + PCA (the plain run needs the encoder too: the encoder-space FD); rank 0 fills
  // the cache first, the other ranks then read it
  const auto t_enc = clk::now();
  if (!g_comm->is_root()) g_comm->barrier();
  quickstart::Features feat = quickstart::encoder_and_pca(train, fset, std::cout);
  if (g_comm->is_root()) g_comm->barrier();
  redi::data::TrainSet data = redi::data::TrainSet::from_images(train, "fashion-mnist-train-55k-32");
  data.num_classes = K;
  if (!run.conditional) std::fill(data.labels.begin(), data.labels.end(), 0);
  if (run.r > 0) {
    const int g = feat.enc.config().grid();
    std::vector<std::int64_t> idx(static_cast<std::size_t>(train.n));
    std::iota(idx.begin(), idx.end(), std::int64_t(0));
    data.r = run.r; data.zh = g; data.zw = g;
    data.z = quickstart::model_features(feat, train, idx, run.r);
  }
  const double enc_s = since(t_enc);
  std::cout << "[quickstart] features ready in " << redi::train::format_duration(enc_s) << "\n";

  // 3. train
  Model model(o);
  std::cout << "[quickstart] " << (run.plain ? "plain SiT" : "ReDi SiT") << " Merged/FlowMatching, "
            << (run.conditional ? "class-conditional" : "unconditional") << ": width " << o.model.width << ", depth "
            << o.model.depth << ", patch " << o.model.patch << ", r = " << run.r << ", "
            << model.net().num_params() << " parameters\n";
  // Time left for training = budget - elapsed - the sampling time, estimated from one timed
  // forward pass of the sampling batch (branches x 125 rows).
  const int branches = 1 + (run.conditional ? 1 : 0) + (run.r > 0 ? 1 : 0);
  const int nfe = run.sampler == "heun" ? 2 * run.sample_steps : run.sample_steps;
  double fwd_s = 0;
  {
    const int rows = branches * 125;
    std::vector<float> xin(std::size_t(rows) * o.model.input_elems(), 0.f), tv(std::size_t(rows), 0.5f),
        outv(xin.size());
    std::vector<int> yv(std::size_t(rows), 0);
    model.ema().forward(xin.data(), tv.data(), yv.data(), rows, outv.data());  // warm-up (allocations)
    const auto t = clk::now();
    model.ema().forward(xin.data(), tv.data(), yv.data(), rows, outv.data());
    fwd_s = since(t);
  }
  // The final samples, plus the evaluations along training (they share the wall-clock budget).
  const std::int64_t n_evals = run.eval_every > 0 && !a.has("from") ? steps / run.eval_every : 0;
  const int n_sampled = run.samples * (run.oracle ? 2 : 1) + int(n_evals) * run.eval_samples;
  const double sample_est = fwd_s * nfe * double(n_sampled) / 125.0 + 20.0;  // + evaluation
  redi::train::TrainerConfig tc;
  tc.steps = steps;
  tc.batch = batch;
  tc.data_seed = run.seed;
  tc.log_every = 50;
  tc.sample_every = -1;
  tc.ckpt_every = 500;
  tc.out_dir = out.string();
  tc.eval_every = run.eval_every;
  tc.max_seconds = std::max(30.0, minutes * 60.0 - since(t_start) - sample_est);
  tc.max_seconds = redi::dist::broadcast_value(*g_comm, tc.max_seconds);  // rank 0's budget everywhere
  tc.comm = g_comm;
  std::cout << "[quickstart] training budget " << redi::train::format_duration(tc.max_seconds) << " (sampling "
            << n_sampled << " images estimated at " << redi::train::format_duration(sample_est) << ")\n";
  fs::create_directories(out);
  redi::train::Trainer<Model> trainer(model, data, tc, &std::cout);
  if (run.eval_every > 0) {
    trainer.set_eval_fn([&](Model& m, std::int64_t step, redi::train::JsonObject& rec) {
      const auto te = clk::now();
      const std::vector<int> y = balanced_labels(run.eval_samples, K);
      // rank 0 alone evaluates during training: one process draws
      const auto gen = draw_samples(m, run, y, nullptr, run.seed + 1, false, &redi::dist::single());
      char name[48];
      std::snprintf(name, sizeof name, "step_%07lld.npz", (long long)step);
      fs::create_directories(out / "evals");
      const auto u8 = to_u8(gen);
      redi::io::save_sample_npz(out / "evals" / name, u8.data(), run.eval_samples, 32, 32, 1, y.data());
      const redi::eval::JudgeReport rep = judge.report(u8.data(), run.eval_samples, run.conditional ? y.data() : nullptr,
                                                       judge_ref);
      rec.add("judge_fd", rep.fd).add("judge_precision", rep.precision).add("judge_recall", rep.recall);
      rec.add("judge_coverage", rep.coverage.coverage);
      if (run.conditional) rec.add("judge_class_accuracy", rep.class_accuracy);
      rec.add("samples_file", (fs::path("evals") / name).string()).add("eval_seconds", since(te));
    });
  }
  const auto t_train = clk::now();
  if (a.has("from")) {
    const auto st = redi::train::load_checkpoint(a.str("from"), model);
    std::cout << "[quickstart] no training: sampling " << a.str("from") << " (step " << st.step << ")\n";
  } else {
    trainer.run();
  }
  const double train_s = since(t_train);
  if (run.eval_every > 0 && !a.has("from") && g_comm->is_root()) {
    redi::viz::CurvesOptions co;
    co.title = std::string(run.plain ? "plain SiT" : "ReDi SiT") + (run.conditional ? ", conditional" : ", unconditional");
    for (const char* k : {"loss", "mse_x", "mse_z", "judge_fd"})
      if (std::string(k) != "mse_z" || run.r > 0) co.keys.push_back(k);
    redi::viz::plot_training_curves(out / "metrics.jsonl", out / "curves.png", co);
  }

  // 4. sample
  const int N = run.samples;
  const std::vector<int> labels = balanced_labels(N, K);
  const auto t_sample = clk::now();
  const auto gen = draw_samples(model, run, labels, nullptr, run.seed + 1, true);
  const double sample_s = since(t_sample);
  if (!g_comm->is_root() && !run.oracle) return 0;  // rank 0 evaluates and writes
  const auto u8 = g_comm->is_root() ? redi::train::write_samples(out, gen, 1000, 50)  // samples.npz, samples.png
                                    : std::vector<std::uint8_t>{};

  // 4b. oracle: the image channel sampled with the features held to those of real reference images
  if (run.oracle) {
    const int n = std::min(N, ref.n), g = feat.enc.config().grid(), F = o.model.feature_grid();
    std::vector<std::int64_t> idx(static_cast<std::size_t>(n));
    std::iota(idx.begin(), idx.end(), std::int64_t(0));
    const std::vector<float> zg = quickstart::model_features(feat, ref, idx, run.r);
    std::vector<float> z(std::size_t(n) * run.r * F * F);
    for (int i = 0; i < n; ++i)
      redi::data::resize_bilinear(zg.data() + std::size_t(i) * run.r * g * g, run.r, g, g,
                                  z.data() + std::size_t(i) * run.r * F * F, F, F);
    std::vector<int> yo(static_cast<std::size_t>(n), 0);
    if (run.conditional)
      for (int i = 0; i < n; ++i) yo[std::size_t(i)] = ref.labels[std::size_t(i)];
    const auto ogen = draw_samples(model, run, yo, z.data(), run.seed + 1, true);
    if (!g_comm->is_root()) return 0;
    const auto ou8 = to_u8(ogen);
    redi::io::save_sample_npz(out / "oracle_samples.npz", ou8.data(), n, 32, 32, 1, yo.data());
    redi::io::write_png(out / "oracle_samples.png", redi::io::make_grid(ou8.data(), std::min(n, 1000), 32, 32, 1, 50));
  }

  // 5. the encoder-space figures (for reference; not a judge of a model trained on these features)
  const auto t_eval = clk::now();
  const int D = feat.enc.feature_dim();
  redi::eval::GaussianStats s_ref(D), s_gen(D);
  pooled_stats(feat.enc, ref, s_ref);
  const std::int64_t gen_correct = pooled_stats(feat.enc, as_dataset(u8, labels, K == 1 ? 10 : K), s_gen);
  const double fd = redi::eval::frechet_distance(s_gen, s_ref);
  redi::eval::JudgeReport jrep = judge.report(u8.data(), N, run.conditional ? labels.data() : nullptr, judge_ref);
  if (run.eval_split == "test") jrep.set_floor(judge.floor(split.val, N, judge_ref));
  std::cout << "[quickstart] " << jrep.summary();
  const double total_s = since(t_start);
  std::cout << "[quickstart] FD in the feature encoder's pooled space (" << N << " samples vs " << ref.n << " "
            << run.eval_split << " images): " << fd << "\n";
  if (run.conditional)
    std::cout << "[quickstart] the feature encoder classifies " << 100.0 * double(gen_correct) / N
              << "% of the samples as their class\n";
  std::cout << "[quickstart] wrote " << (out / "samples.png").string() << ", " << (out / "samples.npz").string()
            << ", " << (out / "eval.json").string() << "; total " << redi::train::format_duration(total_s) << "\n";
  redi::train::JsonObject ev;
  ev.add("variant", run.plain ? "plain" : "redi").add("conditional", run.conditional).add("r", run.r);
  ev.add("encoder", fset.encoder).add("z_norm", fset.z.mode).add("z_scale", fset.z.scale);
  ev.add("feature_grid", feature_grid);
  ev.add("eval_split", run.eval_split).raw("judge", jrep.to_json()).add("fd_feature_encoder", fd);
  if (run.conditional) ev.add("feature_encoder_class_accuracy", double(gen_correct) / N);
  ev.add("samples", N).add("reference_images", ref.n).add("steps_trained", model.step()).add("steps_requested", steps);
  if (a.has("from")) ev.add("from_checkpoint", a.str("from"));
  ev.add("stopped_early", trainer.stopped_early()).add("batch", batch).add("parameters", model.net().num_params());
  ev.add("model", redi::train::to_json(o.model)).add("lambda_z", o.loss.lambda_z).add("p_drop", o.loss.p_drop);
  ev.add("drop_zeroes", o.loss.zero_noisy_z ? "noisy" : "clean").add("drop_per_sample", o.loss.rep_drop == redi::RepDrop::PerSample);
  ev.add("lr", o.train.adamw.lr).add("seed", run.seed).add("sampler", run.sampler).add("sample_steps", run.sample_steps);
  ev.add("guidance", run.guidance).add("cfg_scale", run.go.cfg_scale).add("rg_scale", run.go.rg_scale);
  ev.add("oracle", run.oracle);
  redi::train::JsonObject secs;
  secs.add("features", enc_s).add("train", train_s).add("sample", sample_s).add("eval", since(t_eval));
  secs.add("total", total_s);
  ev.add("seconds", secs);
  if (!trainer.history().empty()) {  // means over the last 100 steps (one step's loss is noisy)
    const auto& h = trainer.history();
    const std::size_t n = std::min<std::size_t>(100, h.size());
    double l = 0, mx = 0, mz = 0;
    for (std::size_t i = h.size() - n; i < h.size(); ++i) l += h[i].loss, mx += h[i].mse_x, mz += h[i].mse_z;
    ev.add("final_loss", l / double(n)).add("final_mse_x", mx / double(n)).add("final_mse_z", mz / double(n));
  }
#if defined(_OPENMP)
  ev.add("threads", omp_get_max_threads());
#endif
  redi::io::write_file_atomic(out / "eval.json", ev.str() + "\n");  // checked, atomic
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
#if REDI_QUICKSTART_HAVE_MPI
  // under mpirun / srun: data-parallel ranks; started directly: one process, MPI untouched
  std::optional<redi::dist::MpiRuntime> mpi_runtime;
  std::optional<redi::dist::Mpi> world;
  if (redi::dist::MpiRuntime::launched()) mpi_runtime.emplace(argc, argv), world.emplace();
  if (world && world->size() > 1) {
    g_comm = &*world;
    if (world->rank() != 0) std::cout.setstate(std::ios::failbit);  // one console: rank 0's
  }
#endif
  return redi::cli::run_main("redi_quickstart", [&] {
    const Args a(argc, argv,
                 {"steps", "minutes", "batch", "width", "depth", "heads", "patch", "lr", "lambda-z", "p-drop", "ema",
                  "sampler", "sample-steps", "guidance", "cfg", "rg", "samples", "eval-split", "eval-every",
                  "eval-samples", "encoder", "z-norm", "z-scale", "r", "drop-zeroes", "feature-grid", "encoder-steps", "seed", "out", "encoder-dir",
                  "data", "threads", "from"},
                 {"plain", "conditional", "unconditional", "oracle", "drop-per-sample", "help"});
    if (a.flag("help")) {
      std::cout << kUsage;
      return 0;
    }
    return run_main(a);
  });
}
