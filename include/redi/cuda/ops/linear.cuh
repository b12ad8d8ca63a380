// redi/cuda/ops/linear.cuh — fully connected layer, PyTorch layout (W [out_f, in_f]):
//   forward : out = in W^T + b            (one cuBLASLt call, bias epilogue)
//   backward: din = dout W (overwritten) ; dW += dout^T in ; db += column sums of dout
// The parameter gradients dW, db may be fp32 while the activations/weights are bf16
// (BF16Mixed). With dW and db both wanted, db comes from the dW GEMM's BGRADB epilogue (the
// column sums of dout, which is that GEMM's K-by-M operand: no second pass over dout), written
// to the context's scratch in dW's type and added to db; where cuBLASLt does not offer it
// (gemm.cuh: said once) and for db alone, column sums are deterministic kernels (two-stage,
// fixed order, fp32 partials in the context's scratch). Mirrors redi/ops/linear.hpp.
#pragma once
#include "redi/cuda/ops/elementwise.cuh"
#include "redi/cuda/ops/gemm.cuh"

namespace redi {
namespace cuda_detail {

constexpr int kColsumW = 32, kColsumH = 8, kColsumRowsPerChunk = 512;

/// partial[chunk, c] = sum of dout[r, c] over the rows of `chunk`.
template <class D>
__global__ void colsum_partial_kernel(float* partial, const D* dout, int rows, int cols) {
  __shared__ float red[kColsumH][kColsumW + 1];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int c = blockIdx.x * kColsumW + tx;
  const int r0 = blockIdx.y * kColsumRowsPerChunk;
  const int r1 = min(rows, r0 + kColsumRowsPerChunk);
  float a = 0.0f;
  if (c < cols)
    for (int r = r0 + ty; r < r1; r += kColsumH) a += ld(dout[std::int64_t(r) * cols + c]);
  red[ty][tx] = a;
  __syncthreads();
  if (ty == 0 && c < cols) {
    float s = 0.0f;
    for (int k = 0; k < kColsumH; ++k) s += red[k][tx];
    partial[std::int64_t(blockIdx.y) * cols + c] = s;
  }
}

template <class DG>
__global__ void colsum_finish_kernel(DG* db, const float* partial, int chunks, int cols) {
  REDI_GRID_STRIDE(c, cols) {
    float s = 0.0f;
    for (int k = 0; k < chunks; ++k) s += partial[std::int64_t(k) * cols + c];
    db[c] = st<DG>(ld(db[c]) + s);
  }
}

/// db[c] += sum_r dout[r, c]
template <class DG, class D>
void colsum_accumulate(const Cuda& ctx, DG* db, const D* dout, int rows, int cols) {
  if (rows <= 0 || cols <= 0) return;
  const int chunks = (rows + kColsumRowsPerChunk - 1) / kColsumRowsPerChunk;
  float* partial = static_cast<float*>(ctx.scratch(std::size_t(chunks) * cols * sizeof(float)));
  dim3 block(kColsumW, kColsumH), grid((cols + kColsumW - 1) / kColsumW, chunks);
  colsum_partial_kernel<<<grid, block, 0, ctx.stream()>>>(partial, dout, rows, cols);
  REDI_CUDA_LAUNCH_CHECK("linear_backward (bias partial sums)");
  colsum_finish_kernel<<<grid_for(cols, kThreads), kThreads, 0, ctx.stream()>>>(db, partial,
                                                                                chunks, cols);
  REDI_CUDA_LAUNCH_CHECK("linear_backward (bias sums)");
}

}  // namespace cuda_detail

namespace ops {

/// out[rows, out_f] = in[rows, in_f] W^T + b ; b may be null.
template <CudaReal T>
void linear_forward(const Cuda& ctx, T* out, const T* in, const T* W, const T* b, int rows,
                    int in_f, int out_f) {
  using namespace cuda_detail;
  auto g = make_gemm(false, true, rows, out_f, in_f, 1.0f, in, in_f, W, in_f, 0.0f, out, out_f);
  if (in_f > 0) g.bias = b;
  lt_matmul(ctx, g);
  if (b && in_f <= 0) add_broadcast(ctx, out, b, rows, out_f);  // degenerate K = 0: out = b
}

/// din = dout W (overwritten) ; dW += dout^T in ; db += column sums of dout. Any of din, dW,
/// db may be null. G (parameter-gradient type) is T or float.
template <CudaReal T, CudaReal G>
void linear_backward(const Cuda& ctx, T* din, G* dW, G* db, const T* dout, const T* in,
                     const T* W, int rows, int in_f, int out_f) {
  using namespace cuda_detail;
  if (din)
    lt_matmul(ctx, make_gemm(false, false, rows, in_f, out_f, 1.0f, dout, out_f, W, in_f, 0.0f,
                             din, in_f));
  if (dW) {
    auto gw = make_gemm(true, false, out_f, in_f, rows, 1.0f, dout, out_f, in, in_f, 1.0f, dW, in_f);
    if (db && rows > 0 && out_f > 0) {  // bias gradient from the same GEMM (BGRADB)
      gw.epi = GemmEpi::BGradB;
      gw.bgrad = ctx.scratch(std::size_t(out_f) * sizeof(G));
      if (lt_matmul(ctx, gw)) {
        ops::accumulate(ctx, db, static_cast<const G*>(gw.bgrad), out_f);
        return;
      }
      gw.epi = GemmEpi::None;
      gw.bgrad = nullptr;
    }
    lt_matmul(ctx, gw);
  }
  if (db) colsum_accumulate(ctx, dptr(db), dptr(dout), rows, out_f);
}

}  // namespace ops
}  // namespace redi
