// Checkpoints of device models (ReDi<..., Cuda>) are staged through host memory. This exercises
// that path without a GPU: `StagedHost` is a device tag that is NOT host (so checkpoint.hpp
// takes its staging branch) but whose memory is host memory. Checkpoints must move between it
// and the CPU model in both directions bit for bit (a GPU run resumes or samples on the CPU),
// and a failed load must leave the staged model unchanged.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "redi/core/device.hpp"

namespace staged {
/// Host memory behind a non-host device tag.
struct StagedHost {
  static constexpr bool is_host = false;
  static constexpr const char* name = "staged-host";
  static void* allocate(std::size_t n) { return redi::Cpu::allocate(n); }
  static void deallocate(void* p) noexcept { redi::Cpu::deallocate(p); }
  static void copy_to_host(void* d, const void* s, std::size_t n) { redi::Cpu::copy_to_host(d, s, n); }
  static void copy_from_host(void* d, const void* s, std::size_t n) { redi::Cpu::copy_from_host(d, s, n); }
  static void memset_zero(void* p, std::size_t n) { redi::Cpu::memset_zero(p, n); }
};
}  // namespace staged

// The one op the model's constructor runs on its device (EMA = copy of the weights); declared
// before the model headers, as the CUDA ops are (qualified calls bind at definition).
namespace redi::ops {
template <class T>
void copy(const staged::StagedHost&, T* dst, const T* src, std::int64_t n) {
  if (n > 0) std::memcpy(dst, src, std::size_t(n) * sizeof(T));
}
}  // namespace redi::ops

#include "io_test_util.hpp"
#include "redi/core/philox.hpp"
#include "redi/train/checkpoint.hpp"

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
