// redi/cuda/ops/attention.cuh — multi-head self-attention core with the exact contract of
// redi/ops/attention.hpp (probs saved): qkv [B, L, 3D] (D = H*hd, [q | k | v], head h at
// columns h*hd.. of each third), probs [B, H, L, L] = softmax(q k^T hd^-0.5), out [B, L, D].
// Implementation: strided-batched cuBLASLt GEMMs straight on the packed qkv layout (one call
// per head with the batch over B, or per sample with the batch over H, whichever loops less)
// plus the row softmax kernels. Works for any L and hd, fp32 or bf16. With bf16 the scaled
// scores q k^T hd^-0.5 are written in fp32 (bf16 GEMM operands, fp32 output, in the context's
// grow-only scratch: B*H*L*L*4 bytes, 1 GiB for SiT-XL/2 at batch 256 — the fused cuDNN path
// needs none) and the softmax reads them in fp32; only the probs are stored in bf16. Backward scratch:
// attention_scratch_elems(ctx, B, L, H, hd) = B*H*L*L elements (dP, then dS in place).
// The fused cuDNN flash path (no probs, bf16) is in attention_cudnn.cuh.
#pragma once
#include <cmath>
#include <type_traits>

#include "redi/cuda/ops/gemm.cuh"
#include "redi/cuda/ops/softmax.cuh"

namespace redi {
namespace cuda_detail {

/// Element offsets of sample b, head h in qkv (q part), probs and out, and the strides between
/// consecutive batch items for the chosen loop order.
struct AttnGeom {
  int B, L, H, hd, D, ld3;
  std::int64_t LL;
  bool loop_heads;  // true: loop over h, batch over b ; false: loop over b, batch over h
  int outer() const { return loop_heads ? H : B; }
  int batch() const { return loop_heads ? B : H; }
  std::int64_t qkv_off(int o) const {
    return loop_heads ? std::int64_t(o) * hd : std::int64_t(o) * L * ld3;
  }
  std::int64_t probs_off(int o) const { return loop_heads ? std::int64_t(o) * LL : std::int64_t(o) * H * LL; }
  std::int64_t out_off(int o) const {
    return loop_heads ? std::int64_t(o) * hd : std::int64_t(o) * L * D;
  }
  std::int64_t qkv_stride() const { return loop_heads ? std::int64_t(L) * ld3 : hd; }
  std::int64_t probs_stride() const { return loop_heads ? std::int64_t(H) * LL : LL; }
  std::int64_t out_stride() const { return loop_heads ? std::int64_t(L) * D : hd; }
};

inline AttnGeom attn_geom(int B, int L, int H, int hd) {
  AttnGeom g{B, L, H, hd, H * hd, 3 * H * hd, std::int64_t(L) * L, H <= B};
  return g;
}

}  // namespace cuda_detail

namespace ops {

/// Scratch elements attention_backward needs (B*H*L*L).
inline std::int64_t attention_scratch_elems(const Cuda&, int B, int L, int H, int hd) {
  (void)hd;
  return std::int64_t(B) * H * L * L;
}

template <CudaReal T>
void attention_forward(const Cuda& ctx, T* out, T* probs, const T* qkv, int B, int L, int H,
                       int hd) {
  using namespace cuda_detail;
  if (B <= 0 || L <= 0 || H <= 0 || hd <= 0) return;
  const auto g = attn_geom(B, L, H, hd);
  const float scale = 1.0f / std::sqrt(float(hd));
  // scores: fp32 (scratch) under bf16, the probs buffer itself under fp32
  float* scores = nullptr;
  if constexpr (std::is_same_v<T, float>)
    scores = probs;
  else
    scores = static_cast<float*>(ctx.scratch(std::size_t(B) * H * g.LL * sizeof(float)));
  for (int o = 0; o < g.outer(); ++o) {
    const T* q = qkv + g.qkv_off(o);
    gemm_strided_batched(ctx, false, true, L, L, hd, scale, q, g.ld3, g.qkv_stride(), q + g.D,
                         g.ld3, g.qkv_stride(), 0.0f, scores + g.probs_off(o), L,
                         g.probs_stride(), g.batch());
  }
  softmax_forward_rows(ctx, probs, scores, std::int64_t(B) * H * L, L);
  for (int o = 0; o < g.outer(); ++o) {
    const T* v = qkv + g.qkv_off(o) + 2 * g.D;
    gemm_strided_batched(ctx, false, false, L, hd, L, 1.0f, probs + g.probs_off(o), L,
                         g.probs_stride(), v, g.ld3, g.qkv_stride(), 0.0f, out + g.out_off(o),
                         g.D, g.out_stride(), g.batch());
  }
}

/// dqkv [B, L, 3D] is overwritten; scratch holds attention_scratch_elems(ctx, B, L, H, hd).
///   dP = dout v^T ; dV = P^T dout ; dS = P * (dP - rowsum(dP * P)) ;
///   dQ = dS k * scale ; dK = dS^T q * scale.
template <CudaReal T>
void attention_backward(const Cuda& ctx, T* dqkv, T* scratch, const T* dout, const T* qkv,
                        const T* probs, int B, int L, int H, int hd) {
  using namespace cuda_detail;
  if (B <= 0 || L <= 0 || H <= 0 || hd <= 0 || !dqkv) return;
  const auto g = attn_geom(B, L, H, hd);
  const float scale = 1.0f / std::sqrt(float(hd));
  for (int o = 0; o < g.outer(); ++o) {
    const T* q = qkv + g.qkv_off(o);
    const T* go = dout + g.out_off(o);
    T* dq = dqkv + g.qkv_off(o);
    // dP = dO V^T
    gemm_strided_batched(ctx, false, true, L, L, hd, 1.0f, go, g.D, g.out_stride(), q + 2 * g.D,
                         g.ld3, g.qkv_stride(), 0.0f, scratch + g.probs_off(o), L,
                         g.probs_stride(), g.batch());
    // dV = P^T dO
    gemm_strided_batched(ctx, true, false, L, hd, L, 1.0f, probs + g.probs_off(o), L,
                         g.probs_stride(), go, g.D, g.out_stride(), 0.0f, dq + 2 * g.D, g.ld3,
                         g.qkv_stride(), g.batch());
  }
  softmax_backward_rows(ctx, scratch, scratch, probs, std::int64_t(B) * H * L, L);
  for (int o = 0; o < g.outer(); ++o) {
    const T* q = qkv + g.qkv_off(o);
    const T* dS = scratch + g.probs_off(o);
    T* dq = dqkv + g.qkv_off(o);
    // dQ = scale * dS K
    gemm_strided_batched(ctx, false, false, L, hd, L, scale, dS, L, g.probs_stride(), q + g.D,
                         g.ld3, g.qkv_stride(), 0.0f, dq, g.ld3, g.qkv_stride(), g.batch());
    // dK = scale * dS^T Q
    gemm_strided_batched(ctx, true, false, L, hd, L, scale, dS, L, g.probs_stride(), q, g.ld3,
                         g.qkv_stride(), 0.0f, dq + g.D, g.ld3, g.qkv_stride(), g.batch());
  }
}

}  // namespace ops
}  // namespace redi
