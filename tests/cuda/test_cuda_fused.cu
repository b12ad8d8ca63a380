// CUDA vs CPU: the fused paths of issue 10 section 3. Skips without a device.
//  - linear_gelu_forward (cuBLASLt GELU_AUX_BIAS) and linear_dgelu_backward (DGELU_BGRAD), fp32
//    and bf16, on a shape the epilogues take (widths multiples of 8) and one they cannot (the
//    unfused fallback, which must be reported): against the CPU composition; the fp32 forward
//    must be at least 4x closer to the tanh GELU than to the erf GELU (max gap 4.7e-4).
//  - linear_backward's bias gradient from the BGRADB epilogue, fp32 and bf16 (fp32 gradients),
//    aligned and at an odd element offset (the column-sum fallback).
//  - AdamW writing the bf16 compute copy in its pass: bit-identical to convert() afterwards, at
//    odd sizes and offsets.
//  - the 16-byte vector kernels (vec.cuh) at odd sizes and offsets: the aligned (vector + tail)
//    and misaligned (scalar) launches give bit-identical results, and both match the CPU ops.
// Lines starting "[fused]" say which path each epilogue took on this GPU (for the device log).
#include <cstdio>
#include <cstring>
#include <string>

#include "cpu_reference.hpp"
#include "cuda_test_util.hpp"
#include "redi/cuda/ops/activation.cuh"
#include "redi/cuda/ops/elementwise.cuh"
#include "redi/cuda/ops/linear.cuh"
#include "redi/cuda/ops/linear_gelu.cuh"
#include "redi/cuda/ops/modulate.cuh"
#include "redi/cuda/ops/optim.cuh"
#include "redi/ops/activation.hpp"
#include "redi/ops/elementwise.hpp"
#include "redi/ops/modulate.hpp"
#include "redi/ops/optim.hpp"

namespace redi::test {
namespace {

using cuda_detail::epilogue_fell_back;
using cuda_detail::GemmEpi;

template <class T>
class CudaFused : public ::testing::Test {
protected:
  void SetUp() override {
    if (cuda_available()) ctx().set_tf32(false);
  }
};
using Types = ::testing::Types<float, bf16>;
TYPED_TEST_SUITE(CudaFused, Types);

template <class T>
const char* tname() { return std::is_same_v<T, float> ? "fp32" : "bf16"; }

/// A device copy of v starting `off` elements into its buffer (off = 1: misaligned for vectors).
template <class T>
struct DevAt {
  Tensor<T, Cuda> t;
  int off = 0;
  std::size_t n = 0;
  T* p() { return t.data() + off; }
  std::vector<float> get() const {
    auto h = host(t);
    return std::vector<float>(h.begin() + off, h.begin() + off + std::ptrdiff_t(n));
  }
};
template <class T>
DevAt<T> dev_at(const std::vector<float>& v, int off) {
  std::vector<float> pad(std::size_t(off), 0.0f);
  pad.insert(pad.end(), v.begin(), v.end());
  pad.resize(pad.size() + 16, 0.0f);
  return DevAt<T>{dev<T>(pad), off, v.size()};
}

bool bit_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

std::vector<float> cpu_gelu(const std::vector<float>& x) {
  std::vector<float> y(x.size());
  ops::gelu_forward(cpu, y.data(), x.data(), std::int64_t(x.size()));
  return y;
}

// ---------------------------------------------------------------- linear_gelu forward / backward

template <class T>
void linear_gelu_case(int rows, int in_f, int f, int out_n, bool expect_eligible) {
  constexpr bool is_bf16 = std::is_same_v<T, bf16>;
  const std::string tag = std::string(tname<T>()) + " rows=" + std::to_string(rows) +
                          " in_f=" + std::to_string(in_f) + " f=" + std::to_string(f);
  const float ws = 1.0f / std::sqrt(float(in_f));  // pre ~ N(0, ~1): where GELU's forms differ
  auto x = input<T>(std::size_t(rows) * in_f, 80), W1 = input<T>(std::size_t(f) * in_f, 81, ws);
  auto b1 = input<T>(f, 82, 0.5f), W2 = input<T>(std::size_t(out_n) * f, 83, 0.2f);
  auto dy = input<T>(std::size_t(rows) * out_n, 84);
  const std::size_t nf = std::size_t(rows) * f;

  // CPU: pre = x W1^T + b1 ; g = gelu(pre) ; dpre = (dy W2) * gelu'(pre) ; db += colsum(dpre)
  std::vector<float> pre(nf), dg(nf), dpre(nf);
  ref::linear_forward(pre.data(), x.data(), W1.data(), b1.data(), rows, in_f, f);
  auto g = cpu_gelu(pre);
  ref::linear_backward(dg.data(), nullptr, nullptr, dy.data(), nullptr, W2.data(), rows, f, out_n);
  ops::gelu_backward(cpu, dpre.data(), dg.data(), pre.data(), std::int64_t(nf));
  auto db0 = randn(f, 85, 0.1f), db = db0;
  ref::linear_backward(nullptr, nullptr, db.data(), dpre.data(), nullptr, nullptr, rows, 0, f);

  auto d_x = dev<T>(x), d_W1 = dev<T>(W1), d_b1 = dev<T>(b1), d_W2 = dev<T>(W2), d_dy = dev<T>(dy);
  auto d_g = dev_zeros<T>(nf), d_pre = dev_zeros<T>(nf), d_dpre = dev_zeros<T>(nf);
  auto d_db = dev<float>(db0);
  epilogue_fell_back(GemmEpi::GeluAux) = false;
  epilogue_fell_back(GemmEpi::DGelu) = false;
  ops::linear_gelu_forward(ctx(), d_g.data(), d_pre.data(), d_x.data(), d_W1.data(), d_b1.data(), rows, in_f, f);
  ops::linear_dgelu_backward(ctx(), d_dpre.data(), d_db.data(), d_dy.data(), d_W2.data(), d_pre.data(), rows, f,
                             out_n);
  const bool fwd_fused = !epilogue_fell_back(GemmEpi::GeluAux);
  const bool bwd_fused = !epilogue_fell_back(GemmEpi::DGelu);
  std::printf("[fused] %s: GELU_AUX_BIAS %s, DGELU_BGRAD %s\n", tag.c_str(), fwd_fused ? "fused" : "unfused",
              bwd_fused ? "fused" : "unfused");
  if (!expect_eligible) {  // our own layout rule: must have fallen back, and said so
    EXPECT_FALSE(fwd_fused) << tag;
    EXPECT_FALSE(bwd_fused) << tag;
  }
  const Tolerance tg = Tol<T>::gemm;
  EXPECT_TRUE(close(host(d_pre), pre, tg)) << "pre " << tag;
  // bf16: the fused GELU reads the fp32 pre, the fallback the stored bf16 pre (one rounding more)
  EXPECT_TRUE(close(host(d_g), g, is_bf16 ? Tolerance{3e-2, 1e-2} : Tolerance{1e-4, 2e-5})) << "gelu " << tag;
  EXPECT_TRUE(close(host(d_dpre), dpre, is_bf16 ? Tolerance{3e-2, 1e-2} : Tolerance{1e-4, 1e-5}))
      << "dpre " << tag;
  // the bias gradient: a sum over rows (bf16: stored once in bf16 by the epilogue)
  EXPECT_TRUE(close(host(d_db), db, is_bf16 ? Tolerance{2e-2, 1e-2} : Tolerance{1e-4, 1e-5})) << "db " << tag;

  if constexpr (!is_bf16) {  // which GELU: the tanh form (cuBLASLt's, per PyTorch #104061), not erf
    std::vector<float> gerf(nf);
    ops::gelu_erf_forward(cpu, gerf.data(), pre.data(), std::int64_t(nf));
    const auto got = host(d_g);
    double to_tanh = 0, to_erf = 0, gap = 0;
    for (std::size_t i = 0; i < nf; ++i) {
      to_tanh = std::max(to_tanh, std::fabs(double(got[i]) - double(g[i])));
      to_erf = std::max(to_erf, std::fabs(double(got[i]) - double(gerf[i])));
      gap = std::max(gap, std::fabs(double(g[i]) - double(gerf[i])));
    }
    std::printf("[fused] %s: max |GELU - tanh form| %.3g, max |GELU - erf form| %.3g (forms differ by %.3g)\n",
                tag.c_str(), to_tanh, to_erf, gap);
    EXPECT_GT(gap, 3e-4) << "the data cannot tell the two GELU forms apart";
    EXPECT_LT(to_tanh, to_erf / 4) << "the GPU's GELU is not clearly the tanh form: " << tag;
  }
}

TYPED_TEST(CudaFused, LinearGeluEligibleShape) {
  REDI_REQUIRE_CUDA();
  linear_gelu_case<TypeParam>(600, 64, 136, 72, true);
}

TYPED_TEST(CudaFused, LinearGeluFallbackShape) {
  REDI_REQUIRE_CUDA();
  linear_gelu_case<TypeParam>(97, 40, 100, 24, false);  // f % 8 != 0: cuBLASLt's aux ld rule
}

// ---------------------------------------------------------------- BGRADB bias gradients

TYPED_TEST(CudaFused, LinearBiasGradEpilogue) {
  REDI_REQUIRE_CUDA();
  using T = TypeParam;
  const int rows = 1100, in_f = 72, out_f = 40;
  auto x = input<T>(std::size_t(rows) * in_f, 90), W = input<T>(std::size_t(out_f) * in_f, 91);
  auto g = input<T>(std::size_t(rows) * out_f, 92);
  auto dW0 = randn(W.size(), 93, 0.1f), db0 = randn(out_f, 94, 0.1f);
  auto dW = dW0, db = db0;
  std::vector<float> din(x.size());
  ref::linear_backward(din.data(), dW.data(), db.data(), g.data(), x.data(), W.data(), rows, in_f, out_f);
  for (int off : {0, 1}) {  // off = 1: dout misaligned, the column-sum fallback
    auto d_g = dev_at<T>(g, off);
    auto d_x = dev<T>(x), d_W = dev<T>(W);
    auto d_dW = dev<float>(dW0), d_db = dev<float>(db0);
    epilogue_fell_back(GemmEpi::BGradB) = false;
    ops::linear_backward(ctx(), static_cast<T*>(nullptr), d_dW.data(), d_db.data(), d_g.p(), d_x.data(),
                         d_W.data(), rows, in_f, out_f);
    const bool fused = !epilogue_fell_back(GemmEpi::BGradB);
    std::printf("[fused] %s BGRADB offset %d: %s\n", tname<T>(), off, fused ? "fused" : "unfused");
    if (off == 1) EXPECT_FALSE(fused);
    EXPECT_TRUE(close(host(d_dW), dW, 1e-5, 1e-5)) << "dW off=" << off;
    EXPECT_TRUE(close(host(d_db), db, 1e-4, 1e-5)) << "db off=" << off;
  }
}

// ---------------------------------------------------------------- AdamW + compute copy

TEST(CudaFusedOptim, AdamWComputeCopyEqualsConvert) {
  REDI_REQUIRE_CUDA();
  for (std::size_t n : {std::size_t(1), std::size_t(7), std::size_t(4099)})
    for (int off : {0, 1, 4}) {
      const auto N = std::int64_t(n);
      auto p = randn(n, 100), m = randn(n, 101, 0.1f), v = randn(n, 102, 0.01f), g = round_bf16(randn(n, 103));
      for (auto& e : v) e = e * e;  // second moments are >= 0
      ops::AdamWConfig cfg;
      cfg.lr = 1e-3;
      cfg.weight_decay = 0.05;
      auto a_p = dev_at<float>(p, off), a_m = dev_at<float>(m, off), a_v = dev_at<float>(v, off);
      auto b_p = dev_at<float>(p, off), b_m = dev_at<float>(m, off), b_v = dev_at<float>(v, off);
      auto d_g = dev_at<bf16>(g, off), copy = dev_at<bf16>(std::vector<float>(n, 0.0f), off);
      auto conv = dev_zeros<bf16>(n);
      for (std::int64_t step = 1; step <= 2; ++step) {
        ops::adamw_step(ctx(), a_p.p(), d_g.p(), a_m.p(), a_v.p(), N, cfg, step, copy.p());
        ops::adamw_step(ctx(), b_p.p(), d_g.p(), b_m.p(), b_v.p(), N, cfg, step);
      }
      ops::convert(ctx(), conv.data(), b_p.p(), N);
      const std::string tag = "n=" + std::to_string(n) + " off=" + std::to_string(off);
      EXPECT_TRUE(bit_equal(a_p.get(), b_p.get())) << "master " << tag;
      EXPECT_TRUE(bit_equal(copy.get(), host(conv))) << "copy " << tag;
      for (std::int64_t step = 1; step <= 2; ++step)
        ops::adamw_step(cpu, p.data(), g.data(), m.data(), v.data(), N, cfg, step);
      EXPECT_TRUE(close(a_p.get(), p, 1e-5, 1e-6)) << "vs CPU " << tag;
    }
}

// ---------------------------------------------------------------- vector kernels, odd sizes/offsets

// Runs op(offset) at offset 0 (vector path where n >= W) and 1 (scalar path); the outputs must be
// bit-identical and close to the CPU reference.
template <class Op>
void vec_vs_scalar(const char* what, const std::vector<float>& ref, Tolerance tol, Op op) {
  auto a = op(0), b = op(1);
  EXPECT_TRUE(bit_equal(a, b)) << what << ": vector and scalar launches differ";
  EXPECT_TRUE(close(a, ref, tol)) << what << " vs CPU";
}

TYPED_TEST(CudaFused, VectorKernelsOddSizesAndOffsets) {
  REDI_REQUIRE_CUDA();
  using T = TypeParam;
  constexpr bool is_bf16 = std::is_same_v<T, bf16>;
  const Tolerance te = Tol<T>::elem;
  for (std::size_t n : {std::size_t(1), std::size_t(5), std::size_t(9), std::size_t(1003)}) {
    const auto N = std::int64_t(n);
    const std::string sz = " n=" + std::to_string(n);
    auto x = input<T>(n, 110), y = input<T>(n, 111);
    {  // add_inplace
      std::vector<float> r = x;
      ops::add_inplace(cpu, r.data(), y.data(), N);
      if constexpr (is_bf16) r = round_bf16(r);
      vec_vs_scalar(("add_inplace" + sz).c_str(), r, te, [&](int off) {
        auto dx = dev_at<T>(x, off), dy = dev_at<T>(y, off);
        ops::add_inplace(ctx(), dx.p(), dy.p(), N);
        return dx.get();
      });
    }
    {  // accumulate: fp32 += T
      std::vector<float> r = y;
      ops::add_inplace(cpu, r.data(), x.data(), N);
      vec_vs_scalar(("accumulate" + sz).c_str(), r, Tol<float>::elem, [&](int off) {
        auto acc = dev_at<float>(y, off);
        auto dx = dev_at<T>(x, off);
        ops::accumulate(ctx(), acc.p(), dx.p(), N);
        return acc.get();
      });
    }
    {  // scale_inplace and convert
      std::vector<float> r = x;
      for (auto& e : r) e *= 0.37f;
      if constexpr (is_bf16) r = round_bf16(r);
      vec_vs_scalar(("scale_inplace" + sz).c_str(), r, te, [&](int off) {
        auto dx = dev_at<T>(x, off);
        ops::scale_inplace(ctx(), dx.p(), N, 0.37f);
        return dx.get();
      });
      auto xf = randn(n, 112);
      vec_vs_scalar(("convert" + sz).c_str(), is_bf16 ? round_bf16(xf) : xf, Tolerance{0.0, 0.0}, [&](int off) {
        auto src = dev_at<float>(xf, off);
        auto dst = dev_at<T>(std::vector<float>(n, 0.0f), off);
        ops::convert(ctx(), dst.p(), src.p(), N);
        return dst.get();
      });
    }
    {  // GELU / SiLU forward and backward (the backward also in place: din aliasing dout)
      std::vector<float> gf(n), gb(n), sf(n), sb(n);
      ops::gelu_forward(cpu, gf.data(), x.data(), N);
      ops::gelu_backward(cpu, gb.data(), y.data(), x.data(), N);
      ops::silu_forward(cpu, sf.data(), x.data(), N);
      ops::silu_backward(cpu, sb.data(), y.data(), x.data(), N);
      vec_vs_scalar(("gelu_forward" + sz).c_str(), gf, te, [&](int off) {
        auto dx = dev_at<T>(x, off), o = dev_at<T>(std::vector<float>(n, 0.0f), off);
        ops::gelu_forward(ctx(), o.p(), dx.p(), N);
        return o.get();
      });
      vec_vs_scalar(("gelu_backward in place" + sz).c_str(), gb, te, [&](int off) {
        auto dx = dev_at<T>(x, off), dd = dev_at<T>(y, off);
        ops::gelu_backward(ctx(), dd.p(), dd.p(), dx.p(), N);
        return dd.get();
      });
      vec_vs_scalar(("silu_forward" + sz).c_str(), sf, te, [&](int off) {
        auto dx = dev_at<T>(x, off), o = dev_at<T>(std::vector<float>(n, 0.0f), off);
        ops::silu_forward(ctx(), o.p(), dx.p(), N);
        return o.get();
      });
      vec_vs_scalar(("silu_backward" + sz).c_str(), sb, te, [&](int off) {
        auto dx = dev_at<T>(x, off), dd = dev_at<T>(y, off), o = dev_at<T>(std::vector<float>(n, 0.0f), off);
        ops::silu_backward(ctx(), o.p(), dd.p(), dx.p(), N);
        return o.get();
      });
    }
  }
  // modulate / gated residual: C odd, so vectors straddle rows and samples
  const int B = 3, L = 5, C = 37, ms = 6 * C;
  const std::size_t n = std::size_t(B) * L * C;
  auto x = input<T>(n, 120), y = input<T>(n, 121), mod = input<T>(std::size_t(B) * ms, 122, 0.5f);
  std::vector<float> mo(n), h = randn(n, 123);
  ops::modulate_forward(cpu, mo.data(), x.data(), mod.data(), mod.data() + C, B, L, C, ms);
  auto hr = h;
  ops::gated_residual_forward(cpu, hr.data(), y.data(), mod.data() + 2 * C, B, L, C, ms);
  auto dmod = dev<T>(mod);
  vec_vs_scalar("modulate_forward", mo, te, [&](int off) {
    auto dx = dev_at<T>(x, off), o = dev_at<T>(std::vector<float>(n, 0.0f), off);
    ops::modulate_forward(ctx(), o.p(), dx.p(), dmod.data(), dmod.data() + C, B, L, C, ms);
    return o.get();
  });
  vec_vs_scalar("gated_residual_forward (fp32 residual)", hr, Tol<float>::elem, [&](int off) {
    auto dh = dev_at<float>(h, off);
    auto dy = dev_at<T>(y, off);
    ops::gated_residual_forward(ctx(), dh.p(), dy.p(), dmod.data() + 2 * C, B, L, C, ms);
    return dh.get();
  });
}

}  // namespace
}  // namespace redi::test
