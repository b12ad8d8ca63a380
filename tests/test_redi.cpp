// Tests for the user-facing redi::ReDi<Backbone, Fusion, Objective> type: training steps that
// lower the joint loss for every policy combination, AdamW + EMA bookkeeping, sampling through
// the policies, official state_dict save/load with precise errors, and loss and gradient
// parity with the PyTorch fixtures.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "parity_fixture.hpp"
#include "redi/io/safetensors.hpp"
#include "redi/ops/cpu_backend.hpp"
#include "redi/redi_model.hpp"
#include "redi/weights/transformer.hpp"
#include "toy_data.hpp"

using namespace redi;
namespace fs = std::filesystem;

namespace {

ModelConfig tiny(int r, bool learn_sigma = false) {
  ModelConfig c;
  c.input_size = 8; c.patch = 2; c.image_channels = 2; c.feature_channels = r;
  c.depth = 2; c.width = 32; c.heads = 2; c.num_classes = 4; c.learn_sigma = learn_sigma;
  return c;
}

using test::ToyData;

template <class Model>
std::pair<double, double> train_and_measure(Model& m, const ModelConfig& c, int steps) {
  const int B = 16;
  ToyData d(c, B, 11);
  double first = 0, last = 0;
  const int window = 20;
  for (int s = 0; s < steps; ++s) {
    auto st = m.train_step(d.x.data(), d.z.data(), d.y.data(), B, std::uint64_t(s) * B);
    EXPECT_TRUE(std::isfinite(st.loss.loss)) << "step " << s;
    if (s < window) first += st.loss.loss / window;
    if (s >= steps - window) last += st.loss.loss / window;
  }
  return {first, last};
}

template <class Model>
typename Model::Options options(const ModelConfig& c) {
  typename Model::Options o;
  o.model = c;
  o.train.adamw.lr = 2e-3;
  o.train.ema_decay = 0.99;
  o.train.grad_clip = 1.0;
  o.train.seed = 5;
  o.init_seed = 3;
  return o;
}

}  // namespace

TEST(ReDi, SiTMergedFlowMatchingLearns) {
  using M = ReDi<SiT, Merged, FlowMatching>;
  M m(options<M>(tiny(3)));
  auto [first, last] = train_and_measure(m, tiny(3), 200);
  EXPECT_LT(last, 0.6 * first) << "first " << first << " last " << last;
  EXPECT_EQ(m.step(), 200);
}

TEST(ReDi, SiTSeparateFlowMatchingLearns) {
  using M = ReDi<SiT, Separate, FlowMatching>;
  M m(options<M>(tiny(3)));
  auto [first, last] = train_and_measure(m, tiny(3), 200);
  EXPECT_LT(last, 0.6 * first) << "first " << first << " last " << last;
}

TEST(ReDi, DiTMergedDDPMLearnedSigmaLearns) {
  using M = ReDi<DiT, Merged, DDPM>;
  M m(options<M>(tiny(3, true)));
  auto [first, last] = train_and_measure(m, tiny(3, true), 200);
  EXPECT_LT(last, 0.8 * first) << "first " << first << " last " << last;
}

TEST(ReDi, PlainSiTWithoutFeaturesLearns) {
  using M = ReDi<SiT, Merged, FlowMatching>;
  M m(options<M>(tiny(0)));
  auto [first, last] = train_and_measure(m, tiny(0), 200);
  EXPECT_LT(last, 0.6 * first);
}

TEST(ReDi, RejectsInvalidRuntimeCombinations) {
  using S = ReDi<SiT, Merged, FlowMatching>;
  EXPECT_THROW(S{options<S>(tiny(3, true))}, Error);  // SiT learns no sigma
  using P = ReDi<SiT, Separate, FlowMatching>;
  EXPECT_THROW(P{options<P>(tiny(0))}, Error);        // Separate needs features
}

TEST(ReDi, EmaTracksParametersWithDecayZero) {
  using M = ReDi<SiT, Merged, FlowMatching>;
  auto o = options<M>(tiny(3));
  o.train.ema_decay = 0.0;
  M m(o);
  ToyData d(tiny(3), 4, 1);
  m.train_step(d.x.data(), d.z.data(), d.y.data(), 4);
  m.train_step(d.x.data(), d.z.data(), d.y.data(), 4);
  EXPECT_EQ(m.ema().params().to_host(), m.net().params().to_host());
}

TEST(ReDi, SampleWithGuidanceIsDeterministicAndFinite) {
  using M = ReDi<SiT, Merged, FlowMatching>;
  M m(options<M>(tiny(3)));
  train_and_measure(m, tiny(3), 30);
  const int B = 4, n = B * 5 * 64;
  std::vector<int> labels = {0, 1, 2, 3};
  std::vector<float> a(n), b(n);
  SampleRequest req;
  req.B = B; req.labels = labels.data(); req.seed = 9;
  OdeEuler::Options so;
  so.num_steps = 8;
  GuidanceOptions go;
  go.cfg_scale = 2.0;
  go.rg_scale = 1.5;
  using G = Combine<CFG<VaeOnly>, RepGuidance>;
  m.sample<OdeEuler, G>(a.data(), req, so, go);
  m.sample<OdeEuler, G>(b.data(), req, so, go);
  EXPECT_EQ(a, b);
  for (float v : a) ASSERT_TRUE(std::isfinite(v));
}

// ---- the host <-> device bridge, exercised on the CPU (Dev = Cpu: the same staging code path
// that ReDi<..., Cuda> uses, minus the GPU): loss, gradients and samples must be identical to
// driving the network directly.
TEST(DeviceBridge, LossGradientsAndSamplesMatchTheDirectPath) {
  const ModelConfig c = tiny(3, true);
  Transformer<float, Merged> net(c, Cpu{}, 3);
  net.layout().randomize(net.params().data(), 8, 0.1);
  DeviceBridge<Transformer<float, Merged>> bridge;
  bridge.bind(net);
  static_assert(TrainableNetwork<DeviceBridge<Transformer<float, Merged>>>);
  JointLoss<DDPM, float>::Options lo;
  lo.p_drop = 0.5;
  JointLoss<DDPM, float> direct(lo), bridged(lo);
  ToyData d(c, 6, 2);
  JointLoss<DDPM, float>::Batch b;
  b.x0 = d.x.data(); b.z0 = d.z.data(); b.labels = d.y.data(); b.B = 6; b.seed = 4; b.step = 7;
  net.zero_grad();
  auto s1 = direct(net, b);
  const auto g1 = net.grads().to_host();
  net.zero_grad();
  auto s2 = bridged(bridge, b);
  EXPECT_EQ(s1.loss, s2.loss);
  EXPECT_EQ(s1.vb, s2.vb);
  EXPECT_EQ(g1, net.grads().to_host());
  // a smaller batch reuses the staging buffers; sampling goes through infer()
  const int B = 2, n = B * 5 * 64;
  std::vector<int> labels = {1, 3};
  std::vector<float> a(n), e(n);
  SampleRequest req;
  req.B = B; req.labels = labels.data(); req.seed = 1;
  Ancestral::Options so;
  so.respacing = "10";
  GuidanceOptions go;
  go.cfg_scale = 1.5;
  Sampler<Ancestral, CFG<Joint>, float>(so, go).run(net, a.data(), req);
  Sampler<Ancestral, CFG<Joint>, float>(so, go).run(bridge, e.data(), req);
  EXPECT_EQ(a, e);
}

// ---- weights in the official state_dict layout

class Weights : public ::testing::Test {
protected:
  fs::path dir = fs::temp_directory_path() / ("redi_weights_" + std::to_string(::getpid()));
  void SetUp() override { fs::create_directories(dir); }
  void TearDown() override { fs::remove_all(dir); }
};

TEST_F(Weights, SaveLoadRoundTripGivesIdenticalOutputs) {
  Transformer<float, Merged> a(tiny(3)), b(tiny(3));
  a.layout().randomize(a.params().data(), 1, 0.2);
  save_weights(a, dir / "m.safetensors");
  auto rep = load_weights(b, dir / "m.safetensors");
  EXPECT_TRUE(rep.missing.empty());
  EXPECT_EQ(a.params().to_host(), b.params().to_host());
  // F16 storage loses precision but stays within half's rounding.
  Transformer<float, Merged> c(tiny(3));
  save_weights(a, dir / "h.safetensors", DType::F16);
  load_weights(c, dir / "h.safetensors");
  auto pa = a.params().to_host(), pc = c.params().to_host();
  for (std::size_t i = 0; i < pa.size(); ++i) ASSERT_NEAR(pc[i], pa[i], 1e-3 * std::fabs(pa[i]) + 1e-7);
}

// A file written with the exact official names and shapes (as a PyTorch ReDi SiT export would
// be): pos_embed [1, L, D], x_embedder.proj.weight [D, Cx + r, p, p], final_layer.linear [p*p*(Cx+r), D].
TEST_F(Weights, LoadsOfficialLayoutAndRejectsBadShapesByName) {
  const ModelConfig c = tiny(3);
  Transformer<float, Merged> ref(c);
  ref.layout().randomize(ref.params().data(), 4, 0.1);
  io::SafeTensorsWriter w;
  const float* pos = ref.pos_embed().data();
  w.add<float>("pos_embed", Shape{1, c.tokens(), c.width}, pos, DType::F32);
  for (const auto& e : ref.layout().entries)
    w.add<float>(e.name, e.shape, ref.params().data() + e.offset, DType::F32);
  w.write(dir / "official.safetensors", {});
  Transformer<float, Merged> m(c);
  load_weights(m, dir / "official.safetensors");
  EXPECT_EQ(m.params().to_host(), ref.params().to_host());

  // A plain SiT checkpoint (Cin = Cx) into a ReDi model: the patch embed's shape is wrong.
  Transformer<float, Merged> plain(tiny(0));
  save_weights(plain, dir / "plain.safetensors");
  try {
    load_weights(m, dir / "plain.safetensors");
    FAIL() << "expected a shape error";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("plain.safetensors"), std::string::npos) << msg;
    EXPECT_NE(msg.find("x_embedder.proj.weight"), std::string::npos) << msg;
  }
  EXPECT_EQ(m.params().to_host(), ref.params().to_host());  // unchanged by the failed load

  // A Separate model needs its extra keys: loading a Merged file names what is missing.
  Transformer<float, Separate> sep(c);
  try {
    load_weights(sep, dir / "official.safetensors");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("z_embedder.proj.weight"), std::string::npos) << msg;
  }
}

// ---------------------------------------------------------------------------------------------
// Parity with an independent PyTorch implementation of the official models and training
// objectives (tests/data/parity/make_parity_fixtures.py): the same weights, batch, noise and
// times give the reference network input, loss terms and the gradient of every parameter —
// SiT-Merged with flow matching, DiT-Separate with learned sigma (DDPM hybrid loss mse + vb) and
// the plain DiT. float: loss 1e-5 relative, each gradient tensor 1e-4 relative to its largest
// entry; double: 1e-10 and 1e-9.

namespace {

struct ParityErrors {
  double x_t = 0, out = 0;       // max abs errors of the network input and output
  double terms[4] = {0, 0, 0, 0};  // |loss - torch| / max(1, |torch|), and for mse_x, mse_z, vb
  double grad = 0;               // worst per-tensor gradient error (relative to the tensor's largest entry)
  std::string grad_name;         // ... and its tensor
};

/// Runs the fixture's batch (explicit noise, times, no dropout) through ReDi's loss and
/// backward; `perturb` (a parameter name) is scaled by 1 + eps first (the negative control).
template <class Model>
ParityErrors loss_errors(const std::string& name, const std::string& perturb = "", double eps = 0) {
  using T = typename Model::value_type;
  const auto fx = test::parity::Fixture::open(name);
  typename Model::Options o;
  o.model = fx.cfg;
  o.loss.lambda_z = fx.lambda_z;
  Model m(o);
  load_weights(m.net(), fx.path, {.prefix = "model."});
  if (!perturb.empty()) {
    const ParamEntry* e = m.net().layout().find(perturb);
    EXPECT_NE(e, nullptr) << perturb;
    T* w = m.net().params().data() + e->offset;
    for (std::int64_t i = 0; i < e->numel(); ++i) w[i] *= T(1 + eps);
  }
  const auto x0 = test::parity::Fixture::as<T>(fx.x0), z0 = test::parity::Fixture::as<T>(fx.z0);
  const auto noise = test::parity::Fixture::as<T>(fx.noise), t = test::parity::Fixture::as<T>(fx.t);
  const std::vector<std::uint8_t> keep(std::size_t(fx.B), 0);  // no label / representation dropout
  typename Model::loss_type::Batch b;
  b.x0 = x0.data();
  b.z0 = fx.cfg.feature_channels > 0 ? z0.data() : nullptr;
  b.labels = fx.labels.data();
  b.B = fx.B;
  b.time = t.data();
  b.noise = noise.data();
  b.label_drop = keep.data();
  b.rep_drop = keep.data();
  const auto st = m.backprop(b);
  ParityErrors e;
  e.x_t = test::parity::max_abs_error(m.loss().net_input(), fx.x_t);
  e.out = test::parity::max_abs_error(m.loss().net_output(), fx.out);
  const double terms[4] = {st.loss, st.mse_x, st.mse_z, st.vb};
  for (int k = 0; k < 4; ++k)
    e.terms[k] = std::fabs(terms[k] - fx.loss[std::size_t(k)]) / std::max(1.0, std::fabs(fx.loss[std::size_t(k)]));
  const auto grads = m.net().grads().to_host();
  for (const auto& p : m.net().layout().entries) {
    const double err = test::parity::scaled_error(grads.data() + p.offset, fx.grad(p.name));
    if (err > e.grad) e.grad = err, e.grad_name = p.name;
  }
  return e;
}

template <class Model>
void expect_loss_parity(const std::string& name, double tol_loss, double tol_grad) {
  const char* type = sizeof(typename Model::value_type) == 4 ? "float" : "double";
  const ParityErrors e = loss_errors<Model>(name);
  EXPECT_LE(e.x_t, tol_loss) << name << " x_t, " << type;
  EXPECT_LE(e.out, 10 * tol_loss) << name << " out, " << type;
  const char* names[4] = {"loss", "mse_x", "mse_z", "vb"};
  for (int k = 0; k < 4; ++k) EXPECT_LE(e.terms[k], tol_loss) << name << " " << names[k] << ", " << type;
  EXPECT_LE(e.grad, tol_grad) << name << " d loss / d " << e.grad_name << ", " << type;
  std::printf("[parity] %s %s: x_t %.3g, out %.3g, loss %.3g (rel), worst gradient %.3g (%s)\n", name.c_str(),
              type, e.x_t, e.out, e.terms[0], e.grad, e.grad_name.c_str());
}

}  // namespace

TEST(ReDiParity, SiTMergedFlowMatchingLossAndGradientsMatchPyTorch) {
  expect_loss_parity<ReDi<SiT, Merged, FlowMatching, float>>("sit_merged_flow.safetensors", 1e-5, 1e-4);
  expect_loss_parity<ReDi<SiT, Merged, FlowMatching, double>>("sit_merged_flow.safetensors", 1e-10, 1e-9);
}

TEST(ReDiParity, DiTSeparateLearnedSigmaLossAndGradientsMatchPyTorch) {
  expect_loss_parity<ReDi<DiT, Separate, DDPM, float>>("dit_separate_ddpm_sigma.safetensors", 1e-5, 1e-4);
  expect_loss_parity<ReDi<DiT, Separate, DDPM, double>>("dit_separate_ddpm_sigma.safetensors", 1e-10, 1e-9);
}

TEST(ReDiParity, PlainDiTLearnedSigmaLossAndGradientsMatchPyTorch) {
  expect_loss_parity<ReDi<DiT, Merged, DDPM, float>>("dit_plain_ddpm_sigma.safetensors", 1e-5, 1e-4);
  expect_loss_parity<ReDi<DiT, Merged, DDPM, double>>("dit_plain_ddpm_sigma.safetensors", 1e-10, 1e-9);
}

// The comparison can fail: a 1e-3 relative change in the use of one weight tensor moves some
// gradient past the float tolerance (the reference values are float64).
TEST(ReDiParity, SeesA1e3ChangeInOneWeight) {
  using M = ReDi<DiT, Separate, DDPM, double>;
  for (const char* w : {"blocks.1.attn.proj.weight", "z_embedder.proj.weight", "final_layer.adaLN_modulation.1.weight"}) {
    const ParityErrors e = loss_errors<M>("dit_separate_ddpm_sigma.safetensors", w, 1e-3);
    EXPECT_GT(e.grad, 1e-4) << w;
    std::printf("[parity] dit_separate with %s x (1 + 1e-3): loss %.3g (rel), worst gradient %.3g (%s)\n", w,
                e.terms[0], e.grad, e.grad_name.c_str());
  }
}
