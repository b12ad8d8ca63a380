// CUDA vs CPU: LayerNorm, adaLN modulate and gated residual, and their mixed-type forms on
// BF16Mixed's fp32 residual stream (LayerNorm reads fp32 and writes bf16, its backward and the
// gated residual write fp32, accumulate adds bf16 into fp32); the out-of-place gated residual
// (out = x + gate * y, what the DiT block uses) against the CPU and against the in-place op on
// the device (bit for bit: the same kernel); the fused LayerNorm + modulate of the block
// (layernorm_modulate_forward) against the CPU's LayerNorm then modulate and against the two
// device ops (equal bits expected: the same arithmetic on the stored LayerNorm output). Skips
// without a device.
#include "cuda_test_util.hpp"
#include "redi/cuda/ops/elementwise.cuh"
#include "redi/cuda/ops/layernorm.cuh"
#include "redi/cuda/ops/modulate.cuh"
#include "redi/ops/layernorm.hpp"
#include "redi/ops/modulate.hpp"

namespace redi::test {
namespace {

template <class T>
class CudaNorm : public ::testing::Test {};
using Types = ::testing::Types<float, bf16>;
TYPED_TEST_SUITE(CudaNorm, Types);

TYPED_TEST(CudaNorm, LayerNormForwardBackward) {
  REDI_REQUIRE_CUDA();
  using T = TypeParam;
  for (int C : {1, 7, 96, 1152}) {
    const int rows = 45;
    const std::size_t n = std::size_t(rows) * C;
    auto x = input<T>(n, 30, 2.0f, 0.5f), g = input<T>(n, 31);
    std::vector<float> y(n), mean(rows), rstd(rows), dx(n);
    ops::layernorm_forward(cpu, y.data(), mean.data(), rstd.data(), x.data(), rows, C);
    ops::layernorm_backward(cpu, dx.data(), g.data(), x.data(), mean.data(), rstd.data(), rows, C);
    auto d_x = dev<T>(x), d_g = dev<T>(g);
    auto d_y = dev_zeros<T>(n), d_dx = dev_zeros<T>(n);
    auto d_mean = dev_zeros<float>(rows), d_rstd = dev_zeros<float>(rows);  // fp32 stats
    ops::layernorm_forward(ctx(), d_y.data(), d_mean.data(), d_rstd.data(), d_x.data(), rows, C);
    ops::layernorm_backward(ctx(), d_dx.data(), d_g.data(), d_x.data(), d_mean.data(),
                            d_rstd.data(), rows, C);
    EXPECT_TRUE(close(host(d_mean), mean, 1e-5, 1e-6)) << "mean C=" << C;
    EXPECT_TRUE(close(host(d_rstd), rstd, 1e-5, 0.0)) << "rstd C=" << C;
    EXPECT_TRUE(close(host(d_y), y, Tol<T>::red)) << "layernorm_forward C=" << C;
    EXPECT_TRUE(close(host(d_dx), dx, Tol<T>::red)) << "layernorm_backward C=" << C;
    if constexpr (std::is_same_v<T, float>) {  // stats in T, in place (din aliases dout)
      auto s_mean = dev_zeros<T>(rows), s_rstd = dev_zeros<T>(rows);
      ops::layernorm_forward(ctx(), d_y.data(), s_mean.data(), s_rstd.data(), d_x.data(), rows,
                             C, 1e-6f);
      ops::layernorm_backward(ctx(), d_g.data(), d_g.data(), d_x.data(), s_mean.data(),
                              s_rstd.data(), rows, C);
      EXPECT_TRUE(close(host(d_g), dx, Tol<T>::red)) << "layernorm_backward in place C=" << C;
    }
  }
}

struct ModShape {
  int B = 3, L = 19, C = 100;
  int ms() const { return 6 * C; }  // vectors point into an adaLN output [B, 6C]
  std::size_t tokens() const { return std::size_t(B) * L * C; }
  std::size_t ada() const { return std::size_t(B) * ms(); }
};

/// The fused op against the CPU's two ops (tolerance) and the device's two ops (bit for bit),
/// input of type R (the fp32 residual stream under BF16Mixed, or T itself).
template <class T, class R>
void check_layernorm_modulate(const std::vector<float>& x, const std::vector<float>& ada, int B, int L, int C,
                              int ms) {
  const int rows = B * L;
  const std::size_t n = std::size_t(rows) * C;
  std::vector<float> ln(n), out(n), mean(rows), rstd(rows);
  ops::layernorm_forward(cpu, ln.data(), mean.data(), rstd.data(), x.data(), rows, C);
  if constexpr (!std::is_same_v<T, float>) ln = round_bf16(ln);  // the device stores ln in T
  ops::modulate_forward(cpu, out.data(), ln.data(), ada.data(), ada.data() + C, B, L, C, ms);
  auto d_x = dev<R>(x);
  auto d_ada = dev<T>(ada);
  auto f_ln = dev_zeros<T>(n), f_out = dev_zeros<T>(n), u_ln = dev_zeros<T>(n), u_out = dev_zeros<T>(n);
  auto f_mean = dev_zeros<float>(rows), f_rstd = dev_zeros<float>(rows);
  auto u_mean = dev_zeros<float>(rows), u_rstd = dev_zeros<float>(rows);
  ops::layernorm_modulate_forward(ctx(), f_ln.data(), f_out.data(), f_mean.data(), f_rstd.data(),
                                  static_cast<const R*>(d_x.data()), static_cast<const T*>(d_ada.data()),
                                  static_cast<const T*>(d_ada.data() + C), B, L, C, ms);
  ops::layernorm_forward(ctx(), u_ln.data(), u_mean.data(), u_rstd.data(), d_x.data(), rows, C);
  ops::modulate_forward(ctx(), u_out.data(), static_cast<const T*>(u_ln.data()), d_ada.data(), d_ada.data() + C,
                        B, L, C, ms);
  EXPECT_TRUE(close(host(f_out), out, Tol<T>::red)) << "layernorm_modulate_forward out C=" << C;
  EXPECT_TRUE(close(host(f_mean), mean, 1e-5, 1e-6)) << "mean C=" << C;
  EXPECT_EQ(host(f_ln), host(u_ln)) << "fused ln == layernorm_forward C=" << C;
  EXPECT_EQ(host(f_out), host(u_out)) << "fused out == layernorm_forward + modulate_forward C=" << C;
  EXPECT_EQ(host(f_mean), host(u_mean));
  EXPECT_EQ(host(f_rstd), host(u_rstd));
}

TYPED_TEST(CudaNorm, LayerNormModulateFusedEqualsTheTwoOps) {
  REDI_REQUIRE_CUDA();
  using T = TypeParam;
  for (int C : {7, 100, 1152}) {
    const int B = 3, L = 11, ms = 6 * C;
    const auto x = input<T>(std::size_t(B) * L * C, 36, 2.0f, 0.5f);
    const auto ada = input<T>(std::size_t(B) * ms, 37, 0.5f);
    check_layernorm_modulate<T, T>(x, ada, B, L, C, ms);
    if constexpr (!std::is_same_v<T, float>) {  // BF16Mixed: fp32 residual stream in, bf16 out
      const auto xf = randn(std::size_t(B) * L * C, 38, 3.0f, 1.0f);
      check_layernorm_modulate<T, float>(xf, ada, B, L, C, ms);
    }
  }
}

TYPED_TEST(CudaNorm, ModulateAndGatedResidual) {
  REDI_REQUIRE_CUDA();
  using T = TypeParam;
  ModShape s;
  const int B = s.B, L = s.L, C = s.C, ms = s.ms();
  auto x = input<T>(s.tokens(), 32), y = input<T>(s.tokens(), 33), g = input<T>(s.tokens(), 34);
  auto ada = input<T>(s.ada(), 35, 0.5f);
  const float* shift = ada.data() + 0;
  const float* scale = ada.data() + C;
  const float* gate = ada.data() + 2 * C;
  // forward
  std::vector<float> out(s.tokens()), xr = x;
  ops::modulate_forward(cpu, out.data(), x.data(), shift, scale, B, L, C, ms);
  ops::gated_residual_forward(cpu, xr.data(), y.data(), gate, B, L, C, ms);
  auto d_x = dev<T>(x), d_y = dev<T>(y), d_g = dev<T>(g), d_ada = dev<T>(ada);
  auto d_out = dev_zeros<T>(s.tokens());
  ops::modulate_forward(ctx(), d_out.data(), d_x.data(), d_ada.data(), d_ada.data() + C, B, L, C,
                        ms);
  EXPECT_TRUE(close(host(d_out), out, Tol<T>::elem)) << "modulate_forward";
  auto d_xr = dev<T>(x);
  ops::gated_residual_forward(ctx(), d_xr.data(), d_y.data(), d_ada.data() + 2 * C, B, L, C, ms);
  EXPECT_TRUE(close(host(d_xr), xr, Tol<T>::elem)) << "gated_residual_forward";
  {  // out of place: out = x + gate * y, x untouched; equal to the in-place result bit for bit
    std::vector<float> xo(s.tokens());
    ops::gated_residual_forward(cpu, xo.data(), x.data(), y.data(), gate, B, L, C, ms);
    EXPECT_EQ(xo, xr) << "CPU out of place == in place";
    auto d_o = dev_zeros<T>(s.tokens());
    ops::gated_residual_forward(ctx(), d_o.data(), static_cast<const T*>(d_x.data()), d_y.data(),
                                d_ada.data() + 2 * C, B, L, C, ms);
    EXPECT_EQ(host(d_o), host(d_xr)) << "gated_residual_forward out of place == in place (device)";
    EXPECT_EQ(host(d_x), host(dev<T>(x))) << "out of place leaves x alone";
  }
  // backward: gradients land inside a d(adaLN) buffer [B, 6C]
  std::vector<float> din(s.tokens()), dada(s.ada(), 0.0f), dy(s.tokens());
  ops::modulate_backward(cpu, din.data(), dada.data(), dada.data() + C, g.data(), x.data(), scale,
                         B, L, C, ms);
  ops::gated_residual_backward(cpu, dy.data(), dada.data() + 2 * C, g.data(), y.data(), gate, B,
                               L, C, ms);
  auto d_din = dev_zeros<T>(s.tokens()), d_dy = dev_zeros<T>(s.tokens());
  auto d_dada = dev_zeros<T>(s.ada());
  ops::modulate_backward(ctx(), d_din.data(), d_dada.data(), d_dada.data() + C, d_g.data(),
                         d_x.data(), d_ada.data() + C, B, L, C, ms);
  ops::gated_residual_backward(ctx(), d_dy.data(), d_dada.data() + 2 * C, d_g.data(), d_y.data(),
                               d_ada.data() + 2 * C, B, L, C, ms);
  EXPECT_TRUE(close(host(d_din), din, Tol<T>::elem)) << "modulate_backward din";
  EXPECT_TRUE(close(host(d_dy), dy, Tol<T>::elem)) << "gated_residual_backward dy";
  EXPECT_TRUE(close(host(d_dada), dada, Tol<T>::red)) << "dshift/dscale/dgate";
  // aliasing allowed by the contract: din == dout, dy == dx
  auto d_g2 = dev<T>(g);
  ops::modulate_backward(ctx(), d_g2.data(), static_cast<T*>(nullptr), static_cast<T*>(nullptr),
                         d_g2.data(), d_x.data(), d_ada.data() + C, B, L, C, ms);
  EXPECT_TRUE(close(host(d_g2), din, Tol<T>::elem)) << "modulate_backward in place";
  auto d_g3 = dev<T>(g);
  ops::gated_residual_backward(ctx(), d_g3.data(), static_cast<T*>(nullptr), d_g3.data(),
                               d_y.data(), d_ada.data() + 2 * C, B, L, C, ms);
  EXPECT_TRUE(close(host(d_g3), dy, Tol<T>::elem)) << "gated_residual_backward in place";
}

// BF16Mixed's residual stream: fp32 h, dh and accumulators next to bf16 branch tensors. The
// fp32 outputs must match the CPU's fp32 result of the same (bf16-valued) inputs to fp32
// accuracy: nothing on the residual path is rounded to bf16.
TEST(CudaResidualFp32, MixedTypesKeepTheResidualInFp32) {
  REDI_REQUIRE_CUDA();
  ModShape s;
  const int B = s.B, L = s.L, C = s.C, ms = s.ms(), rows = B * L;
  const auto h = randn(s.tokens(), 40, 3.0f, 1.0f);                  // fp32 residual stream
  const auto y = round_bf16(randn(s.tokens(), 41, 0.01f));           // small bf16 branch output
  const auto ada = round_bf16(randn(s.ada(), 42, 0.1f));
  const auto gr = round_bf16(randn(s.tokens(), 43));                 // bf16 dL/d(LN out)
  // LayerNorm: fp32 in, bf16 out, fp32 stats; backward into fp32
  std::vector<float> ln(s.tokens()), mean(rows), rstd(rows), dres(s.tokens());
  ops::layernorm_forward(cpu, ln.data(), mean.data(), rstd.data(), h.data(), rows, C);
  ops::layernorm_backward(cpu, dres.data(), gr.data(), h.data(), mean.data(), rstd.data(), rows, C);
  auto d_h = dev<float>(h), d_dres = dev_zeros<float>(s.tokens());
  auto d_ln = dev_zeros<bf16>(s.tokens()), d_gr = dev<bf16>(gr);
  auto d_mean = dev_zeros<float>(rows), d_rstd = dev_zeros<float>(rows);
  ops::layernorm_forward(ctx(), d_ln.data(), d_mean.data(), d_rstd.data(), d_h.data(), rows, C);
  ops::layernorm_backward(ctx(), d_dres.data(), d_gr.data(), d_h.data(), d_mean.data(), d_rstd.data(), rows, C);
  EXPECT_TRUE(close(host(d_ln), ln, Tol<bf16>::elem)) << "layernorm_forward fp32 -> bf16";
  EXPECT_TRUE(close(host(d_dres), dres, Tol<float>::red)) << "layernorm_backward into fp32";
  {  // accumulated into an fp32 dh in the same pass: = backward then accumulate on the device,
     // exactly (both sum v + dh in fp32 once), and the CPU's dh + dres to reduction accuracy
    const auto dh0 = randn(s.tokens(), 44);
    std::vector<float> dh_cpu = dh0;
    for (std::size_t i = 0; i < dh_cpu.size(); ++i) dh_cpu[i] += dres[i];
    auto d_acc = dev<float>(dh0), d_two = dev<float>(dh0);
    ops::layernorm_backward_accumulate(ctx(), d_acc.data(), d_gr.data(), d_h.data(), d_mean.data(), d_rstd.data(),
                                       rows, C);
    ops::accumulate(ctx(), d_two.data(), d_dres.data(), std::int64_t(s.tokens()));
    EXPECT_EQ(host(d_acc), host(d_two)) << "layernorm_backward_accumulate vs backward + accumulate";
    EXPECT_TRUE(close(host(d_acc), dh_cpu, Tol<float>::red)) << "layernorm_backward_accumulate vs CPU";
  }
  // gated residual: fp32 x += bf16 gate * bf16 y, exact to fp32 (a bf16 x would lose y: |y| ~
  // 1e-3 |x|, below bf16's 2^-9)
  std::vector<float> x = h;
  ops::gated_residual_forward(cpu, x.data(), y.data(), ada.data() + 2 * C, B, L, C, ms);
  auto d_y = dev<bf16>(y), d_ada = dev<bf16>(ada);
  ops::gated_residual_forward(ctx(), d_h.data(), d_y.data(), d_ada.data() + 2 * C, B, L, C, ms);
  EXPECT_TRUE(close(host(d_h), x, Tol<float>::elem)) << "gated_residual_forward into fp32";
  {  // out of place, fp32 out from fp32 x (the block's h_mid = h_in + gate1 * a)
    auto d_h0 = dev<float>(h), d_o = dev_zeros<float>(s.tokens());
    ops::gated_residual_forward(ctx(), d_o.data(), static_cast<const float*>(d_h0.data()), d_y.data(),
                                d_ada.data() + 2 * C, B, L, C, ms);
    EXPECT_EQ(host(d_o), host(d_h)) << "fp32 out of place == in place (device)";
    EXPECT_TRUE(close(host(d_o), x, Tol<float>::elem)) << "gated_residual_forward out of place into fp32";
  }
  // its backward reads the fp32 dh
  std::vector<float> dy(s.tokens()), dada(s.ada(), 0.0f);
  ops::gated_residual_backward(cpu, dy.data(), dada.data() + 2 * C, h.data(), y.data(), ada.data() + 2 * C, B, L,
                               C, ms);
  auto d_dh = dev<float>(h);
  auto d_dy = dev_zeros<bf16>(s.tokens()), d_dada = dev_zeros<bf16>(s.ada());
  ops::gated_residual_backward(ctx(), d_dy.data(), d_dada.data() + 2 * C, d_dh.data(), d_y.data(),
                               d_ada.data() + 2 * C, B, L, C, ms);
  EXPECT_TRUE(close(host(d_dy), dy, Tol<bf16>::elem)) << "gated_residual_backward dy (bf16) from fp32 dx";
  // accumulate: fp32 += bf16, exact to fp32
  std::vector<float> acc = h;
  for (std::size_t i = 0; i < acc.size(); ++i) acc[i] += y[i];
  auto d_acc = dev<float>(h);
  ops::accumulate(ctx(), d_acc.data(), d_y.data(), std::int64_t(acc.size()));
  EXPECT_TRUE(close(host(d_acc), acc, 1e-7, 0.0)) << "accumulate bf16 into fp32";
}

}  // namespace
}  // namespace redi::test
