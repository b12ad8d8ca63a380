// redi/diffusion/loss.hpp — redi::JointLoss<Objective, T>: one training step's loss for the
// joint image-latent / representation model, with representation-guidance dropout and label
// dropout. Builds the noisy fused input, calls net.forward, computes loss and d loss / d out,
// calls net.backward. Equations and the reduction conventions: docs/objectives.md.
//
//   L = mean_b [ mse_x(b) + lam_b * mse_z(b) + vb(b) ]      (vb only for DDPM + learned sigma)
//   mse_x(b) = mean over the Cx*H*W image elements of (pred - target)^2
//   mse_z(b) = mean over the r*H*W feature elements
//   vb(b)    = ( sum_x vb_e + lam_b * sum_z vb_e ) / (Cin*H*W)   [bits; = DiT's mean_flat(vb)
//              over all channels when lam_b = 1; the eps prediction inside vb is gradient-stopped]
//   lam_b    = lambda_z, or 0 when sample b's representation is dropped.
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include "redi/core/philox.hpp"
#include "redi/diffusion/network.hpp"
#include "redi/diffusion/objectives.hpp"
#include "redi/diffusion/schedule.hpp"

namespace redi {

/// How the representation-guidance dropout decision is drawn.
enum class RepDrop {
  PerBatch,   // public code: one coin per batch (all samples or none)
  PerSample,  // one coin per sample: zero that sample's z and its feature-loss weight
};

template <Objective Obj, class T>
class JointLoss {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                "redi::JointLoss<Obj, T>: T must be float or double");

public:
  using value_type = T;

  struct Options {
    double lambda_z = 1.0;         // weight of the feature-channel loss (public code: 1)
    double p_drop = 0.0;           // representation-guidance training (public README: 0.2)
    RepDrop rep_drop = RepDrop::PerBatch;
    bool zero_noisy_z = false;     // false: zero the CLEAN z0 before noising (public code: the
                                   // network sees z_t = sqrt(1-abar) eps_z, or (1-t) n_z);
                                   // true: the network sees z_t = 0 (paper wording, and what
                                   // RG sampling feeds the unconditional branch)
    double label_drop_prob = 0.1;  // label -> null class (CFG training)
  };

  struct Batch {
    const T* x0 = nullptr;      // [B, Cx, H, W] image latents
    const T* z0 = nullptr;      // [B, r, H, W] representation features
    const int* labels = nullptr;  // [B]; nullptr: all 0 (unconditional, num_classes = 1)
    int B = 0;
    std::uint64_t seed = 0;     // run seed
    std::uint64_t step = 0;     // training step (folded into the Philox key)
    std::uint64_t first_index = 0;              // global index of sample 0 ...
    const std::uint64_t* sample_index = nullptr;  // ... or explicit global indices [B]
    const std::uint8_t* label_drop = nullptr;   // explicit label-dropout mask [B] (overrides RNG)
    const std::uint8_t* rep_drop = nullptr;     // explicit representation-drop mask [B] (overrides RNG)
    const T* time = nullptr;    // explicit network times [B] (DDPM: integer steps) (overrides RNG)
    const T* noise = nullptr;   // explicit noise [B, Cin, H, W] (overrides RNG)
  };

  struct Stats {
    double loss = 0, mse_x = 0, mse_z = 0, vb = 0;  // batch means (mse_z unweighted)
    int rep_dropped = 0, labels_dropped = 0;
  };

  JointLoss() = default;
  explicit JointLoss(const Options& o) : opt_(o) {}
  const Options& options() const { return opt_; }
  Options& options() { return opt_; }

  /// DDPM only: the 1000-step schedule the loss draws timesteps from.
  const diffusion::GaussianSchedule& schedule() const { return sched_; }

  /// One loss evaluation: forward, loss, dout and (if `backward`) net.backward(dout).
  template <TrainableNetwork N>
  Stats operator()(N& net, const Batch& b, bool backward = true) {
    static_assert(std::is_same_v<typename N::value_type, T>,
                  "redi::JointLoss<Obj, T>: the network's value_type must be T");
    diffusion::check_objective_network<Obj, N>();
    const diffusion::Layout L = diffusion::layout_of(net);
    REDI_CHECK(!L.learned_sigma || Obj::supports_learned_sigma,
               "JointLoss<FlowMatching>: network outputs 2*Cin channels (learned sigma); "
               "flow matching has no learned sigma — build it with learn_sigma = false");
    REDI_CHECK(b.B > 0 && b.x0 && (L.r() == 0 || b.z0), "JointLoss: empty batch or null x0/z0");
    prepare(L, b.B);
    draw(net, L, b);
    net.forward(input_.data(), time_.data(), labels_.data(), b.B, out_.data());
    Stats st = reduce(L, b.B);
    if (backward) net.backward(dout_.data());
    return st;
  }

  /// The host half of a step: the per-sample draws of batch b (time, label dropout,
  /// representation dropout; B values) into net_time(), net_labels(), rep_mask() and
  /// timestep_index(). operator() calls it; the device path of the loss (redi/device_loss.hpp)
  /// calls it and runs the per-element half on the device (ops/joint_loss.hpp).
  void draw_samples(int null_class, const Batch& b) {
    namespace rng = diffusion::rng;
    if (time_.size() < std::size_t(b.B)) {
      time_.resize(b.B); labels_.resize(b.B); tidx_.resize(b.B); rep_mask_.resize(b.B);
    }
    const std::uint64_t key = rng::train_key(b.seed, b.step);
    const int null = null_class;
    const bool batch_coin =
        philox::uniform(key, rng::stream(rng::RepDropBatch, 0), 0) < opt_.p_drop;
    ldropped_ = 0;
    for (int i = 0; i < b.B; ++i) {
      const std::uint64_t id = index_of(b, i);
      // representation drop
      bool drop;
      if (b.rep_drop) drop = b.rep_drop[i] != 0;
      else if (opt_.rep_drop == RepDrop::PerBatch) drop = batch_coin;
      else drop = philox::uniform(key, rng::stream(rng::RepDropSample, id), 0) < opt_.p_drop;
      rep_mask_[i] = drop ? 1 : 0;
      // label (dropout -> null class)
      const int y = b.labels ? b.labels[i] : 0;
      bool ldrop;
      if (b.label_drop) ldrop = b.label_drop[i] != 0;
      else ldrop = philox::uniform(key, rng::stream(rng::LabelDrop, id), 0) < opt_.label_drop_prob;
      labels_[i] = ldrop ? null : y;
      ldropped_ += ldrop ? 1 : 0;
      // time
      const double u = b.time ? 0.0 : philox::uniform(key, rng::stream(rng::TrainTime, id), 0);
      if constexpr (Obj::is_ddpm) {
        const int t = b.time ? int(b.time[i])
                             : std::min(int(u * Obj::num_timesteps), Obj::num_timesteps - 1);
        REDI_CHECK(t >= 0 && t < Obj::num_timesteps, "JointLoss: timestep ", t, " of sample ", i,
                   " outside [0, ", Obj::num_timesteps, ")");
        tidx_[i] = t;
        time_[i] = T(t);
      } else {
        tidx_[i] = 0;
        time_[i] = b.time ? b.time[i] : T(u);
      }
    }
  }
  /// Global index of sample i of b (its Philox streams).
  std::uint64_t index_of(const Batch& b, int i) const {
    return b.sample_index ? b.sample_index[i] : b.first_index + std::uint64_t(i);
  }
  /// Stats from per-sample squared-error sums [2B] (image, features) of the last draw_samples:
  /// the reduction of operator() without the vb term (the device path's).
  Stats stats_from_sums(const diffusion::Layout& L, int B, const double* sums) const {
    Stats st;
    const long long nx = (long long)L.cx * L.hw(), nzc = L.in_elems() - nx;
    const double invB = 1.0 / B;
    for (int i = 0; i < B; ++i) {
      const double lam = rep_mask_[i] ? 0.0 : opt_.lambda_z;
      const double mx = nx ? sums[2 * i] / double(nx) : 0.0, mz = nzc ? sums[2 * i + 1] / double(nzc) : 0.0;
      st.mse_x += mx * invB;
      st.mse_z += mz * invB;
      st.loss += (mx + lam * mz) * invB;
      st.rep_dropped += rep_mask_[i];
    }
    st.labels_dropped = ldropped_;
    return st;
  }

  // ---- views of the last call (tests, logging) ----
  const T* net_input() const { return input_.data(); }  // [B, Cin, H, W]
  const T* noise() const { return noise_.data(); }      // [B, Cin, H, W]
  const T* clean() const { return clean_.data(); }      // [B, Cin, H, W] (z zeroed if dropped)
  const T* target() const { return target_.data(); }    // [B, Cin, H, W]
  const T* net_time() const { return time_.data(); }    // [B]
  const int* net_labels() const { return labels_.data(); }
  const T* dout() const { return dout_.data(); }        // [B, Cout, H, W]
  const T* net_output() const { return out_.data(); }
  const std::vector<std::uint8_t>& rep_mask() const { return rep_mask_; }
  const std::vector<int>& timestep_index() const { return tidx_; }  // DDPM: t of each sample
  std::size_t allocations() const { return allocs_; }

private:
  void prepare(const diffusion::Layout& L, int B) {
    const std::size_t nin = std::size_t(B) * L.in_elems(), nout = std::size_t(B) * L.out_elems();
    if (input_.size() < nin || out_.size() < nout || time_.size() < std::size_t(B)) {
      ++allocs_;
      input_.resize(nin); noise_.resize(nin); target_.resize(nin); clean_.resize(nin);
      out_.resize(nout); dout_.resize(nout);
      time_.resize(B); labels_.resize(B); tidx_.resize(B); rep_mask_.resize(B);
    }
  }

  template <class N>
  void draw(N& net, const diffusion::Layout& L, const Batch& b) {
    namespace rng = diffusion::rng;
    const std::uint64_t key = rng::train_key(b.seed, b.step);
    draw_samples(int(net.null_class()), b);
    const long long hw = L.hw(), nin = L.in_elems(), nx = (long long)L.cx * hw;
    // noisy input and targets (per element, parallel over the batch)
    const T* x0 = b.x0;
    const T* z0 = b.z0;
    const bool zero_noisy = opt_.zero_noisy_z;
    const int B = b.B;
#if defined(_OPENMP)
#pragma omp parallel for schedule(static) if ((long long)B * nin >= kOmpMinWork)
#endif
    for (int i = 0; i < B; ++i) {
      // the noise of sample i depends only on (key, its global index): filled in parallel
      if (b.noise)
        std::copy(b.noise + i * nin, b.noise + (i + 1) * nin, noise_.data() + i * nin);
      else
        philox::fill_normal(noise_.data() + i * nin, std::size_t(nin), key,
                            rng::stream(rng::TrainNoise, index_of(b, i)));
      const T* nz = noise_.data() + i * nin;
      T* in = input_.data() + i * nin;
      T* tg = target_.data() + i * nin;
      T* cl = clean_.data() + i * nin;
      const bool drop = rep_mask_[i] != 0;
      double ca = 0, cb = 0, tt = 0;
      if constexpr (Obj::is_ddpm) {
        ca = sched_.sqrt_alphas_cumprod[tidx_[i]];
        cb = sched_.sqrt_one_minus_alphas_cumprod[tidx_[i]];
      } else {
        tt = double(time_[i]);
      }
      for (long long e = 0; e < nin; ++e) {
        const bool is_z = e >= nx;
        double clean = is_z ? (drop ? 0.0 : double(z0[i * (nin - nx) + (e - nx)]))
                            : double(x0[i * nx + e]);
        cl[e] = T(clean);
        clean = double(cl[e]);  // the value the loss sees is the T-rounded clean value
        const double n = double(nz[e]);
        double xt;
        if constexpr (Obj::is_ddpm) {
          xt = diffusion::ddpm_q_sample(clean, n, ca, cb);
          tg[e] = T(n);
        } else {
          xt = diffusion::flow_interp(clean, n, tt);
          tg[e] = T(diffusion::flow_velocity_target(clean, n));
        }
        if (is_z && drop && zero_noisy) xt = 0.0;
        in[e] = T(xt);
      }
    }
  }

  Stats reduce(const diffusion::Layout& L, int B) {
    Stats st;
    const long long hw = L.hw(), nin = L.in_elems(), nout = L.out_elems();
    const long long nx = (long long)L.cx * hw, nzc = nin - nx;
    const bool vb_on = Obj::is_ddpm && L.learned_sigma;
    std::vector<double>& acc = acc_;  // per-sample [mse_x, mse_z, vb, loss]
    if (acc.size() < std::size_t(4 * B)) acc.resize(4 * B);
    const double invB = 1.0 / B;
#if defined(_OPENMP)
#pragma omp parallel for schedule(static) if ((long long)B * nin >= kOmpMinWork)
#endif
    for (int i = 0; i < B; ++i) {
      const double lam = rep_mask_[i] ? 0.0 : opt_.lambda_z;
      const T* o = out_.data() + i * nout;
      const T* tg = target_.data() + i * nin;
      T* d = dout_.data() + i * nout;
      double sx = 0, sz = 0, svb = 0;
      for (long long e = 0; e < nin; ++e) {
        const double err = double(o[e]) - double(tg[e]);
        if (e < nx) {
          sx += err * err;
          d[e] = T(2.0 * err / double(nx) * invB);
        } else {
          sz += err * err;
          d[e] = T(lam * 2.0 * err / double(nzc) * invB);
        }
      }
      if (vb_on) {
        const int t = tidx_[i];
        const T* in = input_.data() + i * nin;
        const T* cl = clean_.data() + i * nin;
        for (long long e = 0; e < nin; ++e) {
          // z elements of a dropped sample carry weight lam = 0 (also their variance values)
          const double w = e < nx ? 1.0 : lam;
          if (w == 0.0) { d[nin + e] = T(0); continue; }
          const double xt = double(in[e]);
          const double x0 = double(cl[e]);
          double dv;
          const double vbe = diffusion::vb_bits(sched_, t, x0, xt, double(o[e]), double(o[nin + e]), &dv);
          svb += w * vbe;
          d[nin + e] = T(w * dv / double(nin) * invB);
        }
        svb /= double(nin);
      }
      acc[4 * i + 0] = nx ? sx / double(nx) : 0.0;
      acc[4 * i + 1] = nzc ? sz / double(nzc) : 0.0;
      acc[4 * i + 2] = svb;
      acc[4 * i + 3] = acc[4 * i + 0] + lam * acc[4 * i + 1] + svb;
    }
    for (int i = 0; i < B; ++i) {
      st.mse_x += acc[4 * i] * invB;
      st.mse_z += acc[4 * i + 1] * invB;
      st.vb += acc[4 * i + 2] * invB;
      st.loss += acc[4 * i + 3] * invB;
      st.rep_dropped += rep_mask_[i];
    }
    st.labels_dropped = ldropped_;
    return st;
  }

  Options opt_{};
  diffusion::GaussianSchedule sched_ = diffusion::GaussianSchedule::linear(1000);
  std::vector<T> input_, noise_, target_, clean_, out_, dout_, time_;
  std::vector<int> labels_, tidx_;
  std::vector<std::uint8_t> rep_mask_;
  std::vector<double> acc_;
  std::size_t allocs_ = 0;
  int ldropped_ = 0;
};

}  // namespace redi
