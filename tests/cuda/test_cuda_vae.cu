// CUDA vs CPU for the SD-VAE's ops (GroupNorm + SiLU, nearest 2x upsampling, pad2d, the cuDNN
// convolution incl. stride 2 with the asymmetric (0,1,0,1) pad, 1x1 and 3x3) and the whole
// Vae<float, Cuda> on the tiny parity VAE (tests/data/vae) against Vae<float> on the CPU.
// fp32 convolutions run without TF32 (CUDNN_FMA_MATH). Skips without a device.
#include "cuda_test_util.hpp"
#include "redi/cuda/backend.cuh"
#include "redi/nn/vae.hpp"
#include "redi/ops/group_norm.hpp"
#include "redi/ops/pad2d.hpp"
#include "redi/ops/upsample.hpp"
#include "vae_reference.hpp"

namespace redi::test {
namespace {

template <class T>
class CudaVaeOps : public ::testing::Test {};
using Types = ::testing::Types<float, bf16>;
TYPED_TEST_SUITE(CudaVaeOps, Types);

TYPED_TEST(CudaVaeOps, GroupNormUpsamplePad) {
  REDI_REQUIRE_CUDA();
  using T = TypeParam;
  const int B = 3, C = 64, H = 9, W = 7, G = 32;
  const std::size_t n = std::size_t(B) * C * H * W;
  auto x = input<T>(n, 40, 2.0f, 1.0f), ga = input<T>(C, 41, 0.5f, 1.0f), be = input<T>(C, 42);
  for (bool silu : {false, true}) {
    std::vector<float> y(n);
    ops::group_norm_forward(cpu, y.data(), x.data(), ga.data(), be.data(), B, C, H * W, G, 1e-6, silu);
    auto d_x = dev<T>(x), d_g = dev<T>(ga), d_b = dev<T>(be);
    auto d_y = dev_zeros<T>(n);
    ops::group_norm_forward(ctx(), d_y.data(), d_x.data(), d_g.data(), d_b.data(), B, C, H * W, G, 1e-6, silu);
    EXPECT_TRUE(close(host(d_y), y, Tol<T>::red)) << "group_norm silu=" << silu;
    ops::group_norm_forward(ctx(), d_x.data(), d_x.data(), d_g.data(), d_b.data(), B, C, H * W, G, 1e-6, silu);
    EXPECT_TRUE(close(host(d_x), y, Tol<T>::red)) << "group_norm in place";
  }
  std::vector<float> up(n * 4), pd(std::size_t(B) * C * (H + 1) * (W + 3));
  ops::upsample_nearest2x_forward(cpu, up.data(), x.data(), B, C, H, W);
  ops::pad2d_forward(cpu, pd.data(), x.data(), B, C, H, W, 0, 1, 2, 1);
  auto d_x = dev<T>(x);
  auto d_up = dev_zeros<T>(up.size()), d_pd = dev_zeros<T>(pd.size());
  ops::upsample_nearest2x_forward(ctx(), d_up.data(), d_x.data(), B, C, H, W);
  ops::pad2d_forward(ctx(), d_pd.data(), d_x.data(), B, C, H, W, 0, 1, 2, 1);
  EXPECT_EQ(host(d_up), up);  // copies: exact
  EXPECT_EQ(host(d_pd), pd);
}

TYPED_TEST(CudaVaeOps, Conv2dMatchesCpu) {
  REDI_REQUIRE_CUDA();
  using T = TypeParam;
  using G = ops::Conv2dGeometry;
  const int B = 2, H = 12, W = 10;
  for (const G g : {G::square(16, 32, 3, 1, 1), G::square(32, 16, 1, 1, 0), G{16, 16, 3, 3, 2, 2, 0, 1, 0, 1},
                    G{8, 12, 1, 7, 1, 1, 0, 0, 3, 3}, G::square(3, 8, 3, 2, 1)}) {
    auto x = round_bf16(input<float>(std::size_t(B) * g.in_channels * H * W, 50));
    auto w = round_bf16(input<float>(std::size_t(g.weight_elems()), 51, 0.2f));
    auto b = round_bf16(input<float>(std::size_t(g.out_channels), 52));
    const auto ref = ref::conv2d(x, w, b, B, H, W, g);
    auto d_x = dev<T>(x), d_w = dev<T>(w), d_b = dev<T>(b);
    auto d_y = dev_zeros<T>(ref.size());
    const auto ns = Backend<Cuda>::conv2d_scratch_elems(g, H, W, B);
    EXPECT_EQ(ns == 0, g.symmetric_padding()) << g.str();
    auto d_s = dev_zeros<T>(std::size_t(std::max<std::int64_t>(ns, 1)));
    Backend<Cuda>::conv2d_forward(ctx(), d_y.data(), d_x.data(), d_w.data(), d_b.data(), B, H, W, g, d_s.data(), ns);
    EXPECT_TRUE(close(host(d_y), ref, Tol<T>::gemm)) << g.str();
    if (!g.symmetric_padding())  // too little scratch is an error naming the geometry
      EXPECT_THROW(Backend<Cuda>::conv2d_forward(ctx(), d_y.data(), d_x.data(), d_w.data(), d_b.data(), B, H, W, g,
                                                 d_s.data(), ns - 1),
                   Error);
  }
}

TEST(CudaVae, TinyVaeMatchesCpu) {
  REDI_REQUIRE_CUDA();
  const auto c = ref::tiny_vae_on_cpu();
  Vae<float, Cuda> vae(c.cfg, ctx());
  vae.set_params(c.params.data());
  vae.micro_batch = 2;
  auto d_img = dev<float>(c.images), d_z = dev<float>(c.latents);
  auto d_m = dev_zeros<float>(c.moments.size()), d_d = dev_zeros<float>(c.decoded.size());
  vae.encode(d_m.data(), d_img.data(), c.B, c.H, c.W);
  vae.decode(d_d.data(), d_z.data(), c.B, c.h, c.w);
  EXPECT_TRUE(close(host(d_m), c.moments, 1e-4, 1e-5)) << "encoder moments";
  EXPECT_TRUE(close(host(d_d), c.decoded, 1e-4, 1e-5)) << "decoder output";
}

}  // namespace
}  // namespace redi::test
