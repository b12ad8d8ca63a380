// redi_encoder — trains and evaluates redi's offline feature encoders on Fashion-MNIST (the
// ViTEncoder whose PCA-reduced patch features ReDi generates; docs/encoder.md):
//
//   redi_encoder train --ssl dino --out FILE   DINO self-supervised (train::train_dino_encoder)
//                                              on the 55,000-image training split, then a
//                                              linear probe (chosen on the 5,000 validation
//                                              images) as its classification head
//   redi_encoder train --ssl none --out FILE   the supervised ViT classifier
//                                              (train::train_encoder, the quickstart's)
//   redi_encoder eval --encoder FILE|random    k-NN (k = 20, cosine, T = 0.07; the 55,000 train
//                                              images as memory) and linear-probe accuracy,
//                                              validation and test; the PCA of the patch
//                                              features; the cost of extracting them
#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <numeric>
#include <string>
#include <tuple>
#include <vector>

#include "redi/train/cli.hpp"
#include "redi/data/idx.hpp"
#include "redi/data/splits.hpp"
#include "redi/io/atomic_file.hpp"
#include "redi/io/image_write.hpp"
#include "redi/train/dino_training.hpp"
#include "redi/train/encoder_training.hpp"
#include "redi/train/metrics_log.hpp"
#include "redi/train/probes.hpp"

namespace fs = std::filesystem;
using redi::cli::Args;
using redi::cli::UsageError;
using clk = std::chrono::steady_clock;

namespace {

const char* kUsage = R"(usage: redi_encoder train --ssl dino|none --out FILE [options]
       redi_encoder eval --encoder FILE|random [options]
Fashion-MNIST padded to 32x32; the first 55,000 training images train, the last 5,000 validate
(data::holdout), the 10,000 test images are used by eval only.
train options:
  --ssl dino|none       DINO self-distillation (no labels) or the supervised classifier
  --out FILE            where the encoder goes (safetensors; config in its metadata)
  --steps N             training steps (dino default 7000, none default 600 = the quickstart's)
  --batch N             images per step (default 64)
  --lr X                peak learning rate (default 2e-3)
  --width N --depth N --heads N --patch N   ViT geometry (default 64, 2, 4, 4)
  --local-crops N       dino: local crops per image (default 4)
  --local-size N        dino: local crop side in pixels (default 16)
  --global-scale A,B --local-scale A,B   dino: crop area ranges (default 0.4,1 and 0.1,0.4)
  --out-dim K           dino: prototypes (default 1024)
  --momentum X          dino: teacher EMA momentum at the start (default 0.99, cosine to 1)
  --ibot                dino: add iBOT's masked patch-token loss
  --teacher-temp X      dino: teacher temperature (default 0.04)
  --warmup N            warm-up steps (dino default 500)
  --minutes M           stop training after M minutes (not deterministic; default: off)
  --monitor N           dino: k-NN on 1,000 validation images every N steps (default 0: off)
  --seed N              (default 0)
  --no-probe            dino: leave the classification head at zero
eval options:
  --encoder FILE|random the encoder to evaluate (random: a fresh default-config ViT, seed 0)
  --json FILE           also write the numbers as one JSON object
  --pc-png FILE         a picture of 16 validation images and their first 3 PCs as RGB
common:
  --threads N           OpenMP threads
  --help
)";

double since(clk::time_point t) { return std::chrono::duration<double>(clk::now() - t).count(); }

std::pair<double, double> pair_arg(const Args& a, const std::string& name, double d0, double d1) {
  if (!a.has(name)) return {d0, d1};
  const std::string s = a.str(name);
  const auto c = s.find(',');
  if (c == std::string::npos) throw UsageError("--" + name + ": '" + s + "' is not A,B");
  try {
    return {std::stod(s.substr(0, c)), std::stod(s.substr(c + 1))};
  } catch (const std::exception&) {
    throw UsageError("--" + name + ": '" + s + "' is not A,B");
  }
}

redi::data::HoldoutSplit load_split() {
  auto full = redi::data::pad_to(redi::data::load_fashion_mnist(redi::data::Split::Train), 32);
  return redi::data::holdout(full, redi::data::kFashionMnistValidation);
}

int cmd_train(const Args& a, const std::string& command) {
  const std::string ssl = a.choice("ssl", "dino", {"dino", "none"});
  if (!a.has("out")) throw UsageError("train needs --out FILE");
  const fs::path out = a.str("out");
  redi::ViTEncoderConfig model;
  model.width = int(a.integer("width", model.width, 4, 1024));
  model.depth = int(a.integer("depth", model.depth, 1, 64));
  model.heads = int(a.integer("heads", model.heads, 1, 64));
  model.patch = int(a.integer("patch", model.patch, 1, 32));
  const std::uint64_t seed = std::uint64_t(a.integer("seed", 0, 0, 1'000'000'000));
  // every option is read before the data are loaded (usage errors come first)
  redi::train::EncoderTrainConfig sup;
  redi::train::DinoTrainConfig cfg;
  int monitor_every = 0;
  if (ssl == "none") {
    sup.model = model;
    sup.steps = int(a.integer("steps", 600, 1, 10'000'000));
    sup.batch = int(a.integer("batch", sup.batch, 1, 65536));
    sup.lr = a.real("lr", sup.lr, 1e-8, 1);
    sup.seed = seed;
    sup.max_seconds = a.real("minutes", 0, 0, 1e6) * 60;
  } else {
    cfg.model = model;
    cfg.steps = int(a.integer("steps", cfg.steps, 1, 10'000'000));
    cfg.batch = int(a.integer("batch", cfg.batch, 2, 65536));
    cfg.lr = a.real("lr", cfg.lr, 1e-8, 1);
    cfg.warmup_steps = int(a.integer("warmup", cfg.warmup_steps, 0, 10'000'000));
    cfg.crops.local_crops = int(a.integer("local-crops", cfg.crops.local_crops, 0, 64));
    cfg.crops.local.size = int(a.integer("local-size", cfg.crops.local.size, 4, 32));
    std::tie(cfg.crops.global.scale_min, cfg.crops.global.scale_max) =
        pair_arg(a, "global-scale", cfg.crops.global.scale_min, cfg.crops.global.scale_max);
    std::tie(cfg.crops.local.scale_min, cfg.crops.local.scale_max) =
        pair_arg(a, "local-scale", cfg.crops.local.scale_min, cfg.crops.local.scale_max);
    cfg.head.out_dim = int(a.integer("out-dim", cfg.head.out_dim, 2, 1 << 20));
    cfg.momentum_teacher = a.real("momentum", cfg.momentum_teacher, 0, 1);
    cfg.teacher_temp = a.real("teacher-temp", cfg.teacher_temp, 1e-4, 10);
    cfg.warmup_teacher_temp = std::min(cfg.warmup_teacher_temp, cfg.teacher_temp);
    cfg.ibot = a.flag("ibot");
    cfg.seed = seed;
    cfg.max_seconds = a.real("minutes", 0, 0, 1e6) * 60;
    monitor_every = int(a.integer("monitor", 0, 0, 10'000'000));
    cfg.log_every = monitor_every > 0 ? monitor_every : cfg.log_every;
    cfg.head.in_dim = cfg.model.width;
    try {
      cfg.validate();
    } catch (const redi::Error& e) {
      throw UsageError(e.what());
    }
  }
  auto split = load_split();
  std::cout << "[redi_encoder] train " << split.train.n << " images, validation " << split.val.n << "\n";
  const auto t0 = clk::now();
  redi::ViTEncoder<float> enc(model);
  std::map<std::string, std::string> md;
  if (ssl == "none") {
    enc = redi::train::train_encoder(split.train, sup, &std::cout);
    md["redi.encoder.method"] = "supervised";
    md["redi.encoder.steps"] = std::to_string(sup.steps);
  } else {
    redi::train::DinoMonitor monitor;
    redi::data::ImageDataset mem_ds, q_ds;
    if (monitor_every > 0) {
      std::vector<std::int64_t> mi(5000), qi(1000);
      std::iota(mi.begin(), mi.end(), std::int64_t(0));
      std::iota(qi.begin(), qi.end(), std::int64_t(0));
      mem_ds = redi::data::subset(split.train, mi);
      q_ds = redi::data::subset(split.val, qi);
      monitor = [&](int step, redi::ViTEncoder<float>& t) {
        const auto m = redi::train::encode_pooled(t, mem_ds), q = redi::train::encode_pooled(t, q_ds);
        std::cout << "[monitor] step " << step << "  k-NN (5k memory, 1k val) " << redi::train::knn_accuracy(m, q)
                  << "\n";
      };
    }
    redi::train::DinoTrainStats st;
    enc = redi::train::train_dino_encoder(split.train, cfg, &std::cout, &st, monitor);
    md["redi.encoder.method"] = cfg.ibot ? "dino+ibot" : "dino";
    md["redi.encoder.steps"] = std::to_string(st.steps);
    md["redi.encoder.final_loss"] = std::to_string(st.loss);
    md["redi.encoder.train_seconds"] = std::to_string(st.seconds);
    if (!a.flag("no-probe")) {
      const auto tp = clk::now();
      const auto probe = redi::train::fit_probe_head(enc, split.train, split.val, {}, &std::cout);
      std::cout << "[redi_encoder] linear probe head: lr " << probe.lr << ", weight decay " << probe.weight_decay
                << ", validation accuracy " << probe.val_accuracy << " (" << since(tp) << " s)\n";
      md["redi.encoder.head"] = "linear probe (lr " + std::to_string(probe.lr) + ", weight decay " +
                                std::to_string(probe.weight_decay) + ", " + std::to_string(probe.epochs) + " epochs)";
      md["redi.encoder.probe_val_accuracy"] = std::to_string(probe.val_accuracy);
    }
  }
  md["redi.encoder.seed"] = std::to_string(seed);
  md["redi.encoder.command"] = command;
  md["redi.encoder.train_images"] = std::to_string(split.train.n);
  md["redi.encoder.wall_seconds"] = std::to_string(since(t0));
  if (out.has_parent_path()) fs::create_directories(out.parent_path());
  enc.save(out, md);
  std::cout << "[redi_encoder] wrote " << out.string() << " (" << redi::train::format_duration(since(t0)) << ")\n";
  return 0;
}

/// Per PC, shares of its variance over (image, token): within_image = mean over images of the
/// variance across the image's tokens (spatial variation; 0 when every token of an image has
/// the same value, e.g. a class code broadcast to all tokens); position = variance of the
/// mean map over images (what the token position alone explains).
struct PcSpatial {
  double within_image = 0, position = 0;
};

std::vector<PcSpatial> pc_spatial(const redi::Tensor<float>& z) {  // z [N, r, g, g]
  const int N = int(z.shape()[0]), r = int(z.shape()[1]), g = int(z.shape()[2]), L = g * g;
  std::vector<PcSpatial> out(static_cast<std::size_t>(r));
  for (int k = 0; k < r; ++k) {
    double mean = 0, total = 0, within = 0, pv = 0;
    std::vector<double> pos_mean(static_cast<std::size_t>(L), 0.0);
    for (int i = 0; i < N; ++i) {
      const float* m = z.data() + (std::int64_t(i) * r + k) * L;
      double mi = 0;
      for (int t = 0; t < L; ++t) mi += m[t] / double(L);
      for (int t = 0; t < L; ++t) {
        within += (m[t] - mi) * (m[t] - mi);
        pos_mean[std::size_t(t)] += m[t] / double(N);
        mean += m[t];
      }
    }
    mean /= double(N) * L;
    for (int i = 0; i < N; ++i)
      for (int t = 0; t < L; ++t) {
        const double v = z.data()[(std::int64_t(i) * r + k) * L + t] - mean;
        total += v * v;
      }
    for (double m : pos_mean) pv += (m - mean) * (m - mean);
    out[std::size_t(k)] = {within / total, pv * N / total};
  }
  return out;
}

double cpu_seconds() { return double(std::clock()) / CLOCKS_PER_SEC; }

int cmd_eval(const Args& a) {
  if (!a.has("encoder")) throw UsageError("eval needs --encoder FILE|random");
  const std::string which = a.str("encoder");
  redi::ViTEncoder<float> enc = which == "random" ? redi::ViTEncoder<float>(redi::ViTEncoderConfig{})
                                                  : redi::ViTEncoder<float>::load(which);
  auto split = load_split();
  auto test = redi::data::pad_to(redi::data::load_fashion_mnist(redi::data::Split::Test), 32);
  redi::train::JsonObject js;
  js.add("encoder", which).add("config", enc.config().str()).add("parameters", enc.num_params());
  std::cout << "[eval] " << which << ": " << enc.config().str() << ", " << enc.num_params() << " parameters\n";

  auto t0 = clk::now();
  double c0 = cpu_seconds();
  const auto ftr = redi::train::encode_pooled(enc, split.train);
  const double t_train = since(t0), c_train = cpu_seconds() - c0;
  const auto fva = redi::train::encode_pooled(enc, split.val), fte = redi::train::encode_pooled(enc, test);
  std::cout << "[eval] pooled features of the 55,000 train images: " << t_train << " s wall, " << c_train
            << " s CPU\n";
  js.add("seconds_pooled_55k", t_train).add("cpu_seconds_pooled_55k", c_train);
  // the trained head (supervised: its classifier; dino: the linear probe fitted at training)
  auto head_acc = [&](const redi::data::ImageDataset& ds) {
    std::vector<std::int64_t> idx(static_cast<std::size_t>(ds.n));
    std::iota(idx.begin(), idx.end(), std::int64_t(0));
    std::vector<float> tmp(std::size_t(ds.n) * std::size_t(enc.feature_dim()));
    return double(redi::train::pooled_features(enc, ds, idx, tmp.data())) / ds.n;
  };
  const double hv = head_acc(split.val), ht = head_acc(test);
  std::cout << "[eval] head accuracy: val " << hv << "  test " << ht << "\n";
  js.add("head_val", hv).add("head_test", ht);

  t0 = clk::now();
  const double kv = redi::train::knn_accuracy(ftr, fva), kt = redi::train::knn_accuracy(ftr, fte);
  std::cout << "[eval] k-NN (k 20, T 0.07, 55,000 memory): val " << kv << "  test " << kt << "  (" << since(t0)
            << " s)\n";
  js.add("knn_val", kv).add("knn_test", kt);
  t0 = clk::now();
  const auto probe = redi::train::fit_linear_probe(ftr, fva, {}, &std::cout);
  const double pt = probe.accuracy(fte);
  std::cout << "[eval] linear probe (lr " << probe.lr << ", wd " << probe.weight_decay << "): val "
            << probe.val_accuracy << "  test " << pt << "  (" << since(t0) << " s)\n";
  js.add("probe_val", probe.val_accuracy).add("probe_test", pt).add("probe_lr", probe.lr).add("probe_wd",
                                                                                              probe.weight_decay);

  // PCA of the patch features (as the quickstart fits it) and the PCs' spatial structure
  t0 = clk::now();
  const auto pca = redi::train::fit_feature_pca(enc, split.train, 5000, 0, 0);
  double total = 0, top = 0;
  for (float v : pca.explained_variance) total += v;
  std::cout << "[eval] PCA (5,000 train images, " << since(t0) << " s): explained variance of the first 8 PCs:";
  std::vector<double> evr;
  for (int k = 0; k < 8 && k < pca.num_components; ++k) {
    evr.push_back(pca.explained_variance[std::size_t(k)] / total);
    top += evr.back();
    std::cout << " " << evr.back();
  }
  std::cout << "  (sum " << top << ")\n";
  js.add("pca_explained_top8", top);
  for (std::size_t k = 0; k < evr.size(); ++k) js.add("pca_evr_" + std::to_string(k), evr[k]);
  const int g = enc.config().grid(), r = 8;
  std::vector<std::int64_t> vi(static_cast<std::size_t>(split.val.n));
  std::iota(vi.begin(), vi.end(), std::int64_t(0));
  redi::Tensor<float> zv(redi::Shape{split.val.n, r, g, g});
  redi::train::extract_pca_features(enc, split.val, vi, pca, r, zv.view());
  const auto sp = pc_spatial(zv);
  std::cout << "[eval] PC variance shares within images / of the token position (validation):";
  for (int k = 0; k < r; ++k) {
    std::cout << "  " << k << ": " << sp[std::size_t(k)].within_image << " / " << sp[std::size_t(k)].position;
    js.add("pc_within_image_" + std::to_string(k), sp[std::size_t(k)].within_image);
    js.add("pc_position_" + std::to_string(k), sp[std::size_t(k)].position);
  }
  std::cout << "\n";
  // the quickstart's cost: z of the 55,000 train images (r = 8, resized to 32x32)
  t0 = clk::now();
  c0 = cpu_seconds();
  {
    constexpr int kChunk = 5000;
    redi::Tensor<float> z(redi::Shape{kChunk, r, 32, 32});
    for (int s = 0; s < split.train.n; s += kChunk) {
      const int n = std::min(kChunk, split.train.n - s);
      std::vector<std::int64_t> idx(static_cast<std::size_t>(n));
      std::iota(idx.begin(), idx.end(), std::int64_t(s));
      redi::train::extract_pca_features(enc, split.train, idx, pca, r,
                                        redi::View<float>{z.data(), redi::Shape{n, r, 32, 32}});
    }
  }
  const double t_ex = since(t0), c_ex = cpu_seconds() - c0;
  std::cout << "[eval] extract_pca_features, 55,000 train images, r = 8 at 32x32: " << t_ex << " s wall, " << c_ex
            << " s CPU\n";
  js.add("seconds_extract_55k", t_ex).add("cpu_seconds_extract_55k", c_ex);
  if (a.has("pc-png")) {  // 16 validation images (rows 1-2) and their PCs 0-2 as RGB (rows 3-4), x4
    constexpr int n = 16, S = 32, up = 4, cell = S * up, W = 8 * cell, H = 4 * cell;
    std::vector<std::uint8_t> img(std::size_t(W) * H * 3, 0);
    for (int i = 0; i < n; ++i)
      for (int y = 0; y < cell; ++y)
        for (int x = 0; x < cell; ++x) {
          const int px = (i % 8) * cell + x, py = (i / 8) * cell + y;
          auto* o = img.data() + (std::size_t(py) * W + px) * 3;
          o[0] = o[1] = o[2] = split.val.image(i)[(y / up) * S + x / up];
          auto* q = img.data() + (std::size_t(py + 2 * cell) * W + px) * 3;
          const int gy = y * g / cell, gx = x * g / cell;
          for (int c = 0; c < 3; ++c) {
            const double v = zv.data()[((std::int64_t(i) * r + c) * g + gy) * g + gx] /
                             std::sqrt(std::max(1e-12f, pca.explained_variance[std::size_t(c)]));
            q[c] = std::uint8_t(std::clamp(128.0 + 50.0 * v, 0.0, 255.0));
          }
        }
    redi::io::write_png(a.str("pc-png"), img.data(), W, H, 3);
    std::cout << "[eval] wrote " << a.str("pc-png") << "\n";
  }
  if (a.has("json")) {
    redi::io::write_file_atomic(a.str("json"), js.str() + "\n");
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return redi::cli::run_main("redi_encoder", [&] {
    if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
      std::cout << kUsage;
      return argc < 2 ? 2 : 0;
    }
    const std::string cmd = argv[1];
    if (cmd != "train" && cmd != "eval") throw UsageError("unknown command '" + cmd + "' (train or eval)");
    Args a(argc - 1, argv + 1,
           {"ssl", "out", "steps", "batch", "lr", "width", "depth", "heads", "patch", "local-crops", "local-size",
            "global-scale", "local-scale", "out-dim", "momentum", "teacher-temp", "warmup", "minutes", "monitor",
            "seed", "encoder", "json", "pc-png", "threads"},
           {"no-probe", "ibot"});
    redi::cli::apply_threads_flag(a);
    std::string command = "redi_encoder";
    for (int i = 1; i < argc; ++i) command += std::string(" ") + argv[i];
    return cmd == "train" ? cmd_train(a, command) : cmd_eval(a);
  });
}
