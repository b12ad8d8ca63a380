// Tests for redi/dist/communicator.hpp, train/data_parallel.hpp and
// train/distributed_sampling.hpp that need no MPI (the multi-rank runs: tests/mpi/):
//   - dist::share and block_rows tile [0, n) in rank order (every n, W, batch up to small sizes);
//   - the data-parallel identity the trainer relies on, on one process: the gradient of a global
//     batch equals the mean of its slices' gradients when each slice is keyed by its global
//     first index (and differs when a slice is keyed from 0, which is what the keying prevents);
//   - DataParallel::reduce_stats is the global batch's mean, the single communicator is an
//     identity, a batch that is not a multiple of the ranks is refused.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "redi/ops/cpu_backend.hpp"
#include "redi/redi_model.hpp"
#include "redi/train/data_parallel.hpp"
#include "redi/train/distributed_sampling.hpp"
#include "toy_data.hpp"

using namespace redi;

namespace {

TEST(DistShare, TilesTheRangeInRankOrder) {
  for (int W = 1; W <= 5; ++W)
    for (std::int64_t n = 0; n <= 23; ++n) {
      std::int64_t next = 0, lo = n, hi = 0;
      for (int r = 0; r < W; ++r) {
        const dist::Range s = dist::share(n, r, W);
        EXPECT_EQ(s.begin, next) << n << " over " << W;
        next = s.end;
        lo = std::min(lo, s.size());
        hi = std::max(hi, s.size());
      }
      EXPECT_EQ(next, n);
      EXPECT_LE(hi - lo, 1);
    }
  EXPECT_THROW(dist::share(4, 2, 2), Error);
}

TEST(DistShare, BlockRowsAreWholeBlocks) {
  for (int W = 1; W <= 4; ++W)
    for (std::int64_t batch = 1; batch <= 5; ++batch)
      for (std::int64_t n = 0; n <= 17; ++n) {
        std::int64_t next = 0;
        for (int r = 0; r < W; ++r) {
          const dist::Range s = train::block_rows(n, batch, r, W);
          EXPECT_EQ(s.begin, next);
          EXPECT_TRUE(s.begin % batch == 0 || s.begin == n);
          next = s.end;
        }
        EXPECT_EQ(next, n);
      }
}

using M = ReDi<SiT, Merged, FlowMatching, double>;

M::Options opts() {
  M::Options o;
  o.model.input_size = 8; o.model.patch = 2; o.model.image_channels = 1; o.model.feature_channels = 2;
  o.model.depth = 2; o.model.width = 32; o.model.heads = 2; o.model.num_classes = 4;
  o.loss.p_drop = 0.5;
  o.loss.rep_drop = RepDrop::PerSample;
  o.loss.label_drop_prob = 0.3;
  o.train.seed = 9;
  o.init_seed = 4;
  return o;
}

/// The gradient buffer after backprop over rows [b0, b0 + n) of `d`, keyed from `first`.
std::vector<double> slice_grad(M& m, const test::ToyData& d, int b0, int n, std::uint64_t first, M::loss_type::Stats* st) {
  const ModelConfig& c = m.net().config();
  const std::size_t xs = std::size_t(c.image_channels) * 64, zs = std::size_t(c.feature_channels) * 64;
  std::vector<double> x(d.x.begin() + std::ptrdiff_t(b0 * xs), d.x.begin() + std::ptrdiff_t((b0 + n) * xs));
  std::vector<double> z(d.z.begin() + std::ptrdiff_t(b0 * zs), d.z.begin() + std::ptrdiff_t((b0 + n) * zs));
  const auto s = m.backprop(m.batch(x.data(), z.data(), d.y.data() + b0, n, first));
  if (st) *st = s;
  return std::as_const(m.net()).grads().to_host();
}

TEST(DataParallel, SliceGradientsAverageToTheGlobalBatchGradient) {
  M m(opts());
  const test::ToyData d(m.net().config(), 8, 3);
  M::loss_type::Stats all, s0, s1, wrong;
  const auto g = slice_grad(m, d, 0, 8, 0, &all);
  const auto g0 = slice_grad(m, d, 0, 4, 0, &s0);
  const auto g1 = slice_grad(m, d, 4, 4, 4, &s1);
  double err = 0, mx = 0;
  for (std::size_t i = 0; i < g.size(); ++i) {
    err = std::max(err, std::abs(0.5 * (g0[i] + g1[i]) - g[i]));
    mx = std::max(mx, std::abs(g[i]));
  }
  EXPECT_LE(err, 1e-12 * mx);
  EXPECT_EQ(s0.rep_dropped + s1.rep_dropped, all.rep_dropped);
  EXPECT_EQ(s0.labels_dropped + s1.labels_dropped, all.labels_dropped);
  EXPECT_NEAR(0.5 * (s0.loss + s1.loss), all.loss, 1e-12 * all.loss);
  // keyed by position in the slice instead (first index 0): other noise, another gradient
  const auto gw = slice_grad(m, d, 4, 4, 0, &wrong);
  double diff = 0;
  for (std::size_t i = 0; i < g.size(); ++i) diff = std::max(diff, std::abs(0.5 * (g0[i] + gw[i]) - g[i]));
  EXPECT_GT(diff, 1e-3 * mx);
}

TEST(DataParallel, ReduceStatsAndSingleCommunicator) {
  train::DataParallel dp;  // one process
  EXPECT_FALSE(dp.distributed());
  EXPECT_TRUE(dp.root());
  EXPECT_EQ(dp.slice(6).size(), 6);
  M::loss_type::Stats s;
  s.loss = 0.5; s.mse_x = 0.25; s.rep_dropped = 2;
  const auto r = dp.reduce_stats(s, 6);
  EXPECT_EQ(r.loss, 0.5);
  EXPECT_EQ(r.rep_dropped, 2);
  dist::Single& c = dist::single();
  std::vector<float> f = {1.5f, -2.f};
  c.allreduce_mean(f.data(), f.size());
  EXPECT_EQ(f, (std::vector<float>{1.5f, -2.f}));
  EXPECT_EQ(dist::broadcast_value(c, 7), 7);
  const std::vector<int> rows = {1, 2, 3};
  EXPECT_EQ(train::gather_rows(c, rows.data(), 3, 1), rows);
  EXPECT_NO_THROW(dist::check_same_on_all_ranks(c, "a", "x"));
}

TEST(DistSample, SingleRankEqualsSampleImages) {
  M m(opts());
  std::vector<double> w = std::as_const(m.net()).params().to_host();
  for (std::size_t i = 0; i < w.size(); ++i) w[i] += 0.01 * std::sin(double(i));  // non-trivial outputs
  m.ema().params().from_host(w);
  std::vector<int> labels = {0, 1, 2, 3, 0, 1, 2};
  std::vector<double> buf;
  auto draw = [&](float* out, const SampleRequest& req) {
    buf.resize(std::size_t(req.B) * std::size_t(m.net().config().input_elems()));
    m.sample<OdeEuler>(buf.data(), req, {.num_steps = 3});
    for (std::size_t i = 0; i < buf.size(); ++i) out[i] = float(buf[i]);
  };
  const auto a = train::sample_images(m.net().config(), labels, 5, draw, 3);
  const auto b = train::sample_images_distributed(dist::single(), m.net().config(), labels, 5, draw, 3);
  ASSERT_EQ(a.x.size(), b.x.size());
  EXPECT_EQ(a.x, b.x);
  EXPECT_EQ(a.labels, b.labels);
}

}  // namespace
