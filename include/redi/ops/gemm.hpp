// redi/ops/gemm.hpp — row-major GEMM: C[M,N] = alpha * op(A) * op(B) + beta * C.
// With REDI_USE_OPENBLAS the call goes to cblas_{s,d}gemm (multi-threaded by OpenBLAS);
// otherwise to an Eigen Map-based product. `gemm_eigen` is always available: it is the product
// to use inside an OpenMP parallel region (Eigen does not nest its own threads there), since
// BLAS must not be called from inside parallel regions.
#pragma once
#include <cstdint>
#include <type_traits>

#include <Eigen/Core>

#include "redi/core/device.hpp"
#include "redi/core/dtype.hpp"

#ifdef REDI_USE_OPENBLAS
#include <cblas.h>
#endif

namespace redi::ops {

namespace detail {
template <class T>
using RowMat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using CMap = Eigen::Map<const RowMat<T>, Eigen::Unaligned, Eigen::OuterStride<>>;
template <class T>
using MMap = Eigen::Map<RowMat<T>, Eigen::Unaligned, Eigen::OuterStride<>>;

template <class T, class A, class B>
inline void eigen_product(MMap<T>& c, const A& a, const B& b, T alpha, T beta) {
  if (beta == T(0)) {
    c.noalias() = alpha * a * b;  // C is not read (it may hold garbage or NaN)
  } else {
    if (beta != T(1)) c *= beta;
    c.noalias() += alpha * a * b;
  }
}
}  // namespace detail

/// Eigen GEMM (same contract as `gemm`). Single-threaded when called inside an OpenMP region.
template <CpuReal T>
inline void gemm_eigen(bool transA, bool transB, int M, int N, int K, T alpha, const T* A,
                       int lda, const T* B, int ldb, T beta, T* C, int ldc) {
  if (M <= 0 || N <= 0) return;
  detail::MMap<T> c(C, M, N, Eigen::OuterStride<>(ldc));
  if (K <= 0) {
    if (beta == T(0)) c.setZero();
    else c *= beta;
    return;
  }
  // op(A) is [M,K]: stored [M,K] (lda) or, transposed, [K,M] (lda).
  detail::CMap<T> a(A, transA ? K : M, transA ? M : K, Eigen::OuterStride<>(lda));
  detail::CMap<T> b(B, transB ? N : K, transB ? K : N, Eigen::OuterStride<>(ldb));
  if (!transA && !transB) detail::eigen_product(c, a, b, alpha, beta);
  else if (!transA && transB) detail::eigen_product(c, a, b.transpose(), alpha, beta);
  else if (transA && !transB) detail::eigen_product(c, a.transpose(), b, alpha, beta);
  else detail::eigen_product(c, a.transpose(), b.transpose(), alpha, beta);
}

/// C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C, row-major with leading dimensions.
/// beta == 0 means C is not read. Do not call from inside an OpenMP parallel region when
/// OpenBLAS is used (use gemm_eigen there).
template <CpuReal T>
inline void gemm(const Cpu&, bool transA, bool transB, int M, int N, int K, T alpha, const T* A,
                 int lda, const T* B, int ldb, T beta, T* C, int ldc) {
#ifdef REDI_USE_OPENBLAS
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {  // BLAS would be fine, but leading-dimension checks may trip on K == 0
    gemm_eigen<T>(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  const CBLAS_TRANSPOSE ta = transA ? CblasTrans : CblasNoTrans;
  const CBLAS_TRANSPOSE tb = transB ? CblasTrans : CblasNoTrans;
  if constexpr (std::is_same_v<T, float>)
    cblas_sgemm(CblasRowMajor, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  else
    cblas_dgemm(CblasRowMajor, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#else
  gemm_eigen<T>(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#endif
}

}  // namespace redi::ops
