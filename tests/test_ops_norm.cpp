// Tests for LayerNorm, adaLN modulation, gated residuals, softmax and activations.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "gradcheck.hpp"
#include "redi/ops/activation.hpp"
#include "redi/ops/elementwise.hpp"
#include "redi/ops/layernorm.hpp"
#include "redi/ops/modulate.hpp"
#include "redi/ops/softmax.hpp"

using namespace redi;
using namespace redi::test;

constexpr double kTol = 1e-6;

// ---------------------------------------------------------------- LayerNorm
TEST(LayerNorm, ForwardMatchesDefinition) {
  const int rows = 3, C = 10;
  auto x = uniform<double>(rows * C, 1, -3, 5);
  std::vector<double> y(rows * C), mean(rows), rstd(rows);
  ops::layernorm_forward<double>(cpu, y.data(), mean.data(), rstd.data(), x.data(), rows, C);
  for (int r = 0; r < rows; ++r) {
    double m = 0, v = 0;
    for (int c = 0; c < C; ++c) m += x[r * C + c];
    m /= C;
    for (int c = 0; c < C; ++c) v += (x[r * C + c] - m) * (x[r * C + c] - m);
    v /= C;  // biased
    const double rs = 1 / std::sqrt(v + 1e-6);
    EXPECT_NEAR(mean[r], m, 1e-14);
    EXPECT_NEAR(rstd[r], rs, 1e-12);
    for (int c = 0; c < C; ++c) EXPECT_NEAR(y[r * C + c], (x[r * C + c] - m) * rs, 1e-12);
  }
}

TEST(LayerNorm, LargeOffsetIsStableInFloat) {
  // Two-pass variance: a large common offset must not destroy the variance in float.
  const int C = 256;
  auto base = uniform<double>(C, 2);
  std::vector<float> x(C), y(C), ref(C);
  std::vector<double> xd(C), yd(C);
  for (int c = 0; c < C; ++c) {
    x[c] = float(1000.0 + base[c]);
    xd[c] = double(x[c]);
  }
  float m, rs;
  double md, rsd;
  ops::layernorm_forward<float>(cpu, y.data(), &m, &rs, x.data(), 1, C);
  ops::layernorm_forward<double>(cpu, yd.data(), &md, &rsd, xd.data(), 1, C);
  EXPECT_LT(max_scaled_diff(y, yd), 1e-3);
  EXPECT_NEAR(rs, rsd, 1e-3 * rsd);
}

TEST(LayerNorm, GradCheck) {
  const int rows = 4, C = 9;
  auto x = uniform<double>(rows * C, 3, -2, 2), w = uniform<double>(rows * C, 4);
  std::vector<double> y(rows * C), mean(rows), rstd(rows);
  auto loss = [&] {
    ops::layernorm_forward<double>(cpu, y.data(), mean.data(), rstd.data(), x.data(), rows, C);
    return weighted_sum(w.data(), y.data(), y.size());
  };
  loss();
  std::vector<double> dx(x.size(), std::nan(""));
  ops::layernorm_backward<double>(cpu, dx.data(), w.data(), x.data(), mean.data(), rstd.data(),
                                  rows, C);
  auto r = grad_check(loss, x.data(), x.size(), dx.data());
  EXPECT_LT(r.max_rel, kTol) << r.str();
}

TEST(LayerNorm, FloatMatchesDoubleLarge) {
  const int rows = 300, C = 384;
  auto x = normal<double>(rows * C, 5), g = normal<double>(rows * C, 6);
  auto xf = cast<float>(x), gf = cast<float>(g);
  std::vector<double> y(x.size()), dx(x.size()), m(rows), rs(rows);
  std::vector<float> yf(x.size()), dxf(x.size()), mf(rows), rsf(rows);
  ops::layernorm_forward<double>(cpu, y.data(), m.data(), rs.data(), x.data(), rows, C);
  ops::layernorm_forward<float>(cpu, yf.data(), mf.data(), rsf.data(), xf.data(), rows, C);
  ops::layernorm_backward<double>(cpu, dx.data(), g.data(), x.data(), m.data(), rs.data(), rows, C);
  ops::layernorm_backward<float>(cpu, dxf.data(), gf.data(), xf.data(), mf.data(), rsf.data(),
                                 rows, C);
  EXPECT_LT(max_scaled_diff(yf, y), 1e-5);
  EXPECT_LT(max_scaled_diff(dxf, dx), 1e-5);
}

// The DiT block's dh += LN'(...) in one pass: exactly layernorm_backward followed by add_inplace
// (the same expression, then one addition; the build has -ffp-contract=off), in float and double.
template <class T>
void check_ln_backward_accumulate() {
  const int rows = 37, C = 72;  // more rows x C than one OpenMP chunk threshold would split oddly
  auto x = cast<T>(normal<double>(rows * C, 7)), g = cast<T>(normal<double>(rows * C, 8));
  auto acc = cast<T>(normal<double>(rows * C, 9));
  std::vector<T> y(x.size()), m(rows), rs(rows), din(x.size()), ref = acc;
  ops::layernorm_forward<T>(cpu, y.data(), m.data(), rs.data(), x.data(), rows, C);
  ops::layernorm_backward<T>(cpu, din.data(), g.data(), x.data(), m.data(), rs.data(), rows, C);
  ops::add_inplace<T>(cpu, ref.data(), din.data(), std::int64_t(ref.size()));
  ops::layernorm_backward_accumulate<T>(cpu, acc.data(), g.data(), x.data(), m.data(), rs.data(), rows, C);
  for (std::size_t i = 0; i < acc.size(); ++i) ASSERT_EQ(acc[i], ref[i]) << "element " << i;
}

TEST(LayerNorm, BackwardAccumulateIsBackwardThenAdd) {
  check_ln_backward_accumulate<float>();
  check_ln_backward_accumulate<double>();
}

// ---------------------------------------------------------------- modulate / gated residual
TEST(Modulate, ForwardAndGradCheck) {
  const int B = 2, L = 3, C = 5, ms = 6 * C;  // vectors inside an adaLN-like [B, 6C] buffer
  auto x = uniform<double>(B * L * C, 1), mod = uniform<double>(B * ms, 2),
       w = uniform<double>(B * L * C, 3);
  double* shift = mod.data() + 3 * C;  // chunk offsets as the model uses them
  double* scale = mod.data() + 4 * C;
  std::vector<double> y(x.size());
  auto loss = [&] {
    ops::modulate_forward<double>(cpu, y.data(), x.data(), shift, scale, B, L, C, ms);
    return weighted_sum(w.data(), y.data(), y.size());
  };
  loss();
  for (int b = 0; b < B; ++b)
    for (int l = 0; l < L; ++l)
      for (int c = 0; c < C; ++c) {
        const int i = (b * L + l) * C + c;
        EXPECT_NEAR(y[i], x[i] * (1 + scale[b * ms + c]) + shift[b * ms + c], 1e-15);
      }
  // Gradients: dx overwritten; dshift/dscale overwritten at b*ms + c inside a [B, 6C] buffer
  // whose other entries must stay untouched.
  std::vector<double> dx(x.size(), std::nan("")), dmod(mod.size(), 7.0);
  ops::modulate_backward<double>(cpu, dx.data(), dmod.data() + 3 * C, dmod.data() + 4 * C,
                                 w.data(), x.data(), scale, B, L, C, ms);
  for (int b = 0; b < B; ++b)
    for (int k = 0; k < ms; ++k)
      if (k < 3 * C || k >= 5 * C) {
        EXPECT_EQ(dmod[b * ms + k], 7.0);
      }
  for (double& v : dmod)
    if (v == 7.0) v = 0;  // the untouched chunks have zero true gradient
  auto rx = grad_check(loss, x.data(), x.size(), dx.data());
  auto rm = grad_check(loss, mod.data(), mod.size(), dmod.data());
  EXPECT_LT(rx.max_rel, kTol) << rx.str();
  EXPECT_LT(rm.max_rel, kTol) << rm.str();
}

TEST(Modulate, NullGradsAndLargeFloat) {
  // Large C (several column blocks) and a parallel-sized problem; compare float to double.
  const int B = 3, L = 64, C = 600, ms = 2 * C;
  auto x = normal<double>(B * L * C, 1), mod = normal<double>(B * ms, 2),
       g = normal<double>(B * L * C, 3);
  std::vector<double> y(x.size()), dx(x.size()), dmod(mod.size());
  ops::modulate_forward<double>(cpu, y.data(), x.data(), mod.data(), mod.data() + C, B, L, C, ms);
  ops::modulate_backward<double>(cpu, dx.data(), dmod.data(), dmod.data() + C, g.data(), x.data(),
                                 mod.data() + C, B, L, C, ms);
  auto xf = cast<float>(x), modf = cast<float>(mod), gf = cast<float>(g);
  std::vector<float> yf(x.size()), dmodf(mod.size(), 0.f);
  ops::modulate_forward<float>(cpu, yf.data(), xf.data(), modf.data(), modf.data() + C, B, L, C,
                               ms);
  ops::modulate_backward<float>(cpu, nullptr, nullptr, dmodf.data() + C, gf.data(), xf.data(),
                                modf.data() + C, B, L, C, ms);
  EXPECT_LT(max_scaled_diff(yf, y), 1e-6);
  for (int b = 0; b < B; ++b)
    for (int c = 0; c < C; ++c) {
      EXPECT_EQ(dmodf[b * ms + c], 0.f);  // dshift null: skipped
      EXPECT_NEAR(dmodf[b * ms + C + c], dmod[b * ms + C + c], 1e-4);
    }
  // dshift = sum over L of dout.
  for (int c = 0; c < C; c += 97) {
    double s = 0;
    for (int l = 0; l < L; ++l) s += g[(1 * L + l) * C + c];
    EXPECT_NEAR(dmod[1 * ms + c], s, 1e-12);
  }
}

TEST(GatedResidual, ForwardAndGradCheck) {
  const int B = 2, L = 4, C = 3, ms = 6 * C;
  auto x0 = uniform<double>(B * L * C, 1), y = uniform<double>(B * L * C, 2),
       mod = uniform<double>(B * ms, 3), w = uniform<double>(B * L * C, 4);
  double* gate = mod.data() + 2 * C;
  std::vector<double> x(x0.size());
  auto loss = [&] {
    x = x0;
    ops::gated_residual_forward<double>(cpu, x.data(), y.data(), gate, B, L, C, ms);
    return weighted_sum(w.data(), x.data(), x.size());
  };
  loss();
  for (int b = 0; b < B; ++b)
    for (int i = 0; i < L * C; ++i)
      EXPECT_NEAR(x[b * L * C + i], x0[b * L * C + i] + gate[b * ms + i % C] * y[b * L * C + i],
                  1e-15);
  std::vector<double> dy(y.size(), std::nan("")), dmod(mod.size(), 0.0);
  ops::gated_residual_backward<double>(cpu, dy.data(), dmod.data() + 2 * C, w.data(), y.data(),
                                       gate, B, L, C, ms);
  auto ry = grad_check(loss, y.data(), y.size(), dy.data());
  auto rm = grad_check(loss, mod.data(), mod.size(), dmod.data());
  EXPECT_LT(ry.max_rel, kTol) << ry.str();
  EXPECT_LT(rm.max_rel, kTol) << rm.str();
  // dgate is overwritten, not accumulated.
  std::vector<double> dmod2(mod.size(), 5.0);
  ops::gated_residual_backward<double>(cpu, nullptr, dmod2.data() + 2 * C, w.data(), y.data(),
                                       gate, B, L, C, ms);
  for (int b = 0; b < B; ++b)
    for (int c = 0; c < C; ++c) EXPECT_EQ(dmod2[b * ms + 2 * C + c], dmod[b * ms + 2 * C + c]);
}

// ---------------------------------------------------------------- softmax
TEST(Softmax, RowsSumToOneAndShiftInvariant) {
  const int rows = 5, cols = 17;
  auto x = uniform<double>(rows * cols, 1, -30, 30);
  std::vector<double> p(x.size()), p2(x.size());
  ops::softmax_forward<double>(cpu, p.data(), x.data(), rows, cols);
  for (int r = 0; r < rows; ++r) {
    double s = 0;
    for (int c = 0; c < cols; ++c) {
      EXPECT_GE(p[r * cols + c], 0.0);
      s += p[r * cols + c];
    }
    EXPECT_NEAR(s, 1.0, 1e-14);
  }
  auto xs = x;
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) xs[r * cols + c] += 1000.0 * (r + 1);  // huge shift: no overflow
  ops::softmax_forward<double>(cpu, p2.data(), xs.data(), rows, cols);
  EXPECT_LT(max_scaled_diff(p2, p), 1e-10);
  // Against the definition.
  double s = 0;
  for (int c = 0; c < cols; ++c) s += std::exp(x[c]);
  for (int c = 0; c < cols; ++c) EXPECT_NEAR(p[c], std::exp(x[c]) / s, 1e-14);
  // In place.
  ops::softmax_forward<double>(cpu, xs.data(), xs.data(), rows, cols);
  EXPECT_LT(max_scaled_diff(xs, p), 1e-10);
}

TEST(Softmax, GradCheck) {
  const int rows = 4, cols = 6;
  auto x = uniform<double>(rows * cols, 2, -2, 2), w = uniform<double>(rows * cols, 3);
  std::vector<double> p(x.size());
  auto loss = [&] {
    ops::softmax_forward<double>(cpu, p.data(), x.data(), rows, cols);
    return weighted_sum(w.data(), p.data(), p.size());
  };
  loss();
  std::vector<double> dx(x.size(), std::nan(""));
  ops::softmax_backward<double>(cpu, dx.data(), w.data(), p.data(), rows, cols);
  auto r = grad_check(loss, x.data(), x.size(), dx.data());
  EXPECT_LT(r.max_rel, kTol) << r.str();
}

// ---------------------------------------------------------------- activations
TEST(Activation, GeluSiluValues) {
  const double xs[] = {-3.0, -0.5, 0.0, 0.7, 2.5};
  for (double x : xs) {
    double g, s;
    ops::gelu_forward<double>(cpu, &g, &x, 1);
    ops::silu_forward<double>(cpu, &s, &x, 1);
    const double ref = 0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
    EXPECT_NEAR(g, ref, 1e-15);
    EXPECT_NEAR(s, x / (1 + std::exp(-x)), 1e-15);
  }
  // Known value: gelu_tanh(1) = 0.8411919906082768 (PyTorch, approximate='tanh').
  double one = 1, g1;
  ops::gelu_forward<double>(cpu, &g1, &one, 1);
  EXPECT_NEAR(g1, 0.8411919906082768, 1e-12);
}

template <class Fwd, class Bwd>
void activation_gradcheck(Fwd fwd, Bwd bwd) {
  const int n = 40;
  auto x = uniform<double>(n, 9, -4, 4), w = uniform<double>(n, 10);
  std::vector<double> y(n);
  auto loss = [&] {
    fwd(y.data(), x.data(), n);
    return weighted_sum(w.data(), y.data(), n);
  };
  std::vector<double> dx(n, std::nan(""));
  bwd(dx.data(), w.data(), x.data(), n);
  auto r = grad_check(loss, x.data(), n, dx.data());
  EXPECT_LT(r.max_rel, kTol) << r.str();
}

TEST(Activation, GeluGradCheck) {
  activation_gradcheck(
      [](double* o, const double* i, int n) { ops::gelu_forward<double>(cpu, o, i, n); },
      [](double* d, const double* g, const double* i, int n) {
        ops::gelu_backward<double>(cpu, d, g, i, n);
      });
}

TEST(Activation, SiluGradCheck) {
  activation_gradcheck(
      [](double* o, const double* i, int n) { ops::silu_forward<double>(cpu, o, i, n); },
      [](double* d, const double* g, const double* i, int n) {
        ops::silu_backward<double>(cpu, d, g, i, n);
      });
}

TEST(Activation, FloatMatchesDoubleLarge) {
  const std::int64_t n = 100000;  // parallel path
  auto x = normal<double>(n, 1, 3), g = normal<double>(n, 2);
  auto xf = cast<float>(x), gf = cast<float>(g);
  std::vector<double> y(n), dx(n);
  std::vector<float> yf(n), dxf(n);
  ops::gelu_forward<double>(cpu, y.data(), x.data(), n);
  ops::gelu_forward<float>(cpu, yf.data(), xf.data(), n);
  ops::gelu_backward<double>(cpu, dx.data(), g.data(), x.data(), n);
  ops::gelu_backward<float>(cpu, dxf.data(), gf.data(), xf.data(), n);
  EXPECT_LT(max_scaled_diff(yf, y), 1e-6);
  EXPECT_LT(max_scaled_diff(dxf, dx), 3e-6);  // float tanh via exp: ~1e-7 absolute
  ops::silu_forward<double>(cpu, y.data(), x.data(), n);
  ops::silu_forward<float>(cpu, yf.data(), xf.data(), n);
  ops::silu_backward<double>(cpu, dx.data(), g.data(), x.data(), n);
  ops::silu_backward<float>(cpu, dxf.data(), gf.data(), xf.data(), n);
  EXPECT_LT(max_scaled_diff(yf, y), 1e-6);
  EXPECT_LT(max_scaled_diff(dxf, dx), 1e-6);
}

// ---------------------------------------------------------------- vectorised float exp / tanh
TEST(VMath, ExpF32AccuracyAndSaturation) {
  const auto ec = ops::detail::exp_clamp();
  double worst = 0;
  for (int i = 0; i <= 200000; ++i) {
    const float x = -87.0f + 175.0f * float(i) / 200000.0f;
    const double ref = std::exp(double(x));
    worst = std::max(worst, std::fabs(double(ops::detail::exp_f32(x, ec)) - ref) / ref);
  }
  EXPECT_LT(worst, 3.0e-7);  // ~2.5 ulp
  EXPECT_EQ(ops::detail::exp_f32(0.f, ec), 1.f);
  for (float x : {-88.f, -100.f, -1000.f, -1e6f, -1e20f, -3e38f, -INFINITY}) {
    const float y = ops::detail::exp_f32(x, ec);
    EXPECT_TRUE(std::isfinite(y)) << x;
    EXPECT_LT(std::fabs(y), 1e-25f) << x;
  }
  for (float x : {89.f, 100.f, 1000.f, 1e30f, INFINITY}) {
    EXPECT_GT(ops::detail::exp_f32(x, ec), 1e38f) << x;
    EXPECT_TRUE(std::isfinite(ops::detail::exp_f32(x, ec))) << x;
  }
  for (float x : {-1e30f, -50.f, -3.f, -0.1f, 0.f, 0.2f, 4.f, 60.f, 1e7f, 1e30f})
    EXPECT_NEAR(ops::detail::vtanh(x, ec), std::tanh(double(x)), 2e-7) << x;
  // NaN propagates (the non-finite-loss check relies on it) without a float->int conversion of
  // NaN, which is undefined (UBSan, tests/sanitize.sh)
  EXPECT_TRUE(std::isnan(ops::detail::exp_f32(NAN, ec)));
  EXPECT_TRUE(std::isnan(ops::detail::vtanh(NAN, ec)));
}

TEST(Softmax, FloatExtremeInputs) {
  const int cols = 8;
  std::vector<float> x = {0.f, -200.f, 50.f, -1e4f, 49.f, 3e4f, 1e-3f, -3e4f}, p(cols);
  ops::softmax_forward<float>(cpu, p.data(), x.data(), 1, cols);
  double s = 0;
  for (float v : p) {
    EXPECT_TRUE(std::isfinite(v));
    EXPECT_GE(v, 0.f);
    s += v;
  }
  EXPECT_NEAR(s, 1.0, 1e-6);
  EXPECT_NEAR(p[5], 1.f, 1e-6f);
}
