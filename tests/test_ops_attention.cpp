// Tests for the multi-head self-attention core (both parallelisation strategies).
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "gradcheck.hpp"
#include "redi/ops/attention.hpp"
#include "redi/ops/cpu_backend.hpp"

using namespace redi;
using namespace redi::test;
using ops::AttentionStrategy;

namespace {

// Naive reference written from the definition, in double.
void naive_attention(std::vector<double>& out, std::vector<double>& probs,
                     const std::vector<double>& qkv, int B, int L, int H, int hd) {
  const int D = H * hd;
  out.assign(std::size_t(B) * L * D, 0.0);
  probs.assign(std::size_t(B) * H * L * L, 0.0);
  auto at = [&](int b, int l, int part, int h, int d) {
    return qkv[(std::size_t(b) * L + l) * 3 * D + part * D + h * hd + d];
  };
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < H; ++h)
      for (int i = 0; i < L; ++i) {
        std::vector<double> s(L);
        double mx = -1e300;
        for (int j = 0; j < L; ++j) {
          double dot = 0;
          for (int d = 0; d < hd; ++d) dot += at(b, i, 0, h, d) * at(b, j, 1, h, d);
          s[j] = dot / std::sqrt(double(hd));
          mx = std::max(mx, s[j]);
        }
        double z = 0;
        for (int j = 0; j < L; ++j) z += (s[j] = std::exp(s[j] - mx));
        for (int j = 0; j < L; ++j) {
          const double p = s[j] / z;
          probs[((std::size_t(b) * H + h) * L + i) * L + j] = p;
          for (int d = 0; d < hd; ++d)
            out[(std::size_t(b) * L + i) * D + h * hd + d] += p * at(b, j, 2, h, d);
        }
      }
}

const AttentionStrategy kStrategies[] = {AttentionStrategy::Heads, AttentionStrategy::Blas,
                                         AttentionStrategy::Auto};

// The CPU has no fused flash attention: device-generic code (nn/dit_block.hpp) keeps the
// exact-contract op (probs saved) there; only redi::Cuda + bf16 has one (attention_cudnn.cuh).
static_assert(!has_flash_attention<Cpu, float>);
static_assert(!has_flash_attention<Cpu, double>);

}  // namespace

TEST(Attention, ForwardMatchesNaive) {
  const int B = 2, L = 5, H = 3, hd = 4, D = H * hd;
  auto qkv = uniform<double>(std::int64_t(B) * L * 3 * D, 1, -2, 2);
  std::vector<double> ref_out, ref_probs;
  naive_attention(ref_out, ref_probs, qkv, B, L, H, hd);
  for (auto s : kStrategies) {
    std::vector<double> out(ref_out.size(), std::nan("")), probs(ref_probs.size(), std::nan(""));
    ops::attention_forward<double>(cpu, out.data(), probs.data(), qkv.data(), B, L, H, hd, s);
    EXPECT_LT(max_scaled_diff(out, ref_out), 1e-14) << int(s);
    EXPECT_LT(max_scaled_diff(probs, ref_probs), 1e-14) << int(s);
  }
  EXPECT_EQ(ops::attention_scratch_elems(B, L, H, hd), std::int64_t(B) * H * L * L);
}

TEST(Attention, GradCheckBothStrategies) {
  const int B = 2, L = 4, H = 2, hd = 3, D = H * hd;
  auto qkv = uniform<double>(std::int64_t(B) * L * 3 * D, 2, -1.5, 1.5);
  auto w = uniform<double>(std::int64_t(B) * L * D, 3);
  std::vector<double> out(w.size()), probs(std::size_t(B) * H * L * L);
  for (auto s : kStrategies) {
    auto loss = [&] {
      ops::attention_forward<double>(cpu, out.data(), probs.data(), qkv.data(), B, L, H, hd, s);
      return weighted_sum(w.data(), out.data(), out.size());
    };
    loss();
    std::vector<double> dqkv(qkv.size(), std::nan("")),
        scratch(ops::attention_scratch_elems(B, L, H, hd), std::nan(""));
    ops::attention_backward<double>(cpu, dqkv.data(), scratch.data(), w.data(), qkv.data(),
                                    probs.data(), B, L, H, hd, s);
    auto r = grad_check(loss, qkv.data(), qkv.size(), dqkv.data());
    EXPECT_LT(r.max_rel, 1e-6) << "strategy " << int(s) << ": " << r.str();
  }
}

TEST(Attention, StrategiesAgreeAndFloatMatchesDouble) {
  // The benchmark shapes (reduced batch), both strategies, float vs double.
  struct Shape { int B, L, H, hd; };
  for (Shape sh : {Shape{4, 64, 4, 32}, Shape{1, 256, 3, 64}}) {
    const int B = sh.B, L = sh.L, H = sh.H, hd = sh.hd, D = H * hd;
    auto qkv = normal<double>(std::int64_t(B) * L * 3 * D, 4);
    auto g = normal<double>(std::int64_t(B) * L * D, 5);
    const std::size_t np = std::size_t(B) * H * L * L;
    std::vector<double> out(g.size()), probs(np), dqkv(qkv.size()),
        scratch(ops::attention_scratch_elems(B, L, H, hd));
    ops::attention_forward<double>(cpu, out.data(), probs.data(), qkv.data(), B, L, H, hd,
                                   AttentionStrategy::Heads);
    ops::attention_backward<double>(cpu, dqkv.data(), scratch.data(), g.data(), qkv.data(),
                                    probs.data(), B, L, H, hd, AttentionStrategy::Heads);
    auto qkvf = cast<float>(qkv), gf = cast<float>(g);
    for (auto s : kStrategies) {
      std::vector<float> outf(g.size()), probsf(np), dqkvf(qkv.size()), scratchf(scratch.size());
      ops::attention_forward<float>(cpu, outf.data(), probsf.data(), qkvf.data(), B, L, H, hd, s);
      ops::attention_backward<float>(cpu, dqkvf.data(), scratchf.data(), gf.data(), qkvf.data(),
                                     probsf.data(), B, L, H, hd, s);
      EXPECT_LT(max_scaled_diff(outf, out), 2e-5) << "L=" << L << " s=" << int(s);
      EXPECT_LT(max_scaled_diff(probsf, probs), 2e-5) << "L=" << L << " s=" << int(s);
      EXPECT_LT(max_scaled_diff(dqkvf, dqkv), 2e-5) << "L=" << L << " s=" << int(s);
    }
    std::vector<double> out2(g.size()), probs2(np), dqkv2(qkv.size());
    ops::attention_forward<double>(cpu, out2.data(), probs2.data(), qkv.data(), B, L, H, hd,
                                   AttentionStrategy::Blas);
    ops::attention_backward<double>(cpu, dqkv2.data(), scratch.data(), g.data(), qkv.data(),
                                    probs2.data(), B, L, H, hd, AttentionStrategy::Blas);
    EXPECT_LT(max_scaled_diff(out2, out), 1e-13);
    EXPECT_LT(max_scaled_diff(dqkv2, dqkv), 1e-13);
  }
}
