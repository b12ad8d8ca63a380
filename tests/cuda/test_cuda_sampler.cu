// tests/cuda/test_cuda_sampler.cu — the flow sampler's per-element ops on the GPU
// (redi/cuda/ops/sampler_steps.cuh) against the CPU ops (redi/ops/sampler_steps.hpp, which
// repeat the host Sampler and guided_prediction bit for bit; tests/test_device_path.cpp checks
// that end to end): per-row Philox noise, the guided branch rows, the guided combination for
// every policy (and one branch outside the guidance interval), and the SDE, mean and Euler
// steps, all compared with ==. Skips without a CUDA device.
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "cuda_test_util.hpp"
#include "redi/cuda/ops/sampler_steps.cuh"
#include "redi/ops/sampler_steps.hpp"

namespace redi::test {
namespace {

constexpr int B = 3;
constexpr std::int64_t nin = 2 * 7 * 7 + 3 * 7 * 7, nx = 2 * 7 * 7;

ops::GuideSpec spec(bool cfg, bool rg, bool feat, int nb) {
  ops::GuideSpec g;
  g.B = B; g.nb = nb; g.null_class = 10;
  g.cfg = cfg; g.rg = rg; g.guide_features = feat;
  g.cfg_branch = cfg ? 1 : -1;
  g.rg_branch = rg ? (cfg ? 2 : 1) : -1;
  g.nin = nin; g.nout = nin; g.nx = nx;
  return g;
}

TEST(CudaSamplerOps, NoiseRowsMatchCpu) {
  REDI_REQUIRE_CUDA();
  const std::vector<std::uint64_t> idx = {7, 0, 123456};
  std::vector<float> h(B * nin);
  ops::fill_normal_rows(cpu, h.data(), B, nin, 99, idx.data(), 3u, 17u);
  Tensor<std::uint64_t, Cuda> d_idx(Shape{B});
  d_idx.from_host(idx);
  auto d = dev_zeros<float>(h.size());
  ops::fill_normal_rows(ctx(), d.data(), B, nin, 99, d_idx.data(), 3u, 17u);
  EXPECT_EQ(d.to_host(), h);
}

TEST(CudaSamplerOps, GuidanceRowsAndCombinationMatchCpu) {
  REDI_REQUIRE_CUDA();
  const auto x = randn(std::size_t(B * nin), 1);
  const std::vector<int> y = {4, 0, 9};
  auto d_x = dev<float>(x);
  auto d_y = dev_int(y);
  struct Case { bool cfg, rg, feat; int nb; };
  for (const Case cs : {Case{false, false, false, 1}, Case{true, false, false, 2}, Case{true, false, true, 2},
                        Case{false, true, true, 2}, Case{true, true, false, 3}, Case{true, true, true, 3},
                        Case{true, true, false, 1}}) {
    const auto g = spec(cs.cfg, cs.rg, cs.feat, cs.nb);
    const std::size_t rows = std::size_t(cs.nb) * B;
    std::vector<float> in(rows * nin), time(rows);
    std::vector<int> lab(rows);
    ops::guidance_inputs(cpu, in.data(), time.data(), lab.data(), x.data(), y.data(), g, 0.37);
    auto d_in = dev_zeros<float>(in.size()), d_time = dev_zeros<float>(rows);
    Tensor<int, Cuda> d_lab(Shape{std::int64_t(rows)});
    ops::guidance_inputs(ctx(), d_in.data(), d_time.data(), d_lab.data(), d_x.data(), d_y.data(), g, 0.37);
    EXPECT_EQ(d_in.to_host(), in) << "branch rows, nb " << cs.nb;
    EXPECT_EQ(d_time.to_host(), time);
    EXPECT_EQ(d_lab.to_host(), lab);
    const auto out = randn(rows * nin, 2);
    std::vector<float> pred(std::size_t(B) * nin);
    ops::guidance_combine(cpu, pred.data(), out.data(), g, 2.4, 1.5);
    auto d_out = dev<float>(out), d_pred = dev_zeros<float>(pred.size());
    ops::guidance_combine(ctx(), d_pred.data(), d_out.data(), g, 2.4, 1.5);
    EXPECT_EQ(d_pred.to_host(), pred) << "guided prediction cfg " << cs.cfg << " rg " << cs.rg << " nb " << cs.nb;
  }
}

TEST(CudaSamplerOps, FlowStepsMatchCpu) {
  REDI_REQUIRE_CUDA();
  const std::int64_t n = B * nin;
  const auto x = randn(std::size_t(n), 3), v = randn(std::size_t(n), 4), z = randn(std::size_t(n), 5);
  auto d_v = dev<float>(v), d_z = dev<float>(z);
  for (auto kind : {ops::FlowStep::Sde, ops::FlowStep::Mean, ops::FlowStep::Euler}) {
    auto h = x;
    const float* noise = kind == ops::FlowStep::Sde ? z.data() : nullptr;
    ops::flow_step(cpu, h.data(), v.data(), noise, n, kind, 0.3, 0.0384, 1.0, 0.21);
    auto d_x = dev<float>(x);
    ops::flow_step(ctx(), d_x.data(), d_v.data(), kind == ops::FlowStep::Sde ? d_z.data() : nullptr, n, kind, 0.3,
                   0.0384, 1.0, 0.21);
    EXPECT_EQ(d_x.to_host(), h) << "kind " << int(kind);
  }
}

}  // namespace
}  // namespace redi::test
