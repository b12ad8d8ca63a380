// examples/extract/extract_pipeline.hpp — the pieces of redi_extract (extract.cpp): reading a
// batch of files into ADM-cropped uint8 images, the latent and feature stages, shards.
//
// A shard (one safetensors file, what redi_train_imagenet reads as it is):
//   latents     [n, 4, h, w]   scaling_factor * VAE posterior mean (or one posterior sample)
//   labels      [n]    I64     class index (sorted sub-folder order; classes.txt)
//   z           [n, R, gh, gw] DINOv2 patch features projected on the first R PCA axes
//                              (((f - feature_mean) / feature_std - pca_mean) @ components[:R].T,
//                              the authors' PCA convention, data/pca.hpp), channels first
//   image_index [n]    I64     the image's position in the listing (extract.json: listing order)
//   flipped     [n]    U8      1 for the mirrored copy (--flips)
#pragma once
#include <algorithm>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "redi/core/error.hpp"
#include "redi/core/tensor.hpp"
#include "redi/data/image_io.hpp"
#include "redi/data/pca.hpp"
#include "redi/data/resample.hpp"
#include "redi/io/safetensors.hpp"
#include "redi/train/dinov2_encoder.hpp"

namespace redi_extract {

/// Images [n, 3, S, S] in [-1, 1] -> VAE moments [n, 2 * latent, S/f, S/f] (the CPU Vae, or the
/// CUDA one through host copies).
using MomentsFn = std::function<void(const float* images, int n, int S, float* moments)>;

/// Decodes files[i], ADM-centre-crops each to S x S (RGB) and, with `flips`, appends the mirrored
/// copy after each image: out [n * (1 + flips), S, S, 3] uint8 (HWC). Files (PNG or JPEG, by
/// signature) decode in parallel within `lim`; the first failure is rethrown naming its file.
inline std::vector<std::uint8_t> load_crops(const std::vector<std::string>& files, int S, bool flips,
                                            const redi::data::ImageLimits& lim = {}) {
  const int n = int(files.size()), copies = flips ? 2 : 1;
  const std::size_t img = std::size_t(S) * S * 3;
  std::vector<std::uint8_t> out(std::size_t(n) * copies * img);
  std::exception_ptr err;
  std::mutex m;
#pragma omp parallel for schedule(dynamic, 1)
  for (int i = 0; i < n; ++i) {
    try {
      const auto im = redi::data::decode_image_file(files[std::size_t(i)], 3, lim);
      REDI_CHECK(double(std::max(im.h, im.w)) * S / double(std::min(im.h, im.w)) <= double(lim.max_side),
                 files[std::size_t(i)], ": a ", im.h, "x", im.w, " image cropped to ", S,
                 " would be scaled past ImageLimits::max_side = ", lim.max_side, " (aspect ratio too extreme)");
      const auto crop = redi::data::center_crop_adm(im.pixels.data(), im.h, im.w, 3, S);
      std::uint8_t* dst = out.data() + std::size_t(i) * copies * img;
      std::copy(crop.begin(), crop.end(), dst);
      if (flips)
        for (int y = 0; y < S; ++y)
          for (int x = 0; x < S; ++x)
            for (int c = 0; c < 3; ++c)
              dst[img + (std::size_t(y) * S + x) * 3 + c] = crop[(std::size_t(y) * S + (S - 1 - x)) * 3 + c];
    } catch (...) {
      std::lock_guard<std::mutex> lock(m);
      if (!err) err = std::current_exception();
    }
  }
  if (err) std::rethrow_exception(err);
  return out;
}

/// uint8 HWC [n, S, S, 3] -> float NCHW [n, 3, S, S] in [-1, 1] (u / 127.5 - 1).
inline redi::Tensor<float> to_float_nchw(const std::vector<std::uint8_t>& hwc, int n, int S) {
  redi::Tensor<float> x(redi::Shape{n, 3, S, S});
  const std::size_t plane = std::size_t(S) * S;
  for (int b = 0; b < n; ++b)
    for (std::size_t p = 0; p < plane; ++p)
      for (int c = 0; c < 3; ++c)
        x.data()[(std::size_t(b) * 3 + std::size_t(c)) * plane + p] =
            float(hwc[(std::size_t(b) * plane + p) * 3 + std::size_t(c)]) / 127.5f - 1.f;
  return x;
}

/// DINOv2 patch features of images [n, 3, S, S] projected on the first R PCA axes:
/// z [n, R, gh, gw] (channels first; the grid is not resized).
inline void project_features(redi::Dinov2Encoder& enc, const redi::data::Pca& pca, int R, const redi::Tensor<float>& x,
                             float* z) {
  const int n = int(x.shape()[0]), S = int(x.shape()[2]);
  const auto g = enc.grid(S, S);
  redi::Tensor<float> f(redi::Shape{n, g[0], g[1], enc.feature_dim()});
  enc.encode(x.view(), f.view());
  redi::data::features_to_latent(pca, R, f.data(), n, g[0], g[1], z, g[0], g[1]);
}

/// The samples of one shard, accumulated batch by batch.
struct ShardData {
  int latent_c = 0, lh = 0, lw = 0, R = 0, gh = 0, gw = 0;
  std::vector<float> latents, z;
  std::vector<std::int64_t> labels, index;
  std::vector<std::uint8_t> flipped;
  std::int64_t n() const { return std::int64_t(labels.size()); }

  void write(const std::string& path, redi::DType store_as, const std::map<std::string, std::string>& md) const {
    redi::io::SafeTensorsWriter w;
    w.add("latents", redi::Shape{n(), latent_c, lh, lw}, latents.data(), store_as);
    w.add("labels", redi::Shape{n()}, labels.data());
    w.add("z", redi::Shape{n(), R, gh, gw}, z.data(), store_as);
    w.add("image_index", redi::Shape{n()}, index.data());
    w.add("flipped", redi::Shape{n()}, flipped.data());
    w.write(path, md);  // atomic: a shard file exists whole or not at all
  }
};

/// Whether `path` is a complete shard of `n` samples (a resumed run skips it).
inline bool shard_complete(const std::string& path, std::int64_t n) {
  try {
    const auto f = redi::io::SafeTensorsFile::open(path);
    return f.contains("latents") && f.contains("z") && f.contains("labels") && f.info("labels").shape.size() == 1 &&
           f.info("labels").shape[0] == n && f.info("latents").shape.at(0) == n && f.info("z").shape.at(0) == n;
  } catch (const redi::Error&) {
    return false;
  }
}

}  // namespace redi_extract
