// redi/ops/conv2d_geometry.hpp — the geometry of a 2-D convolution (channels, kernel, stride,
// per-side zero padding) shared by the CPU op (ops/conv2d.hpp) and the cuDNN one
// (cuda/ops/conv2d.cuh). No GEMM here, so nvcc-compiled code (the CUDA op, nn/vae.hpp) can include it.
//
//   OH = (H + pad_top + pad_bottom - KH) / stride_h + 1   (floor), OW likewise
#pragma once
#include <cstdint>
#include <string>

#include "redi/core/error.hpp"

namespace redi::ops {

/// The geometry of a convolution (everything but the batch and the input's height and width).
struct Conv2dGeometry {
  int in_channels = 0, out_channels = 0;
  int kernel_h = 1, kernel_w = 1;
  int stride_h = 1, stride_w = 1;
  int pad_top = 0, pad_bottom = 0, pad_left = 0, pad_right = 0;

  /// A k x k kernel with one stride and the same padding on every side (k / 2 by default:
  /// "same" size for odd k at stride 1).
  static Conv2dGeometry square(int in_c, int out_c, int k, int stride = 1, int pad = -1) {
    if (pad < 0) pad = k / 2;
    return {in_c, out_c, k, k, stride, stride, pad, pad, pad, pad};
  }

  int out_h(int H) const { return (H + pad_top + pad_bottom - kernel_h) / stride_h + 1; }
  int out_w(int W) const { return (W + pad_left + pad_right - kernel_w) / stride_w + 1; }
  /// Rows of the im2col matrix: C * KH * KW (= the columns of W viewed as [OC, C*KH*KW]).
  std::int64_t col_rows() const { return std::int64_t(in_channels) * kernel_h * kernel_w; }
  std::int64_t weight_elems() const { return std::int64_t(out_channels) * col_rows(); }
  bool pointwise() const {
    return kernel_h == 1 && kernel_w == 1 && stride_h == 1 && stride_w == 1 && pad_top == 0 && pad_bottom == 0 &&
           pad_left == 0 && pad_right == 0;
  }
  /// Whether top == bottom and left == right (cuDNN's padding; else the CUDA op pads first).
  bool symmetric_padding() const { return pad_top == pad_bottom && pad_left == pad_right; }
  std::string str() const {
    return "conv " + std::to_string(in_channels) + "->" + std::to_string(out_channels) + " " +
           std::to_string(kernel_h) + "x" + std::to_string(kernel_w) + " stride " + std::to_string(stride_h) + "x" +
           std::to_string(stride_w) + " pad (" + std::to_string(pad_top) + "," + std::to_string(pad_bottom) + "," +
           std::to_string(pad_left) + "," + std::to_string(pad_right) + ")";
  }
  /// Throws redi::Error unless the geometry is valid for H x W input with a non-empty output.
  void check(int H, int W) const {
    REDI_CHECK(in_channels > 0 && out_channels > 0 && kernel_h > 0 && kernel_w > 0 && stride_h > 0 &&
                   stride_w > 0 && pad_top >= 0 && pad_bottom >= 0 && pad_left >= 0 && pad_right >= 0,
               "conv2d: invalid geometry ", str());
    REDI_CHECK(H > 0 && W > 0 && H + pad_top + pad_bottom >= kernel_h && W + pad_left + pad_right >= kernel_w,
               "conv2d: ", str(), " does not fit a ", H, "x", W, " input");
  }
};

}  // namespace redi::ops
