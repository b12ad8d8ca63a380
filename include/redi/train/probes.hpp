// redi/train/probes.hpp — how good a frozen encoder's features are, measured the way DINO
// measures them (Caron et al. 2021, section 4.1), on mean-pooled features:
//
//   knn_accuracy      weighted k-NN: cosine similarity of L2-normalised features, the k nearest
//                     memory images vote for their label with weight exp(cos / T) (k = 20,
//                     T = 0.07)
//   fit_linear_probe  a linear classifier (softmax cross-entropy, AdamW, cosine lr) on the
//                     frozen features, standardised by the training features' mean and std;
//                     the weight decay and lr are chosen on a validation set
//   set_linear_head   writes a probe into a ViTEncoder's classification head (the
//                     standardisation folded into the weights), so ViTEncoder::logits()
//                     classifies with it
//   fit_probe_head    all of it for an encoder: features, probe, head
//
// Features come from train::pooled_features (redi/train/encoder_training.hpp).
#pragma once
#include <Eigen/Dense>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <ostream>
#include <span>
#include <vector>

#include "redi/core/error.hpp"
#include "redi/data/dataset.hpp"
#include "redi/data/sampler.hpp"
#include "redi/nn/vit_encoder.hpp"
#include "redi/ops/optim.hpp"
#include "redi/train/encoder_training.hpp"

namespace redi::train {

/// Mean-pooled features of a labelled image set: rows [n, dim] (float) and labels [n].
struct FeatureSet {
  int n = 0, dim = 0, num_classes = 0;
  std::vector<float> x;
  std::vector<int> labels;
  const float* row(std::int64_t i) const { return x.data() + i * dim; }
};

/// The mean-pooled features of every image of ds.
template <CpuReal T>
FeatureSet encode_pooled(ViTEncoder<T>& enc, const data::ImageDataset& ds, int batch = 128) {
  FeatureSet f;
  f.n = ds.n;
  f.dim = enc.feature_dim();
  f.num_classes = ds.num_classes;
  f.x.resize(std::size_t(ds.n) * std::size_t(f.dim));
  std::vector<std::int64_t> idx(static_cast<std::size_t>(ds.n));
  std::iota(idx.begin(), idx.end(), std::int64_t(0));
  pooled_features(enc, ds, idx, f.x.data(), batch);
  f.labels = ds.labels;
  return f;
}

inline void check_feature_sets(const FeatureSet& a, const FeatureSet& b, const char* who) {
  REDI_CHECK(a.n > 0 && b.n > 0 && a.dim > 0 && a.dim == b.dim, who, ": feature sets of ", a.n, " x ", a.dim,
             " and ", b.n, " x ", b.dim);
  REDI_CHECK(a.x.size() == std::size_t(a.n) * std::size_t(a.dim) && b.x.size() == std::size_t(b.n) * std::size_t(b.dim) &&
                 a.labels.size() == std::size_t(a.n) && b.labels.size() == std::size_t(b.n),
             who, ": inconsistent feature set sizes");
}

/// Weighted k-NN accuracy of `query` against `memory` (cosine similarity; votes exp(cos / T)).
inline double knn_accuracy(const FeatureSet& memory, const FeatureSet& query, int k = 20, double temperature = 0.07) {
  check_feature_sets(memory, query, "knn_accuracy");
  REDI_CHECK(k > 0 && temperature > 0, "knn_accuracy: k ", k, ", temperature ", temperature);
  using RowMajor = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  const int C = std::max({memory.num_classes, query.num_classes,
                          *std::max_element(memory.labels.begin(), memory.labels.end()) + 1});
  Eigen::Map<const RowMajor> Mraw(memory.x.data(), memory.n, memory.dim);
  Eigen::Map<const RowMajor> Qraw(query.x.data(), query.n, query.dim);
  RowMajor M = Mraw.rowwise().normalized();
  const int kk = std::min(k, memory.n);
  constexpr Eigen::Index kChunk = 256;
  std::int64_t correct = 0;
#pragma omp parallel for schedule(dynamic) reduction(+ : correct)
  for (Eigen::Index q0 = 0; q0 < query.n; q0 += kChunk) {
    const Eigen::Index nq = std::min<Eigen::Index>(kChunk, query.n - q0);
    RowMajor Q = Qraw.middleRows(q0, nq).rowwise().normalized();
    RowMajor S = Q * M.transpose();
    std::vector<int> order(static_cast<std::size_t>(memory.n));
    std::vector<double> votes(static_cast<std::size_t>(C));
    for (Eigen::Index q = 0; q < nq; ++q) {
      const float* s = S.data() + q * S.cols();
      std::iota(order.begin(), order.end(), 0);
      std::nth_element(order.begin(), order.begin() + (kk - 1), order.end(),
                       [&](int a, int b) { return s[a] > s[b] || (s[a] == s[b] && a < b); });
      std::fill(votes.begin(), votes.end(), 0.0);
      for (int j = 0; j < kk; ++j) {
        const int m = order[std::size_t(j)];
        votes[std::size_t(memory.labels[std::size_t(m)])] += std::exp(double(s[m]) / temperature);
      }
      const int pred = int(std::max_element(votes.begin(), votes.end()) - votes.begin());
      correct += pred == query.labels[std::size_t(q0 + q)];
    }
  }
  return double(correct) / double(query.n);
}

/// A linear classifier on raw (unstandardised) features: logits = W x + b, W [classes, dim].
struct LinearProbe {
  int dim = 0, num_classes = 0;
  std::vector<float> W, b;
  double weight_decay = 0, lr = 0;   // the chosen hyper-parameters
  double val_accuracy = 0;           // on the validation set they were chosen on
  int epochs = 0;

  /// Accuracy of the probe on a feature set.
  double accuracy(const FeatureSet& f) const {
    REDI_CHECK(f.dim == dim, "LinearProbe::accuracy: features of dim ", f.dim, ", probe ", dim);
    std::int64_t correct = 0;
    for (int i = 0; i < f.n; ++i) {
      int best = 0;
      double bv = -std::numeric_limits<double>::infinity();
      for (int c = 0; c < num_classes; ++c) {
        double z = b[std::size_t(c)];
        for (int d = 0; d < dim; ++d) z += double(W[std::size_t(c) * dim + d]) * f.row(i)[d];
        if (z > bv) bv = z, best = c;
      }
      correct += best == f.labels[std::size_t(i)];
    }
    return double(correct) / std::max(1, f.n);
  }
};

struct LinearProbeConfig {
  std::vector<double> weight_decays{0.0, 1e-4, 1e-3, 1e-2};  // AdamW decoupled decay (x lr)
  std::vector<double> lrs{1e-2, 3e-3};
  int epochs = 30;
  int batch = 256;
  std::uint64_t seed = 0;
};

namespace detail {
/// One probe trained on standardised features xs [n, dim]; returns (W, b) on standardised input.
inline void train_probe(const std::vector<float>& xs, const FeatureSet& tr, int C, double lr, double wd,
                        const LinearProbeConfig& cfg, std::vector<float>& W, std::vector<float>& b) {
  const int n = tr.n, dim = tr.dim, B = std::min(cfg.batch, n);
  W.assign(std::size_t(C) * dim, 0.f);
  b.assign(std::size_t(C), 0.f);
  // One scratch allocation: gradients, AdamW moments (zero) and the logits of a batch.
  const std::size_t nW = W.size(), nb_ = b.size();
  std::vector<float> scratch(3 * nW + 3 * nb_ + std::size_t(B) * std::size_t(C), 0.f);
  float *gW = scratch.data(), *mW = gW + nW, *vW = mW + nW, *gb = vW + nW, *mb = gb + nb_, *vb = mb + nb_,
        *z = vb + nb_;
  data::BatchSampler sampler(n, B, cfg.seed ^ 0x70726f6265ull /* "probe" */);
  const int steps_per_epoch = int(sampler.batches_per_epoch()), total = cfg.epochs * steps_per_epoch;
  for (int step = 1; step <= total; ++step) {
    const auto draw = sampler.next();
    std::fill(gW, gW + nW, 0.f);
    std::fill(gb, gb + nb_, 0.f);
    const int nb = int(draw.indices.size());
    for (int r = 0; r < nb; ++r) {
      const std::int64_t i = draw.indices[std::size_t(r)];
      const float* x = xs.data() + i * dim;
      float* zr = z + std::size_t(r) * C;
      float mx = -std::numeric_limits<float>::infinity();
      for (int c = 0; c < C; ++c) {
        float s = b[std::size_t(c)];
        for (int d = 0; d < dim; ++d) s += W[std::size_t(c) * dim + d] * x[d];
        zr[c] = s;
        mx = std::max(mx, s);
      }
      float sum = 0;
      for (int c = 0; c < C; ++c) sum += (zr[c] = std::exp(zr[c] - mx));
      for (int c = 0; c < C; ++c) {
        const float g = (zr[c] / sum - (c == tr.labels[std::size_t(i)] ? 1.f : 0.f)) / float(nb);
        gb[std::size_t(c)] += g;
        for (int d = 0; d < dim; ++d) gW[std::size_t(c) * dim + d] += g * x[d];
      }
    }
    const double t = double(step - 1) / double(std::max(1, total - 1));
    const double lr_t = lr * 0.5 * (1.0 + std::cos(3.14159265358979323846 * t));
    ops::adamw_step(cpu, W.data(), gW, mW, vW, std::int64_t(W.size()),
                    ops::AdamWConfig{lr_t, 0.9, 0.999, 1e-8, wd}, step);
    ops::adamw_step(cpu, b.data(), gb, mb, vb, std::int64_t(b.size()),
                    ops::AdamWConfig{lr_t, 0.9, 0.999, 1e-8, 0.0}, step);
  }
}
}  // namespace detail

/// Fits a linear probe on `train` for every (lr, weight decay) of cfg, keeps the one with the
/// best accuracy on `val` (ties: the first), and returns it on raw features (standardisation
/// folded in). Deterministic from cfg.seed.
inline LinearProbe fit_linear_probe(const FeatureSet& train, const FeatureSet& val, const LinearProbeConfig& cfg = {},
                                    std::ostream* log = nullptr) {
  check_feature_sets(train, val, "fit_linear_probe");
  REDI_CHECK(!cfg.weight_decays.empty() && !cfg.lrs.empty() && cfg.epochs > 0 && cfg.batch > 0,
             "fit_linear_probe: empty hyper-parameter grid or epochs ", cfg.epochs);
  const int dim = train.dim, n = train.n;
  const int C = std::max({train.num_classes, val.num_classes,
                          *std::max_element(train.labels.begin(), train.labels.end()) + 1});
  std::vector<double> mu(std::size_t(dim), 0.0), sd(std::size_t(dim), 0.0);
  for (int i = 0; i < n; ++i)
    for (int d = 0; d < dim; ++d) mu[std::size_t(d)] += train.row(i)[d];
  for (auto& m : mu) m /= n;
  for (int i = 0; i < n; ++i)
    for (int d = 0; d < dim; ++d) {
      const double e = train.row(i)[d] - mu[std::size_t(d)];
      sd[std::size_t(d)] += e * e;
    }
  for (auto& s : sd) s = std::max(std::sqrt(s / n), 1e-6);
  std::vector<float> xs(train.x.size());
  for (int i = 0; i < n; ++i)
    for (int d = 0; d < dim; ++d)
      xs[std::size_t(i) * dim + d] = float((train.row(i)[d] - mu[std::size_t(d)]) / sd[std::size_t(d)]);
  LinearProbe best;
  best.val_accuracy = -1;
  for (double lr : cfg.lrs)
    for (double wd : cfg.weight_decays) {
      std::vector<float> Ws, bs;
      detail::train_probe(xs, train, C, lr, wd, cfg, Ws, bs);
      LinearProbe p;
      p.dim = dim;
      p.num_classes = C;
      p.W.resize(Ws.size());
      p.b.resize(bs.size());
      for (int c = 0; c < C; ++c) {  // W (x - mu) / sd + b = (W / sd) x + (b - sum W mu / sd)
        double bias = bs[std::size_t(c)];
        for (int d = 0; d < dim; ++d) {
          const double w = Ws[std::size_t(c) * dim + d] / sd[std::size_t(d)];
          p.W[std::size_t(c) * dim + d] = float(w);
          bias -= w * mu[std::size_t(d)];
        }
        p.b[std::size_t(c)] = float(bias);
      }
      p.lr = lr;
      p.weight_decay = wd;
      p.epochs = cfg.epochs;
      p.val_accuracy = p.accuracy(val);
      if (log) *log << "[probe] lr " << lr << "  weight decay " << wd << "  val acc " << p.val_accuracy << "\n";
      if (p.val_accuracy > best.val_accuracy) best = std::move(p);
    }
  return best;
}

/// Writes the probe into enc's classification head (head.weight [K, D], head.bias [K]).
template <CpuReal T>
void set_linear_head(ViTEncoder<T>& enc, const LinearProbe& p) {
  const auto* w = enc.find("head.weight");
  const auto* b = enc.find("head.bias");
  REDI_CHECK(w && b, "set_linear_head: the encoder has no head");
  REDI_CHECK(p.dim == enc.feature_dim() && p.num_classes <= enc.config().num_classes, "set_linear_head: probe ",
             p.num_classes, " x ", p.dim, " for an encoder head ", enc.config().num_classes, " x ",
             enc.feature_dim());
  T* P = enc.params().data();
  const int K = enc.config().num_classes, D = enc.feature_dim();
  for (int c = 0; c < K; ++c) {
    for (int d = 0; d < D; ++d) P[w->offset + std::int64_t(c) * D + d] = c < p.num_classes ? T(p.W[std::size_t(c) * D + d]) : T(0);
    // classes the probe does not know can never win
    P[b->offset + c] = c < p.num_classes ? T(p.b[std::size_t(c)]) : T(-1e4);
  }
}

/// The whole step: pooled features of `train` and `val`, fit_linear_probe, set_linear_head.
/// Returns the probe (its val_accuracy is the validation accuracy of the new head).
template <CpuReal T>
LinearProbe fit_probe_head(ViTEncoder<T>& enc, const data::ImageDataset& train, const data::ImageDataset& val,
                           const LinearProbeConfig& cfg = {}, std::ostream* log = nullptr) {
  const LinearProbe p = fit_linear_probe(encode_pooled(enc, train), encode_pooled(enc, val), cfg, log);
  set_linear_head(enc, p);
  return p;
}

}  // namespace redi::train
