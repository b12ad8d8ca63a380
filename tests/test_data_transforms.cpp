// Tests for redi/data: dataset helpers, float conversion, flip, the batch sampler, and the
// resamplers (Pillow-style BOX/BICUBIC, ADM center crop, torch-style bilinear/bicubic).
// No link dependencies beyond redi::redi.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "redi/data/dataset.hpp"
#include "redi/data/resample.hpp"
#include "redi/data/sampler.hpp"
#include "redi/data/splits.hpp"
#include "io_test_util.hpp"

using namespace redi;
using namespace redi::data;

namespace {
ImageDataset toy(int n, int h, int w, int c) {
  ImageDataset ds;
  ds.n = n, ds.h = h, ds.w = w, ds.c = c, ds.num_classes = 3, ds.source = "toy";
  for (int i = 0; i < n * h * w * c; ++i) ds.pixels.push_back(std::uint8_t((i * 37 + 11) % 256));
  for (int i = 0; i < n; ++i) ds.labels.push_back(i % 3);
  return ds;
}
}  // namespace

TEST(DataDataset, ValidateCatchesInconsistency) {
  ImageDataset ds = toy(4, 2, 3, 1);
  EXPECT_NO_THROW(ds.validate());
  ds.labels[2] = 3;
  try {
    ds.validate();
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("toy"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("label 3"), std::string::npos);
  }
  ds = toy(4, 2, 3, 1);
  ds.pixels.pop_back();
  EXPECT_THROW(ds.validate(), Error);
}

TEST(DataDataset, PadAndSubset) {
  ImageDataset ds = toy(3, 28, 28, 1);
  ImageDataset p = pad_to(ds, 32);
  ASSERT_EQ(p.h, 32);
  ASSERT_EQ(p.w, 32);
  EXPECT_NO_THROW(p.validate());
  for (int i = 0; i < 3; ++i)
    for (int y = 0; y < 32; ++y)
      for (int x = 0; x < 32; ++x) {
        const bool inside = y >= 2 && y < 30 && x >= 2 && x < 30;
        const int v = p.image(i)[y * 32 + x];
        EXPECT_EQ(v, inside ? ds.image(i)[(y - 2) * 28 + (x - 2)] : 0);
      }
  EXPECT_THROW(pad_to(ds, 31), Error);
  const std::vector<std::int64_t> idx = {2, 0};
  ImageDataset s = subset(ds, idx);
  EXPECT_EQ(s.n, 2);
  EXPECT_EQ(s.labels, (std::vector<int>{2, 0}));
  EXPECT_TRUE(std::equal(s.image(0), s.image(0) + 784, ds.image(2)));
}

TEST(DataDataset, HoldoutIsTheLastImagesAndDisjoint) {
  const ImageDataset ds = toy(10, 2, 2, 1);
  const HoldoutSplit s = holdout(ds, 3);
  ASSERT_EQ(s.train.n, 7);
  ASSERT_EQ(s.val.n, 3);
  for (int i = 0; i < 7; ++i) EXPECT_TRUE(std::equal(s.train.image(i), s.train.image(i) + 4, ds.image(i)));
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(std::equal(s.val.image(i), s.val.image(i) + 4, ds.image(7 + i)));
    EXPECT_EQ(s.val.labels[std::size_t(i)], ds.labels[std::size_t(7 + i)]);
  }
  EXPECT_NO_THROW(s.train.validate());
  EXPECT_NO_THROW(s.val.validate());
  EXPECT_THROW(holdout(ds, 0), Error);
  EXPECT_THROW(holdout(ds, 10), Error);
}

TEST(DataDataset, ToFloatNchwRangeAndLayout) {
  ImageDataset ds = toy(2, 2, 3, 3);
  ds.pixels[0] = 0;
  ds.pixels[1] = 255;
  const std::vector<std::int64_t> idx = {1, 0};
  Batch b = make_batch(ds, idx);
  ASSERT_EQ(b.images.shape(), (Shape{2, 3, 2, 3}));
  EXPECT_EQ(b.labels, (std::vector<int>{1, 0}));
  // batch 1 = image 0: channel 0 pixel (0,0) = 0 -> -1; channel 1 pixel (0,0) = 255 -> 1.
  EXPECT_EQ(b.images[18 + 0], -1.f);
  EXPECT_EQ(b.images[18 + 6], 1.f);
  for (int bb = 0; bb < 2; ++bb)
    for (int k = 0; k < 3; ++k)
      for (int y = 0; y < 2; ++y)
        for (int x = 0; x < 3; ++x) {
          const std::uint8_t p = ds.image(idx[std::size_t(bb)])[(y * 3 + x) * 3 + k];
          EXPECT_FLOAT_EQ(b.images[((bb * 3 + k) * 2 + y) * 3 + x], float(p) / 127.5f - 1.f);
        }
}

TEST(DataDataset, FlipIsDeterministicAndBalanced) {
  int flips = 0;
  for (std::uint64_t i = 0; i < 4000; ++i) {
    const bool f = flip_decision(7, 3, i);
    EXPECT_EQ(f, flip_decision(7, 3, i));
    flips += f;
  }
  EXPECT_NEAR(flips, 2000, 150);
  int differ_epoch = 0, differ_seed = 0;
  for (std::uint64_t i = 0; i < 1000; ++i) {
    differ_epoch += flip_decision(7, 3, i) != flip_decision(7, 4, i);
    differ_seed += flip_decision(7, 3, i) != flip_decision(8, 3, i);
  }
  EXPECT_GT(differ_epoch, 400);
  EXPECT_GT(differ_seed, 400);

  // The batch conversion flips exactly the images flip_decision names, whatever the batch order.
  ImageDataset ds = toy(16, 3, 5, 3);
  std::vector<std::int64_t> fwd(16), rev(16);
  for (int i = 0; i < 16; ++i) fwd[std::size_t(i)] = i, rev[std::size_t(i)] = 15 - i;
  const Augment aug{true, 99, 2};
  Batch a = make_batch(ds, fwd, aug), b = make_batch(ds, rev, aug), plain = make_batch(ds, fwd);
  const int per = 3 * 3 * 5;
  int flipped = 0;
  for (int i = 0; i < 16; ++i) {
    const bool f = flip_decision(99, 2, std::uint64_t(i));
    flipped += f;
    for (int e = 0; e < per; ++e) EXPECT_EQ(a.images[i * per + e], b.images[(15 - i) * per + e]);
    for (int k = 0; k < 3; ++k)
      for (int y = 0; y < 3; ++y)
        for (int x = 0; x < 5; ++x) {
          const int sx = f ? 4 - x : x;
          EXPECT_EQ(a.images[i * per + (k * 3 + y) * 5 + x], plain.images[i * per + (k * 3 + y) * 5 + sx]);
        }
  }
  EXPECT_GT(flipped, 0);
  EXPECT_LT(flipped, 16);
  // hflip_hwc agrees with the batch flip.
  std::vector<std::uint8_t> img(ds.image(0), ds.image(0) + ds.image_bytes());
  hflip_hwc(img.data(), 3, 5, 3);
  for (int y = 0; y < 3; ++y)
    for (int x = 0; x < 5; ++x)
      for (int k = 0; k < 3; ++k) EXPECT_EQ(img[std::size_t((y * 5 + x) * 3 + k)], ds.image(0)[(y * 5 + 4 - x) * 3 + k]);
}

TEST(DataSampler, PermutationPerEpoch) {
  const auto p0 = epoch_permutation(1000, 5, 0), p1 = epoch_permutation(1000, 5, 1);
  EXPECT_EQ(p0, epoch_permutation(1000, 5, 0));
  EXPECT_NE(p0, p1);
  EXPECT_NE(p0, epoch_permutation(1000, 6, 0));
  std::set<std::int64_t> s(p0.begin(), p0.end());
  EXPECT_EQ(s.size(), 1000u);
  EXPECT_EQ(*s.begin(), 0);
  EXPECT_EQ(*s.rbegin(), 999);
  const auto id = epoch_permutation(10, 5, 3, false);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(id[std::size_t(i)], i);
  // Rough uniformity: element 0 lands in each decile about equally often over epochs.
  std::vector<int> hist(10, 0);
  for (std::uint64_t e = 0; e < 2000; ++e) {
    const auto p = epoch_permutation(100, 1, e);
    for (int i = 0; i < 100; ++i)
      if (p[std::size_t(i)] == 0) hist[std::size_t(i / 10)]++;
  }
  for (int h : hist) EXPECT_NEAR(h, 200, 60);
}

TEST(DataSampler, EpochsAndDropLast) {
  BatchSampler s(10, 4, 1);
  EXPECT_EQ(s.batches_per_epoch(), 2);
  std::set<std::int64_t> seen;
  auto a = s.next(), b = s.next();
  EXPECT_EQ(a.epoch, 0u);
  EXPECT_EQ(b.first, 4u);
  EXPECT_EQ(a.indices.size(), 4u);
  seen.insert(a.indices.begin(), a.indices.end());
  seen.insert(b.indices.begin(), b.indices.end());
  EXPECT_EQ(seen.size(), 8u);
  EXPECT_EQ(s.position(), (BatchSampler::Position{1, 0}));
  auto c = s.next();
  EXPECT_EQ(c.epoch, 1u);
  const auto p1 = epoch_permutation(10, 1, 1);
  EXPECT_EQ(c.indices, std::vector<std::int64_t>(p1.begin(), p1.begin() + 4));

  BatchSampler t(10, 4, 1, true, false);
  EXPECT_EQ(t.batches_per_epoch(), 3);
  t.next();
  t.next();
  EXPECT_EQ(t.next().indices.size(), 2u);
  EXPECT_EQ(t.position(), (BatchSampler::Position{1, 0}));
  EXPECT_THROW(BatchSampler(3, 4, 1), Error);
}

TEST(DataSampler, ResumeIsExact) {
  BatchSampler ref(103, 8, 42);
  std::vector<BatchSampler::Draw> all;
  for (int i = 0; i < 40; ++i) all.push_back(ref.next());
  for (int stop : {0, 1, 11, 12, 13, 25}) {
    BatchSampler a(103, 8, 42);
    for (int i = 0; i < stop; ++i) a.next();
    const auto pos = a.position();  // what a checkpoint stores
    BatchSampler b(103, 8, 42);
    b.seek(pos);
    for (int i = stop; i < 40; ++i) {
      const auto d = b.next();
      EXPECT_EQ(d.indices, all[std::size_t(i)].indices) << "stop " << stop << " batch " << i;
      EXPECT_EQ(d.epoch, all[std::size_t(i)].epoch);
      EXPECT_EQ(d.first, all[std::size_t(i)].first);
    }
  }
  BatchSampler c(103, 8, 42);
  EXPECT_THROW(c.seek({0, 104}), Error);
}

// ---- resampling

TEST(DataResample, PilBoxHandValues) {
  // 4 -> 2: mean of pairs, rounded half up (15.5 -> 16, 35.5 -> 36).
  const std::uint8_t a[4] = {10, 21, 30, 41};
  EXPECT_EQ(pil_resize(a, 1, 4, 1, 1, 2, PilFilter::Box), (std::vector<std::uint8_t>{16, 36}));
  // 5 -> 2 (scale 2.5): Pillow's box covers input pixels {0,1,2} and {3,4}.
  const std::uint8_t b[5] = {0, 30, 60, 90, 120};
  EXPECT_EQ(pil_resize(b, 1, 5, 1, 1, 2, PilFilter::Box), (std::vector<std::uint8_t>{30, 105}));
  // 2-D, 2 channels: 4x4 -> 2x2 block means.
  std::vector<std::uint8_t> img(32);
  for (int i = 0; i < 32; ++i) img[std::size_t(i)] = std::uint8_t(i * 4);
  const auto o = pil_resize(img.data(), 4, 4, 2, 2, 2, PilFilter::Box);
  ASSERT_EQ(o.size(), 8u);
  for (int y = 0; y < 2; ++y)
    for (int x = 0; x < 2; ++x)
      for (int c = 0; c < 2; ++c) {
        int s = 0;
        for (int dy = 0; dy < 2; ++dy)
          for (int dx = 0; dx < 2; ++dx) s += img[std::size_t(((2 * y + dy) * 4 + 2 * x + dx) * 2 + c)];
        EXPECT_EQ(o[std::size_t((y * 2 + x) * 2 + c)], (s + 2) / 4);
      }
}

TEST(DataResample, PilBicubicHandValues) {
  // [50, 150] -> 4 wide. Keys a = -0.5 weights at distances (0.25, 1.25) and (0.25, 0.75), taps
  // beyond the edge dropped and the rest renormalised: 41.18 -> 41, 70.71 -> 71, 129.29 -> 129,
  // 158.82 -> 159 (checked against Pillow 9.4).
  const std::uint8_t a[2] = {50, 150};
  EXPECT_EQ(pil_resize(a, 1, 2, 1, 1, 4, PilFilter::Bicubic), (std::vector<std::uint8_t>{41, 71, 129, 159}));
  // Same along the vertical axis.
  EXPECT_EQ(pil_resize(a, 2, 1, 1, 4, 1, PilFilter::Bicubic), (std::vector<std::uint8_t>{41, 71, 129, 159}));
  // Overshoot clips: [0, 100] -> first value would be -8.8.
  const std::uint8_t b[2] = {0, 100};
  EXPECT_EQ(pil_resize(b, 1, 2, 1, 1, 4, PilFilter::Bicubic)[0], 0);
  // Same size: identity.
  const std::uint8_t c[6] = {1, 2, 3, 4, 5, 6};
  EXPECT_EQ(pil_resize(c, 2, 3, 1, 2, 3, PilFilter::Bicubic), std::vector<std::uint8_t>(c, c + 6));
}

TEST(DataResample, CenterCropAdmHandCase) {
  // 4 x 8 grey, size 2: min side 4 >= 4 -> BOX to 2 x 4 (pair means), scale 1 (no bicubic),
  // crop columns 1..2.
  std::vector<std::uint8_t> img(32);
  for (int i = 0; i < 32; ++i) img[std::size_t(i)] = std::uint8_t(i * 8);
  const auto o = center_crop_adm(img.data(), 4, 8, 1, 2);
  auto m = [&](int y, int x) {
    int s = 0;
    for (int dy = 0; dy < 2; ++dy)
      for (int dx = 0; dx < 2; ++dx) s += img[std::size_t((2 * y + dy) * 8 + 2 * x + dx)];
    return std::uint8_t((s + 2) / 4);
  };
  EXPECT_EQ(o, (std::vector<std::uint8_t>{m(0, 1), m(0, 2), m(1, 1), m(1, 2)}));
  // No resize needed: a plain centered crop (offsets floor((extent - size) / 2)).
  std::vector<std::uint8_t> sq(5 * 6);
  for (int i = 0; i < 30; ++i) sq[std::size_t(i)] = std::uint8_t(i);
  // 5 x 6 with size 5: scale 1, crop x offset 0 (floor(1/2)).
  const auto o2 = center_crop_adm(sq.data(), 5, 6, 1, 5);
  for (int y = 0; y < 5; ++y)
    for (int x = 0; x < 5; ++x) EXPECT_EQ(o2[std::size_t(y * 5 + x)], sq[std::size_t(y * 6 + x)]);
}

TEST(DataResample, CenterCropAdmMatchesPillowFixtures) {
  struct Case {
    int h, w, size;
  };
  for (const Case cs : {Case{37, 53, 16}, Case{100, 70, 16}, Case{40, 40, 12}}) {
    std::vector<std::uint8_t> img(std::size_t(cs.h * cs.w * 3));
    for (int y = 0; y < cs.h; ++y)
      for (int x = 0; x < cs.w; ++x)
        for (int c = 0; c < 3; ++c)
          img[std::size_t((y * cs.w + x) * 3 + c)] =
              std::uint8_t((x * 7 + y * 13 + c * 29 + (x * y) % 17 + (x * x * 3 + y) % 41) % 256);
    const std::string path = test::test_data_path("transforms/adm_crop_" + std::to_string(cs.h) + "x" +
                                                  std::to_string(cs.w) + "_" + std::to_string(cs.size) + ".u8")
                                 .string();
    std::ifstream f(path, std::ios::binary);
    ASSERT_TRUE(f.good()) << path;
    std::vector<std::uint8_t> want(std::size_t(cs.size * cs.size * 3));
    f.read(reinterpret_cast<char*>(want.data()), std::streamsize(want.size()));
    ASSERT_TRUE(f.good()) << path;
    EXPECT_EQ(center_crop_adm(img.data(), cs.h, cs.w, 3, cs.size), want) << path;
  }
}

TEST(DataResample, BilinearAlignCornersFalseHandValues) {
  // 2x2 -> 4x4 (torch F.interpolate(mode='bilinear', align_corners=False)): source coordinates
  // -0.25 (clamped to 0), 0.25, 0.75, 1.25 (upper tap clamped): weights (1,0), (.75,.25),
  // (.25,.75), (0,1).
  const float in[4] = {0.f, 4.f, 8.f, 12.f};
  float out[16];
  resize_bilinear(in, 1, 2, 2, out, 4, 4);
  const float want[16] = {0, 1, 3, 4, 2, 3, 5, 6, 6, 7, 9, 10, 8, 9, 11, 12};
  for (int i = 0; i < 16; ++i) EXPECT_EQ(out[i], want[i]) << i;
  // 4 -> 2 (downsampling, no antialias): coordinates 0.5 and 2.5.
  const float row[4] = {1.f, 3.f, 5.f, 9.f};
  float o2[2];
  resize_bilinear(row, 1, 1, 4, o2, 1, 2);
  EXPECT_EQ(o2[0], 2.f);
  EXPECT_EQ(o2[1], 7.f);
  // 3 -> 5 on one row: scale 0.6, coords -0.2(->0), 0.4, 1.0, 1.6, 2.2 (-> 2, clamped upper tap).
  const float r3[3] = {0.f, 10.f, 20.f};
  float o3[5];
  resize_bilinear(r3, 1, 1, 3, o3, 1, 5);
  const float w3[5] = {0.f, 4.f, 10.f, 16.f, 20.f};
  for (int i = 0; i < 5; ++i) EXPECT_NEAR(o3[i], w3[i], 1e-5f) << i;
}

TEST(DataResample, ResizeIdentityWhenSizesEqual) {
  std::vector<float> in(2 * 5 * 7), out(in.size()), out2(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) in[i] = std::sin(float(i) * 0.7f) * 3.f;
  resize_bilinear(in.data(), 2, 5, 7, out.data(), 5, 7);
  resize_bicubic(in.data(), 2, 5, 7, out2.data(), 5, 7);
  EXPECT_EQ(out, in);
  EXPECT_EQ(out2, in);
}

TEST(DataResample, BicubicTorchHandValues) {
  // 1 x 4 -> 1 x 2 (torch bicubic a=-0.75, align_corners=False): src 0.5 and 2.5, t = 0.5,
  // weights (-0.09375, 0.59375, 0.59375, -0.09375); taps clamped at the edges.
  const float row[4] = {0.f, 1.f, 2.f, 3.f};
  float o[2];
  resize_bicubic(row, 1, 1, 4, o, 1, 2);
  EXPECT_NEAR(o[0], -0.09375f * 0 + 0.59375f * 0 + 0.59375f * 1 - 0.09375f * 2, 1e-6f);
  EXPECT_NEAR(o[1], -0.09375f * 1 + 0.59375f * 2 + 0.59375f * 3 - 0.09375f * 3, 1e-6f);
  // A ramp f(i) = i, 16 -> 32: source coordinates m + 0.25 and m - 0.25 (t = 0.25 / 0.75). With
  // a = -0.75, cubic convolution does not reproduce linear functions: t = 0.25 weights
  // (-0.10546875, 0.87890625, 0.26171875, -0.03515625) give m + 0.296875, i.e. src + 3/64
  // (and src - 3/64 at t = 0.75). Checked away from the clamped edges.
  std::vector<float> ramp(16), up(32);
  for (int i = 0; i < 16; ++i) ramp[std::size_t(i)] = float(i);
  resize_bicubic(ramp.data(), 1, 1, 16, up.data(), 1, 32);
  for (int d = 4; d < 28; ++d) {
    const float src = 0.5f * (float(d) + 0.5f) - 0.5f;
    EXPECT_NEAR(up[std::size_t(d)], src + (d % 2 ? 0.046875f : -0.046875f), 1e-5f) << d;
  }
}
