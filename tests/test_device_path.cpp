// The device code path of ReDi<..., Dev> — everything a GPU model does differently from a CPU
// one except the kernels — exercised without a GPU. `StagedHost` is a device tag that is NOT
// host (so ReDi runs its loss through DeviceLoss or DeviceBridge, its samplers through
// DeviceBridge, runs the optimiser through
// the device's backend, and checkpoints stage through host memory) but whose memory is host
// memory; its backend is the CPU's (one specialisation of redi::Backend). Against the plain CPU
// model the results must be identical bit for bit: losses, weights, EMA, samples, and
// checkpoints in both directions; a failed checkpoint load must leave the staged model unchanged.
// The training steps take the device loss path (redi::DeviceLoss: the joint loss's per-element
// ops run by the device's backend) wherever it serves — flow matching and DDPM without learned
// sigma — and the host JointLoss through the DeviceBridge otherwise (learned sigma); every
// sampler (Ancestral, DDIM, SdeEulerMaruyama, OdeEuler, OdeHeun, learned sigma and
// feature-conditioned sampling included) takes the device sampler (redi::DeviceSampler).
// With activation recomputation (nn/recompute.hpp) on the device model only, the results are
// still the CPU model's (without recomputation) bit for bit.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

#include "io_test_util.hpp"
#include "redi/core/device.hpp"
#include "redi/core/philox.hpp"
#include "redi/ops/cpu_backend.hpp"
#include "redi/train/checkpoint.hpp"
#include "staged_host.hpp"
#include "toy_data.hpp"

using namespace redi;
using staged::StagedHost;

namespace {

ModelConfig tiny() {
  ModelConfig c;
  c.input_size = 8; c.patch = 2; c.image_channels = 2; c.feature_channels = 3;
  c.depth = 2; c.width = 32; c.heads = 2; c.num_classes = 4;
  return c;
}

template <class M>
typename M::Options opts() {
  typename M::Options o;
  o.model = tiny();
  o.init_seed = 1;
  return o;
}

/// Fill weights, EMA and both moments with distinct normals (through the host, as a user would).
template <class M>
void randomize(M& m, std::uint64_t seed) {
  const auto n = std::size_t(m.net().num_params());
  std::vector<float> v(n);
  philox::fill_normal(v.data(), n, seed, 1);
  m.net().params().from_host(v);
  philox::fill_normal(v.data(), n, seed, 2);
  m.ema().params().from_host(v);
  philox::fill_normal(v.data(), n, seed, 3);
  m.adam_m().from_host(v);
  philox::fill_normal(v.data(), n, seed, 4);
  for (auto& x : v) x *= x;
  m.adam_v().from_host(v);
}

template <class A, class B>
void expect_same_state(A& a, B& b) {
  EXPECT_EQ(std::as_const(a.net()).params().to_host(), std::as_const(b.net()).params().to_host());
  EXPECT_EQ(std::as_const(a.ema()).params().to_host(), std::as_const(b.ema()).params().to_host());
  EXPECT_EQ(a.adam_m().to_host(), b.adam_m().to_host());
  EXPECT_EQ(a.adam_v().to_host(), b.adam_v().to_host());
  EXPECT_EQ(a.step(), b.step());
}

using DevModel = ReDi<SiT, Merged, FlowMatching, float, StagedHost>;
using CpuModel = ReDi<SiT, Merged, FlowMatching, float, Cpu>;

}  // namespace

TEST(TrainCheckpointDevice, DeviceToCpuAndBackAreBitIdentical) {
  EXPECT_EQ(train::model_type_name<DevModel>(), train::model_type_name<CpuModel>());
  test::TempDir dir("ckpt_device");
  DevModel d(opts<DevModel>(), StagedHost{});
  randomize(d, 5);
  d.set_step(7);
  train::save_checkpoint(dir.path() / "dev.safetensors", d, {.step = 7, .seed = 3});
  CpuModel c(opts<CpuModel>());
  const auto st = train::load_checkpoint(dir.path() / "dev.safetensors", c);
  EXPECT_EQ(st.step, 7);
  expect_same_state(d, c);
  // and back: a CPU checkpoint into a device model
  randomize(c, 9);
  c.set_step(11);
  train::save_checkpoint(dir.path() / "cpu.safetensors", c, {.step = 11});
  train::load_checkpoint(dir.path() / "cpu.safetensors", d);
  expect_same_state(c, d);
  // the position tables written from the staged path equal the model's own
  const auto f = io::SafeTensorsFile::open(dir.path() / "dev.safetensors");
  EXPECT_EQ(f.read<float>("model.pos_embed"), c.net().pos_embed().to_host());
}

TEST(TrainCheckpointDevice, FailedLoadLeavesTheDeviceModelAlone) {
  test::TempDir dir("ckpt_device_bad");
  CpuModel c(opts<CpuModel>());
  randomize(c, 2);
  train::save_checkpoint(dir.path() / "ok.safetensors", c, {.step = 1});
  // drop one tensor: a checkpoint with everything but opt.v.final_layer.linear.bias
  const auto f = io::SafeTensorsFile::open(dir.path() / "ok.safetensors");
  io::SafeTensorsWriter w;
  std::vector<std::vector<float>> keep;
  keep.reserve(f.names().size());
  for (const auto& name : f.names()) {
    if (name == "opt.v.final_layer.linear.bias") continue;
    keep.push_back(f.read<float>(name));
    w.add<float>(name, Shape::from(f.info(name).shape), keep.back().data());
  }
  w.write(dir.path() / "bad.safetensors", f.metadata());
  DevModel d(opts<DevModel>(), StagedHost{});
  randomize(d, 4);
  const auto before = std::as_const(d.net()).params().to_host();
  test::expect_error([&] { train::load_checkpoint(dir.path() / "bad.safetensors", d); },
                     {"bad.safetensors", "opt.v.final_layer.linear.bias"});
  EXPECT_EQ(std::as_const(d.net()).params().to_host(), before);
}

// ---- the whole ReDi on the device path: train, EMA, guided sampling

template <class M>
typename M::Options train_opts(const ModelConfig& c) {
  typename M::Options o;
  o.model = c;
  o.init_seed = 2;
  o.train.adamw.lr = 1e-3;
  o.train.ema_decay = 0.9;
  o.train.grad_clip = 0.5;
  o.train.seed = 6;
  o.loss.p_drop = 0.3;
  return o;
}

template <class M>
std::pair<std::vector<double>, std::vector<float>> run(M& m, const ModelConfig& c) {
  test::ToyData d(c, 6, 3);
  std::vector<double> losses;
  for (int k = 0; k < 4; ++k) {
    auto st = m.train_step(d.x.data(), d.z.data(), d.y.data(), 6, std::uint64_t(k) * 6);
    losses.push_back(st.loss.loss);
    losses.push_back(st.grad_norm);
  }
  const int B = 3;
  std::vector<int> labels = {0, 2, 3};
  std::vector<float> out(std::size_t(B) * c.channels_in() * c.input_size * c.input_size);
  SampleRequest req;
  req.B = B; req.labels = labels.data(); req.seed = 4;
  GuidanceOptions go;
  go.cfg_scale = 1.8;
  go.rg_scale = 1.3;
  if constexpr (M::objective::is_flow) {
    typename SdeEulerMaruyama::Options so;
    so.num_steps = 6;
    m.template sample<SdeEulerMaruyama, Combine<CFG<VaeOnly>, RepGuidance>>(out.data(), req, so, go);
  } else {
    typename DDIM::Options so;
    so.respacing = "5";
    so.eta = 0.5;
    m.template sample<DDIM, Combine<CFG<Joint>, RepGuidance>>(out.data(), req, so, go);
  }
  return {losses, out};
}

template <class B, class F, class O>
void check_device_path(bool learn_sigma, std::int64_t device_loss_steps, std::int64_t device_sampling,
                       Recompute recompute = Recompute::None) {
  ModelConfig c = tiny();
  c.learn_sigma = learn_sigma;
  using Dm = ReDi<B, F, O, float, StagedHost>;
  using Cm = ReDi<B, F, O, float, Cpu>;
  Dm d(train_opts<Dm>(c), StagedHost{});
  Cm h(train_opts<Cm>(c));
  d.net().set_recompute(recompute);
  const auto [ld, sd] = run(d, c);
  const auto [lh, sh] = run(h, c);
  EXPECT_EQ(ld, lh) << "losses and gradient norms";
  EXPECT_EQ(sd, sh) << "guided samples";
  expect_same_state(d, h);
  EXPECT_EQ(d.device_loss_evaluations(), device_loss_steps) << "steps whose loss ran on the device";
  EXPECT_EQ(h.device_loss_evaluations(), 0);
  EXPECT_EQ(d.device_sampling_runs(), device_sampling) << "sample() calls that ran on the device";
}

TEST(DevicePath, SiTMergedFlowMatchesTheCpuModelBitForBit) {
  check_device_path<SiT, Merged, FlowMatching>(false, 4, 1);
}
TEST(DevicePath, DiTMergedDdpmMatchesTheCpuModelBitForBit) {
  check_device_path<DiT, Merged, DDPM>(false, 4, 1);
}
TEST(DevicePath, RecomputationOnTheDeviceMatchesTheCpuModelBitForBit) {
  check_device_path<SiT, Merged, FlowMatching>(false, 4, 1, Recompute::Attention);
  check_device_path<SiT, Merged, FlowMatching>(false, 4, 1, Recompute::Mlp);
  check_device_path<DiT, Separate, DDPM>(true, 0, 1, Recompute::Block);
}

// The device sampler's other cases: ODE Euler, every guidance policy, a guidance interval
// (branch count changing between steps), explicit sample indices, no labels, and
// feature-conditioned sampling (known_z).
template <class G>
void check_ode_sampling(const GuidanceOptions& go, bool known_z = false) {
  ModelConfig c = tiny();
  using Dm = ReDi<SiT, Separate, FlowMatching, float, StagedHost>;
  using Cm = ReDi<SiT, Separate, FlowMatching, float, Cpu>;
  Dm d(train_opts<Dm>(c), StagedHost{});
  Cm h(train_opts<Cm>(c));
  randomize(d, 7);
  randomize(h, 7);
  const int B = 3;
  const std::vector<std::uint64_t> idx = {5, 1, 9};
  const std::size_t n = std::size_t(B) * c.channels_in() * c.input_size * c.input_size;
  std::vector<float> zk(std::size_t(B) * c.feature_channels * c.input_size * c.input_size, 0.5f);
  SampleRequest req;
  req.B = B; req.seed = 12; req.index = idx.data();
  if (known_z) req.known_z = zk.data();
  typename OdeEuler::Options so;
  so.num_steps = 5;
  std::vector<float> od(n), oh(n);
  d.template sample<OdeEuler, G>(od.data(), req, so, go);
  h.template sample<OdeEuler, G>(oh.data(), req, so, go);
  EXPECT_EQ(od, oh);
  EXPECT_EQ(d.device_sampling_runs(), 1);
}

TEST(DevicePath, DeviceOdeSamplingMatchesTheCpuBitForBit) {
  GuidanceOptions go;
  go.cfg_scale = 2.0;
  go.rg_scale = 1.4;
  check_ode_sampling<NoGuidance>(go);
  check_ode_sampling<CFG<Joint>>(go);
  check_ode_sampling<CFG<VaeOnly>>(go);
  check_ode_sampling<RepGuidance>(go);
  go.interval_lo = 0.3;  // unguided (one branch) for the first steps
  check_ode_sampling<Combine<RepGuidance, CFG<Joint>>>(go);
  check_ode_sampling<Combine<CFG<VaeOnly>, RepGuidance>>(go, /*known_z=*/true);
}
TEST(DevicePath, DiTSeparateDdpmLearnedSigmaMatchesTheCpuModelBitForBit) {
  check_device_path<DiT, Separate, DDPM>(true, 0, 1);  // learned sigma: the host loss, the device sampler
}

// ---- the DDPM samplers and OdeHeun on the device, against the CPU model bit for bit.
// Weights: small normals (scale 0.05) in the network and the EMA, so every output channel —
// the learned variance's too — is non-trivial and the variance stays in range.
template <class M>
void randomize_small(M& m, std::uint64_t seed) {
  const auto n = std::size_t(m.net().num_params());
  std::vector<float> v(n);
  philox::fill_normal(v.data(), n, seed, 1);
  for (auto& x : v) x *= 0.05f;
  m.net().params().from_host(v);
  m.ema().params().from_host(v);
}

template <class BB, class F, class O, class S, class G>
void check_sampling(const typename S::Options& so, const GuidanceOptions& go, bool learn_sigma, bool known_z = false) {
  ModelConfig c = tiny();
  c.learn_sigma = learn_sigma;
  using Dm = ReDi<BB, F, O, float, StagedHost>;
  using Cm = ReDi<BB, F, O, float, Cpu>;
  Dm d(train_opts<Dm>(c), StagedHost{});
  Cm h(train_opts<Cm>(c));
  randomize_small(d, 8);
  randomize_small(h, 8);
  const int B = 3;
  const std::vector<std::uint64_t> idx = {4, 11, 2};
  const std::vector<int> labels = {3, 0, 1};
  const std::size_t n = std::size_t(B) * c.channels_in() * c.input_size * c.input_size;
  std::vector<float> zk(std::size_t(B) * c.feature_channels * c.input_size * c.input_size, -0.25f);
  SampleRequest req;
  req.B = B; req.seed = 21; req.index = idx.data(); req.labels = labels.data();
  if (known_z) req.known_z = zk.data();
  std::vector<float> od(n), oh(n);
  d.template sample<S, G>(od.data(), req, so, go);
  h.template sample<S, G>(oh.data(), req, so, go);
  EXPECT_EQ(od, oh);
  double ss = 0;
  for (float v : oh) {
    ASSERT_TRUE(std::isfinite(v));
    ss += double(v) * v;
  }
  EXPECT_GT(ss, 1e-3 * double(n)) << "the samples are not trivially zero";
  EXPECT_EQ(d.device_sampling_runs(), 1) << "the device sampler served the run";
  if (known_z) {  // the output's features are the known ones
    const std::size_t per = n / B, nx = std::size_t(c.image_channels) * c.input_size * c.input_size;
    for (int b = 0; b < B; ++b)
      for (std::size_t e = nx; e < per; ++e) ASSERT_EQ(od[std::size_t(b) * per + e], -0.25f);
  }
}

TEST(DevicePath, DeviceAncestralSamplingMatchesTheCpuBitForBit) {
  GuidanceOptions go;
  go.cfg_scale = 2.2;
  go.rg_scale = 1.3;
  Ancestral::Options so;
  so.respacing = "6";
  // learned sigma (Auto reads the variance channels), every guidance policy
  check_sampling<DiT, Separate, DDPM, Ancestral, NoGuidance>(so, go, true);
  check_sampling<DiT, Separate, DDPM, Ancestral, CFG<VaeOnly>>(so, go, true);
  check_sampling<DiT, Separate, DDPM, Ancestral, CFG<Joint>>(so, go, true);
  check_sampling<DiT, Separate, DDPM, Ancestral, RepGuidance>(so, go, true);
  check_sampling<DiT, Merged, DDPM, Ancestral, Combine<CFG<VaeOnly>, RepGuidance>>(so, go, true);
  // a guidance interval in DDPM time (original timesteps): one branch for the noisiest steps
  GuidanceOptions gi = go;
  gi.interval_hi = 600;
  check_sampling<DiT, Merged, DDPM, Ancestral, Combine<CFG<Joint>, RepGuidance>>(so, gi, true);
  // fixed variances (learned channels ignored, and without learned sigma), clipping
  so.variance = DdpmVariance::FixedLarge;
  check_sampling<DiT, Merged, DDPM, Ancestral, CFG<VaeOnly>>(so, go, true);
  so.variance = DdpmVariance::FixedSmall;
  so.clip_denoised = true;
  check_sampling<DiT, Merged, DDPM, Ancestral, RepGuidance>(so, go, false);
  so.variance = DdpmVariance::Auto;
  so.respacing = "ddim4";
  check_sampling<DiT, Merged, DDPM, Ancestral, NoGuidance>(so, go, false);  // Auto without learned sigma
  // feature-conditioned sampling (known z noised to the original timestep before each evaluation)
  check_sampling<DiT, Separate, DDPM, Ancestral, CFG<VaeOnly>>(so, go, true, /*known_z=*/true);
}

TEST(DevicePath, DeviceDdimSamplingMatchesTheCpuBitForBit) {
  GuidanceOptions go;
  go.cfg_scale = 1.9;
  go.rg_scale = 1.6;
  DDIM::Options so;
  so.respacing = "ddim5";
  check_sampling<DiT, Merged, DDPM, DDIM, NoGuidance>(so, go, false);  // eta 0: deterministic
  check_sampling<DiT, Separate, DDPM, DDIM, CFG<VaeOnly>>(so, go, true);
  so.eta = 1.0;
  check_sampling<DiT, Merged, DDPM, DDIM, RepGuidance>(so, go, false);
  so.eta = 0.4;
  so.clip_denoised = true;  // eps re-derived from the clipped x0
  check_sampling<DiT, Separate, DDPM, DDIM, Combine<RepGuidance, CFG<Joint>>>(so, go, true);
  check_sampling<DiT, Merged, DDPM, DDIM, RepGuidance>(so, go, false, /*known_z=*/true);
}

TEST(DevicePath, DeviceHeunSamplingMatchesTheCpuBitForBit) {
  GuidanceOptions go;
  go.cfg_scale = 2.0;
  go.rg_scale = 1.4;
  OdeHeun::Options so;
  so.num_steps = 4;
  check_sampling<SiT, Merged, FlowMatching, OdeHeun, NoGuidance>(so, go, false);
  check_sampling<SiT, Separate, FlowMatching, OdeHeun, CFG<VaeOnly>>(so, go, false);
  check_sampling<SiT, Merged, FlowMatching, OdeHeun, CFG<Joint>>(so, go, false);
  check_sampling<SiT, Separate, FlowMatching, OdeHeun, RepGuidance>(so, go, false);
  go.interval_lo = 0.3;  // the corrector at tn may be guided when the predictor at t is not
  check_sampling<SiT, Merged, FlowMatching, OdeHeun, Combine<CFG<VaeOnly>, RepGuidance>>(so, go, false);
  check_sampling<SiT, Merged, FlowMatching, OdeHeun, Combine<CFG<VaeOnly>, RepGuidance>>(so, go, false, true);
}

TEST(DevicePath, DeviceKnownZNeedsFeatureChannels) {
  ModelConfig c = tiny();
  c.feature_channels = 0;
  using Dm = ReDi<SiT, Merged, FlowMatching, float, StagedHost>;
  Dm d(train_opts<Dm>(c), StagedHost{});
  std::vector<float> out(std::size_t(2) * c.channels_in() * c.input_size * c.input_size), zk(4, 0.f);
  SampleRequest req;
  req.B = 2; req.known_z = zk.data();
  test::expect_error([&] { d.template sample<OdeHeun>(out.data(), req, {.num_steps = 2}); },
                     {"known_z", "feature channels"});
}
