// BF16Mixed's numerics on the CPU (redi/ops/bf16_emulation.hpp):
//   - the emulating backend rounds compute-type outputs to bf16 and leaves the residual-type
//     outputs (gated residual, LayerNorm's input gradient, accumulate) in fp32 — and rounds
//     those too in the Residual::Bf16 variant;
//   - an emulated model's forward output is bf16 on the grid and close to fp32, its weights'
//     compute copy is rounded, and the master weights stay fp32 through a step;
//   - the drift test (tests/bf16_drift.hpp): a depth-28 SiT ReDi, 20 AdamW steps, emulated
//     BF16Mixed against fp32: the gradient errors along the run (per tensor group), the weight
//     drift and the loss error under the bound — and the same model with the residual stream,
//     dh and the conditioning-gradient sum back in bf16 (Bf16Emulator<EmulatedResidual::Bf16>)
//     fails it, with the margins asserted below.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <vector>

#include "bf16_drift.hpp"
#include "redi/core/dtype.hpp"
#include "redi/core/philox.hpp"
#include "redi/ops/bf16_emulation.hpp"
#include "redi/ops/cpu_backend.hpp"
#include "redi/redi_model.hpp"

using namespace redi;

namespace {

bool on_bf16_grid(float x) { return float(bf16(x)) == x; }

std::size_t count_off_grid(const std::vector<float>& v) {
  std::size_t n = 0;
  for (float x : v) n += on_bf16_grid(x) ? 0 : 1;
  return n;
}

std::vector<float> normals(std::size_t n, std::uint64_t seed) {
  std::vector<float> v(n);
  philox::fill_normal(v.data(), n, seed, 1);
  return v;
}

using Emu = Bf16Emulator<>;
using EmuBf16Res = Bf16Emulator<EmulatedResidual::Bf16>;

}  // namespace

TEST(Bf16Emulation, RoundsComputeOutputsNotResidualOutputs) {
  const int B = 2, L = 3, C = 8, ms = 6 * C;
  const auto x0 = normals(std::size_t(B) * L * C, 1), y = normals(x0.size(), 2), mod = normals(std::size_t(B) * ms, 3);
  // compute-type outputs: linear, layernorm, gelu, add_inplace are on the bf16 grid
  std::vector<float> W = normals(std::size_t(C) * C, 4), out(x0.size()), mean(B * L), rstd(B * L);
  Backend<Emu>::linear_forward(Emu{}, out.data(), x0.data(), W.data(), nullptr, B * L, C, C);
  EXPECT_EQ(count_off_grid(out), 0u);
  Backend<Emu>::layernorm_forward(Emu{}, out.data(), mean.data(), rstd.data(), x0.data(), B * L, C);
  EXPECT_EQ(count_off_grid(out), 0u);
  EXPECT_GT(count_off_grid(mean) + count_off_grid(rstd), 0u) << "statistics stay fp32";
  // and equal the CPU op's output rounded
  std::vector<float> ref(x0.size());
  ops::layernorm_forward(cpu, ref.data(), mean.data(), rstd.data(), x0.data(), B * L, C);
  for (std::size_t i = 0; i < ref.size(); ++i) ASSERT_EQ(out[i], float(bf16(ref[i])));
  // residual-type outputs: the gated residual and accumulate stay fp32 ...
  auto x = x0;
  Backend<Emu>::gated_residual_forward(Emu{}, x.data(), y.data(), mod.data() + 2 * C, B, L, C, ms);
  auto xr = x0;
  ops::gated_residual_forward(cpu, xr.data(), y.data(), mod.data() + 2 * C, B, L, C, ms);
  EXPECT_EQ(x, xr);
  EXPECT_GT(count_off_grid(x), 0u);
  auto acc = x0;
  Backend<Emu>::accumulate(Emu{}, acc.data(), y.data(), std::int64_t(acc.size()));
  EXPECT_GT(count_off_grid(acc), 0u);
  // ... except in the bf16-residual variant
  x = x0;
  Backend<EmuBf16Res>::gated_residual_forward(EmuBf16Res{}, x.data(), y.data(), mod.data() + 2 * C, B, L, C, ms);
  EXPECT_EQ(count_off_grid(x), 0u);
  acc = x0;
  Backend<EmuBf16Res>::accumulate(EmuBf16Res{}, acc.data(), y.data(), std::int64_t(acc.size()));
  EXPECT_EQ(count_off_grid(acc), 0u);
  // strided outputs: dgate rounded at b*ms + c only
  std::vector<float> dy(x0.size()), dmod(std::size_t(B) * ms, 0.3f + 1e-6f);
  Backend<Emu>::gated_residual_backward(Emu{}, dy.data(), dmod.data() + 2 * C, x0.data(), y.data(),
                                        mod.data() + 2 * C, B, L, C, ms);
  EXPECT_EQ(count_off_grid(dy), 0u);
  for (int b = 0; b < B; ++b)
    for (int c = 0; c < ms; ++c) {
      const bool gate = c >= 2 * C && c < 3 * C;
      EXPECT_EQ(on_bf16_grid(dmod[std::size_t(b) * ms + c]), gate) << b << " " << c;
    }
}

TEST(Bf16Emulation, ModelOutputsAreBf16AndTrackFp32) {
  test::drift::Spec s;
  s.depth = 2;
  using E = ReDi<SiT, Merged, FlowMatching, BF16Emulated, Emu>;
  using F = ReDi<SiT, Merged, FlowMatching, float, Cpu>;
  const ModelConfig c = test::drift::config(s);
  E e(test::drift::options<E>(s));
  F f(test::drift::options<F>(s));
  const auto w0 = test::drift::start_weights(s);
  e.net().params().from_host(w0);
  f.net().params().from_host(w0);
  const int B = 3;
  const auto x = normals(std::size_t(B) * c.channels_in() * c.input_size * c.input_size, 8);
  const std::vector<float> t = {0.1f, 0.5f, 0.9f};
  const std::vector<int> y = {1, 4, 7};
  std::vector<float> oe(x.size()), of(x.size());
  DeviceBridge<E::network_type> bridge;
  bridge.bind(e.net()).infer(x.data(), t.data(), y.data(), B, oe.data());
  f.net().infer(x.data(), t.data(), y.data(), B, of.data());
  EXPECT_EQ(count_off_grid(oe), 0u) << "the network's output is stored in bf16";
  EXPECT_NE(oe, of);
  double num = 0, den = 0;
  for (std::size_t i = 0; i < of.size(); ++i) {
    num += (oe[i] - of[i]) * (oe[i] - of[i]);
    den += of[i] * of[i];
  }
  EXPECT_LT(std::sqrt(num / den), 0.03) << "bf16 forward vs fp32";
  // the master weights are fp32 and untouched by the forward; a step moves them off the grid
  EXPECT_EQ(std::as_const(e.net()).params().to_host(), w0);
  test::ToyData d(c, 4, 1);
  e.train_step(d.x.data(), d.z.data(), d.y.data(), 4);
  EXPECT_GT(count_off_grid(std::as_const(e.net()).params().to_host()), std::size_t(e.net().num_params() / 2));
}

namespace {

struct DriftResults {
  test::drift::Report fp32_residual, bf16_residual;
};

const DriftResults& drift_results() {
  static const DriftResults r = [] {
    const test::drift::Spec s;
    using F = ReDi<SiT, Merged, FlowMatching, float, Cpu>;
    using E = ReDi<SiT, Merged, FlowMatching, BF16Emulated, Emu>;
    using Eb = ReDi<SiT, Merged, FlowMatching, BF16Emulated, EmuBf16Res>;
    F f(test::drift::options<F>(s)), fr(test::drift::options<F>(s));
    E e(test::drift::options<E>(s));
    Eb eb(test::drift::options<Eb>(s));
    const auto rf = test::drift::run(f, s);
    const auto re = test::drift::run(e, s, &fr);
    const auto rb = test::drift::run(eb, s, &fr);
    DriftResults out{test::drift::compare(re, rf), test::drift::compare(rb, rf)};
    auto print = [](const char* what, const test::drift::Report& p) {
      std::printf("[drift] %-14s grad blocks %.4g  grad cond %.4g  grad other %.4g  weights %.4g  loss %.4g\n",
                  what, p.grad_blocks, p.grad_cond, p.grad_other, p.weight_drift, p.loss_err);
    };
    print("fp32 residual", out.fp32_residual);
    print("bf16 residual", out.bf16_residual);
    return out;
  }();
  return r;
}

}  // namespace

// The bound on emulated BF16Mixed (fp32 residual) against fp32, depth 28, 20 steps: gradient
// errors along the run per group, averaged over the steps (measured: blocks 0.0052, cond
// 0.0044, other 0.0021; with the residual in bf16: 0.0097, 0.0082, 0.0058 — docs/cuda.md).
bool within_bound(const test::drift::Report& r) {
  return r.grad_blocks < 0.0075 && r.grad_cond < 0.0065 && r.grad_other < 0.004;
}

TEST(Bf16Drift, Fp32ResidualStaysWithinTheBound) {
  const auto& r = drift_results().fp32_residual;
  EXPECT_TRUE(within_bound(r)) << "gradient errors " << r.grad_blocks << " " << r.grad_cond << " " << r.grad_other;
  EXPECT_LT(r.weight_drift, 0.1) << "weights after 20 steps, relative to the fp32 update";
  EXPECT_LT(r.loss_err, 0.01);
}

// The counter-example the bound must catch: the residual stream, dh and the conditioning
// gradient summed in bf16 (BF16Mixed before residual_t) fail it; the gradient of the patch
// embedders (dh after all 56 additions) is hit hardest.
TEST(Bf16Drift, Bf16ResidualFailsTheBound) {
  const auto& r = drift_results().bf16_residual;
  const auto& ok = drift_results().fp32_residual;
  EXPECT_FALSE(within_bound(r));
  EXPECT_GT(r.grad_other, 0.004);
  EXPECT_GT(r.grad_other, 2 * ok.grad_other);
  EXPECT_GT(r.grad_blocks, 1.5 * ok.grad_blocks);
  EXPECT_GT(r.grad_cond, 1.5 * ok.grad_cond);
}
