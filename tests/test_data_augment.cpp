// Multi-crop augmentation (redi/data/augment.hpp): determinism for a key, boxes inside the image
// with the drawn area and aspect ratio, the flip's mirror symmetry, the identity crop, the
// intensity jitter's definition, and batches that do not depend on batch composition or the
// thread count.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "redi/core/philox.hpp"
#include "redi/data/augment.hpp"

using namespace redi;

namespace {

/// n random uint8 images h x w x c (smooth-ish: a gradient plus noise, so bilinear taps differ).
data::ImageDataset random_images(int n, int h, int w, int c, std::uint64_t seed) {
  data::ImageDataset ds;
  ds.n = n, ds.h = h, ds.w = w, ds.c = c, ds.num_classes = 2, ds.source = "random";
  ds.pixels.resize(std::size_t(n) * h * w * c);
  for (std::size_t i = 0; i < ds.pixels.size(); ++i)
    ds.pixels[i] = std::uint8_t(std::min(255.0, 40.0 * double(i % 7) + 200.0 * philox::uniform(seed, 0, i)));
  ds.labels.assign(std::size_t(n), 0);
  ds.validate();
  return ds;
}

std::vector<float> render(const data::ImageDataset& ds, int i, const data::CropBox& b, int size) {
  std::vector<float> out(std::size_t(ds.c) * size * size);
  data::render_crop(ds.image(i), ds.h, ds.w, ds.c, b, size, out.data());
  return out;
}

bool same_box(const data::CropBox& a, const data::CropBox& b) {
  return a.y0 == b.y0 && a.x0 == b.x0 && a.h == b.h && a.w == b.w && a.flip == b.flip &&
         a.brightness == b.brightness && a.contrast == b.contrast;
}

}  // namespace

TEST(Augment, SameKeySameViewOtherKeyOtherView) {
  const data::ImageDataset ds = random_images(4, 32, 32, 1, 1);
  const data::MultiCropConfig cfg;
  const auto a = data::sample_crop(cfg.global, 32, 32, 7, 3, 1, 2);
  const auto b = data::sample_crop(cfg.global, 32, 32, 7, 3, 1, 2);
  EXPECT_TRUE(same_box(a, b));
  EXPECT_EQ(render(ds, 2, a, 32), render(ds, 2, b, 32));
  EXPECT_FALSE(same_box(a, data::sample_crop(cfg.global, 32, 32, 8, 3, 1, 2)));  // seed
  EXPECT_FALSE(same_box(a, data::sample_crop(cfg.global, 32, 32, 7, 4, 1, 2)));  // epoch
  EXPECT_FALSE(same_box(a, data::sample_crop(cfg.global, 32, 32, 7, 3, 0, 2)));  // crop id
  EXPECT_FALSE(same_box(a, data::sample_crop(cfg.global, 32, 32, 7, 3, 1, 3)));  // image
}

// Every box lies inside the image; when it was not shrunk, its area fraction and aspect ratio
// lie in the drawn ranges. About half the views are flipped; the jitter factors stay in range.
TEST(Augment, BoxesInsideImageWithDrawnScaleAndRatio) {
  data::CropSpec s;
  s.scale_min = 0.05, s.scale_max = 1.0, s.ratio_min = 0.5, s.ratio_max = 2.0;
  s.brightness = 0.3, s.contrast = 0.2;
  const int H = 28, W = 32;
  int flips = 0, unshrunk = 0;
  const int n = 4000;
  for (int i = 0; i < n; ++i) {
    const auto b = data::sample_crop(s, H, W, 11, std::uint64_t(i % 5), i % 9, std::uint64_t(i));
    ASSERT_GE(b.x0, 0.0);
    ASSERT_GE(b.y0, 0.0);
    ASSERT_LE(b.x0 + b.w, W + 1e-9);
    ASSERT_LE(b.y0 + b.h, H + 1e-9);
    ASSERT_GT(b.w, 0.0);
    ASSERT_GT(b.h, 0.0);
    ASSERT_GE(b.brightness, 0.7);
    ASSERT_LE(b.brightness, 1.3);
    ASSERT_GE(b.contrast, 0.8);
    ASSERT_LE(b.contrast, 1.2);
    flips += b.flip;
    if (b.w < W && b.h < H) {
      ++unshrunk;
      const double frac = b.w * b.h / (double(H) * W), ratio = b.w / b.h;
      EXPECT_GE(frac, s.scale_min - 1e-12);
      EXPECT_LE(frac, s.scale_max + 1e-12);
      EXPECT_GE(ratio, s.ratio_min - 1e-12);
      EXPECT_LE(ratio, s.ratio_max + 1e-12);
    }
  }
  EXPECT_GT(unshrunk, n / 2);
  EXPECT_NEAR(double(flips) / n, 0.5, 0.04);
}

// Rendering a box with the flip equals rendering the mirrored box of the mirrored image
// without it (pixel-centre convention), and equals the unflipped crop mirrored left-right.
TEST(Augment, FlipIsMirrorSymmetric) {
  const data::ImageDataset ds = random_images(1, 24, 30, 3, 2);
  data::ImageDataset mirrored = ds;
  data::hflip_hwc(mirrored.image(0), ds.h, ds.w, ds.c);
  const int size = 13;
  for (int k = 0; k < 20; ++k) {
    data::CropSpec s;
    s.scale_min = 0.1;
    data::CropBox b = data::sample_crop(s, ds.h, ds.w, 3, 0, 0, std::uint64_t(k));
    b.flip = true;
    const auto flipped = render(ds, 0, b, size);
    data::CropBox m = b;
    m.flip = false;
    m.x0 = ds.w - b.x0 - b.w;
    const auto from_mirror = render(mirrored, 0, m, size);
    data::CropBox plain = b;
    plain.flip = false;
    const auto unflipped = render(ds, 0, plain, size);
    for (int c = 0; c < ds.c; ++c)
      for (int y = 0; y < size; ++y)
        for (int x = 0; x < size; ++x) {
          const std::size_t at = (std::size_t(c) * size + y) * size + x;
          ASSERT_NEAR(flipped[at], from_mirror[at], 2e-6) << k;
          ASSERT_EQ(flipped[at], unflipped[(std::size_t(c) * size + y) * size + (size - 1 - x)]) << k;
        }
  }
}

// The whole image at its own size, unflipped and unjittered, is data::to_float_nchw's image.
TEST(Augment, IdentityCropIsTheImage) {
  const data::ImageDataset ds = random_images(2, 16, 16, 3, 3);
  const data::CropBox b{0, 0, 16, 16, false, 1, 1};
  const auto crop = render(ds, 1, b, 16);
  std::vector<float> ref(3 * 16 * 16);
  const std::int64_t idx = 1;
  data::to_float_nchw(ds, std::span<const std::int64_t>(&idx, 1), ref.data());
  for (std::size_t i = 0; i < ref.size(); ++i) ASSERT_NEAR(crop[i], ref[i], 1e-6) << i;
}

// brightness multiplies v = (x + 1) / 2; contrast moves v away from (or toward) the crop mean,
// which it preserves when nothing clips.
TEST(Augment, IntensityJitterDefinition) {
  data::ImageDataset ds = random_images(1, 8, 8, 1, 4);
  for (std::size_t i = 0; i < ds.pixels.size(); ++i) ds.pixels[i] = std::uint8_t(60 + (i * 37) % 80);  // no clipping
  const auto base = render(ds, 0, {0, 0, 8, 8, false, 1, 1}, 8);
  const auto bright = render(ds, 0, {0, 0, 8, 8, false, 1.25, 1}, 8);
  const auto contrast = render(ds, 0, {0, 0, 8, 8, false, 1, 0.5}, 8);
  double mean = 0, cmean = 0;
  for (std::size_t i = 0; i < base.size(); ++i) {
    const double v = (base[i] + 1) / 2;
    EXPECT_NEAR((bright[i] + 1) / 2, 1.25 * v, 1e-5);
    mean += v / double(base.size());
    cmean += (contrast[i] + 1) / 2 / double(base.size());
  }
  EXPECT_NEAR(cmean, mean, 1e-5);
  for (std::size_t i = 0; i < base.size(); ++i)
    EXPECT_NEAR((contrast[i] + 1) / 2, mean + 0.5 * ((base[i] + 1) / 2 - mean), 1e-5);
}

// multicrop_batch: crop-major rows, each equal to its own sample_crop + render_crop; a view
// depends on the image and key only (not on the batch it is in, nor on the thread count).
TEST(Augment, MulticropBatchLayoutAndIndependence) {
  const data::ImageDataset ds = random_images(10, 32, 32, 1, 5);
  data::MultiCropConfig cfg;
  cfg.local_crops = 3;
  const std::vector<std::int64_t> idx = {4, 7, 1, 9};
  const auto mb = data::multicrop_batch(ds, idx, cfg, 21, 2);
  const int B = 4, gs = cfg.global.size, ls = cfg.local.size;
  ASSERT_EQ(mb.global.shape(), (Shape{2 * B, 1, gs, gs}));
  ASSERT_EQ(mb.local.shape(), (Shape{3 * B, 1, ls, ls}));
  for (int v = 0; v < 5; ++v)
    for (int b = 0; b < B; ++b) {
      const bool g = v < 2;
      const auto box = data::sample_crop(g ? cfg.global : cfg.local, 32, 32, 21, 2, v, std::uint64_t(idx[std::size_t(b)]));
      const auto ref = render(ds, int(idx[std::size_t(b)]), box, g ? gs : ls);
      const float* row = g ? mb.global.data() + std::int64_t(v * B + b) * gs * gs
                           : mb.local.data() + std::int64_t((v - 2) * B + b) * ls * ls;
      ASSERT_EQ(std::memcmp(row, ref.data(), ref.size() * sizeof(float)), 0) << v << " " << b;
    }
  // image 9 alone, in another batch: the same views
  const std::vector<std::int64_t> one = {9};
  const auto mb1 = data::multicrop_batch(ds, one, cfg, 21, 2);
  EXPECT_EQ(std::memcmp(mb1.global.data() + std::int64_t(gs) * gs, mb.global.data() + std::int64_t(1 * B + 3) * gs * gs,
                        sizeof(float) * gs * gs),
            0);
#ifdef _OPENMP
  const int threads = omp_get_max_threads();
  omp_set_num_threads(threads > 1 ? 1 : 2);
  const auto mb2 = data::multicrop_batch(ds, idx, cfg, 21, 2);
  omp_set_num_threads(threads);
  EXPECT_EQ(std::memcmp(mb2.local.data(), mb.local.data(), mb.local.bytes()), 0);
#endif
  EXPECT_THROW(data::multicrop_batch(ds, std::vector<std::int64_t>{10}, cfg, 0, 0), Error);
  data::MultiCropConfig bad = cfg;
  bad.local.scale_min = 0;
  EXPECT_THROW(data::multicrop_batch(ds, idx, bad, 0, 0), Error);
}

// Block-wise token masks: deterministic per key, never more than round(ratio * L) tokens, close
// to it, the count returned is the count set, and ratio 0 masks nothing.
TEST(Augment, BlockMasks) {
  std::vector<std::uint8_t> m(64), m2(64);
  int total = 0;
  for (int i = 0; i < 200; ++i) {
    const double ratio = 0.1 + 0.4 * philox::uniform(1, 2, std::uint64_t(i));
    const int n = data::block_mask(8, 8, ratio, 5, 1, i % 2, std::uint64_t(i), m.data());
    EXPECT_EQ(n, std::count(m.begin(), m.end(), std::uint8_t(1)));
    EXPECT_LE(n, std::lround(ratio * 64));
    EXPECT_GE(n, std::lround(ratio * 64) - 3);
    total += n;
    EXPECT_EQ(data::block_mask(8, 8, ratio, 5, 1, i % 2, std::uint64_t(i), m2.data()), n);
    EXPECT_EQ(m, m2);
  }
  EXPECT_GT(total, 0);
  EXPECT_EQ(data::block_mask(8, 8, 0.0, 5, 1, 0, 0, m.data()), 0);
  EXPECT_EQ(std::count(m.begin(), m.end(), std::uint8_t(1)), 0);
  EXPECT_THROW(data::block_mask(8, 8, 1.5, 5, 1, 0, 0, m.data()), Error);
}
