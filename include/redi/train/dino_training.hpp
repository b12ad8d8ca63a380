// redi/train/dino_training.hpp — a SELF-SUPERVISED feature encoder for the ReDi pipeline:
// DINO self-distillation (Caron et al. 2021) of redi's ViTEncoder, with no labels. The student
// and the teacher are both ViTEncoder<float> (the network the feature pipeline consumes), each
// followed by a DINO head (redi/nn/dino_head.hpp); the teacher is an EMA of the student, sees
// only the global crops, and its output is centred and sharpened (redi/train/dino_loss.hpp);
// the student sees every crop (redi/data/augment.hpp) and learns to match the teacher across
// views. The teacher's backbone is the result (its linear head is left at zero: fit one with
// train::fit_linear_probe_head, redi/train/probes.hpp). See docs/encoder.md.
//
// Local crops run at their own, smaller size: a second ViTEncoder built for that input size
// (smaller token grid; its fixed sin-cos position table is the one of that grid) holds a copy
// of the student's weights each step and its gradients are added to the student's. A 16x16
// local crop costs a quarter of the tokens of a 32x32 one (and 1/16 of the attention).
//
// Schedules (step = 1 .. steps, t = progress in [0, 1]):
//   lr        linear warm-up over warmup_steps, then cosine to min_lr
//   wd        cosine from weight_decay to weight_decay_end (matrices only)
//   momentum  m = 1 - (1 - momentum_teacher) (cos(pi t) + 1) / 2          (to 1)
//   tau_t     linear from warmup_teacher_temp to teacher_temp over teacher_temp_warmup_steps
// Gradients are clipped per parameter tensor to norm grad_clip (DINO's clip_gradients), the
// last head layer is frozen for freeze_last_layer_steps, AdamW is ops::adamw_step.
// Deterministic from cfg.seed for a given build and thread count (max_seconds = 0).
#pragma once
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <functional>
#include <numeric>
#include <ostream>
#include <vector>

#include "redi/core/tensor.hpp"
#include "redi/data/augment.hpp"
#include "redi/data/dataset.hpp"
#include "redi/data/sampler.hpp"
#include "redi/nn/dino_head.hpp"
#include "redi/nn/vit_encoder.hpp"
#include "redi/ops/elementwise.hpp"
#include "redi/ops/optim.hpp"
#include "redi/train/dino_loss.hpp"

namespace redi::train {

struct DinoTrainConfig {
  ViTEncoderConfig model{};
  nn::DinoHeadConfig head{};       // in_dim is set to model.width
  data::MultiCropConfig crops{};
  int steps = 7000;                // ~8 epochs of Fashion-MNIST's 55,000 training images
  int batch = 64;
  double lr = 2e-3;                // peak (after warm-up)
  double min_lr = 1e-5;
  int warmup_steps = 500;
  double weight_decay = 0.04, weight_decay_end = 0.4;
  double beta1 = 0.9, beta2 = 0.999;
  double momentum_teacher = 0.99;  // EMA momentum at step 1 (cosine to 1)
  double teacher_temp = 0.04, warmup_teacher_temp = 0.04;
  int teacher_temp_warmup_steps = 0;
  double student_temp = 0.1;
  double center_momentum = 0.9;
  double grad_clip = 3.0;          // per-tensor L2 norm; 0 = off
  int freeze_last_layer_steps = 400;
  // iBOT's masked patch-token loss (Zhou et al. 2022): a fraction mask_prob of the student's
  // global views get block-wise token masks (ratio ~ U[mask_ratio_min, mask_ratio_max]; masked
  // patch embeddings replaced by a learned mask token), and the head (shared with the pooled
  // path) on each masked output token is distilled from the teacher's token at that place in
  // the unmasked view (own centre, teacher temperature patch_teacher_temp).
  bool ibot = false;
  double ibot_weight = 1.0;
  double mask_prob = 0.5;
  double mask_ratio_min = 0.1, mask_ratio_max = 0.5;
  double patch_teacher_temp = 0.04;
  std::uint64_t seed = 0;          // initialisation, batch order, crops
  int log_every = 200;             // 0 = only the first and last lines
  double max_seconds = 0;          // > 0: stop after this wall time (not deterministic)

  void validate() const {
    model.validate();
    crops.validate();
    REDI_CHECK(crops.global.size == model.image_size, "DinoTrainConfig: global crops of ", crops.global.size,
               " px, the encoder takes ", model.image_size);
    REDI_CHECK(crops.local_crops == 0 || (crops.local.size % model.patch == 0 && crops.local.size >= model.patch),
               "DinoTrainConfig: local crops of ", crops.local.size, " px are not a multiple of the patch ",
               model.patch);
    REDI_CHECK(crops.global_crops >= 2, "DinoTrainConfig: DINO needs at least 2 global crops");
    REDI_CHECK(steps > 0 && batch > 0 && lr > 0 && min_lr >= 0 && warmup_steps >= 0, "DinoTrainConfig: steps ",
               steps, ", batch ", batch, ", lr ", lr);
    REDI_CHECK(momentum_teacher >= 0 && momentum_teacher <= 1, "DinoTrainConfig: momentum ", momentum_teacher);
    REDI_CHECK(teacher_temp > 0 && warmup_teacher_temp > 0 && student_temp > 0 && patch_teacher_temp > 0,
               "DinoTrainConfig: temperatures");
    REDI_CHECK(mask_prob >= 0 && mask_prob <= 1 && mask_ratio_min >= 0 && mask_ratio_min <= mask_ratio_max &&
                   mask_ratio_max <= 1 && ibot_weight >= 0,
               "DinoTrainConfig: mask_prob ", mask_prob, ", mask ratio [", mask_ratio_min, ", ", mask_ratio_max, "]");
  }
};

struct DinoTrainStats {
  int steps = 0;
  double seconds = 0;
  double first_loss = 0;     // the loss at step 1
  double loss = 0;           // mean over the last min(steps, 50) steps (DINO + iBOT terms)
  double peak_loss = 0;      // the largest such running mean (the loss first rises from its
                             // low start, teacher = student, as the centre flattens the teacher)
  double patch_loss = 0;     // the iBOT term, mean over the last min(steps, 50) steps
  double teacher_entropy = 0;   // mean entropy of the teacher's rows (last step, nats)
  double teacher_mean_entropy = 0;  // entropy of the batch-mean teacher distribution (last step)
};

/// Learning rate at 1-based step.
inline double dino_lr(const DinoTrainConfig& c, int step) {
  if (c.warmup_steps > 0 && step <= c.warmup_steps) return c.lr * double(step) / double(c.warmup_steps);
  const double t = std::clamp(double(step - c.warmup_steps) / double(std::max(1, c.steps - c.warmup_steps)), 0.0, 1.0);
  return c.min_lr + (c.lr - c.min_lr) * 0.5 * (1.0 + std::cos(3.14159265358979323846 * t));
}
inline double dino_progress(const DinoTrainConfig& c, int step) {
  return c.steps > 1 ? std::clamp(double(step - 1) / double(c.steps - 1), 0.0, 1.0) : 1.0;
}
/// Weight decay at 1-based step (cosine from weight_decay to weight_decay_end).
inline double dino_weight_decay(const DinoTrainConfig& c, int step) {
  const double t = dino_progress(c, step);
  return c.weight_decay_end + (c.weight_decay - c.weight_decay_end) * 0.5 * (1.0 + std::cos(3.14159265358979323846 * t));
}
/// Teacher EMA momentum after 1-based step: cosine from momentum_teacher to 1.
inline double dino_momentum(const DinoTrainConfig& c, int step) {
  const double t = dino_progress(c, step);
  return 1.0 - (1.0 - c.momentum_teacher) * 0.5 * (1.0 + std::cos(3.14159265358979323846 * t));
}
/// Teacher temperature at 1-based step (target: teacher_temp, or patch_teacher_temp for iBOT's
/// patch tokens), warmed up linearly from warmup_teacher_temp.
inline double dino_teacher_temp(const DinoTrainConfig& c, int step, bool patch = false) {
  const double target = patch ? c.patch_teacher_temp : c.teacher_temp;
  if (step >= c.teacher_temp_warmup_steps) return target;
  const double t = double(step) / double(std::max(1, c.teacher_temp_warmup_steps));
  return c.warmup_teacher_temp + (target - c.warmup_teacher_temp) * t;
}

/// The teacher update: teacher <- m teacher + (1 - m) student, over the flat parameter buffers
/// of the backbone and the head (ops::ema_update).
template <class Enc, class Head>
void dino_teacher_update(Enc& teacher, const Enc& student, Head& teacher_head, const Head& student_head, double m) {
  REDI_CHECK(teacher.num_params() == student.num_params() && teacher_head.num_params() == student_head.num_params(),
             "dino_teacher_update: teacher and student differ in size");
  ops::ema_update(cpu, teacher.params().data(), student.params().data(), teacher.num_params(), m);
  ops::ema_update(cpu, teacher_head.params().data(), student_head.params().data(), teacher_head.num_params(), m);
}

/// Called every log line (and after the last step) with the step and the teacher: e.g. a k-NN
/// monitor on a validation subset.
using DinoMonitor = std::function<void(int step, ViTEncoder<float>& teacher)>;

/// DINO self-supervised training of a ViTEncoder on the images of `train` (labels unused;
/// images image_size square, e.g. data::pad_to(fashion_mnist, 32)). Returns the teacher.
inline ViTEncoder<float> train_dino_encoder(const data::ImageDataset& train, const DinoTrainConfig& cfg_in,
                                            std::ostream* log = nullptr, DinoTrainStats* stats = nullptr,
                                            const DinoMonitor& monitor = {}) {
  DinoTrainConfig cfg = cfg_in;
  cfg.head.in_dim = cfg.model.width;
  cfg.validate();
  REDI_CHECK(!train.empty(), "train_dino_encoder: empty dataset ", train.source);
  REDI_CHECK(train.h == cfg.model.image_size && train.w == cfg.model.image_size && train.c == cfg.model.channels,
             "train_dino_encoder: ", train.source, " has ", train.h, "x", train.w, "x", train.c,
             " images, the encoder takes ", cfg.model.image_size, "x", cfg.model.image_size, "x", cfg.model.channels,
             (train.h < cfg.model.image_size ? " (pad first: data::pad_to(ds, image_size))" : ""));
  using clock = std::chrono::steady_clock;
  const auto t0 = clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(clock::now() - t0).count(); };

  ViTEncoder<float> student(cfg.model, cfg.seed);
  ViTEncoder<float> teacher(cfg.model, cfg.seed);  // identical start: teacher = student
  const int G = cfg.crops.global_crops, Lc = cfg.crops.local_crops;
  ViTEncoderConfig local_cfg = cfg.model;
  local_cfg.image_size = Lc > 0 ? cfg.crops.local.size : cfg.model.image_size;
  ViTEncoder<float> local(local_cfg, cfg.seed);  // the student at the local crop size (weights copied)
  REDI_CHECK(local.num_params() == student.num_params(), "train_dino_encoder: local-crop encoder layout differs");
  nn::DinoHead<float> shead(cfg.head, cfg.seed ^ 0x68656164ull), thead(cfg.head, cfg.seed ^ 0x68656164ull);

  const std::int64_t ne = student.num_params(), nh = shead.num_params();
  Tensor<float> me(Shape{ne}), ve(Shape{ne}), mh(Shape{nh}), vh(Shape{nh});
  const int B = int(std::min<std::int64_t>(cfg.batch, train.n));
  const int D = cfg.model.width, K = cfg.head.out_dim, V = G + Lc, L = cfg.model.tokens();
  const std::int64_t GB = std::int64_t(G) * B, VB = std::int64_t(V) * B;
  // Head inputs and gradients: rows [0, VB) pooled views (global, then local), then (iBOT) one
  // row per masked token. The teacher's rows: [0, GB) pooled global views, then the same tokens.
  std::vector<float> hin_s, hin_t, dhin, tprobs, dlogits;
  std::vector<double> wpatch;
  // iBOT: masks [GB, L], the mask token (zero init, as iBOT) and its AdamW state
  std::vector<std::uint8_t> mask(cfg.ibot ? std::size_t(GB) * std::size_t(L) : 0);
  std::vector<std::int64_t> masked;  // flat token indices (view * B + b) * L + l
  const auto Dz = static_cast<std::size_t>(D);
  std::vector<float> mask_token(Dz, 0.f), dmask_token(Dz, 0.f), mm(Dz, 0.f), vm(Dz, 0.f);
  std::vector<float> dfeat(cfg.ibot ? static_cast<std::size_t>(GB * L * D) : 0);
  DinoCenter center(K, cfg.center_momentum), patch_center(K, cfg.center_momentum);
  data::BatchSampler sampler(train.n, B, cfg.seed ^ 0x64696e6f5f737321ull /* "dino_ss!" */);
  if (log)
    *log << "[dino] self-supervised ViT (DINO" << (cfg.ibot ? " + iBOT masked patch loss" : "")
         << ", no labels): " << cfg.model.str() << ", " << ne << " parameters + head " << nh << " (K = " << K
         << "), " << G << " global " << cfg.crops.global.size << " px + " << Lc << " local " << cfg.crops.local.size
         << " px crops, " << cfg.steps << " steps x " << B << " images of " << train.n << ", lr " << cfg.lr
         << ", seed " << cfg.seed << "\n";

  auto adamw = [&](float* P, float* Gr, float* m, float* v, const std::vector<ParamEntry>& entries, double lr,
                   double wd, int step) {
    for (const auto& e : entries) {
      if (cfg.grad_clip > 0) {
        const double norm = std::sqrt(ops::sum_squares(cpu, Gr + e.offset, e.numel()));
        if (norm > cfg.grad_clip) ops::scale_inplace(cpu, Gr + e.offset, e.numel(), float(cfg.grad_clip / (norm + 1e-6)));
      }
      const ops::AdamWConfig ac{lr, cfg.beta1, cfg.beta2, 1e-8, e.shape.rank >= 2 ? wd : 0.0};
      ops::adamw_step(cpu, P + e.offset, Gr + e.offset, m + e.offset, v + e.offset, e.numel(), ac, step);
    }
  };
  const std::vector<ParamEntry> mask_entry{{"mask_token", Shape{D}, 0, Init::Zero}};

  std::vector<double> recent, recent_patch;
  DinoTrainStats st;
  for (int step = 1; step <= cfg.steps; ++step) {
    const auto draw = sampler.next();
    const data::MultiCropBatch mb = data::multicrop_batch(train, draw.indices, cfg.crops, cfg.seed, draw.epoch);
    // iBOT masks of the student's global views (keyed like the crops: seed, epoch, view, image)
    masked.clear();
    std::vector<int> masked_per_view(std::size_t(GB), 0);
    if (cfg.ibot) {
      const int g = cfg.model.grid();
      for (std::int64_t r = 0; r < GB; ++r) {
        const int v = int(r / B);
        const std::uint64_t img = std::uint64_t(draw.indices[std::size_t(r % B)]);
        std::uint8_t* mr = mask.data() + r * L;
        const philox::U4 w = philox::block(cfg.seed ^ data::kMaskSalt ^ 0x1ull, (draw.epoch << 8) | std::uint64_t(v), img);
        const double pick = philox::uniform01(w.x), ratio_u = philox::uniform01(w.y);
        if (pick < cfg.mask_prob) {
          const double ratio = cfg.mask_ratio_min + (cfg.mask_ratio_max - cfg.mask_ratio_min) * ratio_u;
          masked_per_view[std::size_t(r)] = data::block_mask(g, g, ratio, cfg.seed, draw.epoch, v, img, mr);
        } else {
          std::fill(mr, mr + L, std::uint8_t(0));
        }
        for (int l = 0; l < L; ++l)
          if (mr[l]) masked.push_back(r * L + l);
      }
    }
    const std::int64_t M = std::int64_t(masked.size());
    hin_t.resize(std::size_t((GB + M) * D));
    hin_s.resize(std::size_t((VB + M) * D));
    dhin.resize(hin_s.size());
    tprobs.resize(std::size_t((GB + M) * K));
    dlogits.resize(std::size_t((VB + M) * K));
    // teacher: the unmasked global views
    teacher.forward(mb.global.data(), int(GB));
    std::copy(teacher.pooled(), teacher.pooled() + GB * D, hin_t.data());
    for (std::int64_t i = 0; i < M; ++i)
      std::copy_n(teacher.features() + masked[std::size_t(i)] * D, D, hin_t.data() + (GB + i) * D);
    thead.forward(hin_t.data(), int(GB + M));
    const double tau_t = dino_teacher_temp(cfg, step);
    dino_teacher_probs(thead.logits(), center.data(), int(GB), K, tau_t, tprobs.data());
    if (M > 0)
      dino_teacher_probs(thead.logits() + GB * K, patch_center.data(), int(M), K, dino_teacher_temp(cfg, step, true),
                         tprobs.data() + GB * K);
    // student: every view; the global ones masked (iBOT)
    student.forward(mb.global.data(), int(GB), cfg.ibot ? mask.data() : nullptr, cfg.ibot ? mask_token.data() : nullptr);
    std::copy(student.pooled(), student.pooled() + GB * D, hin_s.data());
    if (Lc > 0) {
      std::copy(student.params().data(), student.params().data() + ne, local.params().data());
      local.forward(mb.local.data(), Lc * B);
      std::copy(local.pooled(), local.pooled() + std::int64_t(Lc) * B * D, hin_s.data() + GB * D);
    }
    for (std::int64_t i = 0; i < M; ++i)
      std::copy_n(student.features() + masked[std::size_t(i)] * D, D, hin_s.data() + (VB + i) * D);
    shead.forward(hin_s.data(), int(VB + M));
    double loss = dino_loss(shead.logits(), V, tprobs.data(), G, B, K, cfg.student_temp, dlogits.data());
    double ploss = 0;
    if (M > 0) {  // weight of a masked token: ibot_weight / (G * B * masked tokens of its view)
      wpatch.resize(std::size_t(M));
      for (std::int64_t i = 0; i < M; ++i)
        wpatch[std::size_t(i)] = cfg.ibot_weight / (double(GB) * masked_per_view[std::size_t(masked[std::size_t(i)] / L)]);
      ploss = weighted_distill_loss(shead.logits() + VB * K, tprobs.data() + GB * K, wpatch.data(), int(M), K,
                                    cfg.student_temp, dlogits.data() + VB * K);
      loss += ploss;
    }
    REDI_CHECK(std::isfinite(loss), "train_dino_encoder: loss is ", loss, " at step ", step);
    student.zero_grad();
    shead.zero_grad();
    shead.backward(dlogits.data(), dhin.data());
    if (cfg.ibot) {
      std::fill(dfeat.begin(), dfeat.end(), 0.f);
      for (std::int64_t i = 0; i < M; ++i)
        std::copy_n(dhin.data() + (VB + i) * D, D, dfeat.data() + masked[std::size_t(i)] * D);
      std::fill(dmask_token.begin(), dmask_token.end(), 0.f);
      student.backward_features(dhin.data(), dfeat.data(), dmask_token.data());
    } else {
      student.backward_features(dhin.data(), nullptr);
    }
    if (Lc > 0) {
      local.zero_grad();
      local.backward_features(dhin.data() + GB * D, nullptr);
      ops::add_inplace(cpu, student.grads().data(), local.grads().data(), ne);
    }
    if (step <= cfg.freeze_last_layer_steps)
      std::fill_n(shead.grads().data() + shead.last_layer_offset(), shead.last_layer_numel(), 0.0f);
    const double lr = dino_lr(cfg, step), wd = dino_weight_decay(cfg, step);
    adamw(student.params().data(), student.grads().data(), me.data(), ve.data(), student.entries(), lr, wd, step);
    adamw(shead.params().data(), shead.grads().data(), mh.data(), vh.data(), shead.entries(), lr, wd, step);
    if (cfg.ibot) adamw(mask_token.data(), dmask_token.data(), mm.data(), vm.data(), mask_entry, lr, 0.0, step);
    dino_teacher_update(teacher, student, thead, shead, dino_momentum(cfg, step));
    center.update(thead.logits(), int(GB));
    if (M > 0) patch_center.update(thead.logits() + GB * K, int(M));

    if (step == 1) st.first_loss = loss;
    recent.push_back(loss);
    recent_patch.push_back(ploss);
    if (recent.size() > 50) recent.erase(recent.begin()), recent_patch.erase(recent_patch.begin());
    st.steps = step;
    st.loss = std::accumulate(recent.begin(), recent.end(), 0.0) / double(recent.size());
    st.peak_loss = std::max(st.peak_loss, st.loss);
    st.patch_loss = std::accumulate(recent_patch.begin(), recent_patch.end(), 0.0) / double(recent_patch.size());
    const bool out_of_time = cfg.max_seconds > 0 && elapsed() > cfg.max_seconds;
    const bool last = step == cfg.steps || out_of_time;
    if (last || step == 1 || (cfg.log_every > 0 && step % cfg.log_every == 0)) {
      st.teacher_entropy = mean_row_entropy(tprobs.data(), int(GB), K);
      std::vector<float> mean(static_cast<std::size_t>(K), 0.f);
      for (std::int64_t r = 0; r < GB; ++r)
        for (int k = 0; k < K; ++k) mean[std::size_t(k)] += tprobs[std::size_t(r * K + k)] / float(GB);
      st.teacher_mean_entropy = mean_row_entropy(mean.data(), 1, K);
      if (log) {
        *log << "[dino] step " << step << "/" << cfg.steps << "  loss " << st.loss;
        if (cfg.ibot) *log << " (patch " << st.patch_loss << ", " << M << " masked tokens)";
        *log << "  H(teacher) " << st.teacher_entropy << "  H(mean teacher) " << st.teacher_mean_entropy << "  lr "
             << lr << "  tau_t " << tau_t << "  m " << dino_momentum(cfg, step) << "  " << elapsed() << " s\n";
      }
      if (monitor) monitor(step, teacher);
    }
    if (out_of_time) {
      if (log) *log << "[dino] stopping at step " << step << ": max_seconds " << cfg.max_seconds << " reached\n";
      break;
    }
  }
  st.seconds = elapsed();
  if (stats) *stats = st;
  return teacher;
}

}  // namespace redi::train
