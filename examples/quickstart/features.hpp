// examples/quickstart/features.hpp — the quickstart's representation features: which frozen
// encoder (a supervised ViT trained here, or the committed self-supervised DINO ViT), its PCA
// to r channels, and the scale the channels are given before the diffusion model sees them.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <iostream>
#include <numeric>
#include <string>
#include <vector>

#include "redi/core/paths.hpp"
#include "redi/data/pca_io.hpp"
#include "redi/train/encoder_training.hpp"
#include "redi/train/metrics_log.hpp"

namespace quickstart {

namespace fs = std::filesystem;

/// How the r principal components are scaled before training (the diffusion model's z0):
///  * per-channel: each PC to mean 0 / std 1, times `scale`;
///  * relative:    mean 0, all PCs divided by the FIRST PC's std (their relative variances kept,
///                 as with the authors' natural-scale PCs), times `scale`;
///  * natural:     the raw projections (no normalisation; `scale` ignored).
struct ZScale {
  std::string mode = "per-channel";
  double scale = 1.0;
};

struct FeatureSettings {
  std::string encoder = "supervised";  // supervised | dino
  int encoder_steps = 600;             // supervised encoder's training steps
  int r = 8;                           // PCA components the model generates (0: plain model)
  ZScale z;
  std::uint64_t seed = 0;
  fs::path cache_dir = "runs/encoder";
};

struct Features {
  redi::ViTEncoder<float> enc;
  redi::data::Pca pca;                  ///< fitted with kPcaComponents components; the first r are used
  redi::data::PcNormalization stats;    ///< per-PC mean/std on the fitting images (kPcaComponents)
  redi::data::PcNormalization applied;  ///< what is applied to the first r channels (empty: natural)
};

inline constexpr int kPcaComponents = 8;
inline constexpr int kPcaImages = 5000;

/// The affine map given to the model's z channels for settings `z` from the PC statistics.
inline redi::data::PcNormalization scaling(const redi::data::PcNormalization& st, int r, const ZScale& z) {
  redi::data::PcNormalization n;
  if (z.mode == "natural" || r == 0) return n;
  REDI_CHECK(z.scale > 0, "z scale must be > 0, got ", z.scale);
  for (int k = 0; k < r; ++k) {
    n.mean.push_back(st.mean[std::size_t(k)]);
    const float sd = z.mode == "relative" ? st.std[0] : st.std[std::size_t(k)];
    n.std.push_back(float(double(sd) / z.scale));  // (pc - mean) / (sd / scale)
  }
  return n;
}

/// Trains (supervised) or loads (dino) the encoder, fits the PCA and the PC statistics on the
/// training images, cached in settings.cache_dir under a key of everything that defines them.
inline Features encoder_and_pca(const redi::data::ImageDataset& train, const FeatureSettings& s,
                                std::ostream& log) {
  using clk = std::chrono::steady_clock;
  fs::create_directories(s.cache_dir);
  const std::string tag = s.encoder;
  const fs::path ef = s.cache_dir / (tag + "_encoder.safetensors"), pf = s.cache_dir / (tag + "_pca.safetensors"),
                 nf = s.cache_dir / (tag + "_pc_stats.safetensors");
  redi::train::EncoderTrainConfig ec;
  ec.steps = s.encoder_steps;
  ec.seed = s.seed;
  ec.log_every = 100;
  std::string key = tag + ",data=" + train.source + ",n=" + std::to_string(train.n) + ",pcs=" +
                    std::to_string(kPcaComponents) + ",seed=" + std::to_string(s.seed);
  if (tag == "supervised") key += "," + ec.model.str() + ",steps=" + std::to_string(s.encoder_steps);
  auto finish = [&](redi::ViTEncoder<float> enc, redi::data::Pca pca, redi::data::PcNormalization st) {
    Features f{std::move(enc), std::move(pca), std::move(st), {}};
    f.applied = scaling(f.stats, s.r, s.z);
    return f;
  };
  if (fs::exists(ef) && fs::exists(pf) && fs::exists(nf)) {
    const auto md = redi::io::SafeTensorsFile::open(nf).metadata();
    if (auto it = md.find("quickstart.key"); it != md.end() && it->second == key) {
      log << "[quickstart] " << tag << " encoder, PCA and PC statistics from the cache " << s.cache_dir.string() << "\n";
      return finish(redi::ViTEncoder<float>::load(ef), redi::data::load_pca(pf), redi::data::load_pc_normalization(nf));
    }
  }
  const auto t0 = clk::now();
  redi::ViTEncoder<float> enc = [&] {
    if (tag == "dino") {
      const fs::path w = redi::data_file("encoders/fashion_mnist_dino_vit.safetensors");
      log << "[quickstart] self-supervised (DINO) encoder from " << w.string() << "\n";
      return redi::ViTEncoder<float>::load(w);
    }
    auto e = redi::train::train_encoder(train, ec, &log);
    log << "[quickstart] supervised encoder trained in "
        << redi::train::format_duration(std::chrono::duration<double>(clk::now() - t0).count()) << "\n";
    return e;
  }();
  enc.save(ef);
  auto pca = redi::train::fit_feature_pca(enc, train, kPcaImages, kPcaComponents, s.seed);
  // PC statistics on what the model sees (the PCs on the encoder grid) of the same images.
  std::vector<std::int64_t> idx(static_cast<std::size_t>(std::min<std::int64_t>(kPcaImages, train.n)));
  std::iota(idx.begin(), idx.end(), std::int64_t(0));
  const int g = enc.config().grid();
  redi::Tensor<float> z(redi::Shape{std::int64_t(idx.size()), kPcaComponents, g, g});
  redi::train::extract_pca_features(enc, train, idx, pca, kPcaComponents, z.view());
  redi::data::PcStats stats(kPcaComponents);
  stats.add(z.data(), std::int64_t(idx.size()), std::int64_t(g) * g);
  auto st = stats.finish();
  log << "[quickstart] PCA (" << kPcaComponents << " components) fitted; PC std:";
  for (float v : st.std) log << " " << v;
  log << "\n";
  redi::data::save_pca(pf, pca);
  redi::data::save_pc_normalization(nf, st, {{"quickstart.key", key}});
  return finish(std::move(enc), std::move(pca), std::move(st));
}

/// z of images idx of ds on the encoder grid, scaled as the model expects: [idx.size(), r, g, g].
inline std::vector<float> model_features(Features& f, const redi::data::ImageDataset& ds,
                                         std::span<const std::int64_t> idx, int r) {
  const int g = f.enc.config().grid();
  std::vector<float> z(idx.size() * std::size_t(r) * std::size_t(g) * std::size_t(g));
  redi::train::extract_pca_features(f.enc, ds, idx, f.pca, r,
                                     redi::View<float>{z.data(), redi::Shape{std::int64_t(idx.size()), r, g, g}},
                                     f.applied.mean.empty() ? nullptr : &f.applied);
  return z;
}

}  // namespace quickstart
