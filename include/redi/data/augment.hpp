// redi/data/augment.hpp — multi-crop augmentation for self-supervised training (DINO, Caron et
// al. 2021, section 3.1): per image, a few large "global" crops and several small "local" crops,
// each a random resized crop, a random horizontal flip and a light intensity jitter.
//
//   box     area fraction s ~ U[scale_min, scale_max] of the H x W source, aspect ratio
//           w/h = exp(U[ln ratio_min, ln ratio_max]); the box is shrunk to fit the image when
//           it would not (keeping its aspect where possible), then placed uniformly inside it:
//           0 <= x0, x0 + w <= W, 0 <= y0, y0 + h <= H (continuous pixel coordinates)
//   resize  bilinear, pixel centres: output (i, j) of a size x size crop samples the source at
//           y = y0 + (i + 0.5) h / size - 0.5, x = x0 + (j' + 0.5) w / size - 0.5 with
//           j' = size - 1 - j when flipped, else j (edge pixels repeated past the border)
//   jitter  on v = (x + 1) / 2 in [0, 1]: v <- clamp(v * brightness); then
//           v <- clamp(mean + contrast * (v - mean)) with mean the crop's mean intensity
//           (brightness, contrast ~ U[1 - b, 1 + b], U[1 - c, 1 + c]; torchvision's ColorJitter
//           order and definition for one channel)
//
// Every random number of crop `crop` of dataset image `index` in `epoch` is a Philox uniform
// keyed by (seed, epoch, crop, index): the views do not depend on the batch, its order or the
// thread that renders them, so a run is reproducible for a fixed seed.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "redi/core/error.hpp"
#include "redi/core/philox.hpp"
#include "redi/core/tensor.hpp"
#include "redi/data/dataset.hpp"

namespace redi::data {

/// How one kind of crop is drawn.
struct CropSpec {
  int size = 32;                    ///< output side (square)
  double scale_min = 0.4, scale_max = 1.0;   ///< area fraction of the source image
  double ratio_min = 3.0 / 4.0, ratio_max = 4.0 / 3.0;  ///< aspect ratio w / h (log-uniform)
  double flip_prob = 0.5;
  double brightness = 0.0;          ///< factor ~ U[1 - b, 1 + b]
  double contrast = 0.0;            ///< factor ~ U[1 - c, 1 + c]

  void validate(const char* what) const {
    REDI_CHECK(size > 0, what, ": crop size ", size);
    REDI_CHECK(scale_min > 0 && scale_min <= scale_max && scale_max <= 1, what, ": scale range [", scale_min, ", ",
               scale_max, "] must lie in (0, 1]");
    REDI_CHECK(ratio_min > 0 && ratio_min <= ratio_max, what, ": ratio range [", ratio_min, ", ", ratio_max, "]");
    REDI_CHECK(flip_prob >= 0 && flip_prob <= 1, what, ": flip_prob ", flip_prob);
    REDI_CHECK(brightness >= 0 && brightness < 1 && contrast >= 0 && contrast < 1, what, ": brightness ",
               brightness, ", contrast ", contrast, " must lie in [0, 1)");
  }
};

/// DINO's multi-crop: `global_crops` views from `global`, `local_crops` from `local`.
struct MultiCropConfig {
  CropSpec global{32, 0.4, 1.0, 3.0 / 4.0, 4.0 / 3.0, 0.5, 0.2, 0.2};
  CropSpec local{16, 0.1, 0.4, 3.0 / 4.0, 4.0 / 3.0, 0.5, 0.2, 0.2};
  int global_crops = 2;
  int local_crops = 4;

  void validate() const {
    global.validate("MultiCropConfig.global");
    if (local_crops > 0) local.validate("MultiCropConfig.local");
    REDI_CHECK(global_crops >= 1 && local_crops >= 0 && global_crops + local_crops <= 255,
               "MultiCropConfig: ", global_crops, " global and ", local_crops, " local crops");
    REDI_CHECK(global_crops + local_crops >= 2, "MultiCropConfig: at least two views are needed");
  }
};

/// One drawn view: the source box, the mirror flag and the intensity factors.
struct CropBox {
  double y0 = 0, x0 = 0, h = 0, w = 0;
  bool flip = false;
  double brightness = 1, contrast = 1;
};

inline constexpr std::uint64_t kCropSalt = 0x63726f7073736c21ull;  // "cropssl!"

/// The view `crop` of dataset image `index` in `epoch` under `seed`, for an H x W source.
inline CropBox sample_crop(const CropSpec& s, int H, int W, std::uint64_t seed, std::uint64_t epoch, int crop,
                           std::uint64_t index) {
  REDI_CHECK(H > 0 && W > 0, "sample_crop: source ", H, "x", W);
  REDI_CHECK(crop >= 0 && crop < 256, "sample_crop: crop id ", crop, " outside [0, 256)");
  const std::uint64_t stream = (epoch << 8) | std::uint64_t(crop);
  auto u = [&](std::uint64_t j) { return philox::uniform(seed ^ kCropSalt, stream, index * 8 + j); };
  const double area = double(H) * double(W) * (s.scale_min + (s.scale_max - s.scale_min) * u(0));
  const double lr0 = std::log(s.ratio_min), lr1 = std::log(s.ratio_max);
  const double ratio = std::exp(lr0 + (lr1 - lr0) * u(1));
  CropBox b;
  b.w = std::sqrt(area * ratio);
  b.h = std::sqrt(area / ratio);
  if (b.w > W) {  // too wide for the image: shrink to its width, keep the aspect if the height allows
    b.h = std::min(double(H), b.h * double(W) / b.w);
    b.w = W;
  }
  if (b.h > H) {
    b.w = std::min(double(W), b.w * double(H) / b.h);
    b.h = H;
  }
  b.y0 = (double(H) - b.h) * u(2);
  b.x0 = (double(W) - b.w) * u(3);
  b.flip = u(4) < s.flip_prob;
  b.brightness = 1.0 + s.brightness * (2.0 * u(5) - 1.0);
  b.contrast = 1.0 + s.contrast * (2.0 * u(6) - 1.0);
  return b;
}

/// Renders `box` of one H x W x C uint8 image (HWC) as a float C x size x size crop in [-1, 1].
inline void render_crop(const std::uint8_t* img, int H, int W, int C, const CropBox& box, int size, float* out) {
  REDI_CHECK(size > 0 && box.h > 0 && box.w > 0, "render_crop: size ", size, ", box ", box.h, "x", box.w);
  const std::size_t plane = std::size_t(size) * std::size_t(size);
  // Source taps per output column / row (shared by every channel).
  struct Tap {
    int i0, i1;
    float w1;
  };
  auto taps = [](double start, double extent, int out_n, int in_n, bool mirror) {
    std::vector<Tap> t(static_cast<std::size_t>(out_n));
    for (int o = 0; o < out_n; ++o) {
      const int oo = mirror ? out_n - 1 - o : o;
      double c = start + (double(oo) + 0.5) * extent / double(out_n) - 0.5;
      c = std::clamp(c, 0.0, double(in_n - 1));
      const int i0 = std::min(int(c), in_n - 1);
      t[std::size_t(o)] = {i0, std::min(i0 + 1, in_n - 1), float(c - double(i0))};
    }
    return t;
  };
  const auto ty = taps(box.y0, box.h, size, H, false);
  const auto tx = taps(box.x0, box.w, size, W, box.flip);
  const float bright = float(box.brightness), contrast = float(box.contrast);
  for (int ch = 0; ch < C; ++ch) {
    float* o = out + std::size_t(ch) * plane;
    double sum = 0;
    for (int i = 0; i < size; ++i) {
      const Tap& a = ty[std::size_t(i)];
      const std::uint8_t* r0 = img + std::size_t(a.i0) * std::size_t(W) * std::size_t(C);
      const std::uint8_t* r1 = img + std::size_t(a.i1) * std::size_t(W) * std::size_t(C);
      for (int j = 0; j < size; ++j) {
        const Tap& b = tx[std::size_t(j)];
        auto px = [&](const std::uint8_t* r, int x) { return float(r[std::size_t(x) * std::size_t(C) + std::size_t(ch)]); };
        const float top = px(r0, b.i0) + b.w1 * (px(r0, b.i1) - px(r0, b.i0));
        const float bot = px(r1, b.i0) + b.w1 * (px(r1, b.i1) - px(r1, b.i0));
        const float v = std::clamp((top + a.w1 * (bot - top)) * (1.0f / 255.0f) * bright, 0.0f, 1.0f);
        o[std::size_t(i) * std::size_t(size) + std::size_t(j)] = v;
        sum += v;
      }
    }
    if (contrast != 1.0f) {
      const float mean = float(sum / double(plane));
      for (std::size_t k = 0; k < plane; ++k) o[k] = std::clamp(mean + contrast * (o[k] - mean), 0.0f, 1.0f);
    }
    for (std::size_t k = 0; k < plane; ++k) o[k] = 2.0f * o[k] - 1.0f;
  }
}

/// The views of one batch: crop-major, so view v of batch element b is row v * B + b.
struct MultiCropBatch {
  Tensor<float> global;  ///< [global_crops * B, C, gs, gs]
  Tensor<float> local;   ///< [local_crops * B, C, ls, ls] (empty when local_crops == 0)
  int batch = 0;
};

/// Renders every view of images idx of ds (keys: seed, epoch, view id, dataset index). Views
/// 0 .. global_crops-1 are the global ones, then the local ones. OpenMP over views; the result
/// does not depend on the thread count.
inline MultiCropBatch multicrop_batch(const ImageDataset& ds, std::span<const std::int64_t> idx,
                                      const MultiCropConfig& cfg, std::uint64_t seed, std::uint64_t epoch) {
  cfg.validate();
  REDI_CHECK(!idx.empty(), "multicrop_batch: empty batch");
  const int B = int(idx.size()), C = ds.c, G = cfg.global_crops, Lc = cfg.local_crops;
  for (auto i : idx) REDI_CHECK(i >= 0 && i < ds.n, ds.source, ": batch index ", i, " outside [0, ", ds.n, ")");
  MultiCropBatch mb;
  mb.batch = B;
  const int gs = cfg.global.size, ls = cfg.local.size;
  mb.global = Tensor<float>(Shape{std::int64_t(G) * B, C, gs, gs});
  if (Lc > 0) mb.local = Tensor<float>(Shape{std::int64_t(Lc) * B, C, ls, ls});
  const std::int64_t views = std::int64_t(G + Lc) * B;
#pragma omp parallel for schedule(static) if (views >= 64)
  for (std::int64_t r = 0; r < views; ++r) {
    const int v = int(r / B), b = int(r % B);
    const bool global = v < G;
    const CropSpec& s = global ? cfg.global : cfg.local;
    const std::uint64_t i = std::uint64_t(idx[std::size_t(b)]);
    const CropBox box = sample_crop(s, ds.h, ds.w, seed, epoch, v, i);
    float* dst = global ? mb.global.data() + r * std::int64_t(C) * gs * gs
                        : mb.local.data() + (r - std::int64_t(G) * B) * std::int64_t(C) * ls * ls;
    render_crop(ds.image(std::int64_t(i)), ds.h, ds.w, C, box, s.size, dst);
  }
  return mb;
}

// ---------------------------------------------------------------------------------------------
// Token masks for masked image modelling (iBOT, Zhou et al. 2022, after BEiT's block-wise
// masking): rectangles of tokens (area >= min_block, aspect ratio in [0.3, 1/0.3]) are added at
// random until round(ratio * gh * gw) tokens are masked or 10 tries in a row add nothing.

inline constexpr std::uint64_t kMaskSalt = 0x6d61736b5f696274ull;  // "mask_ibt"

/// Fills mask [gh * gw] (1 = masked) for view `view` of dataset image `index` in `epoch`;
/// returns the number of masked tokens.
inline int block_mask(int gh, int gw, double ratio, std::uint64_t seed, std::uint64_t epoch, int view,
                      std::uint64_t index, std::uint8_t* mask, int min_block = 4) {
  REDI_CHECK(gh > 0 && gw > 0 && ratio >= 0 && ratio <= 1 && min_block >= 1, "block_mask: grid ", gh, "x", gw,
             ", ratio ", ratio);
  REDI_CHECK(view >= 0 && view < 256, "block_mask: view ", view, " outside [0, 256)");
  std::fill(mask, mask + std::int64_t(gh) * gw, std::uint8_t(0));
  const int target = int(std::lround(ratio * gh * gw));
  const std::uint64_t stream = (epoch << 8) | std::uint64_t(view);
  std::uint64_t draw = 0;
  auto u = [&] { return philox::uniform(seed ^ kMaskSalt, stream, index * 4096 + (draw++ % 4096)); };
  int masked = 0, idle = 0;
  const double lr0 = std::log(0.3), lr1 = -std::log(0.3);
  while (masked < target && idle < 10) {
    const int room = target - masked;
    const double area = std::min<double>(min_block, room) + (room - std::min<double>(min_block, room)) * u();
    const double aspect = std::exp(lr0 + (lr1 - lr0) * u());
    const int h = int(std::lround(std::sqrt(area * aspect))), w = int(std::lround(std::sqrt(area / aspect)));
    const double ty = u(), tx = u();
    if (h < 1 || w < 1 || h > gh || w > gw) {
      ++idle;
      continue;
    }
    const int y0 = std::min(gh - h, int(ty * (gh - h + 1))), x0 = std::min(gw - w, int(tx * (gw - w + 1)));
    int added = 0;
    for (int y = y0; y < y0 + h; ++y)
      for (int x = x0; x < x0 + w; ++x) added += mask[y * gw + x] == 0;
    if (added == 0 || added > room) {
      ++idle;
      continue;
    }
    for (int y = y0; y < y0 + h; ++y)
      for (int x = x0; x < x0 + w; ++x) mask[y * gw + x] = 1;
    masked += added;
    idle = 0;
  }
  return masked;
}

}  // namespace redi::data
