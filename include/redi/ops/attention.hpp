// redi/ops/attention.hpp — multi-head self-attention core (no projections), forward and
// backward, on strided views of the packed qkv buffer.
//
// qkv [B, L, 3D] with D = H*hd holds [q | k | v] along the last dim, head h at columns
// h*hd .. h*hd+hd-1 of each third. probs [B, H, L, L] = softmax(q k^T * hd^-0.5) is saved for
// the backward; out [B, L, D]. Backward scratch: B*H*L*L elements (dP/dS for every head).
//
// Parallelisation. Two strategies are implemented:
//  - Heads: `omp parallel for` over the B*H (b, h) pairs, each pair doing its small products
//    with the single-threaded Eigen GEMM (gemm_eigen; BLAS is never called inside a parallel
//    region) and its softmax rows inline.
//  - Blas: serial loop over (b, h) calling the (multi-threaded) BLAS gemm, with the row-wise
//    softmax / dS passes done for all heads at once in one OpenMP loop.
// Per core the BLAS strategy is the faster one (about 1.8x), but its small GEMMs stay serial,
// while the pairs of Heads are independent and scale with the threads: short sequences favour
// Heads, long ones the threaded BLAS. Hence Auto = Heads for L <= 128, Blas above, and Heads
// always without OpenBLAS (the measurements: docs/performance.md, "Attention strategy").
#pragma once
#include <cmath>
#include <cstdint>

#include "redi/ops/gemm.hpp"
#include "redi/ops/softmax.hpp"

namespace redi::ops {

enum class AttentionStrategy { Auto, Heads, Blas };

namespace detail {
/// Sequence lengths up to this use the per-head parallel strategy (docs/performance.md).
inline constexpr int kAttentionHeadsMaxL = 128;
}  // namespace detail

/// The strategy `Auto` resolves to for this shape.
inline AttentionStrategy attention_strategy(int B, int L, int H, int hd) {
  (void)hd;
#ifdef REDI_USE_OPENBLAS
  (void)B, (void)H;
  return L > detail::kAttentionHeadsMaxL ? AttentionStrategy::Blas : AttentionStrategy::Heads;
#else
  (void)B, (void)L, (void)H;
  return AttentionStrategy::Heads;  // Eigen gemm: per-head parallelism is always the better use
#endif
}

/// Elements of the backward's scratch (one dP/dS matrix per head), also the size of probs.
inline std::int64_t attention_scratch_elems(int B, int L, int H, int hd) {
  (void)hd;
  return std::int64_t(B) * H * L * L;
}

/// Forward with an explicit strategy (Auto = attention_strategy(B, L, H, hd)).
template <CpuReal T>
inline void attention_forward(const Cpu& dev, T* out, T* probs, const T* qkv, int B, int L, int H,
                              int hd, AttentionStrategy strategy) {
  if (strategy == AttentionStrategy::Auto) strategy = attention_strategy(B, L, H, hd);
  const int D = H * hd, ld = 3 * D;
  const T scale = T(1) / std::sqrt(T(hd));
  const int BH = B * H;
  const std::int64_t LL = std::int64_t(L) * L;
  auto q_of = [&](int bh) { return qkv + std::int64_t(bh / H) * L * ld + std::int64_t(bh % H) * hd; };
  auto o_of = [&](int bh) { return out + std::int64_t(bh / H) * L * D + std::int64_t(bh % H) * hd; };
  if (strategy == AttentionStrategy::Heads) {
#pragma omp parallel for schedule(static) if (BH > 1)
    for (int bh = 0; bh < BH; ++bh) {
      const T* q = q_of(bh);
      T* S = probs + bh * LL;
      gemm_eigen<T>(false, true, L, L, hd, scale, q, ld, q + D, ld, T(0), S, L);
      for (int r = 0; r < L; ++r) detail::softmax_row(S + std::int64_t(r) * L, S + std::int64_t(r) * L, L);
      gemm_eigen<T>(false, false, L, hd, L, T(1), S, L, q + 2 * D, ld, T(0), o_of(bh), D);
    }
  } else {
    for (int bh = 0; bh < BH; ++bh) {
      const T* q = q_of(bh);
      gemm<T>(dev, false, true, L, L, hd, scale, q, ld, q + D, ld, T(0), probs + bh * LL, L);
    }
    softmax_forward<T>(dev, probs, probs, BH * L, L);
    for (int bh = 0; bh < BH; ++bh)
      gemm<T>(dev, false, false, L, hd, L, T(1), probs + bh * LL, L, q_of(bh) + 2 * D, ld, T(0),
              o_of(bh), D);
  }
}

template <CpuReal T>
inline void attention_forward(const Cpu& dev, T* out, T* probs, const T* qkv, int B, int L, int H,
                              int hd) {
  attention_forward<T>(dev, out, probs, qkv, B, L, H, hd, AttentionStrategy::Auto);
}

/// Backward with an explicit strategy. dqkv [B, L, 3D] is overwritten; scratch holds
/// attention_scratch_elems(B, L, H, hd) elements.
///   dP = dout v^T ; dV = P^T dout ; dS = P * (dP - rowsum(dP * P)) ;
///   dQ = dS k * scale ; dK = dS^T q * scale.
template <CpuReal T>
inline void attention_backward(const Cpu& dev, T* dqkv, T* scratch, const T* dout, const T* qkv,
                               const T* probs, int B, int L, int H, int hd,
                               AttentionStrategy strategy) {
  if (strategy == AttentionStrategy::Auto) strategy = attention_strategy(B, L, H, hd);
  const int D = H * hd, ld = 3 * D;
  const T scale = T(1) / std::sqrt(T(hd));
  const int BH = B * H;
  const std::int64_t LL = std::int64_t(L) * L;
  auto off3 = [&](int bh) { return std::int64_t(bh / H) * L * ld + std::int64_t(bh % H) * hd; };
  auto off1 = [&](int bh) { return std::int64_t(bh / H) * L * D + std::int64_t(bh % H) * hd; };
  if (strategy == AttentionStrategy::Heads) {
#pragma omp parallel for schedule(static) if (BH > 1)
    for (int bh = 0; bh < BH; ++bh) {
      const T* q = qkv + off3(bh);
      const T* go = dout + off1(bh);
      const T* P = probs + bh * LL;
      T* dq = dqkv + off3(bh);
      T* dS = scratch + bh * LL;
      gemm_eigen<T>(false, true, L, L, hd, T(1), go, D, q + 2 * D, ld, T(0), dS, L);   // dP
      gemm_eigen<T>(true, false, L, hd, L, T(1), P, L, go, D, T(0), dq + 2 * D, ld);   // dV
      for (int r = 0; r < L; ++r) {
        T* row = dS + std::int64_t(r) * L;
        detail::softmax_backward_row(row, row, P + std::int64_t(r) * L, L);
      }
      gemm_eigen<T>(false, false, L, hd, L, scale, dS, L, q + D, ld, T(0), dq, ld);    // dQ
      gemm_eigen<T>(true, false, L, hd, L, scale, dS, L, q, ld, T(0), dq + D, ld);     // dK
    }
  } else {
    for (int bh = 0; bh < BH; ++bh) {
      const T* q = qkv + off3(bh);
      const T* go = dout + off1(bh);
      gemm<T>(dev, false, true, L, L, hd, T(1), go, D, q + 2 * D, ld, T(0), scratch + bh * LL, L);
      gemm<T>(dev, true, false, L, hd, L, T(1), probs + bh * LL, L, go, D, T(0),
              dqkv + off3(bh) + 2 * D, ld);
    }
    softmax_backward<T>(dev, scratch, scratch, probs, BH * L, L);
    for (int bh = 0; bh < BH; ++bh) {
      const T* q = qkv + off3(bh);
      T* dq = dqkv + off3(bh);
      const T* dS = scratch + bh * LL;
      gemm<T>(dev, false, false, L, hd, L, scale, dS, L, q + D, ld, T(0), dq, ld);
      gemm<T>(dev, true, false, L, hd, L, scale, dS, L, q, ld, T(0), dq + D, ld);
    }
  }
}

template <CpuReal T>
inline void attention_backward(const Cpu& dev, T* dqkv, T* scratch, const T* dout, const T* qkv,
                               const T* probs, int B, int L, int H, int hd) {
  attention_backward<T>(dev, dqkv, scratch, dout, qkv, probs, B, L, H, hd,
                        AttentionStrategy::Auto);
}

}  // namespace redi::ops
