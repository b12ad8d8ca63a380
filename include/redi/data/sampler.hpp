// redi/data/sampler.hpp — a deterministic, resumable batch sampler. Epoch e's order is a
// Fisher-Yates permutation driven by Philox keyed by (seed, e), so it is the same on every
// machine and after every resume; the sampler's whole state is its Position (epoch, index),
// which a trainer stores in its checkpoint and hands back to seek().
#pragma once
#include <algorithm>
#include <cstdint>
#include <numeric>
#include <span>
#include <vector>

#include "redi/core/error.hpp"
#include "redi/core/philox.hpp"

namespace redi::data {

inline constexpr std::uint64_t kShuffleSalt = 0x73687566666c6521ull;  // "shuffle!"

/// The order of [0, n) in `epoch`: identity when !shuffle, else a permutation that depends only
/// on (n, seed, epoch). Fisher-Yates from the top; the swap partner of position i is
/// floor(r * (i + 1) / 2^64) with r a 64-bit Philox word pair keyed by (seed, epoch, i).
inline std::vector<std::int64_t> epoch_permutation(std::int64_t n, std::uint64_t seed, std::uint64_t epoch,
                                                   bool shuffle = true) {
  REDI_CHECK(n >= 0, "epoch_permutation: negative size ", n);
  std::vector<std::int64_t> p(static_cast<std::size_t>(n));
  std::iota(p.begin(), p.end(), std::int64_t(0));
  if (!shuffle) return p;
  for (std::int64_t i = n - 1; i > 0; --i) {
    const philox::U4 w = philox::block(seed ^ kShuffleSalt, epoch, std::uint64_t(i));
    const std::uint64_t r = (std::uint64_t(w.x) << 32) | w.y;
    const auto j = std::int64_t((static_cast<unsigned __int128>(r) * std::uint64_t(i + 1)) >> 64);
    std::swap(p[std::size_t(i)], p[std::size_t(j)]);
  }
  return p;
}

/// A fixed random subset of [0, n): the first `take` entries of epoch_permutation(n, seed, 0),
/// sorted (all of [0, n) when take <= 0 or take >= n). Used for evaluation subsets, the PCA
/// fitting set and reference sets that must be the same on every run.
inline std::vector<std::int64_t> random_subset(std::int64_t n, std::int64_t take, std::uint64_t seed) {
  if (take <= 0 || take >= n) {
    std::vector<std::int64_t> all(static_cast<std::size_t>(n));
    std::iota(all.begin(), all.end(), std::int64_t(0));
    return all;
  }
  auto p = epoch_permutation(n, seed, 0);
  p.resize(std::size_t(take));
  std::sort(p.begin(), p.end());
  return p;
}

class BatchSampler {
public:
  /// Where the sampler stands: `index` samples of epoch `epoch`'s order have been handed out.
  struct Position {
    std::uint64_t epoch = 0;
    std::uint64_t index = 0;
    friend bool operator==(const Position&, const Position&) = default;
  };
  /// One batch: dataset indices, and the epoch and in-epoch offset it was drawn at (use the
  /// epoch to key augmentation, e.g. Augment{.flip = true, .seed = s, .epoch = b.epoch}).
  struct Draw {
    std::vector<std::int64_t> indices;
    std::uint64_t epoch = 0;
    std::uint64_t first = 0;
  };

  /// `n` samples in batches of `batch_size`. drop_last: an epoch's tail shorter than a batch is
  /// skipped (every batch is full); otherwise the last batch of an epoch is shorter.
  BatchSampler(std::int64_t n, std::int64_t batch_size, std::uint64_t seed, bool shuffle = true,
               bool drop_last = true)
      : n_(n), batch_(batch_size), seed_(seed), shuffle_(shuffle), drop_last_(drop_last) {
    REDI_CHECK(n > 0, "BatchSampler: empty dataset");
    REDI_CHECK(batch_size > 0, "BatchSampler: batch size ", batch_size);
    REDI_CHECK(!drop_last || batch_size <= n, "BatchSampler: batch size ", batch_size, " > dataset size ", n,
               " with drop_last (an epoch would have no batch)");
    seek({0, 0});
  }

  std::int64_t size() const { return n_; }
  std::int64_t batch_size() const { return batch_; }
  std::uint64_t seed() const { return seed_; }
  std::int64_t batches_per_epoch() const { return drop_last_ ? n_ / batch_ : (n_ + batch_ - 1) / batch_; }
  /// Samples of an epoch that are handed out (n, or n rounded down to whole batches).
  std::int64_t samples_per_epoch() const { return drop_last_ ? n_ / batch_ * batch_ : n_; }

  Position position() const { return pos_; }
  /// The current epoch's order.
  const std::vector<std::int64_t>& order() const { return order_; }

  /// Continue from `p` (as returned by position()). An index at or past the epoch's end moves
  /// to the start of the next epoch.
  void seek(Position p) {
    REDI_CHECK(p.index <= std::uint64_t(n_), "BatchSampler::seek: index ", p.index, " > dataset size ", n_);
    if (p.index >= std::uint64_t(samples_per_epoch())) p = {p.epoch + 1, 0};
    if (order_.empty() || p.epoch != pos_.epoch) order_ = epoch_permutation(n_, seed_, p.epoch, shuffle_);
    pos_ = p;
  }

  /// The next batch. After an epoch's last batch the position moves to (epoch + 1, 0).
  Draw next() {
    Draw d;
    d.epoch = pos_.epoch;
    d.first = pos_.index;
    const std::uint64_t end = std::min<std::uint64_t>(pos_.index + std::uint64_t(batch_), std::uint64_t(n_));
    d.indices.assign(order_.begin() + std::ptrdiff_t(pos_.index), order_.begin() + std::ptrdiff_t(end));
    seek({pos_.epoch, end});
    return d;
  }

private:
  std::int64_t n_, batch_;
  std::uint64_t seed_;
  bool shuffle_, drop_last_;
  Position pos_;
  std::vector<std::int64_t> order_;
};

}  // namespace redi::data
