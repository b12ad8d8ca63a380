// redi/data/train_set.hpp — redi::data::TrainSet, the in-memory training set a diffusion
// trainer draws batches from: x [n, cx, h, w] (images in [-1, 1] or VAE latents), z [n, r, zh, zw]
// (PCA'd representation features), integer labels in [0, num_classes). The feature grid zh x zw
// is the latent grid h x w or a coarser encoder grid, resized bilinearly (align_corners = false)
// to the model's feature grid (h x w unless it has its own) when a batch is gathered — the same z as resizing first, at a fraction of the memory.
#pragma once
#include <algorithm>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "redi/core/error.hpp"
#include "redi/data/dataset.hpp"
#include "redi/data/resample.hpp"

namespace redi::data {

struct TrainSet {
  int n = 0, cx = 0, h = 0, w = 0;
  int r = 0, zh = 0, zw = 0;
  std::vector<float> x, z;
  std::vector<int> labels;
  int num_classes = 1;
  std::string name = "data";  ///< recorded in checkpoints; a resume checks it

  void validate() const {
    REDI_CHECK(n > 0 && cx > 0 && h > 0 && w > 0, name, ": empty training set or bad shape [", n, ", ", cx, ", ",
               h, ", ", w, "]");
    REDI_CHECK(x.size() == std::size_t(n) * cx * h * w, name, ": x holds ", x.size(), " values, expected ",
               std::size_t(n) * cx * h * w);
    REDI_CHECK(r >= 0 && (r == 0 || (zh > 0 && zw > 0)), name, ": bad feature grid r=", r, " ", zh, "x", zw);
    REDI_CHECK(z.size() == std::size_t(n) * r * zh * zw, name, ": z holds ", z.size(), " values, expected ",
               std::size_t(n) * r * zh * zw);
    REDI_CHECK(labels.size() == std::size_t(n), name, ": ", labels.size(), " labels for ", n, " samples");
    for (std::size_t i = 0; i < labels.size(); ++i)
      REDI_CHECK(labels[i] >= 0 && labels[i] < num_classes, name, ": label ", labels[i], " of sample ", i,
                 " outside [0, ", num_classes, ")");
  }

  /// Batch of samples idx: x -> xb [B, cx, h, w], z -> zb [B, r, fh, fw] (resized bilinearly
  /// from zh x zw when the sizes differ; fh = fw = 0: the image grid h x w), labels -> yb.
  /// With aug.flip, sample i is mirrored (x and z alike) when data::flip_decision says so.
  void gather(std::span<const std::int64_t> idx, const Augment& aug, float* xb, float* zb, int* yb, int fh = 0,
              int fw = 0) const {
    if (fh <= 0 || fw <= 0) fh = h, fw = w;
    const std::size_t xs = std::size_t(cx) * h * w, zs = std::size_t(r) * zh * zw, zo = std::size_t(r) * fh * fw;
    for (std::size_t b = 0; b < idx.size(); ++b) {
      const std::int64_t i = idx[b];
      REDI_CHECK(i >= 0 && i < n, name, ": sample index ", i, " outside [0, ", n, ")");
      std::copy_n(x.data() + std::size_t(i) * xs, xs, xb + b * xs);
      if (r > 0) {
        if (zh == fh && zw == fw) std::copy_n(z.data() + std::size_t(i) * zs, zs, zb + b * zo);
        else resize_bilinear(z.data() + std::size_t(i) * zs, r, zh, zw, zb + b * zo, fh, fw);
      }
      yb[b] = labels[std::size_t(i)];
      if (aug.flip && flip_decision(aug.seed, aug.epoch, std::uint64_t(i))) {
        hflip_chw(xb + b * xs, cx, h, w);
        if (r > 0) hflip_chw(zb + b * zo, r, fh, fw);
      }
    }
  }

  /// x from an image data set (uint8 -> [-1, 1], NCHW); z left empty (r = 0).
  static TrainSet from_images(const ImageDataset& ds, std::string name) {
    ds.validate();
    TrainSet t;
    t.n = ds.n; t.cx = ds.c; t.h = ds.h; t.w = ds.w;
    t.num_classes = ds.num_classes;
    t.labels = ds.labels;
    t.name = std::move(name);
    t.x.resize(std::size_t(ds.n) * ds.c * ds.h * ds.w);
    constexpr std::int64_t chunk = 1024;
    std::vector<std::int64_t> idx;
    for (std::int64_t s = 0; s < ds.n; s += chunk) {
      idx.clear();
      for (std::int64_t i = s; i < std::min<std::int64_t>(ds.n, s + chunk); ++i) idx.push_back(i);
      to_float_nchw(ds, idx, t.x.data() + std::size_t(s) * ds.c * ds.h * ds.w);
    }
    return t;
  }
};

}  // namespace redi::data
