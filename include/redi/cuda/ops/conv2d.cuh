// redi/cuda/ops/conv2d.cuh — 2-D convolution forward (cross-correlation, NCHW, W [OC, C, KH, KW],
// bias, any kernel / stride / per-side padding) through cuDNN's convolution API; mirrors
// redi/ops/conv2d.hpp's forward (same Conv2dGeometry, same result up to summation order).
//
//   out [B, OC, OH, OW] = conv(in, W) + b        (b may be null)
//
// cuDNN pads symmetrically; a geometry whose padding is not (top == bottom, left == right), such
// as the SD-VAE's (0, 1, 0, 1) before its stride-2 convolutions, is run as pad2d into the
// caller's scratch (conv2d_scratch_elems(g, H, W, B) elements: the padded input) followed by an
// unpadded convolution. Symmetric geometries need no scratch.
//
// Plans (descriptors and the algorithm from cudnnGetConvolutionForwardAlgorithm_v7, the first
// one that succeeds with a workspace <= 1 GiB) are cached in the context keyed by shape and type;
// the workspace is the context's grow-only scratch. fp32 runs in exact fp32 (CUDNN_FMA_MATH)
// unless the context allows TF32 (ctx.tf32()); bf16 data accumulates in fp32. The bias is added
// by a small kernel. cuDNN's legacy convolution API is deprecated in cuDNN 9 but present in every
// 8.x/9.x release; CUDNN_WARN_DEPRECATED is not defined, so it compiles without warnings.
#pragma once
#include <cudnn.h>

#include <algorithm>
#include <memory>
#include <string>

#include "redi/cuda/cudnn.hpp"
#include "redi/cuda/ops/common.cuh"
#include "redi/cuda/ops/resize2d.cuh"
#include "redi/ops/conv2d_geometry.hpp"

namespace redi {
namespace cuda_detail {

template <class T> constexpr cudnnDataType_t cudnn_dtype();
template <> constexpr cudnnDataType_t cudnn_dtype<float>() { return CUDNN_DATA_FLOAT; }
template <> constexpr cudnnDataType_t cudnn_dtype<bf16>() { return CUDNN_DATA_BFLOAT16; }

/// One convolution shape's cuDNN descriptors and algorithm.
struct ConvPlan {
  cudnnTensorDescriptor_t x = nullptr, y = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  cudnnConvolutionFwdAlgo_t algo{};
  std::size_t workspace = 0;
  ConvPlan() = default;
  ConvPlan(const ConvPlan&) = delete;
  ConvPlan& operator=(const ConvPlan&) = delete;
  ~ConvPlan() {
    if (conv) (void)cudnnDestroyConvolutionDescriptor(conv);
    if (w) (void)cudnnDestroyFilterDescriptor(w);
    if (y) (void)cudnnDestroyTensorDescriptor(y);
    if (x) (void)cudnnDestroyTensorDescriptor(x);
  }
};

constexpr std::size_t kConvMaxWorkspace = std::size_t(1) << 30;

/// The cached plan for an unpadded-or-symmetric convolution of `n` images of C x H x W.
template <class T>
ConvPlan& conv_plan(const Cuda& ctx, const ops::Conv2dGeometry& g, int n, int H, int W) {
  const bool tf32 = ctx.state().tf32;
  const std::string key = "cudnn_conv:" + std::to_string(int(cudnn_dtype<T>())) + ":" + std::to_string(n) + "x" +
                          std::to_string(g.in_channels) + "x" + std::to_string(H) + "x" + std::to_string(W) + ":" +
                          g.str() + (tf32 ? ":tf32" : "");
  auto& plans = ctx.state().plans;
  if (auto it = plans.find(key); it != plans.end()) return *static_cast<ConvPlan*>(it->second.get());
  auto p = std::make_shared<ConvPlan>();
  const cudnnDataType_t dt = cudnn_dtype<T>();
  const std::string what = "conv2d_forward " + g.str() + " on " + std::to_string(n) + "x" +
                           std::to_string(g.in_channels) + "x" + std::to_string(H) + "x" + std::to_string(W);
  auto chk = [&](cudnnStatus_t st, const char* call) {
    if (st != CUDNN_STATUS_SUCCESS) REDI_FAIL("cuDNN call `", call, "` (", what, ") failed: ", status_string(st));
  };
  chk(cudnnCreateTensorDescriptor(&p->x), "cudnnCreateTensorDescriptor");
  chk(cudnnCreateTensorDescriptor(&p->y), "cudnnCreateTensorDescriptor");
  chk(cudnnCreateFilterDescriptor(&p->w), "cudnnCreateFilterDescriptor");
  chk(cudnnCreateConvolutionDescriptor(&p->conv), "cudnnCreateConvolutionDescriptor");
  chk(cudnnSetTensor4dDescriptor(p->x, CUDNN_TENSOR_NCHW, dt, n, g.in_channels, H, W), "cudnnSetTensor4dDescriptor(x)");
  chk(cudnnSetFilter4dDescriptor(p->w, dt, CUDNN_TENSOR_NCHW, g.out_channels, g.in_channels, g.kernel_h, g.kernel_w),
      "cudnnSetFilter4dDescriptor");
  chk(cudnnSetConvolution2dDescriptor(p->conv, g.pad_top, g.pad_left, g.stride_h, g.stride_w, 1, 1,
                                      CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT),
      "cudnnSetConvolution2dDescriptor");
  const cudnnMathType_t math = std::is_same_v<T, float> ? (tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH)
                                                        : CUDNN_TENSOR_OP_MATH;
  chk(cudnnSetConvolutionMathType(p->conv, math), "cudnnSetConvolutionMathType");
  int on = 0, oc = 0, oh = 0, ow = 0;
  chk(cudnnGetConvolution2dForwardOutputDim(p->conv, p->x, p->w, &on, &oc, &oh, &ow),
      "cudnnGetConvolution2dForwardOutputDim");
  REDI_CHECK(on == n && oc == g.out_channels && oh == g.out_h(H) && ow == g.out_w(W), what,
             ": cuDNN output dims ", on, "x", oc, "x", oh, "x", ow, " differ from the geometry's");
  chk(cudnnSetTensor4dDescriptor(p->y, CUDNN_TENSOR_NCHW, dt, n, oc, oh, ow), "cudnnSetTensor4dDescriptor(y)");
  cudnnHandle_t h = cudnn_handle(ctx);
  cudnnConvolutionFwdAlgoPerf_t perf[16];
  int count = 0;
  chk(cudnnGetConvolutionForwardAlgorithm_v7(h, p->x, p->w, p->conv, p->y, 16, &count, perf),
      "cudnnGetConvolutionForwardAlgorithm_v7");
  bool found = false;
  for (int i = 0; i < count && !found; ++i) {
    if (perf[i].status != CUDNN_STATUS_SUCCESS || perf[i].memory > kConvMaxWorkspace) continue;
    // fp32 without TF32: only algorithms whose math type is plain FMA.
    if (std::is_same_v<T, float> && !tf32 && perf[i].mathType != CUDNN_FMA_MATH &&
        perf[i].mathType != CUDNN_DEFAULT_MATH)
      continue;
    p->algo = perf[i].algo;
    p->workspace = perf[i].memory;
    chk(cudnnSetConvolutionMathType(p->conv, perf[i].mathType), "cudnnSetConvolutionMathType");
    found = true;
  }
  REDI_CHECK(found, what, ": cuDNN offers no forward algorithm (", count, " candidates)");
  plans.emplace(key, p);
  return *p;
}

template <class D>
__global__ void conv_bias_kernel(D* out, const D* b, std::int64_t n, int OC, std::int64_t P) {
  REDI_GRID_STRIDE(i, n) out[i] = st<D>(ld(out[i]) + ld(b[(i / P) % OC]));
}

}  // namespace cuda_detail

namespace ops {

/// Scratch elements conv2d_forward needs for `images` images: the padded input when the padding
/// is not symmetric, else 0.
inline std::int64_t conv2d_scratch_elems_cuda(const Conv2dGeometry& g, int H, int W, int images) {
  if (g.symmetric_padding()) return 0;
  return std::int64_t(std::max(1, images)) * g.in_channels * (H + g.pad_top + g.pad_bottom) *
         std::int64_t(W + g.pad_left + g.pad_right);
}

/// out [B, OC, OH, OW] = conv(in [B, C, H, W], W [OC, C, KH, KW]) + b (b may be null).
template <CudaReal T>
void conv2d_forward(const Cuda& ctx, T* out, const T* in, const T* Wt, const T* b, int B, int H, int W,
                    const Conv2dGeometry& g, T* scratch, std::int64_t scratch_elems) {
  g.check(H, W);
  if (B <= 0) return;
  using namespace cuda_detail;
  Conv2dGeometry eff = g;
  const T* x = in;
  int h = H, w = W;
  if (!g.symmetric_padding()) {
    const std::int64_t need = conv2d_scratch_elems_cuda(g, H, W, B);
    REDI_CHECK(scratch && scratch_elems >= need, "conv2d_forward (cuda): ", g.str(), " on ", B, "x", H, "x", W,
               " pads asymmetrically and needs ", need, " scratch elements, got ", scratch_elems);
    pad2d_forward(ctx, scratch, in, B, g.in_channels, H, W, g.pad_top, g.pad_bottom, g.pad_left, g.pad_right);
    x = scratch;
    h = H + g.pad_top + g.pad_bottom;
    w = W + g.pad_left + g.pad_right;
    eff.pad_top = eff.pad_bottom = eff.pad_left = eff.pad_right = 0;
  }
  ConvPlan& p = conv_plan<T>(ctx, eff, B, h, w);
  void* ws = p.workspace ? ctx.scratch(p.workspace) : nullptr;
  const float one = 1.0f, zero = 0.0f;
  const cudnnStatus_t st = cudnnConvolutionForward(cudnn_handle(ctx), &one, p.x, x, p.w, Wt, p.conv, p.algo, ws,
                                                   p.workspace, &zero, p.y, out);
  if (st != CUDNN_STATUS_SUCCESS)
    REDI_FAIL("cuDNN call `cudnnConvolutionForward` (", g.str(), " on ", B, "x", H, "x", W, ") failed: ",
              status_string(st));
  if (b) {
    const std::int64_t P = std::int64_t(g.out_h(H)) * g.out_w(W), n = std::int64_t(B) * g.out_channels * P;
    conv_bias_kernel<<<grid_for(n, kThreads), kThreads, 0, ctx.stream()>>>(dptr(out), dptr(b), n, g.out_channels, P);
    REDI_CUDA_LAUNCH_CHECK("conv2d_forward bias");
  }
}

}  // namespace ops
}  // namespace redi
