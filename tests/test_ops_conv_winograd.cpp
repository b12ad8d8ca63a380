// Tests for the Winograd F(2x2, 3x3) forward convolution (redi/ops/conv2d_winograd.hpp) and its
// dispatch from conv2d_forward (redi/ops/conv2d.hpp): against direct loops in long double
// (double and float, odd and even sizes, symmetric, asymmetric and no padding, more output than
// input channels), chunking, the fallback to im2col when the scratch is too small for it, and
// thread-count invariance.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "conv_reference.hpp"
#include "gradcheck.hpp"
#include "io_test_util.hpp"
#include "redi/ops/conv2d.hpp"

using namespace redi;
using namespace redi::test;
using ops::Conv2dGeometry;

namespace {

struct Case {
  const char* name;
  int B, H, W;
  Conv2dGeometry g;
};

std::vector<Case> cases() {
  return {
      {"8->8 p1, 7x6 (odd rows)", 2, 7, 6, Conv2dGeometry::square(8, 8, 3)},
      {"16->12 p(0,1,0,1), 8x9 (odd cols)", 3, 8, 9, {16, 12, 3, 3, 1, 1, 0, 1, 0, 1}},
      {"8->24 no pad, 10x11", 2, 10, 11, Conv2dGeometry::square(8, 24, 3, 1, 0)},
      {"12->8 p2, 5x5", 1, 5, 5, Conv2dGeometry::square(12, 8, 3, 1, 2)},
      {"8->8 p1 on 1x1", 2, 1, 1, Conv2dGeometry::square(8, 8, 3)},
      {"8->8 p(1,1,0,2) on 3x1", 2, 3, 1, {8, 8, 3, 3, 1, 1, 1, 1, 0, 2}},
      {"9->10 p(2,0,1,0), 6x7", 2, 6, 7, {9, 10, 3, 3, 1, 1, 2, 0, 1, 0}},
      {"32->32 p1, 16x16", 2, 16, 16, Conv2dGeometry::square(32, 32, 3)},
      {"16->8 p1, 32x16 (n*T % 32 == 0: AVX-512 products in such builds)", 1, 32, 16, Conv2dGeometry::square(16, 8, 3)},
  };
}

template <class T>
void check_against_direct(double tol) {
  for (const auto& cc : cases()) {
    SCOPED_TRACE(cc.name);
    const auto& g = cc.g;
    ASSERT_TRUE(ops::conv2d_winograd_applies(g));
    const auto x = uniform<T>(std::int64_t(cc.B) * g.in_channels * cc.H * cc.W, 1);
    const auto w = uniform<T>(g.weight_elems(), 2);
    const auto b = uniform<T>(g.out_channels, 3);
    const auto ref = conv_direct(x, w, b.data(), cc.B, cc.H, cc.W, g);
    std::vector<T> y(ref.size(), std::numeric_limits<T>::quiet_NaN());
    std::vector<T> scratch(std::size_t(ops::conv2d_winograd_scratch_elems(g, cc.H, cc.W, cc.B)));
    ops::conv2d_winograd_forward<T>(cpu, y.data(), x.data(), w.data(), b.data(), cc.B, cc.H, cc.W, g, scratch.data(),
                                    cc.B);
    EXPECT_LT(max_scaled_diff(y, ref), tol);
    // Without bias, through conv2d_forward with im2col's scratch (which holds Winograd's here).
    const auto ref0 = conv_direct<T>(x, w, nullptr, cc.B, cc.H, cc.W, g);
    std::vector<T> s2(std::size_t(ops::conv2d_scratch_elems(g, cc.H, cc.W, cc.B)));
    std::fill(y.begin(), y.end(), std::numeric_limits<T>::quiet_NaN());
    ops::conv2d_forward<T>(cpu, y.data(), x.data(), w.data(), static_cast<const T*>(nullptr), cc.B, cc.H, cc.W, g,
                           s2.data(), std::int64_t(s2.size()));
    EXPECT_LT(max_scaled_diff(y, ref0), tol);
  }
}

TEST(Conv2dWinograd, MatchesDirectLoopsDouble) { check_against_direct<double>(1e-14); }
TEST(Conv2dWinograd, MatchesDirectLoopsFloat) { check_against_direct<float>(1e-5); }

// conv2d_forward takes the Winograd path whenever its scratch holds U, V and M for one image
// (bit-identical to calling it directly), else im2col (the same convolution to rounding).
TEST(Conv2dWinograd, DispatchAndFallback) {
  const auto g = Conv2dGeometry::square(16, 16, 3);
  const int B = 3, H = 12, W = 10;
  const auto x = uniform<float>(std::int64_t(B) * 16 * H * W, 4), w = uniform<float>(g.weight_elems(), 5);
  const auto b = uniform<float>(16, 6);
  const std::size_t n = std::size_t(B) * 16 * H * W;
  std::vector<float> direct(n), viaop(n), fallback(n);
  std::vector<float> ws(std::size_t(ops::conv2d_winograd_scratch_elems(g, H, W, B)));
  ops::conv2d_winograd_forward<float>(cpu, direct.data(), x.data(), w.data(), b.data(), B, H, W, g, ws.data(), B);
  std::vector<float> s(std::size_t(ops::conv2d_scratch_elems(g, H, W, B)));
  ASSERT_GE(s.size(), ws.size());
  ops::conv2d_forward<float>(cpu, viaop.data(), x.data(), w.data(), b.data(), B, H, W, g, s.data(), std::int64_t(s.size()));
  EXPECT_EQ(viaop, direct);
  // One image's im2col scratch but less than Winograd's U + one image's V and M: im2col.
  const std::int64_t wino1 = ops::conv2d_winograd_scratch_elems(g, H, W, 1);
  const std::int64_t im1 = ops::conv2d_scratch_elems(g, H, W, 1);
  ASSERT_LT(im1, wino1) << "geometry chosen so that a scratch between the two exists";
  std::vector<float> small(std::size_t(wino1 - 1));
  ops::conv2d_forward<float>(cpu, fallback.data(), x.data(), w.data(), b.data(), B, H, W, g, small.data(),
                             std::int64_t(small.size()));
  EXPECT_LT(max_scaled_diff(fallback, direct), 1e-6);
  EXPECT_NE(fallback, direct) << "the im2col path sums in another order";
  // Chunks of 1 and 2 images: the same transforms per tile, the same GEMM entries.
  for (int chunk : {1, 2}) {
    std::vector<float> y(n), sc(std::size_t(ops::conv2d_winograd_scratch_elems(g, H, W, chunk)));
    ops::conv2d_winograd_forward<float>(cpu, y.data(), x.data(), w.data(), b.data(), B, H, W, g, sc.data(), chunk);
    EXPECT_LT(max_scaled_diff(y, direct), 1e-6) << chunk;
  }
}

TEST(Conv2dWinograd, ResultsDoNotDependOnTheThreadCount) {
#ifndef _OPENMP
  GTEST_SKIP() << "built without OpenMP";
#else
  const auto g = Conv2dGeometry::square(32, 16, 3);
  const int B = 2, H = 40, W = 36;
  const auto x = uniform<float>(std::int64_t(B) * 32 * H * W, 7), w = uniform<float>(g.weight_elems(), 8);
  std::vector<float> s(std::size_t(ops::conv2d_winograd_scratch_elems(g, H, W, B)));
  auto run = [&](int threads) {
    const int before = omp_get_max_threads();
    omp_set_num_threads(threads);
    std::vector<float> y(std::size_t(B) * 16 * H * W);
    ops::conv2d_winograd_forward<float>(cpu, y.data(), x.data(), w.data(), static_cast<const float*>(nullptr), B, H,
                                        W, g, s.data(), B);
    omp_set_num_threads(before);
    return y;
  };
  // transforms: per element, fixed order; the GEMMs: as every other GEMM of the library
  EXPECT_LT(max_scaled_diff(run(1), run(2)), 1e-6);
#endif
}

}  // namespace
