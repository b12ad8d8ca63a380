// redi_train: data sets and representation features.
#include <filesystem>
#include <iostream>
#include <numeric>

#include "cli_options.hpp"
#include "redi/data/idx.hpp"
#include "redi/data/pca_io.hpp"
#include "redi/train/encoder_training.hpp"
#if REDI_TRAIN_HAVE_STB
#include "redi/data/cifar10.hpp"
#include "redi/data/image_io.hpp"
#endif

namespace redi_examples {
namespace {

redi::data::ImageDataset load(const CliOptions& c) {
  if (c.dataset == "fashion-mnist")
    return redi::data::pad_to(redi::data::load_fashion_mnist(redi::data::Split::Train, c.data_dir), 32);
#if REDI_TRAIN_HAVE_STB
  if (c.dataset == "cifar10") return redi::data::load_cifar10_tfjs(redi::data::Split::Train, c.data_dir);
  redi::data::ImageFolderOptions fo;
  fo.channels = c.channels;
  fo.image_size = c.image_size;
  return redi::data::load_image_folder(c.dataset.substr(7), fo);  // "folder:PATH"
#else
  REDI_FAIL("--dataset ", c.dataset, ": redi_train was built without stb_image (Debian libstb-dev); only "
            "fashion-mnist is available");
#endif
}

/// The patch features of the chosen encoder -> PCA -> optional normalisation, on the encoder's
/// grid (the trainer resizes to the image grid per batch). Cached in the output directory.
template <redi::data::FeatureEncoder E>
void features(const CliOptions& c, E& enc, const redi::data::ImageDataset& ds, redi::data::TrainSet& t) {
  namespace fs = std::filesystem;
  const fs::path pf = fs::path(c.out) / "pca.safetensors", nf = fs::path(c.out) / "pc_norm.safetensors";
  const int r = c.model.feature_channels;
  const auto g = enc.grid(ds.h, ds.w);
  redi::data::Pca pca;
  if (fs::exists(pf)) {
    pca = redi::data::load_pca(pf, r);
    std::cout << "[redi_train] PCA from " << pf.string() << "\n";
  } else {
    pca = redi::train::fit_feature_pca(enc, ds, 10000, r, c.train.seed);
    redi::data::save_pca(pf, pca);
  }
  REDI_CHECK(pca.num_components >= r && pca.dim == enc.feature_dim(), pf.string(), ": PCA does not fit the encoder");
  std::vector<std::int64_t> idx(static_cast<std::size_t>(ds.n));
  std::iota(idx.begin(), idx.end(), std::int64_t(0));
  t.r = r; t.zh = g[0]; t.zw = g[1];
  t.z.resize(std::size_t(ds.n) * r * g[0] * g[1]);
  redi::train::extract_pca_features(enc, ds, idx, pca, r, redi::View<float>{t.z.data(), redi::Shape{ds.n, r, g[0], g[1]}});
  if (!c.pc_norm) return;
  redi::data::PcNormalization norm;
  if (fs::exists(nf)) {
    norm = redi::data::load_pc_normalization(nf);
    REDI_CHECK(norm.channels() == r, nf.string(), ": ", norm.channels(), " channels, --r is ", r);
  } else {
    redi::data::PcStats st(r);
    st.add(t.z.data(), ds.n, std::int64_t(g[0]) * g[1]);
    norm = st.finish();
    redi::data::save_pc_normalization(nf, norm);
  }
  norm.apply(t.z.data(), ds.n, std::int64_t(g[0]) * g[1]);
}

}  // namespace

redi::data::TrainSet prepare_data(const CliOptions& c) {
  namespace fs = std::filesystem;
  const redi::data::ImageDataset ds = load(c);
  REDI_CHECK(ds.h == ds.w && ds.h == c.model.input_size, c.dataset, ": images are ", ds.h, "x", ds.w,
             ", the model expects ", c.model.input_size, "x", c.model.input_size);
  std::cout << "[redi_train] " << c.dataset << ": " << ds.n << " images " << ds.h << "x" << ds.w << "x" << ds.c << ", "
            << ds.num_classes << " classes\n";
  redi::data::TrainSet t = redi::data::TrainSet::from_images(ds, c.dataset);
  if (c.model.feature_channels == 0) return t;
  fs::create_directories(c.out);
  if (c.features == "patch") {
    redi::data::PatchPixelEncoder enc(4, ds.c);
    features(c, enc, ds, t);
  } else {
    const fs::path ef = fs::path(c.out) / "encoder.safetensors";
    if (fs::exists(ef)) {
      auto enc = redi::ViTEncoder<float>::load(ef);
      std::cout << "[redi_train] encoder from " << ef.string() << "\n";
      features(c, enc, ds, t);
    } else {
      redi::train::EncoderTrainConfig ec;
      ec.model.image_size = ds.h;
      ec.model.channels = ds.c;
      ec.model.num_classes = std::max(2, ds.num_classes);
      ec.steps = c.encoder_steps;
      ec.seed = c.train.seed;
      auto enc = redi::train::train_encoder(ds, ec, &std::cout);
      enc.save(ef);
      features(c, enc, ds, t);
    }
  }
  return t;
}

}  // namespace redi_examples
