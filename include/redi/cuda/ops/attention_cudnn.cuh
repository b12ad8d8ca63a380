// redi/cuda/ops/attention_cudnn.cuh — fused scaled-dot-product attention (flash attention),
// forward and backward, through the cuDNN 9 backend graph API (redi/cuda/cudnn_graph.hpp; no
// cudnn-frontend). bf16 only. Same packed layout as redi/ops/attention.hpp, but no
// probabilities are saved: the forward writes the per-row log-sum-exp instead.
//
//   qkv   [B, L, 3D] bf16, D = H*hd, [q | k | v] along the last dim, head h at columns h*hd..
//   out   [B, L, D]  bf16, head h at columns h*hd..
//   stats [B, H, L]  fp32, logsumexp_j(q_i . k_j * hd^-0.5) (non-causal, no mask, no dropout)
//   dqkv  [B, L, 3D] bf16, fully overwritten ([dQ | dK | dV])
//
// cuDNN reads the packed layout through strides (Q: b L*3D, h hd, s 3D, d 1; K and V the same
// at +D and +2D; O: b L*D, h hd, s D, d 1), so nothing is repacked. The graphs follow what
// cudnn-frontend's composite SDPA nodes build (the pattern cuDNN's fused flash-attention engines
// recognise); all intermediates are virtual fp32, the matmul inputs P and dS are bf16:
//   fwd: S = matmul(Q, K^T); S *= scale (by-value fp32 scalar); M = reduce_max(S);
//        E = exp(S - M); Z = reduce_add(E); stats = M + log(Z); P = E / Z (bf16);
//        O = matmul(P, V)
//   bwd: Dsum = reduce_add(dO * O) * 1 (fp32, in the workspace); S = matmul(Q, K^T) * scale;
//        P = exp(S - stats); dV = matmul(reshape(P)^T, dO); dP = matmul(dO, V^T);
//        dS = (dP - Dsum) * P * scale; dK = matmul(reshape(dS)^T, Q);
//        dQacc = matmul(dS, reshape(K^T)) (fp32, in the workspace); dQ = identity(dQacc)
// Both plans (heuristics mode A, else FALLBACK: the first config whose plan finalises) are built
// once per (B, L, H, hd) and cached in the context; the workspaces come from ctx.scratch(). A
// forward-only query (flash_attention_supported(..., backward = false): the inference arena,
// sampling batches) builds and caches the forward plan alone; a later training query for the
// same shape builds both.
//
// STATUS: compiled (nvcc, sm_80/sm_90, cuDNN 9.19 headers) but NOT yet run on a GPU. Whether
// cuDNN's engines accept these graphs is learnt from flash_attention_supported() /
// flash_attention_status() on the first GPU run (tests/cuda/test_cuda_attention.cu).
//
// Support: sm_80+, cuDNN runtime >= 9.0 (not 9.10.0/9.10.1), hd % 8 == 0, L >= 2, 16-byte
// aligned pointers; for L % 128 != 0 the backward needs cuDNN > 9.15.0 (older versions need
// cudnn-frontend's padding-mask workaround, not implemented here). Off when
// ctx.set_cudnn_sdpa(false) or the environment variable REDI_CUDNN_SDPA=0.
#pragma once
#include <cudnn.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <type_traits>

#include "redi/cuda/cudnn.hpp"
#include "redi/cuda/cudnn_graph.hpp"
#include "redi/cuda/ops/common.cuh"

namespace redi {
namespace cuda_detail {

/// The cached fwd (+ bwd) plans of one shape (or why there are none).
struct SdpaPlans {
  bool ok = false;
  bool has_backward = false;
  std::string reason;  // why not ok, or a one-line summary when ok
  cudnn_graph::Graph fwd, bwd;
  std::int64_t fwd_ws = 0, bwd_ws = 0;
};

namespace sdpa {

using cudnn_graph::Dims;
using cudnn_graph::Graph;

// Unique ids of the non-virtual tensors (virtual ones count up from kVirtual).
enum : std::int64_t {
  kQ = 1, kK, kV, kO, kStats, kScale, kDO, kDQ, kDK, kDV, kDsum, kDQAcc, kOne, kVirtual = 100
};

/// Dims and strides of the packed layout for one shape.
struct Geom {
  std::int64_t B, L, H, hd, D;
  Geom(int b, int l, int h, int d) : B(b), L(l), H(h), hd(d), D(std::int64_t(h) * d) {}
  Dims bhsd() const { return {B, H, L, hd}; }
  Dims qkv_str() const { return {L * 3 * D, hd, 3 * D, 1}; }      // Q, K, V, dQ, dK, dV
  Dims bhds() const { return {B, H, hd, L}; }
  Dims qkv_t_str() const { return {L * 3 * D, hd, 1, 3 * D}; }    // K^T, V^T (same memory)
  Dims o_str() const { return {L * D, hd, D, 1}; }                // O, dO
  Dims row() const { return {B, H, L, 1}; }                       // stats, max, sums
  Dims row_str() const { return {H * L, L, 1, 1}; }
  Dims ss() const { return {B, H, L, L}; }                        // scores
  Dims ss_str() const { return {H * L * L, L * L, L, 1}; }
  Dims ss_t_str() const { return {H * L * L, L * L, 1, L}; }      // transposed view of scores
  Dims bhsd_packed_str() const { return {H * L * hd, L * hd, hd, 1}; }  // dQ accumulator
};

constexpr cudnnDataType_t kBF16 = CUDNN_DATA_BFLOAT16, kF32 = CUDNN_DATA_FLOAT;
inline constexpr Dims kScalar{1, 1, 1, 1};

inline void build_forward(Graph& g, const Geom& s) {
  std::int64_t vid = kVirtual;
  auto virt = [&](const char* name, cudnnDataType_t t, const Dims& d, const Dims& st) {
    return g.tensor(name, vid++, t, d, st, /*virtual=*/true);
  };
  auto q = g.tensor("Q", kQ, kBF16, s.bhsd(), s.qkv_str());
  auto kt = g.tensor("K^T", kK, kBF16, s.bhds(), s.qkv_t_str());
  auto v = g.tensor("V", kV, kBF16, s.bhsd(), s.qkv_str());
  auto o = g.tensor("O", kO, kBF16, s.bhsd(), s.o_str());
  auto stats = g.tensor("Stats", kStats, kF32, s.row(), s.row_str());
  auto scale = g.tensor("attn_scale", kScale, kF32, kScalar, kScalar, false, /*by_value=*/true);

  auto sc = virt("S", kF32, s.ss(), s.ss_str());
  g.matmul("bmm1 Q*K^T", q, kt, sc);
  auto scs = virt("S*scale", kF32, s.ss(), s.ss_str());
  g.pointwise("attn_scale", CUDNN_POINTWISE_MUL, sc, scale, scs);
  // softmax, as cudnn-frontend's composite softmax with a Stats output
  auto mx = virt("max", kF32, s.row(), s.row_str());
  g.reduction("softmax max", CUDNN_REDUCE_TENSOR_MAX, scs, mx);
  auto sub = virt("S-max", kF32, s.ss(), s.ss_str());
  g.pointwise("softmax sub", CUDNN_POINTWISE_SUB, scs, mx, sub);
  auto ex = virt("exp(S-max)", kF32, s.ss(), s.ss_str());
  g.pointwise("softmax exp", CUDNN_POINTWISE_EXP, sub, nullptr, ex);
  auto sum = virt("sum exp", kF32, s.row(), s.row_str());
  g.reduction("softmax sum", CUDNN_REDUCE_TENSOR_ADD, ex, sum);
  auto lg = virt("log sum", kF32, s.row(), s.row_str());
  g.pointwise("softmax log", CUDNN_POINTWISE_LOG, sum, nullptr, lg);
  g.pointwise("softmax stats", CUDNN_POINTWISE_ADD, mx, lg, stats);
  auto p = virt("P", kBF16, s.ss(), s.ss_str());  // bmm2's A operand in the I/O type
  g.pointwise("softmax div", CUDNN_POINTWISE_DIV, ex, sum, p);
  g.matmul("bmm2 P*V", p, v, o);
}

inline void build_backward(Graph& g, const Geom& s) {
  std::int64_t vid = kVirtual;
  auto virt = [&](const char* name, cudnnDataType_t t, const Dims& d, const Dims& st) {
    return g.tensor(name, vid++, t, d, st, /*virtual=*/true);
  };
  auto q = g.tensor("Q", kQ, kBF16, s.bhsd(), s.qkv_str());
  auto kt = g.tensor("K^T", kK, kBF16, s.bhds(), s.qkv_t_str());
  auto vt = g.tensor("V^T", kV, kBF16, s.bhds(), s.qkv_t_str());
  auto o = g.tensor("O", kO, kBF16, s.bhsd(), s.o_str());
  auto dout = g.tensor("dO", kDO, kBF16, s.bhsd(), s.o_str());
  auto stats = g.tensor("Stats", kStats, kF32, s.row(), s.row_str());
  auto scale = g.tensor("attn_scale", kScale, kF32, kScalar, kScalar, false, true);
  auto one = g.tensor("one", kOne, kF32, kScalar, kScalar, false, true);
  auto dq = g.tensor("dQ", kDQ, kBF16, s.bhsd(), s.qkv_str());
  auto dk = g.tensor("dK", kDK, kBF16, s.bhsd(), s.qkv_str());
  auto dv = g.tensor("dV", kDV, kBF16, s.bhsd(), s.qkv_str());
  auto dsum = g.tensor("softmax_sum", kDsum, kF32, s.row(), s.row_str());
  auto dq_acc = g.tensor("dQ_accum", kDQAcc, kF32, s.bhsd(), s.bhsd_packed_str());

  // Dsum = rowsum(dO * O) (cudnn-frontend's virtual strides for the product, kept as is)
  auto doo = virt("dO*O", kF32, s.bhsd(), {s.H * s.L * s.hd, s.L * s.hd, s.H * s.hd, 1});
  g.pointwise("mul dO O", CUDNN_POINTWISE_MUL, dout, o, doo);
  auto red = virt("rowsum dO*O", kF32, s.row(), s.row_str());
  g.reduction("reduce dO*O", CUDNN_REDUCE_TENSOR_ADD, doo, red);
  g.pointwise("scale dropout inv", CUDNN_POINTWISE_MUL, red, one, dsum);
  // P = exp(S * scale - stats)
  auto sc = virt("S", kF32, s.ss(), s.ss_str());
  g.matmul("matmul Q*K^T", q, kt, sc);
  auto scs = virt("S*scale", kF32, s.ss(), s.ss_str());
  g.pointwise("mul S attn_scale", CUDNN_POINTWISE_MUL, sc, scale, scs);
  auto sub = virt("S-stats", kF32, s.ss(), s.ss_str());
  g.pointwise("sub S stats", CUDNN_POINTWISE_SUB, scs, stats, sub);
  auto p = virt("P", kF32, s.ss(), s.ss_str());
  g.pointwise("exp S", CUDNN_POINTWISE_EXP, sub, nullptr, p);
  // dV = P^T dO
  auto pt = virt("P^T", kBF16, s.ss(), s.ss_t_str());
  g.reshape("reshape P", p, pt);
  g.matmul("matmul P^T*dO", pt, dout, dv);
  // dS = (dO V^T - Dsum) * P * scale
  auto dp = virt("dP", kF32, s.ss(), s.ss_str());
  g.matmul("matmul dO*V^T", dout, vt, dp);
  auto dps = virt("dP-Dsum", kF32, s.ss(), s.ss_str());
  g.pointwise("sub dP softmax_sum", CUDNN_POINTWISE_SUB, dp, dsum, dps);
  auto dpp = virt("(dP-Dsum)*P", kF32, s.ss(), s.ss_str());
  g.pointwise("mul dP P", CUDNN_POINTWISE_MUL, dps, p, dpp);
  auto ds = virt("dS", kF32, s.ss(), s.ss_str());
  g.pointwise("mul dS attn_scale", CUDNN_POINTWISE_MUL, dpp, scale, ds);
  // dK = dS^T Q
  auto dst = virt("dS^T", kBF16, s.ss(), s.ss_t_str());
  g.reshape("reshape dS", ds, dst);
  g.matmul("matmul dS^T*Q", dst, q, dk);
  // dQ = dS K (fp32 accumulator, then converted)
  auto k = virt("K", kF32, s.bhsd(), s.qkv_str());  // K^T viewed back (frontend: fp32 virtual)
  g.reshape("reshape K", kt, k);
  g.matmul("matmul dS*K", ds, k, dq_acc);
  g.pointwise("identity dQ", CUDNN_POINTWISE_IDENTITY, dq_acc, nullptr, dq);
}

/// Why the flash path is switched off ("" when it is not).
inline std::string disabled_reason(const Cuda& ctx) {
  if (const char* e = std::getenv("REDI_CUDNN_SDPA")) {
    if (!std::strcmp(e, "0") || !std::strcmp(e, "off") || !std::strcmp(e, "OFF") ||
        !std::strcmp(e, "false"))
      return std::string("disabled by the environment (REDI_CUDNN_SDPA=") + e + ")";
  }
  if (!ctx.cudnn_sdpa()) return "disabled by the context (Cuda::set_cudnn_sdpa(false))";
  return {};
}

inline std::string shape_str(int B, int L, int H, int hd) {
  return "B=" + std::to_string(B) + " L=" + std::to_string(L) + " H=" + std::to_string(H) +
         " hd=" + std::to_string(hd);
}

/// Reasons known before asking cuDNN ("" when none).
inline std::string precheck(const Cuda& ctx, int B, int L, int H, int hd) {
  if (B <= 0 || L <= 0 || H <= 0 || hd <= 0) return "empty or negative shape";
  if (L < 2) return "L = 1 is not supported by cuDNN's SDPA backward";
  if (hd % 8 != 0 || hd > 256) return "head dim must be a multiple of 8 and <= 256";
  const std::size_t v = cudnnGetVersion();
  if (v < 90000) return "cuDNN runtime " + std::to_string(v) + " < 9.0";
  if (v == 91000 || v == 91001) return "cuDNN 9.10.0/9.10.1 SDPA has known bugs";
  if (v <= 91500 && L % 128 != 0)
    return "cuDNN runtime " + std::to_string(v) + " <= 9.15.0 needs cudnn-frontend's "
           "padding-mask workaround for L % 128 != 0 in the backward (not implemented)";
  int major = 0;
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, ctx.device()) !=
      cudaSuccess) {
    (void)cudaGetLastError();
    return "cudaDeviceGetAttribute(compute capability) failed";
  }
  if (major < 8) return "needs sm_80 or newer (device is sm_" + std::to_string(major) + "x)";
  return {};
}

}  // namespace sdpa

/// The cached plans for this shape (built on first use; never throws for "unsupported"); with
/// backward = false the forward plan alone (or the full pair when that is already cached).
inline const SdpaPlans& sdpa_plans(const Cuda& ctx, int B, int L, int H, int hd, bool backward = true) {
  auto& st = ctx.state();
  const std::string shape = std::to_string(B) + "," + std::to_string(L) + "," + std::to_string(H) + "," +
                            std::to_string(hd);
  const std::string key = "cudnn_sdpa:" + shape, fkey = "cudnn_sdpa_fwd:" + shape;
  if (auto it = st.plans.find(key); it != st.plans.end())
    return *static_cast<const SdpaPlans*>(it->second.get());
  if (!backward)
    if (auto it = st.plans.find(fkey); it != st.plans.end())
      return *static_cast<const SdpaPlans*>(it->second.get());
  auto p = std::make_shared<SdpaPlans>();
  p->reason = sdpa::precheck(ctx, B, L, H, hd);
  if (p->reason.empty()) {
    try {
      cudnnHandle_t h = cudnn_handle(ctx);
      const sdpa::Geom g(B, L, H, hd);
      sdpa::build_forward(p->fwd, g);
      p->fwd_ws = p->fwd.build_plan(h, "cuDNN SDPA forward");
      if (backward) {
        sdpa::build_backward(p->bwd, g);
        p->bwd_ws = p->bwd.build_plan(h, "cuDNN SDPA backward");
      }
      p->has_backward = backward;
      p->ok = true;
      p->reason = "ok (cuDNN " + std::to_string(cudnnGetVersion()) + ", workspace fwd " +
                  std::to_string(p->fwd_ws) + " B, bwd " + std::to_string(p->bwd_ws) + " B)";
    } catch (const std::exception& e) {
      p->ok = false;
      p->reason = e.what();
      p->fwd = {};
      p->bwd = {};
      (void)cudaGetLastError();  // do not leave a failed build's error for the next launch check
    }
  }
  auto* raw = p.get();
  st.plans.emplace(backward ? key : fkey, std::shared_ptr<void>(std::move(p)));
  return *raw;
}

/// The plans, or redi::Error naming the op, the shape and the reason.
inline const SdpaPlans& sdpa_require(const Cuda& ctx, const char* op, int B, int L, int H, int hd,
                                     bool backward) {
  std::string why = sdpa::disabled_reason(ctx);
  if (why.empty()) {
    const auto& p = sdpa_plans(ctx, B, L, H, hd, backward);
    if (p.ok) return p;
    why = p.reason;
  }
  REDI_FAIL(op, ": the cuDNN fused SDPA is not available for the shape ",
            sdpa::shape_str(B, L, H, hd), ": ", why,
            " (check ops::flash_attention_supported first; use ops::attention_forward/backward)");
}

inline void sdpa_check_aligned(const char* op, const void* p, const char* name) {
  REDI_CHECK(reinterpret_cast<std::uintptr_t>(p) % 16 == 0, op, ": `", name,
             "` must be 16-byte aligned for the cuDNN fused SDPA");
}

}  // namespace cuda_detail

namespace ops {

/// Whether the cuDNN fused SDPA runs this shape: false for any T but bf16; for bf16 builds and
/// caches the forward and (unless backward is false: inference) backward plans and answers
/// whether they finalised. Never throws for "unsupported" (see flash_attention_status).
template <class T>
bool flash_attention_supported(const Cuda& ctx, int B, int L, int H, int hd, bool backward = true) {
  if constexpr (!std::is_same_v<T, bf16>) {
    (void)ctx, (void)B, (void)L, (void)H, (void)hd;
    return false;
  } else {
    if (!cuda_detail::sdpa::disabled_reason(ctx).empty()) return false;
    return cuda_detail::sdpa_plans(ctx, B, L, H, hd, backward).ok;
  }
}

/// "ok (...)" when the bf16 flash path runs this shape, otherwise why not (the kept reason of
/// the failed cuDNN call, a precondition, or the disabling switch). Builds the plans if needed.
inline std::string flash_attention_status(const Cuda& ctx, int B, int L, int H, int hd) {
  if (auto why = cuda_detail::sdpa::disabled_reason(ctx); !why.empty()) return why;
  return cuda_detail::sdpa_plans(ctx, B, L, H, hd).reason;
}

/// out [B, L, D] and stats [B, H, L] (row log-sum-exp of the scaled scores) from qkv. Throws
/// redi::Error naming the shape when flash_attention_supported<bf16> is false for it. Empty
/// shapes are a no-op.
inline void flash_attention_forward(const Cuda& ctx, bf16* out, float* stats, const bf16* qkv,
                                    int B, int L, int H, int hd) {
  using namespace cuda_detail;
  constexpr const char* op = "ops::flash_attention_forward";
  if (B == 0 || L == 0 || H == 0 || hd == 0) return;
  const auto& p = sdpa_require(ctx, op, B, L, H, hd, /*backward=*/false);
  sdpa_check_aligned(op, qkv, "qkv");
  sdpa_check_aligned(op, out, "out");
  sdpa_check_aligned(op, stats, "stats");
  const std::int64_t D = std::int64_t(H) * hd;
  float scale = 1.0f / std::sqrt(float(hd));
  void* ws = p.fwd_ws > 0 ? ctx.scratch(std::size_t(p.fwd_ws)) : nullptr;
  auto* q = const_cast<bf16*>(qkv);
  const std::array<std::int64_t, 6> uids{sdpa::kQ, sdpa::kK, sdpa::kV, sdpa::kO, sdpa::kStats,
                                         sdpa::kScale};
  const std::array<void*, 6> ptrs{q, q + D, q + 2 * D, out, stats, &scale};
  cudnn_graph::execute(cudnn_handle(ctx), p.fwd.plan(), uids, ptrs, ws, "cuDNN SDPA forward");
}

/// dqkv [B, L, 3D] (overwritten) from dout [B, L, D], the forward's qkv, out and stats. Throws
/// redi::Error naming the shape when flash_attention_supported<bf16> is false for it.
/// Workspace: the plan's plus B*H*L*(hd + 1) floats (dQ accumulator, rowsum(dO*O)), from
/// ctx.scratch().
inline void flash_attention_backward(const Cuda& ctx, bf16* dqkv, const bf16* dout,
                                     const bf16* qkv, const bf16* out, const float* stats, int B,
                                     int L, int H, int hd) {
  using namespace cuda_detail;
  constexpr const char* op = "ops::flash_attention_backward";
  if (B == 0 || L == 0 || H == 0 || hd == 0) return;
  const auto& p = sdpa_require(ctx, op, B, L, H, hd, /*backward=*/true);
  sdpa_check_aligned(op, dqkv, "dqkv");
  sdpa_check_aligned(op, dout, "dout");
  sdpa_check_aligned(op, qkv, "qkv");
  sdpa_check_aligned(op, out, "out");
  sdpa_check_aligned(op, stats, "stats");
  const std::int64_t D = std::int64_t(H) * hd, rows = std::int64_t(B) * H * L;
  auto up = [](std::size_t n) { return (n + 255) / 256 * 256; };
  const std::size_t ws_bytes = up(std::size_t(p.bwd_ws)), sum_bytes = up(rows * sizeof(float));
  const std::size_t acc_bytes = std::size_t(rows) * hd * sizeof(float);
  auto* base = static_cast<char*>(ctx.scratch(ws_bytes + sum_bytes + acc_bytes));
  void* dsum = base + ws_bytes;
  void* acc = base + ws_bytes + sum_bytes;
  // cudnn-frontend zeroes the dQ accumulator itself only before cuDNN 9.6.0.
  if (cudnnGetVersion() < 90600) ctx.zero_async(acc, acc_bytes);
  float scale = 1.0f / std::sqrt(float(hd)), one = 1.0f;
  auto* q = const_cast<bf16*>(qkv);
  const std::array<std::int64_t, 13> uids{sdpa::kQ,  sdpa::kK,     sdpa::kV,    sdpa::kO,
                                          sdpa::kDO, sdpa::kStats, sdpa::kScale, sdpa::kOne,
                                          sdpa::kDsum, sdpa::kDQAcc, sdpa::kDQ, sdpa::kDK,
                                          sdpa::kDV};
  const std::array<void*, 13> ptrs{q, q + D, q + 2 * D, const_cast<bf16*>(out),
                                   const_cast<bf16*>(dout), const_cast<float*>(stats), &scale,
                                   &one, dsum, acc, dqkv, dqkv + D, dqkv + 2 * D};
  cudnn_graph::execute(cudnn_handle(ctx), p.bwd.plan(), uids, ptrs, base, "cuDNN SDPA backward");
}

}  // namespace ops
}  // namespace redi
