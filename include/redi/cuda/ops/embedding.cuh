// redi/cuda/ops/embedding.cuh — table lookup and its scatter-add backward (atomicAdd: the
// order of repeated-index additions, hence the last bits of fp32 sums, is not deterministic),
// the fixed sin-cos embeddings (docs/method.md section 9) and a device copy. Mirrors
// redi/ops/embedding.hpp, redi/ops/embedding_fixed.hpp and redi/ops/copy.hpp.
#pragma once
#include <cmath>
#include <vector>

#include "redi/cuda/ops/common.cuh"

namespace redi {
namespace cuda_detail {

template <class D>
__global__ void embedding_fwd_kernel(D* out, const D* table, const int* idx, int N, int D_) {
  REDI_GRID_STRIDE(e, std::int64_t(N) * D_) {
    const std::int64_t n = e / D_;
    const int d = int(e % D_);
    out[e] = table[std::int64_t(idx[n]) * D_ + d];
  }
}

__device__ __forceinline__ void atomic_add_elem(float* p, float v) { atomicAdd(p, v); }
__device__ __forceinline__ void atomic_add_elem(__nv_bfloat16* p, float v) {
  atomicAdd(p, __float2bfloat16_rn(v));  // sm_80+
}

template <class DG, class D>
__global__ void embedding_bwd_kernel(DG* dtable, const D* dout, const int* idx, int N, int D_) {
  REDI_GRID_STRIDE(e, std::int64_t(N) * D_) {
    const std::int64_t n = e / D_;
    const int d = int(e % D_);
    atomic_add_elem(dtable + std::int64_t(idx[n]) * D_ + d, ld(dout[e]));
  }
}

/// [cos(t f_k) | sin(t f_k)] in double, as the CPU reference.
template <class D, class DT>
__global__ void timestep_embedding_kernel(D* out, const DT* t, int N, int dim, double log_mp) {
  const int half = dim / 2;
  REDI_GRID_STRIDE(e, std::int64_t(N) * dim) {
    const std::int64_t n = e / dim;
    const int j = int(e % dim);
    float v = 0.0f;
    if (j < 2 * half) {
      const int k = j < half ? j : j - half;
      const double f = exp(-log_mp * double(k) / double(half));
      const double a = double(ld(t[n])) * f;
      v = float(j < half ? cos(a) : sin(a));
    }
    out[e] = st<D>(v);
  }
}

}  // namespace cuda_detail

namespace ops {

/// out[n, :] = table[idx[n], :]  (idx on the device)
template <CudaReal T>
void embedding_forward(const Cuda& ctx, T* out, const T* table, const int* idx, int N, int D) {
  using namespace cuda_detail;
  const std::int64_t n = std::int64_t(N) * D;
  if (n <= 0) return;
  embedding_fwd_kernel<<<grid_for(n, kThreads), kThreads, 0, ctx.stream()>>>(
      dptr(out), dptr(table), idx, N, D);
  REDI_CUDA_LAUNCH_CHECK("embedding_forward");
}

/// dtable[idx[n], :] += dout[n, :] (atomic scatter-add; dtable may be fp32 while dout is bf16).
template <CudaReal G, CudaReal T>
void embedding_backward(const Cuda& ctx, G* dtable, const T* dout, const int* idx, int N, int D) {
  using namespace cuda_detail;
  const std::int64_t n = std::int64_t(N) * D;
  if (n <= 0 || !dtable) return;
  embedding_bwd_kernel<<<grid_for(n, kThreads), kThreads, 0, ctx.stream()>>>(
      dptr(dtable), dptr(dout), idx, N, D);
  REDI_CUDA_LAUNCH_CHECK("embedding_backward");
}

/// out [N, dim] = [cos(t f_k) | sin(t f_k)], f_k = exp(-ln(max_period) k/(dim/2)); odd dim
/// gets a trailing zero. t is on the device (fp32 or bf16 like out).
template <CudaReal T>
void timestep_embedding(const Cuda& ctx, T* out, const T* t, int N, int dim = 256,
                        double max_period = 10000) {
  using namespace cuda_detail;
  const std::int64_t n = std::int64_t(N) * dim;
  if (n <= 0) return;
  timestep_embedding_kernel<<<grid_for(n, kThreads), kThreads, 0, ctx.stream()>>>(
      dptr(out), dptr(t), N, dim, std::log(max_period));
  REDI_CUDA_LAUNCH_CHECK("timestep_embedding");
}

/// The fixed 2-D position table [gh*gw, D] (see redi/ops/embedding_fixed.hpp), computed on the
/// host in double with the CPU formula and uploaded (synchronous; an init-time op).
template <CudaReal T>
void pos_embed_2d(const Cuda& ctx, T* out, int gh, int gw, int D) {
  REDI_CHECK(D % 4 == 0, "pos_embed_2d: D=", D, " must be a multiple of 4");
  const int q = D / 4;
  std::vector<T> h(std::size_t(gh) * gw * D);
  for (int y = 0; y < gh; ++y)
    for (int x = 0; x < gw; ++x) {
      T* o = h.data() + (std::size_t(y) * gw + x) * D;
      for (int k = 0; k < q; ++k) {
        const double w = 1.0 / std::pow(10000.0, double(k) / double(q));
        o[k] = T(float(std::sin(x * w)));
        o[q + k] = T(float(std::cos(x * w)));
        o[2 * q + k] = T(float(std::sin(y * w)));
        o[3 * q + k] = T(float(std::cos(y * w)));
      }
    }
  ctx.copy_async(out, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice);
  ctx.synchronize();  // h is pageable and goes out of scope
}

}  // namespace ops
}  // namespace redi
