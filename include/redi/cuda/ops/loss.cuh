// redi/cuda/ops/loss.cuh — mean squared error: forward is a CUB reduction in double (returns to
// the host, synchronising the stream; an _async variant writes the SUM of squares to device
// memory), backward is elementwise. Mirrors redi/ops/loss.hpp.
#pragma once
#include "redi/cuda/ops/elementwise.cuh"

namespace redi {
namespace cuda_detail {

template <class D>
struct SquaredDiff {
  const D* pred;
  const D* target;
  __device__ double operator()(std::int64_t i) const {
    double d = double(ld(pred[i])) - double(ld(target[i]));
    return d * d;
  }
};

template <class D>
__global__ void mse_bwd_kernel(D* dpred, const D* pred, const D* target, std::int64_t n,
                               float coef) {
  REDI_GRID_STRIDE(i, n) dpred[i] = st<D>(coef * (ld(pred[i]) - ld(target[i])));
}

}  // namespace cuda_detail

namespace ops {

/// mean (pred - target)^2, accumulated in double.
template <CudaReal T>
double mse_forward(const Cuda& ctx, const T* pred, const T* target, std::int64_t n) {
  using namespace cuda_detail;
  if (n <= 0) return 0.0;
  using D = dev_t<T>;
  double s = reduce_double(ctx, thrust::counting_iterator<std::int64_t>(0), n,
                           SquaredDiff<D>{dptr(pred), dptr(target)});
  return s / double(n);
}

/// *d_sum = sum (pred - target)^2 on the device, no synchronisation (divide by n yourself).
template <CudaReal T>
void mse_sum_async(const Cuda& ctx, double* d_sum, const T* pred, const T* target,
                   std::int64_t n) {
  using namespace cuda_detail;
  using D = dev_t<T>;
  if (n <= 0) {
    ctx.zero_async(d_sum, sizeof(double));
    return;
  }
  reduce_double_async(ctx, d_sum, thrust::counting_iterator<std::int64_t>(0), n,
                      SquaredDiff<D>{dptr(pred), dptr(target)});
}

/// dpred = weight * 2 * (pred - target) / n  (overwritten)
template <CudaReal T>
void mse_backward(const Cuda& ctx, T* dpred, const T* pred, const T* target, std::int64_t n,
                  CudaScalar weight) {
  if (n <= 0 || !dpred) return;
  using namespace cuda_detail;
  float coef = float(double(weight.v) * 2.0 / double(n));
  mse_bwd_kernel<<<grid_for(n, kThreads), kThreads, 0, ctx.stream()>>>(dptr(dpred), dptr(pred),
                                                                        dptr(target), n, coef);
  REDI_CUDA_LAUNCH_CHECK("mse_backward");
}

}  // namespace ops
}  // namespace redi
