// Tests for redi/train/trainer.hpp + checkpoint.hpp: a resumed run is bit-identical to an
// uninterrupted one (weights, EMA, AdamW moments, loss sequence), a non-finite loss stops
// training with an error naming the step, and checkpoints round-trip / fail loudly when corrupt.
// A run resumed under another activation-recomputation policy (TrainerConfig::recompute) is
// still bit-identical: the policy is recorded in the checkpoint's "trainer" settings only.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "redi/ops/cpu_backend.hpp"
#include "redi/weights/transformer.hpp"
#include "redi/train/checkpoint.hpp"
#include "redi/train/trainer.hpp"
#include "io_test_util.hpp"

using namespace redi;
namespace fs = std::filesystem;
using redi::test::expect_error;

namespace {

fs::path temp_dir(const std::string& name) { return test::fresh_temp_dir("redi_test_train_" + name); }

/// n samples of 1 x 8 x 8 images and r feature channels on a 4 x 4 grid, 4 classes.
data::TrainSet toy_set(int n, int r, std::uint64_t seed = 5) {
  data::TrainSet t;
  t.n = n; t.cx = 1; t.h = 8; t.w = 8; t.r = r; t.zh = 4; t.zw = 4; t.num_classes = 4; t.name = "toy";
  t.x.resize(std::size_t(n) * 64);
  t.z.resize(std::size_t(n) * r * 16);
  philox::fill_normal(t.x.data(), t.x.size(), seed, 1);
  philox::fill_normal(t.z.data(), t.z.size(), seed, 2);
  for (int i = 0; i < n; ++i) {
    t.labels.push_back(i % 4);
    for (int p = 0; p < 64; ++p) t.x[std::size_t(i) * 64 + p] = 0.2f * t.x[std::size_t(i) * 64 + p] + ((i % 4) - 1.5f) * 0.4f;
  }
  return t;
}

ModelConfig tiny(int r, bool learn_sigma = false) {
  ModelConfig c;
  c.input_size = 8; c.patch = 2; c.image_channels = 1; c.feature_channels = r;
  c.depth = 2; c.width = 32; c.heads = 2; c.num_classes = 4; c.learn_sigma = learn_sigma;
  return c;
}

template <class Model>
typename Model::Options options(int r, bool learn_sigma = false) {
  typename Model::Options o;
  o.model = tiny(r, learn_sigma);
  o.loss.p_drop = 0.3;
  o.loss.label_drop_prob = 0.2;
  o.train.adamw.lr = 1e-3;
  o.train.ema_decay = 0.9;
  o.train.grad_clip = 0.5;
  o.train.warmup_steps = 4;
  o.train.seed = 77;
  o.init_seed = 3;
  return o;
}

/// A TrainerConfig for `steps` steps of batch `batch` that writes nothing of its own (no log
/// lines, samples or checkpoints).
train::TrainerConfig quiet_config(int batch, int steps) {
  train::TrainerConfig tc;
  tc.batch = batch; tc.steps = steps; tc.log_every = 0; tc.sample_every = -1; tc.ckpt_every = -1;
  return tc;
}

/// Trains `m` on `data` for `steps` steps of batch 4, then saves the checkpoint `ck`.
template <class Model>
void train_and_save(Model& m, const data::TrainSet& data, int steps, const fs::path& ck,
                    std::map<std::string, std::string> extra = {}) {
  train::Trainer<Model> t(m, data, quiet_config(4, steps));
  t.run();
  t.save(ck, std::move(extra));
}

template <class Model>
bool same_bits(Model& a, Model& b) {
  const std::size_t n = std::size_t(a.net().num_params()) * sizeof(typename Model::value_type);
  return std::memcmp(a.net().params().data(), b.net().params().data(), n) == 0 &&
         std::memcmp(a.ema().params().data(), b.ema().params().data(), n) == 0 &&
         std::memcmp(a.adam_m().data(), b.adam_m().data(), n) == 0 &&
         std::memcmp(a.adam_v().data(), b.adam_v().data(), n) == 0 && a.step() == b.step();
}

template <class Model>
void check_resume(const std::string& tag, int r, bool learn_sigma, Recompute resumed = Recompute::None) {
  const fs::path dir = temp_dir("resume_" + tag);
  const data::TrainSet data = toy_set(40, r);
  const auto opts = options<Model>(r, learn_sigma);
  // batch 6 over 40 samples: 6 batches per epoch; 14 steps cross two epoch boundaries, the
  // split at 7 is mid-epoch.
  train::TrainerConfig tc = quiet_config(6, 14);
  tc.hflip = true; tc.data_seed = 9;

  Model full(opts);
  train::Trainer<Model> t_full(full, data, tc);
  t_full.run();
  ASSERT_EQ(full.step(), 14);

  Model first(opts);
  train::TrainerConfig half = tc;
  half.steps = 7;
  train::Trainer<Model> t_first(first, data, half);
  t_first.run();
  const fs::path ck = dir / "ck.safetensors";
  t_first.save(ck);

  Model second(opts);  // fresh model, fresh trainer
  train::TrainerConfig tc2 = tc;
  tc2.recompute = resumed;
  train::Trainer<Model> t_second(second, data, tc2);
  EXPECT_EQ(second.net().recompute(), resumed);
  EXPECT_NE(t_second.config_json().find("\"recompute\":\"" + std::string(recompute_name(resumed)) + "\""),
            std::string::npos) << t_second.config_json();
  const auto st = t_second.resume(ck);
  EXPECT_EQ(st.step, 7);
  t_second.run();

  EXPECT_TRUE(same_bits(full, second)) << "resumed run differs from the uninterrupted one";
  std::vector<double> joined;
  for (const auto& h : t_first.history()) joined.push_back(h.loss);
  for (const auto& h : t_second.history()) joined.push_back(h.loss);
  ASSERT_EQ(joined.size(), t_full.history().size());
  for (std::size_t i = 0; i < joined.size(); ++i) {
    EXPECT_EQ(std::memcmp(&joined[i], &t_full.history()[i].loss, sizeof(double)), 0) << "loss of step " << i + 1;
    EXPECT_EQ(t_full.history()[i].grad_norm, (i < 7 ? t_first.history()[i] : t_second.history()[i - 7]).grad_norm);
  }
  EXPECT_EQ(t_full.data_sampler().position(), t_second.data_sampler().position());
  fs::remove_all(dir);
}

}  // namespace

TEST(TrainResume, SiTMergedFlowIsBitIdentical) { check_resume<ReDi<SiT, Merged, FlowMatching>>("sit", 2, false); }
TEST(TrainResume, DiTSeparateDdpmLearnedSigmaIsBitIdentical) {
  check_resume<ReDi<DiT, Separate, DDPM>>("dit", 2, true);
}
TEST(TrainResume, PlainModelWithoutFeaturesIsBitIdentical) { check_resume<ReDi<SiT, Merged, FlowMatching>>("plain", 0, false); }
TEST(TrainResume, ResumedUnderAnotherRecomputePolicyIsBitIdentical) {
  check_resume<ReDi<SiT, Merged, FlowMatching>>("recompute_block", 2, false, Recompute::Block);
  check_resume<ReDi<DiT, Separate, DDPM>>("recompute_mlp", 2, true, Recompute::Mlp);
}

TEST(TrainResume, RefusesChangedSettings) {
  using M = ReDi<SiT, Merged, FlowMatching>;
  const fs::path dir = temp_dir("settings");
  const auto data = toy_set(24, 2);
  M a(options<M>(2));
  train_and_save(a, data, 2, dir / "ck.safetensors");
  M b(options<M>(2));
  train::Trainer<M> tb(b, data, quiet_config(8, 2));
  expect_error([&] { tb.resume(dir / "ck.safetensors"); }, {"batch 4 -> 8"});
  fs::remove_all(dir);
}

TEST(TrainNaN, PoisonedBatchStopsWithTheStep) {
  using M = ReDi<SiT, Merged, FlowMatching>;
  auto data = toy_set(16, 2);
  for (int p = 0; p < 64; ++p) data.x[std::size_t(p)] = std::nanf("");  // sample 0 is poisoned
  M m(options<M>(2));
  train::TrainerConfig tc = quiet_config(4, 100);
  tc.data_seed = 1;
  train::Trainer<M> t(m, data, tc);
  // The step that draws sample 0: the first batch of epoch 0 containing it.
  const auto order = data::epoch_permutation(16, 1, 0);
  const auto pos = std::find(order.begin(), order.end(), 0) - order.begin();
  const std::int64_t bad_step = pos / 4 + 1;
  std::vector<float> before;
  try {
    for (;;) {
      if (m.step() == bad_step - 1) before = m.net().params().to_host();
      t.step();
    }
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("step " + std::to_string(bad_step)), std::string::npos) << msg;
    EXPECT_NE(msg.find("nan"), std::string::npos) << msg;
  }
  EXPECT_EQ(m.step(), bad_step - 1);
  EXPECT_EQ(before, m.net().params().to_host()) << "the failed step must not update the weights";
}

TEST(TrainNaN, HugeLearningRateStops) {
  using M = ReDi<SiT, Merged, FlowMatching>;
  const auto data = toy_set(16, 2);
  auto o = options<M>(2);
  o.train.adamw.lr = 1e30;
  o.train.grad_clip = 0;
  o.train.warmup_steps = 0;
  M m(o);
  train::Trainer<M> t(m, data, quiet_config(4, 50));
  expect_error([&] { t.run(); }, {"training stopped at step "});
}

TEST(TrainCheckpoint, RoundTripAndEmaAsOfficialWeights) {
  using M = ReDi<DiT, Merged, DDPM>;
  const fs::path dir = temp_dir("ckpt");
  const auto data = toy_set(16, 2);
  M a(options<M>(2, true));
  const fs::path ck = dir / "ck.safetensors";
  train_and_save(a, data, 3, ck, {{"note", "hello"}});
  M b(options<M>(2, true));
  const auto st = train::load_checkpoint(ck, b);
  EXPECT_EQ(st.step, 3);
  EXPECT_EQ(st.seed, 77u);
  EXPECT_EQ(st.extra.at("note"), "hello");
  EXPECT_TRUE(same_bits(a, b));
  EXPECT_EQ(train::read_checkpoint_model_config(ck).depth, 2);
  // The EMA half loads as an official state_dict with the "ema." prefix.
  Transformer<float, Merged> net(tiny(2, true));
  load_weights(net, ck, {.strict = true, .prefix = "ema."});
  EXPECT_EQ(net.params().to_host(), a.ema().params().to_host());
  // Wrong model type / configuration.
  ReDi<DiT, Separate, DDPM> other(options<ReDi<DiT, Separate, DDPM>>(2, true));
  EXPECT_THROW(train::load_checkpoint(ck, other), Error);
  auto o2 = options<M>(2, true);
  o2.model.depth = 3;
  M deeper(o2);
  expect_error([&] { train::load_checkpoint(ck, deeper); }, {"model configuration differs"});
  fs::remove_all(dir);
}

TEST(TrainCheckpoint, CorruptFilesAreErrorsAndLeaveTheModelAlone) {
  using M = ReDi<SiT, Merged, FlowMatching>;
  const fs::path dir = temp_dir("corrupt");
  const auto data = toy_set(16, 2);
  M a(options<M>(2));
  const fs::path ck = dir / "ck.safetensors";
  train_and_save(a, data, 2, ck);
  const auto size = fs::file_size(ck);
  // Truncated copy.
  fs::copy_file(ck, dir / "trunc.safetensors");
  fs::resize_file(dir / "trunc.safetensors", size - 100);
  M b(options<M>(2));
  const auto before = b.net().params().to_host();
  expect_error([&] { train::load_checkpoint(dir / "trunc.safetensors", b); }, {"trunc.safetensors"});
  EXPECT_EQ(b.net().params().to_host(), before);
  EXPECT_EQ(b.step(), 0);
  // Garbage header.
  test::write_file(dir / "junk.safetensors", "not a checkpoint at all");
  EXPECT_THROW(train::load_checkpoint(dir / "junk.safetensors", b), Error);
  // Plain weights file (no training metadata).
  save_weights(a.net(), dir / "weights.safetensors");
  expect_error([&] { train::load_checkpoint(dir / "weights.safetensors", b); },
               {"not a redi training checkpoint"});
  EXPECT_THROW(train::load_checkpoint(dir / "missing.safetensors", b), Error);
  EXPECT_EQ(b.net().params().to_host(), before);
  fs::remove_all(dir);
}

// A copy of safetensors file `from` at `to` with the first `find` after `after` replaced by `with`
// in its JSON header.
static void rewrite_header(const fs::path& from, const fs::path& to, const std::string& find, const std::string& with,
                           const std::string& after = "") {
  std::ifstream in(from, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  const std::string data = bytes.substr(8 + n);
  std::string header = bytes.substr(8, n);
  const auto at = header.find(find, header.find(after));
  ASSERT_NE(at, std::string::npos) << find;
  header.replace(at, find.size(), with);
  while (header.size() % 8) header += ' ';
  n = header.size();
  std::string len(8, '\0');
  std::memcpy(len.data(), &n, 8);
  test::write_file(to, len + header + data);
}

// Hostile training metadata: a step of 2^64 - 1 (once read as step -1) and a width past int.
TEST(TrainCheckpoint, OutOfRangeMetadataIsAnErrorNamingTheKey) {
  using M = ReDi<SiT, Merged, FlowMatching>;
  const fs::path dir = temp_dir("hostile_meta");
  const auto data = toy_set(16, 2);
  M a(options<M>(2));
  const fs::path ck = dir / "ck.safetensors";
  train_and_save(a, data, 2, ck);
  rewrite_header(ck, dir / "step.safetensors", "\"redi.step\":\"2\"", "\"redi.step\":\"18446744073709551615\"");
  M b(options<M>(2));
  expect_error([&] { train::load_checkpoint(dir / "step.safetensors", b); }, {"step.safetensors", "redi.step"});
  EXPECT_EQ(b.step(), 0);
  rewrite_header(ck, dir / "width.safetensors", "\\\"width\\\":", "\\\"width\\\":429496729",
                 "\"redi.model\"");
  expect_error([&] { (void)train::read_checkpoint_model_config(dir / "width.safetensors"); },
               {"width.safetensors", "width"});
  fs::remove_all(dir);
}

TEST(TrainRun, WritesMetricsCheckpointAndGrid) {
  using M = ReDi<SiT, Merged, FlowMatching>;
  const fs::path dir = temp_dir("run");
  const auto data = toy_set(16, 2);
  M a(options<M>(2));
  train::TrainerConfig tc;
  tc.batch = 4; tc.steps = 6; tc.log_every = 2; tc.sample_every = 0; tc.ckpt_every = 3;
  tc.out_dir = dir.string(); tc.grid_samples = 4; tc.grid_cols = 2;
  std::ostringstream console;
  train::Trainer<M> t(a, data, tc, &console);
  t.set_sample_fn([](M& m, float* out, const SampleRequest& req) { m.sample<OdeEuler>(out, req, {.num_steps = 2}); });
  t.run();
  EXPECT_TRUE(fs::exists(dir / "checkpoint.safetensors"));
  EXPECT_TRUE(fs::exists(dir / "samples" / "step_0000006.png"));
  std::ifstream in(dir / "metrics.jsonl");
  std::string line;
  int lines = 0;
  while (std::getline(in, line)) {
    const json::Value v = json::parse(line, "metrics line");
    ASSERT_TRUE(v.is_object());
    EXPECT_NE(v.find("mse_z"), nullptr);
    ++lines;
  }
  EXPECT_EQ(lines, 3);
  EXPECT_NE(console.str().find("step 4/6"), std::string::npos) << console.str();
  EXPECT_NE(console.str().find("img/s  ETA"), std::string::npos) << console.str();
  fs::remove_all(dir);
}
