// tests/cuda/test_cuda_sampler.cu — the samplers' per-element ops on the GPU
// (redi/cuda/ops/sampler_steps.cuh) against the CPU ops (redi/ops/sampler_steps.hpp, which
// repeat the host Sampler and guided_prediction bit for bit; tests/test_device_path.cpp checks
// that end to end): per-row Philox noise, the guided branch rows, the guided combination for
// every policy (and one branch outside the guidance interval), the SDE, mean and Euler steps,
// Heun's predictor and corrector, the DDPM Ancestral / DDIM steps and the known-feature
// imposition of feature-conditioned sampling, all compared with ==
// except the Ancestral step with a learned variance (CUDA's double exp vs glibc's: within one
// float ulp). End to end: redi::DeviceSampler on a GPU Transformer against the host Sampler
// driving the same network through the DeviceBridge, for every sampler (==, learned variance
// within one float ulp per element per step, checked as 1e-5 relative on the final samples),
// feature-conditioned sampling included.
// Skips without a CUDA device.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "cuda_test_util.hpp"
#include "redi/cuda/backend.cuh"
#include "redi/cuda/ops/sampler_steps.cuh"
#include "redi/device_sampler.hpp"
#include "redi/diffusion/schedule.hpp"
#include "redi/nn/device_bridge.hpp"
#include "redi/nn/transformer.hpp"
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

TEST(CudaSamplerOps, HeunStepsMatchCpu) {
  REDI_REQUIRE_CUDA();
  const std::int64_t n = B * nin;
  const auto x = randn(std::size_t(n), 6), v1 = randn(std::size_t(n), 7), v2 = randn(std::size_t(n), 8);
  auto d_x = dev<float>(x), d_v1 = dev<float>(v1), d_v2 = dev<float>(v2), d_xp = dev_zeros<float>(std::size_t(n));
  std::vector<float> xp(static_cast<std::size_t>(n));
  ops::heun_step(cpu, xp.data(), x.data(), v1.data(), static_cast<const float*>(nullptr), n, 0.1875);
  ops::heun_step(ctx(), d_xp.data(), d_x.data(), d_v1.data(), static_cast<const float*>(nullptr), n, 0.1875);
  EXPECT_EQ(d_xp.to_host(), xp) << "predictor";
  auto h = x;
  ops::heun_step(cpu, h.data(), h.data(), v1.data(), v2.data(), n, 0.1875);
  ops::heun_step(ctx(), d_x.data(), d_x.data(), d_v1.data(), d_v2.data(), n, 0.1875);
  EXPECT_EQ(d_x.to_host(), h) << "corrector (in place)";
}

/// One DDPM step of the respaced 10-step schedule, as the DeviceSampler fills it.
ops::DdpmStep ddpm_spec(ops::DdpmKind kind, int i, bool learned_layout, bool learned, bool clip, double eta) {
  const auto s = diffusion::GaussianSchedule::linear(1000).respaced(diffusion::space_timesteps(1000, "10"));
  const auto u = std::size_t(i);
  ops::DdpmStep st;
  st.kind = kind;
  st.B = B;
  st.nin = nin;
  st.nout = learned_layout ? 2 * nin : nin;
  st.clip = clip;
  st.sr = s.sqrt_recip_alphas_cumprod[u];
  st.srm1 = s.sqrt_recipm1_alphas_cumprod[u];
  st.c1 = s.posterior_mean_coef1[u];
  st.c2 = s.posterior_mean_coef2[u];
  st.learned = learned;
  st.max_log = s.log_betas[u];
  st.min_log = s.posterior_log_variance_clipped[u];
  if (kind == ops::DdpmKind::Ancestral) {
    st.noisy = i > 0;
    st.sd = learned ? 0.0 : std::exp(0.5 * s.fixed_large_log_variance[u]);
  } else {
    st.noisy = i > 0 && eta != 0.0;
    const double ab = s.alphas_cumprod[u], abp = s.alphas_cumprod_prev[u];
    const double sigma = eta * std::sqrt((1.0 - abp) / (1.0 - ab)) * std::sqrt(1.0 - ab / abp);
    st.sd = sigma;
    st.a = std::sqrt(abp);
    st.b = std::sqrt(1.0 - abp - sigma * sigma);
  }
  return st;
}

/// Every element within one float ulp of the reference (NaN fails); returns the exact matches.
std::size_t expect_within_one_ulp(const std::vector<float>& got, const std::vector<float>& ref) {
  EXPECT_EQ(got.size(), ref.size());
  std::size_t exact = 0;
  for (std::size_t k = 0; k < ref.size() && k < got.size(); ++k) {
    const float ulp = std::nextafter(std::fabs(ref[k]), std::numeric_limits<float>::infinity()) - std::fabs(ref[k]);
    EXPECT_LE(std::fabs(got[k] - ref[k]), ulp) << "element " << k << ": " << got[k] << " vs " << ref[k];
    exact += got[k] == ref[k];
  }
  return exact;
}

TEST(CudaSamplerOps, DdpmStepsMatchCpu) {
  REDI_REQUIRE_CUDA();
  const std::int64_t n = B * nin;
  const auto x = randn(std::size_t(n), 9, 1.5f), z = randn(std::size_t(n), 10);
  const auto pred = randn(std::size_t(2 * n), 11, 0.8f);  // [B, 2 nin]: eps then the variance values
  auto d_pred = dev<float>(pred), d_z = dev<float>(z);
  struct Case { ops::DdpmKind kind; int i; bool layout2, learned, clip; double eta; };
  using K = ops::DdpmKind;
  for (const Case cs : {Case{K::Ancestral, 5, false, false, false, 0}, Case{K::Ancestral, 0, false, false, false, 0},
                        Case{K::Ancestral, 7, true, false, true, 0}, Case{K::Ancestral, 3, true, true, false, 0},
                        Case{K::Ancestral, 0, true, true, true, 0}, Case{K::Ddim, 6, false, false, false, 0},
                        Case{K::Ddim, 6, true, false, true, 0}, Case{K::Ddim, 4, false, false, true, 0.7},
                        Case{K::Ddim, 0, false, false, false, 1.0}}) {
    const auto st = ddpm_spec(cs.kind, cs.i, cs.layout2, cs.learned, cs.clip, cs.eta);
    auto h = x;
    ops::ddpm_step(cpu, h.data(), pred.data(), st.noisy ? z.data() : nullptr, st);
    auto d_x = dev<float>(x);
    ops::ddpm_step(ctx(), d_x.data(), d_pred.data(), st.noisy ? d_z.data() : nullptr, st);
    const auto got = d_x.to_host();
    EXPECT_NE(h, x) << "the step moves the state";
    if (st.learned && st.noisy) {
      const std::size_t exact = expect_within_one_ulp(got, h);
      EXPECT_GT(exact, h.size() * 9 / 10) << "CUDA's exp differs from glibc's in a few elements only";
    } else {
      EXPECT_EQ(got, h) << "kind " << int(cs.kind) << " i " << cs.i << " clip " << cs.clip << " eta " << cs.eta;
    }
  }
}

TEST(CudaSamplerOps, ImposeKnownMatchesCpu) {
  REDI_REQUIRE_CUDA();
  const std::int64_t nz = nin - nx;
  const auto x = randn(std::size_t(B * nin), 12), known = randn(std::size_t(B * nz), 13),
             zn = randn(std::size_t(B * nz), 14);
  auto d_known = dev<float>(known), d_zn = dev<float>(zn);
  for (const bool noised : {true, false}) {
    auto h = x;
    ops::impose_known(cpu, h.data(), known.data(), noised ? zn.data() : nullptr, B, nin, nx, 0.8123, 0.5832);
    auto d_x = dev<float>(x);
    ops::impose_known(ctx(), d_x.data(), d_known.data(), noised ? d_zn.data() : nullptr, B, nin, nx, 0.8123, 0.5832);
    EXPECT_NE(h, x);
    EXPECT_EQ(d_x.to_host(), h) << "noised " << noised;
  }
}

// ---- end to end: DeviceSampler on the GPU network vs the host Sampler over the same network
// through the DeviceBridge (the network evaluations see identical inputs, so the states agree
// bit for bit wherever the step ops do).

using Net = Transformer<float, Merged, Cuda>;

Net sampler_net(bool learn_sigma) {
  ModelConfig c;
  c.input_size = 8; c.patch = 2; c.image_channels = 4; c.feature_channels = 4;
  c.depth = 2; c.width = 64; c.heads = 4; c.num_classes = 10;
  c.learn_sigma = learn_sigma;
  Net m(c, ctx(), 3);
  std::vector<float> p = m.params().to_host();
  const std::vector<float> r = randn(p.size(), 23, 0.05f);  // the init zeroes the output layers
  for (std::size_t i = 0; i < p.size(); ++i) p[i] += r[i];
  m.params().from_host(p);
  return m;
}

template <class S, class G>
void expect_device_sampler_matches_host(bool learn_sigma, const typename S::Options& so, bool exact = true,
                                        bool known_z = false) {
  ctx().set_tf32(false);
  Net net = sampler_net(learn_sigma);
  const int Bs = 3;
  const std::vector<int> labels = {2, 10, 7};  // 10: the null class
  SampleRequest req;
  req.B = Bs; req.labels = labels.data(); req.seed = 31; req.first_index = 100;
  const std::vector<float> zk = randn(std::size_t(Bs) * net.feature_channels() * 64, 24);
  if (known_z) req.known_z = zk.data();
  GuidanceOptions go;
  go.cfg_scale = 2.1;
  go.rg_scale = 1.4;
  const std::size_t n = std::size_t(Bs) * net.channels_in() * 64;
  std::vector<float> dev_out(n), host_out(n), again(n);
  DeviceSampler<Net, S, G> ds;
  ASSERT_TRUE(ds.serves(net, req));
  ds.run(net, dev_out.data(), req, so, go);
  ds.run(net, again.data(), req, so, go);
  EXPECT_EQ(again, dev_out) << "the device sampler is deterministic";
  DeviceBridge<Net> bridge;
  Sampler<S, G, float> hs(so, go);
  hs.run(bridge.bind(net), host_out.data(), req);
  for (float v : host_out) ASSERT_TRUE(std::isfinite(v));
  if (exact) EXPECT_EQ(dev_out, host_out);
  else EXPECT_TRUE(close(dev_out, host_out, 1e-5, 1e-6));
}

TEST(CudaDeviceSampler, EverySamplerMatchesTheHostSampler) {
  REDI_REQUIRE_CUDA();
  using CR = Combine<CFG<VaeOnly>, RepGuidance>;
  expect_device_sampler_matches_host<SdeEulerMaruyama, CR>(false, {.num_steps = 5});
  expect_device_sampler_matches_host<OdeEuler, CFG<Joint>>(false, {.num_steps = 4});
  expect_device_sampler_matches_host<OdeHeun, CR>(false, {.num_steps = 3});
  expect_device_sampler_matches_host<OdeHeun, RepGuidance>(false, {.num_steps = 3});
  expect_device_sampler_matches_host<OdeHeun, CR>(false, {.num_steps = 3}, true, /*known_z=*/true);
  expect_device_sampler_matches_host<DDIM, CFG<VaeOnly>>(false, {.respacing = "ddim4"}, true, /*known_z=*/true);
  expect_device_sampler_matches_host<DDIM, CR>(false, {.respacing = "ddim5", .eta = 0.5, .clip_denoised = true});
  expect_device_sampler_matches_host<Ancestral, CFG<VaeOnly>>(false, {.respacing = "5"});
  expect_device_sampler_matches_host<Ancestral, CR>(true, {.respacing = "5", .variance = DdpmVariance::FixedSmall});
  // learned variance: CUDA's exp, one float ulp per element and step at most
  expect_device_sampler_matches_host<Ancestral, CR>(true, {.respacing = "5"}, /*exact=*/false);
}

}  // namespace
}  // namespace redi::test
