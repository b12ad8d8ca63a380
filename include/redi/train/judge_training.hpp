// redi/train/judge_training.hpp — training and scoring redi's independent judge, a small CNN
// classifier (redi/nn/convnet.hpp) that the evaluation (redi/eval/judge.hpp) uses for FD,
// class accuracy, coverage and precision/recall. See docs/evaluation.md.
//
//   train_judge           softmax cross-entropy on the labels, AdamW (linear warm-up, cosine
//                         decay), random translation (up to max_shift pixels) and horizontal
//                         flips keyed by (seed, epoch, image index); validation accuracy after
//                         every epoch. Deterministic for a fixed config and thread count.
//   classifier_accuracy   top-1 accuracy of a ConvNetClassifier on a dataset (no augmentation)
//
// The judge's seed (kJudgeSeed) is fixed and differs from every feature encoder's (those use the
// run seed, small integers): the judge shares neither architecture nor initialisation nor batch
// order with the encoders whose features ReDi learns.
#pragma once
#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <ostream>
#include <span>
#include <vector>

#include "redi/core/philox.hpp"
#include "redi/core/tensor.hpp"
#include "redi/data/dataset.hpp"
#include "redi/data/sampler.hpp"
#include "redi/weights/convnet.hpp"
#include "redi/ops/elementwise.hpp"
#include "redi/ops/optim.hpp"

namespace redi::train {

/// The judge's seed: initialisation, batch order and augmentation ("judge" in ASCII).
inline constexpr std::uint64_t kJudgeSeed = 0x6a75646765ull;

/// Fashion-MNIST's pixel statistics in redi's [-1, 1] units (the 55,000 training images padded
/// to 32x32: mean -0.5623, std 0.6634), the judge's fixed input normalisation.
inline ConvNetConfig fashion_mnist_judge_config() {
  ConvNetConfig c;
  c.input_mean = -0.56;
  c.input_std = 0.66;
  return c;
}

struct JudgeTrainConfig {
  ConvNetConfig model = fashion_mnist_judge_config();
  int epochs = 6;
  int batch = 128;
  double lr = 1e-2;              // peak; linear warm-up, then cosine to lr * final_lr_ratio
  double final_lr_ratio = 0.01;
  int warmup_steps = 200;
  double weight_decay = 0.05;    // conv and head weights only (biases: none)
  double beta1 = 0.9, beta2 = 0.999;
  int max_shift = 2;             // random translation in [-max_shift, max_shift] pixels, each axis
  bool flip = true;              // random horizontal flips
  std::uint64_t seed = kJudgeSeed;
  int log_every = 100;           // steps between progress lines (0: epoch lines only)
  int eval_batch = 256;

  int steps_per_epoch(std::int64_t n) const { return int(n / std::max(1, batch)); }
};

struct JudgeEpoch {
  int epoch = 0;                  // 1-based
  double train_loss = 0, train_accuracy = 0;  // mean over the epoch's (augmented) batches
  double val_accuracy = -1;       // -1: no validation set
  double seconds = 0;             // wall time since the start of training
};

struct JudgeTrainStats {
  int steps = 0;
  double seconds = 0;
  std::vector<JudgeEpoch> epochs;
};

/// Learning rate at 1-based `step` of `total`.
inline double judge_lr(const JudgeTrainConfig& c, int step, int total) {
  if (c.warmup_steps > 0 && step <= c.warmup_steps) return c.lr * double(step) / double(c.warmup_steps);
  const double t = std::clamp(double(step - c.warmup_steps) / double(std::max(1, total - c.warmup_steps)), 0.0, 1.0);
  const double floor = c.lr * c.final_lr_ratio;
  return floor + (c.lr - floor) * 0.5 * (1.0 + std::cos(3.14159265358979323846 * t));
}

inline constexpr std::uint64_t kShiftSalt = 0x7368696674217265ull;  // "shift!re"

/// The translation of dataset image `index` in `epoch`: {dy, dx} in [-m, m]^2.
inline std::array<int, 2> shift_decision(std::uint64_t seed, std::uint64_t epoch, std::uint64_t index, int m) {
  if (m <= 0) return {0, 0};
  const philox::U4 r = philox::block(seed ^ kShiftSalt, epoch, index);
  const std::uint32_t span = std::uint32_t(2 * m + 1);
  return {int(r.x % span) - m, int(r.y % span) - m};
}

/// Images idx of `ds` as float NCHW in [-1, 1] into `out`, each flipped (data::flip_decision)
/// and then translated by shift_decision: out(y, x) = img(y - dy, x - dx), background (byte 0,
/// i.e. -1) where that falls outside the image.
inline void augmented_batch(const data::ImageDataset& ds, std::span<const std::int64_t> idx, float* out,
                            std::uint64_t seed, std::uint64_t epoch, int max_shift, bool flip) {
  const int H = ds.h, W = ds.w, C = ds.c;
  const std::size_t plane = std::size_t(H) * std::size_t(W);
#pragma omp parallel for schedule(static) if (idx.size() >= 64)
  for (std::size_t b = 0; b < idx.size(); ++b) {
    const std::int64_t i = idx[b];
    const std::uint8_t* img = ds.image(i);
    const bool f = flip && data::flip_decision(seed, epoch, std::uint64_t(i));
    const auto [dy, dx] = shift_decision(seed, epoch, std::uint64_t(i), max_shift);
    float* o = out + b * plane * std::size_t(C);
    for (int y = 0; y < H; ++y)
      for (int x = 0; x < W; ++x) {
        const int sy = y - dy, sx0 = x - dx;
        const bool inside = sy >= 0 && sy < H && sx0 >= 0 && sx0 < W;
        const int sx = f ? W - 1 - sx0 : sx0;
        for (int k = 0; k < C; ++k)
          o[std::size_t(k) * plane + std::size_t(y) * std::size_t(W) + std::size_t(x)] =
              inside ? data::to_unit_range(img[(std::size_t(sy) * std::size_t(W) + std::size_t(sx)) * std::size_t(C) +
                                               std::size_t(k)])
                     : -1.0f;
      }
  }
}

namespace detail {
inline void check_judge_dataset(const ConvNetConfig& m, const data::ImageDataset& ds, const char* who) {
  REDI_CHECK(!ds.empty(), who, ": empty dataset ", ds.source);
  REDI_CHECK(ds.h == m.image_size && ds.w == m.image_size && ds.c == m.channels, who, ": ", ds.source, " has ", ds.h,
             "x", ds.w, "x", ds.c, " images, the classifier takes ", m.image_size, "x", m.image_size, "x", m.channels,
             (ds.h < m.image_size ? " (pad first: data::pad_to(ds, image_size))" : ""));
  REDI_CHECK(ds.num_classes <= m.num_classes, who, ": ", ds.num_classes, " classes, the classifier head has ",
             m.num_classes);
}
}  // namespace detail

/// Predicted classes of every image of ds (no augmentation), batch by batch; returns the number
/// of correct predictions. `pred` (optional) receives ds.n entries.
inline std::int64_t classify_dataset(ConvNetClassifier<float>& net, const data::ImageDataset& ds, int batch = 256,
                                     std::vector<int>* pred = nullptr) {
  detail::check_judge_dataset(net.config(), ds, "classify_dataset");
  REDI_CHECK(batch > 0, "classify_dataset: batch ", batch);
  const int K = net.num_classes();
  std::int64_t correct = 0;
  if (pred) pred->assign(std::size_t(ds.n), -1);
  std::vector<std::int64_t> idx;
  std::vector<float> x;
  for (std::int64_t s = 0; s < ds.n; s += batch) {
    const int nb = int(std::min<std::int64_t>(batch, ds.n - s));
    idx.resize(std::size_t(nb));
    std::iota(idx.begin(), idx.end(), s);
    x.resize(std::size_t(nb) * ds.image_bytes());
    data::to_float_nchw(ds, idx, x.data());
    net.forward(x.data(), nb);
    for (int b = 0; b < nb; ++b) {
      const float* z = net.logits() + std::int64_t(b) * K;
      const int arg = int(std::max_element(z, z + K) - z);
      correct += arg == ds.labels[std::size_t(s + b)];
      if (pred) (*pred)[std::size_t(s + b)] = arg;
    }
  }
  return correct;
}

/// Top-1 accuracy on ds.
inline double classifier_accuracy(ConvNetClassifier<float>& net, const data::ImageDataset& ds, int batch = 256) {
  return double(classify_dataset(net, ds, batch)) / double(ds.n);
}

/// Trains the judge on `train` (e.g. the first 55,000 Fashion-MNIST training images, padded to
/// 32x32); `val` (optional) is scored after every epoch. Deterministic for a fixed config and
/// thread count.
inline ConvNetClassifier<float> train_judge(const data::ImageDataset& train, const JudgeTrainConfig& cfg,
                                            const data::ImageDataset* val = nullptr, std::ostream* log = nullptr,
                                            JudgeTrainStats* stats = nullptr) {
  detail::check_judge_dataset(cfg.model, train, "train_judge");
  if (val) detail::check_judge_dataset(cfg.model, *val, "train_judge (validation)");
  REDI_CHECK(cfg.epochs > 0 && cfg.batch > 0 && cfg.batch <= train.n && cfg.lr > 0 && cfg.max_shift >= 0,
             "train_judge: epochs ", cfg.epochs, ", batch ", cfg.batch, " (of ", train.n, " images), lr ", cfg.lr,
             ", max_shift ", cfg.max_shift);
  using clock = std::chrono::steady_clock;
  const auto t0 = clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(clock::now() - t0).count(); };

  ConvNetClassifier<float> net(cfg.model, cfg.seed);
  const std::int64_t n = net.num_params();
  Tensor<float> m(Shape{n}), v(Shape{n});
  m.zero();
  v.zero();
  const int B = cfg.batch, per_epoch = cfg.steps_per_epoch(train.n), total = per_epoch * cfg.epochs;
  data::BatchSampler sampler(train.n, B, cfg.seed);
  std::vector<float> x(std::size_t(B) * train.image_bytes());
  std::vector<int> labels(static_cast<std::size_t>(B));
  if (log)
    *log << "[judge] CNN classifier " << cfg.model.str() << ", " << n << " parameters; " << cfg.epochs << " epochs x "
         << per_epoch << " steps x " << B << " of " << train.n << " images (" << train.source << "), lr " << cfg.lr
         << ", wd " << cfg.weight_decay << ", shift " << cfg.max_shift << (cfg.flip ? ", flips" : "") << ", seed "
         << cfg.seed << "\n";

  JudgeTrainStats st;
  int step = 0;
  for (int epoch = 1; epoch <= cfg.epochs; ++epoch) {
    double sum_loss = 0;
    std::int64_t hits = 0, seen = 0;
    for (int k = 0; k < per_epoch; ++k) {
      ++step;
      const auto draw = sampler.next();
      augmented_batch(train, draw.indices, x.data(), cfg.seed, draw.epoch, cfg.max_shift, cfg.flip);
      for (int b = 0; b < B; ++b) labels[std::size_t(b)] = train.labels[std::size_t(draw.indices[std::size_t(b)])];
      net.forward(x.data(), B);
      net.zero_grad();
      int correct = 0;
      const double loss = net.backward_cross_entropy(labels.data(), &correct);
      REDI_CHECK(std::isfinite(loss), "train_judge: loss is ", loss, " at step ", step);
      const double lr = judge_lr(cfg, step, total);
      for (const auto& e : net.entries()) {
        const ops::AdamWConfig ac{lr, cfg.beta1, cfg.beta2, 1e-8, e.shape.rank >= 2 ? cfg.weight_decay : 0.0};
        ops::adamw_step(cpu, net.params().data() + e.offset, net.grads().data() + e.offset, m.data() + e.offset,
                        v.data() + e.offset, e.numel(), ac, step);
      }
      sum_loss += loss * B;
      hits += correct;
      seen += B;
      if (log && cfg.log_every > 0 && (step % cfg.log_every == 0 || step == 1))
        *log << "[judge] step " << step << "/" << total << "  loss " << sum_loss / double(seen) << "  train acc "
             << double(hits) / double(seen) << "  lr " << lr << "  " << elapsed() << " s\n";
    }
    JudgeEpoch ep;
    ep.epoch = epoch;
    ep.train_loss = sum_loss / double(seen);
    ep.train_accuracy = double(hits) / double(seen);
    if (val) ep.val_accuracy = classifier_accuracy(net, *val, cfg.eval_batch);
    ep.seconds = elapsed();
    st.epochs.push_back(ep);
    if (log) {
      *log << "[judge] epoch " << epoch << "/" << cfg.epochs << "  train loss " << ep.train_loss << "  train acc "
           << ep.train_accuracy;
      if (val) *log << "  val acc " << ep.val_accuracy;
      *log << "  " << ep.seconds << " s\n";
    }
  }
  st.steps = step;
  st.seconds = elapsed();
  if (stats) *stats = st;
  return net;
}

}  // namespace redi::train
