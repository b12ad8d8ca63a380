// redi/cuda/ops/joint_loss.cuh — the per-element joint loss on the GPU (contract and equations:
// redi/ops/joint_loss.hpp, whose CPU loops are the reference). joint_loss_inputs: one thread
// per (sample, Philox block of 4 elements), the noise from the same REDI_HD Philox functions
// as the CPU, the double arithmetic with correctly rounded intrinsics: input and target are
// bit-identical to the CPU's. joint_loss_grad: one block per (sample, chunk) computing dout
// (bit-identical) and partial sums, then one block per sample adding its chunks in double — the
// per-sample sums differ from the CPU's sequential sums by rounding only. T = float or double
// (the master type: the loss runs on fp32 next to a BF16Mixed network).
#pragma once
#include <cstdint>

#include "redi/core/philox.hpp"
#include "redi/cuda/ops/common.cuh"
#include "redi/ops/joint_loss.hpp"  // LossSample, LossTarget (plain structs)

namespace redi {
namespace cuda_detail {

template <class T>
__global__ void joint_loss_inputs_kernel(T* input, T* target, const T* x0, const T* z0, const ops::LossSample* s,
                                         int B, std::int64_t nx, std::int64_t nz, std::uint64_t key, int tgt,
                                         bool zero_z) {
  const std::int64_t nin = nx + nz, nblk = (nin + 3) / 4, total = std::int64_t(B) * nblk;
  for (std::int64_t t = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x; t < total;
       t += std::int64_t(blockDim.x) * gridDim.x) {
    const int i = int(t / nblk);
    const std::int64_t blk = t % nblk;
    const ops::LossSample c = s[i];
    double v[4];
    philox::normal4(key, c.stream, std::uint64_t(blk), v);
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const std::int64_t e = blk * 4 + j;
      if (e >= nin) break;
      const bool is_z = e >= nx;
      const double clean = is_z ? (c.drop ? 0.0 : double(z0[i * nz + (e - nx)])) : double(x0[i * nx + e]);
      const double n = double(T(v[j]));  // the CPU's noise value in T
      double xt = REDI_DADD(REDI_DMUL(c.a, clean), REDI_DMUL(c.b, n));
      if (is_z && c.drop && zero_z) xt = 0.0;
      input[i * nin + e] = T(xt);
      target[i * nin + e] = tgt == int(ops::LossTarget::Epsilon) ? T(n) : T(REDI_DSUB(clean, n));
    }
  }
}

constexpr int kLossThreads = 256;

/// Block (chunk c, sample i): dout of its elements, and its partial sums into part[(i*chunks+c)*2].
template <class T>
__global__ void joint_loss_grad_kernel(T* dout, double* part, const T* out, const T* target,
                                       const ops::LossSample* s, std::int64_t nx, std::int64_t nz, double invB,
                                       int chunks) {
  const int i = blockIdx.y, c = blockIdx.x;
  const std::int64_t nin = nx + nz;
  const std::int64_t per = (nin + chunks - 1) / chunks, lo = c * per, hi = lo + per < nin ? lo + per : nin;
  const double lam = s[i].lam;
  double sx = 0, sz = 0;
  for (std::int64_t e = lo + threadIdx.x; e < hi; e += blockDim.x) {
    const std::int64_t k = i * nin + e;
    const double err = REDI_DSUB(double(out[k]), double(target[k]));
    if (e < nx) {
      sx = REDI_DADD(sx, REDI_DMUL(err, err));
      dout[k] = T(REDI_DMUL(REDI_DDIV(REDI_DMUL(2.0, err), double(nx)), invB));
    } else {
      sz = REDI_DADD(sz, REDI_DMUL(err, err));
      dout[k] = T(REDI_DMUL(REDI_DDIV(REDI_DMUL(REDI_DMUL(lam, 2.0), err), double(nz)), invB));
    }
  }
  __shared__ double rx[kLossThreads], rz[kLossThreads];
  rx[threadIdx.x] = sx;
  rz[threadIdx.x] = sz;
  __syncthreads();
  for (int w = kLossThreads / 2; w > 0; w /= 2) {
    if (int(threadIdx.x) < w) {
      rx[threadIdx.x] += rx[threadIdx.x + w];
      rz[threadIdx.x] += rz[threadIdx.x + w];
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    part[(std::int64_t(i) * chunks + c) * 2] = rx[0];
    part[(std::int64_t(i) * chunks + c) * 2 + 1] = rz[0];
  }
}

template <class D>
__global__ void joint_loss_sum_chunks_kernel(D* sums, const D* part, int B, int chunks) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= B) return;
  D sx = 0, sz = 0;
  for (int c = 0; c < chunks; ++c) {
    sx += part[(std::int64_t(i) * chunks + c) * 2];
    sz += part[(std::int64_t(i) * chunks + c) * 2 + 1];
  }
  sums[2 * i] = sx;
  sums[2 * i + 1] = sz;
}

}  // namespace cuda_detail

namespace ops {

/// As redi::ops::joint_loss_inputs (redi/ops/joint_loss.hpp); every pointer is device memory.
template <class T>
void joint_loss_inputs(const Cuda& ctx, T* input, T* target, const T* x0, const T* z0, const LossSample* s,
                       int B, std::int64_t nx, std::int64_t nz, std::uint64_t key, LossTarget tgt, bool zero_z) {
  const std::int64_t total = std::int64_t(B) * ((nx + nz + 3) / 4);
  if (total <= 0) return;
  constexpr int threads = 128;  // double-heavy, as fill_normal
  cuda_detail::joint_loss_inputs_kernel<<<cuda_detail::grid_for(total, threads), threads, 0, ctx.stream()>>>(
      input, target, x0, z0, s, B, nx, nz, key, int(tgt), zero_z);
  REDI_CUDA_LAUNCH_CHECK("joint_loss_inputs");
}

/// As redi::ops::joint_loss_grad; sums [2B] is device memory (partial sums use ctx.scratch).
template <class T>
void joint_loss_grad(const Cuda& ctx, T* dout, double* sums, const T* out, const T* target, const LossSample* s,
                     int B, std::int64_t nx, std::int64_t nz, double invB) {
  if (B <= 0 || nx + nz <= 0) return;
  using namespace cuda_detail;
  const std::int64_t nin = nx + nz;
  const int chunks = int((nin + 8 * kLossThreads - 1) / (8 * kLossThreads));
  auto* part = static_cast<double*>(ctx.scratch(std::size_t(B) * chunks * 2 * sizeof(double)));
  joint_loss_grad_kernel<<<dim3(unsigned(chunks), unsigned(B)), kLossThreads, 0, ctx.stream()>>>(
      dout, part, out, target, s, nx, nz, invB, chunks);
  REDI_CUDA_LAUNCH_CHECK("joint_loss_grad");
  joint_loss_sum_chunks_kernel<<<unsigned((B + 127) / 128), 128, 0, ctx.stream()>>>(sums, part, B, chunks);
  REDI_CUDA_LAUNCH_CHECK("joint_loss_grad (sums)");
}

}  // namespace ops
}  // namespace redi
