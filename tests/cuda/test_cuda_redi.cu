// tests/cuda/test_cuda_redi.cu — the user-facing redi::ReDi<SiT, Merged, FlowMatching, P, Cuda>
// against the CPU ReDi (redi_reference.cpp, the same run code: redi_run.hpp):
//   - FP32 on the GPU (TF32 off) reproduces the CPU's losses, weights and guided samples;
//   - BF16Mixed tracks them within bf16 tolerances, and learns the toy set;
//   - infer() equals forward() on the device;
//   - the cuDNN fused attention (where cuDNN supports the shape) equals the fallback kernels.
// All tests skip without a CUDA device.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "cuda_test_util.hpp"
#include "redi/cuda/backend.cuh"
#include "redi/redi_model.hpp"
#include "redi_run.hpp"

namespace {

using redi::Cuda;
using redi::ModelConfig;
using redi::test::ctx;
using redi::test::ref::redi_tiny;
using redi::test::ref::run_cpu_redi;
using redi::test::ref::run_redi;
using redi::test::ref::run_options;
using redi::test::ref::RunSpec;

template <class P>
using GpuReDi = redi::ReDi<redi::SiT, redi::Merged, redi::FlowMatching, P, Cuda>;

std::vector<float> as_float(const std::vector<double>& v) { return {v.begin(), v.end()}; }

template <class P>
redi::test::ref::RunResult run_gpu(const ModelConfig& c, const RunSpec& s) {
  using M = GpuReDi<P>;
  M m(run_options<M>(c, s), ctx());
  return run_redi(m, c, s);
}

/// Tolerances (rtol = atol x rms) of a GPU run against the CPU run.
struct RunTol {
  double losses, weights, samples;
};

/// The same run (3 steps, then a CFG+RG Euler sample) on the CPU and as ReDi<..., P, Cuda>.
template <class P>
void expect_matches_cpu(RunTol tol) {
  const ModelConfig c = redi_tiny();
  const RunSpec s;
  const auto cpu = run_cpu_redi(c, s);
  const auto gpu = run_gpu<P>(c, s);
  EXPECT_TRUE(redi::test::close(as_float(gpu.losses), as_float(cpu.losses), tol.losses)) << "losses";
  EXPECT_TRUE(redi::test::close(gpu.params, cpu.params, tol.weights, tol.weights)) << "weights after the steps";
  EXPECT_TRUE(redi::test::close(gpu.samples, cpu.samples, tol.samples, tol.samples)) << "CFG+RG Euler samples";
}

TEST(CudaReDi, Fp32MatchesCpu) {
  REDI_REQUIRE_CUDA();
  ctx().set_tf32(false);
  expect_matches_cpu<float>({1e-4, 5e-3, 2e-3});
}

// bf16 activations: outputs carry ~2^-8 relative error; the loss is a mean over many of them.
// AdamW's first steps move each weight by ~lr * sign(g): a sign flip of a near-zero gradient
// costs up to 2 lr per step (lr = 1e-3, 3 steps).
TEST(CudaReDi, Bf16MixedTracksFp32) {
  REDI_REQUIRE_CUDA();
  expect_matches_cpu<redi::BF16Mixed>({3e-2, 1e-2, 5e-2});
}

TEST(CudaReDi, Bf16MixedLearnsTheToySet) {
  REDI_REQUIRE_CUDA();
  const ModelConfig c = redi_tiny();
  RunSpec s;
  s.B = 16;
  s.steps = 150;
  s.lr = 2e-3;
  const auto gpu = run_gpu<redi::BF16Mixed>(c, s);
  double first = 0, last = 0;
  for (int k = 0; k < 20; ++k) {
    first += gpu.losses[k] / 20;
    last += gpu.losses[s.steps - 1 - k] / 20;
  }
  for (double l : gpu.losses) ASSERT_TRUE(std::isfinite(l));
  EXPECT_LT(last, 0.6 * first) << "first " << first << " last " << last;
  for (float v : gpu.samples) ASSERT_TRUE(std::isfinite(v));
}

/// A device model with randomised weights (the DiT init zeroes the output layers).
template <class P>
redi::Transformer<P, redi::Merged, Cuda> random_model(const ModelConfig& c, const Cuda& cx) {
  redi::Transformer<P, redi::Merged, Cuda> m(c, cx, 3);
  std::vector<float> p = m.params().to_host();
  std::vector<float> n = redi::test::randn(p.size(), 17, 0.05f);
  for (std::size_t i = 0; i < p.size(); ++i) p[i] += n[i];
  m.params().from_host(p);
  return m;
}

TEST(CudaReDi, InferMatchesForwardOnDevice) {
  REDI_REQUIRE_CUDA();
  ctx().set_tf32(false);
  const ModelConfig c = redi_tiny();
  auto m = random_model<float>(c, ctx());
  const int B = 5;
  const auto x = redi::test::randn(std::size_t(B) * c.channels_in() * 64, 4);
  const std::vector<float> t = {0.1f, 0.3f, 0.5f, 0.7f, 0.9f};
  const std::vector<int> y = {0, 1, 10, 3, 4};
  auto dx = redi::test::dev<float>(x);
  auto dt = redi::test::dev<float>(t);
  auto dy = redi::test::dev_int(y);
  redi::Tensor<float, Cuda> o1(redi::Shape{std::int64_t(B) * c.channels_out() * 64}), o2(o1.shape());
  m.forward(dx.data(), dt.data(), dy.data(), B, o1.data());
  m.infer(dx.data(), dt.data(), dy.data(), B, o2.data());
  EXPECT_TRUE(redi::test::close(redi::test::host(o2), redi::test::host(o1), 1e-5, 1e-6));
  EXPECT_LT(m.infer_arena_bytes() * 2, m.train_arena_bytes());
}

TEST(CudaReDi, FusedAttentionMatchesFallback) {
  REDI_REQUIRE_CUDA();
  const ModelConfig c = redi_tiny(/*width=*/128, /*heads=*/2);  // head dim 64, as in SiT-S..XL
  const int B = 4, L = c.tokens(), H = c.heads, hd = c.width / c.heads;
  if (!redi::ops::flash_attention_supported<redi::bf16>(ctx(), B, L, H, hd))
    GTEST_SKIP() << "cuDNN fused attention does not support this shape here: "
                 << redi::ops::flash_attention_status(ctx(), B, L, H, hd);
  const Cuda plain = Cuda::create(0);
  plain.set_cudnn_sdpa(false);
  auto mf = random_model<redi::BF16Mixed>(c, ctx());
  auto mp = random_model<redi::BF16Mixed>(c, plain);
  const auto x = redi::test::randn(std::size_t(B) * c.channels_in() * 64, 5);
  const std::vector<float> t = {0.2f, 0.4f, 0.6f, 0.8f};
  const std::vector<int> y = {0, 5, 10, 2};
  auto xin = redi::test::dev<redi::bf16>(x);
  auto dt = redi::test::dev<float>(t);
  auto dy = redi::test::dev_int(y);
  const std::int64_t no = std::int64_t(B) * c.channels_out() * 64;
  redi::Tensor<redi::bf16, Cuda> of(redi::Shape{no}), op(redi::Shape{no});
  mf.forward(xin.data(), dt.data(), dy.data(), B, of.data());
  mp.forward(xin.data(), dt.data(), dy.data(), B, op.data());
  EXPECT_TRUE(mf.uses_flash_attention());
  EXPECT_FALSE(mp.uses_flash_attention());
  EXPECT_TRUE(redi::test::close(redi::test::host(of), redi::test::host(op), 3e-2, 2e-2)) << "outputs";
  auto wb = redi::test::dev<redi::bf16>(redi::test::randn(std::size_t(no), 6));
  mf.zero_grad();
  mp.zero_grad();
  mf.backward(wb.data());
  mp.backward(wb.data());
  EXPECT_TRUE(redi::test::close(mf.grads().to_host(), mp.grads().to_host(), 5e-2, 3e-2)) << "gradients";
}

}  // namespace
