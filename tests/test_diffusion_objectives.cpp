// Tests for the DDPM schedule, respacing, the vb term and redi::JointLoss (noising, dropout,
// loss reduction, gradients) against independent derivations.
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>
#include <vector>

#include "redi/diffusion/diffusion.hpp"

using namespace redi;
using diffusion::GaussianSchedule;

namespace {

/// A linear toy network satisfying TrainableNetwork; records its inputs and dout (a spy).
/// out[b,o,p] = sum_c W[o,c] in[b,c,p] + bias[o] + tw[o] * t_b * tscale + emb[y_b, o]
template <class T>
struct LinearNet {
  using value_type = T;
  int cx, cin, cout, h, w, ncls;
  double tscale;
  std::vector<T> W, bias, tw, emb, gW, gbias, gtw, gemb;
  std::vector<T> in_, t_, last_dout;
  std::vector<int> y_;
  int B_ = 0, backward_calls = 0;

  LinearNet(int cx_, int r, bool learn_sigma, int h_, int w_, int ncls_, double tscale_)
      : cx(cx_), cin(cx_ + r), cout(learn_sigma ? 2 * (cx_ + r) : cx_ + r), h(h_), w(w_),
        ncls(ncls_), tscale(tscale_) {
    W.resize(cout * cin); bias.resize(cout); tw.resize(cout); emb.resize((ncls + 1) * cout);
    for (std::size_t i = 0; i < W.size(); ++i) W[i] = T(0.3 * std::sin(1.7 * i + 0.2));
    for (int o = 0; o < cout; ++o) { bias[o] = T(0.1 * std::cos(o)); tw[o] = T(0.05 * (o % 3 - 1)); }
    for (std::size_t i = 0; i < emb.size(); ++i) emb[i] = T(0.02 * std::sin(3.1 * i));
    zero_grad();
  }
  void zero_grad() {
    gW.assign(W.size(), T(0)); gbias.assign(cout, T(0)); gtw.assign(cout, T(0));
    gemb.assign(emb.size(), T(0));
  }
  int channels_in() const { return cin; }
  int channels_out() const { return cout; }
  int image_channels() const { return cx; }
  int height() const { return h; }
  int width() const { return w; }
  int null_class() const { return ncls; }
  void forward(const T* x, const T* t, const int* y, int B, T* out) {
    const int hw = h * w;
    B_ = B;
    in_.assign(x, x + std::size_t(B) * cin * hw);
    t_.assign(t, t + B);
    y_.assign(y, y + B);
    for (int b = 0; b < B; ++b)
      for (int o = 0; o < cout; ++o)
        for (int p = 0; p < hw; ++p) {
          double s = bias[o] + tw[o] * t[b] * tscale + emb[y[b] * cout + o];
          for (int c = 0; c < cin; ++c) s += W[o * cin + c] * x[(b * cin + c) * hw + p];
          out[(b * cout + o) * hw + p] = T(s);
        }
  }
  void backward(const T* dout) {
    const int hw = h * w;
    ++backward_calls;
    last_dout.assign(dout, dout + std::size_t(B_) * cout * hw);
    for (int b = 0; b < B_; ++b)
      for (int o = 0; o < cout; ++o)
        for (int p = 0; p < hw; ++p) {
          const T d = dout[(b * cout + o) * hw + p];
          gbias[o] += d;
          gtw[o] += d * T(t_[b] * tscale);
          gemb[y_[b] * cout + o] += d;
          for (int c = 0; c < cin; ++c) gW[o * cin + c] += d * in_[(b * cin + c) * hw + p];
        }
  }
};
static_assert(TrainableNetwork<LinearNet<double>>);
static_assert(Network<LinearNet<float>>);

/// Gaussian data: x0 [B, cx, H, W], z0 [B, r, H, W].
template <class T>
void make_data(int B, int cx, int r, int hw, std::vector<T>& x0, std::vector<T>& z0) {
  x0.resize(std::size_t(B) * cx * hw);
  z0.resize(std::size_t(B) * r * hw);
  philox::fill_normal(x0.data(), x0.size(), 99, 1);
  philox::fill_normal(z0.data(), z0.size(), 99, 2);
  for (auto& v : z0) v = T(3.0 * v + 0.5);  // PCA channels are not unit variance
}

}  // namespace

TEST(Schedule, LinearBetasAndCumprod) {
  auto s = GaussianSchedule::linear(1000);
  ASSERT_EQ(s.size(), 1000);
  EXPECT_DOUBLE_EQ(s.betas[0], 1e-4);
  EXPECT_DOUBLE_EQ(s.betas[999], 0.02);
  EXPECT_NEAR(s.betas[500], 1e-4 + 500 * (0.02 - 1e-4) / 999, 1e-17);
  // abar_T of the DDPM linear schedule is 4.036e-5 (sqrt = 0.00635), a well-known value.
  EXPECT_NEAR(s.alphas_cumprod[999], 4.036e-5, 0.01e-5);
  long double prod = 1;
  for (int i = 0; i <= 300; ++i) prod *= (1.0L - s.betas[i]);
  EXPECT_NEAR(s.alphas_cumprod[300], double(prod), 1e-14);
  EXPECT_EQ(s.alphas_cumprod_prev[0], 1.0);
}

TEST(Schedule, PosteriorCoefficientsMatchGaussianConditioning) {
  // x_{t-1} = sqrt(abar_{t-1}) x0 + sqrt(1-abar_{t-1}) e1 ; x_t = sqrt(alpha_t) x_{t-1} + sqrt(beta_t) e2
  // Conditioning the joint Gaussian on (x_t, x0): Var = (1-abar_{t-1}) beta_t / (alpha_t (1-abar_{t-1}) + beta_t),
  // mean = sqrt(abar_{t-1}) x0 + sqrt(alpha_t)(1-abar_{t-1}) / (alpha_t(1-abar_{t-1}) + beta_t) (x_t - sqrt(abar_t) x0).
  auto s = GaussianSchedule::linear(1000);
  for (int t : {1, 2, 10, 250, 999}) {
    const double ap = s.alphas_cumprod_prev[t], beta = s.betas[t], alpha = 1 - beta;
    const double denom = alpha * (1 - ap) + beta;
    const double k = std::sqrt(alpha) * (1 - ap) / denom;
    const double coef_xt = k, coef_x0 = std::sqrt(ap) - k * std::sqrt(s.alphas_cumprod[t]);
    EXPECT_NEAR(s.posterior_mean_coef2[t], coef_xt, 1e-12) << t;
    EXPECT_NEAR(s.posterior_mean_coef1[t], coef_x0, 1e-12) << t;
    EXPECT_NEAR(s.posterior_variance[t], (1 - ap) * beta / denom, 1e-15) << t;
    EXPECT_NEAR(s.posterior_log_variance_clipped[t], std::log((1 - ap) * beta / denom), 1e-10) << t;
  }
  EXPECT_EQ(s.posterior_variance[0], 0.0);
  EXPECT_EQ(s.posterior_log_variance_clipped[0], std::log(s.posterior_variance[1]));
  EXPECT_EQ(s.fixed_large_log_variance[0], std::log(s.posterior_variance[1]));
  EXPECT_EQ(s.fixed_large_log_variance[7], std::log(s.betas[7]));
}

TEST(Schedule, RespacingMatchesDirectComputation) {
  auto base = GaussianSchedule::linear(1000);
  auto use = diffusion::space_timesteps(1000, "250");
  ASSERT_EQ(use.size(), 250u);
  // Independent: round-half-even of i * 999/249 in exact rational arithmetic (no ties occur).
  for (int i = 0; i < 250; ++i) {
    const long num = 2L * i * 999 + 249, den = 2L * 249;
    EXPECT_EQ(use[i], int(num / den)) << i;
  }
  EXPECT_EQ(use.back(), 999);
  auto sp = base.respaced(use);
  ASSERT_EQ(sp.size(), 250);
  for (int i = 0; i < 250; ++i) {
    EXPECT_EQ(sp.timestep_map[i], use[i]);
    // beta_i = 1 - prod_{j in (k_{i-1}, k_i]} (1 - beta_j): product of the skipped alphas.
    long double keep = 1;
    for (int j = (i == 0 ? 0 : use[i - 1] + 1); j <= use[i]; ++j) keep *= (1.0L - base.betas[j]);
    EXPECT_NEAR(sp.betas[i], double(1 - keep), 1e-12 * std::max(1.0, double(1 - keep))) << i;
    EXPECT_NEAR(sp.alphas_cumprod[i], base.alphas_cumprod[use[i]], 1e-13) << i;
  }
  auto dd = diffusion::space_timesteps(1000, "ddim50");
  ASSERT_EQ(dd.size(), 50u);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(dd[i], 20 * i);
  auto sec = diffusion::space_timesteps(1000, "2,3");  // sections [0,500) and [500,1000)
  EXPECT_EQ(sec, (std::vector<int>{0, 499, 500, 750, 999}));
  EXPECT_EQ(diffusion::space_timesteps(1000, "").size(), 1000u);
  EXPECT_THROW(diffusion::space_timesteps(1000, "x"), Error);
}

TEST(Vb, MatchesHandComputedKlAndDecoderNll) {
  auto s = GaussianSchedule::linear(1000);
  const double x0 = 0.3, eps = -0.7, v = 0.25;
  for (int t : {5, 400}) {
    const double xt = s.sqrt_alphas_cumprod[t] * x0 + s.sqrt_one_minus_alphas_cumprod[t] * 1.1;
    // by hand: model x0 from eps, both posterior means, KL of two Gaussians in bits
    const double px0 = (xt - std::sqrt(1 - s.alphas_cumprod[t]) * eps) / std::sqrt(s.alphas_cumprod[t]);
    const double mu_true = s.posterior_mean_coef1[t] * x0 + s.posterior_mean_coef2[t] * xt;
    const double mu_model = s.posterior_mean_coef1[t] * px0 + s.posterior_mean_coef2[t] * xt;
    const double var1 = s.posterior_variance[t];
    const double frac = (v + 1) / 2;
    const double var2 = std::pow(s.betas[t], frac) * std::pow(var1, 1 - frac);
    const double kl = 0.5 * std::log(var2 / var1) + (var1 + (mu_true - mu_model) * (mu_true - mu_model)) / (2 * var2) - 0.5;
    double dv;
    EXPECT_NEAR(diffusion::vb_bits(s, t, x0, xt, eps, v, &dv), kl / std::log(2.0), 1e-9) << t;
    const double h = 1e-5;
    const double fd = (diffusion::vb_bits(s, t, x0, xt, eps, v + h, nullptr) -
                       diffusion::vb_bits(s, t, x0, xt, eps, v - h, nullptr)) / (2 * h);
    EXPECT_NEAR(dv, fd, 1e-6 * std::max(1.0, std::fabs(fd))) << t;
  }
  // t = 0: discretised Gaussian decoder, bin [x-1/255, x+1/255], tanh CDF approximation.
  const double xt = s.sqrt_alphas_cumprod[0] * x0 + s.sqrt_one_minus_alphas_cumprod[0] * 0.4;
  const double px0 = (xt - std::sqrt(1 - s.alphas_cumprod[0]) * eps) / std::sqrt(s.alphas_cumprod[0]);
  const double mean = s.posterior_mean_coef1[0] * px0 + s.posterior_mean_coef2[0] * xt;
  const double frac = (v + 1) / 2;
  const double sd = std::exp(0.5 * (frac * std::log(s.betas[0]) + (1 - frac) * std::log(s.posterior_variance[1])));
  auto cdf = [](double u) { return 0.5 * (1 + std::tanh(std::sqrt(2 / M_PI) * (u + 0.044715 * u * u * u))); };
  const double p = cdf((x0 - mean + 1 / 255.0) / sd) - cdf((x0 - mean - 1 / 255.0) / sd);
  double dv;
  EXPECT_NEAR(diffusion::vb_bits(s, 0, x0, xt, eps, v, &dv), -std::log(p) / std::log(2.0), 1e-9);
  const double h = 1e-6;
  const double fd = (diffusion::vb_bits(s, 0, x0, xt, eps, v + h, nullptr) -
                     diffusion::vb_bits(s, 0, x0, xt, eps, v - h, nullptr)) / (2 * h);
  EXPECT_NEAR(dv, fd, 1e-5 * std::max(1.0, std::fabs(fd)));
}

TEST(JointLoss, LambdaZeroGivesNoGradientToFeatureOutputs) {
  const int B = 4, cx = 2, r = 3, H = 2, W = 3, hw = H * W;
  for (bool learn_sigma : {false, true}) {
    LinearNet<double> net(cx, r, learn_sigma, H, W, 5, 1e-3);
    std::vector<double> x0, z0;
    make_data(B, cx, r, hw, x0, z0);
    JointLoss<DDPM, double> loss({.lambda_z = 0.0, .label_drop_prob = 0.0});
    std::vector<int> y{0, 1, 2, 3};
    loss(net, {.x0 = x0.data(), .z0 = z0.data(), .labels = y.data(), .B = B, .seed = 1, .step = 3});
    ASSERT_EQ(net.backward_calls, 1);
    const int cin = cx + r, cout = net.cout;
    double xnorm = 0;
    for (int b = 0; b < B; ++b)
      for (int c = 0; c < cout; ++c)
        for (int p = 0; p < hw; ++p) {
          const double d = net.last_dout[(b * cout + c) * hw + p];
          const bool feature = (c % cin) >= cx;  // eps half and variance half alike
          if (feature) {
            EXPECT_EQ(d, 0.0) << b << " " << c;
          } else {
            xnorm += d * d;
          }
        }
    EXPECT_GT(xnorm, 0.0);
  }
}

TEST(JointLoss, RepDropZeroesCleanZ) {
  const int B = 3, cx = 2, r = 2, H = 2, W = 2, hw = H * W, cin = cx + r;
  std::vector<double> x0, z0;
  make_data(B, cx, r, hw, x0, z0);
  // DDPM, p_drop = 1 (per batch): the network sees z_t = sqrt(1-abar_t) eps_z exactly.
  {
    LinearNet<double> net(cx, r, false, H, W, 2, 1e-3);
    JointLoss<DDPM, double> loss({.p_drop = 1.0});
    auto st = loss(net, {.x0 = x0.data(), .z0 = z0.data(), .B = B, .seed = 5, .step = 9});
    EXPECT_EQ(st.rep_dropped, B);
    const auto& s = loss.schedule();
    for (int b = 0; b < B; ++b) {
      const int t = int(loss.net_time()[b]);
      for (int c = 0; c < cin; ++c)
        for (int p = 0; p < hw; ++p) {
          const int e = (b * cin + c) * hw + p;
          const double clean = c < cx ? x0[(b * cx + c) * hw + p] : 0.0;
          const double want = s.sqrt_alphas_cumprod[t] * clean + s.sqrt_one_minus_alphas_cumprod[t] * loss.noise()[e];
          EXPECT_EQ(net.in_[e], want);
          if (c >= cx) {
            EXPECT_EQ(net.last_dout[e], 0.0);  // lambda_z = 0 for the dropped batch
          }
        }
    }
  }
  // Flow, paper variant (zero the noisy z): the network sees exactly 0 in the z channels.
  {
    LinearNet<double> net(cx, r, false, H, W, 2, 1.0);
    JointLoss<FlowMatching, double> loss({.p_drop = 1.0, .zero_noisy_z = true});
    loss(net, {.x0 = x0.data(), .z0 = z0.data(), .B = B, .seed = 5, .step = 9});
    for (int b = 0; b < B; ++b)
      for (int e = cx * hw; e < cin * hw; ++e) EXPECT_EQ(net.in_[b * cin * hw + e], 0.0);
  }
  // Per-sample explicit mask: only sample 1 dropped; p_drop = 0 -> nobody dropped.
  {
    LinearNet<double> net(cx, r, false, H, W, 2, 1.0);
    JointLoss<FlowMatching, double> loss({.rep_drop = RepDrop::PerSample});
    std::vector<std::uint8_t> mask{0, 1, 0};
    auto st = loss(net, {.x0 = x0.data(), .z0 = z0.data(), .B = B, .rep_drop = mask.data()});
    EXPECT_EQ(st.rep_dropped, 1);
    for (int b = 0; b < B; ++b) {
      const double t = loss.net_time()[b];
      double dz = 0;
      for (int e = cx * hw; e < cin * hw; ++e) {
        const int k = b * cin * hw + e;
        const double clean = mask[b] ? 0.0 : z0[b * r * hw + (e - cx * hw)];
        EXPECT_DOUBLE_EQ(net.in_[k], t * clean + (1 - t) * loss.noise()[k]);
        dz += std::fabs(net.last_dout[k]);
      }
      if (mask[b]) {
        EXPECT_EQ(dz, 0.0);
      } else {
        EXPECT_GT(dz, 0.0);
      }
    }
    auto st0 = loss(net, {.x0 = x0.data(), .z0 = z0.data(), .B = B});
    EXPECT_EQ(st0.rep_dropped, 0);
  }
}

TEST(JointLoss, LabelDropoutAndUnconditional) {
  const int B = 400, cx = 1, r = 1, H = 1, W = 1;
  std::vector<float> x0, z0;
  make_data(B, cx, r, 1, x0, z0);
  LinearNet<float> net(cx, r, false, H, W, 10, 1e-3);
  std::vector<int> y(B);
  for (int b = 0; b < B; ++b) y[b] = b % 10;
  JointLoss<DDPM, float> loss;  // label_drop_prob = 0.1
  auto st = loss(net, {.x0 = x0.data(), .z0 = z0.data(), .labels = y.data(), .B = B, .seed = 7});
  int nulls = 0;
  for (int b = 0; b < B; ++b) {
    if (net.y_[b] == 10) {
      ++nulls;
    } else {
      EXPECT_EQ(net.y_[b], y[b]);
    }
  }
  EXPECT_EQ(nulls, st.labels_dropped);
  // Binomial(400, 0.1): mean 40, sd 6; [16, 64] is a 4-sigma band.
  EXPECT_GE(nulls, 16);
  EXPECT_LE(nulls, 64);
  // explicit mask overrides the RNG
  std::vector<std::uint8_t> mask(B, 0);
  mask[3] = 1;
  loss(net, {.x0 = x0.data(), .z0 = z0.data(), .labels = y.data(), .B = B, .seed = 7, .label_drop = mask.data()});
  for (int b = 0; b < B; ++b) EXPECT_EQ(net.y_[b], b == 3 ? 10 : y[b]);
  // unconditional: one class, labels = nullptr -> 0, null = 1
  LinearNet<float> unc(cx, r, false, H, W, 1, 1e-3);
  JointLoss<DDPM, float> l2({.label_drop_prob = 0.0});
  l2(unc, {.x0 = x0.data(), .z0 = z0.data(), .B = B});
  for (int b = 0; b < B; ++b) EXPECT_EQ(unc.y_[b], 0);
}

TEST(JointLoss, PhiloxReproducibleAndBatchIndependent) {
  const int B = 6, cx = 2, r = 1, H = 2, W = 2, hw = H * W, cin = cx + r;
  std::vector<float> x0, z0;
  make_data(B, cx, r, hw, x0, z0);
  LinearNet<float> a(cx, r, false, H, W, 3, 1e-3), b(cx, r, false, H, W, 3, 1e-3);
  JointLoss<DDPM, float> la, lb;
  la(a, {.x0 = x0.data(), .z0 = z0.data(), .B = B, .seed = 11, .step = 70000});
  lb(b, {.x0 = x0.data(), .z0 = z0.data(), .B = B, .seed = 11, .step = 70000});
  EXPECT_EQ(a.in_, b.in_);
  EXPECT_EQ(a.t_, b.t_);
  // a different step (beyond 16 bits: folded into the key) gives different noise
  lb(b, {.x0 = x0.data(), .z0 = z0.data(), .B = B, .seed = 11, .step = 70000 + 65536});
  EXPECT_NE(a.in_, b.in_);
  // the last 2 samples drawn alone with their global indices 4, 5 get the same noise and t
  lb(b, {.x0 = x0.data() + 4 * cx * hw, .z0 = z0.data() + 4 * r * hw, .B = 2, .seed = 11,
         .step = 70000, .first_index = 4});
  for (int k = 0; k < 2 * cin * hw; ++k) EXPECT_EQ(b.in_[k], a.in_[4 * cin * hw + k]);
  EXPECT_EQ(b.t_[0], a.t_[4]);
  EXPECT_EQ(b.t_[1], a.t_[5]);
}

TEST(JointLoss, ReductionConventions) {
  // A network with all-zero parameters predicts 0: each group's loss is the mean of its
  // targets squared, the z group weighted by lambda_z.
  const int B = 3, cx = 2, r = 3, H = 2, W = 2, hw = H * W, cin = cx + r;
  std::vector<double> x0, z0;
  make_data(B, cx, r, hw, x0, z0);
  LinearNet<double> net(cx, r, false, H, W, 1, 1.0);
  std::fill(net.W.begin(), net.W.end(), 0.0); std::fill(net.bias.begin(), net.bias.end(), 0.0);
  std::fill(net.tw.begin(), net.tw.end(), 0.0); std::fill(net.emb.begin(), net.emb.end(), 0.0);
  JointLoss<FlowMatching, double> loss({.lambda_z = 0.7});
  auto st = loss(net, {.x0 = x0.data(), .z0 = z0.data(), .B = B, .seed = 2});
  double sx = 0, sz = 0;
  for (int b = 0; b < B; ++b)
    for (int e = 0; e < cin * hw; ++e) {
      const double v = loss.target()[b * cin * hw + e];
      (e < cx * hw ? sx : sz) += v * v;
    }
  EXPECT_NEAR(st.mse_x, sx / (B * cx * hw), 1e-12);
  EXPECT_NEAR(st.mse_z, sz / (B * r * hw), 1e-12);
  EXPECT_NEAR(st.loss, st.mse_x + 0.7 * st.mse_z, 1e-12);
  EXPECT_EQ(st.vb, 0.0);
}

namespace {
template <class O>
void grad_check(bool learn_sigma) {
  const int B = 5, cx = 2, r = 2, H = 2, W = 2, hw = H * W;
  std::vector<double> x0, z0;
  make_data(B, cx, r, hw, x0, z0);
  for (auto& v : x0) v *= 0.5;  // keep DDPM decoder bins away from the clamps
  LinearNet<double> net(cx, r, learn_sigma, H, W, 4, O::is_ddpm ? 1e-3 : 1.0);
  std::vector<int> y{0, 1, 2, 3, 1};
  std::vector<std::uint8_t> rep{0, 0, 1, 0, 0};  // one sample with lam = 0
  JointLoss<O, double> loss({.lambda_z = 0.7, .rep_drop = RepDrop::PerSample, .label_drop_prob = 0.3});
  typename JointLoss<O, double>::Batch batch{.x0 = x0.data(), .z0 = z0.data(), .labels = y.data(),
                                             .B = B, .seed = 3, .step = 17, .rep_drop = rep.data()};
  net.zero_grad();
  loss(net, batch);
  struct P { std::vector<double>* p; std::vector<double>* g; int rows; };
  const int cin = cx + r;
  for (P pr : {P{&net.W, &net.gW, cin}, P{&net.bias, &net.gbias, 1}, P{&net.tw, &net.gtw, 1},
               P{&net.emb, &net.gemb, 1}}) {
    for (std::size_t i = 0; i < pr.p->size(); ++i) {
      // output channel o of this parameter: eps rows (o < Cin) get d(mse)/dθ only — the vb
      // term's model mean is gradient-stopped — so compare them with the FD of loss - vb;
      // variance rows (o >= Cin) with the FD of the full loss.
      const int o = pr.p == &net.emb ? int(i % net.cout) : int(i / pr.rows);
      const bool eps_row = o < cin;
      const double h = 1e-6, keep = (*pr.p)[i];
      auto f = [&](double val) {
        (*pr.p)[i] = val;
        auto st = loss(net, batch, false);
        return eps_row ? st.loss - st.vb : st.loss;
      };
      const double fd = (f(keep + h) - f(keep - h)) / (2 * h);
      (*pr.p)[i] = keep;
      // central differences in double: truncation O(h^2) ~ 1e-12, rounding ~ 1e-16/h ~ 1e-10
      EXPECT_NEAR((*pr.g)[i], fd, 1e-7 * std::max(1.0, std::fabs(fd))) << "param " << i << " row " << o;
    }
  }
}
}  // namespace

TEST(JointLoss, FiniteDifferenceGradientDdpmLearnedSigma) { grad_check<DDPM>(true); }
TEST(JointLoss, FiniteDifferenceGradientDdpmEps) { grad_check<DDPM>(false); }
TEST(JointLoss, FiniteDifferenceGradientFlow) { grad_check<FlowMatching>(false); }
