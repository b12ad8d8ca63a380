// redi/cuda/ops/sampler_steps.cuh — the samplers' per-element ops on the GPU (contract and
// equations: redi/ops/sampler_steps.hpp, whose CPU loops are the reference). Every element is
// the same REDI_HD expression as on the CPU, evaluated with correctly rounded double intrinsics
// (no FMA), and the noise is the device Philox: states, guided predictions and steps are
// bit-identical to the CPU ops, except a DDPM Ancestral step with a learned variance, whose
// exp(lv / 2) is CUDA's double exp (<= 1 ulp) instead of glibc's. T = float or double (the
// sampler's master type).
#pragma once
#include <cstdint>

#include "redi/core/philox.hpp"
#include "redi/cuda/ops/common.cuh"
#include "redi/ops/sampler_steps.hpp"  // GuideSpec, FlowStep, guide_element, flow_step_element

namespace redi {
namespace cuda_detail {

template <class T>
__global__ void fill_normal_rows_kernel(T* dst, int B, std::int64_t n, std::uint64_t seed, const std::uint64_t* index,
                                        std::uint32_t purpose, std::uint32_t step) {
  const std::int64_t nblk = (n + 3) / 4, total = std::int64_t(B) * nblk;
  for (std::int64_t t = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x; t < total;
       t += std::int64_t(blockDim.x) * gridDim.x) {
    const int b = int(t / nblk);
    const std::int64_t blk = t % nblk;
    double v[4];
    philox::normal4(seed, philox::stream_id(purpose, index[b], step), std::uint64_t(blk), v);
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const std::int64_t e = blk * 4 + j;
      if (e < n) dst[b * n + e] = T(v[j]);
    }
  }
}

template <class T>
__global__ void guidance_inputs_kernel(T* in, T* time, int* labels, const T* x, const int* y, ops::GuideSpec g,
                                       T t) {
  const std::int64_t total = std::int64_t(g.nb) * g.B * g.nin;
  for (std::int64_t k = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x; k < total;
       k += std::int64_t(blockDim.x) * gridDim.x) {
    const std::int64_t row = k / g.nin, e = k % g.nin;
    const int br = int(row / g.B), b = int(row % g.B);
    in[k] = (br == g.rg_branch && e >= g.nx) ? T(0) : x[b * g.nin + e];
    if (e == 0) {
      time[row] = t;
      labels[row] = br == g.cfg_branch ? g.null_class : (y ? y[b] : 0);
    }
  }
}

template <class T>
__global__ void guidance_combine_kernel(T* pred, const T* out, ops::GuideSpec g, double w, double wr) {
  const std::int64_t n = std::int64_t(g.B) * g.nout;
  for (std::int64_t k = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x; k < n;
       k += std::int64_t(blockDim.x) * gridDim.x)
    pred[k] = g.nb == 1 ? out[k] : ops::guide_element(out, g, k, k % g.nout, w, wr);
}

template <class T>
__global__ void flow_step_kernel(T* x, const T* v, const T* noise, std::int64_t n, ops::FlowStep kind, double t,
                                 double h, double norm, double sd) {
  for (std::int64_t k = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x; k < n;
       k += std::int64_t(blockDim.x) * gridDim.x)
    x[k] = T(ops::flow_step_element(kind, double(x[k]), double(v[k]), noise ? double(noise[k]) : 0.0, t, h, norm, sd));
}

template <class T>
__global__ void heun_step_kernel(T* out, const T* x, const T* v1, const T* v2, std::int64_t n, double h) {
  for (std::int64_t k = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x; k < n;
       k += std::int64_t(blockDim.x) * gridDim.x)
    out[k] = T(ops::heun_step_element(double(x[k]), double(v1[k]), v2 ? double(v2[k]) : 0.0, v2 != nullptr, h));
}

template <class T>
__global__ void ddpm_step_kernel(T* x, const T* pred, const T* noise, ops::DdpmStep s) {
  const std::int64_t n = std::int64_t(s.B) * s.nin;
  for (std::int64_t k = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x; k < n;
       k += std::int64_t(blockDim.x) * gridDim.x) {
    const std::int64_t b = k / s.nin, e = k % s.nin, p = b * s.nout + e;
    x[k] = T(ops::ddpm_step_element(s, double(x[k]), double(pred[p]), s.learned ? double(pred[p + s.nin]) : 0.0,
                                    s.noisy ? double(noise[k]) : 0.0));
  }
}

template <class T>
__global__ void impose_known_kernel(T* x, const float* known, const T* zn, int B, std::int64_t nin, std::int64_t nx,
                                    double a, double c) {
  const std::int64_t nz = nin - nx, total = std::int64_t(B) * nz;
  for (std::int64_t k = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x; k < total;
       k += std::int64_t(blockDim.x) * gridDim.x) {
    const std::int64_t b = k / nz, e = k % nz;
    x[b * nin + nx + e] = T(ops::known_element(double(known[k]), zn ? double(zn[k]) : 0.0, zn != nullptr, a, c));
  }
}

}  // namespace cuda_detail

namespace ops {

/// As redi::ops::fill_normal_rows (redi/ops/sampler_steps.hpp); index [B] is device memory.
template <class T>
void fill_normal_rows(const Cuda& ctx, T* dst, int B, std::int64_t n, std::uint64_t seed, const std::uint64_t* index,
                      std::uint32_t purpose, std::uint32_t step) {
  const std::int64_t total = std::int64_t(B) * ((n + 3) / 4);
  if (total <= 0) return;
  constexpr int threads = 128;
  cuda_detail::fill_normal_rows_kernel<<<cuda_detail::grid_for(total, threads), threads, 0, ctx.stream()>>>(
      dst, B, n, seed, index, purpose, step);
  REDI_CUDA_LAUNCH_CHECK("fill_normal_rows");
}

template <class T>
void guidance_inputs(const Cuda& ctx, T* in, T* time, int* labels, const T* x, const int* y, const GuideSpec& g,
                     double t) {
  const std::int64_t total = std::int64_t(g.nb) * g.B * g.nin;
  if (total <= 0) return;
  cuda_detail::guidance_inputs_kernel<<<cuda_detail::grid_for(total, cuda_detail::kThreads), cuda_detail::kThreads,
                                        0, ctx.stream()>>>(in, time, labels, x, y, g, T(t));
  REDI_CUDA_LAUNCH_CHECK("guidance_inputs");
}

template <class T>
void guidance_combine(const Cuda& ctx, T* pred, const T* out, const GuideSpec& g, double w, double wr) {
  const std::int64_t n = std::int64_t(g.B) * g.nout;
  if (n <= 0) return;
  cuda_detail::guidance_combine_kernel<<<cuda_detail::grid_for(n, cuda_detail::kThreads), cuda_detail::kThreads, 0,
                                         ctx.stream()>>>(pred, out, g, w, wr);
  REDI_CUDA_LAUNCH_CHECK("guidance_combine");
}

template <class T>
void flow_step(const Cuda& ctx, T* x, const T* v, const T* noise, std::int64_t n, FlowStep kind, double t, double h,
               double norm, double sd) {
  if (n <= 0) return;
  cuda_detail::flow_step_kernel<<<cuda_detail::grid_for(n, cuda_detail::kThreads), cuda_detail::kThreads, 0,
                                  ctx.stream()>>>(x, v, noise, n, kind, t, h, norm, sd);
  REDI_CUDA_LAUNCH_CHECK("flow_step");
}

template <class T>
void heun_step(const Cuda& ctx, T* out, const T* x, const T* v1, const T* v2, std::int64_t n, double h) {
  if (n <= 0) return;
  cuda_detail::heun_step_kernel<<<cuda_detail::grid_for(n, cuda_detail::kThreads), cuda_detail::kThreads, 0,
                                  ctx.stream()>>>(out, x, v1, v2, n, h);
  REDI_CUDA_LAUNCH_CHECK("heun_step");
}

template <class T>
void ddpm_step(const Cuda& ctx, T* x, const T* pred, const T* noise, const DdpmStep& s) {
  const std::int64_t n = std::int64_t(s.B) * s.nin;
  if (n <= 0) return;
  cuda_detail::ddpm_step_kernel<<<cuda_detail::grid_for(n, cuda_detail::kThreads), cuda_detail::kThreads, 0,
                                  ctx.stream()>>>(x, pred, noise, s);
  REDI_CUDA_LAUNCH_CHECK("ddpm_step");
}

template <class T>
void impose_known(const Cuda& ctx, T* x, const float* known, const T* zn, int B, std::int64_t nin, std::int64_t nx,
                  double a, double c) {
  const std::int64_t total = std::int64_t(B) * (nin - nx);
  if (total <= 0) return;
  cuda_detail::impose_known_kernel<<<cuda_detail::grid_for(total, cuda_detail::kThreads), cuda_detail::kThreads, 0,
                                     ctx.stream()>>>(x, known, zn, B, nin, nx, a, c);
  REDI_CUDA_LAUNCH_CHECK("impose_known");
}

}  // namespace ops
}  // namespace redi
