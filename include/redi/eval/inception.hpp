// redi/eval/inception.hpp — the FID Inception as an eval::FeatureEncoder (pool3, 2048-d), plus
// the sFID spatial features and the Inception Score logits, from uint8 NHWC images of any size.
//
// Preprocessing, as pytorch-fid: x = p / 255 (float), bilinear resize to S x S (299) with
// torch's F.interpolate(mode='bilinear', align_corners=False, no antialiasing;
// data::resize_bilinear), then 2x - 1. Greyscale images (c = 1) are repeated to 3 channels (as
// converting them to RGB does); c must be 1 or 3.
// Known offset against ADM's TensorFlow evaluator: its graph resizes with TF1's legacy bilinear
// (source = dst * in/out, no half-pixel centres) and scales by (x - 128) / 128, so features, and
// FID, differ slightly from it (docs/evaluation.md); pytorch-fid differs from it the same way.
//
// Images go through the network kBatch at a time, so memory does not grow with n.
#pragma once
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "redi/data/resample.hpp"
#include "redi/eval/feature_encoder.hpp"
#include "redi/nn/inception.hpp"
#include "redi/weights/inception.hpp"

namespace redi::eval {

/// One image (uint8 h x w x c, c = 1 or 3) -> the network input [3, S, S] in [-1, 1] (see the
/// header); `tmp` is scratch.
inline void inception_preprocess(const std::uint8_t* img, int h, int w, int c, int S, float* out,
                                 std::vector<float>& tmp) {
  REDI_CHECK(c == 1 || c == 3, "inception_preprocess: images with ", c, " channels (1 or 3 are taken)");
  const std::size_t plane = std::size_t(h) * std::size_t(w);
  tmp.resize(3 * plane);
  for (int k = 0; k < 3; ++k) {
    const std::size_t src_c = c == 1 ? 0 : std::size_t(k);
    for (std::size_t p = 0; p < plane; ++p) tmp[std::size_t(k) * plane + p] = float(img[p * std::size_t(c) + src_c]) / 255.0f;
  }
  data::resize_bilinear(tmp.data(), 3, h, w, out, S, S);
  for (std::size_t i = 0; i < 3 * std::size_t(S) * std::size_t(S); ++i) out[i] = 2.0f * out[i] - 1.0f;
}

class InceptionEncoder {
public:
  static constexpr int kBatch = 8;

  /// Weights from a pytorch-fid-layout file (weights/inception.hpp); input_size 299 for FID.
  static InceptionEncoder load(const std::filesystem::path& path, int input_size = 299) {
    InceptionV3<float> net(input_size);
    load_inception(net, path);
    return InceptionEncoder(std::move(net), path.filename().string());
  }
  explicit InceptionEncoder(InceptionV3<float> net, std::string weights_name = "")
      : net_(std::move(net)), weights_(std::move(weights_name)) {}

  InceptionV3<float>& net() { return net_; }
  int spatial_dim() const { return net_.spatial_dim(); }
  int num_classes() const { return InceptionV3<float>::kClasses; }

  // ---- eval::FeatureEncoder (pool3)
  int feature_dim() const { return InceptionV3<float>::kPool3; }
  std::string feature_space() const {
    return "inception-v3 pool3 (FID, " + std::to_string(net_.input_size()) + "px" +
           (weights_.empty() ? "" : ", " + weights_) + ")";
  }
  void features(const std::uint8_t* nhwc, std::int64_t n, int h, int w, int c, float* out) {
    encode(nhwc, n, h, w, c, out, nullptr);
  }

  /// pool3 [n, 2048] and (optional) spatial [n, spatial_dim()] of n images h x w x c.
  void encode(const std::uint8_t* nhwc, std::int64_t n, int h, int w, int c, float* pool3, float* spatial) {
    REDI_CHECK(c == 1 || c == 3, "InceptionEncoder: images with ", c, " channels (1 or 3 are taken)");
    REDI_CHECK(h > 0 && w > 0, "InceptionEncoder: ", h, "x", w, " images");
    const int S = net_.input_size();
    const std::size_t per_in = std::size_t(h) * std::size_t(w) * std::size_t(c), per_x = 3 * std::size_t(S) * S;
    for (std::int64_t s = 0; s < n; s += kBatch) {
      const int nb = int(std::min<std::int64_t>(kBatch, n - s));
      x_.resize(std::size_t(nb) * per_x);
      for (int b = 0; b < nb; ++b) preprocess(nhwc + std::size_t(s + b) * per_in, h, w, c, S, x_.data() + std::size_t(b) * per_x);
      net_.forward(x_.data(), nb, pool3 + s * feature_dim(), spatial ? spatial + s * spatial_dim() : nullptr);
    }
  }

  /// ADM's Inception Score logits: out [n, 1008] = pool3 fc.weight^T (no bias, see nn/inception.hpp).
  void logits(const float* pool3, std::int64_t n, float* out) { net_.logits(pool3, int(n), out, false); }

  /// One image -> the network input (inception_preprocess).
  void preprocess(const std::uint8_t* img, int h, int w, int c, int S, float* out) {
    inception_preprocess(img, h, w, c, S, out, u_);
  }

private:
  InceptionV3<float> net_;
  std::string weights_;
  std::vector<float> x_, u_;
};
static_assert(FeatureEncoder<InceptionEncoder>);

}  // namespace redi::eval
