// Data-parallel training and sampling over MPI ranks (redi/dist/mpi.hpp, train/trainer.hpp with
// TrainerConfig::comm, train/distributed_sampling.hpp). Run as W ranks (ctest: 2) under mpiexec;
// every rank also computes the one-process reference itself, so each check is "W ranks x B/W ==
// 1 process x B":
//   - weights, EMA, AdamW moments within 1e-6 (relative, max-norm) and the loss sequence equal
//     to float rounding, with label dropout and representation dropout (per sample and per
//     batch), flips, clipping and warm-up; every rank ends with the same bits;
//   - a checkpoint written by W ranks resumes in one process (and the reverse) on the same path;
//   - distributed sampling merged on rank 0 equals one-process sampling bit for bit;
//   - the communicator's collectives, and a settings mismatch failing on every rank.
// Measured errors are printed by rank 0 ("[dist] ..." lines).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <unistd.h>

#include "redi/dist/mpi.hpp"
#include "redi/ops/cpu_backend.hpp"
#include "redi/train/distributed_sampling.hpp"
#include "redi/train/trainer.hpp"
#include "staged_host.hpp"

// staged::StagedHost (tests/staged_host.hpp): the gradients of a model on it take
// DataParallel's device path, staged through host memory for dist::Mpi.

using namespace redi;
namespace fs = std::filesystem;

namespace {

dist::Mpi& world() {
  static dist::Mpi m;
  return m;
}

/// n samples of 1 x 8 x 8 images and r feature channels on a 4 x 4 grid, 4 classes.
data::TrainSet toy_set(int n, int r) {
  data::TrainSet t;
  t.n = n; t.cx = 1; t.h = 8; t.w = 8; t.r = r; t.zh = 4; t.zw = 4; t.num_classes = 4; t.name = "toy";
  t.x.resize(std::size_t(n) * 64);
  t.z.resize(std::size_t(n) * r * 16);
  philox::fill_normal(t.x.data(), t.x.size(), 5, 1);
  philox::fill_normal(t.z.data(), t.z.size(), 5, 2);
  for (int i = 0; i < n; ++i) {
    t.labels.push_back(i % 4);
    for (int p = 0; p < 64; ++p) t.x[std::size_t(i) * 64 + p] = 0.2f * t.x[std::size_t(i) * 64 + p] + ((i % 4) - 1.5f) * 0.4f;
  }
  return t;
}

template <class Model>
typename Model::Options options(RepDrop mode, bool learn_sigma = false) {
  typename Model::Options o;
  o.model.input_size = 8; o.model.patch = 2; o.model.image_channels = 1; o.model.feature_channels = 2;
  o.model.depth = 2; o.model.width = 32; o.model.heads = 2; o.model.num_classes = 4;
  o.model.learn_sigma = learn_sigma;
  o.loss.p_drop = 0.4;
  o.loss.rep_drop = mode;
  o.loss.label_drop_prob = 0.3;
  o.train.adamw.lr = 1e-3;
  o.train.adamw.weight_decay = 0.01;
  o.train.ema_decay = 0.9;
  o.train.grad_clip = 0.5;
  o.train.warmup_steps = 3;
  o.train.seed = 77;
  o.init_seed = 3;
  return o;
}

train::TrainerConfig quiet(int batch, int steps, dist::Communicator* comm = nullptr) {
  train::TrainerConfig tc;
  tc.batch = batch; tc.steps = steps; tc.log_every = 0; tc.sample_every = -1; tc.ckpt_every = -1;
  tc.hflip = true; tc.data_seed = 11;
  tc.comm = comm;
  return tc;
}

/// max |a - b| / max |b| (0 when both are all zero).
template <class T>
double rel_err(const std::vector<T>& a, const std::vector<T>& b) {
  EXPECT_EQ(a.size(), b.size());
  double d = 0, m = 0;
  for (std::size_t i = 0; i < a.size() && i < b.size(); ++i) {
    d = std::max(d, std::abs(double(a[i]) - double(b[i])));
    m = std::max(m, std::abs(double(b[i])));
  }
  return m > 0 ? d / m : d;
}

struct Errors {
  double weights = 0, ema = 0, m = 0, v = 0, loss = 0;
};

template <class Model>
Errors compare(Model& a, Model& b, const std::vector<train::StepRecord>& ha, const std::vector<train::StepRecord>& hb) {
  Errors e;
  e.weights = rel_err(std::as_const(a.net()).params().to_host(), std::as_const(b.net()).params().to_host());
  e.ema = rel_err(std::as_const(a.ema()).params().to_host(), std::as_const(b.ema()).params().to_host());
  e.m = rel_err(a.adam_m().to_host(), b.adam_m().to_host());
  e.v = rel_err(a.adam_v().to_host(), b.adam_v().to_host());
  EXPECT_EQ(a.step(), b.step());
  EXPECT_EQ(ha.size(), hb.size());
  for (std::size_t i = 0; i < ha.size() && i < hb.size(); ++i) {
    EXPECT_EQ(ha[i].step, hb[i].step);
    EXPECT_EQ(ha[i].rep_dropped, hb[i].rep_dropped) << "step " << ha[i].step;
    EXPECT_EQ(ha[i].labels_dropped, hb[i].labels_dropped) << "step " << ha[i].step;
    e.loss = std::max(e.loss, std::abs(ha[i].loss - hb[i].loss) / std::abs(hb[i].loss));
    EXPECT_NEAR(ha[i].grad_norm, hb[i].grad_norm, 1e-5 * hb[i].grad_norm) << "step " << ha[i].step;
  }
  return e;
}

void report(const char* what, const Errors& e) {
  if (world().rank() == 0)
    std::printf("[dist] %s on %d ranks: rel err weights %.3g, ema %.3g, adam m %.3g, adam v %.3g, loss %.3g\n", what,
                world().size(), e.weights, e.ema, e.m, e.v, e.loss);
}

/// Every rank holds the same bits of the model's weights and moments.
template <class Model>
void expect_same_bits_on_all_ranks(Model& m) {
  auto w = std::as_const(m.net()).params().to_host();
  auto mm = m.adam_m().to_host();
  w.insert(w.end(), mm.begin(), mm.end());
  const std::vector<std::byte> all = world().gather(w.data(), w.size() * sizeof(w[0]));
  if (world().rank() != 0) return;
  const std::size_t n = w.size() * sizeof(w[0]);
  ASSERT_EQ(all.size(), n * std::size_t(world().size()));
  for (int r = 1; r < world().size(); ++r)
    EXPECT_EQ(std::memcmp(all.data(), all.data() + std::size_t(r) * n, n), 0) << "rank " << r << " differs from rank 0";
}

template <class Model>
Errors equivalence(RepDrop mode, bool learn_sigma, int batch, int steps) {
  const auto data = toy_set(64, 2);
  const auto o = options<Model>(mode, learn_sigma);
  Model ref(o), dm(o);
  train::Trainer<Model> one(ref, data, quiet(batch, steps));
  one.run();
  train::Trainer<Model> many(dm, data, quiet(batch, steps, &world()));
  many.run();
  expect_same_bits_on_all_ranks(dm);
  return compare(dm, ref, many.history(), one.history());
}

using SiTModel = ReDi<SiT, Merged, FlowMatching>;
using DiTModel = ReDi<DiT, Separate, DDPM>;

TEST(DistTrain, SiTPerSampleDropEqualsOneProcess) {
  const Errors e = equivalence<SiTModel>(RepDrop::PerSample, false, 8, 8);
  report("SiT/Merged float, per-sample rep drop, B=8, 8 steps", e);
  EXPECT_LE(e.weights, 1e-6); EXPECT_LE(e.ema, 1e-6); EXPECT_LE(e.m, 1e-6); EXPECT_LE(e.v, 1e-6);
  EXPECT_LE(e.loss, 1e-6);
}

TEST(DistTrain, SiTPerBatchDropEqualsOneProcess) {
  const Errors e = equivalence<SiTModel>(RepDrop::PerBatch, false, 8, 8);
  report("SiT/Merged float, per-batch rep drop, B=8, 8 steps", e);
  EXPECT_LE(e.weights, 1e-6); EXPECT_LE(e.ema, 1e-6); EXPECT_LE(e.m, 1e-6); EXPECT_LE(e.v, 1e-6);
  EXPECT_LE(e.loss, 1e-6);
}

TEST(DistTrain, DiTLearnedSigmaDoubleEqualsOneProcess) {
  using M = ReDi<DiT, Separate, DDPM, double>;
  const Errors e = equivalence<M>(RepDrop::PerSample, true, 8, 6);
  report("DiT/Separate/DDPM double + learned sigma, B=8, 6 steps", e);
  EXPECT_LE(e.weights, 1e-12); EXPECT_LE(e.ema, 1e-12); EXPECT_LE(e.m, 1e-12); EXPECT_LE(e.v, 1e-12);
  EXPECT_LE(e.loss, 1e-12);
}

TEST(DistTrain, DeviceModelWithHostCommunicatorEqualsOneProcess) {
  using D = ReDi<SiT, Merged, FlowMatching, float, staged::StagedHost>;
  const auto data = toy_set(64, 2);
  SiTModel ref(options<SiTModel>(RepDrop::PerSample));
  train::Trainer<SiTModel> one(ref, data, quiet(8, 6));
  one.run();
  D dm(options<D>(RepDrop::PerSample));
  train::Trainer<D> many(dm, data, quiet(8, 6, &world()));
  many.run();
  Errors e;
  e.weights = rel_err(std::as_const(dm.net()).params().to_host(), std::as_const(ref.net()).params().to_host());
  e.ema = rel_err(std::as_const(dm.ema()).params().to_host(), std::as_const(ref.ema()).params().to_host());
  e.m = rel_err(dm.adam_m().to_host(), ref.adam_m().to_host());
  e.v = rel_err(dm.adam_v().to_host(), ref.adam_v().to_host());
  report("device-path model (staged gradients), B=8, 6 steps", e);
  EXPECT_LE(e.weights, 1e-6); EXPECT_LE(e.ema, 1e-6); EXPECT_LE(e.m, 1e-6); EXPECT_LE(e.v, 1e-6);
  ASSERT_EQ(many.history().size(), one.history().size());
  for (std::size_t i = 0; i < one.history().size(); ++i)
    EXPECT_NEAR(many.history()[i].loss, one.history()[i].loss, 1e-6 * one.history()[i].loss);
}

TEST(DistTrain, BatchNotAMultipleOfTheRanksFailsOnEveryRank) {
  if (world().size() == 1) GTEST_SKIP() << "needs more than one rank";
  const auto data = toy_set(64, 2);
  SiTModel m(options<SiTModel>(RepDrop::PerSample));
  try {
    train::Trainer<SiTModel> t(m, data, quiet(world().size() * 4 + 1, 2, &world()));
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not a multiple of the"), std::string::npos) << e.what();
  }
}

TEST(DistTrain, DifferentSettingsOnOneRankFailOnEveryRank) {
  if (world().size() == 1) GTEST_SKIP() << "needs more than one rank";
  const auto data = toy_set(64, 2);
  auto o = options<SiTModel>(RepDrop::PerSample);
  if (world().rank() == 1) o.train.seed = 78;  // one rank started with another seed
  SiTModel m(o);
  try {
    train::Trainer<SiTModel> t(m, data, quiet(8, 2, &world()));
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("differs between rank 0 and rank 1"), std::string::npos) << e.what();
  }
}

/// A temporary folder named by rank 0, the same on every rank.
fs::path shared_temp_dir(const std::string& name) {
  std::string p;
  if (world().rank() == 0) {
    const fs::path d = fs::temp_directory_path() / ("redi_test_dist_" + name + "_" + std::to_string(::getpid()));
    fs::remove_all(d);
    fs::create_directories(d);
    p = d.string();
  }
  return dist::broadcast_string(world(), p);
}

TEST(DistTrain, ResumeAcrossWorldSizes) {
  using M = SiTModel;
  const auto data = toy_set(64, 2);
  const auto o = options<M>(RepDrop::PerSample);
  const fs::path dir = shared_temp_dir("resume");
  M ref(o);  // the uninterrupted one-process run: 8 steps
  train::Trainer<M> one(ref, data, quiet(8, 8));
  one.run();

  // W ranks train steps 1-4 and write the checkpoint (rank 0 only), then ONE process resumes
  // (every rank on its own, with no communicator) and trains steps 5-8.
  {
    M a(o);
    auto tc = quiet(8, 4, &world());
    tc.out_dir = (dir / "many").string();
    tc.ckpt_every = 0;  // at the end
    tc.log_every = 1;
    train::Trainer<M> t(a, data, tc);
    t.run();  // returns on every rank after the checkpoint exists
  }
  M b(o);
  train::Trainer<M> tb(b, data, quiet(8, 8));
  tb.resume(dir / "many" / "checkpoint.safetensors");
  tb.run();
  std::vector<train::StepRecord> tail(one.history().begin() + 4, one.history().end());
  Errors e = compare(b, ref, tb.history(), tail);
  report("resume: W ranks (steps 1-4) -> 1 process (5-8)", e);
  EXPECT_LE(e.weights, 1e-6); EXPECT_LE(e.ema, 1e-6); EXPECT_LE(e.m, 1e-6); EXPECT_LE(e.v, 1e-6);
  EXPECT_LE(e.loss, 1e-6);
  if (world().rank() == 0) {  // only rank 0 logged: one JSONL line per step
    std::ifstream f(dir / "many" / "metrics.jsonl");
    int lines = 0;
    for (std::string l; std::getline(f, l);) ++lines;
    EXPECT_EQ(lines, 4);
  }

  // and the reverse: one process writes at step 4 (rank 0's file), W ranks resume
  if (world().rank() == 0) {
    M a(o);
    train::Trainer<M> t(a, data, quiet(8, 4));
    t.run();
    t.save(dir / "one.safetensors");
  }
  world().barrier();
  M c(o);
  train::Trainer<M> tcn(c, data, quiet(8, 8, &world()));
  tcn.resume(dir / "one.safetensors");
  tcn.run();
  e = compare(c, ref, tcn.history(), tail);
  report("resume: 1 process (steps 1-4) -> W ranks (5-8)", e);
  EXPECT_LE(e.weights, 1e-6); EXPECT_LE(e.ema, 1e-6); EXPECT_LE(e.m, 1e-6); EXPECT_LE(e.v, 1e-6);
  EXPECT_LE(e.loss, 1e-6);
  expect_same_bits_on_all_ranks(c);
  world().barrier();
  if (world().rank() == 0) fs::remove_all(dir);
}

TEST(DistSample, MergedSamplesEqualOneProcessBitForBit) {
  using M = SiTModel;
  const auto data = toy_set(64, 2);
  M m(options<M>(RepDrop::PerSample));
  train::Trainer<M> t(m, data, quiet(8, 3));  // a few steps: non-trivial weights, same on every rank
  t.run();
  std::vector<int> labels(11);
  for (int i = 0; i < 11; ++i) labels[std::size_t(i)] = i % 4;
  auto draw = [&](float* out, const SampleRequest& req) {
    m.sample<SdeEulerMaruyama, Combine<CFG<VaeOnly>, RepGuidance>>(out, req, {.num_steps = 4},
                                                                    {.cfg_scale = 1.5, .rg_scale = 1.5});
  };
  const ModelConfig& mc = m.net().config();
  const train::SampleImages one = train::sample_images(mc, labels, 9, draw, 3);
  const train::SampleImages many = train::sample_images_distributed(world(), mc, labels, 9, draw, 3);
  const dist::Range mine = train::block_rows(11, 3, world().rank(), world().size());
  EXPECT_EQ(mine.begin % 3, 0);
  if (world().rank() == 0) {
    ASSERT_EQ(many.n, 11);
    ASSERT_EQ(many.x.size(), one.x.size());
    EXPECT_EQ(std::memcmp(many.x.data(), one.x.data(), one.x.size() * sizeof(float)), 0);
    EXPECT_EQ(many.labels, one.labels);
  } else {
    EXPECT_EQ(many.n, mine.size());
  }
}

TEST(DistComm, Collectives) {
  dist::Mpi& c = world();
  const int W = c.size(), r = c.rank();
  EXPECT_GE(c.local_rank(), 0);
  EXPECT_LT(c.local_rank(), W);
  std::vector<float> f = {float(r + 1), -2.0f * float(r)};
  c.allreduce_mean(f.data(), f.size());
  EXPECT_FLOAT_EQ(f[0], float(W + 1) / 2.0f);
  EXPECT_FLOAT_EQ(f[1], -float(W - 1));
  double d = r;
  c.allreduce_sum(&d, 1);
  EXPECT_EQ(d, W * (W - 1) / 2.0);
  EXPECT_EQ(dist::broadcast_value(c, std::uint64_t(100 + r)), 100u);
  EXPECT_EQ(dist::broadcast_string(c, "rank " + std::to_string(r)), "rank 0");
  std::vector<int> mine(std::size_t(r + 1), r);  // rank r sends r + 1 copies of r
  const std::vector<int> all = train::gather_rows(c, mine.data(), r + 1, 1);
  if (r == 0) {
    std::vector<int> expect;
    for (int k = 0; k < W; ++k) expect.insert(expect.end(), std::size_t(k + 1), k);
    EXPECT_EQ(all, expect);
  } else {
    EXPECT_TRUE(all.empty());
  }
  EXPECT_NO_THROW(dist::check_same_on_all_ranks(c, "same", "x"));
  if (W > 1) EXPECT_THROW(dist::check_same_on_all_ranks(c, r == W - 1 ? "b" : "a", "x"), Error);
}

}  // namespace

int main(int argc, char** argv) {
  dist::MpiRuntime mpi(argc, argv);
  ::testing::InitGoogleTest(&argc, argv);
  const int rc = RUN_ALL_TESTS();
  double failed = rc != 0 ? 1 : 0;
  world().allreduce_sum(&failed, 1);
  if (world().rank() == 0 && failed > 0) std::printf("[dist] %g rank(s) failed\n", failed);
  return failed > 0 ? 1 : 0;
}
