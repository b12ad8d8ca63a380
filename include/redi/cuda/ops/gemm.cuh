// redi/cuda/ops/gemm.cuh — row-major GEMM through cuBLASLt:
//   C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C     (op = transpose when the flag is set)
// fp32 (TF32 tensor cores when ctx.tf32()), or bf16 A/B with fp32 accumulation and a bf16 or
// fp32 C. Strided batches, and an optional bias epilogue (C[m, n] += bias[n]) used by
// linear_forward. Row-major C is column-major C^T = op(B)^T op(A)^T, so cuBLASLt sees m = N,
// n = M with the user's B as its A. Plans (descriptors + heuristic algo) are cached in the
// context, keyed by shape, types, flags and pointer alignments. beta == 0: C is not read.
// Where cuBLASLt's heuristic offers no algorithm the plan falls back to
// cublasGemmStridedBatchedEx (same math; bias added by a small kernel).
// Training epilogues (GemmCall::epi, batch 1; cuBLASLt's column-major D is the user's C^T, so
// "rows of D" are the user's columns N):
//   GeluAux  D = gelu(AB + bias), aux = AB + bias       (CUBLASLT_EPILOGUE_GELU_AUX[_BIAS])
//   DGelu    D = (AB) * gelu'(aux), bgrad = sum of D over the user's rows (M)
//                                                      (CUBLASLT_EPILOGUE_DGELU[_BGRAD])
//   BGradB   D = AB (+ beta C), bgrad = sum of the user's A over K: with ta (A = dout stored
//            [K, M]) the column sums of dout, the bias gradient of linear_backward
//                                                      (CUBLASLT_EPILOGUE_BGRADB: Lt's B is the user's A)
// aux is row-major [M, N] with leading dimension aux_ld (cuBLASLt: a multiple of 8, in elements,
// of D's type); bgrad is OVERWRITTEN (length N for DGelu, M for BGradB, D's element type). The
// GELU is the tanh approximation (as ops/activation.hpp; PyTorch pull request 104061 says so
// of cuBLASLt's; tests/cuda/test_cuda_fused.cu checks it against both forms). Epilogue calls
// are only tried when epilogue_eligible() holds (ld multiple of 8, every pointer 16-byte
// aligned); lt_matmul returns false, having done nothing, when they are not or when cuBLASLt
// offers no algorithm (reported once per epilogue on stderr): the caller then runs the unfused
// ops.
#pragma once
#include <cublasLt.h>
#include <cublas_v2.h>

#include <cstdio>
#include <memory>
#include <string>

#include "redi/cuda/ops/common.cuh"

namespace redi {
namespace cuda_detail {

inline cublasLtHandle_t lt_handle(const Cuda& ctx) {
  auto& s = ctx.state();
  if (!s.cublaslt) {
    cublasLtHandle_t h = nullptr;
    REDI_CUBLAS_CHECK(cublasLtCreate(&h));
    s.cublaslt = std::shared_ptr<void>(h, [](void* p) {
      (void)cublasLtDestroy(static_cast<cublasLtHandle_t>(p));
    });
  }
  return static_cast<cublasLtHandle_t>(s.cublaslt.get());
}

/// The classic cuBLAS handle (bound to the context's stream and the shared workspace): the
/// fallback when cuBLASLt's heuristic offers no algorithm (e.g. odd alignments).
inline cublasHandle_t cublas_handle(const Cuda& ctx) {
  auto& s = ctx.state();
  if (!s.cublas) {
    cublasHandle_t h = nullptr;
    REDI_CUBLAS_CHECK(cublasCreate(&h));
    s.cublas = std::shared_ptr<void>(h, [](void* p) {
      (void)cublasDestroy(static_cast<cublasHandle_t>(p));
    });
    REDI_CUBLAS_CHECK(cublasSetStream(h, s.stream));
    if (s.lt_workspace)
      REDI_CUBLAS_CHECK(cublasSetWorkspace(h, s.lt_workspace, s.lt_workspace_bytes));
  }
  auto h = static_cast<cublasHandle_t>(s.cublas.get());
  REDI_CUBLAS_CHECK(cublasSetStream(h, s.stream));
  return h;
}

template <class T> constexpr cudaDataType_t cuda_dtype();
template <> constexpr cudaDataType_t cuda_dtype<float>() { return CUDA_R_32F; }
template <> constexpr cudaDataType_t cuda_dtype<bf16>() { return CUDA_R_16BF; }

/// Largest power of two (<= 256) dividing the address and every batch stride in bytes.
inline unsigned alignment_of(const void* p, std::int64_t stride_bytes = 0) {
  std::uintptr_t v = reinterpret_cast<std::uintptr_t>(p) | std::uintptr_t(stride_bytes) | 256u;
  return unsigned(v & (~v + 1));
}

struct LtPlan {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulAlgo_t algo{};
  bool classic = false;  // no cuBLASLt algorithm: use cublasGemmStridedBatchedEx
  LtPlan() = default;
  LtPlan(const LtPlan&) = delete;
  LtPlan& operator=(const LtPlan&) = delete;
  ~LtPlan() {
    if (c) (void)cublasLtMatrixLayoutDestroy(c);
    if (b) (void)cublasLtMatrixLayoutDestroy(b);
    if (a) (void)cublasLtMatrixLayoutDestroy(a);
    if (op) (void)cublasLtMatmulDescDestroy(op);
  }
};

/// The fused epilogue of a GEMM beyond the plain bias (see the header comment).
enum class GemmEpi : int { None = 0, GeluAux = 1, DGelu = 2, BGradB = 3 };

/// One row-major (strided-batched) GEMM. Elements of A and B are `ab`, of C (and bias) `ct`.
struct GemmCall {
  bool ta = false, tb = false;
  int M = 0, N = 0, K = 0;
  float alpha = 1.0f, beta = 0.0f;
  const void* A = nullptr;
  int lda = 0;
  std::int64_t sA = 0;
  const void* B = nullptr;
  int ldb = 0;
  std::int64_t sB = 0;
  void* C = nullptr;
  int ldc = 0;
  std::int64_t sC = 0;
  int batch = 1;
  cudaDataType_t ab = CUDA_R_32F, ct = CUDA_R_32F;
  const void* bias = nullptr;
  GemmEpi epi = GemmEpi::None;  // training epilogues (see the header comment); batch 1 only
  void* aux = nullptr;          // GeluAux: written ; DGelu: read
  std::int64_t aux_ld = 0;
  void* bgrad = nullptr;        // DGelu / BGradB: written (may be null for DGelu)
};

inline const char* epi_name(GemmEpi e) {
  switch (e) {
    case GemmEpi::GeluAux: return "GELU_AUX_BIAS";
    case GemmEpi::DGelu: return "DGELU_BGRAD";
    case GemmEpi::BGradB: return "BGRADB";
    default: return "none";
  }
}

/// Whether an epilogue call meets cuBLASLt's documented layout rules (aux leading dimension a
/// multiple of 8) and the 16-byte alignment this library asks of every pointer it hands over.
inline bool epilogue_eligible(const GemmCall& g) {
  auto a16 = [](const void* p) { return p == nullptr || (reinterpret_cast<std::uintptr_t>(p) & 15u) == 0; };
  if (g.batch != 1 || g.K <= 0) return false;
  if (!a16(g.A) || !a16(g.B) || !a16(g.C) || !a16(g.bias) || !a16(g.aux) || !a16(g.bgrad)) return false;
  if (g.epi == GemmEpi::GeluAux || g.epi == GemmEpi::DGelu) return g.aux && g.aux_ld % 8 == 0 && g.aux_ld >= g.N;
  if (g.epi == GemmEpi::BGradB) return g.bgrad != nullptr;
  return true;
}

/// Whether epilogue kind e has fallen back to the unfused ops in this process (the once-flags).
inline bool& epilogue_fell_back(GemmEpi e) {
  static bool said[4] = {false, false, false, false};
  return said[int(e) & 3];
}

/// Says once per epilogue kind (per process) that it fell back to the unfused ops, and why.
inline void report_epilogue_fallback(const GemmCall& g, const char* why) {
  bool& said = epilogue_fell_back(g.epi);
  if (g.epi == GemmEpi::None || said) return;
  said = true;
  std::fprintf(stderr,
               "redi: cuBLASLt %s epilogue %s (M=%d N=%d K=%d, %s inputs, %s output); using the "
               "unfused GEMM + kernels (said once)\n",
               epi_name(g.epi), why, g.M, g.N, g.K, g.ab == CUDA_R_32F ? "fp32" : "bf16",
               g.ct == CUDA_R_32F ? "fp32" : "bf16");
}

inline std::size_t dtype_bytes(cudaDataType_t t) { return t == CUDA_R_32F ? 4 : 2; }

template <class D>
__global__ void scale_matrix_kernel(D* C, int M, int N, int ldc, std::int64_t sC, int batch,
                                    float beta) {
  const std::int64_t n = std::int64_t(batch) * M * N;
  REDI_GRID_STRIDE(e, n) {
    const int j = int(e % N);
    const std::int64_t r = e / N;
    const int i = int(r % M);
    const std::int64_t b = r / M;
    D* p = C + b * sC + std::int64_t(i) * ldc + j;
    *p = st<D>(beta == 0.0f ? 0.0f : beta * ld(*p));  // beta == 0: never read C
  }
}

template <class D>
__global__ void add_bias_rows_kernel(D* C, const D* bias, int M, int N, int ldc) {
  REDI_GRID_STRIDE(e, std::int64_t(M) * N) {
    const int j = int(e % N);
    D* p = C + (e / N) * ldc + j;
    *p = st<D>(ld(*p) + ld(bias[j]));
  }
}

/// C[i, j] += bias[j] (batch 1), for the classic-cuBLAS path.
inline void add_bias_rows(const Cuda& ctx, const GemmCall& g) {
  const std::int64_t n = std::int64_t(g.M) * g.N;
  if (g.ct == CUDA_R_32F)
    add_bias_rows_kernel<<<grid_for(n, kThreads), kThreads, 0, ctx.stream()>>>(
        static_cast<float*>(g.C), static_cast<const float*>(g.bias), g.M, g.N, g.ldc);
  else
    add_bias_rows_kernel<<<grid_for(n, kThreads), kThreads, 0, ctx.stream()>>>(
        static_cast<__nv_bfloat16*>(g.C), static_cast<const __nv_bfloat16*>(g.bias), g.M, g.N,
        g.ldc);
  REDI_CUDA_LAUNCH_CHECK("gemm bias");
}

/// The epilogue's pointers on a (cached) descriptor: aux, and the bias or bias-gradient vector.
inline void set_epilogue_pointers(cublasLtMatmulDesc_t op, const GemmCall& g) {
  if (g.aux)
    REDI_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER,
                                                     &g.aux, sizeof g.aux));
  const void* b = g.epi == GemmEpi::GeluAux ? g.bias : g.bgrad;
  if (b)
    REDI_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &b,
                                                     sizeof b));
}

/// Sets g's training epilogue on a new descriptor; false when cuBLASLt refuses an attribute.
inline bool set_training_epilogue(cublasLtMatmulDesc_t op, const GemmCall& g) {
  cublasLtEpilogue_t e = CUBLASLT_EPILOGUE_DEFAULT;
  switch (g.epi) {
    case GemmEpi::GeluAux: e = g.bias ? CUBLASLT_EPILOGUE_GELU_AUX_BIAS : CUBLASLT_EPILOGUE_GELU_AUX; break;
    case GemmEpi::DGelu: e = g.bgrad ? CUBLASLT_EPILOGUE_DGELU_BGRAD : CUBLASLT_EPILOGUE_DGELU; break;
    case GemmEpi::BGradB: e = CUBLASLT_EPILOGUE_BGRADB; break;
    default: return false;
  }
  bool ok = cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE, &e, sizeof e) ==
            CUBLAS_STATUS_SUCCESS;
  if (g.aux) {  // the GELU input matrix; its element type defaults to D's
    ok = ok && cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &g.aux_ld,
                                              sizeof g.aux_ld) == CUBLAS_STATUS_SUCCESS;
  }
  if (g.epi == GemmEpi::GeluAux && g.bias) {  // bias in D's type, as the plain BIAS epilogue
    const std::int32_t bt = std::int32_t(g.ct);
    ok = ok && cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt,
                                              sizeof bt) == CUBLAS_STATUS_SUCCESS;
  }
  // bias gradients: left at the default type, D's (CUBLASLT_MATMUL_DESC_BIAS_POINTER's docs)
  if (!ok) return false;
  try {
    set_epilogue_pointers(op, g);  // the heuristic reads their alignment
  } catch (const Error&) {
    return false;
  }
  return true;
}

/// Runs g; returns false (having done nothing) when g asks for a training epilogue that is not
/// eligible or not offered by cuBLASLt, true otherwise.
inline bool lt_matmul(const Cuda& ctx, const GemmCall& g) {
  const bool epi = g.epi != GemmEpi::None;
  if (epi && (g.K <= 0 || g.M <= 0 || g.N <= 0)) return false;  // degenerate: the caller's path
  if (g.M <= 0 || g.N <= 0 || g.batch <= 0) return true;
  if (epi && !epilogue_eligible(g)) {
    report_epilogue_fallback(g, "not eligible (aux leading dimension not a multiple of 8, or a "
                                "pointer not 16-byte aligned)");
    return false;
  }
  auto& s = ctx.state();
  if (g.K <= 0) {  // C = beta * C (no bias: callers add it)
    const std::int64_t n = std::int64_t(g.batch) * g.M * g.N;
    if (g.ct == CUDA_R_32F)
      scale_matrix_kernel<<<grid_for(n, kThreads), kThreads, 0, ctx.stream()>>>(
          static_cast<float*>(g.C), g.M, g.N, g.ldc, g.sC, g.batch, g.beta);
    else
      scale_matrix_kernel<<<grid_for(n, kThreads), kThreads, 0, ctx.stream()>>>(
          static_cast<__nv_bfloat16*>(g.C), g.M, g.N, g.ldc, g.sC, g.batch, g.beta);
    REDI_CUDA_LAUNCH_CHECK("gemm (K = 0)");
    return true;
  }
  const bool fast_tf32 = g.ab == CUDA_R_32F && s.tf32;
  const std::size_t eab = dtype_bytes(g.ab), ec = dtype_bytes(g.ct);
  const unsigned alA = alignment_of(g.B, g.sB * std::int64_t(eab));  // Lt's A is the user's B
  const unsigned alB = alignment_of(g.A, g.sA * std::int64_t(eab));
  const unsigned alC = alignment_of(g.C, g.sC * std::int64_t(ec));
  const unsigned alBias = g.bias ? alignment_of(g.bias) : 0u;
  const unsigned alAux = g.aux ? alignment_of(g.aux) : 0u, alBg = g.bgrad ? alignment_of(g.bgrad) : 0u;

  char keybuf[384];
  std::snprintf(keybuf, sizeof keybuf,
                "lt:%d%d|%d,%d,%d|%d,%lld|%d,%lld|%d,%lld|%d|%d,%d,%d|%u,%u,%u,%u|%d|e%d,%lld,%u,%u,%d",
                int(g.ta), int(g.tb), g.M, g.N, g.K, g.lda, (long long)g.sA, g.ldb,
                (long long)g.sB, g.ldc, (long long)g.sC, g.batch, int(g.ab), int(g.ct),
                int(fast_tf32), alA, alB, alC, alBias, int(g.bias != nullptr), int(g.epi),
                (long long)g.aux_ld, alAux, alBg, int(g.bgrad != nullptr));
  std::string key(keybuf);

  LtPlan* plan = nullptr;
  auto it = s.plans.find(key);
  if (it != s.plans.end()) {
    plan = static_cast<LtPlan*>(it->second.get());
  } else {
    auto p = std::make_shared<LtPlan>();
    const cublasComputeType_t compute = fast_tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32
                                                  : CUBLAS_COMPUTE_32F;
    REDI_CUBLAS_CHECK(cublasLtMatmulDescCreate(&p->op, compute, CUDA_R_32F));
    const cublasOperation_t opA = g.tb ? CUBLAS_OP_T : CUBLAS_OP_N;  // on the user's B
    const cublasOperation_t opB = g.ta ? CUBLAS_OP_T : CUBLAS_OP_N;  // on the user's A
    REDI_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSA, &opA,
                                                     sizeof opA));
    REDI_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSB, &opB,
                                                     sizeof opB));
    bool epi_ok = true;  // a training epilogue cuBLASLt refuses: no plan, the caller's fallback
    if (epi) epi_ok = set_training_epilogue(p->op, g);
    if (g.bias && !epi) {
      const cublasLtEpilogue_t be = CUBLASLT_EPILOGUE_BIAS;
      REDI_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_EPILOGUE, &be,
                                                       sizeof be));
      const std::int32_t bt = std::int32_t(g.ct);
      REDI_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(
          p->op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt, sizeof bt));
      REDI_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                                       &g.bias, sizeof g.bias));
    }
    // Column-major layouts (rows, cols, ld) of the stored matrices.
    const std::uint64_t a_rows = g.tb ? g.K : g.N, a_cols = g.tb ? g.N : g.K;
    const std::uint64_t b_rows = g.ta ? g.M : g.K, b_cols = g.ta ? g.K : g.M;
    REDI_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->a, g.ab, a_rows, a_cols, g.ldb));
    REDI_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->b, g.ab, b_rows, b_cols, g.lda));
    REDI_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->c, g.ct, std::uint64_t(g.N),
                                                 std::uint64_t(g.M), g.ldc));
    if (g.batch > 1) {
      const std::int32_t bc = g.batch;
      const std::int64_t strides[3] = {g.sB, g.sA, g.sC};
      cublasLtMatrixLayout_t lays[3] = {p->a, p->b, p->c};
      for (int i = 0; i < 3; ++i) {
        REDI_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(
            lays[i], CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &bc, sizeof bc));
        REDI_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(
            lays[i], CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &strides[i], sizeof strides[i]));
      }
    }
    cublasLtMatmulPreference_t pref = nullptr;
    REDI_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    std::unique_ptr<std::remove_pointer_t<cublasLtMatmulPreference_t>,
                    cublasStatus_t (*)(cublasLtMatmulPreference_t)>
        pref_guard(pref, &cublasLtMatmulPreferenceDestroy);
    const std::uint64_t ws = s.lt_workspace_bytes;
    REDI_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
    const std::uint32_t als[4] = {alA, alB, alC, alC};
    const cublasLtMatmulPreferenceAttributes_t which[4] = {
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
    for (int i = 0; i < 4; ++i)
      REDI_CUBLAS_CHECK(
          cublasLtMatmulPreferenceSetAttribute(pref, which[i], &als[i], sizeof als[i]));
    cublasLtMatmulHeuristicResult_t res{};
    int count = 0;
    if (epi) {  // an unsupported epilogue may be refused with a status rather than zero results
      const cublasStatus_t st = epi_ok ? cublasLtMatmulAlgoGetHeuristic(lt_handle(ctx), p->op, p->a,
                                                                        p->b, p->c, p->c, pref, 1, &res, &count)
                                       : CUBLAS_STATUS_NOT_SUPPORTED;
      if (st != CUBLAS_STATUS_SUCCESS) count = 0;
    } else {
      REDI_CUBLAS_CHECK(cublasLtMatmulAlgoGetHeuristic(lt_handle(ctx), p->op, p->a, p->b, p->c,
                                                       p->c, pref, 1, &res, &count));
    }
    if (count > 0 && res.state == CUBLAS_STATUS_SUCCESS)
      p->algo = res.algo;
    else
      p->classic = true;
    plan = p.get();
    s.plans.emplace(key, std::shared_ptr<void>(std::move(p)));
  }
  if (plan->classic && epi) {
    report_epilogue_fallback(g, "has no cuBLASLt algorithm for this shape and types");
    return false;
  }
  if (plan->classic) {
    const cublasComputeType_t compute = fast_tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32
                                                  : CUBLAS_COMPUTE_32F;
    REDI_CUBLAS_CHECK(cublasGemmStridedBatchedEx(
        cublas_handle(ctx), g.tb ? CUBLAS_OP_T : CUBLAS_OP_N, g.ta ? CUBLAS_OP_T : CUBLAS_OP_N,
        g.N, g.M, g.K, &g.alpha, g.B, g.ab, g.ldb, g.sB, g.A, g.ab, g.lda, g.sA, &g.beta, g.C,
        g.ct, g.ldc, g.sC, g.batch, compute, CUBLAS_GEMM_DEFAULT));
    if (g.bias) add_bias_rows(ctx, g);
    return true;
  }
  // Same alignment class as at planning; the pointers themselves may differ.
  if (epi) set_epilogue_pointers(plan->op, g);
  else if (g.bias)
    REDI_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                                     &g.bias, sizeof g.bias));
  REDI_CUBLAS_CHECK(cublasLtMatmul(lt_handle(ctx), plan->op, &g.alpha, g.B, plan->a, g.A, plan->b,
                                   &g.beta, g.C, plan->c, g.C, plan->c, &plan->algo,
                                   s.lt_workspace, s.lt_workspace_bytes, ctx.stream()));
  return true;
}

template <class T, class TC>
GemmCall make_gemm(bool ta, bool tb, int M, int N, int K, float alpha, const T* A, int lda,
                   const T* B, int ldb, float beta, TC* C, int ldc) {
  static_assert(std::is_same_v<T, bf16> || std::is_same_v<TC, float>,
                "gemm: fp32 inputs need an fp32 output");
  GemmCall g;
  g.ta = ta; g.tb = tb; g.M = M; g.N = N; g.K = K; g.alpha = alpha; g.beta = beta;
  g.A = A; g.lda = lda; g.B = B; g.ldb = ldb; g.C = C; g.ldc = ldc;
  g.ab = cuda_dtype<T>();
  g.ct = cuda_dtype<TC>();
  return g;
}

}  // namespace cuda_detail

namespace ops {

/// C[M,N] = alpha * op(A) * op(B) + beta * C (row-major, leading dimensions as on the CPU).
/// T = float (TF32 per ctx.tf32()) or bf16; TC = T, or float with bf16 inputs.
template <CudaReal T, CudaReal TC>
void gemm(const Cuda& ctx, bool transA, bool transB, int M, int N, int K, CudaScalar alpha,
          const T* A, int lda, const T* B, int ldb, CudaScalar beta, TC* C, int ldc) {
  cuda_detail::lt_matmul(ctx, cuda_detail::make_gemm(transA, transB, M, N, K, alpha.v, A, lda, B,
                                                     ldb, beta.v, C, ldc));
}

/// `batch` independent GEMMs; matrix i of A/B/C starts at A + i*strideA (elements), etc.
template <CudaReal T, CudaReal TC>
void gemm_strided_batched(const Cuda& ctx, bool transA, bool transB, int M, int N, int K,
                          CudaScalar alpha, const T* A, int lda, std::int64_t strideA,
                          const T* B, int ldb, std::int64_t strideB, CudaScalar beta, TC* C,
                          int ldc, std::int64_t strideC, int batch) {
  auto g = cuda_detail::make_gemm(transA, transB, M, N, K, alpha.v, A, lda, B, ldb, beta.v, C, ldc);
  g.sA = strideA;
  g.sB = strideB;
  g.sC = strideC;
  g.batch = batch;
  cuda_detail::lt_matmul(ctx, g);
}

}  // namespace ops
}  // namespace redi
