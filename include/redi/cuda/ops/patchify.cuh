// redi/cuda/ops/patchify.cuh — patchify / unpatchify and their backwards: pure permutations,
// one thread per destination element (every op is a gather, so backwards overwrite without
// atomics). Mirrors redi/ops/patchify.hpp:
//   tokens[b, gy*gw+gx, (c*p+i)*p+j]  = img[b, c, p*gy+i, p*gx+j]   (patchify, inner (c,i,j))
//   img[b, c, p*gy+i, p*gx+j] = tokens[b, gy*gw+gx, (i*p+j)*C+c]    (unpatchify, inner (i,j,c))
#pragma once
#include "redi/cuda/ops/common.cuh"

namespace redi {
namespace cuda_detail {

struct PatchGeom {
  int C, H, W, p, gw, L;
  /// Pixel offset of token element `te` = (b*L + t)*P + inner with inner order (c,i,j) if cij
  /// else (i,j,c).
  __device__ std::int64_t pixel_of_token_elem(std::int64_t te, bool cij) const {
    const int P = C * p * p;
    const int inner = int(te % P);
    const std::int64_t bt = te / P;
    const int t = int(bt % L);
    const std::int64_t b = bt / L;
    int c, i, j;
    if (cij) {
      c = inner / (p * p);
      i = (inner / p) % p;
      j = inner % p;
    } else {
      c = inner % C;
      i = inner / (p * C);
      j = (inner / C) % p;
    }
    const int gy = t / gw, gx = t % gw;
    return ((b * C + c) * H + std::int64_t(p) * gy + i) * W + std::int64_t(p) * gx + j;
  }
  /// Token-element offset of pixel offset `px`.
  __device__ std::int64_t token_elem_of_pixel(std::int64_t px, bool cij) const {
    const int x = int(px % W);
    const std::int64_t r = px / W;
    const int y = int(r % H);
    const std::int64_t bc = r / H;
    const int c = int(bc % C);
    const std::int64_t b = bc / C;
    const int gy = y / p, i = y % p, gx = x / p, j = x % p;
    const int t = gy * gw + gx;
    const int P = C * p * p;
    const int inner = cij ? (c * p + i) * p + j : (i * p + j) * C + c;
    return (b * L + t) * P + inner;
  }
};

/// dst[e] = src[map(e)] where e runs over token elements (to_tokens) or pixels.
template <class D>
__global__ void patch_gather_kernel(D* dst, const D* src, std::int64_t n, PatchGeom g,
                                    bool dst_is_tokens, bool cij) {
  REDI_GRID_STRIDE(e, n) {
    const std::int64_t s = dst_is_tokens ? g.pixel_of_token_elem(e, cij)
                                         : g.token_elem_of_pixel(e, cij);
    dst[e] = src[s];
  }
}

template <class T>
void patch_gather(const Cuda& ctx, T* dst, const T* src, int B, int C, int H, int W, int p,
                  bool dst_is_tokens, bool cij, const char* what) {
  REDI_CHECK(p > 0 && H % p == 0 && W % p == 0, what, ": H=", H, ", W=", W,
             " must be multiples of p=", p);
  const std::int64_t n = std::int64_t(B) * C * H * W;
  if (n <= 0) return;
  PatchGeom g{C, H, W, p, W / p, (H / p) * (W / p)};
  patch_gather_kernel<<<grid_for(n, kThreads), kThreads, 0, ctx.stream()>>>(
      dptr(dst), dptr(src), n, g, dst_is_tokens, cij);
  REDI_CUDA_LAUNCH_CHECK(what);
}

}  // namespace cuda_detail

namespace ops {

template <CudaReal T>
void patchify_forward(const Cuda& ctx, T* tokens, const T* img, int B, int C, int H, int W,
                      int p) {
  cuda_detail::patch_gather(ctx, tokens, img, B, C, H, W, p, true, true, "patchify_forward");
}
template <CudaReal T>
void patchify_backward(const Cuda& ctx, T* dimg, const T* dtokens, int B, int C, int H, int W,
                       int p) {
  if (!dimg) return;
  cuda_detail::patch_gather(ctx, dimg, dtokens, B, C, H, W, p, false, true, "patchify_backward");
}
template <CudaReal T>
void unpatchify_forward(const Cuda& ctx, T* img, const T* tokens, int B, int C, int H, int W,
                        int p) {
  cuda_detail::patch_gather(ctx, img, tokens, B, C, H, W, p, false, false, "unpatchify_forward");
}
template <CudaReal T>
void unpatchify_backward(const Cuda& ctx, T* dtokens, const T* dimg, int B, int C, int H, int W,
                         int p) {
  if (!dtokens) return;
  cuda_detail::patch_gather(ctx, dtokens, dimg, B, C, H, W, p, true, false,
                            "unpatchify_backward");
}

}  // namespace ops
}  // namespace redi
