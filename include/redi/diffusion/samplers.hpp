// redi/diffusion/samplers.hpp — sampler policies (compile-time tags with run-time Options)
// and redi::Sampler<SamplerTag, GuidanceTag, T>, which runs a whole reverse process over a
// Network. Equations: docs/samplers.md.
//
// Noise: every random number is redi::philox keyed by (seed, GLOBAL sample index, step):
//   initial state  : stream (SampleInit, index, 0), element c*H*W + p
//   step k's noise : stream (SampleStep, index, k)
// so a sample does not depend on which batch (or device) generates it.
// Memory: buffers grow on the first run (and when B grows); a step allocates nothing.
#pragma once
#include <cmath>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "redi/core/philox.hpp"
#include "redi/diffusion/guidance.hpp"
#include "redi/diffusion/network.hpp"
#include "redi/diffusion/objectives.hpp"
#include "redi/diffusion/schedule.hpp"

namespace redi {

/// DDPM reverse-process variance when the network does not learn sigma.
enum class DdpmVariance {
  Auto,        // learned range if the network outputs 2*Cin channels, else FixedLarge (DiT)
  FixedLarge,  // log(append(posterior_variance[1], betas[1:]))
  FixedSmall,  // posterior_log_variance_clipped
};

/// DDPM ancestral sampling (DiT default): respaced like improved-DDPM, network fed the
/// ORIGINAL timestep index.
struct Ancestral {
  using objective = DDPM;
  struct Options {
    std::string respacing = "250";  // space_timesteps spec: "250", "ddim50", "10,20,30", "" = 1000
    DdpmVariance variance = DdpmVariance::Auto;
    bool clip_denoised = false;     // clamp pred_x0 to [-1,1] (DiT samples with false)
  };
};

/// DDIM (improved-DDPM ddim_sample), eta = 0 deterministic, eta = 1 ~ ancestral (small var).
struct DDIM {
  using objective = DDPM;
  struct Options {
    std::string respacing = "50";
    double eta = 0.0;
    bool clip_denoised = false;
  };
};

/// SiT SDE Euler-Maruyama (SiT/ReDi default): grid linspace(0, 1 - last_step_size,
/// num_steps), num_steps - 1 EM steps, then a deterministic "Mean" step of size
/// last_step_size (no noise). NFE = num_steps. Diffusion w(t) = diffusion_norm * (1 - t).
struct SdeEulerMaruyama {
  using objective = FlowMatching;
  struct Options {
    int num_steps = 250;
    double last_step_size = 0.04;  // 0: no last step, grid ends at t = 1
    double diffusion_norm = 1.0;
  };
};

/// Probability-flow ODE dx/dt = v(x, t), t from 0 to 1 in num_steps equal steps.
struct OdeEuler {
  using objective = FlowMatching;
  struct Options { int num_steps = 50; };  // NFE = num_steps
};
struct OdeHeun {
  using objective = FlowMatching;
  struct Options { int num_steps = 50; };  // NFE = 2 * num_steps
};

template <class Obj, class SamplerTag>
inline constexpr bool compatible_v =
    std::is_same_v<typename SamplerTag::objective, Obj>;

/// static_assert helper for the composed model type.
template <Objective Obj, class SamplerTag, class GuidanceTag>
constexpr void check_sampling_policies() {
  static_assert(GuidancePolicy<GuidanceTag>,
                "redi: guidance must be redi::NoGuidance, redi::CFG<VaeOnly|Joint>, "
                "redi::RepGuidance or redi::Combine<CFG<Mode>, RepGuidance>");
  static_assert(!(Obj::is_ddpm && !compatible_v<Obj, SamplerTag>),
                "redi: a DDPM model samples with redi::Ancestral or redi::DDIM");
  static_assert(!(Obj::is_flow && !compatible_v<Obj, SamplerTag>),
                "redi: a FlowMatching model samples with redi::SdeEulerMaruyama, redi::OdeEuler "
                "or redi::OdeHeun (Ancestral/DDIM need a DDPM model)");
}

/// Which samples to generate.
struct SampleRequest {
  int B = 0;
  const int* labels = nullptr;              // [B]; nullptr: all 0 (unconditional)
  std::uint64_t seed = 0;
  std::uint64_t first_index = 0;            // global index of row 0 ...
  const std::uint64_t* index = nullptr;     // ... or explicit global indices [B]
  /// Feature-conditioned sampling: known clean features [B, r, H, W] (r = Cin - Cx). Before
  /// every network evaluation the feature channels of the state are replaced by these features
  /// noised to the current time with the state's own initial feature noise n_z (flow:
  /// t z + (1 - t) n_z; DDPM: sqrt(abar_t) z + sqrt(1 - abar_t) n_z), i.e. the exact marginal of
  /// the forward process, and the output's feature channels are z itself. Only the image
  /// channels are generated: x ~ p(x | z). nullptr: joint generation (the default).
  const float* known_z = nullptr;
};

namespace diffusion {

// ---- per-element step math (all in double) ----
inline double pred_x0_from_eps(double x, double eps, double sr, double srm1) {
  return sr * x - srm1 * eps;
}
inline double clamp1(double v) { return v < -1.0 ? -1.0 : (v > 1.0 ? 1.0 : v); }
inline double learned_log_var(double v, double max_log, double min_log) {
  const double frac = 0.5 * (v + 1.0);
  return frac * max_log + (1.0 - frac) * min_log;
}
/// SiT SDE drift v + w(t) s with s = (t v - x)/(1 - t) and w = norm (1 - t): the (1 - t)
/// cancels, so drift = v + norm (t v - x) has no singularity at t = 1.
inline double sde_drift(double x, double v, double t, double norm) { return v + norm * (t * v - x); }

}  // namespace diffusion

template <class SamplerTag, class GuidanceTag, class T>
class Sampler {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                "redi::Sampler<S, G, T>: T must be float or double");
  static_assert(GuidancePolicy<GuidanceTag>,
                "redi::Sampler<S, G, T>: G must be redi::NoGuidance, redi::CFG<VaeOnly|Joint>, "
                "redi::RepGuidance or redi::Combine<CFG<Mode>, RepGuidance>");
  static_assert(requires { typename SamplerTag::objective; typename SamplerTag::Options; },
                "redi::Sampler<S, G, T>: S must be redi::Ancestral, redi::DDIM, "
                "redi::SdeEulerMaruyama, redi::OdeEuler or redi::OdeHeun");

public:
  using Obj = typename SamplerTag::objective;
  using Options = typename SamplerTag::Options;

  explicit Sampler(const Options& o = {}, const GuidanceOptions& g = {}) : opt_(o), g_(g) {
    if constexpr (Obj::is_ddpm) {
      sched_ = diffusion::GaussianSchedule::linear(DDPM::num_timesteps)
                   .respaced(diffusion::space_timesteps(DDPM::num_timesteps, opt_.respacing));
    } else {
      REDI_CHECK(steps() >= 1 && steps() < 65536, "Sampler: num_steps out of range: ", steps());
    }
  }

  /// Generate req.B samples into x[B, Cin, H, W] (x is overwritten; initial noise is drawn).
  template <Network N>
  void run(N& net, T* x, const SampleRequest& req) {
    static_assert(std::is_same_v<typename N::value_type, T>,
                  "redi::Sampler<S, G, T>: the network's value_type must be T");
    if constexpr (requires { typename N::objective; })
      check_sampling_policies<typename N::objective, SamplerTag, GuidanceTag>();
    diffusion::check_objective_network<Obj, N>();
    L_ = diffusion::layout_of(net);
    REDI_CHECK(!L_.learned_sigma || Obj::supports_learned_sigma,
               "Sampler: a FlowMatching network must output Cin channels (no learned sigma)");
    REDI_CHECK(req.B > 0, "Sampler: B must be positive");
    const int B = req.B;
    const long long nin = L_.in_elems();
    if (pred_.size() < std::size_t(B) * L_.out_elems() || noise_.size() < std::size_t(B) * nin) {
      ++allocs_;
      pred_.resize(std::size_t(B) * L_.out_elems());
      noise_.resize(std::size_t(B) * nin);
      tmp_.resize(std::size_t(B) * nin);
      tmp2_.resize(std::size_t(B) * nin);
      idx_.resize(B);
    }
    for (int b = 0; b < B; ++b) idx_[b] = req.index ? req.index[b] : req.first_index + b;
    draw(x, B, req.seed, diffusion::rng::SampleInit, 0);
    known_ = req.known_z;
    if (known_) {
      REDI_CHECK(L_.r() > 0, "Sampler: SampleRequest::known_z needs a model with feature channels (r > 0)");
      const long long nx = (long long)L_.cx * L_.hw(), nz = nin - nx;
      zn_.resize(std::size_t(B) * std::size_t(nz));  // the initial feature noise n_z of each row
      for (int b = 0; b < B; ++b) std::copy_n(x + b * nin + nx, nz, zn_.data() + b * nz);
    }
    nfe_ = 0;
    if constexpr (std::is_same_v<SamplerTag, Ancestral> || std::is_same_v<SamplerTag, DDIM>)
      run_ddpm(net, x, req);
    else if constexpr (std::is_same_v<SamplerTag, SdeEulerMaruyama>)
      run_sde(net, x, req);
    else
      run_ode(net, x, req);
    if (known_) {  // the output's feature channels are the known z itself
      const long long nx = (long long)L_.cx * L_.hw(), nz = nin - nx;
      for (int b = 0; b < B; ++b)
        for (long long e = 0; e < nz; ++e) x[b * nin + nx + e] = T(known_[b * nz + e]);
    }
  }

  int nfe() const { return nfe_; }  // network evaluations of the last run (forward calls)
  std::size_t allocations() const { return allocs_ + gws_.allocations; }
  const diffusion::GaussianSchedule& schedule() const { return sched_; }  // DDPM: respaced
  const diffusion::GuidanceWorkspace<T>& guidance_workspace() const { return gws_; }

private:
  int steps() const {
    if constexpr (Obj::is_ddpm) return sched_.size();
    else return opt_.num_steps;
  }

  void draw(T* dst, int B, std::uint64_t seed, diffusion::rng::Purpose p, int step) {
    const long long nin = L_.in_elems();
#if defined(_OPENMP)
#pragma omp parallel for schedule(static) if ((long long)B * nin >= kOmpMinWork)
#endif
    for (int b = 0; b < B; ++b)
      philox::fill_normal(dst + b * nin, std::size_t(nin), seed,
                          diffusion::rng::stream(p, idx_[b], std::uint32_t(step)));
  }

  /// Feature-conditioned sampling: the state's feature channels := the known z noised to t_net
  /// with the row's initial feature noise (see SampleRequest::known_z).
  void impose_known(T* x, int B, double t_net) {
    double a, c;
    if constexpr (Obj::is_ddpm) {
      const int ti = int(std::lround(t_net));  // the ORIGINAL 1000-step index
      a = base_.sqrt_alphas_cumprod[std::size_t(ti)];
      c = base_.sqrt_one_minus_alphas_cumprod[std::size_t(ti)];
    } else {
      a = t_net;
      c = 1.0 - t_net;
    }
    const long long nin = L_.in_elems(), nx = (long long)L_.cx * L_.hw(), nz = nin - nx;
    for (int b = 0; b < B; ++b)
      for (long long e = 0; e < nz; ++e)
        x[b * nin + nx + e] = T(a * double(known_[b * nz + e]) + c * double(zn_[std::size_t(b * nz + e)]));
  }

  template <class N>
  void predict(N& net, T* x, double t_net, const SampleRequest& req) {
    if (known_) impose_known(x, req.B, t_net);
    diffusion::guided_prediction<GuidanceTag>(net, g_, x, t_net, req.labels, req.B, gws_, pred_.data());
    ++nfe_;
  }

  template <class N>
  void run_ddpm(N& net, T* x, const SampleRequest& req) {
    const int B = req.B;
    const long long nin = L_.in_elems(), nout = L_.out_elems();
    const auto& s = sched_;
    bool learned = L_.learned_sigma;
    if constexpr (std::is_same_v<SamplerTag, Ancestral>) {
      if (opt_.variance != DdpmVariance::Auto) learned = false;
    }
    for (int i = s.size() - 1; i >= 0; --i) {
      predict(net, x, double(s.timestep_map[i]), req);
      bool noisy = i > 0;
      if constexpr (std::is_same_v<SamplerTag, DDIM>) noisy = noisy && opt_.eta != 0.0;
      if (noisy) draw(noise_.data(), B, req.seed, diffusion::rng::SampleStep, i);
      const double sr = s.sqrt_recip_alphas_cumprod[i], srm1 = s.sqrt_recipm1_alphas_cumprod[i];
      const double c1 = s.posterior_mean_coef1[i], c2 = s.posterior_mean_coef2[i];
      const bool clip = opt_.clip_denoised;
      const T* pr = pred_.data();
      const T* nz = noise_.data();
#if defined(_OPENMP)
#pragma omp parallel for schedule(static) if ((long long)B * nin >= kOmpMinWork)
#endif
      for (int b = 0; b < B; ++b) {
        for (long long e = 0; e < nin; ++e) {
          const long long k = b * nin + e;
          const double xv = double(x[k]);
          double eps = double(pr[b * nout + e]);
          double px0 = diffusion::pred_x0_from_eps(xv, eps, sr, srm1);
          if (clip) px0 = diffusion::clamp1(px0);
          double out;
          if constexpr (std::is_same_v<SamplerTag, Ancestral>) {
            const double mean = c1 * px0 + c2 * xv;
            double lv;
            if (learned) lv = diffusion::learned_log_var(double(pr[b * nout + nin + e]),
                                                         s.log_betas[i], s.posterior_log_variance_clipped[i]);
            else if (opt_.variance == DdpmVariance::FixedSmall) lv = s.posterior_log_variance_clipped[i];
            else lv = s.fixed_large_log_variance[i];
            out = i > 0 ? mean + std::exp(0.5 * lv) * double(nz[k]) : mean;
          } else {  // DDIM
            if (clip) eps = (sr * xv - px0) / srm1;  // re-derive eps from the clipped x0
            const double ab = s.alphas_cumprod[i], abp = s.alphas_cumprod_prev[i];
            const double sigma = opt_.eta * std::sqrt((1.0 - abp) / (1.0 - ab)) * std::sqrt(1.0 - ab / abp);
            const double mean = px0 * std::sqrt(abp) + std::sqrt(1.0 - abp - sigma * sigma) * eps;
            out = noisy ? mean + sigma * double(nz[k]) : mean;
          }
          x[k] = T(out);
        }
      }
    }
  }

  template <class N>
  void run_sde(N& net, T* x, const SampleRequest& req) {
    const int B = req.B, n = opt_.num_steps;
    REDI_CHECK(n >= 2, "SdeEulerMaruyama: num_steps must be >= 2 (grid points incl. both ends)");
    const double t0 = 0.0, t1 = 1.0 - opt_.last_step_size, norm = opt_.diffusion_norm;
    const double dt = (t1 - t0) / double(n - 1);
    const long long nin = L_.in_elems();
    for (int k = 0; k < n - 1; ++k) {
      const double t = t0 + dt * k;
      predict(net, x, t, req);
      draw(noise_.data(), B, req.seed, diffusion::rng::SampleStep, k);
      const double sd = std::sqrt(2.0 * norm * (1.0 - t) * dt);
      const T* v = pred_.data();
      const T* nz = noise_.data();
#if defined(_OPENMP)
#pragma omp parallel for schedule(static) if ((long long)B * nin >= kOmpMinWork)
#endif
      for (long long e = 0; e < (long long)B * nin; ++e) {
        const double xv = double(x[e]);
        x[e] = T(xv + diffusion::sde_drift(xv, double(v[e]), t, norm) * dt + sd * double(nz[e]));
      }
    }
    if (opt_.last_step_size > 0) {  // "Mean": deterministic drift step to t = 1
      predict(net, x, t1, req);
      const T* v = pred_.data();
      const double h = opt_.last_step_size;
      for (long long e = 0; e < (long long)B * nin; ++e) {
        const double xv = double(x[e]);
        x[e] = T(xv + diffusion::sde_drift(xv, double(v[e]), t1, norm) * h);
      }
    }
  }

  template <class N>
  void run_ode(N& net, T* x, const SampleRequest& req) {
    const int B = req.B, n = opt_.num_steps;
    const double dt = 1.0 / double(n);
    const long long tot = (long long)B * L_.in_elems();
    T* xp = tmp_.data();
    T* v1 = tmp2_.data();
    for (int k = 0; k < n; ++k) {
      const double t = dt * k, tn = (k + 1 == n) ? 1.0 : dt * (k + 1);
      const double h = tn - t;
      predict(net, x, t, req);
      if constexpr (std::is_same_v<SamplerTag, OdeEuler>) {
        for (long long e = 0; e < tot; ++e) x[e] = T(double(x[e]) + h * double(pred_[e]));
      } else {  // Heun: predictor Euler, corrector trapezoid
        for (long long e = 0; e < tot; ++e) {
          v1[e] = pred_[e];
          xp[e] = T(double(x[e]) + h * double(pred_[e]));
        }
        predict(net, xp, tn, req);
        for (long long e = 0; e < tot; ++e)
          x[e] = T(double(x[e]) + 0.5 * h * (double(v1[e]) + double(pred_[e])));
      }
    }
  }

  Options opt_;
  GuidanceOptions g_;
  diffusion::GaussianSchedule sched_;
  diffusion::Layout L_;
  diffusion::GuidanceWorkspace<T> gws_;
  std::vector<T> pred_, noise_, tmp_, tmp2_;
  std::vector<std::uint64_t> idx_;
  const float* known_ = nullptr;  // SampleRequest::known_z of the current run
  std::vector<T> zn_;             // its initial feature noise [B, r*H*W]
  diffusion::GaussianSchedule base_ = Obj::is_ddpm ? diffusion::GaussianSchedule::linear(DDPM::num_timesteps)
                                                         : diffusion::GaussianSchedule{};
  std::size_t allocs_ = 0;
  int nfe_ = 0;
};

/// One-shot convenience: redi::sample<redi::Ancestral, redi::CFG<redi::VaeOnly>>(net, x, req, opts, g).
template <class SamplerTag, class GuidanceTag = NoGuidance, Network N>
void sample(N& net, typename N::value_type* x, const SampleRequest& req,
            const typename SamplerTag::Options& o = {}, const GuidanceOptions& g = {}) {
  Sampler<SamplerTag, GuidanceTag, typename N::value_type> s(o, g);
  s.run(net, x, req);
}

}  // namespace redi
