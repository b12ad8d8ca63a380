// Tests for gemm (BLAS and Eigen paths) and the linear layer.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "gradcheck.hpp"
#include "redi/ops/gemm.hpp"
#include "redi/ops/linear.hpp"

using namespace redi;
using namespace redi::test;

namespace {

// Naive reference: C = alpha op(A) op(B) + beta C, row-major with leading dimensions.
template <class T>
void naive_gemm(bool ta, bool tb, int M, int N, int K, double alpha, const T* A, int lda,
                const T* B, int ldb, double beta, T* C, int ldc) {
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j) {
      long double s = 0;
      for (int k = 0; k < K; ++k) {
        const double a = ta ? A[k * lda + i] : A[i * lda + k];
        const double b = tb ? B[j * ldb + k] : B[k * ldb + j];
        s += (long double)a * b;
      }
      const double c0 = beta == 0 ? 0.0 : beta * double(C[i * ldc + j]);
      C[i * ldc + j] = T(alpha * double(s) + c0);
    }
}

template <class T>
void check_gemm(bool use_eigen, double tol) {
  const int M = 7, N = 13, K = 11;
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb)
      for (double beta : {0.0, 0.5}) {
        // Non-trivial leading dimensions: padding columns that must not be touched / read.
        const int lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 2, ldc = N + 5;
        const int arows = ta ? K : M, brows = tb ? N : K;
        auto A = uniform<T>(std::int64_t(arows) * lda, 1 + ta * 2 + tb);
        auto B = uniform<T>(std::int64_t(brows) * ldb, 7 + ta * 2 + tb);
        auto C = uniform<T>(std::int64_t(M) * ldc, 13);
        if (beta == 0)  // C must not be read when beta == 0
          for (int i = 0; i < M; ++i)
            for (int j = 0; j < N; ++j) C[i * ldc + j] = std::numeric_limits<T>::quiet_NaN();
        auto R = C;
        naive_gemm<T>(ta, tb, M, N, K, 1.5, A.data(), lda, B.data(), ldb, beta, R.data(), ldc);
        if (use_eigen)
          ops::gemm_eigen<T>(ta, tb, M, N, K, T(1.5), A.data(), lda, B.data(), ldb, T(beta),
                             C.data(), ldc);
        else
          ops::gemm<T>(cpu, ta, tb, M, N, K, T(1.5), A.data(), lda, B.data(), ldb, T(beta),
                       C.data(), ldc);
        for (int i = 0; i < M; ++i)
          for (int j = 0; j < ldc; ++j) {
            const double c = C[i * ldc + j], r = R[i * ldc + j];
            if (j >= N) {  // padding untouched (bitwise)
              EXPECT_TRUE(c == r || (std::isnan(c) && std::isnan(r)));
            } else {
              EXPECT_NEAR(c, r, tol) << "ta=" << ta << " tb=" << tb << " beta=" << beta << " ("
                                     << i << "," << j << ")";
            }
          }
      }
}

}  // namespace

TEST(Gemm, AllTransposesFloat) { check_gemm<float>(false, 2e-5); }
TEST(Gemm, AllTransposesDouble) { check_gemm<double>(false, 1e-13); }
TEST(Gemm, EigenAllTransposesFloat) { check_gemm<float>(true, 2e-5); }
TEST(Gemm, EigenAllTransposesDouble) { check_gemm<double>(true, 1e-13); }

TEST(Gemm, LargerSquareMatchesNaive) {
  const int n = 150;
  auto A = uniform<double>(n * n, 3), B = uniform<double>(n * n, 4);
  std::vector<double> C(n * n), R(n * n);
  ops::gemm<double>(cpu, false, false, n, n, n, 1.0, A.data(), n, B.data(), n, 0.0, C.data(), n);
  naive_gemm<double>(false, false, n, n, n, 1.0, A.data(), n, B.data(), n, 0.0, R.data(), n);
  EXPECT_LT(max_scaled_diff(C, R), 1e-13);
}

TEST(Gemm, ZeroK) {
  std::vector<double> C = {1, 2, 3, 4};
  ops::gemm<double>(cpu, false, false, 2, 2, 0, 1.0, nullptr, 1, nullptr, 2, 2.0, C.data(), 2);
  EXPECT_EQ(C, (std::vector<double>{2, 4, 6, 8}));
  ops::gemm<double>(cpu, false, false, 2, 2, 0, 1.0, nullptr, 1, nullptr, 2, 0.0, C.data(), 2);
  EXPECT_EQ(C, (std::vector<double>{0, 0, 0, 0}));
}

TEST(Linear, ForwardMatchesNaive) {
  const int rows = 5, in_f = 6, out_f = 4;
  auto x = uniform<double>(rows * in_f, 1), W = uniform<double>(out_f * in_f, 2),
       b = uniform<double>(out_f, 3);
  std::vector<double> y(rows * out_f), y0(rows * out_f);
  ops::linear_forward<double>(cpu, y.data(), x.data(), W.data(), b.data(), rows, in_f, out_f);
  ops::linear_forward<double>(cpu, y0.data(), x.data(), W.data(), nullptr, rows, in_f, out_f);
  for (int r = 0; r < rows; ++r)
    for (int o = 0; o < out_f; ++o) {
      double s = 0;
      for (int i = 0; i < in_f; ++i) s += x[r * in_f + i] * W[o * in_f + i];
      EXPECT_NEAR(y0[r * out_f + o], s, 1e-14);
      EXPECT_NEAR(y[r * out_f + o], s + b[o], 1e-14);
    }
}

namespace {
void linear_gradcheck(bool with_bias) {
  const int rows = 6, in_f = 5, out_f = 7;
  auto x = uniform<double>(rows * in_f, 11), W = uniform<double>(out_f * in_f, 12),
       b = uniform<double>(out_f, 13), w = uniform<double>(rows * out_f, 14);
  const double* bp = with_bias ? b.data() : nullptr;
  std::vector<double> y(rows * out_f);
  auto loss = [&] {
    ops::linear_forward<double>(cpu, y.data(), x.data(), W.data(), bp, rows, in_f, out_f);
    return weighted_sum(w.data(), y.data(), y.size());
  };
  // Input grads are overwritten (start from NaN); parameter grads accumulate onto G0.
  std::vector<double> dx(x.size(), std::nan("")), dW0 = uniform<double>(W.size(), 15),
                                                   db0 = uniform<double>(b.size(), 16);
  auto dW = dW0, db = db0;
  ops::linear_backward<double>(cpu, dx.data(), dW.data(), with_bias ? db.data() : nullptr,
                               w.data(), x.data(), W.data(), rows, in_f, out_f);
  for (std::size_t i = 0; i < dW.size(); ++i) dW[i] -= dW0[i];
  for (std::size_t i = 0; i < db.size(); ++i) db[i] -= db0[i];
  auto rx = grad_check(loss, x.data(), x.size(), dx.data());
  auto rW = grad_check(loss, W.data(), W.size(), dW.data());
  EXPECT_LT(rx.max_rel, 1e-7) << rx.str();
  EXPECT_LT(rW.max_rel, 1e-7) << rW.str();
  if (with_bias) {
    auto rb = grad_check(loss, b.data(), b.size(), db.data());
    EXPECT_LT(rb.max_rel, 1e-7) << rb.str();
  } else {
    for (double v : db) EXPECT_EQ(v, 0.0);  // untouched
  }
}
}  // namespace

TEST(Linear, GradCheckWithBias) { linear_gradcheck(true); }
TEST(Linear, GradCheckWithoutBias) { linear_gradcheck(false); }

TEST(Linear, NullGradientsSkipped) {
  const int rows = 3, in_f = 4, out_f = 2;
  auto x = uniform<double>(rows * in_f, 1), W = uniform<double>(out_f * in_f, 2),
       g = uniform<double>(rows * out_f, 3);
  std::vector<double> dW(W.size(), 0.0);
  ops::linear_backward<double>(cpu, nullptr, dW.data(), nullptr, g.data(), x.data(), W.data(),
                               rows, in_f, out_f);
  double s = 0;
  for (int r = 0; r < rows; ++r) s += g[r * out_f + 1] * x[r * in_f + 2];
  EXPECT_NEAR(dW[1 * in_f + 2], s, 1e-14);
}

TEST(Linear, FloatMatchesDoubleLarge) {
  // Big enough for the multi-threaded BLAS path and the parallel bias / column-sum loops.
  const int rows = 512, in_f = 192, out_f = 320;
  auto x = uniform<double>(std::int64_t(rows) * in_f, 21), W = uniform<double>(out_f * in_f, 22),
       b = uniform<double>(out_f, 23), g = uniform<double>(std::int64_t(rows) * out_f, 24);
  auto xf = cast<float>(x), Wf = cast<float>(W), bf = cast<float>(b), gf = cast<float>(g);
  std::vector<double> y(std::int64_t(rows) * out_f), dx(x.size()), dW(W.size(), 0.0),
      db(out_f, 0.0);
  std::vector<float> yf(y.size()), dxf(x.size()), dWf(W.size(), 0.f), dbf(out_f, 0.f);
  ops::linear_forward<double>(cpu, y.data(), x.data(), W.data(), b.data(), rows, in_f, out_f);
  ops::linear_forward<float>(cpu, yf.data(), xf.data(), Wf.data(), bf.data(), rows, in_f, out_f);
  ops::linear_backward<double>(cpu, dx.data(), dW.data(), db.data(), g.data(), x.data(), W.data(),
                               rows, in_f, out_f);
  ops::linear_backward<float>(cpu, dxf.data(), dWf.data(), dbf.data(), gf.data(), xf.data(),
                              Wf.data(), rows, in_f, out_f);
  EXPECT_LT(max_scaled_diff(yf, y), 1e-5);
  EXPECT_LT(max_scaled_diff(dxf, dx), 1e-5);
  EXPECT_LT(max_scaled_diff(dWf, dW), 1e-5);
  EXPECT_LT(max_scaled_diff(dbf, db), 1e-5);
  // Column sums exactly: db[j] = sum_r g[r, j].
  for (int j = 0; j < out_f; j += 37) {
    double s = 0;
    for (int r = 0; r < rows; ++r) s += g[std::int64_t(r) * out_f + j];
    EXPECT_NEAR(db[j], s, 1e-11);
  }
}

TEST(GradCheck, DetectsAWrongGradient) {
  // The checker must fail on a gradient that is off by 0.1%.
  auto x = uniform<double>(10, 5);
  auto loss = [&] {
    double s = 0;
    for (double v : x) s += std::sin(v) * v;
    return s;
  };
  std::vector<double> g(10);
  for (int i = 0; i < 10; ++i) g[i] = std::cos(x[i]) * x[i] + std::sin(x[i]);
  EXPECT_LT(max_rel_error(loss, x.data(), 10, g.data()), 1e-7);
  g[3] *= 1.001;
  EXPECT_GT(max_rel_error(loss, x.data(), 10, g.data()), 1e-4);
}
