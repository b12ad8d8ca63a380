// redi/ops/layernorm.hpp — LayerNorm over the last dim without affine parameters (the adaLN
// blocks of DiT use elementwise_affine=False), biased variance, eps inside the sqrt (PyTorch);
// and the affine forward (nn.LayerNorm with weight and bias: DINOv2's norms, inference only).
#pragma once
#include <cmath>
#include <cstdint>

#include "redi/core/parallel.hpp"
#include "redi/core/device.hpp"
#include "redi/core/dtype.hpp"

namespace redi::ops {

/// Mean and rstd = 1/sqrt(var + eps) of one row of C elements: two passes (vectorised partial
/// sums in T). Shared by layernorm_forward and layernorm_affine_forward.
template <class T>
struct RowStats {
  T mean, rstd;
};
template <CpuReal T>
inline RowStats<T> row_stats(const T* x, int C, T eps) {
  T s = 0;
#pragma omp simd reduction(+ : s)
  for (int c = 0; c < C; ++c) s += x[c];
  const T mu = s / T(C);
  T ss = 0;
#pragma omp simd reduction(+ : ss)
  for (int c = 0; c < C; ++c) {
    const T d = x[c] - mu;
    ss += d * d;
  }
  const T rs = T(1) / std::sqrt(ss / T(C) + eps);
  return {mu, rs};
}

/// out = (in - mean) * rstd per row of C elements; saves mean and rstd = 1/sqrt(var + eps).
/// Two-pass mean/variance (vectorised partial sums in T).
template <CpuReal T>
inline void layernorm_forward(const Cpu&, T* out, T* mean, T* rstd, const T* in, int rows, int C,
                              T eps = T(1e-6)) {
  [[maybe_unused]] const std::int64_t n = std::int64_t(rows) * C;
#pragma omp parallel for schedule(static) if (n > kOmpMinWork / 2)
  for (int r = 0; r < rows; ++r) {
    const T* x = in + std::int64_t(r) * C;
    T* y = out + std::int64_t(r) * C;
    const RowStats<T> st = row_stats(x, C, eps);
    const T mu = st.mean, rs = st.rstd;
#pragma omp simd
    for (int c = 0; c < C; ++c) y[c] = (x[c] - mu) * rs;
    if (mean) mean[r] = mu;
    if (rstd) rstd[r] = rs;
  }
}

namespace detail {
/// LayerNorm's input gradient v = rstd * (dout - mean(dout) - xhat * mean(dout * xhat)),
/// xhat = (in - mean) * rstd, written (din = v) or accumulated (din += v).
template <bool Accumulate, CpuReal T>
inline void layernorm_backward_rows(T* din, const T* dout, const T* in, const T* mean, const T* rstd, int rows,
                                    int C) {
  [[maybe_unused]] const std::int64_t n = std::int64_t(rows) * C;
#pragma omp parallel for schedule(static) if (n > kOmpMinWork / 2)
  for (int r = 0; r < rows; ++r) {
    const T* x = in + std::int64_t(r) * C;
    const T* g = dout + std::int64_t(r) * C;
    T* dx = din + std::int64_t(r) * C;
    const T mu = mean[r], rs = rstd[r];
    T sg = 0, sgx = 0;
#pragma omp simd reduction(+ : sg, sgx)
    for (int c = 0; c < C; ++c) {
      sg += g[c];
      sgx += g[c] * ((x[c] - mu) * rs);
    }
    const T mg = sg / T(C), mgx = sgx / T(C);
#pragma omp simd
    for (int c = 0; c < C; ++c) {
      const T v = rs * (g[c] - mg - ((x[c] - mu) * rs) * mgx);
      if constexpr (Accumulate) dx[c] += v;
      else dx[c] = v;
    }
  }
}
}  // namespace detail

/// din = rstd * (dout - mean(dout) - xhat * mean(dout * xhat)), xhat = (in - mean) * rstd.
template <CpuReal T>
inline void layernorm_backward(const Cpu&, T* din, const T* dout, const T* in, const T* mean,
                               const T* rstd, int rows, int C) {
  if (din) detail::layernorm_backward_rows<false>(din, dout, in, mean, rstd, rows, C);
}

/// acc += dL/din: layernorm_backward added into the residual gradient in the same pass (the DiT
/// block's dh += LN'(...), without writing and re-reading the gradient of the LayerNorm input).
template <CpuReal T>
inline void layernorm_backward_accumulate(const Cpu&, T* acc, const T* dout, const T* in, const T* mean,
                                          const T* rstd, int rows, int C) {
  detail::layernorm_backward_rows<true>(acc, dout, in, mean, rstd, rows, C);
}

/// out = (in - mean) * rstd * gamma + beta per row of C elements (nn.LayerNorm with
/// elementwise_affine=True), the same two-pass statistics as layernorm_forward. Forward only
/// (no statistics saved). out may alias in.
template <CpuReal T>
inline void layernorm_affine_forward(const Cpu&, T* out, const T* in, const T* gamma, const T* beta, int rows, int C,
                                     T eps = T(1e-6)) {
  [[maybe_unused]] const std::int64_t n = std::int64_t(rows) * C;
#pragma omp parallel for schedule(static) if (n > kOmpMinWork / 2)
  for (int r = 0; r < rows; ++r) {
    const T* x = in + std::int64_t(r) * C;
    T* y = out + std::int64_t(r) * C;
    const RowStats<T> st = row_stats(x, C, eps);
    const T mu = st.mean, rs = st.rstd;
#pragma omp simd
    for (int c = 0; c < C; ++c) y[c] = (x[c] - mu) * rs * gamma[c] + beta[c];
  }
}

}  // namespace redi::ops
