// End to end on Fashion-MNIST (skipped when the data set is not installed): raw-patch features
// (data::PatchPixelEncoder) -> PCA r = 4 -> per-channel normalisation -> a tiny ReDi SiT trained
// a few hundred steps with redi::train::Trainer -> guided samples -> an ADM-format .npz.
// The loss must fall and every output file must have the right format.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <numeric>
#include <string>
#include <vector>

#include "redi/data/features.hpp"
#include "redi/data/idx.hpp"
#include "redi/io/image_write.hpp"
#include "redi/io/npz.hpp"
#include "redi/train/encoder_training.hpp"
#include "redi/ops/cpu_backend.hpp"
#include "redi/train/trainer.hpp"

using namespace redi;
namespace fs = std::filesystem;

TEST(TrainEndToEnd, FashionMnistLossFallsAndSamplesAreWritten) {
  data::ImageDataset full;
  try {
    full = data::load_fashion_mnist(data::Split::Train);
  } catch (const Error& e) {
    GTEST_SKIP() << "Fashion-MNIST not available: " << e.what();
  }
  const fs::path dir = fs::temp_directory_path() / ("redi_test_train_e2e_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  // 3,000 images, padded to 32x32.
  std::vector<std::int64_t> idx(3000);
  std::iota(idx.begin(), idx.end(), std::int64_t(0));
  const data::ImageDataset ds = data::pad_to(data::subset(full, idx), 32);

  // Features: 4x4 raw patches -> PCA (r = 4) on an 8x8 grid, normalised per channel.
  const int r = 4, g = 8;
  data::PatchPixelEncoder enc(4, 1);
  data::PcaFitter fitter(enc.feature_dim());
  data::accumulate_features(enc, ds, std::span<const std::int64_t>(idx).subspan(0, 1000), 250, fitter);
  data::PcaFitOptions fo;
  fo.num_components = r;
  const data::Pca pca = fitter.fit(fo);
  data::TrainSet set = data::TrainSet::from_images(ds, "fmnist-3000");
  set.r = r; set.zh = g; set.zw = g;
  set.z.resize(std::size_t(ds.n) * r * g * g);
  for (int s = 0; s < ds.n; s += 500) {
    const data::Batch b = data::make_batch(ds, std::span<const std::int64_t>(idx).subspan(std::size_t(s), 500));
    const Tensor<float> z = data::encode_to_latent(enc, pca, r, b.images.view(), g, g);
    std::copy(z.data(), z.data() + z.numel(), set.z.data() + std::size_t(s) * r * g * g);
  }
  data::PcStats stats(r);
  stats.add(set.z.data(), ds.n, g * g);
  stats.finish().apply(set.z.data(), ds.n, g * g);

  using M = ReDi<SiT, Merged, FlowMatching>;
  M::Options o;
  o.model.input_size = 32; o.model.patch = 4; o.model.image_channels = 1; o.model.feature_channels = r;
  o.model.depth = 2; o.model.width = 64; o.model.heads = 2; o.model.num_classes = 10;
  o.loss.p_drop = 0.2;
  o.train.adamw.lr = 2e-3;
  o.train.warmup_steps = 20;
  o.train.grad_clip = 1.0;
  o.train.ema_decay = 0.99;
  M model(o);
  train::TrainerConfig tc;
  tc.steps = 300; tc.batch = 32; tc.log_every = 50; tc.sample_every = 0; tc.ckpt_every = 0;
  tc.out_dir = dir.string(); tc.grid_samples = 20; tc.grid_cols = 10;
  train::Trainer<M> trainer(model, set, tc);
  trainer.set_sample_fn([](M& m, float* out, const SampleRequest& req) {
    m.sample<OdeEuler, Combine<CFG<VaeOnly>, RepGuidance>>(out, req, {.num_steps = 4}, {.cfg_scale = 2.0, .rg_scale = 1.5});
  });
  trainer.run();

  const auto& h = trainer.history();
  ASSERT_EQ(h.size(), 300u);
  double first = 0, last = 0;
  for (int i = 0; i < 30; ++i) {
    first += h[std::size_t(i)].loss / 30;
    last += h[h.size() - 1 - std::size_t(i)].loss / 30;
  }
  EXPECT_LT(last, 0.7 * first) << "loss did not fall: first 30 steps " << first << ", last 30 " << last;
  EXPECT_TRUE(fs::exists(dir / "checkpoint.safetensors"));
  EXPECT_TRUE(fs::exists(dir / "samples" / "step_0000300.png"));
  int lines = 0;
  {
    std::ifstream in(dir / "metrics.jsonl");
    for (std::string l; std::getline(in, l);) ++lines;
  }
  EXPECT_EQ(lines, 6);

  // 20 guided samples, two per class, in the ADM evaluator's format.
  const int N = 20;
  std::vector<int> labels(N);
  for (int i = 0; i < N; ++i) labels[std::size_t(i)] = i / 2;
  std::vector<float> out(std::size_t(N) * (1 + r) * 32 * 32), img(std::size_t(N) * 32 * 32);
  model.sample<OdeEuler, Combine<CFG<VaeOnly>, RepGuidance>>(out.data(), {.B = N, .labels = labels.data(), .seed = 3},
                                                             {.num_steps = 4}, {.cfg_scale = 2.0, .rg_scale = 1.5});
  for (int i = 0; i < N; ++i)
    std::copy_n(out.data() + std::size_t(i) * (1 + r) * 1024, 1024, img.data() + std::size_t(i) * 1024);
  const auto u8 = io::to_uint8_nhwc(img.data(), N, 1, 32, 32);
  io::save_sample_npz(dir / "samples.npz", u8.data(), N, 32, 32, 1, labels.data());
  const auto z = io::NpzFile::open(dir / "samples.npz");
  EXPECT_EQ(z.info("arr_0").descr, "|u1");
  EXPECT_EQ(z.info("arr_0").shape, (std::vector<std::int64_t>{N, 32, 32, 1}));
  EXPECT_EQ(z.info("arr_1").shape, (std::vector<std::int64_t>{N}));
  const auto px = z.read<std::uint8_t>("arr_0");
  EXPECT_EQ(px, u8);
  EXPECT_EQ(z.read<int>("arr_1"), labels);
  // Not a constant image: the model generates structure.
  const auto [mn, mx] = std::minmax_element(px.begin(), px.end());
  EXPECT_GT(int(*mx) - int(*mn), 100);
  fs::remove_all(dir);
}

// Every batch row's z is exactly the feature of that row's own image: the encoder's patch
// features -> PCA -> normalisation -> bilinear resize to the model's feature grid, mirrored
// exactly when the row's image is (horizontal flips), for both feature grids (the image grid,
// and the token grid where no resize happens). A misaligned z (another row's, a transposed or
// unflipped map) would teach the model features that do not describe its image.
TEST(TrainSet, BatchRowsCarryTheirOwnFeatures) {
  data::ImageDataset ds;
  ds.n = 24; ds.h = 16; ds.w = 16; ds.c = 1; ds.num_classes = 3; ds.source = "toy";
  for (int i = 0; i < ds.n; ++i) {
    ds.labels.push_back(i % 3);
    for (int y = 0; y < 16; ++y)
      for (int x = 0; x < 16; ++x)  // left-right asymmetric content, different per image
        ds.pixels.push_back(std::uint8_t((x * (i % 5 + 1) * 7 + y * 3 * (i % 3 + 1) + 11 * i + (x > y ? 60 : 0)) % 256));
  }
  const int r = 3, g = 4;
  data::PatchPixelEncoder enc(4, 1);  // 4x4 patches: a 4x4 feature grid
  std::vector<std::int64_t> all(static_cast<std::size_t>(ds.n));
  std::iota(all.begin(), all.end(), std::int64_t(0));
  data::PcaFitter fitter(enc.feature_dim());
  data::accumulate_features(enc, ds, all, 8, fitter);
  const data::Pca pca = fitter.fit({.num_components = r});
  data::PcNormalization norm;
  norm.mean = {0.5f, -0.25f, 0.f};
  norm.std = {2.f, 0.5f, 1.5f};
  data::TrainSet t = data::TrainSet::from_images(ds, "toy");
  t.r = r; t.zh = g; t.zw = g;
  t.z.resize(std::size_t(ds.n) * r * g * g);
  train::extract_pca_features(enc, ds, all, pca, r, View<float>{t.z.data(), Shape{ds.n, r, g, g}}, &norm);
  const std::vector<std::int64_t> idx = {5, 17, 0, 23, 11, 8, 2, 19};
  const int B = int(idx.size());
  for (int fgrid : {16, 4}) {  // the image grid (resized) and the token grid (as stored)
    for (std::uint64_t epoch : {0u, 1u, 2u}) {
      const data::Augment aug{true, 42, epoch};
      std::vector<float> xb(std::size_t(B) * 256), zb(std::size_t(B) * r * fgrid * fgrid);
      std::vector<int> yb(static_cast<std::size_t>(B));
      t.gather(idx, aug, xb.data(), zb.data(), yb.data(), fgrid, fgrid);
      int flipped = 0;
      for (int b = 0; b < B; ++b) {
        const std::int64_t i = idx[std::size_t(b)];
        const bool flip = data::flip_decision(42, epoch, std::uint64_t(i));
        flipped += flip;
        EXPECT_EQ(yb[std::size_t(b)], ds.labels[std::size_t(i)]);
        // the row's image is image i, mirrored when the flip says so
        const std::int64_t one[1] = {i};
        const data::Batch img = data::make_batch(ds, one);
        for (int y = 0; y < 16; ++y)
          for (int x = 0; x < 16; ++x)
            ASSERT_EQ(xb[std::size_t(b) * 256 + y * 16 + x], img.images.data()[y * 16 + (flip ? 15 - x : x)]);
        // the row's features are the features of THAT image, mirrored with it
        const Tensor<float> z = data::encode_to_latent(enc, pca, r, img.images.view(), fgrid, fgrid, &norm);
        for (int c = 0; c < r; ++c)
          for (int y = 0; y < fgrid; ++y)
            for (int x = 0; x < fgrid; ++x)
              ASSERT_NEAR(zb[((std::size_t(b) * r + c) * fgrid + y) * fgrid + x],
                          z.data()[(std::size_t(c) * fgrid + y) * fgrid + (flip ? fgrid - 1 - x : x)], 1e-5)
                  << "row " << b << " (image " << i << ", flip " << flip << ") channel " << c << " at " << y << "," << x;
      }
      if (epoch == 0) EXPECT_GT(flipped, 0);
    }
  }
}
