// redi/data/dataset.hpp — the in-memory image dataset every reader returns, and what turns it
// into training batches: uint8 NHWC storage, padding, a deterministic horizontal flip keyed by
// (seed, epoch, index), and conversion to float NCHW in [-1, 1].
//
// Readers: redi/data/idx.hpp (Fashion-MNIST, needs zlib), redi/data/cifar10.hpp and
// redi/data/image_folder.hpp (need stb_image). This header needs nothing beyond redi's core.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "redi/core/error.hpp"
#include "redi/core/philox.hpp"
#include "redi/core/tensor.hpp"

namespace redi::data {

/// Which part of a dataset with a fixed split to read.
enum class Split { Train, Test };
inline const char* split_name(Split s) { return s == Split::Train ? "train" : "test"; }

/// n images of h x w x c uint8 pixels (NHWC, row-major, channels fastest) with integer labels
/// in [0, num_classes). `class_names` is empty or has num_classes entries; `source` says where
/// the images came from (a path, for error messages and logs).
struct ImageDataset {
  int n = 0, h = 0, w = 0, c = 0;
  std::vector<std::uint8_t> pixels;  ///< n * h * w * c, NHWC
  std::vector<int> labels;           ///< n entries in [0, num_classes)
  int num_classes = 0;
  std::vector<std::string> class_names;
  std::string source;

  std::size_t image_bytes() const { return std::size_t(h) * std::size_t(w) * std::size_t(c); }
  const std::uint8_t* image(std::int64_t i) const { return pixels.data() + std::size_t(i) * image_bytes(); }
  std::uint8_t* image(std::int64_t i) { return pixels.data() + std::size_t(i) * image_bytes(); }
  bool empty() const { return n == 0; }

  /// Throws redi::Error (naming `source`) unless sizes and labels are consistent.
  void validate() const {
    REDI_CHECK(n >= 0 && h >= 0 && w >= 0 && c >= 0, source, ": negative extent (n=", n, ", h=", h,
               ", w=", w, ", c=", c, ")");
    REDI_CHECK(c == 0 || c == 1 || c == 3 || c == 4, source, ": ", c, " channels (1, 3 or 4 expected)");
    REDI_CHECK(pixels.size() == std::size_t(n) * image_bytes(), source, ": ", pixels.size(),
               " pixel bytes for ", n, " images of ", h, "x", w, "x", c);
    REDI_CHECK(labels.size() == std::size_t(n), source, ": ", labels.size(), " labels for ", n, " images");
    REDI_CHECK(class_names.empty() || class_names.size() == std::size_t(num_classes), source, ": ",
               class_names.size(), " class names for ", num_classes, " classes");
    for (std::size_t i = 0; i < labels.size(); ++i)
      REDI_CHECK(labels[i] >= 0 && labels[i] < num_classes, source, ": label ", labels[i], " of image ",
                 i, " is outside [0, ", num_classes, ")");
  }
};

/// The images idx[0..] of `ds` as a new dataset (same classes; source gets a "[subset]" tag).
inline ImageDataset subset(const ImageDataset& ds, std::span<const std::int64_t> idx) {
  ImageDataset out;
  out.n = int(idx.size());
  out.h = ds.h, out.w = ds.w, out.c = ds.c;
  out.num_classes = ds.num_classes;
  out.class_names = ds.class_names;
  out.source = ds.source + " [subset of " + std::to_string(idx.size()) + "]";
  out.pixels.resize(std::size_t(out.n) * ds.image_bytes());
  out.labels.resize(idx.size());
  for (std::size_t k = 0; k < idx.size(); ++k) {
    REDI_CHECK(idx[k] >= 0 && idx[k] < ds.n, ds.source, ": subset index ", idx[k], " outside [0, ", ds.n, ")");
    std::copy_n(ds.image(idx[k]), ds.image_bytes(), out.image(std::int64_t(k)));
    out.labels[k] = ds.labels[std::size_t(idx[k])];
  }
  return out;
}

/// Pads every image by `p` pixels on each side with the byte `value` (Fashion-MNIST: 28 -> 32
/// with p = 2 and value 0, the background colour, which becomes -1 after to_float).
inline ImageDataset pad(const ImageDataset& ds, int p, std::uint8_t value = 0) {
  REDI_CHECK(p >= 0, "pad: negative padding ", p);
  ImageDataset out;
  out.n = ds.n, out.c = ds.c, out.h = ds.h + 2 * p, out.w = ds.w + 2 * p;
  out.labels = ds.labels;
  out.num_classes = ds.num_classes;
  out.class_names = ds.class_names;
  out.source = ds.source;
  out.pixels.assign(std::size_t(out.n) * out.image_bytes(), value);
  const std::size_t row = std::size_t(ds.w) * std::size_t(ds.c);
  for (int i = 0; i < ds.n; ++i)
    for (int y = 0; y < ds.h; ++y)
      std::copy_n(ds.image(i) + std::size_t(y) * row, row,
                  out.image(i) + (std::size_t(y + p) * std::size_t(out.w) + std::size_t(p)) * std::size_t(ds.c));
  return out;
}

/// Pads to size x size (centered; extra pixel, if any, goes right/bottom). Images must fit.
inline ImageDataset pad_to(const ImageDataset& ds, int size, std::uint8_t value = 0) {
  REDI_CHECK(ds.h == ds.w, ds.source, ": pad_to needs square images, got ", ds.h, "x", ds.w);
  REDI_CHECK(size >= ds.h && (size - ds.h) % 2 == 0, ds.source, ": cannot pad ", ds.h, " to ", size,
             " symmetrically");
  return pad(ds, (size - ds.h) / 2, value);
}

// ---------------------------------------------------------------------------------------------
// Random horizontal flip. The decision for dataset image `index` in `epoch` depends only on
// (seed, epoch, index): not on the batch, the batch position, the thread or a resume.

inline constexpr std::uint64_t kFlipSalt = 0x666c69705f726564ull;  // "flip_red"

/// True when image `index` is flipped in `epoch` (probability 1/2).
inline bool flip_decision(std::uint64_t seed, std::uint64_t epoch, std::uint64_t index) {
  const philox::U4 r = philox::block(seed ^ kFlipSalt, epoch, index);
  return (r.x >> 31) != 0u;
}

/// Mirrors one h x w x c image left-right in place.
inline void hflip_hwc(std::uint8_t* img, int h, int w, int c) {
  for (int y = 0; y < h; ++y) {
    std::uint8_t* row = img + std::size_t(y) * std::size_t(w) * std::size_t(c);
    for (int x = 0; x < w / 2; ++x)
      for (int k = 0; k < c; ++k) std::swap(row[std::size_t(x) * c + k], row[std::size_t(w - 1 - x) * c + k]);
  }
}

/// Mirrors `planes` h x w planes (a CHW image or feature map) left-right in place.
template <class T>
inline void hflip_chw(T* p, int planes, int h, int w) {
  for (int c = 0; c < planes; ++c)
    for (int y = 0; y < h; ++y) {
      T* row = p + (std::size_t(c) * std::size_t(h) + std::size_t(y)) * std::size_t(w);
      std::reverse(row, row + w);
    }
}

/// How a batch is augmented. `flip` off: images go through unchanged.
struct Augment {
  bool flip = false;
  std::uint64_t seed = 0;
  std::uint64_t epoch = 0;
};

/// uint8 -> float in [-1, 1]: x = p / 127.5 - 1 (0 -> -1, 255 -> 1; the same as torchvision's
/// ToTensor + Normalize(0.5, 0.5) up to float rounding).
inline float to_unit_range(std::uint8_t p) { return float(p) / 127.5f - 1.0f; }

/// Writes images idx[0..B) of `ds` as float NCHW [B, c, h, w] in [-1, 1] into `out`
/// (B * c * h * w floats), flipping image idx[b] when aug.flip and flip_decision(...) say so.
inline void to_float_nchw(const ImageDataset& ds, std::span<const std::int64_t> idx, float* out,
                          const Augment& aug = {}) {
  const std::size_t plane = std::size_t(ds.h) * std::size_t(ds.w);
  for (std::size_t b = 0; b < idx.size(); ++b) {
    const std::int64_t i = idx[b];
    REDI_CHECK(i >= 0 && i < ds.n, ds.source, ": batch index ", i, " outside [0, ", ds.n, ")");
    const std::uint8_t* img = ds.image(i);
    const bool flip = aug.flip && flip_decision(aug.seed, aug.epoch, std::uint64_t(i));
    float* o = out + b * plane * std::size_t(ds.c);
    for (int y = 0; y < ds.h; ++y)
      for (int x = 0; x < ds.w; ++x) {
        const int sx = flip ? ds.w - 1 - x : x;
        const std::uint8_t* px = img + (std::size_t(y) * std::size_t(ds.w) + std::size_t(sx)) * std::size_t(ds.c);
        for (int k = 0; k < ds.c; ++k)
          o[std::size_t(k) * plane + std::size_t(y) * std::size_t(ds.w) + std::size_t(x)] = to_unit_range(px[k]);
      }
  }
}

/// A float batch: images [B, c, h, w] in [-1, 1] and their labels.
struct Batch {
  Tensor<float> images;
  std::vector<int> labels;
  std::vector<std::int64_t> indices;  ///< dataset indices, in batch order
};

inline Batch make_batch(const ImageDataset& ds, std::span<const std::int64_t> idx, const Augment& aug = {}) {
  Batch b;
  b.images = Tensor<float>(Shape{std::int64_t(idx.size()), ds.c, ds.h, ds.w});
  to_float_nchw(ds, idx, b.images.data(), aug);
  b.labels.reserve(idx.size());
  for (auto i : idx) b.labels.push_back(ds.labels[std::size_t(i)]);
  b.indices.assign(idx.begin(), idx.end());
  return b;
}

}  // namespace redi::data
