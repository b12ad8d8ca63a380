// redi/cuda/ops/vec.cuh — 16-byte vector loads and stores for the memory-bound elementwise
// kernels (elementwise.cuh, activation.cuh, modulate.cuh, optim.cuh). nvcc only.
//
// Alignment contract. A kernel over arrays p1..pk of n elements runs with W elements per thread
// and per iteration, W = 16 / (the widest element type): 4 for fp32 (one 16-byte load per fp32
// array, 8 bytes per bf16 array next to it), 8 when every array is bf16. It does so only when
// every base pointer is aligned to W elements of its type (16 bytes for the widest); elements
// [0, n - n % W) go by vectors, the last n % W by scalar accesses (the tail), so n need not be a
// multiple of W. When any pointer is not aligned (a buffer carved at an odd element offset) the
// same kernel runs with W = 1: scalar, correct, slower. Buffers from Tensor / the workspace are
// 256-byte aligned and their carved offsets are multiples of their sizes, so the model's
// activations meet the contract whenever the row widths are multiples of 8 (every DiT/SiT
// config). Values are computed per element in fp32 exactly as the scalar code does, so the
// vector and scalar paths give identical results (tests/cuda/test_cuda_fused.cu: odd sizes,
// odd offsets, both paths against the CPU ops).
#pragma once
#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "redi/cuda/ops/common.cuh"

namespace redi {
namespace cuda_detail {

template <int Bytes> struct vec_storage;
template <> struct vec_storage<16> { using type = uint4; };
template <> struct vec_storage<8> { using type = uint2; };
template <> struct vec_storage<4> { using type = unsigned int; };
template <> struct vec_storage<2> { using type = unsigned short; };

/// f[k] = float(p[k]) for k < W, one W * sizeof(D)-byte load (p aligned to it).
template <int W, class D>
__device__ __forceinline__ void vload(float (&f)[W], const D* p) {
  if constexpr (W == 1) {
    f[0] = ld(*p);
  } else {
    using S = typename vec_storage<int(W * sizeof(D))>::type;
    const S s = *reinterpret_cast<const S*>(p);
    const D* e = reinterpret_cast<const D*>(&s);
#pragma unroll
    for (int k = 0; k < W; ++k) f[k] = ld(e[k]);
  }
}

/// p[k] = D(f[k]) for k < W, one store.
template <int W, class D>
__device__ __forceinline__ void vstore(D* p, const float (&f)[W]) {
  if constexpr (W == 1) {
    *p = st<D>(f[0]);
  } else {
    using S = typename vec_storage<int(W * sizeof(D))>::type;
    S s;
    D* e = reinterpret_cast<D*>(&s);
#pragma unroll
    for (int k = 0; k < W; ++k) e[k] = st<D>(f[k]);
    *reinterpret_cast<S*>(p) = s;
  }
}

/// Elements per vector for arrays of the element types Ds: 16 bytes of the widest.
template <class... Ds>
constexpr int vec_width() {
  constexpr std::size_t widest = std::max({sizeof(Ds)...});
  return int(16 / widest);
}

/// Whether every pointer is aligned to W elements of its own type (null pointers pass).
template <int W, class... Ds>
bool vec_aligned(const Ds*... p) {
  return ((reinterpret_cast<std::uintptr_t>(p) % (std::uintptr_t(W) * sizeof(Ds)) == 0) && ...);
}

/// The grid-stride loop of a W-wide kernel: f(i, width) with width an integral_constant, W for
/// each full vector [i, i + W), then 1 for each element of the tail [n - n % W, n).
template <int W, class F>
__device__ __forceinline__ void vec_loop(std::int64_t n, F&& f) {
  const std::int64_t t = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const std::int64_t stride = std::int64_t(blockDim.x) * gridDim.x;
  const std::int64_t nv = n / W;
  for (std::int64_t j = t; j < nv; j += stride) f(j * W, std::integral_constant<int, W>{});
  if constexpr (W > 1)
    for (std::int64_t i = nv * W + t; i < n; i += stride) f(i, std::integral_constant<int, 1>{});
}

/// Calls launch(integral_constant<int, W>) with the widest W the pointers' alignment allows
/// (vec_width of their types, or 1), and the grid size for it in `blocks`.
template <class Launch, class... Ds>
void launch_vec(std::int64_t n, Launch&& launch, const Ds*... p) {
  constexpr int W = vec_width<std::remove_cv_t<Ds>...>();
  if (vec_aligned<W>(p...))
    launch(std::integral_constant<int, W>{}, grid_for((n + W - 1) / W, kThreads));
  else
    launch(std::integral_constant<int, 1>{}, grid_for(n, kThreads));
}

}  // namespace cuda_detail
}  // namespace redi
