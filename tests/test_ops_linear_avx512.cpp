// Tests for the AVX-512 float linear forward (redi/ops/linear_avx512.hpp) and its dispatch from
// ops::linear_forward: against a long-double reference (row counts around the 8-row tile, input
// sizes around the 256-input block, with and without bias, row blocks past 2048), the shapes it
// declines, bit-identical results for 1 and 2 threads and for any split of the rows.
// Skipped in builds that do not target AVX-512.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "gradcheck.hpp"
#include "io_test_util.hpp"
#include "redi/ops/linear.hpp"

using namespace redi;
using namespace redi::test;

namespace {

std::vector<double> reference(const std::vector<float>& x, const std::vector<float>& w, const float* b, int rows,
                              int in_f, int out_f) {
  std::vector<double> y(std::size_t(rows) * out_f);
  for (int r = 0; r < rows; ++r)
    for (int o = 0; o < out_f; ++o) {
      long double s = b ? b[o] : 0;
      for (int k = 0; k < in_f; ++k) s += (long double)x[std::size_t(r) * in_f + k] * w[std::size_t(o) * in_f + k];
      y[std::size_t(r) * out_f + o] = double(s);
    }
  return y;
}

TEST(LinearAvx512, MatchesLongDoubleReference) {
  if (!ops::detail::kHaveLinearAvx512) GTEST_SKIP() << "build does not target AVX-512";
  struct Shape { int rows, in_f, out_f; };
  for (const Shape s : {Shape{261, 64, 96}, Shape{7, 2400, 64}, Shape{33, 257, 128}, Shape{1, 2048, 1024},
                        Shape{2050, 24, 32}, Shape{100, 768, 256}}) {
    SCOPED_TRACE(testing::Message() << s.rows << "x" << s.in_f << "->" << s.out_f);
    ASSERT_TRUE(ops::linear_avx512_applies(s.rows, s.in_f, s.out_f));
    const auto x = uniform<float>(std::int64_t(s.rows) * s.in_f, 1), w = uniform<float>(std::int64_t(s.out_f) * s.in_f, 2);
    const auto b = uniform<float>(s.out_f, 3);
    std::vector<float> y(std::size_t(s.rows) * s.out_f, std::nanf(""));
    ops::linear_forward_avx512(y.data(), x.data(), w.data(), b.data(), s.rows, s.in_f, s.out_f);
    // FMAs accumulate in float over in_f terms of size ~1: error ~ sqrt(in_f) * 2^-24 relative to max |y|
    EXPECT_LT(max_scaled_diff(y, reference(x, w, b.data(), s.rows, s.in_f, s.out_f)), 2e-6);
    ops::linear_forward<float>(cpu, y.data(), x.data(), w.data(), nullptr, s.rows, s.in_f, s.out_f);  // dispatch
    EXPECT_LT(max_scaled_diff(y, reference(x, w, nullptr, s.rows, s.in_f, s.out_f)), 2e-6);
  }
}

TEST(LinearAvx512, DeclinedShapesGoToBlas) {
  EXPECT_FALSE(ops::linear_avx512_applies(261, 768, 100));  // out_f not a multiple of 32
  EXPECT_FALSE(ops::linear_avx512_applies(4, 16, 32));      // too little work
  EXPECT_FALSE(ops::linear_avx512_applies(0, 768, 768));
  // the declined shape still computes the layer (BLAS path)
  const int rows = 20, in_f = 70, out_f = 100;
  const auto x = uniform<float>(rows * in_f, 4), w = uniform<float>(out_f * in_f, 5), b = uniform<float>(out_f, 6);
  std::vector<float> y(std::size_t(rows) * out_f);
  ops::linear_forward<float>(cpu, y.data(), x.data(), w.data(), b.data(), rows, in_f, out_f);
  EXPECT_LT(max_scaled_diff(y, reference(x, w, b.data(), rows, in_f, out_f)), 2e-6);
}

TEST(LinearAvx512, ThreadCountAndRowSplitDoNotChangeBits) {
  if (!ops::detail::kHaveLinearAvx512) GTEST_SKIP() << "build does not target AVX-512";
  const int rows = 523, in_f = 520, out_f = 320;
  const auto x = uniform<float>(std::int64_t(rows) * in_f, 7), w = uniform<float>(std::int64_t(out_f) * in_f, 8);
  const auto b = uniform<float>(out_f, 9);
  auto run = [&](int threads) {
    std::vector<float> y(std::size_t(rows) * out_f);
#ifdef _OPENMP
    const int before = omp_get_max_threads();
    omp_set_num_threads(threads);
#endif
    ops::linear_forward_avx512(y.data(), x.data(), w.data(), b.data(), rows, in_f, out_f);
#ifdef _OPENMP
    omp_set_num_threads(before);
#endif
    return y;
  };
  const auto y1 = run(1);
  EXPECT_EQ(y1, run(2));
  // rows 0..100 alone give the same bits as within the whole batch (rows are independent)
  std::vector<float> part(std::size_t(100) * out_f);
  ops::linear_forward_avx512(part.data(), x.data(), w.data(), b.data(), 100, in_f, out_f);
  EXPECT_TRUE(std::equal(part.begin(), part.end(), y1.begin()));
}

}  // namespace
