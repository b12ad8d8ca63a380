// tests/cuda/test_cuda_loss.cu — the joint loss's per-element ops on the GPU
// (redi/cuda/ops/joint_loss.cuh) against the CPU ops (redi/ops/joint_loss.hpp, which repeat the
// host JointLoss bit for bit; tests/test_device_path.cpp checks that end to end): noisy input
// and target bit-identical (device Philox, correctly rounded double arithmetic), dout
// bit-identical, per-sample squared-error sums to double rounding. Flow and DDPM targets, a
// dropped sample with and without zero_z, element counts not a multiple of 4, several chunks
// per sample. Skips without a CUDA device.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "cuda_test_util.hpp"
#include "redi/cuda/ops/joint_loss.cuh"
#include "redi/ops/joint_loss.hpp"

namespace redi::test {
namespace {

void check(ops::LossTarget tgt, bool zero_z, std::int64_t nx, std::int64_t nz) {
  const int B = 5;
  const std::int64_t nin = nx + nz, n = B * nin;
  const auto x0 = randn(std::size_t(B * nx), 1), z0 = randn(std::size_t(std::max<std::int64_t>(1, B * nz)), 2);
  std::vector<ops::LossSample> s(B);
  for (int i = 0; i < B; ++i) {
    const double t = 0.1 + 0.17 * i;
    s[i].a = tgt == ops::LossTarget::Epsilon ? std::sqrt(1 - t) : t;
    s[i].b = tgt == ops::LossTarget::Epsilon ? std::sqrt(t) : 1 - t;
    s[i].drop = i == 2;
    s[i].lam = s[i].drop ? 0.0 : 0.7;
    s[i].stream = 1000 + 7 * i;
  }
  const std::uint64_t key = 0x1234567;
  std::vector<float> in(n), tg(n);
  ops::joint_loss_inputs(cpu, in.data(), tg.data(), x0.data(), z0.data(), s.data(), B, nx, nz, key, tgt, zero_z);
  auto d_x0 = dev<float>(x0), d_z0 = dev<float>(z0);
  auto d_in = dev_zeros<float>(n), d_tg = dev_zeros<float>(n);
  Tensor<ops::LossSample, Cuda> d_s(Shape{B});
  d_s.from_host(s);
  ops::joint_loss_inputs(ctx(), d_in.data(), d_tg.data(), d_x0.data(), d_z0.data(), d_s.data(), B, nx, nz, key,
                         tgt, zero_z);
  EXPECT_EQ(d_in.to_host(), in) << "noisy input";
  EXPECT_EQ(d_tg.to_host(), tg) << "target";
  // a network output near the target
  auto out = tg;
  const auto pert = randn(out.size(), 3, 0.3f);
  for (std::size_t k = 0; k < out.size(); ++k) out[k] += pert[k];
  std::vector<float> dout(n);
  std::vector<double> sums(2 * B);
  ops::joint_loss_grad(cpu, dout.data(), sums.data(), out.data(), tg.data(), s.data(), B, nx, nz, 1.0 / B);
  auto d_out = dev<float>(out), d_dout = dev_zeros<float>(n);
  Tensor<double, Cuda> d_sums(Shape{2 * B});
  ops::joint_loss_grad(ctx(), d_dout.data(), d_sums.data(), d_out.data(), d_tg.data(), d_s.data(), B, nx, nz,
                       1.0 / B);
  EXPECT_EQ(d_dout.to_host(), dout) << "dout";
  const auto gs = d_sums.to_host();
  for (int k = 0; k < 2 * B; ++k) EXPECT_NEAR(gs[k], sums[k], 1e-12 * std::max(1.0, sums[k])) << "sum " << k;
}

TEST(CudaJointLoss, FlowMatchesCpu) {
  REDI_REQUIRE_CUDA();
  check(ops::LossTarget::Velocity, false, 4 * 64, 8 * 64);
  check(ops::LossTarget::Velocity, true, 3 * 7 * 7, 5 * 3 * 3);  // features on their own grid, odd sizes
}

TEST(CudaJointLoss, DdpmMatchesCpu) {
  REDI_REQUIRE_CUDA();
  check(ops::LossTarget::Epsilon, false, 4 * 32 * 32, 8 * 32 * 32);  // several chunks per sample
  check(ops::LossTarget::Epsilon, false, 4 * 16, 0);                 // r = 0
}

}  // namespace
}  // namespace redi::test
