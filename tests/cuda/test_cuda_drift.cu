// tests/cuda/test_cuda_drift.cu — the bf16 drift test on the GPU (tests/bf16_drift.hpp, the
// same code as the CPU emulation in tests/test_bf16_emulation.cpp): a depth-28 SiT ReDi in
// BF16Mixed (real bf16 GEMMs, attention and activations; fp32 residual stream, dh and
// conditioning-gradient sum) for 20 AdamW steps against FP32 on the same GPU (TF32 off), which
// also computes the reference gradient at each step's weights. The bound is the CPU emulation's
// with a factor 2 for what the emulation does not model (cuBLASLt's accumulation order, the
// fused cuDNN attention where it serves the shape). Skips without a CUDA device.
#include <gtest/gtest.h>

#include <cstdio>

#include "../bf16_drift.hpp"
#include "cuda_test_util.hpp"
#include "redi/cuda/backend.cuh"
#include "redi/redi_model.hpp"

namespace {

using redi::test::ctx;
namespace drift = redi::test::drift;

template <class P>
using GpuReDi = redi::ReDi<redi::SiT, redi::Merged, redi::FlowMatching, P, redi::Cuda>;

TEST(CudaBf16Drift, Bf16MixedStaysWithinTheEmulatedBound) {
  REDI_REQUIRE_CUDA();
  ctx().set_tf32(false);
  const drift::Spec s;
  using F = GpuReDi<redi::FP32>;
  using M = GpuReDi<redi::BF16Mixed>;
  F f(drift::options<F>(s), ctx()), fr(drift::options<F>(s), ctx());
  M m(drift::options<M>(s), ctx());
  const auto rf = drift::run(f, s);
  const auto rm = drift::run(m, s, &fr);
  const auto r = drift::compare(rm, rf);
  std::printf("[drift gpu] bf16-mixed  grad blocks %.4g  grad cond %.4g  grad other %.4g  weights %.4g  loss %.4g\n",
              r.grad_blocks, r.grad_cond, r.grad_other, r.weight_drift, r.loss_err);
  EXPECT_LT(r.grad_blocks, 2 * 0.0075);
  EXPECT_LT(r.grad_cond, 2 * 0.0065);
  EXPECT_LT(r.grad_other, 2 * 0.004);
  EXPECT_LT(r.weight_drift, 0.2);
  EXPECT_LT(r.loss_err, 0.02);
}

}  // namespace
