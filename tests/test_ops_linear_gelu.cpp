// The fused MLP op (ops/linear_gelu.hpp) on the CPU: (1) bit-identical to the unfused
// composition it replaces in the DiT block (linear_forward + gelu_forward; linear_backward's din +
// gelu_backward + the next linear_backward's column sums), in float, with sizes past one OpenMP
// chunk and one 64-column bias block; (2) a finite-difference check of the whole two-layer MLP
// y = Fc2(GELU(Fc1(x))) through linear_gelu_forward / linear_dgelu_backward in double; (3) the
// Bf16Emulator's version equals the emulator's unfused ops bit for bit (the emulated BF16Mixed
// numerics did not move).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "gradcheck.hpp"
#include "redi/ops/bf16_emulation.hpp"
#include "redi/ops/cpu_backend.hpp"

using namespace redi;
using namespace redi::test;

namespace {

bool bit_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// The MLP's first half and the backward through it, once fused and once as the old sequence of
// ops, on backend Ops; every output compared bit for bit.
template <class Dev>
void check_fused_equals_composition(int rows, int D, int Dm, bool bias) {
  using Ops = Backend<Dev>;
  const Dev dev{};
  auto x = uniform<float>(std::int64_t(rows) * D, 1, -2, 2), W1 = uniform<float>(std::int64_t(Dm) * D, 2);
  auto b1 = uniform<float>(Dm, 3), W2 = uniform<float>(std::int64_t(D) * Dm, 4);
  auto dy = uniform<float>(std::int64_t(rows) * D, 5);
  const float* b1p = bias ? b1.data() : nullptr;
  const std::size_t nf = std::size_t(rows) * Dm;

  // forward
  std::vector<float> g_f(nf), pre_f(nf), g_u(nf), pre_u(nf);
  Ops::linear_gelu_forward(dev, g_f.data(), pre_f.data(), x.data(), W1.data(), b1p, rows, D, Dm);
  Ops::linear_forward(dev, pre_u.data(), x.data(), W1.data(), b1p, rows, D, Dm);
  Ops::gelu_forward(dev, g_u.data(), pre_u.data(), std::int64_t(nf));
  EXPECT_TRUE(bit_equal(pre_f, pre_u)) << Dev::name << " pre";
  EXPECT_TRUE(bit_equal(g_f, g_u)) << Dev::name << " gelu";

  // backward: dpre and fc1's bias gradient (accumulated onto a non-zero start)
  auto db0 = uniform<float>(Dm, 6);
  std::vector<float> dpre_f(nf, std::nanf("")), db_f = db0;
  Ops::linear_dgelu_backward(dev, dpre_f.data(), bias ? db_f.data() : nullptr, dy.data(), W2.data(),
                             pre_f.data(), rows, Dm, D);
  std::vector<float> dg(nf), dpre_u(nf), db_u = db0;
  Ops::linear_backward(dev, dg.data(), static_cast<float*>(nullptr), static_cast<float*>(nullptr), dy.data(),
                       g_u.data(), W2.data(), rows, Dm, D);
  Ops::gelu_backward(dev, dpre_u.data(), dg.data(), pre_u.data(), std::int64_t(nf));
  std::vector<float> dx(std::size_t(rows) * D), dW1(W1.size(), 0.0f);
  Ops::linear_backward(dev, dx.data(), dW1.data(), bias ? db_u.data() : static_cast<float*>(nullptr),
                       dpre_u.data(), x.data(), W1.data(), rows, D, Dm);
  EXPECT_TRUE(bit_equal(dpre_f, dpre_u)) << Dev::name << " dpre";
  EXPECT_TRUE(bit_equal(db_f, db_u)) << Dev::name << " fc1 bias gradient";
  if (!bias) EXPECT_TRUE(bit_equal(db_f, db0)) << "null dbpre must be skipped";
}

}  // namespace

TEST(LinearGelu, CpuEqualsCompositionBitForBit) {
  // rows * Dm > 2 OpenMP chunks; Dm > one 64-column bias block and not a multiple of it.
  check_fused_equals_composition<Cpu>(37, 24, 150, true);
  check_fused_equals_composition<Cpu>(5, 8, 12, false);
}

TEST(LinearGelu, Bf16EmulatorEqualsItsCompositionBitForBit) {
  check_fused_equals_composition<Bf16Emulator<>>(37, 24, 150, true);
}

// y = Fc2(GELU(Fc1 x)), loss = sum w .* y: gradients w.r.t. x, W1, b1 through the fused ops.
TEST(LinearGelu, MlpGradCheck) {
  const int rows = 5, D = 4, Dm = 9;
  auto x = uniform<double>(rows * D, 11, -2, 2), W1 = uniform<double>(Dm * D, 12), b1 = uniform<double>(Dm, 13);
  auto W2 = uniform<double>(D * Dm, 14), b2 = uniform<double>(D, 15), w = uniform<double>(rows * D, 16);
  std::vector<double> pre(rows * Dm), g(rows * Dm), y(rows * D);
  auto loss = [&] {
    ops::linear_gelu_forward<double>(cpu, g.data(), pre.data(), x.data(), W1.data(), b1.data(), rows, D, Dm);
    ops::linear_forward<double>(cpu, y.data(), g.data(), W2.data(), b2.data(), rows, Dm, D);
    return weighted_sum(w.data(), y.data(), std::int64_t(y.size()));
  };
  loss();
  std::vector<double> dpre(pre.size(), std::nan("")), db1(Dm, 0.0), dx(x.size()), dW1(W1.size(), 0.0);
  ops::linear_dgelu_backward<double>(cpu, dpre.data(), db1.data(), w.data(), W2.data(), pre.data(), rows, Dm, D);
  ops::linear_backward<double>(cpu, dx.data(), dW1.data(), nullptr, dpre.data(), x.data(), W1.data(), rows, D, Dm);
  auto rx = grad_check(loss, x.data(), std::int64_t(x.size()), dx.data());
  auto rW = grad_check(loss, W1.data(), std::int64_t(W1.size()), dW1.data());
  auto rb = grad_check(loss, b1.data(), std::int64_t(b1.size()), db1.data());
  EXPECT_LT(rx.max_rel, 1e-7) << rx.str();
  EXPECT_LT(rW.max_rel, 1e-7) << rW.str();
  EXPECT_LT(rb.max_rel, 1e-7) << rb.str();
}
