// AdamW writing the model's compute copy in its own pass (ops/optim.hpp, train/optimizer.hpp,
// ReDi::finish_step):
//   - train::Optimizer::step with a copy: the copy equals the updated weights bit for bit, and the
//     weights/moments equal a step without a copy (groups at odd offsets, weight decay on some);
//   - on the Bf16Emulator the copy is the bf16 rounding of the weights (what convert() gives);
//   - a BF16Emulated ReDi whose optimiser writes the copy (the default now) trains bit-identically
//     to one forced through the old path (copy marked stale before each step, converted by the
//     next forward), and leaves a copy that equals round(weights).
#include <gtest/gtest.h>

#include <cstring>
#include <utility>
#include <vector>

#include "bf16_drift.hpp"
#include "gradcheck.hpp"
#include "redi/ops/bf16_emulation.hpp"
#include "redi/ops/cpu_backend.hpp"
#include "redi/redi_model.hpp"
#include "redi/train/optimizer.hpp"
#include "toy_data.hpp"

using namespace redi;

namespace {

template <class T>
bool bit_equal(const T* a, const T* b, std::size_t n) {
  return std::memcmp(a, b, n * sizeof(T)) == 0;
}

template <class Dev>
void optimizer_pair(bool round_copy) {
  const std::int64_t n = 1001;
  const std::vector<train::ParamGroup> groups = {{0, 13, true}, {13, 500, false}, {513, 488, true}};
  train::OptimizerConfig cfg;
  cfg.adamw.lr = 1e-2;
  cfg.adamw.weight_decay = 0.1;
  cfg.grad_clip = 0.5;
  train::Optimizer<float, Dev> a(n, cfg), b(n, cfg);
  a.set_groups(groups);
  b.set_groups(groups);
  auto pa = test::normal<float>(n, 1), pb = pa;
  std::vector<float> copy(std::size_t(n), 0.0f);
  for (int s = 0; s < 3; ++s) {
    auto ga = test::normal<float>(n, 10 + s), gb = ga;
    a.step(pa.data(), ga.data(), 1e-2, nullptr, copy.data());
    b.step(pb.data(), gb.data(), 1e-2);
  }
  EXPECT_TRUE(bit_equal(pa.data(), pb.data(), pa.size())) << "weights";
  EXPECT_TRUE(bit_equal(a.m().data(), b.m().data(), pa.size())) << "m";
  EXPECT_TRUE(bit_equal(a.v().data(), b.v().data(), pa.size())) << "v";
  auto want = pa;
  if (round_copy) ops::round_to_bf16(want.data(), n);
  EXPECT_TRUE(bit_equal(copy.data(), want.data(), want.size())) << "copy";
  if (round_copy) EXPECT_FALSE(bit_equal(copy.data(), pa.data(), pa.size())) << "the copy must be rounded";
}

}  // namespace

TEST(OptimizerComputeCopy, CpuCopyEqualsWeightsAndStepUnchanged) { optimizer_pair<Cpu>(false); }

TEST(OptimizerComputeCopy, EmulatorCopyIsRounded) { optimizer_pair<Bf16Emulator<>>(true); }

TEST(OptimizerComputeCopy, ReDiTrainsAsWithTheSeparateConversion) {
  using E = ReDi<SiT, Merged, FlowMatching, BF16Emulated, Bf16Emulator<>>;
  test::drift::Spec s;
  s.depth = 2;
  const ModelConfig c = test::drift::config(s);
  E fused(test::drift::options<E>(s)), separate(test::drift::options<E>(s));
  const auto w0 = test::drift::start_weights(s);
  fused.net().params().from_host(w0);
  separate.net().params().from_host(w0);
  for (int step = 0; step < 3; ++step) {
    test::ToyData d(c, 4, 20 + step);
    separate.net().params();  // marks its copy stale: the next forward converts (the old path)
    const auto a = fused.train_step(d.x.data(), d.z.data(), d.y.data(), 4);
    const auto b = separate.train_step(d.x.data(), d.z.data(), d.y.data(), 4);
    EXPECT_EQ(a.loss.loss, b.loss.loss) << "step " << step;
    EXPECT_EQ(a.grad_norm, b.grad_norm) << "step " << step;
  }
  const auto wf = std::as_const(fused.net()).params().to_host();
  EXPECT_EQ(wf, std::as_const(separate.net()).params().to_host());
  auto want = wf;
  ops::round_to_bf16(want.data(), std::int64_t(want.size()));
  const float* copy = fused.net().compute_copy_target();  // host memory behind the emulator tag
  ASSERT_NE(copy, nullptr);
  EXPECT_TRUE(bit_equal(copy, want.data(), want.size())) << "the copy AdamW wrote";
}
