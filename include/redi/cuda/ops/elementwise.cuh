// redi/cuda/ops/elementwise.cuh — add_inplace, accumulate (mixed types), add_broadcast, scale_inplace, sum_squares
// (CUB reduction, double accumulation) and type conversion. Mirrors redi/ops/elementwise.hpp.
// The per-element kernels use 16-byte vector accesses with a scalar tail where the pointers are
// aligned (vec.cuh states the contract); results are the same either way.
#pragma once
#include <cub/device/device_reduce.cuh>
#include <thrust/iterator/counting_iterator.h>

#include "redi/cuda/ops/common.cuh"
#include "redi/cuda/ops/vec.cuh"

namespace redi {
namespace cuda_detail {

template <int W, class D, class Dy>
__global__ void add_inplace_kernel(D* x, const Dy* y, std::int64_t n) {
  vec_loop<W>(n, [&](std::int64_t i, auto w) {
    constexpr int V = decltype(w)::value;
    float a[V], b[V];
    vload<V>(a, x + i);
    vload<V>(b, y + i);
#pragma unroll
    for (int k = 0; k < V; ++k) a[k] += b[k];
    vstore<V>(x + i, a);
  });
}
template <int W, class D>
__global__ void add_broadcast_kernel(D* x, const D* row, std::int64_t outer, std::int64_t inner) {
  vec_loop<W>(outer * inner, [&](std::int64_t i, auto w) {
    constexpr int V = decltype(w)::value;
    float a[V];
    vload<V>(a, x + i);
#pragma unroll
    for (int k = 0; k < V; ++k) a[k] += ld(row[(i + k) % inner]);
    vstore<V>(x + i, a);
  });
}
template <int W, class D>
__global__ void scale_inplace_kernel(D* x, std::int64_t n, float s) {
  vec_loop<W>(n, [&](std::int64_t i, auto w) {
    constexpr int V = decltype(w)::value;
    float a[V];
    vload<V>(a, x + i);
#pragma unroll
    for (int k = 0; k < V; ++k) a[k] *= s;
    vstore<V>(x + i, a);
  });
}
template <int W, class DO, class DI>
__global__ void convert_kernel(DO* out, const DI* in, std::int64_t n) {
  vec_loop<W>(n, [&](std::int64_t i, auto w) {
    constexpr int V = decltype(w)::value;
    float a[V];
    vload<V>(a, in + i);
    vstore<V>(out + i, a);
  });
}

/// x -> double(x)^2, for cub::DeviceReduce::TransformReduce.
template <class D>
struct SquareToDouble {
  __device__ double operator()(const D& x) const {
    double d = double(ld(x));
    return d * d;
  }
};

struct DoublePlus {
  __device__ double operator()(double a, double b) const { return a + b; }
};

/// Sum over i in [0, n) of op(in[i]) in double, written to d_out (device) on ctx's stream.
template <class It, class Op>
void reduce_double_async(const Cuda& ctx, double* d_out, It in, std::int64_t n, Op op) {
  std::size_t temp = 0;
  REDI_CUDA_CHECK(cub::DeviceReduce::TransformReduce(nullptr, temp, in, d_out, n, DoublePlus{},
                                                     op, 0.0, ctx.stream()));
  void* tmp = ctx.scratch(temp);
  REDI_CUDA_CHECK(cub::DeviceReduce::TransformReduce(tmp, temp, in, d_out, n, DoublePlus{}, op,
                                                     0.0, ctx.stream()));
}

/// Same, returning the value to the host (synchronises the stream). The result lives in the
/// context's pinned buffer; the device-side accumulator sits past the CUB temp storage.
template <class It, class Op>
double reduce_double(const Cuda& ctx, It in, std::int64_t n, Op op) {
  if (n <= 0) return 0.0;
  std::size_t temp = 0;
  double* dummy = nullptr;
  REDI_CUDA_CHECK(cub::DeviceReduce::TransformReduce(nullptr, temp, in, dummy, n, DoublePlus{},
                                                     op, 0.0, ctx.stream()));
  std::size_t off = (temp + 255) / 256 * 256;
  auto* base = static_cast<unsigned char*>(ctx.scratch(off + 256));
  double* d_out = reinterpret_cast<double*>(base + off);
  REDI_CUDA_CHECK(cub::DeviceReduce::TransformReduce(base, temp, in, d_out, n, DoublePlus{}, op,
                                                     0.0, ctx.stream()));
  double* h = ctx.state().host_result;
  REDI_CUDA_CHECK(cudaMemcpyAsync(h, d_out, sizeof(double), cudaMemcpyDeviceToHost, ctx.stream()));
  ctx.synchronize();
  return h[0];
}

}  // namespace cuda_detail

namespace ops {

/// x += y
template <CudaReal T>
void add_inplace(const Cuda& ctx, T* x, const T* y, std::int64_t n) {
  if (n <= 0) return;
  using namespace cuda_detail;
  launch_vec(n, [&](auto w, unsigned blocks) {
    add_inplace_kernel<decltype(w)::value><<<blocks, kThreads, 0, ctx.stream()>>>(dptr(x), dptr(y), n);
  }, dptr(x), dptr(y));
  REDI_CUDA_LAUNCH_CHECK("add_inplace");
}

/// acc += y into an accumulator of the residual type R (fp32 dh and conditioning gradient under
/// BF16Mixed; y bf16 or fp32), the sum in fp32.
template <CudaReal R, CudaReal T>
void accumulate(const Cuda& ctx, R* acc, const T* y, std::int64_t n) {
  if (n <= 0) return;
  using namespace cuda_detail;
  launch_vec(n, [&](auto w, unsigned blocks) {
    add_inplace_kernel<decltype(w)::value><<<blocks, kThreads, 0, ctx.stream()>>>(dptr(acc), dptr(y), n);
  }, dptr(acc), dptr(y));
  REDI_CUDA_LAUNCH_CHECK("accumulate");
}

/// x[o*inner + i] += row[i]
template <CudaReal T>
void add_broadcast(const Cuda& ctx, T* x, const T* row, std::int64_t outer, std::int64_t inner) {
  if (outer <= 0 || inner <= 0) return;
  using namespace cuda_detail;
  launch_vec(outer * inner, [&](auto w, unsigned blocks) {
    add_broadcast_kernel<decltype(w)::value><<<blocks, kThreads, 0, ctx.stream()>>>(dptr(x), dptr(row), outer,
                                                                                 inner);
  }, dptr(x));
  REDI_CUDA_LAUNCH_CHECK("add_broadcast");
}

/// x *= s
template <CudaReal T>
void scale_inplace(const Cuda& ctx, T* x, std::int64_t n, CudaScalar s) {
  if (n <= 0) return;
  using namespace cuda_detail;
  launch_vec(n, [&](auto w, unsigned blocks) {
    scale_inplace_kernel<decltype(w)::value><<<blocks, kThreads, 0, ctx.stream()>>>(dptr(x), n, s.v);
  }, dptr(x));
  REDI_CUDA_LAUNCH_CHECK("scale_inplace");
}

/// sum of x^2 in double (synchronises the stream to return it).
template <CudaReal T>
double sum_squares(const Cuda& ctx, const T* x, std::int64_t n) {
  using namespace cuda_detail;
  using D = dev_t<T>;
  return reduce_double(ctx, dptr(x), n, SquareToDouble<D>{});
}

/// sum of x^2 in double, written to device memory *d_out (no synchronisation).
template <CudaReal T>
void sum_squares_async(const Cuda& ctx, double* d_out, const T* x, std::int64_t n) {
  using namespace cuda_detail;
  using D = dev_t<T>;
  if (n <= 0) {
    ctx.zero_async(d_out, sizeof(double));
    return;
  }
  reduce_double_async(ctx, d_out, dptr(x), n, SquareToDouble<D>{});
}

/// out[i] = To(in[i]) (fp32 <-> bf16 with round-to-nearest-even; same type = copy).
template <CudaReal To, CudaReal From>
void convert(const Cuda& ctx, To* out, const From* in, std::int64_t n) {
  if (n <= 0) return;
  using namespace cuda_detail;
  launch_vec(n, [&](auto w, unsigned blocks) {
    convert_kernel<decltype(w)::value><<<blocks, kThreads, 0, ctx.stream()>>>(dptr(out), dptr(in), n);
  }, dptr(out), dptr(in));
  REDI_CUDA_LAUNCH_CHECK("convert");
}

}  // namespace ops
}  // namespace redi
