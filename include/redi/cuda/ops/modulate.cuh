// redi/cuda/ops/modulate.cuh — adaLN modulation and gated residuals (tokens [B, L, C],
// per-sample vectors at v[b*mod_stride + c]). Backwards reduce over L with a deterministic
// column-block kernel (no atomics): block (32 columns x 8 row lanes) per (column block, b),
// shared-memory reduction, one write per (b, c). In those kernels each thread reads an element
// before writing the same element, so din may alias dout and dy may alias dx or y (as on the
// CPU). The forwards use 16-byte vector accesses to the token arrays with a scalar tail where
// the pointers are aligned (vec.cuh); the per-sample vectors are read per element (cached).
// Mirrors redi/ops/modulate.hpp.
#pragma once
#include "redi/cuda/ops/common.cuh"
#include "redi/cuda/ops/vec.cuh"

namespace redi {
namespace cuda_detail {

template <int W, class D>
__global__ void modulate_fwd_kernel(D* out, const D* in, const D* shift, const D* scale, int L,
                                    int C, int mod_stride, std::int64_t n) {
  vec_loop<W>(n, [&](std::int64_t e0, auto w) {
    constexpr int V = decltype(w)::value;
    float a[V];
    vload<V>(a, in + e0);
#pragma unroll
    for (int k = 0; k < V; ++k) {
      const std::int64_t e = e0 + k;
      const int c = int(e % C);
      const std::int64_t b = e / (std::int64_t(L) * C);
      const std::int64_t v = b * mod_stride + c;
      a[k] = a[k] * (1.0f + ld(scale[v])) + ld(shift[v]);
    }
    vstore<V>(out + e0, a);
  });
}

/// out = x + gate * y (out may alias x: each thread loads x[e0..] before storing out[e0..]).
template <int W, class Dx, class D>
__global__ void gated_residual_fwd_kernel(Dx* out, const Dx* x, const D* y, const D* gate, int L, int C,
                                          int mod_stride, std::int64_t n) {
  vec_loop<W>(n, [&](std::int64_t e0, auto w) {
    constexpr int V = decltype(w)::value;
    float a[V], b_[V];
    vload<V>(a, x + e0);
    vload<V>(b_, y + e0);
#pragma unroll
    for (int k = 0; k < V; ++k) {
      const std::int64_t e = e0 + k;
      const int c = int(e % C);
      const std::int64_t b = e / (std::int64_t(L) * C);
      a[k] = a[k] + ld(gate[b * mod_stride + c]) * b_[k];
    }
    vstore<V>(out + e0, a);
  });
}

enum class ColMode { Modulate, Gated };

constexpr int kColW = 32, kColH = 8;

/// Per (b, c): sums over l of two quantities, plus an optional elementwise write.
///  Modulate:   s1 = sum g, s2 = sum g*x; din = g*(1+vec)           (g=dout, x=in, vec=scale)
///  Gated:      s1 = sum g*x;            din = g*vec                (g=dx,  x=y,  vec=gate)
/// g may be of another type Dg (the fp32 residual gradient dx of the gated residual).
template <ColMode M, class D, class Dg>
__global__ void col_reduce_kernel(D* din, D* out1, D* out2, const Dg* g, const D* x,
                                  const D* vec, int L, int C, int mod_stride) {
  __shared__ float red1[kColH][kColW + 1];
  __shared__ float red2[kColH][kColW + 1];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int c = blockIdx.x * kColW + tx;
  const std::int64_t b = blockIdx.y;
  float a1 = 0.0f, a2 = 0.0f;
  if (c < C) {
    const float vv = ld(vec[b * mod_stride + c]);
    for (int l = ty; l < L; l += kColH) {
      const std::int64_t row = b * L + l;
      const std::int64_t o = row * C + c;
      const float gg = ld(g[o]), xx = ld(x[o]);
      if constexpr (M == ColMode::Gated) {
        a1 += gg * xx;
        if (din) din[o] = st<D>(gg * vv);
      } else {
        a1 += gg;
        a2 += gg * xx;
        if constexpr (M == ColMode::Modulate)
          if (din) din[o] = st<D>(gg * (1.0f + vv));
      }
    }
  }
  red1[ty][tx] = a1;
  red2[ty][tx] = a2;
  __syncthreads();
  if (ty == 0 && c < C) {
    float s1 = 0.0f, s2 = 0.0f;
    for (int k = 0; k < kColH; ++k) {
      s1 += red1[k][tx];
      s2 += red2[k][tx];
    }
    if (out1) out1[b * mod_stride + c] = st<D>(s1);
    if constexpr (M != ColMode::Gated)
      if (out2) out2[b * mod_stride + c] = st<D>(s2);
  }
}

template <ColMode M, class D, class Dg>
void col_reduce(const Cuda& ctx, D* din, D* out1, D* out2, const Dg* g, const D* x, const D* vec,
                int B, int L, int C, int mod_stride, const char* what) {
  if (B <= 0 || C <= 0) return;
  dim3 block(kColW, kColH);
  dim3 grid((C + kColW - 1) / kColW, B);
  col_reduce_kernel<M><<<grid, block, 0, ctx.stream()>>>(din, out1, out2, g, x, vec, L, C, mod_stride);
  REDI_CUDA_LAUNCH_CHECK(what);
}

}  // namespace cuda_detail

namespace ops {

/// out = in * (1 + scale) + shift
template <CudaReal T>
void modulate_forward(const Cuda& ctx, T* out, const T* in, const T* shift, const T* scale,
                      int B, int L, int C, int mod_stride) {
  using namespace cuda_detail;
  const std::int64_t n = std::int64_t(B) * L * C;
  if (n <= 0) return;
  launch_vec(n, [&](auto w, unsigned blocks) {
    modulate_fwd_kernel<decltype(w)::value><<<blocks, kThreads, 0, ctx.stream()>>>(
        dptr(out), dptr(in), dptr(shift), dptr(scale), L, C, mod_stride, n);
  }, dptr(out), dptr(in));
  REDI_CUDA_LAUNCH_CHECK("modulate_forward");
}

/// din = dout * (1 + scale) ; dshift = sum_L dout ; dscale = sum_L dout * in (overwritten,
/// at b*mod_stride + c). Null gradients are skipped.
template <CudaReal T>
void modulate_backward(const Cuda& ctx, T* din, T* dshift, T* dscale, const T* dout,
                       const T* in, const T* scale, int B, int L, int C, int mod_stride) {
  using namespace cuda_detail;
  if (!din && !dshift && !dscale) return;
  col_reduce<ColMode::Modulate>(ctx, dptr(din), dptr(dshift), dptr(dscale), dptr(dout), dptr(in),
                                dptr(scale), B, L, C, mod_stride,
                                "modulate_backward");
}

/// x += gate * y (x of the residual type R: fp32 under BF16Mixed, the sum in fp32)
template <CudaReal T, CudaReal R>
void gated_residual_forward(const Cuda& ctx, R* x, const T* y, const T* gate, int B, int L,
                            int C, int mod_stride) {
  using namespace cuda_detail;
  const std::int64_t n = std::int64_t(B) * L * C;
  if (n <= 0) return;
  launch_vec(n, [&](auto w, unsigned blocks) {
    gated_residual_fwd_kernel<decltype(w)::value><<<blocks, kThreads, 0, ctx.stream()>>>(
        dptr(x), dptr(static_cast<const R*>(x)), dptr(y), dptr(gate), L, C, mod_stride, n);
  }, dptr(x), dptr(y));
  REDI_CUDA_LAUNCH_CHECK("gated_residual_forward");
}

/// out = x + gate * y, out of place (one pass instead of a copy and the in-place op); out may
/// alias x. out and x of the residual type R.
template <CudaReal T, CudaReal R>
void gated_residual_forward(const Cuda& ctx, R* out, const R* x, const T* y, const T* gate, int B,
                            int L, int C, int mod_stride) {
  using namespace cuda_detail;
  const std::int64_t n = std::int64_t(B) * L * C;
  if (n <= 0) return;
  launch_vec(n, [&](auto w, unsigned blocks) {
    gated_residual_fwd_kernel<decltype(w)::value><<<blocks, kThreads, 0, ctx.stream()>>>(
        dptr(out), dptr(x), dptr(y), dptr(gate), L, C, mod_stride, n);
  }, dptr(static_cast<const R*>(out)), dptr(x), dptr(y));
  REDI_CUDA_LAUNCH_CHECK("gated_residual_forward (out of place)");
}

/// dy = dx * gate (overwritten) ; dgate = sum_L dx * y (overwritten, at b*mod_stride + c);
/// dx of the residual type R.
template <CudaReal T, CudaReal R>
void gated_residual_backward(const Cuda& ctx, T* dy, T* dgate, const R* dx, const T* y,
                             const T* gate, int B, int L, int C, int mod_stride) {
  using namespace cuda_detail;
  if (!dy && !dgate) return;
  col_reduce<ColMode::Gated>(ctx, dptr(dy), dptr(dgate), static_cast<dev_t<T>*>(nullptr),
                             dptr(dx), dptr(y), dptr(gate), B, L, C, mod_stride,
                             "gated_residual_backward");
}

}  // namespace ops
}  // namespace redi
