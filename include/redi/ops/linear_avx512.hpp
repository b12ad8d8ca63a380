// redi/ops/linear_avx512.hpp — float products C = A * op(B) (+ bias) with AVX-512 FMAs, for
// builds that target AVX-512 (-march=native on such a CPU: __AVX512F__): the linear-layer
// forward out = in * W^T + b (ops::linear_forward, when it applies: out_f a multiple of 32,
// enough work) and the Winograd convolution's products (ops/conv2d_winograd.hpp).
//
// Why: the BLAS a machine has may run AVX2 kernels on an AVX-512 CPU (OpenBLAS picks its
// kernels from the CPU model, or from OPENBLAS_CORETYPE; this project's machine is pinned to
// "Haswell"), and a CPU with full-width 512-bit FMA units then does half the work per cycle it
// could. The transformer forwards (DINOv2, DiT/SiT) are dominated by these products.
//
// Algorithm (register-blocked, B packed; C row-major [rows, N], W row-major [N, K]):
//   for each block of up to 2048 rows (balanced)
//    for each panel of 32 output columns (the OpenMP loop: panels are independent)
//     for each block of kc = 256 inputs: Bp [kc, 32] = W[n0..n0+32, k0..k0+kc]^T (packed, L1)
//       for each group of up to 8 rows: C[8, 32] (16 zmm accumulators) += A[8, kc] Bp,
//       starting from the bias (first block) or from C (later blocks)
// Each output is sum_k in[r,k] W[n,k] accumulated with FMAs in increasing k, the same for
// any thread count and any batch split (rows are independent).
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace redi::ops {

namespace detail {

#if defined(__AVX512F__)
inline constexpr bool kHaveLinearAvx512 = true;

/// C[MR, 32] (ldc) = (first ? bias (or 0) : C) + A[MR, kc] (lda) * Bp[kc, 32].
template <int MR>
inline void linear_avx512_tile(float* C, int ldc, const float* A, int lda, const float* Bp, int kc, bool first,
                               const float* bias) {
  __m512 c0[MR], c1[MR];
  for (int r = 0; r < MR; ++r) {
    if (first) {
      c0[r] = bias ? _mm512_loadu_ps(bias) : _mm512_setzero_ps();
      c1[r] = bias ? _mm512_loadu_ps(bias + 16) : _mm512_setzero_ps();
    } else {
      c0[r] = _mm512_loadu_ps(C + std::int64_t(r) * ldc);
      c1[r] = _mm512_loadu_ps(C + std::int64_t(r) * ldc + 16);
    }
  }
  for (int k = 0; k < kc; ++k) {
    const __m512 b0 = _mm512_load_ps(Bp + k * 32), b1 = _mm512_load_ps(Bp + k * 32 + 16);
    for (int r = 0; r < MR; ++r) {
      const __m512 a = _mm512_set1_ps(A[std::int64_t(r) * lda + k]);
      c0[r] = _mm512_fmadd_ps(a, b0, c0[r]);
      c1[r] = _mm512_fmadd_ps(a, b1, c1[r]);
    }
  }
  for (int r = 0; r < MR; ++r) {
    _mm512_storeu_ps(C + std::int64_t(r) * ldc, c0[r]);
    _mm512_storeu_ps(C + std::int64_t(r) * ldc + 16, c1[r]);
  }
}

inline void linear_avx512_rows(float* C, int ldc, const float* A, int lda, const float* Bp, int kc, bool first,
                               const float* bias, int mr) {
  switch (mr) {
    case 8: linear_avx512_tile<8>(C, ldc, A, lda, Bp, kc, first, bias); break;
    case 7: linear_avx512_tile<7>(C, ldc, A, lda, Bp, kc, first, bias); break;
    case 6: linear_avx512_tile<6>(C, ldc, A, lda, Bp, kc, first, bias); break;
    case 5: linear_avx512_tile<5>(C, ldc, A, lda, Bp, kc, first, bias); break;
    case 4: linear_avx512_tile<4>(C, ldc, A, lda, Bp, kc, first, bias); break;
    case 3: linear_avx512_tile<3>(C, ldc, A, lda, Bp, kc, first, bias); break;
    case 2: linear_avx512_tile<2>(C, ldc, A, lda, Bp, kc, first, bias); break;
    default: linear_avx512_tile<1>(C, ldc, A, lda, Bp, kc, first, bias); break;
  }
}
#else
inline constexpr bool kHaveLinearAvx512 = false;
#endif

}  // namespace detail

/// Whether linear_forward_avx512 handles this shape (float, AVX-512 build, N % 32 == 0, and
/// at least ~2 MFLOP: below that the BLAS call is as good).
inline bool linear_avx512_applies(int rows, int in_f, int out_f) {
  return detail::kHaveLinearAvx512 && rows > 0 && in_f > 0 && out_f % 32 == 0 && out_f > 0 &&
         std::int64_t(rows) * in_f * out_f >= (std::int64_t(1) << 20);
}

/// C[rows, N] (ldc) = A[rows, K] (lda) * op(B) + bias (bias [N] or null), float, AVX-512 build,
/// N % 32 == 0. op(B) = B^T for B [N, K] (ldb; b_nk, the linear layer's W) or B for B [K, N] (ldb).
inline void gemm_avx512(float* C, int ldc, const float* A, int lda, const float* B, int ldb, bool b_nk,
                        const float* bias, int rows, int K, int N) {
#if defined(__AVX512F__)
  constexpr int kNR = 32, kKC = 256, kMR = 8, kMC = 2048;
  const int panels = N / kNR;
  const int mblocks = (rows + kMC - 1) / kMC, mc = (rows + mblocks - 1) / mblocks;  // balanced row blocks
#pragma omp parallel
  {
    std::vector<float> buf(std::size_t(kKC) * kNR + 16);
    float* Bp = reinterpret_cast<float*>((reinterpret_cast<std::uintptr_t>(buf.data()) + 63) & ~std::uintptr_t(63));
    for (int m0 = 0; m0 < rows; m0 += mc) {
      const int m1 = std::min(rows, m0 + mc);
#pragma omp for schedule(static)
      for (int p = 0; p < panels; ++p) {
        const int n0 = p * kNR;
        for (int k0 = 0; k0 < K; k0 += kKC) {
          const int kc = std::min(kKC, K - k0);
          if (b_nk) {
            for (int j = 0; j < kNR; ++j) {  // Bp[k][j] = B[n0 + j][k0 + k]
              const float* w = B + std::int64_t(n0 + j) * ldb + k0;
              for (int k = 0; k < kc; ++k) Bp[k * kNR + j] = w[k];
            }
          } else {
            for (int k = 0; k < kc; ++k)  // Bp[k][j] = B[k0 + k][n0 + j]
              std::copy_n(B + std::int64_t(k0 + k) * ldb + n0, kNR, Bp + k * kNR);
          }
          const bool first = k0 == 0;
          const float* bv = bias ? bias + n0 : nullptr;
          for (int r0 = m0; r0 < m1; r0 += kMR)
            detail::linear_avx512_rows(C + std::int64_t(r0) * ldc + n0, ldc, A + std::int64_t(r0) * lda + k0, lda,
                                       Bp, kc, first, bv, std::min(kMR, m1 - r0));
        }
      }
    }
  }
#else
  (void)C, (void)ldc, (void)A, (void)lda, (void)B, (void)ldb, (void)b_nk, (void)bias, (void)rows, (void)K, (void)N;
#endif
}

/// out[rows, out_f] = in[rows, in_f] * W^T + b (b may be null); requires linear_avx512_applies.
inline void linear_forward_avx512(float* out, const float* in, const float* W, const float* b, int rows, int in_f,
                                  int out_f) {
  gemm_avx512(out, out_f, in, in_f, W, in_f, true, b, rows, in_f, out_f);
}

}  // namespace redi::ops
