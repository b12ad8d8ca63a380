// redi/train/dinov2_encoder.hpp — DINOv2 as a data::FeatureEncoder (redi/data/features.hpp):
// redi image batches [B, 3 (or 1), H, W] in [-1, 1] -> the authors' preprocessing
// (data::dinov2_preprocess: (x + 1) / 2 = uint8 / 255, ImageNet mean/std, torch bicubic without
// antialias, align_corners=False, to the input size) -> Dinov2 (nn/dinov2.hpp) -> patch features
// [B, gh, gw, D], channels last. The input size is 224 * H / 256 as in the ReDi/REPA code
// (224 for 256 px images: a 16x16 grid of 14-px patches) unless set explicitly.
//
// The network may live on any device: the encoder takes a Dinov2<float, Dev> and keeps it behind
// a host-memory forward (Dinov2::forward_host; a GPU network is fed through staging copies), so
// code that holds a Dinov2Encoder does not depend on the device. The preprocessing runs on the
// host in both cases (nn/dinov2.hpp says why). Constructing one from a Dinov2<float, Cuda> needs
// redi/cuda/backend.cuh, i.e. a .cu file (examples/extract/dinov2_cuda.cu).
#pragma once
#include <algorithm>
#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include "redi/core/error.hpp"
#include "redi/core/tensor.hpp"
#include "redi/data/features.hpp"
#include "redi/nn/dinov2.hpp"
#include "redi/ops/cpu_backend.hpp"  // the CPU network

namespace redi {

class Dinov2Encoder {
public:
  /// input_size 0: 224 * H / 256 for H x H images. Dev: where the network runs (its memory).
  template <class Dev>
  explicit Dinov2Encoder(Dinov2<float, Dev> net, int input_size = 0)
      : cfg_(net.config()), params_(net.num_params()), on_host_(Dev::is_host), input_(input_size) {
    auto p = std::make_shared<Dinov2<float, Dev>>(std::move(net));
    forward_ = [p](const float* x, int B, int H, int W, float* out) { p->forward_host(x, B, H, W, out); };
  }

  const Dinov2Config& config() const { return cfg_; }
  std::int64_t num_params() const { return params_; }
  /// Whether the network runs on the host (else on a device, through staging copies).
  bool on_host() const { return on_host_; }
  int feature_dim() const { return cfg_.width; }
  /// The network's input size for H x W images.
  int input_size(int h, int w) const {
    REDI_CHECK(h == w, "Dinov2Encoder: images must be square, got ", h, "x", w);
    const int s = input_ > 0 ? input_ : 224 * h / 256;
    REDI_CHECK(s > 0 && s % cfg_.patch == 0, "Dinov2Encoder: input size ", s, " for ", h, "x", w,
               " images is not a positive multiple of the patch ", cfg_.patch);
    return s;
  }
  std::array<int, 2> grid(int h, int w) const {
    const int s = input_size(h, w);
    return {s / cfg_.patch, s / cfg_.patch};
  }

  void encode(View<const float> images, View<float> feats) {
    REDI_CHECK(images.shape.rank == 4, "Dinov2Encoder: images ", images.shape.str(), ", expected [B, C, H, W]");
    const int B = int(images.shape[0]), H = int(images.shape[2]), W = int(images.shape[3]);
    const int s = input_size(H, W);
    const auto g = grid(H, W);
    REDI_CHECK(feats.shape == (Shape{B, g[0], g[1], feature_dim()}), "Dinov2Encoder: features ", feats.shape.str(),
               ", expected [", B, ", ", g[0], ", ", g[1], ", ", feature_dim(), "]");
    const Tensor<float> x = data::dinov2_preprocess(images, s);
    forward_(x.data(), B, s, s, feats.data);
  }

private:
  Dinov2Config cfg_;
  std::int64_t params_ = 0;
  bool on_host_ = true;
  int input_ = 0;
  std::function<void(const float*, int, int, int, float*)> forward_;
};
static_assert(data::FeatureEncoder<Dinov2Encoder>);

}  // namespace redi
