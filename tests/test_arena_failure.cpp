// An allocation failure while an activation arena grows must leave the model usable (the
// arena frees its old block before allocating the new one, so every pointer into it is stale
// after a failure): `LimitedHost` is a host device tag whose allocations above a settable
// limit throw. Checks: Workspace is empty after a failed reserve; a Transformer whose training
// arena fails to grow throws redi::Error, refuses backward() (its activations are gone), runs
// the previous batch again bit-identically (forward, backward, gradients), and grows once the
// memory is there; the same for the inference arena; a failure on the first carve leaves an
// empty model that works later.
#include <gtest/gtest.h>

#include <cstddef>
#include <utility>
#include <vector>

#include "io_test_util.hpp"
#include "redi/core/philox.hpp"
#include "redi/core/workspace.hpp"
#include "redi/nn/transformer.hpp"
#include "redi/ops/cpu_backend.hpp"

namespace limited {
/// Host memory whose allocations above `limit` bytes fail (redi::Error, as Cuda's out-of-memory).
struct LimitedHost : redi::Cpu {
  static constexpr const char* name = "limited-host";
  static inline std::size_t limit = std::size_t(-1);
  static void* allocate(std::size_t bytes) {
    REDI_CHECK(bytes <= limit, "limited-host: out of memory allocating ", bytes, " bytes (limit ", limit, ")");
    return redi::Cpu::allocate(bytes);
  }
};
}  // namespace limited

template <>
struct redi::Backend<limited::LimitedHost> : redi::Backend<redi::Cpu> {};

using namespace redi;
using limited::LimitedHost;

namespace {

struct Unlimit {
  ~Unlimit() { LimitedHost::limit = std::size_t(-1); }
};

ModelConfig tiny() {
  ModelConfig c;
  c.input_size = 8; c.patch = 2; c.image_channels = 2; c.feature_channels = 3;
  c.depth = 2; c.width = 32; c.heads = 2; c.num_classes = 4;
  return c;
}

using Net = Transformer<float, Merged, LimitedHost>;

struct Batch {
  std::vector<float> x, t, dout;
  std::vector<int> y;
  Batch(const ModelConfig& c, int B) {
    const std::size_t n = std::size_t(B) * c.channels_in() * c.input_size * c.input_size;
    x.resize(n);
    dout.resize(n);
    philox::fill_normal(x.data(), n, 1, 1);
    philox::fill_normal(dout.data(), n, 1, 2);
    for (int b = 0; b < B; ++b) {
      t.push_back(0.1f + 0.2f * float(b % 4));
      y.push_back(b % c.num_classes);
    }
  }
};

/// forward + backward at batch B; returns (output, gradients).
std::pair<std::vector<float>, std::vector<float>> step(Net& n, const Batch& d, int B) {
  std::vector<float> out(d.x.size());
  n.zero_grad();
  n.forward(d.x.data(), d.t.data(), d.y.data(), B, out.data());
  n.backward(d.dout.data());
  return {out, std::as_const(n).grads().to_host()};
}

}  // namespace

TEST(ArenaFailure, WorkspaceIsEmptyAfterAFailedReserve) {
  Unlimit guard;
  Workspace<LimitedHost> ws;
  ws.reserve(1024);
  EXPECT_EQ(ws.capacity(), 1024u);
  LimitedHost::limit = 2048;
  test::expect_error([&] { ws.reserve(4096); }, {"limited-host", "4096"});
  EXPECT_EQ(ws.capacity(), 0u);
  EXPECT_EQ(ws.allocations(), 1u);
  LimitedHost::limit = std::size_t(-1);
  ws.reserve(4096);
  EXPECT_EQ(ws.capacity(), 4096u);
}

TEST(ArenaFailure, TrainingArenaGrowthFailureLeavesTheModelUsable) {
  Unlimit guard;
  const ModelConfig c = tiny();
  Net n(c, LimitedHost{}, 3);
  const Batch small(c, 2), big(c, 6);
  const auto [out0, g0] = step(n, small, 2);
  const std::size_t bytes2 = n.train_arena_bytes();
  LimitedHost::limit = bytes2 + 1024;  // the batch-2 arena fits again; batch 6 does not
  std::vector<float> out(big.x.size());
  test::expect_error([&] { n.forward(big.x.data(), big.t.data(), big.y.data(), 6, out.data()); },
                     {"limited-host", "out of memory"});
  test::expect_error([&] { n.backward(small.dout.data()); }, {"forward"});  // its activations are gone
  EXPECT_EQ(n.train_arena_bytes(), bytes2) << "re-laid out for the previous batch";
  const auto [out1, g1] = step(n, small, 2);
  EXPECT_EQ(out1, out0);
  EXPECT_EQ(g1, g0);
  LimitedHost::limit = std::size_t(-1);
  step(n, big, 6);
  EXPECT_GT(n.train_arena_bytes(), bytes2);
  const auto [out2, g2] = step(n, small, 2);  // the grown arena serves batch 2 as before
  EXPECT_EQ(out2, out0);
  EXPECT_EQ(g2, g0);
}

TEST(ArenaFailure, FailureWithNoRoomForThePreviousBatchEmptiesTheArena) {
  Unlimit guard;
  const ModelConfig c = tiny();
  Net n(c, LimitedHost{}, 3);
  const Batch small(c, 2), big(c, 6);
  const auto [out0, g0] = step(n, small, 2);
  LimitedHost::limit = 256;  // nothing fits
  std::vector<float> out(big.x.size()), iout(small.x.size());
  test::expect_error([&] { n.forward(big.x.data(), big.t.data(), big.y.data(), 6, out.data()); }, {"limited-host"});
  EXPECT_EQ(n.train_arena_bytes(), 0u);
  test::expect_error([&] { n.backward(small.dout.data()); }, {"forward"});
  // inference arena: first carve fails, model unchanged
  test::expect_error([&] { n.infer(small.x.data(), small.t.data(), small.y.data(), 2, iout.data()); },
                     {"limited-host"});
  EXPECT_EQ(n.infer_arena_bytes(), 0u);
  LimitedHost::limit = std::size_t(-1);
  const auto [out1, g1] = step(n, small, 2);
  EXPECT_EQ(out1, out0);
  EXPECT_EQ(g1, g0);
  n.infer(small.x.data(), small.t.data(), small.y.data(), 2, iout.data());
  EXPECT_EQ(iout, out0) << "inference equals the training forward";
}

TEST(ArenaFailure, InferenceArenaGrowthFailureKeepsThePreviousBatch) {
  Unlimit guard;
  const ModelConfig c = tiny();
  Net n(c, LimitedHost{}, 3);
  const Batch small(c, 2), big(c, 6);
  std::vector<float> o0(small.x.size()), o1(small.x.size()), ob(big.x.size());
  n.infer(small.x.data(), small.t.data(), small.y.data(), 2, o0.data());
  LimitedHost::limit = n.infer_arena_bytes() + 1024;
  test::expect_error([&] { n.infer(big.x.data(), big.t.data(), big.y.data(), 6, ob.data()); }, {"limited-host"});
  n.infer(small.x.data(), small.t.data(), small.y.data(), 2, o1.data());
  EXPECT_EQ(o1, o0);
}
