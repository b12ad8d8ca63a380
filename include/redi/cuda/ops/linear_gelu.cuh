// redi/cuda/ops/linear_gelu.cuh — the MLP's first half as cuBLASLt epilogues (contract and CPU
// reference: redi/ops/linear_gelu.hpp):
//   forward : pre = in W^T + b ; out = gelu(pre)          one GEMM, CUBLASLT_EPILOGUE_GELU_AUX_BIAS
//                                                         (D = out, aux = pre, bias = b)
//   backward: dpre = (dout W) * gelu'(pre) ;              one GEMM, CUBLASLT_EPILOGUE_DGELU_BGRAD
//             dbpre += column sums of dpre                (D = dpre, aux = pre, bias = gradient)
// W and dout of the backward are the NEXT linear's (fc2's) weight and output gradient. Without the
// epilogues the MLP reads and writes the [rows, f] pre-activation three more times per step
// (docs/cuda.md: the traffic this saves at SiT-XL/2). GELU is the tanh approximation (PyTorch pull
// request 104061 says so of cuBLASLt's; tests/cuda/test_cuda_fused.cu checks it against both forms).
// Layout contract of the fused path (gemm.cuh's epilogue_eligible): f = out_f a multiple of 8
// (cuBLASLt's aux leading dimension), every pointer 16-byte aligned; else, or where cuBLASLt's
// heuristic offers no algorithm for the types (said once on stderr), the unfused ops run:
// linear_forward + gelu_forward, linear_backward's din + gelu_backward + column sums.
// Numerics of the fused path: GELU and gelu' are applied to the fp32 accumulator, so in bf16 the
// fused outputs skip one bf16 rounding of pre (forward) and of dL/d(out) (backward) that the
// unfused path makes; the fused bias gradient is summed by cuBLASLt and stored in T (bf16 under
// BF16Mixed: one rounding, as PyTorch's bf16 bias gradients) before it is added to the fp32 dbpre.
#pragma once
#include "redi/cuda/ops/activation.cuh"
#include "redi/cuda/ops/elementwise.cuh"
#include "redi/cuda/ops/gemm.cuh"
#include "redi/cuda/ops/linear.cuh"

namespace redi::ops {

/// pre[rows, f] = in[rows, in_f] W^T + b (b may be null) ; out = gelu(pre). f = out_f.
template <CudaReal T>
void linear_gelu_forward(const Cuda& ctx, T* out, T* pre, const T* in, const T* W, const T* b, int rows,
                         int in_f, int out_f) {
  using namespace cuda_detail;
  auto g = make_gemm(false, true, rows, out_f, in_f, 1.0f, in, in_f, W, in_f, 0.0f, out, out_f);
  g.bias = b;
  g.epi = GemmEpi::GeluAux;
  g.aux = pre;
  g.aux_ld = out_f;
  if (lt_matmul(ctx, g)) return;
  linear_forward(ctx, pre, in, W, b, rows, in_f, out_f);
  gelu_forward(ctx, out, pre, std::int64_t(rows) * out_f);
}

/// dpre[rows, f] = (dout[rows, out_n] W[out_n, f]) * gelu'(pre) (overwritten) ; dbpre[f] +=
/// column sums of dpre (may be null; G = T or float).
template <CudaReal T, CudaReal G>
void linear_dgelu_backward(const Cuda& ctx, T* dpre, G* dbpre, const T* dout, const T* W, const T* pre, int rows,
                           int f, int out_n) {
  using namespace cuda_detail;
  auto g = make_gemm(false, false, rows, f, out_n, 1.0f, dout, out_n, W, f, 0.0f, dpre, f);
  g.epi = GemmEpi::DGelu;
  g.aux = const_cast<T*>(pre);  // read-only for DGELU
  g.aux_ld = f;
  T* bg = (dbpre && rows > 0 && f > 0) ? static_cast<T*>(ctx.scratch(std::size_t(f) * sizeof(T))) : nullptr;
  g.bgrad = bg;
  if (lt_matmul(ctx, g)) {
    if (bg) accumulate(ctx, dbpre, static_cast<const T*>(bg), f);
    return;
  }
  linear_backward(ctx, dpre, static_cast<G*>(nullptr), static_cast<G*>(nullptr), dout,
                  static_cast<const T*>(nullptr), W, rows, f, out_n);
  gelu_backward(ctx, dpre, static_cast<const T*>(dpre), pre, std::int64_t(rows) * f);  // in place
  if (dbpre) colsum_accumulate(ctx, dptr(dbpre), dptr(static_cast<const T*>(dpre)), rows, f);
}

}  // namespace redi::ops
