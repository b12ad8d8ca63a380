// The adaLN-Zero DiT block on its own: finite-difference gradients (double) for its input
// tokens, its conditioning vector SiLU(c) and every weight, and the adaLN-Zero property (zero
// modulation weights make the block the identity); the out-of-place gated residual the block's
// forward uses (out = x + gate * y) equals the copy + in-place form bit for bit (float,
// double, the bf16 emulation) and leaves x alone, or works in place when out aliases x; the
// block's LayerNorm + modulate op (layernorm_modulate_forward, one kernel on the GPU) equals
// layernorm_forward then modulate_forward of the same backend (the emulation: ln rounded to
// bf16 before it is modulated).
#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "gradcheck.hpp"
#include "redi/core/philox.hpp"
#include "redi/core/workspace.hpp"
#include "redi/nn/dit_block.hpp"
#include "redi/ops/bf16_emulation.hpp"
#include "redi/ops/cpu_backend.hpp"

using namespace redi;

namespace {

struct BlockFixture {
  BlockDims d{2, 5, 8, 2, 32};  // B, S, D, H, Dm
  std::vector<double> W;            // all weights, contiguous
  std::vector<std::int64_t> off;    // offsets of the 10 tensors
  Workspace<> arena;
  BlockActs<double> acts{};
  BlockScratch<double> scratch{};

  BlockFixture() {
    const std::int64_t D = d.D, Dm = d.Dm;
    const std::int64_t sizes[10] = {3 * D * D, 3 * D, D * D, D, Dm * D, Dm, D * Dm, D, 6 * D * D, 6 * D};
    std::int64_t total = 0;
    for (auto s : sizes) { off.push_back(total); total += s; }
    W.resize(std::size_t(total));
    philox::fill_normal(W.data(), W.size(), 21, 0);
    for (auto& w : W) w *= 0.3;
    arena.carve([&](Workspace<>& w) {
      acts.carve(w, d, /*flash=*/false);
      scratch.carve(w, d, /*flash=*/false);
    });
  }
  BlockWeights<double> weights() const {
    const double* P = W.data();
    return {P + off[0], P + off[1], P + off[2], P + off[3], P + off[4],
            P + off[5], P + off[6], P + off[7], P + off[8], P + off[9]};
  }
  BlockGrads<double> grads(std::vector<double>& G) const {
    double* P = G.data();
    return {P + off[0], P + off[1], P + off[2], P + off[3], P + off[4],
            P + off[5], P + off[6], P + off[7], P + off[8], P + off[9]};
  }
};

}  // namespace

TEST(DiTBlock, GradientsOfInputConditioningAndWeights) {
  BlockFixture f;
  const auto N = f.d.N() * f.d.D, C = std::int64_t(f.d.B) * f.d.D;
  std::vector<double> h(N), sc(C), w(N), out(N);
  philox::fill_normal(h.data(), h.size(), 22, 0);
  philox::fill_normal(sc.data(), sc.size(), 23, 0);
  philox::fill_normal(w.data(), w.size(), 24, 0);
  auto loss = [&] {
    block_forward(cpu, f.d, f.weights(), sc.data(), f.acts, h.data(), out.data());
    return test::weighted_sum(out.data(), w.data(), N);
  };
  loss();
  std::vector<double> G(f.W.size(), 0.0), dh(w), dsc(C, 0.0);
  block_backward(cpu, f.d, f.weights(), f.grads(G), f.acts, sc.data(), dh.data(), dsc.data(), f.scratch);
  auto check = [&](const char* what, double* x, const double* g, std::int64_t n) {
    EXPECT_LT(test::max_rel_error_richardson(loss, x, n, g, 1e-4, 40), 1e-6) << what;
  };
  check("h_in", h.data(), dh.data(), N);
  check("SiLU(c)", sc.data(), dsc.data(), C);
  const char* names[10] = {"qkv.w", "qkv.b", "proj.w", "proj.b", "fc1.w", "fc1.b", "fc2.w", "fc2.b", "ada.w", "ada.b"};
  for (int k = 0; k < 10; ++k) {
    const std::int64_t n = (k + 1 < 10 ? f.off[k + 1] : std::int64_t(f.W.size())) - f.off[k];
    check(names[k], f.W.data() + f.off[k], G.data() + f.off[k], n);
  }
}

template <class Dev, class T>
void check_gated_residual_out_of_place() {
  using Ops = Backend<Dev>;
  const int B = 3, L = 7, C = 20, ms = 6 * C;
  const std::size_t n = std::size_t(B) * L * C;
  std::vector<T> x(n), y(n), mod(std::size_t(B) * ms);
  philox::fill_normal(x.data(), n, 27, 0);
  philox::fill_normal(y.data(), n, 27, 1);
  philox::fill_normal(mod.data(), mod.size(), 27, 2);
  const T* gate = mod.data() + 2 * C;
  std::vector<T> ref = x;  // copy + in place
  Ops::gated_residual_forward(Dev{}, ref.data(), y.data(), gate, B, L, C, ms);
  std::vector<T> out(n, T(7)), x0 = x;
  Ops::gated_residual_forward(Dev{}, out.data(), static_cast<const T*>(x.data()), y.data(), gate, B, L, C, ms);
  EXPECT_EQ(out, ref);
  EXPECT_EQ(x, x0) << "x is read only";
  Ops::gated_residual_forward(Dev{}, x.data(), static_cast<const T*>(x.data()), y.data(), gate, B, L, C, ms);
  EXPECT_EQ(x, ref) << "out aliasing x";
  for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(ref[i], x0[i] + gate[(i / (L * C)) * ms + i % C] * y[i]) << i;
}

TEST(DiTBlock, GatedResidualOutOfPlaceEqualsCopyPlusInPlace) {
  check_gated_residual_out_of_place<Cpu, float>();
  check_gated_residual_out_of_place<Cpu, double>();
  check_gated_residual_out_of_place<Bf16Emulator<>, float>();
}

template <class Dev, class T>
void check_layernorm_modulate() {
  using Ops = Backend<Dev>;
  const int B = 2, L = 5, C = 24, ms = 6 * C;
  const std::size_t n = std::size_t(B) * L * C;
  std::vector<T> x(n), mod(std::size_t(B) * ms);
  philox::fill_normal(x.data(), n, 28, 0);
  philox::fill_normal(mod.data(), mod.size(), 28, 1);
  std::vector<T> ln(n), out(n), mean(B * L), rstd(B * L), ln2(n), out2(n), mean2(B * L), rstd2(B * L);
  Ops::layernorm_modulate_forward(Dev{}, ln.data(), out.data(), mean.data(), rstd.data(), x.data(), mod.data(),
                                  mod.data() + C, B, L, C, ms);
  Ops::layernorm_forward(Dev{}, ln2.data(), mean2.data(), rstd2.data(), x.data(), B * L, C);
  Ops::modulate_forward(Dev{}, out2.data(), ln2.data(), mod.data(), mod.data() + C, B, L, C, ms);
  EXPECT_EQ(ln, ln2);
  EXPECT_EQ(out, out2);
  EXPECT_EQ(mean, mean2);
  EXPECT_EQ(rstd, rstd2);
}

TEST(DiTBlock, LayerNormModulateEqualsTheTwoOps) {
  check_layernorm_modulate<Cpu, float>();
  check_layernorm_modulate<Cpu, double>();
  check_layernorm_modulate<Bf16Emulator<>, float>();
}

TEST(DiTBlock, ZeroModulationIsIdentity) {
  BlockFixture f;
  std::fill(f.W.begin() + f.off[8], f.W.end(), 0.0);  // adaLN weight and bias = 0 -> gates 0
  const auto N = f.d.N() * f.d.D, C = std::int64_t(f.d.B) * f.d.D;
  std::vector<double> h(N), sc(C), out(N);
  philox::fill_normal(h.data(), h.size(), 25, 0);
  philox::fill_normal(sc.data(), sc.size(), 26, 0);
  block_forward(cpu, f.d, f.weights(), sc.data(), f.acts, h.data(), out.data());
  EXPECT_EQ(out, h);
}
