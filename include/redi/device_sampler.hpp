// redi/device_sampler.hpp — redi::DeviceSampler<Net, S, G>: every sampler policy (Ancestral,
// DDIM, SdeEulerMaruyama, OdeEuler, OdeHeun) with any guidance policy, run entirely on the
// network's device: the state, the noise (device Philox, the host Sampler's streams), the branch
// rows of each guided forward, the guided combination and the step are device ops
// (redi/ops/sampler_steps.hpp); the host uploads B indices and labels once and downloads the B
// samples at the end (and, for feature-conditioned sampling, SampleRequest::known_z once). DDPM
// models with a learned variance (2 Cin output channels) are served (the variance channels are
// read on the device). ReDi::sample uses it on devices whose backend has those ops; the host
// redi::Sampler through the DeviceBridge stays the reference (and reports a flow network with
// a learned variance, which no sampler serves).
// Same results as the host Sampler bit for bit (the ops' contract; checked on a test device
// running the CPU ops by tests/test_device_path.cpp, the CUDA ops against the CPU ones by
// tests/cuda/test_cuda_sampler.cu; the one exception on a GPU: a learned variance's exp).
#pragma once
#include <cmath>
#include <concepts>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "redi/core/error.hpp"
#include "redi/core/tensor.hpp"
#include "redi/diffusion/guidance.hpp"
#include "redi/diffusion/network.hpp"
#include "redi/diffusion/objectives.hpp"
#include "redi/diffusion/samplers.hpp"
#include "redi/ops/backend.hpp"
#include "redi/ops/sampler_steps.hpp"

namespace redi {

/// Whether Backend<Dev> has the sampler-step ops for master type M.
template <class Dev, class M>
concept DeviceSamplerBackend = requires(const Dev& d, M* x, const M* cx, int* iy, const int* cy,
                                        const std::uint64_t* idx, const ops::GuideSpec& g, std::int64_t n) {
  Backend<Dev>::fill_normal_rows(d, x, 1, n, std::uint64_t(0), idx, 0u, 0u);
  Backend<Dev>::guidance_inputs(d, x, x, iy, cx, cy, g, 0.0);
  Backend<Dev>::guidance_combine(d, x, cx, g, 1.0, 1.0);
  Backend<Dev>::flow_step(d, x, cx, cx, n, ops::FlowStep::Euler, 0.0, 0.0, 0.0, 0.0);
  Backend<Dev>::heun_step(d, x, cx, cx, cx, n, 0.0);
  Backend<Dev>::ddpm_step(d, x, cx, cx, ops::DdpmStep{});
  Backend<Dev>::impose_known(d, x, static_cast<const float*>(nullptr), cx, 1, n, n, 0.0, 0.0);
  Backend<Dev>::copy_strided(d, x, n, cx, n, n, n);
};

template <class Net, class S, class G>
class DeviceSampler {
  using M = typename Net::master_type;
  using T = typename Net::value_type;
  using Dev = typename Net::device_type;
  using Ops = Backend<Dev>;
  static constexpr bool kCast = !std::same_as<T, M>;

public:
  /// The sampler policies this runs (all of redi/diffusion/samplers.hpp's).
  static constexpr bool kSampler = std::is_same_v<S, SdeEulerMaruyama> || std::is_same_v<S, OdeEuler> ||
                                   std::is_same_v<S, OdeHeun> || std::is_same_v<S, Ancestral> ||
                                   std::is_same_v<S, DDIM>;

  /// Whether it serves this network (a flow network with a learned variance: the host Sampler,
  /// which rejects it).
  static bool serves(const Net& net, const SampleRequest&) {
    if (!kSampler) return false;
    return S::objective::is_ddpm || net.channels_out() == net.channels_in();
  }

  /// As Sampler<S, G, M>::run(net-through-the-bridge, x, req) with options so, guidance go;
  /// x [B, Cin, H, W] on the host.
  void run(Net& net, M* x, const SampleRequest& req, const typename S::Options& so, const GuidanceOptions& go)
    requires kSampler
  {
    REDI_CHECK(serves(net, req), "DeviceSampler: a flow network with learned sigma: use the host Sampler");
    REDI_CHECK(req.B > 0, "Sampler: B must be positive");
    const diffusion::Layout L = diffusion::layout_of(net);
    const int B = req.B;
    const std::int64_t nin = L.in_elems(), nout = L.out_elems();
    ensure(B, nin, nout, std::is_same_v<S, OdeHeun>);
    // indices and labels, once
    for (int b = 0; b < B; ++b) hidx_[std::size_t(b)] = req.index ? req.index[b] : req.first_index + std::uint64_t(b);
    Dev::copy_from_host(idx_.data(), hidx_.data(), std::size_t(B) * sizeof(std::uint64_t));
    if (req.labels) Dev::copy_from_host(y_.data(), req.labels, std::size_t(B) * sizeof(int));
    y_dev_ = req.labels ? y_.data() : nullptr;
    g_ = ops::GuideSpec{};
    g_.B = B;
    g_.null_class = int(net.null_class());
    g_.cfg = G::uses_cfg;
    g_.rg = G::uses_rg;
    g_.guide_features = G::guide_features;
    g_.cfg_branch = G::uses_cfg ? 1 : -1;
    g_.rg_branch = G::uses_rg ? (G::uses_cfg ? 2 : 1) : -1;
    g_.nin = nin;
    g_.nout = nout;
    g_.nx = std::int64_t(L.cx) * L.hw();
    Ops::fill_normal_rows(net.context(), x_.data(), B, nin, req.seed, idx_.data(),
                          std::uint32_t(diffusion::rng::SampleInit), 0u);
    known_ = req.known_z != nullptr;
    const std::int64_t nz = nin - g_.nx;
    if (known_) {  // feature-conditioned: known z once, and each row's initial feature noise n_z
      REDI_CHECK(L.r() > 0, "Sampler: SampleRequest::known_z needs a model with feature channels (r > 0)");
      if (known_z_.numel() < std::int64_t(B) * nz) {
        known_z_.reallocate(Shape{std::int64_t(B) * nz});
        zn_.reallocate(Shape{std::int64_t(B) * nz});
      }
      Dev::copy_from_host(known_z_.data(), req.known_z, std::size_t(B) * std::size_t(nz) * sizeof(float));
      Ops::copy_strided(net.context(), zn_.data(), nz, x_.data() + g_.nx, nin, B, nz);
    }
    if constexpr (S::objective::is_ddpm) run_ddpm(net, req, so, go, L.learned_sigma);
    else run_flow(net, req, so, go);
    if (known_)  // the output's feature channels are the known z itself
      Ops::impose_known(net.context(), x_.data(), known_z_.data(), static_cast<const M*>(nullptr), B, nin, g_.nx, 0.0,
                        0.0);
    Dev::copy_to_host(x, x_.data(), std::size_t(B) * std::size_t(nin) * sizeof(M));
    ++runs_;
  }

  /// Sampling runs served so far (tests: the device path was taken).
  std::int64_t runs() const { return runs_; }

private:
  /// pred [B, nout] := the guided prediction at state [B, nin] and network time t (with known_z:
  /// the state's feature channels first := the known z noised to t, as Sampler::impose_known).
  void predict(Net& net, M* state, double t, const GuidanceOptions& go, M* pred) {
    const auto& ctx = net.context();
    if (known_) {
      double a, c;
      if constexpr (S::objective::is_ddpm) {
        const auto ti = std::size_t(std::lround(t));  // the ORIGINAL 1000-step index
        a = base_.sqrt_alphas_cumprod[ti];
        c = base_.sqrt_one_minus_alphas_cumprod[ti];
      } else {
        a = t;
        c = 1.0 - t;
      }
      Ops::impose_known(ctx, state, known_z_.data(), zn_.data(), g_.B, g_.nin, g_.nx, a, c);
    }
    g_.nb = (G::branches > 1 && diffusion::guidance_active(go, t)) ? G::branches : 1;
    const int rows = g_.nb * g_.B;
    Ops::guidance_inputs(ctx, in_.data(), time_.data(), lab_.data(), state, y_dev_, g_, t);
    if constexpr (kCast) {
      Ops::convert(ctx, in_c_.data(), in_.data(), rows * g_.nin);
      net.infer(in_c_.data(), time_.data(), lab_.data(), rows, out_c_.data());
      Ops::convert(ctx, out_.data(), out_c_.data(), rows * g_.nout);
    } else {
      net.infer(in_.data(), time_.data(), lab_.data(), rows, out_.data());
    }
    Ops::guidance_combine(ctx, pred, out_.data(), g_, go.cfg_scale, go.rg_scale);
  }

  void noise(const Net& net, const SampleRequest& req, int step) {
    Ops::fill_normal_rows(net.context(), noise_.data(), req.B, g_.nin, req.seed, idx_.data(),
                          std::uint32_t(diffusion::rng::SampleStep), std::uint32_t(step));
  }

  /// The flow samplers: Sampler::run_sde / run_ode, step for step.
  void run_flow(Net& net, const SampleRequest& req, const typename S::Options& so, const GuidanceOptions& go) {
    const auto& ctx = net.context();
    const std::int64_t n = std::int64_t(req.B) * g_.nin;
    if constexpr (std::is_same_v<S, SdeEulerMaruyama>) {
      const int steps = so.num_steps;
      REDI_CHECK(steps >= 2, "SdeEulerMaruyama: num_steps must be >= 2 (grid points incl. both ends)");
      const double t0 = 0.0, t1 = 1.0 - so.last_step_size, norm = so.diffusion_norm;
      const double dt = (t1 - t0) / double(steps - 1);
      for (int k = 0; k < steps - 1; ++k) {
        const double t = t0 + dt * k;
        predict(net, x_.data(), t, go, pred_.data());
        noise(net, req, k);
        const double sd = std::sqrt(2.0 * norm * (1.0 - t) * dt);
        Ops::flow_step(ctx, x_.data(), pred_.data(), noise_.data(), n, ops::FlowStep::Sde, t, dt, norm, sd);
      }
      if (so.last_step_size > 0) {
        predict(net, x_.data(), t1, go, pred_.data());
        Ops::flow_step(ctx, x_.data(), pred_.data(), static_cast<const M*>(nullptr), n, ops::FlowStep::Mean, t1,
                       so.last_step_size, norm, 0.0);
      }
    } else {  // OdeEuler, OdeHeun
      const int steps = so.num_steps;
      const double dt = 1.0 / double(steps);
      for (int k = 0; k < steps; ++k) {
        const double t = dt * k, tn = (k + 1 == steps) ? 1.0 : dt * (k + 1);
        const double h = tn - t;
        predict(net, x_.data(), t, go, pred_.data());
        if constexpr (std::is_same_v<S, OdeEuler>) {
          Ops::flow_step(ctx, x_.data(), pred_.data(), static_cast<const M*>(nullptr), n, ops::FlowStep::Euler, t, h,
                         0.0, 0.0);
        } else {  // Heun: Euler predictor into xp, v at (xp, tn), trapezoid corrector
          Ops::heun_step(ctx, xp_.data(), x_.data(), pred_.data(), static_cast<const M*>(nullptr), n, h);
          predict(net, xp_.data(), tn, go, pred2_.data());
          Ops::heun_step(ctx, x_.data(), x_.data(), pred_.data(), pred2_.data(), n, h);
        }
      }
    }
  }

  /// The DDPM samplers: Sampler::run_ddpm over the same respaced schedule, with the per-step
  /// scalars computed here by the host Sampler's expressions.
  void run_ddpm(Net& net, const SampleRequest& req, const typename S::Options& so, const GuidanceOptions& go,
                bool learned_sigma) {
    const auto s = diffusion::GaussianSchedule::linear(DDPM::num_timesteps)
                       .respaced(diffusion::space_timesteps(DDPM::num_timesteps, so.respacing));
    ops::DdpmStep st;
    st.kind = std::is_same_v<S, DDIM> ? ops::DdpmKind::Ddim : ops::DdpmKind::Ancestral;
    st.B = req.B;
    st.nin = g_.nin;
    st.nout = g_.nout;
    st.clip = so.clip_denoised;
    bool learned = learned_sigma;
    if constexpr (std::is_same_v<S, Ancestral>)
      if (so.variance != DdpmVariance::Auto) learned = false;
    for (int i = s.size() - 1; i >= 0; --i) {
      const auto u = std::size_t(i);
      predict(net, x_.data(), double(s.timestep_map[u]), go, pred_.data());
      bool noisy = i > 0;
      if constexpr (std::is_same_v<S, DDIM>) noisy = noisy && so.eta != 0.0;
      if (noisy) noise(net, req, i);
      st.noisy = noisy;
      st.sr = s.sqrt_recip_alphas_cumprod[u];
      st.srm1 = s.sqrt_recipm1_alphas_cumprod[u];
      if constexpr (std::is_same_v<S, Ancestral>) {
        st.c1 = s.posterior_mean_coef1[u];
        st.c2 = s.posterior_mean_coef2[u];
        st.learned = learned;
        st.max_log = s.log_betas[u];
        st.min_log = s.posterior_log_variance_clipped[u];
        const double lv = so.variance == DdpmVariance::FixedSmall ? s.posterior_log_variance_clipped[u]
                                                                  : s.fixed_large_log_variance[u];
        st.sd = learned ? 0.0 : std::exp(0.5 * lv);
      } else {
        const double ab = s.alphas_cumprod[u], abp = s.alphas_cumprod_prev[u];
        const double sigma = so.eta * std::sqrt((1.0 - abp) / (1.0 - ab)) * std::sqrt(1.0 - ab / abp);
        st.sd = sigma;
        st.a = std::sqrt(abp);
        st.b = std::sqrt(1.0 - abp - sigma * sigma);
      }
      Ops::ddpm_step(net.context(), x_.data(), pred_.data(), noisy ? noise_.data() : static_cast<const M*>(nullptr),
                     st);
    }
  }

  void ensure(int B, std::int64_t nin, std::int64_t nout, bool heun) {
    if (B <= cap_ && nin == nin_ && nout == nout_ && (!heun || heun_)) return;
    const std::int64_t n = std::int64_t(B) * nin, np = std::int64_t(B) * nout;
    const std::int64_t nbi = std::int64_t(G::branches) * n, nbo = std::int64_t(G::branches) * np;
    x_.reallocate(Shape{n}); noise_.reallocate(Shape{n}); pred_.reallocate(Shape{np});
    if (heun) { xp_.reallocate(Shape{n}); pred2_.reallocate(Shape{np}); }
    in_.reallocate(Shape{nbi}); out_.reallocate(Shape{nbo});
    if constexpr (kCast) { in_c_.reallocate(Shape{nbi}); out_c_.reallocate(Shape{nbo}); }
    time_.reallocate(Shape{std::int64_t(G::branches) * B});
    lab_.reallocate(Shape{std::int64_t(G::branches) * B});
    y_.reallocate(Shape{B});
    idx_.reallocate(Shape{B});
    hidx_.assign(std::size_t(B), 0);
    cap_ = B;
    nin_ = nin;
    nout_ = nout;
    heun_ = heun;
  }

  Tensor<M, Dev> x_, noise_, pred_, xp_, pred2_, in_, out_, time_, zn_;
  Tensor<float, Dev> known_z_;
  bool known_ = false;
  diffusion::GaussianSchedule base_ = S::objective::is_ddpm ? diffusion::GaussianSchedule::linear(DDPM::num_timesteps)
                                                            : diffusion::GaussianSchedule{};
  Tensor<T, Dev> in_c_, out_c_;
  Tensor<int, Dev> lab_, y_;
  Tensor<std::uint64_t, Dev> idx_;
  std::vector<std::uint64_t> hidx_;
  ops::GuideSpec g_;
  const int* y_dev_ = nullptr;  // y_ when the request has labels
  int cap_ = 0;
  bool heun_ = false;
  std::int64_t nin_ = 0, nout_ = 0, runs_ = 0;
};

}  // namespace redi
