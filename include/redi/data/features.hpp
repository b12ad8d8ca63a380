// redi/data/features.hpp — representation features: the FeatureEncoder contract, a reference
// encoder, DINOv2 input preprocessing, and the glue from images to PCA-reduced latent-grid
// features (docs/method.md section 4).
//
// Convention: an encoder receives redi image batches as they come out of make_batch, float
// [B, C, H, W] in [-1, 1] with C = 1 or 3, and does its own input preprocessing (DINOv2:
// dinov2_preprocess below). It returns patch features channels-last, [B, gh, gw, F].
#pragma once
#include <array>
#include <concepts>
#include <cstdint>
#include <span>
#include <vector>

#include "redi/core/error.hpp"
#include "redi/core/tensor.hpp"
#include "redi/data/dataset.hpp"
#include "redi/data/pca.hpp"
#include "redi/data/resample.hpp"

namespace redi::data {

/// The contract of a patch-feature encoder:
///  * feature_dim(): F;
///  * grid(H, W): the patch grid {gh, gw} it produces for H x W input;
///  * encode(images [B, C, H, W], feats [B, gh, gw, F]): fills feats (shapes checked by callers).
template <class E>
concept FeatureEncoder = requires(E& e, const E& ce, View<const float> images, View<float> feats, int h, int w) {
  { ce.feature_dim() } -> std::convertible_to<int>;
  { ce.grid(h, w) } -> std::same_as<std::array<int, 2>>;
  e.encode(images, feats);
};

/// A parameter-free reference encoder: the feature of a patch is its pixels, (c, i, j) order
/// (F = C * p * p). For tests, plumbing, and a "PCA of raw patches" baseline.
class PatchPixelEncoder {
public:
  PatchPixelEncoder(int patch, int channels) : p_(patch), c_(channels) {
    REDI_CHECK(patch > 0 && channels > 0, "PatchPixelEncoder: patch ", patch, ", channels ", channels);
  }
  int feature_dim() const { return c_ * p_ * p_; }
  std::array<int, 2> grid(int h, int w) const { return {h / p_, w / p_}; }
  void encode(View<const float> im, View<float> out) const {
    REDI_CHECK(im.shape.rank == 4 && im.shape[1] == c_, "PatchPixelEncoder: images ", im.shape.str(),
               ", expected [B, ", c_, ", H, W]");
    const int B = int(im.shape[0]), H = int(im.shape[2]), W = int(im.shape[3]);
    const auto g = grid(H, W);
    REDI_CHECK(out.shape == (Shape{B, g[0], g[1], feature_dim()}), "PatchPixelEncoder: output ", out.shape.str());
    for (int b = 0; b < B; ++b)
      for (int gy = 0; gy < g[0]; ++gy)
        for (int gx = 0; gx < g[1]; ++gx) {
          float* f = out.data + ((std::size_t(b) * g[0] + gy) * g[1] + gx) * std::size_t(feature_dim());
          for (int c = 0; c < c_; ++c)
            for (int i = 0; i < p_; ++i)
              for (int j = 0; j < p_; ++j)
                *f++ = im.data[((std::size_t(b) * c_ + c) * H + std::size_t(gy * p_ + i)) * W + std::size_t(gx * p_ + j)];
        }
  }

private:
  int p_, c_;
};
static_assert(FeatureEncoder<PatchPixelEncoder>);

/// Runs `enc` on images [B, C, H, W] and returns features [B, gh, gw, F].
template <FeatureEncoder E>
Tensor<float> encode_features(E& enc, View<const float> images) {
  REDI_CHECK(images.shape.rank == 4, "encode_features: images ", images.shape.str(), ", expected [B, C, H, W]");
  const auto g = enc.grid(int(images.shape[2]), int(images.shape[3]));
  Tensor<float> f(Shape{images.shape[0], g[0], g[1], std::int64_t(enc.feature_dim())});
  enc.encode(images, f.view());
  return f;
}

/// Images -> encoder -> PCA (first r axes) -> bilinear to out_h x out_w -> optional
/// normalisation: [B, r, out_h, out_w], the z0 of docs/method.md section 1.
template <FeatureEncoder E>
Tensor<float> encode_to_latent(E& enc, const Pca& pca, int r, View<const float> images, int out_h, int out_w,
                               const PcNormalization* norm = nullptr) {
  const Tensor<float> f = encode_features(enc, images);
  REDI_CHECK(f.shape()[3] == pca.dim, "encode_to_latent: encoder gives ", f.shape()[3], " channels, PCA expects ",
             pca.dim);
  Tensor<float> z(Shape{images.shape[0], r, out_h, out_w});
  features_to_latent(pca, r, f.data(), int(f.shape()[0]), int(f.shape()[1]), int(f.shape()[2]), z.data(), out_h,
                     out_w, norm);
  return z;
}

/// Feeds the features of images idx[...] of `ds` (batches of `batch`, no augmentation) to
/// `fitter` (e.g. PcaFitter fitter(enc.feature_dim()); ... fitter.fit({.num_components = 8})).
template <FeatureEncoder E>
void accumulate_features(E& enc, const ImageDataset& ds, std::span<const std::int64_t> idx, int batch,
                         PcaFitter& fitter) {
  REDI_CHECK(batch > 0, "accumulate_features: batch ", batch);
  for (std::size_t s = 0; s < idx.size(); s += std::size_t(batch)) {
    const auto part = idx.subspan(s, std::min(idx.size() - s, std::size_t(batch)));
    const Batch b = make_batch(ds, part);
    const Tensor<float> f = encode_features(enc, b.images.view());
    REDI_CHECK(f.shape()[3] == fitter.dim(), "accumulate_features: encoder gives ", f.shape()[3],
               " channels, fitter expects ", fitter.dim());
    fitter.add(f.data(), f.shape()[0] * f.shape()[1] * f.shape()[2]);
  }
}

/// DINOv2 input preprocessing as in the ReDi/REPA code: x in [-1, 1] -> (x + 1) / 2 (= uint8/255)
/// -> (x - ImageNet mean) / ImageNet std per channel -> bicubic resize (torch semantics,
/// align_corners=False) to size x size (224 for 256x256 input). Grey images are repeated to RGB.
inline Tensor<float> dinov2_preprocess(View<const float> images, int size = 224) {
  REDI_CHECK(images.shape.rank == 4 && (images.shape[1] == 3 || images.shape[1] == 1), "dinov2_preprocess: images ",
             images.shape.str(), ", expected [B, 3 or 1, H, W]");
  constexpr float mean[3] = {0.485f, 0.456f, 0.406f}, stdv[3] = {0.229f, 0.224f, 0.225f};
  const std::int64_t B = images.shape[0], C = images.shape[1], H = images.shape[2], W = images.shape[3];
  const std::size_t plane = std::size_t(H * W);
  Tensor<float> out(Shape{B, 3, size, size});
  // Images are independent: one per OpenMP thread (each with its own staging plane), so the
  // result does not depend on the thread count (a 256 px image is ~2 ms of work).
#pragma omp parallel if (B > 1)
  {
    std::vector<float> tmp(std::size_t(3) * plane);
#pragma omp for schedule(static)
    for (std::int64_t b = 0; b < B; ++b) {
      for (int c = 0; c < 3; ++c) {
        const float* src = images.data + (std::size_t(b * C) + std::size_t(C == 3 ? c : 0)) * plane;
        for (std::size_t i = 0; i < plane; ++i)
          tmp[std::size_t(c) * plane + i] = ((src[i] + 1.f) * 0.5f - mean[c]) / stdv[c];
      }
      resize_bicubic(tmp.data(), 3, int(H), int(W), out.data() + std::size_t(b) * 3 * std::size_t(size) * size, size,
                     size);
    }
  }
  return out;
}

}  // namespace redi::data
