// Guidance policy tests with a spy network: which rows the one batched forward sees, and the
// combination rules (CFG VaeOnly/Joint, representation guidance, both, guidance interval).
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "redi/diffusion/diffusion.hpp"

using namespace redi;
using diffusion::GuidanceWorkspace;
using diffusion::guided_prediction;

namespace {

/// Deterministic, label-, time- and z-dependent network that records its last call.
struct SpyNet {
  using value_type = double;
  int cx = 2, cin = 5, h = 1, w = 3, ncls = 3;
  bool learn_sigma = false;
  std::vector<double> last_x, last_t;
  std::vector<int> last_y;
  int last_B = 0, calls = 0;
  int channels_in() const { return cin; }
  int channels_out() const { return learn_sigma ? 2 * cin : cin; }
  int image_channels() const { return cx; }
  int height() const { return h; }
  int width() const { return w; }
  int null_class() const { return ncls; }
  void forward(const double* x, const double* t, const int* y, int B, double* out) {
    const int hw = h * w, cout = channels_out();
    ++calls;
    last_B = B;
    last_x.assign(x, x + B * cin * hw);
    last_t.assign(t, t + B);
    last_y.assign(y, y + B);
    for (int b = 0; b < B; ++b)
      for (int p = 0; p < hw; ++p) {
        double zsum = 0;
        for (int c = cx; c < cin; ++c) zsum += x[(b * cin + c) * hw + p];
        for (int o = 0; o < cout; ++o) {
          const int c = o % cin;
          const double xv = x[(b * cin + c) * hw + p];
          out[(b * cout + o) * hw + p] = (o < cin ? 0.5 : -0.2) * xv + 0.3 * zsum * (c + 1) +
                                         0.1 * (y[b] + 1) * (o + 1) + 0.01 * t[b];
        }
      }
  }
};
static_assert(Network<SpyNet>);

struct Fixture {
  SpyNet net;
  int B = 3;
  std::vector<double> x;
  std::vector<int> y{0, 2, 1};
  explicit Fixture(bool learn_sigma = false) {
    net.learn_sigma = learn_sigma;
    x.resize(B * net.cin * net.h * net.w);
    for (std::size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.9 * i + 0.3);
  }
  int nout() const { return net.channels_out() * net.h * net.w; }
  int hw() const { return net.h * net.w; }
  /// Direct forward of B rows with the given labels (or null) and z optionally zeroed.
  std::vector<double> direct(bool null_label, bool zero_z) {
    std::vector<double> in = x;
    if (zero_z)
      for (int b = 0; b < B; ++b)
        for (int e = net.cx * hw(); e < net.cin * hw(); ++e) in[b * net.cin * hw() + e] = 0;
    std::vector<int> lab(B);
    for (int b = 0; b < B; ++b) lab[b] = null_label ? net.ncls : y[b];
    std::vector<double> t(B, 500.0), out(B * nout());
    net.forward(in.data(), t.data(), lab.data(), B, out.data());
    return out;
  }
  template <class G>
  std::vector<double> guided(GuidanceOptions g, double t = 500.0) {
    GuidanceWorkspace<double> ws;
    std::vector<double> pred(B * nout());
    guided_prediction<G>(net, g, x.data(), t, y.data(), B, ws, pred.data());
    return pred;
  }
  bool is_feature(int e) const { return (e % (net.cin * hw())) >= net.cx * hw(); }
};

// Rounding: the rules are a few double ops on O(1) values; 1e-12 absolute is ~1e4 ulps.
constexpr double kTol = 1e-12;

}  // namespace

TEST(Guidance, NoGuidanceIsTheConditionalPrediction) {
  Fixture f;
  auto c = f.direct(false, false);
  auto p = f.guided<NoGuidance>({});
  EXPECT_EQ(f.net.last_B, f.B);
  EXPECT_EQ(p, c);
}

TEST(Guidance, CfgWeightOneEqualsConditional) {
  Fixture f;
  auto c = f.direct(false, false);
  for (auto p : {f.guided<CFG<VaeOnly>>({.cfg_scale = 1.0}), f.guided<CFG<Joint>>({.cfg_scale = 1.0})})
    for (std::size_t k = 0; k < c.size(); ++k) EXPECT_NEAR(p[k], c[k], kTol);
}

TEST(Guidance, CfgVaeOnlyKeepsFeatureChannelsConditional) {
  Fixture f;
  auto c = f.direct(false, false), u = f.direct(true, false);
  auto p = f.guided<CFG<VaeOnly>>({.cfg_scale = 3.0});
  // one forward of 2B rows: [(y, z_t) | (null, z_t)], same x and z in both halves
  ASSERT_EQ(f.net.last_B, 2 * f.B);
  const int nin = f.net.cin * f.hw();
  for (int b = 0; b < f.B; ++b) {
    EXPECT_EQ(f.net.last_y[b], f.y[b]);
    EXPECT_EQ(f.net.last_y[f.B + b], f.net.ncls);
    for (int e = 0; e < nin; ++e) EXPECT_EQ(f.net.last_x[(f.B + b) * nin + e], f.x[b * nin + e]);
  }
  int guided = 0;
  for (std::size_t k = 0; k < c.size(); ++k) {
    if (f.is_feature(int(k))) {
      EXPECT_EQ(p[k], c[k]) << k;  // bit-identical conditional prediction
    } else {
      EXPECT_NEAR(p[k], u[k] + 3.0 * (c[k] - u[k]), kTol) << k;
      guided += std::fabs(p[k] - c[k]) > 1e-6;
    }
  }
  EXPECT_GT(guided, 0);
  auto pj = f.guided<CFG<Joint>>({.cfg_scale = 3.0});
  for (std::size_t k = 0; k < c.size(); ++k) EXPECT_NEAR(pj[k], u[k] + 3.0 * (c[k] - u[k]), kTol);
}

TEST(Guidance, RepGuidanceZeroesNoisyZOfTheUnconditionalBranch) {
  Fixture f;
  auto c = f.direct(false, false), e0 = f.direct(false, true);
  auto p = f.guided<RepGuidance>({.rg_scale = 1.5});
  ASSERT_EQ(f.net.last_B, 2 * f.B);
  const int nin = f.net.cin * f.hw(), nx = f.net.cx * f.hw();
  for (int b = 0; b < f.B; ++b) {
    EXPECT_EQ(f.net.last_y[b], f.y[b]);
    EXPECT_EQ(f.net.last_y[f.B + b], f.y[b]);  // same label: RG is not CFG
    for (int e = 0; e < nin; ++e) {
      EXPECT_EQ(f.net.last_x[b * nin + e], f.x[b * nin + e]);
      EXPECT_EQ(f.net.last_x[(f.B + b) * nin + e], e < nx ? f.x[b * nin + e] : 0.0);
    }
  }
  for (std::size_t k = 0; k < c.size(); ++k) EXPECT_NEAR(p[k], e0[k] + 1.5 * (c[k] - e0[k]), kTol);
}

TEST(Guidance, CombinedRuleReducesToEachPart) {
  for (bool joint : {false, true}) {
    Fixture f;
    auto c = f.direct(false, false), u = f.direct(true, false), e0 = f.direct(false, true);
    auto both = [&](GuidanceOptions g) {
      return joint ? f.guided<Combine<CFG<Joint>, RepGuidance>>(g) : f.guided<Combine<RepGuidance, CFG<VaeOnly>>>(g);
    };
    auto cfg = [&](GuidanceOptions g) { return joint ? f.guided<CFG<Joint>>(g) : f.guided<CFG<VaeOnly>>(g); };
    // w_r = 1 -> CFG alone ; w = 1 -> RG alone
    auto p1 = both({.cfg_scale = 2.4, .rg_scale = 1.0}), q1 = cfg({.cfg_scale = 2.4});
    auto p2 = both({.cfg_scale = 1.0, .rg_scale = 1.7}), q2 = f.guided<RepGuidance>({.rg_scale = 1.7});
    for (std::size_t k = 0; k < c.size(); ++k) {
      EXPECT_NEAR(p1[k], q1[k], kTol) << k;
      EXPECT_NEAR(p2[k], q2[k], kTol) << k;
    }
    // general weights: 3 branches [(y,z) | (null,z) | (y,0)] and the documented rule
    auto p = both({.cfg_scale = 2.0, .rg_scale = 1.5});
    ASSERT_EQ(f.net.last_B, 3 * f.B);
    for (int b = 0; b < f.B; ++b) {
      EXPECT_EQ(f.net.last_y[f.B + b], f.net.ncls);
      EXPECT_EQ(f.net.last_y[2 * f.B + b], f.y[b]);
    }
    for (std::size_t k = 0; k < c.size(); ++k) {
      const bool cfg_here = joint || !f.is_feature(int(k));
      const double want = c[k] + (cfg_here ? 1.0 * (c[k] - u[k]) : 0.0) + 0.5 * (c[k] - e0[k]);
      EXPECT_NEAR(p[k], want, kTol) << k;
    }
  }
}

TEST(Guidance, IntervalUsesConditionalOutside) {
  Fixture f;
  auto c = f.direct(false, false);
  GuidanceOptions g{.cfg_scale = 4.0, .rg_scale = 2.0, .interval_lo = 100, .interval_hi = 400};
  auto out = f.guided<Combine<CFG<VaeOnly>, RepGuidance>>(g, 500.0);
  EXPECT_EQ(f.net.last_B, f.B);  // only the conditional rows are evaluated
  EXPECT_EQ(out, c);
  auto in = f.guided<Combine<CFG<VaeOnly>, RepGuidance>>(g, 400.0);  // inclusive bound
  EXPECT_EQ(f.net.last_B, 3 * f.B);
  EXPECT_NE(in, c);
}

TEST(Guidance, LearnedSigmaKeepsConditionalVariance) {
  Fixture f(true);
  auto c = f.direct(false, false), u = f.direct(true, false);
  auto p = f.guided<CFG<Joint>>({.cfg_scale = 2.5});
  const int cin = f.net.cin, hw = f.hw(), cout = 2 * cin;
  for (int b = 0; b < f.B; ++b)
    for (int o = 0; o < cout; ++o)
      for (int q = 0; q < hw; ++q) {
        const int k = (b * cout + o) * hw + q;
        if (o >= cin) {
          EXPECT_EQ(p[k], c[k]);
        } else {
          EXPECT_NEAR(p[k], u[k] + 2.5 * (c[k] - u[k]), kTol);
        }
      }
}

TEST(Guidance, SamplerWithUnitWeightsMatchesUnguided) {
  // A whole SDE run with w = 1 and w_r = 1 reproduces the unguided samples (up to the
  // rounding of u + 1*(c - u) vs c, amplified over 30 steps: 1e-9 relative).
  Fixture f;
  const int B = 4, n = B * f.net.cin * f.hw();
  std::vector<int> y{0, 1, 2, 0};
  std::vector<double> a(n), b(n), c(n);
  SampleRequest req{.B = B, .labels = y.data(), .seed = 9};
  SdeEulerMaruyama::Options so{.num_steps = 30};
  sample<SdeEulerMaruyama>(f.net, a.data(), req, so);
  sample<SdeEulerMaruyama, Combine<CFG<VaeOnly>, RepGuidance>>(f.net, b.data(), req, so, {});
  for (int k = 0; k < n; ++k) EXPECT_NEAR(a[k], b[k], 1e-9 * (1 + std::fabs(a[k])));
  sample<SdeEulerMaruyama, CFG<VaeOnly>>(f.net, c.data(), req, so, {.cfg_scale = 4.0});
  EXPECT_NE(a, c);
  // and a real guidance weight changes the image channels
  double dx = 0;
  for (int s = 0; s < B; ++s)
    for (int e = 0; e < f.net.cx * f.hw(); ++e) dx += std::fabs(a[s * f.net.cin * f.hw() + e] - c[s * f.net.cin * f.hw() + e]);
  EXPECT_GT(dx, 1e-3);
}

static_assert(GuidancePolicy<NoGuidance> && GuidancePolicy<CFG<VaeOnly>> && GuidancePolicy<RepGuidance> &&
              GuidancePolicy<Combine<CFG<Joint>, RepGuidance>>);
static_assert(Combine<RepGuidance, CFG<VaeOnly>>::branches == 3 && !Combine<RepGuidance, CFG<VaeOnly>>::guide_features);
