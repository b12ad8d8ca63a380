// redi/train/dinov2_encoder.hpp — DINOv2 as a data::FeatureEncoder (redi/data/features.hpp):
// redi image batches [B, 3 (or 1), H, W] in [-1, 1] -> the authors' preprocessing
// (data::dinov2_preprocess: (x + 1) / 2 = uint8 / 255, ImageNet mean/std, torch bicubic without
// antialias, align_corners=False, to the input size) -> Dinov2 (nn/dinov2.hpp) -> patch features
// [B, gh, gw, D], channels last. The input size is 224 * H / 256 as in the ReDi/REPA code
// (224 for 256 px images: a 16x16 grid of 14-px patches) unless set explicitly.
#pragma once
#include <algorithm>
#include <array>
#include <utility>
#include <vector>

#include "redi/core/error.hpp"
#include "redi/core/tensor.hpp"
#include "redi/data/features.hpp"
#include "redi/nn/dinov2.hpp"

namespace redi {

class Dinov2Encoder {
public:
  /// input_size 0: 224 * H / 256 for H x H images.
  explicit Dinov2Encoder(Dinov2<float> net, int input_size = 0) : net_(std::move(net)), input_(input_size) {}

  Dinov2<float>& net() { return net_; }
  int feature_dim() const { return net_.feature_dim(); }
  /// The network's input size for H x W images.
  int input_size(int h, int w) const {
    REDI_CHECK(h == w, "Dinov2Encoder: images must be square, got ", h, "x", w);
    const int s = input_ > 0 ? input_ : 224 * h / 256;
    REDI_CHECK(s > 0 && s % net_.config().patch == 0, "Dinov2Encoder: input size ", s, " for ", h, "x", w,
               " images is not a positive multiple of the patch ", net_.config().patch);
    return s;
  }
  std::array<int, 2> grid(int h, int w) const {
    const int s = input_size(h, w);
    return net_.grid(s, s);
  }

  void encode(View<const float> images, View<float> feats) {
    REDI_CHECK(images.shape.rank == 4, "Dinov2Encoder: images ", images.shape.str(), ", expected [B, C, H, W]");
    const int B = int(images.shape[0]), H = int(images.shape[2]), W = int(images.shape[3]);
    const int s = input_size(H, W);
    const auto g = net_.grid(s, s);
    REDI_CHECK(feats.shape == (Shape{B, g[0], g[1], feature_dim()}), "Dinov2Encoder: features ", feats.shape.str(),
               ", expected [", B, ", ", g[0], ", ", g[1], ", ", feature_dim(), "]");
    const Tensor<float> x = data::dinov2_preprocess(images, s);
    net_.forward(x.data(), B, s, s, feats.data);
  }

private:
  Dinov2<float> net_;
  int input_ = 0;
};
static_assert(data::FeatureEncoder<Dinov2Encoder>);

}  // namespace redi
