// redi/data/splits.hpp — the train / validation / test protocol of redi's studies: a fixed
// validation split held out from a dataset's training file, so hyper-parameters are chosen on
// images that neither the generative model nor any encoder or judge was trained on, and the
// test file is used once, for the final numbers.
//
//   auto full = data::pad_to(data::load_fashion_mnist(data::Split::Train), 32);
//   auto [train, val] = data::holdout(full, data::kFashionMnistValidation);  // 55,000 / 5,000
//
// The held-out images are the LAST n of the training file (Fashion-MNIST's training file is in
// a fixed, class-shuffled order, so its last 5,000 hold ~500 of each class), which makes the
// split a pure function of the file: no seed to record, the same on every machine.
#pragma once
#include <cstdint>
#include <numeric>
#include <utility>
#include <vector>

#include "redi/core/error.hpp"
#include "redi/data/dataset.hpp"

namespace redi::data {

/// Images held out of Fashion-MNIST's 60,000 training images for validation.
inline constexpr std::int64_t kFashionMnistValidation = 5000;

struct HoldoutSplit {
  ImageDataset train;  ///< the first ds.n - n_val images
  ImageDataset val;    ///< the last n_val images
};

/// Splits `ds` into its first ds.n - n_val images (train) and its last n_val images (val).
inline HoldoutSplit holdout(const ImageDataset& ds, std::int64_t n_val) {
  REDI_CHECK(n_val > 0 && n_val < ds.n, ds.source, ": cannot hold out ", n_val, " of ", ds.n,
             " images for validation");
  std::vector<std::int64_t> tr(static_cast<std::size_t>(ds.n - n_val)), va(static_cast<std::size_t>(n_val));
  std::iota(tr.begin(), tr.end(), std::int64_t(0));
  std::iota(va.begin(), va.end(), ds.n - n_val);
  HoldoutSplit s{subset(ds, tr), subset(ds, va)};
  s.train.source = ds.source + " [train: first " + std::to_string(tr.size()) + "]";
  s.val.source = ds.source + " [validation: last " + std::to_string(va.size()) + "]";
  return s;
}

}  // namespace redi::data
