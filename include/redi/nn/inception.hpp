// redi/nn/inception.hpp — the FID Inception-v3 network (inference only): torchvision's Inception3
// with the FID variants of pytorch-fid (the port of the 2015-12-05 TensorFlow graph that FID,
// sFID, IS and the ADM evaluator use), its BatchNorms folded into the convolutions.
//
// Input x [B, 3, S, S] in [-1, 1] (S = input_size, 299 for FID; eval/inception.hpp resizes and
// scales uint8 images). Every "BasicConv2d" P is conv (no bias) -> BatchNorm(eps 1e-3) -> ReLU;
// the loader (weights/inception.hpp) folds the BatchNorm:
//   s = gamma / sqrt(running_var + 1e-3),  W' = W * s[o],  b' = beta - running_mean * s
// so here a BasicConv2d is out = ReLU(conv(x, W') + b').
//
//   Conv2d_1a_3x3 3->32 k3 s2 | Conv2d_2a_3x3 32->32 k3 | Conv2d_2b_3x3 32->64 k3 p1 | maxpool 3/2
//   Conv2d_3b_1x1 64->80 k1   | Conv2d_4a_3x3 80->192 k3 | maxpool 3/2                  (35x35 @299)
//   Mixed_5b A(192, pool 32) -> 256, Mixed_5c A(256, 64) -> 288, Mixed_5d A(288, 64) -> 288
//   Mixed_6a B(288) -> 768 (17x17)
//   Mixed_6b C(768, c7 128), Mixed_6c C(160), Mixed_6d C(160), Mixed_6e C(192) -> 768
//   Mixed_7a D(768) -> 1280 (8x8), Mixed_7b E_1(1280) -> 2048, Mixed_7c E_2(2048) -> 2048
//   global average pool -> pool3 [B, 2048];  fc 2048 -> 1008 (logits)
//
//   A(C, pf): [branch1x1 C->64 | branch5x5_1 C->48, _2 48->64 k5 p2 |
//              branch3x3dbl_1 C->64, _2 64->96 k3 p1, _3 96->96 k3 p1 |
//              avgpool 3/1/p1 (count_include_pad=False), branch_pool C->pf]
//   B(C):     [branch3x3 C->384 k3 s2 | branch3x3dbl_1 C->64, _2 64->96 k3 p1, _3 96->96 k3 s2 |
//              maxpool 3/2]
//   C(C, c7): [branch1x1 C->192 | branch7x7_1 C->c7, _2 (1x7 p0,3) c7->c7, _3 (7x1 p3,0) c7->192 |
//              branch7x7dbl_1 C->c7, _2 7x1, _3 1x7, _4 7x1 (c7->c7), _5 1x7 c7->192 |
//              avgpool 3/1/p1 (count_include_pad=False), branch_pool C->192]
//   D(C):     [branch3x3_1 C->192, _2 192->320 k3 s2 | branch7x7x3_1 C->192, _2 1x7, _3 7x1,
//              _4 192->192 k3 s2 | maxpool 3/2]
//   E(C):     [branch1x1 C->320 | branch3x3_1 C->384, then [_2a 1x3 | _2b 3x1] 384->384 each |
//              branch3x3dbl_1 C->448, _2 448->384 k3 p1, then [_3a 1x3 | _3b 3x1] |
//              pool, branch_pool C->192];  pool: E_1 (Mixed_7b) avgpool 3/1/p1 count_include_pad
//              False, E_2 (Mixed_7c) maxpool 3/1/p1
// Branch outputs are concatenated along channels in the order written.
//
// Outputs: pool3 [B, 2048] (FID, precision/recall); the sFID spatial features of ADM's evaluator,
// TensorFlow's "mixed_6/conv:0"[..., :7]: in the TF graph mixed, mixed_1, mixed_2 are Mixed_5b-d,
// mixed_3 is Mixed_6a, so mixed_6 is Mixed_6d and its "conv" the 1x1 branch (BN + ReLU applied):
// the first 7 channels of Mixed_6d.branch1x1's output, 17x17 at 299, flattened in TF's NHWC order
// (index (y * W + x) * 7 + c; the order matters for reading ADM's mu_s / sigma_s) -> [B, 2023];
// logits(pool3) = pool3 fc.weight^T (+ fc.bias when asked): ADM's Inception Score feeds
// softmax(pool3 W) WITHOUT the bias (evaluator.py, _create_softmax_graph).
//
// Execution: batch-major NCHW buffers; the 1x1 convolutions that read the same block input
// (A: 1x1, 5x5_1, 3x3dbl_1; C: 1x1, 7x7_1, 7x7dbl_1; D: 3x3_1, 7x7x3_1; E: 1x1, 3x3_1,
// 3x3dbl_1) run as ONE convolution: their weights are adjacent in the conv buffer, so the fused
// weight is a contiguous [sum OC, C] matrix. All compute goes through the five primitives of
// InceptionCpuOps<T> (conv + bias + ReLU, max/avg pooling, global average pooling, GEMM, channel
// copies); a device backend supplies the same five over device buffers (a cuDNN convolution for
// conv, see docs/evaluation.md) — the network code above them is device-agnostic.
#pragma once
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "redi/core/device.hpp"
#include "redi/core/dtype.hpp"
#include "redi/core/error.hpp"
#include "redi/ops/conv2d.hpp"
#include "redi/ops/gemm.hpp"
#include "redi/ops/pool.hpp"

namespace redi {

/// One BasicConv2d: its torchvision module path, geometry and offsets in the folded buffers.
struct InceptionConv {
  std::string name;  ///< e.g. "Mixed_5b.branch1x1" (file tensors: name + ".conv.weight", ".bn.*")
  ops::Conv2dGeometry g;
  std::int64_t w_off = 0, b_off = 0;  ///< in conv_weights() / conv_biases()
};

/// The CPU primitives the network is written against (see the header).
template <CpuReal T>
struct InceptionCpuOps {
  Cpu dev;
  std::vector<T> scratch;
  /// out [B, OC, OH, OW] = ReLU(conv(in, W) + b).
  void conv_relu(T* out, const T* in, const T* W, const T* b, int B, int H, int Wd, const ops::Conv2dGeometry& g) {
    const std::int64_t per = ops::conv2d_scratch_per_image(g, H, Wd);
    const std::int64_t want = per * std::min(B, 8);
    if (std::int64_t(scratch.size()) < want) scratch.resize(std::size_t(want));
    ops::conv2d_forward<T>(dev, out, in, W, b, B, H, Wd, g, scratch.data(), std::int64_t(scratch.size()));
    const std::int64_t n = std::int64_t(B) * g.out_channels * g.out_h(H) * g.out_w(Wd);
#pragma omp parallel for schedule(static) if (n > 65536)
    for (std::int64_t i = 0; i < n; ++i) out[i] = out[i] > T(0) ? out[i] : T(0);
  }
  void maxpool(T* out, const T* in, int B, int C, int H, int W, const ops::Pool2dGeometry& g) {
    ops::maxpool2d_forward<T>(dev, out, in, B, C, H, W, g);
  }
  void avgpool(T* out, const T* in, int B, int C, int H, int W, const ops::Pool2dGeometry& g) {
    ops::avgpool2d_forward<T>(dev, out, in, B, C, H, W, g);
  }
  void global_avgpool(T* out, const T* in, int B, int C, int H, int W) {
    ops::global_avgpool_forward<T>(dev, out, in, B, C, H, W);
  }
  /// C [M, N] = A [M, K] B^T (B [N, K]).
  void gemm_nt(T* C, const T* A, const T* Bm, int M, int N, int K) {
    ops::gemm<T>(dev, false, true, M, N, K, T(1), A, K, Bm, K, T(0), C, N);
  }
  /// dst[b, dc0 + c] = src[b, sc0 + c] for c < n (planes of P elements; dst has DC, src SC channels).
  void copy_channels(T* dst, int DC, int dc0, const T* src, int SC, int sc0, int n, int B, std::int64_t P) {
#pragma omp parallel for schedule(static) if (std::int64_t(B) * n * P > 65536)
    for (std::int64_t bc = 0; bc < std::int64_t(B) * n; ++bc) {
      const std::int64_t b = bc / n, c = bc % n;
      std::copy_n(src + (b * SC + sc0 + c) * P, P, dst + (b * DC + dc0 + c) * P);
    }
  }
};

template <CpuReal T>
class InceptionV3 {
public:
  static constexpr int kPool3 = 2048, kClasses = 1008, kSpatialChannels = 7;
  static constexpr double kBnEps = 1e-3;
  static constexpr const char* kSpatialBlock = "Mixed_6d";

  /// The network for S x S inputs (S = 299 for FID; at least 75, Inception's minimum).
  explicit InceptionV3(int input_size = 299) : S_(input_size) {
    REDI_CHECK(S_ >= 75, "InceptionV3: input size ", S_, " (at least 75)");
    build();
  }

  int input_size() const { return S_; }
  const std::vector<InceptionConv>& convs() const { return convs_; }
  std::vector<T>& conv_weights() { return W_; }
  std::vector<T>& conv_biases() { return bias_; }
  std::vector<T>& fc_weight() { return fcW_; }  ///< [1008, 2048]
  std::vector<T>& fc_bias() { return fcb_; }    ///< [1008]
  const std::vector<T>& fc_weight() const { return fcW_; }
  const std::vector<T>& fc_bias() const { return fcb_; }
  /// Side of the Mixed_6d map (17 at 299) and the spatial feature size 7 * side^2 (2023).
  int spatial_side() const { return s6_; }
  int spatial_dim() const { return kSpatialChannels * s6_ * s6_; }
  /// Multiply-adds per image (convolutions and fc).
  double macs() const {
    double m = double(kPool3) * kClasses;
    for (const auto& c : convs_) m += double(c.g.weight_elems()) * c.g.out_h(in_hw_.at(&c - convs_.data())) *
                                      c.g.out_w(in_hw_.at(&c - convs_.data()));
    return m;
  }

  /// pool3 [B, 2048] and (optional) spatial [B, spatial_dim()] of x [B, 3, S, S] in [-1, 1].
  void forward(const T* x, int B, T* pool3, T* spatial) {
    REDI_CHECK(B > 0, "InceptionV3::forward: batch ", B);
    curB_ = B;
    const std::int64_t big = max_main_ * B, tmp = max_tmp_ * B;
    for (auto* v : {&X_, &Y_}) if (std::int64_t(v->size()) < big) v->resize(std::size_t(big));
    for (auto* v : {&T0_, &T1_, &T2_}) if (std::int64_t(v->size()) < tmp) v->resize(std::size_t(tmp));
    int H = S_;
    std::size_t ci = 0;
    auto conv = [&](T* out, const T* in, int& h) {  // the next stem conv
      const InceptionConv& c = convs_[ci++];
      ops_.conv_relu(out, in, w(c), b(c), B, h, h, c.g);
      h = c.g.out_h(h);
    };
    T *X = X_.data(), *Y = Y_.data();
    conv(X, x, H);              // Conv2d_1a_3x3
    conv(Y, X, H);              // Conv2d_2a_3x3
    conv(X, Y, H);              // Conv2d_2b_3x3
    maxpool32(Y, X, 64, H);
    conv(X, Y, H);              // Conv2d_3b_1x1
    conv(Y, X, H);              // Conv2d_4a_3x3
    maxpool32(X, Y, 192, H);
    int C = 192;
    for (int pf : {32, 64, 64}) { block_a(Y, X, C, H, pf, ci); std::swap(X, Y); }
    block_b(Y, X, C, H, ci); std::swap(X, Y);
    for (int c7 : {128, 160, 160, 192}) {
      const bool cap = spatial && convs_[ci].name.starts_with(kSpatialBlock);
      block_c(Y, X, C, H, c7, ci, cap ? spatial : nullptr);
      std::swap(X, Y);
    }
    block_d(Y, X, C, H, ci); std::swap(X, Y);
    block_e(Y, X, C, H, false, ci); std::swap(X, Y);
    block_e(Y, X, C, H, true, ci); std::swap(X, Y);
    REDI_CHECK(ci == convs_.size() && C == kPool3, "InceptionV3: internal layout error");
    ops_.global_avgpool(pool3, X, B, C, H, H);
  }

  /// out [B, 1008] = pool3 fc.weight^T (+ fc.bias when with_bias).
  void logits(const T* pool3, int B, T* out, bool with_bias = false) {
    ops_.gemm_nt(out, pool3, fcW_.data(), B, kClasses, kPool3);
    if (with_bias)
      for (int r = 0; r < B; ++r)
        for (int k = 0; k < kClasses; ++k) out[std::int64_t(r) * kClasses + k] += fcb_[std::size_t(k)];
  }

private:
  const T* w(const InceptionConv& c) const { return W_.data() + c.w_off; }
  const T* b(const InceptionConv& c) const { return bias_.data() + c.b_off; }

  void add(const std::string& name, int in, int out, int kh, int kw, int stride, int ph, int pw, int H) {
    InceptionConv c;
    c.name = name;
    c.g = {in, out, kh, kw, stride, stride, ph, ph, pw, pw};
    c.w_off = std::int64_t(wsize_);
    c.b_off = std::int64_t(bsize_);
    wsize_ += std::size_t(c.g.weight_elems());
    bsize_ += std::size_t(out);
    convs_.push_back(c);
    in_hw_.push_back(H);
    max_main_ = std::max(max_main_, std::int64_t(out) * c.g.out_h(H) * c.g.out_w(H));
  }
  void build() {
    int H = S_;
    auto stem = [&](const char* n, int in, int out, int k, int s, int p) {
      add(n, in, out, k, k, s, p, p, H);
      H = convs_.back().g.out_h(H);
    };
    stem("Conv2d_1a_3x3", 3, 32, 3, 2, 0);
    stem("Conv2d_2a_3x3", 32, 32, 3, 1, 0);
    stem("Conv2d_2b_3x3", 32, 64, 3, 1, 1);
    H = (H - 3) / 2 + 1;
    stem("Conv2d_3b_1x1", 64, 80, 1, 1, 0);
    stem("Conv2d_4a_3x3", 80, 192, 3, 1, 0);
    H = (H - 3) / 2 + 1;
    REDI_CHECK(H >= 3, "InceptionV3: input ", S_, " too small");
    auto tmp = [&](std::int64_t ch, int h) { max_tmp_ = std::max(max_tmp_, ch * h * h); };
    int C = 192;
    const char* A[] = {"Mixed_5b", "Mixed_5c", "Mixed_5d"};
    const int pfs[] = {32, 64, 64};
    for (int i = 0; i < 3; ++i) {
      const std::string m = A[i];
      add(m + ".branch1x1", C, 64, 1, 1, 1, 0, 0, H);
      add(m + ".branch5x5_1", C, 48, 1, 1, 1, 0, 0, H);
      add(m + ".branch3x3dbl_1", C, 64, 1, 1, 1, 0, 0, H);
      add(m + ".branch5x5_2", 48, 64, 5, 5, 1, 2, 2, H);
      add(m + ".branch3x3dbl_2", 64, 96, 3, 3, 1, 1, 1, H);
      add(m + ".branch3x3dbl_3", 96, 96, 3, 3, 1, 1, 1, H);
      add(m + ".branch_pool", C, pfs[i], 1, 1, 1, 0, 0, H);
      tmp(std::max(C, 176), H);
      C = 224 + pfs[i];
      max_main_ = std::max(max_main_, std::int64_t(C) * H * H);
    }
    add("Mixed_6a.branch3x3", C, 384, 3, 3, 2, 0, 0, H);
    add("Mixed_6a.branch3x3dbl_1", C, 64, 1, 1, 1, 0, 0, H);
    add("Mixed_6a.branch3x3dbl_2", 64, 96, 3, 3, 1, 1, 1, H);
    add("Mixed_6a.branch3x3dbl_3", 96, 96, 3, 3, 2, 0, 0, H);
    tmp(96, H);
    H = (H - 3) / 2 + 1;
    tmp(std::max(384, C), H);
    C = 768;
    s6_ = H;
    const char* Cn[] = {"Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e"};
    const int c7s[] = {128, 160, 160, 192};
    for (int i = 0; i < 4; ++i) {
      const std::string m = Cn[i];
      const int c7 = c7s[i];
      add(m + ".branch1x1", C, 192, 1, 1, 1, 0, 0, H);
      add(m + ".branch7x7_1", C, c7, 1, 1, 1, 0, 0, H);
      add(m + ".branch7x7dbl_1", C, c7, 1, 1, 1, 0, 0, H);
      add(m + ".branch7x7_2", c7, c7, 1, 7, 1, 0, 3, H);
      add(m + ".branch7x7_3", c7, 192, 7, 1, 1, 3, 0, H);
      add(m + ".branch7x7dbl_2", c7, c7, 7, 1, 1, 3, 0, H);
      add(m + ".branch7x7dbl_3", c7, c7, 1, 7, 1, 0, 3, H);
      add(m + ".branch7x7dbl_4", c7, c7, 7, 1, 1, 3, 0, H);
      add(m + ".branch7x7dbl_5", c7, 192, 1, 7, 1, 0, 3, H);
      add(m + ".branch_pool", C, 192, 1, 1, 1, 0, 0, H);
      tmp(C, H);
    }
    add("Mixed_7a.branch3x3_1", C, 192, 1, 1, 1, 0, 0, H);
    add("Mixed_7a.branch7x7x3_1", C, 192, 1, 1, 1, 0, 0, H);
    add("Mixed_7a.branch3x3_2", 192, 320, 3, 3, 2, 0, 0, H);
    add("Mixed_7a.branch7x7x3_2", 192, 192, 1, 7, 1, 0, 3, H);
    add("Mixed_7a.branch7x7x3_3", 192, 192, 7, 1, 1, 3, 0, H);
    add("Mixed_7a.branch7x7x3_4", 192, 192, 3, 3, 2, 0, 0, H);
    tmp(384, H);
    H = (H - 3) / 2 + 1;
    tmp(768, H);
    C = 1280;
    for (const char* m0 : {"Mixed_7b", "Mixed_7c"}) {
      const std::string m = m0;
      add(m + ".branch1x1", C, 320, 1, 1, 1, 0, 0, H);
      add(m + ".branch3x3_1", C, 384, 1, 1, 1, 0, 0, H);
      add(m + ".branch3x3dbl_1", C, 448, 1, 1, 1, 0, 0, H);
      add(m + ".branch3x3_2a", 384, 384, 1, 3, 1, 0, 1, H);
      add(m + ".branch3x3_2b", 384, 384, 3, 1, 1, 1, 0, H);
      add(m + ".branch3x3dbl_2", 448, 384, 3, 3, 1, 1, 1, H);
      add(m + ".branch3x3dbl_3a", 384, 384, 1, 3, 1, 0, 1, H);
      add(m + ".branch3x3dbl_3b", 384, 384, 3, 1, 1, 1, 0, H);
      add(m + ".branch_pool", C, 192, 1, 1, 1, 0, 0, H);
      tmp(std::max(C, 1152), H);
      C = 2048;
    }
    W_.assign(wsize_, T(0));
    bias_.assign(bsize_, T(0));
    fcW_.assign(std::size_t(kClasses) * kPool3, T(0));
    fcb_.assign(std::size_t(kClasses), T(0));
  }

  /// A convolution of the n specs from ci on (1x1 siblings with adjacent weights) as one.
  ops::Conv2dGeometry fused(std::size_t ci, int n) const {
    ops::Conv2dGeometry g = convs_[ci].g;
    for (int k = 1; k < n; ++k) g.out_channels += convs_[ci + std::size_t(k)].g.out_channels;
    return g;
  }
  void maxpool32(T* out, const T* in, int C, int& H) {
    const auto g = ops::Pool2dGeometry::square(3, 2, 0);
    ops_.maxpool(out, in, B_(), C, H, H, g);
    H = g.out_h(H);
  }
  int B_() const { return curB_; }

  // Each block: out [B, C', H', W'] from in [B, C, H, H]; C, H updated; ci advanced.
  void block_a(T* out, const T* in, int& C, int H, int pf, std::size_t& ci);
  void block_b(T* out, const T* in, int& C, int& H, std::size_t& ci);
  void block_c(T* out, const T* in, int& C, int H, int c7, std::size_t& ci, T* spatial);
  void block_d(T* out, const T* in, int& C, int& H, std::size_t& ci);
  void block_e(T* out, const T* in, int& C, int H, bool max_pool, std::size_t& ci);

  int S_, s6_ = 0, curB_ = 0;
  std::vector<InceptionConv> convs_;
  std::vector<int> in_hw_;
  std::size_t wsize_ = 0, bsize_ = 0;
  std::int64_t max_main_ = 0, max_tmp_ = 0;
  std::vector<T> W_, bias_, fcW_, fcb_;
  std::vector<T> X_, Y_, T0_, T1_, T2_;
  InceptionCpuOps<T> ops_;
};

}  // namespace redi

#include "redi/nn/inception_blocks.hpp"
