// redi/train/distributed_sampling.hpp — splitting a sampling (or feature-extraction) job over
// the ranks of a dist::Communicator by global row index, and merging the results on rank 0.
//
// A job of n rows drawn `batch` rows at a time is the list of blocks [k batch, min(n, (k+1) batch)).
// Rank r takes the contiguous share dist::share(blocks, r, W) of the blocks, so every block is
// drawn with exactly the request a one-process run makes (same rows, same global indices, same
// labels): with the Philox keys of a row depending only on (seed, global index), the merged
// result is the one-process result bit for bit, whatever the world size. gather_rows() merges
// in rank order, which is global order.
//
//   auto s = redi::train::sample_images_distributed(comm, mc, labels, seed, draw, /*batch=*/100);
//   if (comm.rank() == 0) redi::train::write_samples(dir, s);   // rank 0 holds all n rows
#pragma once
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <ostream>
#include <string>
#include <type_traits>
#include <vector>

#include "redi/core/error.hpp"
#include "redi/dist/communicator.hpp"
#include "redi/train/samples.hpp"

namespace redi::train {

/// The rows [begin, end) of a job of `n` rows in blocks of `batch` that `rank` of `world` draws.
/// begin is a multiple of batch.
inline dist::Range block_rows(std::int64_t n, std::int64_t batch, int rank, int world) {
  REDI_CHECK(batch > 0 && n >= 0, "block_rows: n ", n, ", batch ", batch);
  const dist::Range blocks = dist::share((n + batch - 1) / batch, rank, world);
  return {std::min(n, blocks.begin * batch), std::min(n, blocks.end * batch)};
}

/// Rank 0 receives every rank's `rows` [n_rows, row_elems] concatenated in rank order; the
/// other ranks get an empty vector. Collective.
template <class T>
std::vector<T> gather_rows(dist::Communicator& c, const T* rows, std::int64_t n_rows, std::size_t row_elems) {
  static_assert(std::is_trivially_copyable_v<T>, "gather_rows: T must be trivially copyable");
  const std::vector<std::byte> b = c.gather(rows, std::size_t(n_rows) * row_elems * sizeof(T));
  REDI_CHECK(b.size() % (row_elems * sizeof(T)) == 0, "gather_rows: ", b.size(), " bytes are not whole rows of ",
             row_elems, " elements");
  std::vector<T> out(b.size() / sizeof(T));
  if (!b.empty()) std::memcpy(out.data(), b.data(), b.size());
  return out;
}

/// sample_images (redi/train/samples.hpp) over the ranks: each rank draws its blocks of
/// `batch` rows, rank 0 returns all labels.size() samples (bit-identical to sample_images with
/// the same batch), the other ranks return their own rows only (n = their count). Collective.
template <class Draw>
SampleImages sample_images_distributed(dist::Communicator& c, const ModelConfig& mc, std::vector<int> labels,
                                       std::uint64_t seed, Draw&& draw, int batch = 100,
                                       std::ostream* progress = nullptr, const std::string& tag = "[redi]") {
  REDI_CHECK(batch > 0, "sample_images_distributed: batch ", batch);
  const std::int64_t n = std::int64_t(labels.size());
  const dist::Range mine = block_rows(n, batch, c.rank(), c.size());
  const std::size_t img = std::size_t(mc.image_channels) * mc.input_size * mc.input_size;
  const std::size_t per = std::size_t(mc.input_elems());  // one packed sample [x | z]
  std::vector<float> part(std::size_t(mine.size()) * img), buf;
  const auto t0 = std::chrono::steady_clock::now();
  for (std::int64_t b0 = mine.begin; b0 < mine.end; b0 += batch) {
    SampleRequest req;  // exactly sample_images' request for this block
    req.B = int(std::min<std::int64_t>(batch, n - b0));
    req.labels = labels.data() + b0;
    req.seed = seed;
    req.first_index = std::uint64_t(b0);
    buf.resize(std::size_t(req.B) * per);
    draw(buf.data(), req);
    for (int i = 0; i < req.B; ++i)
      std::copy_n(buf.data() + std::size_t(i) * per, img, part.data() + std::size_t(b0 - mine.begin + i) * img);
    if (progress && c.rank() == 0) {
      const std::int64_t done = b0 + req.B - mine.begin;
      const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      *progress << tag << " sampled " << done << "/" << mine.size() << " on rank 0 (" << n << " over " << c.size()
                << " ranks)  " << format_duration(el) << std::endl;
    }
  }
  SampleImages s;
  s.c = mc.image_channels;
  s.h = s.w = mc.input_size;
  if (c.size() == 1) {
    s.n = int(n);
    s.x = std::move(part);
    s.labels = std::move(labels);
    return s;
  }
  std::vector<float> all = gather_rows(c, part.data(), mine.size(), img);
  if (c.rank() == 0) {
    REDI_CHECK(all.size() == std::size_t(n) * img, "sample_images_distributed: merged ", all.size() / img,
               " rows, expected ", n);
    s.n = int(n);
    s.x = std::move(all);
    s.labels = std::move(labels);
  } else {
    s.n = int(mine.size());
    s.x = std::move(part);
    s.labels.assign(labels.begin() + mine.begin, labels.begin() + mine.end);
  }
  return s;
}

}  // namespace redi::train
