// Sampler tests against closed-form oracles: for Gaussian data (per-channel mean m_c, std s_c)
// the optimal eps / velocity predictors are analytic, so every sampler must reproduce the
// data's per-channel mean and variance up to sampling error and its discretisation bias.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "redi/diffusion/diffusion.hpp"

using namespace redi;
using diffusion::GaussianSchedule;

namespace {

const std::vector<double> kMean{0.5, -1.0, 2.0, 0.0};
const std::vector<double> kStd{0.5, 1.5, 1.0, 3.0};  // the last like an unscaled PCA channel

/// Optimal predictor for x0 ~ N(m_c, s_c^2) per element (independent elements).
///  DDPM: x_t = a x0 + b eps  =>  E[eps | x_t] = b (x_t - a m) / (a^2 s^2 + b^2).
///    Learned sigma: v such that the learned-range variance equals the exact reverse variance
///    of the (respaced) chain: Var(x_prev | x_t) = post_var_i + coef1_i^2 Var(x0 | x_t),
///    Var(x0 | x_t) = s^2 b^2 / (a^2 s^2 + b^2).
///  Flow: x_t = t x1 + (1-t) n  =>  with D = t^2 s^2 + (1-t)^2,
///    E[x1 | x_t] = m + t s^2 (x_t - t m)/D,  E[n | x_t] = (1-t)(x_t - t m)/D,
///    v*(x_t, t) = E[x1 - n | x_t] = m + (t s^2 - (1-t)) (x_t - t m) / D.
template <class T>
struct GaussOracle {
  using value_type = T;
  bool flow = false, learn_sigma = false;
  int cx = 2, cin = 4, h = 4, w = 4;
  double eps_scale = 1.0;  // != 1: a deliberately wrong predictor (sensitivity test)
  GaussianSchedule base = GaussianSchedule::linear(1000);
  const GaussianSchedule* spaced = nullptr;
  std::vector<int> inv_map;
  long long calls = 0, rows = 0;

  void set_spaced(const GaussianSchedule* s) {
    spaced = s;
    inv_map.assign(1000, -1);
    for (int i = 0; i < s->size(); ++i) inv_map[s->timestep_map[i]] = i;
  }
  int channels_in() const { return cin; }
  int channels_out() const { return learn_sigma ? 2 * cin : cin; }
  int image_channels() const { return cx; }
  int height() const { return h; }
  int width() const { return w; }
  int null_class() const { return 1; }
  void forward(const T* x, const T* t, const int*, int B, T* out) {
    ++calls;
    rows += B;
    const int hw = h * w, cout = channels_out();
    for (int b = 0; b < B; ++b)
      for (int c = 0; c < cin; ++c) {
        const double m = kMean[c], s2 = kStd[c] * kStd[c];
        const double tv = double(t[b]);
        for (int p = 0; p < hw; ++p) {
          const double xv = double(x[(b * cin + c) * hw + p]);
          double o;
          if (flow) {
            const double D = tv * tv * s2 + (1 - tv) * (1 - tv);
            o = m + (tv * s2 - (1 - tv)) * (xv - tv * m) / D;
          } else {
            const int ti = int(tv);
            const double a = base.sqrt_alphas_cumprod[ti], bb = base.sqrt_one_minus_alphas_cumprod[ti];
            const double D = a * a * s2 + bb * bb;
            o = bb * (xv - a * m) / D;
            if (learn_sigma) {
              const int i = inv_map[ti];
              double v = 0;
              if (i > 0) {
                const auto& s = *spaced;
                const double var0 = s2 * bb * bb / D;
                const double tv2 = s.posterior_variance[i] + s.posterior_mean_coef1[i] * s.posterior_mean_coef1[i] * var0;
                const double lo = s.posterior_log_variance_clipped[i], hi = s.log_betas[i];
                v = 2 * (std::log(tv2) - lo) / (hi - lo) - 1;
              }
              out[(b * cout + cin + c) * hw + p] = T(v);
            }
          }
          out[(b * cout + c) * hw + p] = T(o * eps_scale);
        }
      }
  }
};
static_assert(Network<GaussOracle<float>>);

struct Moments { std::vector<double> mean, var; };

template <class T>
Moments moments(const std::vector<T>& x, int B, int C, int hw) {
  Moments M{std::vector<double>(C), std::vector<double>(C)};
  for (int c = 0; c < C; ++c) {
    double s = 0, ss = 0;
    for (int b = 0; b < B; ++b)
      for (int p = 0; p < hw; ++p) {
        const double v = x[(b * C + c) * hw + p];
        s += v; ss += v * v;
      }
    const double n = double(B) * hw;
    M.mean[c] = s / n;
    M.var[c] = (ss - s * s / n) / (n - 1);
  }
  return M;
}

// ---- exact output moments: with the affine oracle every sampler step is x' = A x + C + sig xi,
// so a channel stays Gaussian and (mu, V) propagate exactly: mu' = A mu + C, V' = A^2 V + sig^2.
// Written from the equations in docs/samplers.md, independently of the sampler code.
struct Affine { double A, C, var; };
struct Exact { double mu = 0, V = 1; void step(Affine a) { mu = a.A * mu + a.C; V = a.A * a.A * V + a.var; } };

enum class DdpmKind { Learned, Large, Small, Ddim };
Exact exact_ddpm(const GaussianSchedule& sp, int c, DdpmKind kind, double eta = 0) {
  const auto base = GaussianSchedule::linear(1000);
  const double m = kMean[c], s2 = kStd[c] * kStd[c];
  Exact e;
  for (int i = sp.size() - 1; i >= 0; --i) {
    const int t = sp.timestep_map[i];
    const double a = base.sqrt_alphas_cumprod[t], b = base.sqrt_one_minus_alphas_cumprod[t];
    const double D = a * a * s2 + b * b, k = b / D, e0 = -b * a * m / D;  // eps = k x + e0
    const double ab = sp.alphas_cumprod[i], abp = sp.alphas_cumprod_prev[i];
    const double P = std::sqrt(1 / ab) - std::sqrt(1 / ab - 1) * k, Q = -std::sqrt(1 / ab - 1) * e0;  // x0 = P x + Q
    if (kind == DdpmKind::Ddim) {
      const double sig = eta * std::sqrt((1 - abp) / (1 - ab)) * std::sqrt(1 - ab / abp);
      const double q = std::sqrt(1 - abp - sig * sig);
      e.step({std::sqrt(abp) * P + q * k, std::sqrt(abp) * Q + q * e0, i > 0 ? sig * sig : 0.0});
    } else {
      const double c1 = sp.posterior_mean_coef1[i], c2 = sp.posterior_mean_coef2[i];
      double var = 0;
      if (i > 0) {
        if (kind == DdpmKind::Learned) var = sp.posterior_variance[i] + c1 * c1 * s2 * b * b / D;
        else if (kind == DdpmKind::Large) var = (1 - abp) == 0 ? 0 : sp.betas[i];
        else var = sp.posterior_variance[i];
      }
      e.step({c1 * P + c2, c1 * Q, var});
    }
  }
  return e;
}

enum class FlowKind { Euler, Heun, Sde };
Exact exact_flow(int c, FlowKind kind, int n, double last = 0.04) {
  const double m = kMean[c], s2 = kStd[c] * kStd[c];
  auto G = [&](double t) { return (t * s2 - (1 - t)) / (t * t * s2 + (1 - t) * (1 - t)); };
  auto H = [&](double t) { return m - G(t) * t * m; };  // v = G x + H
  Exact e;
  if (kind == FlowKind::Sde) {
    const double t1 = 1 - last, dt = t1 / (n - 1);
    for (int k = 0; k < n - 1; ++k) {
      const double t = k * dt;  // drift = (1 + t) v - x ; noise var 2 (1 - t) dt
      e.step({1 + dt * ((1 + t) * G(t) - 1), dt * (1 + t) * H(t), 2 * (1 - t) * dt});
    }
    e.step({1 + last * ((1 + t1) * G(t1) - 1), last * (1 + t1) * H(t1), 0});
    return e;
  }
  const double h = 1.0 / n;
  for (int k = 0; k < n; ++k) {
    const double t = k * h, tn = (k + 1) * h;
    if (kind == FlowKind::Euler) {
      e.step({1 + h * G(t), h * H(t), 0});
    } else {
      const double g1 = G(t), h1 = H(t), g2 = G(tn), h2 = H(tn);
      e.step({1 + 0.5 * h * (g1 + g2 * (1 + h * g1)), 0.5 * h * (h1 + g2 * h * h1 + h2), 0});
    }
  }
  return e;
}

constexpr int kB = 256;       // 256 samples x 16 i.i.d. pixels = 4096 draws per channel
constexpr int kN = kB * 16;

/// Three checks per channel (N = 4096 i.i.d. draws):
///  (a) sampler vs its exact output law (mu, V): pure sampling error. The sample mean has
///      standard error sqrt(V/N), the sample variance a relative standard error sqrt(2/(N-1))
///      (Gaussian output); allow 4.5 standard errors (fixed seed: robustness margin against
///      changes that reshuffle the noise; a 10% predictor error fails, see WrongPredictor).
///  (b) exact law vs the data: the sampler's discretisation bias, deterministic, bounded by
///      `bias` (relative to s for the mean, relative for the variance).
///  (c) sampler vs data: sampling error + the exact bias of (b).
void expect_moments(const Moments& M, const std::vector<Exact>& ex, double bias, const char* what) {
  for (int c = 0; c < 4; ++c) {
    const double s = kStd[c], mu = ex[c].mu, V = ex[c].V;
    const double se_m = std::sqrt(V / kN), se_v = std::sqrt(2.0 / (kN - 1));
    EXPECT_NEAR(M.mean[c], mu, 4.5 * se_m) << what << " (a) channel " << c;
    EXPECT_NEAR(M.var[c] / V, 1.0, 4.5 * se_v) << what << " (a) channel " << c;
    EXPECT_NEAR(mu, kMean[c], bias * s) << what << " (b) channel " << c;
    EXPECT_NEAR(V / (s * s), 1.0, bias) << what << " (b) channel " << c;
    EXPECT_NEAR(M.mean[c], kMean[c], 4.5 * se_m + std::fabs(mu - kMean[c])) << what << " (c) " << c;
    EXPECT_NEAR(M.var[c] / (s * s), 1.0, 4.5 * se_v * V / (s * s) + std::fabs(V / (s * s) - 1)) << what << " (c) " << c;
    if (std::getenv("REDI_PRINT_MOMENTS"))
      std::printf("%-24s c%d exact bias: mean %+.5f s, var %+.5f | sample-exact: mean %+.2f se, var %+.2f se\n",
                  what, c, (mu - kMean[c]) / s, V / (s * s) - 1, (M.mean[c] - mu) / se_m, (M.var[c] / V - 1) / se_v);
  }
}

template <class S, class G = NoGuidance>
Moments run_sampler(GaussOracle<float>& net, const typename S::Options& o, int* nfe = nullptr,
                    const GaussianSchedule** sched = nullptr) {
  std::vector<float> x(std::size_t(kB) * 4 * 16);
  static Sampler<S, G, float>* keep = nullptr;  // keeps the respaced schedule alive for `sched`
  delete keep;
  keep = new Sampler<S, G, float>(o);
  if constexpr (std::is_same_v<typename S::objective, DDPM>) net.set_spaced(&keep->schedule());
  keep->run(net, x.data(), {.B = kB, .seed = 1234});
  if (nfe) *nfe = keep->nfe();
  if (sched) *sched = &keep->schedule();
  return moments(x, kB, 4, 16);
}

std::vector<Exact> ddpm_law(const GaussianSchedule* sp, DdpmKind k, double eta = 0) {
  std::vector<Exact> v;
  for (int c = 0; c < 4; ++c) v.push_back(exact_ddpm(*sp, c, k, eta));
  return v;
}
std::vector<Exact> flow_law(FlowKind k, int n) {
  std::vector<Exact> v;
  for (int c = 0; c < 4; ++c) v.push_back(exact_flow(c, k, n));
  return v;
}

}  // namespace

// Bias bounds (b) are a little above the exact biases (REDI_PRINT_MOMENTS=1 prints them);
// 250-step ancestral with fixed-large variance: exact bias <= 1.4% in the variance.

TEST(Samplers, AncestralLearnedSigma250And50) {
  GaussOracle<float> net;
  net.learn_sigma = true;
  int nfe = 0;
  const GaussianSchedule* sp = nullptr;
  // exact eps + exact reverse variance: the respaced chain is exact up to x_T ~ N(0,1)
  // (sqrt(abar_T) = 0.006), so the bias bound is tight.
  auto M = run_sampler<Ancestral>(net, {.respacing = "250"}, &nfe, &sp);
  expect_moments(M, ddpm_law(sp, DdpmKind::Learned), 0.002, "ancestral250 learned");
  EXPECT_EQ(nfe, 250);
  M = run_sampler<Ancestral>(net, {.respacing = "50"}, &nfe, &sp);
  expect_moments(M, ddpm_law(sp, DdpmKind::Learned), 0.002, "ancestral50 learned");
  EXPECT_EQ(nfe, 50);
}

TEST(Samplers, AncestralFixedLarge250) {
  GaussOracle<float> net;
  const GaussianSchedule* sp = nullptr;
  // beta_t instead of the exact reverse variance: an O(1/steps) bias.
  auto M = run_sampler<Ancestral>(net, {.respacing = "250"}, nullptr, &sp);
  expect_moments(M, ddpm_law(sp, DdpmKind::Large), 0.03, "ancestral250 fixed-large");
}

TEST(Samplers, DdimEta0AndEta1) {
  GaussOracle<float> net;
  const GaussianSchedule* sp = nullptr;
  // eta = 0: deterministic first-order integrator of the probability-flow ODE; at 50 steps
  // it shrinks the variance of the narrow channels (exact: -11% for s = 0.5, -6% for s = 3).
  auto M = run_sampler<DDIM>(net, {.respacing = "50", .eta = 0.0}, nullptr, &sp);
  expect_moments(M, ddpm_law(sp, DdpmKind::Ddim, 0.0), 0.12, "ddim50 eta0");
  // eta = 1 has the posterior ("fixed small") variance, which underestimates the reverse
  // variance by O(1/steps) — at 50 steps -22% for the s = 0.5 channel — so use 250 steps
  // (exact bias -5.6% for s = 0.5).
  M = run_sampler<DDIM>(net, {.respacing = "250", .eta = 1.0}, nullptr, &sp);
  expect_moments(M, ddpm_law(sp, DdpmKind::Ddim, 1.0), 0.06, "ddim250 eta1");
}

TEST(Samplers, DdimEta1EqualsAncestralFixedSmall) {
  // sigma_eta=1^2 = posterior variance and the DDIM mean equals the posterior mean.
  GaussOracle<double> net;
  net.h = net.w = 2;
  std::vector<double> a(8 * 16), b(8 * 16);
  sample<DDIM>(net, a.data(), {.B = 8, .seed = 5}, {.respacing = "20", .eta = 1.0});
  sample<Ancestral>(net, b.data(), {.B = 8, .seed = 5}, {.respacing = "20", .variance = DdpmVariance::FixedSmall});
  for (std::size_t k = 0; k < a.size(); ++k) EXPECT_NEAR(a[k], b[k], 1e-12 * (1 + std::fabs(a[k])));
}

TEST(Samplers, FlowSdeEulerMaruyamaDefaults) {
  GaussOracle<float> net;
  net.flow = true;
  int nfe = 0;
  auto M = run_sampler<SdeEulerMaruyama>(net, {}, &nfe);
  // first-order EM; exact bias -2.3% in the variance of the s = 0.5 channel
  expect_moments(M, flow_law(FlowKind::Sde, 250), 0.03, "sde-em 250 + mean step");
  EXPECT_EQ(nfe, 250);  // 249 EM steps + the Mean step, as SiT
}

TEST(Samplers, FlowOdeEulerAndHeun) {
  GaussOracle<float> net;
  net.flow = true;
  int nfe = 0;
  // Euler is first order: 100 steps leave a bias of order 1/100 (exact: <= -3.6% variance).
  auto M = run_sampler<OdeEuler>(net, {.num_steps = 100}, &nfe);
  expect_moments(M, flow_law(FlowKind::Euler, 100), 0.04, "ode-euler 100");
  EXPECT_EQ(nfe, 100);
  // Heun is second order: 25 steps, bias of order 1/25^2 (exact: <= 0.4%).
  M = run_sampler<OdeHeun>(net, {.num_steps = 25}, &nfe);
  expect_moments(M, flow_law(FlowKind::Heun, 25), 0.01, "ode-heun 25");
  EXPECT_EQ(nfe, 50);
}

TEST(Samplers, WrongPredictorIsDetected) {
  // The tolerances must be able to fail: a 10% error in the eps / velocity prediction moves
  // the empirical moments outside check (a)'s 4.5-standard-error band.
  GaussOracle<float> net;
  net.learn_sigma = true;
  net.eps_scale = 1.1;
  const GaussianSchedule* sp = nullptr;
  Moments M = run_sampler<Ancestral>(net, {.respacing = "50"}, nullptr, &sp);
  auto law = ddpm_law(sp, DdpmKind::Learned);
  double worst = 0;
  for (int c = 0; c < 4; ++c) worst = std::max(worst, std::fabs(M.var[c] / law[c].V - 1) / std::sqrt(2.0 / (kN - 1)));
  EXPECT_GT(worst, 4.5);
  GaussOracle<float> fnet;
  fnet.flow = true;
  fnet.eps_scale = 1.1;
  M = run_sampler<OdeHeun>(fnet, {.num_steps = 25});
  auto fl = flow_law(FlowKind::Heun, 25);
  worst = 0;
  for (int c = 0; c < 4; ++c) worst = std::max(worst, std::fabs(M.mean[c] - fl[c].mu) / std::sqrt(fl[c].V / kN));
  EXPECT_GT(worst, 4.5);
}

TEST(Samplers, SampleDoesNotDependOnItsBatch) {
  // samples 0..7 in one batch == samples 0..3 and 4..7 in two batches (global indices)
  auto check = [](auto tag, auto opts, bool flow) {
    using S = decltype(tag);
    GaussOracle<double> net;
    net.flow = flow;
    net.h = net.w = 2;
    const int per = 4 * 4;
    std::vector<double> all(8 * per), a(4 * per), b(4 * per);
    Sampler<S, NoGuidance, double> smp(opts);
    smp.run(net, all.data(), {.B = 8, .seed = 77});
    smp.run(net, a.data(), {.B = 4, .seed = 77, .first_index = 0});
    std::vector<std::uint64_t> idx{4, 5, 6, 7};
    smp.run(net, b.data(), {.B = 4, .seed = 77, .index = idx.data()});
    for (int k = 0; k < 4 * per; ++k) {
      EXPECT_EQ(all[k], a[k]);
      EXPECT_EQ(all[4 * per + k], b[k]);
    }
    smp.run(net, a.data(), {.B = 4, .seed = 78});  // a different seed gives different samples
    EXPECT_NE(all[0], a[0]);
  };
  check(Ancestral{}, Ancestral::Options{.respacing = "20"}, false);
  check(DDIM{}, DDIM::Options{.respacing = "20", .eta = 1.0}, false);
  check(SdeEulerMaruyama{}, SdeEulerMaruyama::Options{.num_steps = 20}, true);
  check(OdeHeun{}, OdeHeun::Options{.num_steps = 5}, true);
}

TEST(Samplers, NoAllocationAfterFirstRun) {
  GaussOracle<float> net;
  net.flow = true;
  std::vector<float> x(8 * 4 * 16);
  Sampler<SdeEulerMaruyama, CFG<VaeOnly>, float> smp({.num_steps = 10}, {.cfg_scale = 2.0});
  smp.run(net, x.data(), {.B = 8});
  const auto n = smp.allocations();
  smp.run(net, x.data(), {.B = 8, .seed = 3});
  smp.run(net, x.data(), {.B = 4, .seed = 4});
  EXPECT_EQ(smp.allocations(), n);
  EXPECT_EQ(net.rows, 3L * 10 * 2 * 8 - 10 * 2 * 4);  // 2 branches per forward, one forward per step
}

// Compile-time policy checks.
static_assert(compatible_v<DDPM, Ancestral> && compatible_v<DDPM, DDIM>);
static_assert(compatible_v<FlowMatching, SdeEulerMaruyama> && compatible_v<FlowMatching, OdeHeun>);
static_assert(!compatible_v<FlowMatching, Ancestral> && !compatible_v<DDPM, OdeEuler>);

// Feature-conditioned sampling (SampleRequest::known_z): before every network evaluation the
// feature channels hold the known z noised to the current time with the row's own initial
// feature noise, and the output's feature channels are z. Checked for every forward call of a
// recording wrapper around the oracle, for the flow ODE/SDE samplers and DDIM / ancestral.
namespace {
template <class T>
struct Recorder : GaussOracle<T> {
  struct Call { std::vector<double> t; std::vector<T> x; int B = 0; };
  std::vector<Call> calls_seen;
  void forward(const T* x, const T* t, const int* y, int B, T* out) {
    Call c;
    c.B = B;
    c.t.assign(t, t + B);
    c.x.assign(x, x + std::size_t(B) * this->cin * this->h * this->w);
    calls_seen.push_back(std::move(c));
    GaussOracle<T>::forward(x, t, y, B, out);
  }
};

template <class S>
void check_known_z(bool flow, const typename S::Options& so) {
  Recorder<double> net;
  net.flow = flow;
  const int B = 3, hw = net.h * net.w, nin = net.cin * hw, nx = net.cx * hw, nz = nin - nx;
  std::vector<float> known(std::size_t(B) * nz);
  for (std::size_t i = 0; i < known.size(); ++i) known[i] = float(std::sin(0.37 * double(i)) * 2.0);
  SampleRequest req{.B = B, .seed = 11, .first_index = 5};
  req.known_z = known.data();
  std::vector<double> x(std::size_t(B) * nin);
  Sampler<S, NoGuidance, double> s(so);
  if constexpr (!S::objective::is_flow) net.set_spaced(&s.schedule());
  s.run(net, x.data(), req);
  ASSERT_GT(net.calls_seen.size(), 1u);
  const auto base = GaussianSchedule::linear(1000);
  for (int b = 0; b < B; ++b) {
    std::vector<double> init(static_cast<std::size_t>(nin));  // the row's initial state
    philox::fill_normal(init.data(), init.size(), req.seed,
                        diffusion::rng::stream(diffusion::rng::SampleInit, req.first_index + b, 0));
    for (const auto& c : net.calls_seen) {
      const double t = c.t[std::size_t(b)];
      const double a = flow ? t : base.sqrt_alphas_cumprod[std::size_t(std::lround(t))];
      const double k = flow ? 1.0 - t : base.sqrt_one_minus_alphas_cumprod[std::size_t(std::lround(t))];
      for (int e = 0; e < nz; ++e) {
        const double want = a * double(known[std::size_t(b * nz + e)]) + k * init[std::size_t(nx + e)];
        ASSERT_NEAR(c.x[std::size_t(b * nin + nx + e)], want, 1e-12) << "row " << b << " t " << t << " e " << e;
      }
    }
    for (int e = 0; e < nz; ++e)
      EXPECT_EQ(x[std::size_t(b * nin + nx + e)], double(known[std::size_t(b * nz + e)]));
  }
  // the image channels were generated (not left at the initial noise, not copied from z)
  double diff = 0;
  std::vector<double> init0(static_cast<std::size_t>(nin));
  philox::fill_normal(init0.data(), init0.size(), req.seed,
                      diffusion::rng::stream(diffusion::rng::SampleInit, req.first_index, 0));
  for (int e = 0; e < nx; ++e) diff += std::abs(x[std::size_t(e)] - init0[std::size_t(e)]);
  EXPECT_GT(diff, 1e-3);
}
}  // namespace

TEST(Samplers, KnownFeaturesAreImposedAtEveryStep) {
  check_known_z<OdeEuler>(true, {.num_steps = 6});
  check_known_z<OdeHeun>(true, {.num_steps = 4});
  check_known_z<SdeEulerMaruyama>(true, {.num_steps = 6});
  check_known_z<DDIM>(false, {.respacing = "ddim100"});
  check_known_z<Ancestral>(false, {.respacing = "20"});
}

TEST(Samplers, KnownFeaturesNeedFeatureChannels) {
  GaussOracle<double> net;
  net.flow = true;
  net.cin = net.cx;  // a plain model: no feature channels
  std::vector<float> known(16, 0.f);
  std::vector<double> x(std::size_t(net.cin) * 16);
  SampleRequest req{.B = 1};
  req.known_z = known.data();
  EXPECT_THROW((Sampler<OdeEuler, NoGuidance, double>({.num_steps = 2}).run(net, x.data(), req)), Error);
}
