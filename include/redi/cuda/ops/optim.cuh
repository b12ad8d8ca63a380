// redi/cuda/ops/optim.cuh — AdamW (PyTorch semantics, as redi/ops/optim.hpp) and EMA.
// Mixed precision: param/m/v are the fp32 master buffers, grad may be bf16 or fp32, and an
// optional bf16 `compute_copy` receives the updated weights (the copy the kernels read).
// Per-step coefficients are computed on the host in double, the update per element in fp32.
#pragma once
#include <cmath>

#include "redi/cuda/ops/common.cuh"
#include "redi/cuda/ops/vec.cuh"
#include "redi/ops/optim.hpp"  // redi::ops::AdamWConfig (shared with the CPU op)

namespace redi {
namespace cuda_detail {

struct AdamWCoef {
  float decay, b1, b2, omb1, omb2, step_size, sqrt_bc2, eps;
};

/// W-wide (vec.cuh) over param/grad/m/v and the optional compute copy.
template <int W, class DP, class DG, class DC>
__global__ void adamw_kernel(DP* param, const DG* grad, DP* m, DP* v, DC* copy, std::int64_t n,
                             AdamWCoef k) {
  vec_loop<W>(n, [&](std::int64_t i, auto w) {
    constexpr int V = decltype(w)::value;
    float g[V], mi[V], vi[V], p[V];
    vload<V>(g, grad + i);
    vload<V>(mi, m + i);
    vload<V>(vi, v + i);
    vload<V>(p, param + i);
#pragma unroll
    for (int e = 0; e < V; ++e) {
      mi[e] = k.b1 * mi[e] + k.omb1 * g[e];
      vi[e] = k.b2 * vi[e] + k.omb2 * g[e] * g[e];
      const float denom = sqrtf(vi[e]) / k.sqrt_bc2 + k.eps;
      p[e] = p[e] * k.decay - k.step_size * mi[e] / denom;
    }
    vstore<V>(m + i, mi);
    vstore<V>(v + i, vi);
    vstore<V>(param + i, p);
    if (copy) vstore<V>(copy + i, p);
  });
}

template <class DE, class DP>
__global__ void ema_kernel(DE* ema, const DP* param, std::int64_t n, float d, float omd) {
  REDI_GRID_STRIDE(i, n) ema[i] = st<DE>(d * ld(ema[i]) + omd * ld(param[i]));
}

}  // namespace cuda_detail

namespace ops {

/// One AdamW step (step is 1-based). `compute_copy` (may be null; bf16 under BF16Mixed) gets
/// C(param) in the same pass — bit-identical to a convert(compute_copy, param) afterwards, without
/// its second read of the fp32 weights (train/optimizer.hpp passes the model's copy).
template <CudaReal P, CudaReal G, CudaReal C = bf16>
void adamw_step(const Cuda& ctx, P* param, const G* grad, P* m, P* v, std::int64_t n,
                const AdamWConfig& cfg, std::int64_t step, C* compute_copy = nullptr) {
  using namespace cuda_detail;
  if (n <= 0) return;
  REDI_CHECK(step >= 1, "adamw_step: step is 1-based, got ", step);
  const double bc1 = 1.0 - std::pow(cfg.beta1, double(step));
  const double bc2 = 1.0 - std::pow(cfg.beta2, double(step));
  AdamWCoef k{float(1.0 - cfg.lr * cfg.weight_decay),
              float(cfg.beta1),
              float(cfg.beta2),
              float(1.0 - cfg.beta1),
              float(1.0 - cfg.beta2),
              float(cfg.lr / bc1),
              float(std::sqrt(bc2)),
              float(cfg.eps)};
  launch_vec(n, [&](auto w, unsigned blocks) {
    adamw_kernel<decltype(w)::value><<<blocks, kThreads, 0, ctx.stream()>>>(
        dptr(param), dptr(grad), dptr(m), dptr(v), dptr(compute_copy), n, k);
  }, dptr(param), dptr(grad), dptr(m), dptr(v), dptr(compute_copy));
  REDI_CUDA_LAUNCH_CHECK("adamw_step");
}

/// ema = decay * ema + (1 - decay) * param.
template <CudaReal E, CudaReal P>
void ema_update(const Cuda& ctx, E* ema, const P* param, std::int64_t n, double decay) {
  using namespace cuda_detail;
  if (n <= 0) return;
  ema_kernel<<<grid_for(n, kThreads), kThreads, 0, ctx.stream()>>>(
      dptr(ema), dptr(param), n, float(decay), float(1.0 - decay));
  REDI_CUDA_LAUNCH_CHECK("ema_update");
}

}  // namespace ops
}  // namespace redi
