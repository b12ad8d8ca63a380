// Tests for the forward ops of the SD-VAE (redi/ops/group_norm.hpp, upsample.hpp, pad2d.hpp and
// the asymmetric-pad convolution of conv2d.hpp): GroupNorm against direct loops in long double
// (with and without the fused SiLU, null affine, in place), nearest 2x upsampling and padding
// against their index formulas, and the (0, 1, 0, 1)-padded stride-2 convolution against
// pad2d followed by an unpadded convolution, through Backend<Cpu>.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "gradcheck.hpp"
#include "redi/ops/cpu_backend.hpp"

using namespace redi;
using namespace redi::test;
using ops::Conv2dGeometry;

namespace {

template <class T>
std::vector<T> ref_group_norm(const std::vector<T>& x, const std::vector<T>& ga, const std::vector<T>& be, int B,
                              int C, int P, int G, double eps, bool silu) {
  std::vector<T> y(x.size());
  const int cg = C / G;
  for (int b = 0; b < B; ++b)
    for (int g = 0; g < G; ++g) {
      long double s = 0, ss = 0;
      for (int c = g * cg; c < (g + 1) * cg; ++c)
        for (int p = 0; p < P; ++p) s += x[(std::size_t(b) * C + c) * P + p];
      const long double mu = s / (cg * P);
      for (int c = g * cg; c < (g + 1) * cg; ++c)
        for (int p = 0; p < P; ++p) {
          const long double d = x[(std::size_t(b) * C + c) * P + p] - mu;
          ss += d * d;
        }
      const long double rs = 1.0L / std::sqrt(ss / (cg * P) + eps);
      for (int c = g * cg; c < (g + 1) * cg; ++c)
        for (int p = 0; p < P; ++p) {
          const std::size_t i = (std::size_t(b) * C + c) * P + p;
          long double v = (x[i] - mu) * rs * (ga.empty() ? 1.0L : ga[c]) + (be.empty() ? 0.0L : be[c]);
          if (silu) v = v / (1.0L + std::exp(-v));
          y[i] = T(v);
        }
    }
  return y;
}

template <class T>
double max_rel(const std::vector<T>& a, const std::vector<T>& b) {
  double m = 0;
  for (std::size_t i = 0; i < a.size(); ++i)
    m = std::max(m, std::abs(double(a[i]) - double(b[i])) / (1.0 + std::abs(double(b[i]))));
  return m;
}

template <class T>
class VaeOps : public ::testing::Test {};
using Types = ::testing::Types<float, double>;
TYPED_TEST_SUITE(VaeOps, Types);

TYPED_TEST(VaeOps, GroupNormMatchesDirectLoops) {
  using T = TypeParam;
  const double tol = std::is_same_v<T, float> ? 2e-6 : 1e-12;
  struct Case { int B, C, P, G; };
  for (const Case cs : {Case{2, 64, 49, 32}, Case{3, 12, 17, 4}, Case{1, 32, 1, 32}, Case{2, 6, 300, 1}}) {
    const std::size_t n = std::size_t(cs.B) * cs.C * cs.P;
    auto x = normal<T>(n, 11 + cs.C, 1.5);
    for (auto& v : x) v += T(3);  // a mean far from 0 (the two-pass variance matters)
    auto ga = normal<T>(cs.C, 12), be = normal<T>(cs.C, 13);
    for (bool silu : {false, true}) {
      std::vector<T> y(n);
      Backend<Cpu>::group_norm_forward(cpu, y.data(), x.data(), ga.data(), be.data(), cs.B, cs.C, cs.P, cs.G, 1e-6,
                                       silu);
      EXPECT_LT(max_rel(y, ref_group_norm(x, ga, be, cs.B, cs.C, cs.P, cs.G, 1e-6, silu)), tol)
          << "C=" << cs.C << " G=" << cs.G << " silu=" << silu;
      auto z = x;  // in place
      ops::group_norm_forward(cpu, z.data(), z.data(), ga.data(), be.data(), cs.B, cs.C, cs.P, cs.G, 1e-6, silu);
      EXPECT_EQ(z, y) << "in place";
    }
    std::vector<T> y(n);  // no affine: per group, mean 0 and variance var/(var+eps)
    ops::group_norm_forward(cpu, y.data(), x.data(), (const T*)nullptr, (const T*)nullptr, cs.B, cs.C, cs.P, cs.G,
                            1e-6);
    EXPECT_LT(max_rel(y, ref_group_norm(x, {}, {}, cs.B, cs.C, cs.P, cs.G, 1e-6, false)), tol);
  }
  std::vector<T> y(10), x(10);
  EXPECT_THROW(ops::group_norm_forward(cpu, y.data(), x.data(), (const T*)nullptr, (const T*)nullptr, 1, 10, 1, 4,
                                       1e-6),
               Error);
}

TYPED_TEST(VaeOps, UpsampleAndPadIndexFormulas) {
  using T = TypeParam;
  const int B = 2, C = 3, H = 5, W = 7;
  const auto x = normal<T>(std::size_t(B) * C * H * W, 21);
  std::vector<T> up(std::size_t(B) * C * 4 * H * W);
  Backend<Cpu>::upsample_nearest2x_forward(cpu, up.data(), x.data(), B, C, H, W);
  for (int p = 0; p < B * C; ++p)
    for (int y = 0; y < 2 * H; ++y)
      for (int xx = 0; xx < 2 * W; ++xx)
        ASSERT_EQ(up[(std::size_t(p) * 2 * H + y) * 2 * W + xx], x[(std::size_t(p) * H + y / 2) * W + xx / 2]);
  const int t = 1, bo = 2, l = 0, r = 3, OH = H + t + bo, OW = W + l + r;
  std::vector<T> pd(std::size_t(B) * C * OH * OW, T(7));
  Backend<Cpu>::pad2d_forward(cpu, pd.data(), x.data(), B, C, H, W, t, bo, l, r);
  for (int p = 0; p < B * C; ++p)
    for (int y = 0; y < OH; ++y)
      for (int xx = 0; xx < OW; ++xx) {
        const int iy = y - t, ix = xx - l;
        const T want = (iy >= 0 && iy < H && ix >= 0 && ix < W) ? x[(std::size_t(p) * H + iy) * W + ix] : T(0);
        ASSERT_EQ(pd[(std::size_t(p) * OH + y) * OW + xx], want);
      }
}

TYPED_TEST(VaeOps, AsymmetricPadConvEqualsPadThenConv) {
  using T = TypeParam;
  const int B = 2, C = 5, OC = 4, H = 8, W = 6;
  const Conv2dGeometry g{C, OC, 3, 3, 2, 2, 0, 1, 0, 1};  // the SD-VAE downsampler
  ASSERT_EQ(g.out_h(H), H / 2);
  ASSERT_EQ(g.out_w(W), W / 2);
  const auto x = normal<T>(std::size_t(B) * C * H * W, 31);
  const auto w = normal<T>(g.weight_elems(), 32, 0.3), b = normal<T>(OC, 33);
  std::vector<T> y(std::size_t(B) * OC * (H / 2) * (W / 2)), y2(y.size());
  std::vector<T> scratch(Backend<Cpu>::conv2d_scratch_elems(g, H, W, B));
  Backend<Cpu>::conv2d_forward(cpu, y.data(), x.data(), w.data(), b.data(), B, H, W, g, scratch.data(),
                               std::int64_t(scratch.size()));
  std::vector<T> xp(std::size_t(B) * C * (H + 1) * (W + 1));
  ops::pad2d_forward(cpu, xp.data(), x.data(), B, C, H, W, 0, 1, 0, 1);
  const Conv2dGeometry g0{C, OC, 3, 3, 2, 2, 0, 0, 0, 0};
  std::vector<T> s0(ops::conv2d_scratch_elems(g0, H + 1, W + 1, B));
  ops::conv2d_forward(cpu, y2.data(), xp.data(), w.data(), b.data(), B, H + 1, W + 1, g0, s0.data(),
                      std::int64_t(s0.size()));
  EXPECT_LT(max_rel(y, y2), (std::is_same_v<T, float> ? 1e-6 : 1e-14));
  // and the symmetric pad 1 reads other pixels: the (0, 1, 0, 1) geometry is not "pad 1"
  const auto gs = Conv2dGeometry::square(C, OC, 3, 2, 1);
  std::vector<T> y3(y.size()), s3(ops::conv2d_scratch_elems(gs, H, W, B));
  ops::conv2d_forward(cpu, y3.data(), x.data(), w.data(), b.data(), B, H, W, gs, s3.data(), std::int64_t(s3.size()));
  EXPECT_GT(max_rel(y, y3), 1e-2);
}

}  // namespace
