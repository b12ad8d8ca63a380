// Tests for the user-facing redi::ReDi<Backbone, Fusion, Objective> type: training steps that
// lower the joint loss for every policy combination, AdamW + EMA bookkeeping, sampling through
// the policies, and official state_dict save/load with precise errors.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

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
