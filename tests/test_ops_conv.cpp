// Tests for the convolution and pooling ops (redi/ops/conv2d.hpp, redi/ops/pool.hpp) and ReLU:
// forward against direct nested loops, finite-difference gradients in double, chunking and
// thread-count invariance, and PyTorch's outputs and gradients (tests/data/ops/conv_pool_ref.npz,
// made by gen_conv_pool_ref.py) including stride 2, asymmetric padding and non-square kernels.
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
#include "redi/io/npz.hpp"
#include "redi/ops/activation.hpp"
#include "redi/ops/conv2d.hpp"
#include "redi/ops/pool.hpp"

using namespace redi;
using namespace redi::test;
using ops::Conv2dGeometry;
using ops::Pool2dGeometry;

namespace {

struct ConvCase {
  const char* name;
  int B, H, W;
  Conv2dGeometry g;
};

std::vector<ConvCase> conv_cases() {
  return {
      {"3x3 s1 p1", 2, 7, 6, Conv2dGeometry::square(3, 4, 3)},
      {"3x3 s2 pad(0,1,0,1)", 2, 8, 8, {3, 5, 3, 3, 2, 2, 0, 1, 0, 1}},
      {"1x1 pointwise", 3, 5, 4, Conv2dGeometry::square(6, 3, 1)},
      {"1x1 stride 2", 2, 5, 6, Conv2dGeometry::square(4, 3, 1, 2)},
      {"5x3 s(2,1) pad(2,1,0,2)", 2, 9, 7, {2, 3, 5, 3, 2, 1, 2, 1, 0, 2}},
      {"7x7 s2 p3", 1, 11, 10, Conv2dGeometry::square(3, 4, 7, 2, 3)},
      {"3x3 on 1x1 p1", 2, 1, 1, Conv2dGeometry::square(3, 2, 3)},
      {"3x3 s3 no pad, ragged", 2, 8, 10, Conv2dGeometry::square(2, 3, 3, 3, 0)},
  };
}

template <class T>
void check_conv_forward(double tol) {
  for (const auto& cc : conv_cases()) {
    SCOPED_TRACE(cc.name);
    const auto& g = cc.g;
    const auto x = uniform<T>(std::int64_t(cc.B) * g.in_channels * cc.H * cc.W, 1);
    const auto w = uniform<T>(g.weight_elems(), 2);
    const auto b = uniform<T>(g.out_channels, 3);
    const auto ref = conv_direct(x, w, b.data(), cc.B, cc.H, cc.W, g);
    std::vector<T> y(ref.size(), std::numeric_limits<T>::quiet_NaN());
    std::vector<T> scratch(std::size_t(ops::conv2d_scratch_elems(g, cc.H, cc.W, cc.B)));
    ops::conv2d_forward<T>(cpu, y.data(), x.data(), w.data(), b.data(), cc.B, cc.H, cc.W, g, scratch.data(),
                           std::int64_t(scratch.size()));
    EXPECT_LT(max_scaled_diff(y, ref), tol);
    // Without bias.
    const auto ref0 = conv_direct<T>(x, w, nullptr, cc.B, cc.H, cc.W, g);
    ops::conv2d_forward<T>(cpu, y.data(), x.data(), w.data(), static_cast<const T*>(nullptr), cc.B, cc.H, cc.W, g,
                           scratch.data(), std::int64_t(scratch.size()));
    EXPECT_LT(max_scaled_diff(y, ref0), tol);
  }
}

TEST(Conv2d, ForwardMatchesDirectLoopsDouble) { check_conv_forward<double>(1e-14); }
TEST(Conv2d, ForwardMatchesDirectLoopsFloat) { check_conv_forward<float>(1e-5); }

TEST(Conv2d, GradientsMatchFiniteDifferences) {
  for (const auto& cc : conv_cases()) {
    SCOPED_TRACE(cc.name);
    const auto& g = cc.g;
    const int B = cc.B, H = cc.H, W = cc.W, OH = g.out_h(H), OW = g.out_w(W);
    auto x = uniform(std::int64_t(B) * g.in_channels * H * W, 11);
    auto w = uniform(g.weight_elems(), 12);
    auto b = uniform(g.out_channels, 13);
    const auto wout = uniform(std::int64_t(B) * g.out_channels * OH * OW, 14);
    std::vector<double> y(wout.size()), scratch(std::size_t(ops::conv2d_scratch_elems(g, H, W, B)));
    auto loss = [&] {
      ops::conv2d_forward<double>(cpu, y.data(), x.data(), w.data(), b.data(), B, H, W, g, scratch.data(),
                                  std::int64_t(scratch.size()));
      return weighted_sum(wout.data(), y.data(), std::int64_t(y.size()));
    };
    std::vector<double> dx(x.size(), 7.0), dw(w.size(), 0.0), db(b.size(), 0.0);
    ops::conv2d_backward<double>(cpu, dx.data(), dw.data(), db.data(), wout.data(), x.data(), w.data(), B, H, W, g,
                                 scratch.data(), std::int64_t(scratch.size()));
    // The loss is linear in each argument: a large step has no truncation error and little
    // rounding error.
    const double h = 1e-3;
    EXPECT_LT(grad_check(loss, x.data(), std::int64_t(x.size()), dx.data(), h).max_rel, 1e-8) << "dx";
    EXPECT_LT(grad_check(loss, w.data(), std::int64_t(w.size()), dw.data(), h).max_rel, 1e-8) << "dW";
    EXPECT_LT(grad_check(loss, b.data(), std::int64_t(b.size()), db.data(), h).max_rel, 1e-8) << "db";
    // Parameter gradients accumulate; the input gradient is overwritten.
    const auto dx1 = dx, dw1 = dw, db1 = db;
    ops::conv2d_backward<double>(cpu, dx.data(), dw.data(), db.data(), wout.data(), x.data(), w.data(), B, H, W, g,
                                 scratch.data(), std::int64_t(scratch.size()));
    for (std::size_t i = 0; i < dx.size(); ++i) ASSERT_EQ(dx[i], dx1[i]);
    for (std::size_t i = 0; i < dw.size(); ++i) ASSERT_NEAR(dw[i], 2 * dw1[i], 1e-12 * (1 + std::fabs(dw1[i])));
    for (std::size_t i = 0; i < db.size(); ++i) ASSERT_NEAR(db[i], 2 * db1[i], 1e-12 * (1 + std::fabs(db1[i])));
  }
}

TEST(Conv2d, NullGradientsAreSkipped) {
  const auto g = Conv2dGeometry::square(3, 4, 3, 2);
  const int B = 2, H = 6, W = 5;
  const auto x = uniform(std::int64_t(B) * 3 * H * W, 1), w = uniform(g.weight_elems(), 2);
  const auto dy = uniform(std::int64_t(B) * 4 * g.out_h(H) * g.out_w(W), 3);
  std::vector<double> scratch(std::size_t(ops::conv2d_scratch_elems(g, H, W, B)));
  std::vector<double> dx(x.size()), dw(w.size()), db(4), dx2(x.size()), dw2(w.size()), db2(4);
  ops::conv2d_backward<double>(cpu, dx.data(), dw.data(), db.data(), dy.data(), x.data(), w.data(), B, H, W, g,
                               scratch.data(), std::int64_t(scratch.size()));
  ops::conv2d_backward<double>(cpu, dx2.data(), nullptr, nullptr, dy.data(), nullptr, w.data(), B, H, W, g,
                               scratch.data(), std::int64_t(scratch.size()));
  ops::conv2d_backward<double>(cpu, nullptr, dw2.data(), nullptr, dy.data(), x.data(), nullptr, B, H, W, g,
                               scratch.data(), std::int64_t(scratch.size()));
  ops::conv2d_backward<double>(cpu, nullptr, nullptr, db2.data(), dy.data(), nullptr, nullptr, B, H, W, g, nullptr, 0);
  EXPECT_EQ(dx, dx2);
  EXPECT_EQ(dw, dw2);
  EXPECT_EQ(db, db2);
}

// Small scratch: the op works a chunk of images at a time; every chunk size gives the same
// result as the whole batch at once (up to GEMM rounding), and too little scratch is an error.
TEST(Conv2d, ChunkedScratchGivesTheSameResult) {
  const Conv2dGeometry g{3, 4, 3, 3, 2, 1, 1, 0, 1, 1};
  const int B = 5, H = 7, W = 6;
  const auto x = uniform<float>(std::int64_t(B) * 3 * H * W, 1), w = uniform<float>(g.weight_elems(), 2);
  const auto b = uniform<float>(4, 3);
  const auto dy = uniform<float>(std::int64_t(B) * 4 * g.out_h(H) * g.out_w(W), 4);
  auto run = [&](int chunk, std::vector<float>& y, std::vector<float>& dx, std::vector<float>& dw,
                 std::vector<float>& db) {
    std::vector<float> scratch(std::size_t(ops::conv2d_scratch_elems(g, H, W, chunk)) + 3);
    y.assign(dy.size(), 0.f);
    dx.assign(x.size(), 0.f);
    dw.assign(w.size(), 0.f);
    db.assign(4, 0.f);
    ops::conv2d_forward<float>(cpu, y.data(), x.data(), w.data(), b.data(), B, H, W, g, scratch.data(),
                               std::int64_t(scratch.size()));
    ops::conv2d_backward<float>(cpu, dx.data(), dw.data(), db.data(), dy.data(), x.data(), w.data(), B, H, W, g,
                                scratch.data(), std::int64_t(scratch.size()));
  };
  std::vector<float> y5, dx5, dw5, db5;
  run(B, y5, dx5, dw5, db5);
  for (int chunk : {1, 2, 3}) {
    std::vector<float> y, dx, dw, db;
    run(chunk, y, dx, dw, db);
    EXPECT_LT(max_scaled_diff(y, y5), 1e-6) << chunk;
    EXPECT_LT(max_scaled_diff(dx, dx5), 1e-6) << chunk;
    EXPECT_LT(max_scaled_diff(dw, dw5), 1e-6) << chunk;
    EXPECT_LT(max_scaled_diff(db, db5), 1e-6) << chunk;
  }
  std::vector<float> y(dy.size()), scratch(std::size_t(ops::conv2d_scratch_elems(g, H, W, 1)) - 1);
  expect_error([&] { ops::conv2d_forward<float>(cpu, y.data(), x.data(), w.data(), b.data(), B, H, W, g,
                                                scratch.data(), std::int64_t(scratch.size())); },
               {"scratch elements per image"});
  expect_error([&] { ops::conv2d_forward<float>(cpu, y.data(), x.data(), w.data(), b.data(), B, 1, 1,
                                                Conv2dGeometry::square(3, 4, 5, 1, 0), scratch.data(),
                                                std::int64_t(scratch.size())); },
               {"does not fit a 1x1 input"});
}

TEST(Conv2d, ResultsDoNotDependOnTheThreadCount) {
#ifndef _OPENMP
  GTEST_SKIP() << "built without OpenMP";
#else
  const auto g = Conv2dGeometry::square(16, 8, 3);
  const int B = 4, H = 16, W = 16;
  const auto x = uniform<float>(std::int64_t(B) * 16 * H * W, 1), w = uniform<float>(g.weight_elems(), 2);
  const auto dy = uniform<float>(std::int64_t(B) * 8 * H * W, 3);
  std::vector<float> scratch(std::size_t(ops::conv2d_scratch_elems(g, H, W, B)));
  auto run = [&](int threads, std::vector<float>& dx, std::vector<float>& db) {
    const int before = omp_get_max_threads();
    omp_set_num_threads(threads);
    dx.assign(x.size(), 0.f);
    db.assign(8, 0.f);
    ops::conv2d_backward<float>(cpu, dx.data(), nullptr, db.data(), dy.data(), x.data(), w.data(), B, H, W, g,
                                scratch.data(), std::int64_t(scratch.size()));
    omp_set_num_threads(before);
  };
  std::vector<float> dx1, db1, dx2, db2;
  run(1, dx1, db1);
  run(2, dx2, db2);
  // col2im and the bias reduction are per-plane / per-channel in a fixed order: bit-identical
  // (the GEMM before col2im is the same call either way).
  EXPECT_EQ(db1, db2);
  EXPECT_LT(max_scaled_diff(dx1, dx2), 1e-6);
#endif
}

// ---------------------------------------------------------------------------------------------
// Pooling

std::vector<double> pool_direct(const std::vector<double>& x, int B, int C, int H, int W, const Pool2dGeometry& g,
                                bool max) {
  const int OH = g.out_h(H), OW = g.out_w(W);
  std::vector<double> y(std::size_t(B) * C * OH * OW);
  for (int p = 0; p < B * C; ++p)
    for (int oy = 0; oy < OH; ++oy)
      for (int ox = 0; ox < OW; ++ox) {
        double m = -1e300, s = 0;
        int cnt = 0, cnt_pad = 0;
        for (int i = 0; i < g.kernel_h; ++i)
          for (int j = 0; j < g.kernel_w; ++j) {
            const int iy = oy * g.stride_h - g.pad_top + i, ix = ox * g.stride_w - g.pad_left + j;
            if (iy < H + g.pad_bottom && ix < W + g.pad_right) ++cnt_pad;
            if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
            const double v = x[(std::size_t(p) * H + iy) * W + ix];
            m = std::max(m, v);
            s += v;
            ++cnt;
          }
        y[(std::size_t(p) * OH + oy) * OW + ox] = max ? m : s / (g.count_include_pad ? cnt_pad : cnt);
      }
  return y;
}

std::vector<std::pair<const char*, Pool2dGeometry>> pool_cases() {
  return {{"2x2 s2", Pool2dGeometry::square(2)},
          {"3x3 s2", Pool2dGeometry::square(3, 2)},
          {"3x3 s1 p1 count pad", Pool2dGeometry::square(3, 1, 1, true)},
          {"3x3 s1 p1 no count pad", Pool2dGeometry::square(3, 1, 1, false)},
          {"3x2 s(1,2) pad(1,0,0,1)", {3, 2, 1, 2, 1, 0, 0, 1, false}}};
}

TEST(Pool2d, ForwardMatchesDirectLoopsAndGradientsMatchFiniteDifferences) {
  const int B = 2, C = 3, H = 7, W = 6;
  for (const auto& pc : pool_cases())
    for (bool max : {true, false}) {
      const auto& name = pc.first;
      const auto& g = pc.second;  // not a structured binding: the lambda below captures it (clang < 16)
      SCOPED_TRACE(std::string(name) + (max ? " max" : " avg"));
      auto x = uniform(std::int64_t(B) * C * H * W, 21);
      const auto ref = pool_direct(x, B, C, H, W, g, max);
      std::vector<double> y(ref.size());
      if (max) ops::maxpool2d_forward<double>(cpu, y.data(), x.data(), B, C, H, W, g);
      else ops::avgpool2d_forward<double>(cpu, y.data(), x.data(), B, C, H, W, g);
      EXPECT_LT(max_scaled_diff(y, ref), 1e-15);
      const auto wout = uniform(std::int64_t(y.size()), 22);
      auto loss = [&] {
        if (max) ops::maxpool2d_forward<double>(cpu, y.data(), x.data(), B, C, H, W, g);
        else ops::avgpool2d_forward<double>(cpu, y.data(), x.data(), B, C, H, W, g);
        return weighted_sum(wout.data(), y.data(), std::int64_t(y.size()));
      };
      std::vector<double> dx(x.size(), 5.0);
      if (max) ops::maxpool2d_backward<double>(cpu, dx.data(), wout.data(), x.data(), B, C, H, W, g);
      else ops::avgpool2d_backward<double>(cpu, dx.data(), wout.data(), B, C, H, W, g);
      // Average pooling is linear (large step); random inputs have no ties, so max pooling is
      // differentiable there (a step far below the gaps between window entries).
      const auto r = grad_check(loss, x.data(), std::int64_t(x.size()), dx.data(), max ? 1e-6 : 1e-3);
      EXPECT_LT(r.max_rel, max ? 1e-6 : 1e-9) << r.str();
    }
}

TEST(Pool2d, MaxPoolTiesGoToTheFirstMaximum) {
  // A constant plane: every window's maximum is tied; PyTorch routes dout to the window's first
  // (top-left) element.
  const std::vector<double> x(16, 1.0), dy = {1, 2, 3, 4};
  std::vector<double> dx(16);
  ops::maxpool2d_backward<double>(cpu, dx.data(), dy.data(), x.data(), 1, 1, 4, 4, Pool2dGeometry::square(2));
  const std::vector<double> want = {1, 0, 2, 0, 0, 0, 0, 0, 3, 0, 4, 0, 0, 0, 0, 0};
  EXPECT_EQ(dx, want);
  expect_error([&] { ops::maxpool2d_forward<double>(cpu, dx.data(), x.data(), 1, 1, 4, 4, Pool2dGeometry::square(2, 2, 2)); },
               {"exceeds half the window"});
}

TEST(Pool2d, GlobalAveragePool) {
  const int B = 2, C = 3, H = 5, W = 4;
  auto x = uniform(std::int64_t(B) * C * H * W, 31);
  std::vector<double> y(std::size_t(B) * C);
  ops::global_avgpool_forward<double>(cpu, y.data(), x.data(), B, C, H, W);
  for (int p = 0; p < B * C; ++p) {
    double s = 0;
    for (int i = 0; i < H * W; ++i) s += x[std::size_t(p) * H * W + i];
    EXPECT_NEAR(y[std::size_t(p)], s / (H * W), 1e-15);
  }
  const auto wout = uniform(B * C, 32);
  auto loss = [&] {
    ops::global_avgpool_forward<double>(cpu, y.data(), x.data(), B, C, H, W);
    return weighted_sum(wout.data(), y.data(), B * C);
  };
  std::vector<double> dx(x.size());
  ops::global_avgpool_backward<double>(cpu, dx.data(), wout.data(), B, C, H, W);
  EXPECT_LT(max_rel_error(loss, x.data(), std::int64_t(x.size()), dx.data()), 1e-8);
}

TEST(Relu, ForwardBackwardInPlace) {
  std::vector<double> x = {-2, -0.0, 0.0, 0.5, 3}, y(5), d = {1, 2, 3, 4, 5};
  ops::relu_forward<double>(cpu, y.data(), x.data(), 5);
  EXPECT_EQ(y, (std::vector<double>{0, 0, 0, 0.5, 3}));
  ops::relu_backward<double>(cpu, d.data(), d.data(), y.data(), 5);  // mask from the output, in place
  EXPECT_EQ(d, (std::vector<double>{0, 0, 0, 4, 5}));
}

// ---------------------------------------------------------------------------------------------
// PyTorch reference (float64 throughout, so agreement is to rounding)

class TorchReference : public ::testing::Test {
protected:
  static void SetUpTestSuite() {
    const auto p = test_data_path("ops/conv_pool_ref.npz");
    if (std::filesystem::exists(p)) ref_ = new io::NpzFile(io::NpzFile::open(p));
  }
  static void TearDownTestSuite() {
    delete ref_;
    ref_ = nullptr;
  }
  void SetUp() override {
    ASSERT_NE(ref_, nullptr) << "missing " << test_data_path("ops/conv_pool_ref.npz");
  }
  static std::vector<double> get(const std::string& c, const std::string& a) { return ref_->read<double>(c + "." + a); }
  static std::vector<std::int64_t> geom(const std::string& c) { return ref_->read<std::int64_t>(c + ".geom"); }
  static inline io::NpzFile* ref_ = nullptr;
};

TEST_F(TorchReference, Conv2dForwardAndBackward) {
  int cases = 0;
  for (const char* c : {"conv3x3_s1_p1", "conv3x3_s2_p0101", "conv1x1_s1", "conv5x3_s21_p2102", "conv7x7_s2_p3"}) {
    SCOPED_TRACE(c);
    const auto q = geom(c);
    const int B = int(q[0]), H = int(q[2]), W = int(q[3]);
    const Conv2dGeometry g{int(q[1]), int(q[4]), int(q[5]), int(q[6]), int(q[7]), int(q[8]),
                           int(q[9]), int(q[10]), int(q[11]), int(q[12])};
    const auto x = get(c, "x"), w = get(c, "w"), b = get(c, "b"), dy = get(c, "dy");
    const auto y_ref = get(c, "y");
    ASSERT_EQ(y_ref.size(), std::size_t(B) * g.out_channels * g.out_h(H) * g.out_w(W));
    std::vector<double> y(y_ref.size()), scratch(std::size_t(ops::conv2d_scratch_elems(g, H, W, B)));
    ops::conv2d_forward<double>(cpu, y.data(), x.data(), w.data(), b.data(), B, H, W, g, scratch.data(),
                                std::int64_t(scratch.size()));
    EXPECT_LT(max_scaled_diff(y, y_ref), 1e-14);
    std::vector<double> dx(x.size()), dw(w.size()), db(b.size());
    ops::conv2d_backward<double>(cpu, dx.data(), dw.data(), db.data(), dy.data(), x.data(), w.data(), B, H, W, g,
                                 scratch.data(), std::int64_t(scratch.size()));
    EXPECT_LT(max_scaled_diff(dx, get(c, "dx")), 1e-14);
    EXPECT_LT(max_scaled_diff(dw, get(c, "dw")), 1e-14);
    EXPECT_LT(max_scaled_diff(db, get(c, "db")), 1e-14);
    // float agrees to float rounding
    std::vector<float> yf(y.size()), sf(scratch.size());
    const auto xf = cast<float>(x), wf = cast<float>(w), bf = cast<float>(b);
    ops::conv2d_forward<float>(cpu, yf.data(), xf.data(), wf.data(), bf.data(), B, H, W, g, sf.data(),
                               std::int64_t(sf.size()));
    EXPECT_LT(max_scaled_diff(yf, y_ref), 1e-5);
    ++cases;
  }
  EXPECT_EQ(cases, 5);
}

TEST_F(TorchReference, PoolingForwardAndBackward) {
  for (const char* c : {"max2x2_s2", "max3x3_s2", "max3x3_s1_p1", "avg2x2_s2", "avg3x3_s1_p1_nopad", "avg3x3_s1_p1_pad"}) {
    SCOPED_TRACE(c);
    const auto q = geom(c);
    const int B = int(q[0]), C = int(q[1]), H = int(q[2]), W = int(q[3]);
    const auto g = Pool2dGeometry::square(int(q[4]), int(q[5]), int(q[6]), q[7] != 0);
    const bool max = std::string(c).starts_with("max");
    const auto x = get(c, "x"), dy = get(c, "dy"), y_ref = get(c, "y");
    ASSERT_EQ(y_ref.size(), std::size_t(B) * C * g.out_h(H) * g.out_w(W));
    std::vector<double> y(y_ref.size()), dx(x.size());
    if (max) {
      ops::maxpool2d_forward<double>(cpu, y.data(), x.data(), B, C, H, W, g);
      ops::maxpool2d_backward<double>(cpu, dx.data(), dy.data(), x.data(), B, C, H, W, g);
    } else {
      ops::avgpool2d_forward<double>(cpu, y.data(), x.data(), B, C, H, W, g);
      ops::avgpool2d_backward<double>(cpu, dx.data(), dy.data(), B, C, H, W, g);
    }
    EXPECT_LT(max_scaled_diff(y, y_ref), 1e-15);
    EXPECT_LT(max_scaled_diff(dx, get(c, "dx")), 1e-15);
  }
}

}  // namespace
