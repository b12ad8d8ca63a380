// redi/train/encoder_training.hpp — the offline feature encoder of the CPU quickstart: train a
// small ViT (redi/nn/vit_encoder.hpp) as a SUPERVISED CLASSIFIER (softmax cross-entropy on the
// dataset's labels, AdamW) and use its patch features as ReDi's representation. This is not
// DINO / DINOv2 self-supervision (no pretrained DINOv2 can be downloaded here); see
// docs/encoder.md for what that means and how real DINOv2 features plug in instead.
//
//   train_encoder        supervised training, deterministic from cfg.seed
//   evaluate_encoder     test accuracy of the linear head, and k-NN accuracy (cosine on the
//                        mean-pooled features, a train subset as memory)
//   fit_feature_pca      PCA (redi::data::PcaFitter) over the patch features of n images
//   extract_pca_features z = bilinear(PCA_r(features)) [N, r, H, W] (docs/method.md section 4), any
//                        data::FeatureEncoder
#pragma once
#include <Eigen/Dense>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <ostream>
#include <span>
#include <vector>

#include "redi/core/tensor.hpp"
#include "redi/data/dataset.hpp"
#include "redi/data/features.hpp"
#include "redi/data/pca.hpp"
#include "redi/data/sampler.hpp"
#include "redi/nn/vit_encoder.hpp"
#include "redi/weights/vit_encoder.hpp"
#include "redi/train/optimizer.hpp"

namespace redi::train {

struct EncoderTrainConfig {
  ViTEncoderConfig model{};
  int steps = 1500;              // the quickstart budget (docs/encoder.md)
  int batch = 64;
  double lr = 2e-3;              // peak; linear warm-up, then cosine to lr * final_lr_ratio
  double final_lr_ratio = 0.05;
  int warmup_steps = 50;
  double weight_decay = 0.05;    // matrices only (biases, modulation and head bias: none)
  double beta1 = 0.9, beta2 = 0.99;
  double grad_clip = 1.0;        // global L2 norm; 0 = off
  bool flip = true;              // random horizontal flips (data::Augment, keyed by seed/epoch/index)
  std::uint64_t seed = 0;        // initialisation, batch order and flips
  int log_every = 100;           // 0 = only the first and last lines
  /// > 0: stop after this much wall time (the result then depends on the machine's speed;
  /// leave 0 where determinism matters).
  double max_seconds = 0;
};

struct EncoderTrainStats {
  int steps = 0;                 // optimiser steps taken
  double seconds = 0;            // wall time of the training loop
  double loss = 0, accuracy = 0; // mean over the last min(steps, 50) batches (train, augmented)
};

/// Learning rate at 1-based `step`.
inline double encoder_lr(const EncoderTrainConfig& c, int step) {
  if (c.warmup_steps > 0 && step <= c.warmup_steps) return c.lr * double(step) / double(c.warmup_steps);
  const double span = std::max(1, c.steps - c.warmup_steps);
  const double t = std::clamp(double(step - c.warmup_steps) / span, 0.0, 1.0);
  const double floor = c.lr * c.final_lr_ratio;
  return floor + (c.lr - floor) * 0.5 * (1.0 + std::cos(3.14159265358979323846 * t));
}

namespace detail {
inline void check_encoder_dataset(const ViTEncoderConfig& m, const data::ImageDataset& ds, const char* who) {
  REDI_CHECK(!ds.empty(), who, ": empty dataset ", ds.source);
  REDI_CHECK(ds.h == m.image_size && ds.w == m.image_size && ds.c == m.channels, who, ": ", ds.source, " has ",
             ds.h, "x", ds.w, "x", ds.c, " images, the encoder takes ", m.image_size, "x", m.image_size, "x",
             m.channels, (ds.h < m.image_size ? " (pad first: data::pad_to(ds, image_size))" : ""));
  REDI_CHECK(ds.num_classes <= m.num_classes, who, ": ", ds.num_classes, " classes, the encoder head has ",
             m.num_classes);
}
}  // namespace detail

/// Trains a supervised ViT classifier on `train` (images must already be image_size square,
/// e.g. data::pad_to(fashion_mnist, 32)). Deterministic for a fixed cfg (and max_seconds = 0)
/// on a given build and thread count.
inline ViTEncoder<float> train_encoder(const data::ImageDataset& train, const EncoderTrainConfig& cfg,
                                       std::ostream* log = nullptr, EncoderTrainStats* stats = nullptr) {
  detail::check_encoder_dataset(cfg.model, train, "train_encoder");
  REDI_CHECK(cfg.steps > 0 && cfg.batch > 0 && cfg.lr > 0, "train_encoder: steps ", cfg.steps, ", batch ",
             cfg.batch, ", lr ", cfg.lr);
  using clock = std::chrono::steady_clock;
  const auto t0 = clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(clock::now() - t0).count(); };

  ViTEncoder<float> enc(cfg.model, cfg.seed);
  const std::int64_t n = enc.num_params();
  // The shared optimiser step; the clip divides by the norm itself (clip_eps 0), and weight
  // decay applies to the matrices only.
  OptimizerConfig oc;
  oc.adamw = {cfg.lr, cfg.beta1, cfg.beta2, 1e-8, cfg.weight_decay};
  oc.grad_clip = cfg.grad_clip;
  oc.clip_eps = 0.0;
  Optimizer<float> opt(n, oc);
  opt.set_groups(decay_matrices_only(enc.entries()));
  const int B = int(std::min<std::int64_t>(cfg.batch, train.n));
  data::BatchSampler sampler(train.n, B, cfg.seed ^ 0x656e636f64657221ull /* "encoder!" */);
  if (log)
    *log << "[encoder] supervised ViT classifier (cross-entropy on labels; NOT DINO): " << cfg.model.str()
         << ", " << n << " parameters, " << cfg.steps << " steps x " << B << " images of " << train.n
         << ", lr " << cfg.lr << ", seed " << cfg.seed << "\n";

  std::vector<double> recent_loss, recent_acc;
  EncoderTrainStats st;
  for (int step = 1; step <= cfg.steps; ++step) {
    const auto draw = sampler.next();
    const data::Batch batch = data::make_batch(train, draw.indices,
                                               data::Augment{cfg.flip, cfg.seed, draw.epoch});
    const int b = int(draw.indices.size());
    enc.forward(batch.images.data(), b);
    enc.zero_grad();
    int hits = 0;
    const double loss = enc.backward_cross_entropy(batch.labels.data(), &hits);
    REDI_CHECK(std::isfinite(loss), "train_encoder: loss is ", loss, " at step ", step);
    const double lr = encoder_lr(cfg, step);
    opt.step(enc.params().data(), enc.grads().data(), lr);
    recent_loss.push_back(loss);
    recent_acc.push_back(double(hits) / b);
    if (recent_loss.size() > 50) {
      recent_loss.erase(recent_loss.begin());
      recent_acc.erase(recent_acc.begin());
    }
    st.steps = step;
    st.loss = std::accumulate(recent_loss.begin(), recent_loss.end(), 0.0) / double(recent_loss.size());
    st.accuracy = std::accumulate(recent_acc.begin(), recent_acc.end(), 0.0) / double(recent_acc.size());
    const bool out_of_time = cfg.max_seconds > 0 && elapsed() > cfg.max_seconds;
    if (log && (step == 1 || step == cfg.steps || out_of_time || (cfg.log_every > 0 && step % cfg.log_every == 0)))
      *log << "[encoder] step " << step << "/" << cfg.steps << "  loss " << st.loss << "  train acc "
           << st.accuracy << "  lr " << lr << "  " << elapsed() << " s\n";
    if (out_of_time) {
      if (log) *log << "[encoder] stopping at step " << step << ": max_seconds " << cfg.max_seconds << " reached\n";
      break;
    }
  }
  st.seconds = elapsed();
  if (stats) *stats = st;
  return enc;
}

// ---------------------------------------------------------------------------------------------
// Quality report

struct EncoderEvalOptions {
  int k = 20;                 // neighbours
  double temperature = 0.07;  // vote weight exp(cos / temperature) (DINO's weighted k-NN)
  int memory_size = 5000;     // train images in the k-NN memory (a fixed random subset; 0 = all)
  int test_size = 0;          // test images evaluated (a fixed random subset; 0 = all)
  std::uint64_t seed = 0;     // the subsets
  int batch = 128;
};

struct EncoderEval {
  double linear_head_accuracy = 0;  // the trained linear classifier head on the test images
  double knn_accuracy = 0;          // weighted k-NN, cosine on mean-pooled features
  int test_images = 0, memory_images = 0, k = 0;
  double seconds = 0;
};

/// Mean-pooled features [idx.size(), D] (float) of images idx of ds; returns the number of
/// images the head classifies correctly.
template <CpuReal T>
std::int64_t pooled_features(ViTEncoder<T>& enc, const data::ImageDataset& ds, std::span<const std::int64_t> idx,
                             float* out, int batch = 128) {
  detail::check_encoder_dataset(enc.config(), ds, "pooled_features");
  const int D = enc.feature_dim(), K = enc.config().num_classes;
  std::int64_t correct = 0;
  std::vector<T> conv;
  for (std::size_t s = 0; s < idx.size(); s += std::size_t(batch)) {
    const auto part = idx.subspan(s, std::min(idx.size() - s, std::size_t(batch)));
    const data::Batch b = data::make_batch(ds, part);
    const int nb = int(part.size());
    if constexpr (std::same_as<T, float>) {
      enc.forward(b.images.data(), nb);
    } else {
      conv.assign(b.images.data(), b.images.data() + b.images.numel());
      enc.forward(conv.data(), nb);
    }
    for (int i = 0; i < nb; ++i) {
      const T* z = enc.logits() + std::int64_t(i) * K;
      correct += int(std::max_element(z, z + K) - z) == b.labels[std::size_t(i)];
      for (int c = 0; c < D; ++c) out[(s + std::size_t(i)) * std::size_t(D) + std::size_t(c)] = float(enc.pooled()[i * D + c]);
    }
  }
  return correct;
}


/// Test-split accuracy of the linear head, and k-NN accuracy (k = opt.k, cosine similarity of
/// L2-normalised mean-pooled features, votes weighted by exp(cos / temperature)) against a
/// memory of opt.memory_size training images.
template <CpuReal T>
EncoderEval evaluate_encoder(ViTEncoder<T>& enc, const data::ImageDataset& train, const data::ImageDataset& test,
                             const EncoderEvalOptions& opt = {}) {
  REDI_CHECK(opt.k > 0 && opt.temperature > 0 && opt.batch > 0, "evaluate_encoder: k ", opt.k, ", temperature ",
             opt.temperature, ", batch ", opt.batch);
  const auto t0 = std::chrono::steady_clock::now();
  using RowMajor = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  const int D = enc.feature_dim(), K = enc.config().num_classes;
  const auto mi = data::random_subset(train.n, opt.memory_size, opt.seed ^ 0x6d656d6fu);
  const auto ti = data::random_subset(test.n, opt.test_size, opt.seed ^ 0x74657374u);
  RowMajor M(Eigen::Index(mi.size()), D), Q(Eigen::Index(ti.size()), D);
  pooled_features(enc, train, mi, M.data(), opt.batch);
  const std::int64_t head_correct = pooled_features(enc, test, ti, Q.data(), opt.batch);
  M.rowwise().normalize();
  Q.rowwise().normalize();
  std::vector<int> mlab(mi.size());
  for (std::size_t i = 0; i < mi.size(); ++i) mlab[i] = train.labels[std::size_t(mi[i])];
  const int k = std::min<int>(opt.k, int(mi.size()));
  std::int64_t knn_correct = 0;
  std::vector<int> order(mi.size());
  std::vector<double> votes(static_cast<std::size_t>(K));
  constexpr Eigen::Index kChunk = 256;
  RowMajor S;
  for (Eigen::Index q0 = 0; q0 < Q.rows(); q0 += kChunk) {
    const Eigen::Index nq = std::min(kChunk, Q.rows() - q0);
    S.noalias() = Q.middleRows(q0, nq) * M.transpose();
    for (Eigen::Index q = 0; q < nq; ++q) {
      const float* s = S.data() + q * S.cols();
      std::iota(order.begin(), order.end(), 0);
      std::nth_element(order.begin(), order.begin() + (k - 1), order.end(),
                       [&](int a, int b) { return s[a] > s[b] || (s[a] == s[b] && a < b); });
      std::fill(votes.begin(), votes.end(), 0.0);
      for (int j = 0; j < k; ++j) votes[std::size_t(mlab[std::size_t(order[std::size_t(j)])])] +=
          std::exp(double(s[order[std::size_t(j)]]) / opt.temperature);
      const int pred = int(std::max_element(votes.begin(), votes.end()) - votes.begin());
      knn_correct += pred == test.labels[std::size_t(ti[std::size_t(q0 + q)])];
    }
  }
  EncoderEval ev;
  ev.test_images = int(ti.size());
  ev.memory_images = int(mi.size());
  ev.k = k;
  ev.linear_head_accuracy = double(head_correct) / double(ti.size());
  ev.knn_accuracy = double(knn_correct) / double(ti.size());
  ev.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return ev;
}

// ---------------------------------------------------------------------------------------------
// Feature pipeline glue (docs/method.md section 4), for any data::FeatureEncoder

/// PCA (standardised, redi::data::PcaFitter) over the patch features of n_images images of ds
/// (a fixed random subset from `seed`; n_images <= 0 or >= ds.n: all), keeping r components
/// (r <= 0: all feature_dim()).
template <data::FeatureEncoder E>
data::Pca fit_feature_pca(E& enc, const data::ImageDataset& ds, int n_images, int r, std::uint64_t seed = 0,
                          int batch = 64) {
  REDI_CHECK(!ds.empty(), "fit_feature_pca: empty dataset ", ds.source);
  const auto idx = data::random_subset(ds.n, n_images, seed ^ 0x70636121u);
  data::PcaFitter fitter(enc.feature_dim());
  data::accumulate_features(enc, ds, idx, batch, fitter);
  data::PcaFitOptions fo;
  fo.num_components = r > 0 ? r : 0;
  return fitter.fit(fo);
}

/// z for images idx of ds: out [idx.size(), r, out_h, out_w] (out_h, out_w from out.shape) =
/// channels-first bilinear (align_corners=false) resize of the r-component PCA projection of
/// the encoder's patch features, then `norm` if given. No augmentation.
template <data::FeatureEncoder E>
void extract_pca_features(E& enc, const data::ImageDataset& ds, std::span<const std::int64_t> idx,
                          const data::Pca& pca, int r, View<float> out, const data::PcNormalization* norm = nullptr,
                          int batch = 64) {
  REDI_CHECK(out.shape.rank == 4 && out.shape[0] == std::int64_t(idx.size()) && out.shape[1] == r,
             "extract_pca_features: output ", out.shape.str(), ", expected [", idx.size(), ", ", r, ", H, W]");
  REDI_CHECK(batch > 0, "extract_pca_features: batch ", batch);
  const int oh = int(out.shape[2]), ow = int(out.shape[3]);
  const std::size_t per = std::size_t(r) * std::size_t(oh) * std::size_t(ow);
  for (std::size_t s = 0; s < idx.size(); s += std::size_t(batch)) {
    const auto part = idx.subspan(s, std::min(idx.size() - s, std::size_t(batch)));
    const data::Batch b = data::make_batch(ds, part);
    const Tensor<float> z = data::encode_to_latent(enc, pca, r, b.images.view(), oh, ow, norm);
    std::copy(z.data(), z.data() + z.numel(), out.data + s * per);
  }
}

/// All images of ds: [ds.n, r, ds.h, ds.w] (float; 60,000 Fashion-MNIST images at r = 8 and
/// 32x32 take 1.97 GB — use the span overload per batch when that is too much).
template <data::FeatureEncoder E>
Tensor<float> extract_pca_features(E& enc, const data::ImageDataset& ds, const data::Pca& pca, int r,
                                   const data::PcNormalization* norm = nullptr, int batch = 64) {
  std::vector<std::int64_t> idx(static_cast<std::size_t>(ds.n));
  std::iota(idx.begin(), idx.end(), std::int64_t(0));
  Tensor<float> z(Shape{ds.n, r, ds.h, ds.w});
  extract_pca_features(enc, ds, idx, pca, r, z.view(), norm, batch);
  return z;
}

}  // namespace redi::train
