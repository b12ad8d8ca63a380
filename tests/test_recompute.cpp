// Selective activation recomputation (nn/recompute.hpp): every policy gives the results of
// Recompute::None bit for bit, and shrinks the training arena by the documented amount.
//   - two chained DiT blocks (the second block's forward overwrites the shared recomputed set
//     before either backward runs), float and double: outputs, dL/dh_in, dL/dSiLU(c) and every
//     weight gradient equal to the None blocks';
//   - Transformer<float|double, Merged|Separate>: two forward/backward passes at different
//     batches, outputs and gradients equal; infer() and its arena untouched by the policy;
//     set_recompute between forward and backward cancels the backward;
//   - ReDi train_step (SiT flow, DiT learned sigma; float and double; and BF16Emulated on its
//     emulating device, where the residual type is separate from the compute type): losses,
//     gradient norms, weights and EMA equal after 3 steps;
//   - the training arena: arena(policy) = arena(None) - (depth - 1) * dropped(policy), dropped
//     summed from the block's buffer list with the arena's 256-byte rounding (the formula of
//     nn/recompute.hpp), for both fusions and depths 1 and 3;
//   - the SiT-XL/2 bf16 byte counts quoted in docs/cuda.md ("Memory"), from the real carve code
//     on a device tag without memory (the measuring pass of Workspace::carve);
//   - the policy names round-trip; a bad name is a redi::Error naming it.
#include <gtest/gtest.h>

#include <cstdint>
#include <utility>
#include <vector>

#include "io_test_util.hpp"
#include "redi/core/dtype.hpp"
#include "redi/core/philox.hpp"
#include "redi/core/workspace.hpp"
#include "redi/nn/dit_block.hpp"
#include "redi/nn/recompute.hpp"
#include "redi/nn/transformer.hpp"
#include "redi/ops/bf16_emulation.hpp"
#include "redi/ops/cpu_backend.hpp"
#include "redi/redi_model.hpp"
#include "toy_data.hpp"

namespace nomem {
/// A device without memory: every allocation fails, so Workspace::carve stops after its
/// measuring pass and high_water() is the layout's size in bytes.
struct NoMemory : redi::Cpu {
  static constexpr const char* name = "no-memory";
  static void* allocate(std::size_t bytes) { REDI_FAIL("no-memory: ", bytes, " bytes"); }
};
}  // namespace nomem

template <>
struct redi::Backend<nomem::NoMemory> : redi::Backend<redi::Cpu> {};

using namespace redi;

namespace {

constexpr Recompute kPolicies[] = {Recompute::Attention, Recompute::Mlp, Recompute::Block};

std::string label(Recompute r) { return std::string(recompute_name(r)); }

template <class T>
std::vector<T> normals(std::size_t n, std::uint64_t stream, double s = 1.0) {
  std::vector<T> v(n);
  philox::fill_normal(v.data(), n, 31, stream);
  for (auto& x : v) x = T(x * s);
  return v;
}

// ---- two chained blocks

template <class T>
struct TwoBlocks {
  BlockDims d{2, 5, 8, 2, 32};
  std::int64_t nw = 0;
  std::vector<std::int64_t> off;
  std::vector<T> W;  // both blocks' weights: block k at k * nw

  TwoBlocks() {
    const std::int64_t D = d.D, Dm = d.Dm;
    const std::int64_t sizes[10] = {3 * D * D, 3 * D, D * D, D, Dm * D, Dm, D * Dm, D, 6 * D * D, 6 * D};
    for (auto s : sizes) { off.push_back(nw); nw += s; }
    W = normals<T>(std::size_t(2 * nw), 1, 0.3);
  }
  template <class P, class Q>
  static auto ptrs(Q* base, const std::vector<std::int64_t>& o) {
    return P{base + o[0], base + o[1], base + o[2], base + o[3], base + o[4],
             base + o[5], base + o[6], base + o[7], base + o[8], base + o[9]};
  }

  struct Result {
    std::vector<T> out, dh, dsc, G;
  };

  /// forward block 0 -> block 1, backward block 1 -> block 0, under policy r.
  Result run(Recompute r) const {
    const std::int64_t N = d.N() * d.D, C = std::int64_t(d.B) * d.D;
    Workspace<> arena;
    BlockActs<T> acts[2], shared;
    BlockScratch<T> scratch;
    arena.carve([&](Workspace<>& w) {
      shared.carve_shared(w, d, false, r);
      for (auto& a : acts) a.carve(w, d, false, r, &shared);
      scratch.carve(w, d, false);
    });
    const std::vector<T> h = normals<T>(std::size_t(N), 2), sc = normals<T>(std::size_t(C), 3);
    Result res;
    res.out.resize(std::size_t(N));
    std::vector<T> mid(static_cast<std::size_t>(N));
    block_forward(cpu, d, ptrs<BlockWeights<T>>(W.data(), off), sc.data(), acts[0], h.data(), mid.data());
    block_forward(cpu, d, ptrs<BlockWeights<T>>(W.data() + nw, off), sc.data(), acts[1], mid.data(),
                  res.out.data());
    res.G.assign(W.size(), T(0));
    res.dh = normals<T>(std::size_t(N), 4);
    res.dsc.assign(std::size_t(C), T(0));
    for (int k = 1; k >= 0; --k)
      block_backward(cpu, d, ptrs<BlockWeights<T>>(W.data() + k * nw, off),
                     ptrs<BlockGrads<T>>(res.G.data() + k * nw, off), acts[k], sc.data(), res.dh.data(),
                     res.dsc.data(), scratch);
    return res;
  }
};

template <class T>
void check_two_blocks() {
  TwoBlocks<T> f;
  const auto ref = f.run(Recompute::None);
  for (Recompute r : kPolicies) {
    const auto got = f.run(r);
    EXPECT_EQ(got.out, ref.out) << label(r);
    EXPECT_EQ(got.dh, ref.dh) << label(r) << ": dL/dh_in";
    EXPECT_EQ(got.dsc, ref.dsc) << label(r) << ": dL/dSiLU(c)";
    EXPECT_EQ(got.G, ref.G) << label(r) << ": weight gradients";
  }
}

// ---- the transformer

ModelConfig tiny(int depth = 3) {
  ModelConfig c;
  c.input_size = 8; c.patch = 2; c.image_channels = 2; c.feature_channels = 3;
  c.depth = depth; c.width = 16; c.heads = 2; c.num_classes = 3;
  return c;
}

template <class T, class F>
struct NetRun {
  std::vector<T> out1, out2, grads;
  std::size_t train_bytes = 0, infer_bytes = 0;
};

/// Two forward/backward passes (batch 3, then 2 from the same arena) and one infer().
template <class T, class F>
NetRun<T, F> run_net(Recompute r) {
  Transformer<T, F> m(tiny(), Cpu{}, 4);
  m.layout().randomize(m.params().data(), 5, 0.3);  // non-zero gates and output layer
  m.set_recompute(r);
  EXPECT_EQ(m.recompute(), r);
  const std::size_t nin = std::size_t(m.config().input_elems());
  NetRun<T, F> res;
  for (int B : {3, 2}) {
    const auto x = normals<T>(B * nin, 10 + B), dout = normals<T>(B * nin, 20 + B);
    const std::vector<T> t = {T(0.1), T(0.5), T(0.9)};
    const std::vector<int> y = {0, 3, 1};  // 3: the null class
    std::vector<T> out(B * nin);
    m.forward(x.data(), t.data(), y.data(), B, out.data());
    m.backward(dout.data());
    (B == 3 ? res.out1 : res.out2) = out;
    if (B == 3) {  // infer() of the same batch between the two steps
      std::vector<T> oi(out.size());
      m.infer(x.data(), t.data(), y.data(), B, oi.data());
      EXPECT_EQ(oi, out) << label(r) << ": infer() equals forward()";
    }
  }
  res.grads = m.grads().to_host();  // the sum of both passes' gradients
  res.train_bytes = m.train_arena_bytes();
  res.infer_bytes = m.infer_arena_bytes();
  EXPECT_EQ(m.arena_allocations(), 2u) << "one training arena, one inference arena";
  return res;
}

template <class T, class F>
void check_net() {
  const auto ref = run_net<T, F>(Recompute::None);
  for (Recompute r : kPolicies) {
    const auto got = run_net<T, F>(r);
    EXPECT_EQ(got.out1, ref.out1) << label(r);
    EXPECT_EQ(got.out2, ref.out2) << label(r);
    EXPECT_EQ(got.grads, ref.grads) << label(r) << ": gradients";
    EXPECT_LT(got.train_bytes, ref.train_bytes) << label(r);
    EXPECT_EQ(got.infer_bytes, ref.infer_bytes) << label(r) << ": inference keeps nothing anyway";
  }
}

// ---- the arena formula

std::size_t rounded(std::int64_t elems, std::size_t size) {
  return Workspace<>::align(std::size_t(elems) * size);
}

/// Bytes of the buffers policy r does not keep per block (nn/recompute.hpp), from the block's
/// buffer list: attention ln1, m1, qkv, probs (or lse with flash), ao, a, mean1, rstd1; h_mid;
/// MLP ln2, m2, f1, g, f2, mean2, rstd2. T activations, S statistics, R the residual stream.
template <class T, class S, class R>
std::size_t dropped(Recompute r, const BlockDims& d, bool flash) {
  const std::int64_t N = d.N(), ND = N * d.D;
  const std::size_t t = sizeof(T), s = sizeof(S);
  const std::size_t attention = 4 * rounded(ND, t) + rounded(3 * ND, t) + 2 * rounded(N, s) +
                                (flash ? rounded(std::int64_t(d.B) * d.H * d.S, s)
                                       : rounded(std::int64_t(d.B) * d.H * d.S * d.S, t));
  const std::size_t mlp = 3 * rounded(ND, t) + 2 * rounded(N * d.Dm, t) + 2 * rounded(N, s);
  const std::size_t mid = rounded(ND, sizeof(R));
  return (recomputes_attention(r) ? attention : 0) + (recomputes_mlp(r) ? mlp : 0) + (recomputes_mid(r) ? mid : 0);
}

template <class F>
void check_arena_formula(int depth) {
  const ModelConfig c = tiny(depth);
  const int B = 3;
  const BlockDims d{B, c.tokens() * F::sequence_factor, c.width, c.heads, c.width * c.mlp_ratio};
  const std::size_t nin = std::size_t(c.input_elems());
  const auto x = normals<float>(B * nin, 1);
  const std::vector<float> t = {0.2f, 0.4f, 0.6f};
  const std::vector<int> y = {0, 1, 2};
  auto bytes = [&](Recompute r) {
    using Net = Transformer<float, F>;
    Net m(c, Cpu{}, typename Net::Uninitialized{});
    m.set_recompute(r);
    std::vector<float> out(B * nin);
    m.forward(x.data(), t.data(), y.data(), B, out.data());
    return m.train_arena_bytes();
  };
  const std::size_t none = bytes(Recompute::None);
  for (Recompute r : kPolicies) {
    const std::size_t want = none - std::size_t(depth - 1) * dropped<float, float, float>(r, d, false);
    EXPECT_EQ(bytes(r), want) << F::name << " depth " << depth << " " << label(r);
  }
}

// ---- ReDi training steps

template <class M>
struct StepRun {
  std::vector<double> numbers;  // loss, mse_x, mse_z, grad norm per step
  std::vector<float> params, ema;
};

template <class M>
StepRun<M> run_steps(Recompute r, bool learn_sigma, const typename M::device_type& ctx = {}) {
  typename M::Options o;
  o.model = tiny(3);
  o.model.learn_sigma = learn_sigma;
  o.init_seed = 2;
  o.train.adamw.lr = 1e-3;
  o.train.ema_decay = 0.9;
  o.train.grad_clip = 0.5;
  o.train.seed = 6;
  o.loss.p_drop = 0.3;
  M m(o, ctx);
  m.net().set_recompute(r);
  using T = typename M::value_type;
  const test::ToyData data(o.model, 4, 3);
  const std::vector<T> x(data.x.begin(), data.x.end()), z(data.z.begin(), data.z.end());
  StepRun<M> res;
  for (int k = 0; k < 3; ++k) {
    const auto st = m.train_step(x.data(), z.data(), data.y.data(), 4, std::uint64_t(k) * 4);
    res.numbers.insert(res.numbers.end(), {st.loss.loss, st.loss.mse_x, st.loss.mse_z, st.grad_norm});
  }
  for (auto v : std::as_const(m.net()).params().to_host()) res.params.push_back(float(v));
  for (auto v : std::as_const(m.ema()).params().to_host()) res.ema.push_back(float(v));
  return res;
}

template <class M>
void check_steps(bool learn_sigma, const typename M::device_type& ctx = {}) {
  const auto ref = run_steps<M>(Recompute::None, learn_sigma, ctx);
  for (Recompute r : kPolicies) {
    const auto got = run_steps<M>(r, learn_sigma, ctx);
    EXPECT_EQ(got.numbers, ref.numbers) << label(r) << ": losses and gradient norms";
    EXPECT_EQ(got.params, ref.params) << label(r) << ": weights";
    EXPECT_EQ(got.ema, ref.ema) << label(r) << ": EMA";
  }
}

}  // namespace

TEST(Recompute, TwoBlocksMatchNoRecomputationFloat) { check_two_blocks<float>(); }
TEST(Recompute, TwoBlocksMatchNoRecomputationDouble) { check_two_blocks<double>(); }

TEST(Recompute, TransformerMatchesNoRecomputationMergedFloat) { check_net<float, Merged>(); }
TEST(Recompute, TransformerMatchesNoRecomputationMergedDouble) { check_net<double, Merged>(); }
TEST(Recompute, TransformerMatchesNoRecomputationSeparateFloat) { check_net<float, Separate>(); }
TEST(Recompute, TransformerMatchesNoRecomputationSeparateDouble) { check_net<double, Separate>(); }

TEST(Recompute, TrainStepsMatchNoRecomputationSiTFloat) {
  check_steps<ReDi<SiT, Merged, FlowMatching, float, Cpu>>(false);
}
TEST(Recompute, TrainStepsMatchNoRecomputationSiTDouble) {
  check_steps<ReDi<SiT, Merged, FlowMatching, double, Cpu>>(false);
}
TEST(Recompute, TrainStepsMatchNoRecomputationDiTLearnedSigma) {
  check_steps<ReDi<DiT, Separate, DDPM, float, Cpu>>(true);
}
TEST(Recompute, TrainStepsMatchNoRecomputationBf16Emulated) {
  // BF16Mixed's code paths on the CPU: fp32 residual stream apart from the (rounded) compute type
  check_steps<ReDi<SiT, Merged, FlowMatching, BF16Emulated, Bf16Emulator<>>>(false);
}

TEST(Recompute, ArenaShrinksByDepthMinusOneDroppedSets) {
  check_arena_formula<Merged>(3);
  check_arena_formula<Separate>(3);
  check_arena_formula<Merged>(1);  // one block: the shared set is the block's own, no saving
}

TEST(Recompute, SetRecomputeCancelsAPendingBackward) {
  Transformer<float, Merged> m(tiny(), Cpu{}, 1);
  const std::size_t nin = std::size_t(m.config().input_elems());
  const auto x = normals<float>(2 * nin, 1);
  const std::vector<float> t = {0.3f, 0.7f};
  const std::vector<int> y = {0, 1};
  std::vector<float> out(2 * nin);
  m.forward(x.data(), t.data(), y.data(), 2, out.data());
  m.set_recompute(Recompute::None);  // unchanged: the backward stays valid
  m.backward(out.data());
  m.set_recompute(Recompute::Block);
  test::expect_error([&] { m.backward(out.data()); }, {"forward() first"});
  m.forward(x.data(), t.data(), y.data(), 2, out.data());
  m.backward(out.data());
}

TEST(Recompute, NamesRoundTripAndBadNamesAreErrors) {
  for (Recompute r : {Recompute::None, Recompute::Attention, Recompute::Mlp, Recompute::Block})
    EXPECT_EQ(parse_recompute(recompute_name(r)), r);
  test::expect_error([] { (void)parse_recompute("mlps"); }, {"'mlps'", "none, attention, mlp, block"});
}

// The figures of docs/cuda.md "Memory": SiT-XL/2 ReDi (Merged: 256 tokens), width 1152, 16
// heads, MLP 4608, depth 28, batch 256, BF16Mixed (bf16 activations, fp32 statistics and
// residual stream) with the fused attention (lse instead of probs). Measured from the carve
// code itself: the training arena's block part is depth * kept + shared.
TEST(Recompute, SiTXL2Bf16BlockActivationBytes) {
  using Acts = BlockActs<bf16, float, float>;
  const BlockDims d{256, 256, 1152, 16, 4608};
  const int depth = 28;
  auto measure = [&](auto&& layout) {
    Workspace<nomem::NoMemory> w;
    EXPECT_THROW(w.carve(layout), Error);
    return w.high_water();
  };
  std::size_t block_part[4] = {};
  for (Recompute r : {Recompute::None, Recompute::Attention, Recompute::Mlp, Recompute::Block}) {
    block_part[int(r)] = measure([&](Workspace<nomem::NoMemory>& w) {
      Acts shared, blk;
      shared.carve_shared(w, d, /*flash=*/true, r);
      for (int i = 0; i < depth; ++i) blk.carve(w, d, true, r, &shared);
    });
  }
  // per block and sample (bytes): mod 13,824; h_in and h_mid 1,179,648 each (fp32); the
  // attention branch 7 x 589,824 (bf16 [S, D]) + lse 16,384 + stats 2,048 = 4,147,200; the MLP
  // branch 3 x 589,824 + 2 x 2,359,296 (f1, g) + stats 2,048 = 6,490,112. Sum 13,010,432.
  const std::size_t B = 256, L = depth;
  const std::size_t base = B * (13'824 + 1'179'648), mid = B * 1'179'648, att = B * 4'147'200, mlp = B * 6'490'112;
  EXPECT_EQ(block_part[0], L * (base + att + mid + mlp));            // 93.26e9 B
  EXPECT_EQ(block_part[1], L * (base + mid + mlp) + att);            // 64.59e9 B
  EXPECT_EQ(block_part[2], L * (base + att + mid) + mlp);            // 48.40e9 B
  EXPECT_EQ(block_part[3], L * base + att + mid + mlp);              // 11.58e9 B
  EXPECT_EQ(block_part[0], 93'258'776'576u);
  EXPECT_EQ(block_part[1], 64'593'330'176u);
  EXPECT_EQ(block_part[2], 48'399'122'432u);
  EXPECT_EQ(block_part[3], 11'579'949'056u);
  // the backward scratch shared by all blocks: d_big2, dqkv, d_small, dtmp (bf16), dmod, dsc_tmp
  // (no d_big1 since the fused MLP backward, no fp32 dres since LayerNorm's backward accumulates)
  const std::size_t scratch = measure([&](Workspace<nomem::NoMemory>& w) {
    BlockScratch<bf16, float> s;
    s.carve(w, d, /*flash=*/true);
  });
  EXPECT_EQ(scratch, B * (2'359'296 + 3 * 589'824 + 2 * 589'824) + B * 6 * 1152 * 2 + B * 1152 * 2);
}
