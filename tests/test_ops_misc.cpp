// Tests for embeddings, patchify/unpatchify, fixed sin-cos tables, elementwise helpers, the
// strided copy and the optimiser (AdamW, EMA).
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "gradcheck.hpp"
#include "redi/ops/ops.hpp"

using namespace redi;
using namespace redi::test;

// ---------------------------------------------------------------- embedding
TEST(Embedding, ForwardAndScatterAddBackward) {
  const int V = 5, D = 3, N = 6;
  auto table = uniform<double>(V * D, 1), w = uniform<double>(N * D, 2);
  const std::vector<int> idx = {4, 0, 4, 2, 4, 0};  // repeats must add up
  std::vector<double> out(N * D);
  auto loss = [&] {
    ops::embedding_forward<double>(cpu, out.data(), table.data(), idx.data(), N, D);
    return weighted_sum(w.data(), out.data(), out.size());
  };
  loss();
  for (int n = 0; n < N; ++n)
    for (int d = 0; d < D; ++d) EXPECT_EQ(out[n * D + d], table[idx[n] * D + d]);
  auto g0 = uniform<double>(V * D, 3);
  auto dtable = g0;
  ops::embedding_backward<double>(cpu, dtable.data(), w.data(), idx.data(), N, D);
  for (int i = 0; i < V * D; ++i) dtable[i] -= g0[i];  // accumulated onto the old values
  for (int d = 0; d < D; ++d) {
    EXPECT_NEAR(dtable[4 * D + d], w[0 * D + d] + w[2 * D + d] + w[4 * D + d], 1e-15);
    EXPECT_EQ(dtable[1 * D + d], 0.0);
  }
  auto r = grad_check(loss, table.data(), table.size(), dtable.data());
  EXPECT_LT(r.max_rel, 1e-6) << r.str();
}

// ---------------------------------------------------------------- patchify
TEST(Patchify, MatchesIndexFormulaAndRoundTrips) {
  const int B = 2, C = 3, H = 6, W = 4, p = 2, gh = H / p, gw = W / p, L = gh * gw,
            P = C * p * p;
  auto img = uniform<double>(B * C * H * W, 1);
  std::vector<double> tok(B * L * P, std::nan("")), back(img.size(), std::nan(""));
  ops::patchify_forward<double>(cpu, tok.data(), img.data(), B, C, H, W, p);
  for (int b = 0; b < B; ++b)
    for (int gy = 0; gy < gh; ++gy)
      for (int gx = 0; gx < gw; ++gx)
        for (int c = 0; c < C; ++c)
          for (int i = 0; i < p; ++i)
            for (int j = 0; j < p; ++j)
              EXPECT_EQ(tok[(b * L + gy * gw + gx) * P + (c * p + i) * p + j],
                        img[((b * C + c) * H + p * gy + i) * W + p * gx + j]);
  ops::patchify_backward<double>(cpu, back.data(), tok.data(), B, C, H, W, p);
  EXPECT_EQ(back, img);  // a permutation: backward is its inverse
  // Gradient check (the backward is the transpose of the forward).
  auto w = uniform<double>(tok.size(), 2);
  auto loss = [&] {
    ops::patchify_forward<double>(cpu, tok.data(), img.data(), B, C, H, W, p);
    return weighted_sum(w.data(), tok.data(), tok.size());
  };
  std::vector<double> dimg(img.size(), std::nan(""));
  ops::patchify_backward<double>(cpu, dimg.data(), w.data(), B, C, H, W, p);
  EXPECT_LT(max_rel_error(loss, img.data(), img.size(), dimg.data()), 1e-6);
  EXPECT_THROW(ops::patchify_forward<double>(cpu, tok.data(), img.data(), B, C, 5, W, p), Error);
}

TEST(Unpatchify, MatchesIndexFormulaAndRoundTrips) {
  const int B = 2, C = 3, H = 4, W = 6, p = 2, gh = H / p, gw = W / p, L = gh * gw,
            P = C * p * p;
  auto tok = uniform<double>(B * L * P, 3);
  std::vector<double> img(B * C * H * W, std::nan("")), back(tok.size(), std::nan(""));
  ops::unpatchify_forward<double>(cpu, img.data(), tok.data(), B, C, H, W, p);
  for (int b = 0; b < B; ++b)
    for (int gy = 0; gy < gh; ++gy)
      for (int gx = 0; gx < gw; ++gx)
        for (int i = 0; i < p; ++i)
          for (int j = 0; j < p; ++j)
            for (int c = 0; c < C; ++c)
              EXPECT_EQ(img[((b * C + c) * H + p * gy + i) * W + p * gx + j],
                        tok[(b * L + gy * gw + gx) * P + (i * p + j) * C + c]);
  ops::unpatchify_backward<double>(cpu, back.data(), img.data(), B, C, H, W, p);
  EXPECT_EQ(back, tok);
  auto w = uniform<double>(img.size(), 4);
  auto loss = [&] {
    ops::unpatchify_forward<double>(cpu, img.data(), tok.data(), B, C, H, W, p);
    return weighted_sum(w.data(), img.data(), img.size());
  };
  std::vector<double> dtok(tok.size(), std::nan(""));
  ops::unpatchify_backward<double>(cpu, dtok.data(), w.data(), B, C, H, W, p);
  EXPECT_LT(max_rel_error(loss, tok.data(), tok.size(), dtok.data()), 1e-6);
}

TEST(Patchify, LargeFloatRoundTrip) {
  const int B = 4, C = 12, H = 32, W = 32, p = 2;  // parallel path
  auto img = uniform<float>(B * C * H * W, 5);
  std::vector<float> tok(img.size()), back(img.size()), img2(img.size());
  ops::patchify_forward<float>(cpu, tok.data(), img.data(), B, C, H, W, p);
  ops::patchify_backward<float>(cpu, back.data(), tok.data(), B, C, H, W, p);
  EXPECT_EQ(back, img);
  ops::unpatchify_forward<float>(cpu, img2.data(), tok.data(), B, C, H, W, p);
  ops::unpatchify_backward<float>(cpu, back.data(), img2.data(), B, C, H, W, p);
  EXPECT_EQ(back, tok);
}

// ---------------------------------------------------------------- fixed embeddings
TEST(PosEmbed2d, HandComputedD8Grid2x2) {
  // D = 8: w_0 = 1, w_1 = 10000^(-1/2) = 0.01. Token = row*gw + col; channels
  // [sin(col w) | cos(col w) | sin(row w) | cos(row w)].
  const double s1 = 0.8414709848078965, c1 = 0.5403023058681398, s01 = 0.009999833334166664,
               c01 = 0.9999500004166653;
  const std::vector<double> expected = {
      0,  0,   1,  1,   0,  0,   1,  1,     // row 0, col 0
      s1, s01, c1, c01, 0,  0,   1,  1,     // row 0, col 1
      0,  0,   1,  1,   s1, s01, c1, c01,   // row 1, col 0
      s1, s01, c1, c01, s1, s01, c1, c01};  // row 1, col 1
  std::vector<double> pe(32);
  ops::pos_embed_2d<double>(pe.data(), 2, 2, 8);
  for (int i = 0; i < 32; ++i) EXPECT_NEAR(pe[i], expected[i], 1e-15) << i;
  // Non-square grid: token (row 2, col 1) of a 3x4 grid, D = 16.
  std::vector<float> pf(3 * 4 * 16);
  ops::pos_embed_2d<float>(pf.data(), 3, 4, 16);
  const float* t = pf.data() + (2 * 4 + 1) * 16;
  for (int k = 0; k < 4; ++k) {
    const double w = std::pow(10000.0, -k / 4.0);
    EXPECT_NEAR(t[k], std::sin(1 * w), 1e-7);
    EXPECT_NEAR(t[4 + k], std::cos(1 * w), 1e-7);
    EXPECT_NEAR(t[8 + k], std::sin(2 * w), 1e-7);
    EXPECT_NEAR(t[12 + k], std::cos(2 * w), 1e-7);
  }
}

TEST(TimestepEmbedding, HandComputed) {
  std::vector<double> t = {0.0, 1.0};
  std::vector<double> e(2 * 4);
  ops::timestep_embedding<double>(cpu, e.data(), t.data(), 2, 4);
  // t = 0: [cos 0, cos 0, sin 0, sin 0]; t = 1: f = [1, 0.01] -> [cos 1, cos .01, sin 1, sin .01].
  const std::vector<double> expected = {1, 1, 0, 0, 0.5403023058681398, 0.9999500004166653,
                                        0.8414709848078965, 0.009999833334166664};
  for (int i = 0; i < 8; ++i) EXPECT_NEAR(e[i], expected[i], 1e-15) << i;
  // Default dim 256: t = 0 gives 128 ones then 128 zeros; k = 127 frequency for t = 500.
  std::vector<float> tf = {0.f, 500.f}, ef(2 * 256);
  ops::timestep_embedding<float>(cpu, ef.data(), tf.data(), 2);
  for (int k = 0; k < 128; ++k) {
    EXPECT_EQ(ef[k], 1.f);
    EXPECT_EQ(ef[128 + k], 0.f);
  }
  const double f127 = std::exp(-std::log(10000.0) * 127 / 128);
  EXPECT_NEAR(ef[256 + 127], std::cos(500 * f127), 1e-6);
  EXPECT_NEAR(ef[256 + 255], std::sin(500 * f127), 1e-6);
  EXPECT_NEAR(ef[256 + 0], std::cos(500.0), 1e-6);
  // Odd dim: trailing zero.
  std::vector<double> eo(5, 9.0);
  ops::timestep_embedding<double>(cpu, eo.data(), t.data() + 1, 1, 5);
  EXPECT_EQ(eo[4], 0.0);
  EXPECT_NEAR(eo[0], std::cos(1.0), 1e-15);
}

// ---------------------------------------------------------------- elementwise
TEST(Elementwise, Helpers) {
  for (std::int64_t n : {std::int64_t(7), std::int64_t(200000)}) {  // serial and parallel paths
    auto x = uniform<double>(n, 1), y = uniform<double>(n, 2);
    auto z = x;
    ops::add_inplace<double>(cpu, z.data(), y.data(), n);
    for (std::int64_t i = 0; i < n; i += 997) EXPECT_EQ(z[i], x[i] + y[i]);
    ops::scale_inplace<double>(cpu, z.data(), n, 0.5);
    for (std::int64_t i = 0; i < n; i += 997) EXPECT_EQ(z[i], 0.5 * (x[i] + y[i]));
    long double ss = 0;
    for (double v : x) ss += (long double)v * v;
    EXPECT_NEAR(ops::sum_squares<double>(cpu, x.data(), n), double(ss), 1e-12 * double(ss));
    auto xf = cast<float>(x);
    EXPECT_NEAR(ops::sum_squares<float>(cpu, xf.data(), n), double(ss), 1e-6 * double(ss));
  }
  const std::int64_t outer = 500, inner = 300;
  auto x = uniform<double>(outer * inner, 3), row = uniform<double>(inner, 4);
  auto z = x;
  ops::add_broadcast<double>(cpu, z.data(), row.data(), outer, inner);
  for (std::int64_t o = 0; o < outer; o += 7)
    for (std::int64_t i = 0; i < inner; i += 11)
      EXPECT_EQ(z[o * inner + i], x[o * inner + i] + row[i]);
}

// ---------------------------------------------------------------- copies
TEST(CopyStrided, MovesABlockOfRowsBetweenStridedLayouts) {
  // rows of 3 elements from a layout with stride 5 into one with stride 4 (the rest untouched)
  std::vector<int> src(4 * 5), dst(4 * 4, -1);
  for (std::size_t i = 0; i < src.size(); ++i) src[i] = int(i);
  ops::copy_strided(cpu, dst.data() + 1, 4, src.data() + 2, 5, 4, 3);
  for (int r = 0; r < 4; ++r) {
    EXPECT_EQ(dst[std::size_t(r * 4)], -1);
    for (int c = 0; c < 3; ++c) EXPECT_EQ(dst[std::size_t(r * 4 + 1 + c)], r * 5 + 2 + c) << r << "," << c;
  }
  ops::copy_strided(cpu, dst.data(), 4, src.data(), 5, 0, 3);  // no rows: nothing happens
  EXPECT_EQ(dst[0], -1);
}

// ---------------------------------------------------------------- optimiser
TEST(AdamW, TwoStepTrajectoryByHand) {
  // lr 0.1, betas (0.9, 0.999), eps 1e-8, weight decay 0.1 (PyTorch torch.optim.AdamW).
  // Element 0, g = 0.5 then -0.25:
  //   step 1: p = 1 * (1 - 0.01) = 0.99 ; m = 0.05 ; v = 0.00025 ; bias corr. 0.1, 0.001
  //           p -= (0.1 / 0.1) * 0.05 / (sqrt(0.00025) / sqrt(0.001) + 1e-8) = 0.05 / 0.50000001
  //           -> 0.890000002
  //   step 2: p = 0.890000002 * 0.99 ; m = 0.02 ; v = 0.00031225 ; bias corr. 0.19, 0.001999
  //           p -= (0.1 / 0.19) * 0.02 / (sqrt(0.00031225 / 0.001999) + 1e-8) -> 0.854466298687846
  // Element 1, g = 0: only the decoupled decay acts: 2 * 0.99^2 = 1.9602.
  redi::ops::AdamWConfig cfg;
  cfg.lr = 0.1;
  cfg.weight_decay = 0.1;
  std::vector<double> p = {1.0, 2.0, -0.5}, m(3, 0.0), v(3, 0.0);
  const std::vector<double> g1 = {0.5, 0.0, 3.0}, g2 = {-0.25, 0.0, 1e-3};
  ops::adamw_step<double>(cpu, p.data(), g1.data(), m.data(), v.data(), 3, cfg, 1);
  EXPECT_NEAR(p[0], 0.890000002, 1e-15);
  EXPECT_NEAR(p[1], 1.98, 1e-15);
  EXPECT_NEAR(p[2], -0.5949999996666666, 1e-15);
  EXPECT_NEAR(m[0], 0.05, 1e-16);
  EXPECT_NEAR(v[0], 0.00025, 1e-17);
  ops::adamw_step<double>(cpu, p.data(), g2.data(), m.data(), v.data(), 3, cfg, 2);
  EXPECT_NEAR(p[0], 0.8544662986878463, 1e-14);
  EXPECT_NEAR(p[1], 1.9602, 1e-14);
  EXPECT_NEAR(p[2], -0.6560806380123128, 1e-14);
  // Float follows the same trajectory.
  std::vector<float> pf = {1.f, 2.f, -0.5f}, mf(3, 0.f), vf(3, 0.f);
  auto g1f = cast<float>(g1), g2f = cast<float>(g2);
  ops::adamw_step<float>(cpu, pf.data(), g1f.data(), mf.data(), vf.data(), 3, cfg, 1);
  ops::adamw_step<float>(cpu, pf.data(), g2f.data(), mf.data(), vf.data(), 3, cfg, 2);
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(pf[i], p[i], 1e-6);
}

TEST(AdamW, LargeParallelMatchesSmall) {
  const std::int64_t n = 100000;
  auto p = normal<float>(n, 1), g = normal<float>(n, 2);
  std::vector<float> m(n, 0.f), v(n, 0.f);
  auto p1 = p;
  std::vector<float> m1(n, 0.f), v1(n, 0.f);
  redi::ops::AdamWConfig cfg;
  cfg.weight_decay = 0.01;
  for (int s = 1; s <= 3; ++s) {
    ops::adamw_step<float>(cpu, p.data(), g.data(), m.data(), v.data(), n, cfg, s);
    for (std::int64_t i = 0; i < n; i += 4096)  // one element at a time (serial path)
      ops::adamw_step<float>(cpu, &p1[i], &g[i], &m1[i], &v1[i], 1, cfg, s);
  }
  for (std::int64_t i = 0; i < n; i += 4096) EXPECT_EQ(p[i], p1[i]);
}

TEST(Ema, Update) {
  std::vector<double> ema = {1, 2}, param = {3, 4};
  ops::ema_update<double>(cpu, ema.data(), param.data(), 2, 0.9);
  EXPECT_NEAR(ema[0], 1.2, 1e-15);
  EXPECT_NEAR(ema[1], 2.2, 1e-15);
  ops::ema_update<double>(cpu, ema.data(), param.data(), 2, 0.0);  // decay 0: copy
  EXPECT_EQ(ema, param);
  std::vector<float> ef(100000, 1.f), pf(100000, 3.f);
  ops::ema_update<float>(cpu, ef.data(), pf.data(), 100000, 0.75);
  for (int i = 0; i < 100000; i += 999) EXPECT_FLOAT_EQ(ef[i], 1.5f);
}
