// The device code path of Dinov2<T, Dev> (nn/dinov2.hpp) — everything the GPU network does
// differently from the CPU one except the kernels — exercised without a GPU: `StagedHost` is a
// device tag that is NOT host (so the position table and the token prefix are staged through
// host copies, forward_host stages pixels and tokens, the weights load into a host buffer and
// are uploaded once, and saving downloads them) but whose memory is host memory and whose
// backend is the CPU's. Against Dinov2<T> on the CPU every result must be identical bit for bit.
// (tests/cuda/test_cuda_dinov2.cu compares the CUDA kernels on a GPU.)
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "io_test_util.hpp"
#include "redi/core/device.hpp"
#include "redi/core/philox.hpp"
#include "redi/ops/cpu_backend.hpp"
#include "redi/train/dinov2_encoder.hpp"
#include "redi/weights/dinov2.hpp"
#include "staged_host.hpp"

using namespace redi;
using staged::StagedHost;

namespace {

template <class T>
std::vector<T> pixels(int B, int H, int W, std::uint64_t seed) {
  std::vector<T> x(std::size_t(B) * 3 * H * W);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = T(philox::normal(seed, 0, i));
  return x;
}

template <class T>
void random_network_is_bit_identical() {
  Dinov2Config c;
  c.width = 48, c.heads = 3, c.depth = 2, c.mlp_dim = 96, c.registers = 4;
  Dinov2<T> cpu_net(c);
  cpu_net.randomize(5, 0.05);
  Dinov2<T, StagedHost> dev_net(c);
  const auto w = cpu_net.params_to_host();
  dev_net.set_params(w.data());
  EXPECT_EQ(dev_net.params_to_host(), w);
  const int B = 5, H = 56, W = 70;  // a 4 x 5 grid
  const auto x = pixels<T>(B, H, W, 6);
  std::vector<T> a(std::size_t(B) * 20 * c.width), b(a.size()), d(a.size());
  // the same chunks (the device default is 64, the CPU's 16: other GEMM shapes round differently)
  dev_net.set_chunk_batch(2);
  cpu_net.set_chunk_batch(2);
  cpu_net.forward(x.data(), B, H, W, a.data());
  dev_net.forward(x.data(), B, H, W, b.data());  // "device" pointers (host memory here)
  EXPECT_EQ(b, a);
  dev_net.forward_host(x.data(), B, H, W, d.data());  // staged through device buffers
  EXPECT_EQ(d, a);
  EXPECT_EQ(dev_net.patch_positions(4, 5), cpu_net.patch_positions(4, 5));
  // a changed weight reaches the staged positions and prefix (set_params -> params_changed)
  auto w2 = w;
  const ParamEntry* cls = dev_net.find("embeddings.cls_token");
  for (std::int64_t i = 0; i < cls->numel(); ++i) w2[std::size_t(cls->offset + i)] += T(0.5);
  const ParamEntry* pos = dev_net.find("embeddings.position_embeddings");
  for (std::int64_t i = 0; i < pos->numel(); ++i) w2[std::size_t(pos->offset + i)] *= T(2);
  dev_net.set_params(w2.data());
  std::copy(w2.begin(), w2.end(), cpu_net.params().data());
  cpu_net.params_changed();
  cpu_net.forward(x.data(), B, H, W, a.data());
  dev_net.forward_host(x.data(), B, H, W, d.data());
  EXPECT_EQ(d, a);
  EXPECT_NE(d, b);
}

}  // namespace

TEST(Dinov2DevicePath, RandomNetworkFloatIsBitIdentical) { random_network_is_bit_identical<float>(); }
TEST(Dinov2DevicePath, RandomNetworkDoubleIsBitIdentical) { random_network_is_bit_identical<double>(); }

TEST(Dinov2DevicePath, StagedLoadSaveAndEncoderMatchTheCpu) {
  const auto path = test::test_data_path("dinov2/tiny_dinov2.safetensors");
  auto cpu_net = load_dinov2<float>(path);
  auto dev_net = load_dinov2<float, StagedHost>(path);  // host buffer, one upload
  EXPECT_EQ(dev_net.config().str(), cpu_net.config().str());
  EXPECT_EQ(dev_net.params_to_host(), cpu_net.params_to_host());
  // saving downloads the parameters: the file round-trips
  const test::TempDir dir("dinov2_device_path");
  const auto saved = dir.path() / "staged.safetensors";
  WeightsFile<Dinov2<float, StagedHost>>::save(dev_net, saved);
  EXPECT_EQ(load_dinov2<float>(saved).params_to_host(), cpu_net.params_to_host());
  // the encoder (preprocessing on the host, the network behind forward_host) on both devices
  Dinov2Encoder ecpu(std::move(cpu_net)), edev(std::move(dev_net));
  EXPECT_TRUE(ecpu.on_host());
  EXPECT_FALSE(edev.on_host());
  EXPECT_EQ(edev.num_params(), ecpu.num_params());
  Tensor<float> im(Shape{3, 3, 64, 64});
  for (std::int64_t i = 0; i < im.numel(); ++i) im.data()[i] = float(philox::uniform(4, 0, std::uint64_t(i))) * 2 - 1;
  const auto g = ecpu.grid(64, 64);  // 56 px input: 4 x 4
  ASSERT_EQ(g, (std::array<int, 2>{4, 4}));
  Tensor<float> fa(Shape{3, g[0], g[1], ecpu.feature_dim()}), fb(Shape{3, g[0], g[1], edev.feature_dim()});
  ecpu.encode(im.view(), fa.view());
  edev.encode(im.view(), fb.view());
  EXPECT_EQ(fb.to_host(), fa.to_host());
  // a bad input size is an error on the device path too
  Tensor<float> bad(Shape{1, 3, 20, 20});
  EXPECT_THROW(edev.encode(bad.view(), fb.view()), Error);
}
