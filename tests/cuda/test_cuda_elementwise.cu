// CUDA vs CPU: elementwise helpers, activations, softmax, MSE, AdamW/EMA, embeddings,
// patchify, fixed embeddings and Philox (bit identity). Skips without a device.
#include <cstring>

#include "cuda_test_util.hpp"
#include "redi/core/philox.hpp"
#include "redi/cuda/ops/activation.cuh"
#include "redi/cuda/ops/copy.cuh"
#include "redi/cuda/ops/elementwise.cuh"
#include "redi/cuda/ops/embedding.cuh"
#include "redi/cuda/ops/optim.cuh"
#include "redi/cuda/ops/patchify.cuh"
#include "redi/cuda/ops/philox.cuh"
#include "redi/cuda/ops/softmax.cuh"
#include "redi/ops/activation.hpp"
#include "redi/ops/copy.hpp"
#include "redi/ops/elementwise.hpp"
#include "redi/ops/embedding.hpp"
#include "redi/ops/embedding_fixed.hpp"
#include "redi/ops/optim.hpp"
#include "redi/ops/patchify.hpp"
#include "redi/ops/softmax.hpp"

namespace redi::test {
namespace {

template <class T>
class CudaEw : public ::testing::Test {};
using Types = ::testing::Types<float, bf16>;
TYPED_TEST_SUITE(CudaEw, Types);

TYPED_TEST(CudaEw, AddScaleBroadcast) {
  REDI_REQUIRE_CUDA();
  using T = TypeParam;
  const int outer = 37, inner = 129;
  const std::size_t n = std::size_t(outer) * inner;
  auto x = input<T>(n, 1), y = input<T>(n, 2), row = input<T>(inner, 3);
  auto dx = dev<T>(x), dy = dev<T>(y), drow = dev<T>(row);
  ops::add_inplace(ctx(), dx.data(), dy.data(), std::int64_t(n));
  ops::add_broadcast(ctx(), dx.data(), drow.data(), outer, inner);
  ops::scale_inplace(ctx(), dx.data(), std::int64_t(n), 0.75);
  // Reference with the same bf16 rounding after each op.
  std::vector<float> r = x;
  ops::add_inplace(cpu, r.data(), y.data(), std::int64_t(n));
  if constexpr (std::is_same_v<T, bf16>) r = round_bf16(r);
  ops::add_broadcast(cpu, r.data(), row.data(), outer, inner);
  if constexpr (std::is_same_v<T, bf16>) r = round_bf16(r);
  ops::scale_inplace(cpu, r.data(), std::int64_t(n), 0.75f);
  EXPECT_TRUE(close(host(dx), r, Tol<T>::elem));
}

TYPED_TEST(CudaEw, SumSquaresAndConvert) {
  REDI_REQUIRE_CUDA();
  using T = TypeParam;
  for (std::size_t n : {std::size_t(1), std::size_t(1000), std::size_t(1234567)}) {
    auto x = input<T>(n, 4);
    auto dx = dev<T>(x);
    const double ref = ops::sum_squares(cpu, x.data(), std::int64_t(n));
    const double got = ops::sum_squares(ctx(), dx.data(), std::int64_t(n));
    EXPECT_NEAR(got, ref, 1e-12 * ref) << "n=" << n;  // both double sums of exact squares
    auto d_out = dev_zeros<double>(1);
    ops::sum_squares_async(ctx(), d_out.data(), dx.data(), std::int64_t(n));
    EXPECT_NEAR(d_out.to_host()[0], ref, 1e-12 * ref);
  }
  EXPECT_EQ(ops::sum_squares(ctx(), static_cast<const T*>(nullptr), 0), 0.0);
  // fp32 -> T -> fp32 equals the host's RNE rounding
  auto x = randn(4099, 5, 3.0f);
  auto dx = dev<float>(x);
  auto dt = dev_zeros<T>(x.size());
  auto back = dev_zeros<float>(x.size());
  ops::convert(ctx(), dt.data(), dx.data(), std::int64_t(x.size()));
  ops::convert(ctx(), back.data(), dt.data(), std::int64_t(x.size()));
  auto want = to_float(to<T>(x));
  auto got = host(back);
  EXPECT_EQ(0, std::memcmp(got.data(), want.data(), got.size() * sizeof(float)));
}

// copy_strided (one cudaMemcpy2DAsync) moves the same block of rows as the CPU op; elements
// outside the block stay as they were.
TEST(CudaCopy, StridedEqualsCpu) {
  REDI_REQUIRE_CUDA();
  const std::int64_t rows = 37, cols = 129, ss = 301, ds = 200;
  const auto src = randn(std::size_t(rows * ss), 41);
  std::vector<float> want(std::size_t(rows * ds), -7.0f);
  ops::copy_strided(cpu, want.data() + 3, ds, src.data() + 5, ss, rows, cols);
  auto d_src = dev<float>(src);
  auto d_dst = dev<float>(std::vector<float>(std::size_t(rows * ds), -7.0f));
  ops::copy_strided(ctx(), d_dst.data() + 3, ds, d_src.data() + 5, ss, rows, cols);
  EXPECT_EQ(host(d_dst), want);
}

TYPED_TEST(CudaEw, GeluSilu) {
  REDI_REQUIRE_CUDA();
  using T = TypeParam;
  const std::size_t n = 10007;
  const auto N = std::int64_t(n);
  auto x = input<T>(n, 6, 3.0f), g = input<T>(n, 7);
  auto dx = dev<T>(x), dg = dev<T>(g);
  auto out = dev_zeros<T>(n), din = dev_zeros<T>(n);
  std::vector<float> ref(n), dref(n);

  ops::gelu_forward(cpu, ref.data(), x.data(), N);
  ops::gelu_backward(cpu, dref.data(), g.data(), x.data(), N);
  ops::gelu_forward(ctx(), out.data(), dx.data(), N);
  ops::gelu_backward(ctx(), din.data(), dg.data(), dx.data(), N);
  EXPECT_TRUE(close(host(out), ref, Tol<T>::elem)) << "gelu_forward";
  EXPECT_TRUE(close(host(din), dref, Tol<T>::elem)) << "gelu_backward";

  ops::silu_forward(cpu, ref.data(), x.data(), N);
  ops::silu_backward(cpu, dref.data(), g.data(), x.data(), N);
  ops::silu_forward(ctx(), out.data(), dx.data(), N);
  ops::silu_backward(ctx(), din.data(), dg.data(), dx.data(), N);
  EXPECT_TRUE(close(host(out), ref, Tol<T>::elem)) << "silu_forward";
  EXPECT_TRUE(close(host(din), dref, Tol<T>::elem)) << "silu_backward";
}

TYPED_TEST(CudaEw, Softmax) {
  REDI_REQUIRE_CUDA();
  using T = TypeParam;
  for (int cols : {1, 31, 64, 256, 1000}) {
    const int rows = 53;
    const std::size_t n = std::size_t(rows) * cols;
    auto x = input<T>(n, 8, 4.0f), g = input<T>(n, 9);
    std::vector<float> y(n), dref(n);
    ops::softmax_forward(cpu, y.data(), x.data(), rows, cols);
    auto dx = dev<T>(x), dg = dev<T>(g);
    auto out = dev_zeros<T>(n), din = dev_zeros<T>(n);
    ops::softmax_forward(ctx(), out.data(), dx.data(), rows, cols);
    EXPECT_TRUE(close(host(out), y, Tol<T>::elem)) << "softmax_forward cols=" << cols;
    // backward from the GPU's probabilities (bf16-rounded for bf16)
    auto yg = host(out);
    ops::softmax_backward(cpu, dref.data(), g.data(), yg.data(), rows, cols);
    ops::softmax_backward(ctx(), din.data(), dg.data(), out.data(), rows, cols);
    EXPECT_TRUE(close(host(din), dref, Tol<T>::red)) << "softmax_backward cols=" << cols;
    // in place (out aliases in)
    ops::softmax_forward(ctx(), dx.data(), dx.data(), rows, cols);
    EXPECT_TRUE(close(host(dx), y, Tol<T>::elem)) << "softmax_forward in place";
  }
}

TEST(CudaOptim, AdamWAndEmaFp32) {
  REDI_REQUIRE_CUDA();
  const std::size_t n = 50001;
  const auto N = std::int64_t(n);
  auto p = randn(n, 12), m = randn(n, 13, 0.1f), g = randn(n, 15);
  auto v = randn(n, 14, 0.1f);
  for (auto& x : v) x = x * x;
  ops::AdamWConfig cfg;
  cfg.lr = 1e-3;
  cfg.weight_decay = 0.01;
  auto dp = dev<float>(p), dm = dev<float>(m), dv = dev<float>(v), dg = dev<float>(g);
  for (std::int64_t step = 1; step <= 3; ++step) {
    ops::adamw_step(cpu, p.data(), g.data(), m.data(), v.data(), N, cfg, step);
    ops::adamw_step(ctx(), dp.data(), dg.data(), dm.data(), dv.data(), N, cfg, step);
  }
  EXPECT_TRUE(close(host(dp), p, 1e-5, 1e-6)) << "param";
  EXPECT_TRUE(close(host(dm), m, 1e-5, 1e-6)) << "m";
  EXPECT_TRUE(close(host(dv), v, 1e-5, 1e-6)) << "v";
  auto e = randn(n, 16);
  auto de = dev<float>(e);
  ops::ema_update(cpu, e.data(), p.data(), N, 0.9999);
  ops::ema_update(ctx(), de.data(), dp.data(), N, 0.9999);
  EXPECT_TRUE(close(host(de), e, 1e-5, 1e-6)) << "ema";
}

TEST(CudaOptim, AdamWMixedBf16) {
  REDI_REQUIRE_CUDA();
  // fp32 master/moments, bf16 gradients, bf16 compute copy written by the step.
  const std::size_t n = 4097;
  const auto N = std::int64_t(n);
  auto p = randn(n, 17), m = std::vector<float>(n, 0.0f), v = std::vector<float>(n, 0.0f);
  auto g = round_bf16(randn(n, 18));
  ops::AdamWConfig cfg;
  auto dp = dev<float>(p), dm = dev<float>(m), dv = dev<float>(v);
  auto dg = dev<bf16>(g);
  auto copy = dev_zeros<bf16>(n);
  ops::adamw_step(cpu, p.data(), g.data(), m.data(), v.data(), N, cfg, 1);
  ops::adamw_step(ctx(), dp.data(), dg.data(), dm.data(), dv.data(), N, cfg, 1, copy.data());
  EXPECT_TRUE(close(host(dp), p, 1e-5, 1e-6)) << "master";
  EXPECT_TRUE(close(host(copy), p, 4e-3, 0.0)) << "bf16 copy";
}

TYPED_TEST(CudaEw, EmbeddingAndScatterAdd) {
  REDI_REQUIRE_CUDA();
  using T = TypeParam;
  const int rows = 11, D = 96, N = 64;
  auto table = input<T>(std::size_t(rows) * D, 19);
  auto dout = input<T>(std::size_t(N) * D, 20);
  std::vector<int> idx(N);
  for (int i = 0; i < N; ++i) idx[i] = (i * 7 + 3) % rows;  // repeats
  std::vector<float> out(std::size_t(N) * D), dtab = randn(std::size_t(rows) * D, 21);
  auto dtab0 = dtab;
  ops::embedding_forward(cpu, out.data(), table.data(), idx.data(), N, D);
  ops::embedding_backward(cpu, dtab.data(), dout.data(), idx.data(), N, D);
  auto dtable = dev<T>(table), ddout = dev<T>(dout);
  auto didx = dev_int(idx);
  auto dres = dev_zeros<T>(std::size_t(N) * D);
  ops::embedding_forward(ctx(), dres.data(), dtable.data(), didx.data(), N, D);
  EXPECT_EQ(host(dres), out);
  auto dgrad = dev<float>(dtab0);  // fp32 gradient table, as BF16Mixed uses
  ops::embedding_backward(ctx(), dgrad.data(), ddout.data(), didx.data(), N, D);
  EXPECT_TRUE(close(host(dgrad), dtab, 1e-5, 1e-6));
  if constexpr (std::is_same_v<T, float>) {
    auto dsame = dev<float>(dtab0);
    ops::embedding_backward(ctx(), dsame.data(), ddout.data(), didx.data(), N, D);
    EXPECT_TRUE(close(host(dsame), dtab, 1e-5, 1e-6));
  }
}

TYPED_TEST(CudaEw, PatchifyUnpatchify) {
  REDI_REQUIRE_CUDA();
  using T = TypeParam;
  const int B = 3, C = 5, H = 12, W = 8;
  for (int p : {1, 2, 4}) {
    const std::size_t n = std::size_t(B) * C * H * W;
    auto img = input<T>(n, 22), tok = input<T>(n, 23);
    std::vector<float> r1(n), r2(n), r3(n), r4(n);
    ops::patchify_forward(cpu, r1.data(), img.data(), B, C, H, W, p);
    ops::patchify_backward(cpu, r2.data(), tok.data(), B, C, H, W, p);
    ops::unpatchify_forward(cpu, r3.data(), tok.data(), B, C, H, W, p);
    ops::unpatchify_backward(cpu, r4.data(), img.data(), B, C, H, W, p);
    auto dimg = dev<T>(img), dtok = dev<T>(tok);
    auto o = dev_zeros<T>(n);
    ops::patchify_forward(ctx(), o.data(), dimg.data(), B, C, H, W, p);
    EXPECT_EQ(host(o), r1) << "patchify_forward p=" << p;
    ops::patchify_backward(ctx(), o.data(), dtok.data(), B, C, H, W, p);
    EXPECT_EQ(host(o), r2) << "patchify_backward p=" << p;
    ops::unpatchify_forward(ctx(), o.data(), dtok.data(), B, C, H, W, p);
    EXPECT_EQ(host(o), r3) << "unpatchify_forward p=" << p;
    ops::unpatchify_backward(ctx(), o.data(), dimg.data(), B, C, H, W, p);
    EXPECT_EQ(host(o), r4) << "unpatchify_backward p=" << p;
  }
}

TYPED_TEST(CudaEw, FixedEmbeddings) {
  REDI_REQUIRE_CUDA();
  using T = TypeParam;
  const int N = 7;
  std::vector<float> t = {0.0f, 1.0f, 17.0f, 250.0f, 999.0f, 0.5f, 0.001f};
  if constexpr (std::is_same_v<T, bf16>) t = round_bf16(t);
  for (int dim : {256, 33}) {
    std::vector<float> ref(std::size_t(N) * dim);
    ops::timestep_embedding(cpu, ref.data(), t.data(), N, dim);
    auto dt = dev<T>(t);
    auto out = dev_zeros<T>(ref.size());
    ops::timestep_embedding(ctx(), out.data(), dt.data(), N, dim);
    EXPECT_TRUE(close(host(out), ref, Tol<T>::elem)) << "timestep_embedding dim=" << dim;
  }
  const int gh = 16, gw = 16, D = 64;
  std::vector<float> ref(std::size_t(gh) * gw * D);
  ops::pos_embed_2d(ref.data(), gh, gw, D);
  auto out = dev_zeros<T>(ref.size());
  ops::pos_embed_2d(ctx(), out.data(), gh, gw, D);
  EXPECT_EQ(host(out), to_float(to<T>(ref)));
}

// ---- Philox: the GPU's numbers are the CPU's, bit for bit.
template <class T>
void check_philox(std::size_t n, std::uint64_t seed, std::uint64_t stream, std::uint64_t offset) {
  std::vector<T> want(n);
  philox::fill_normal(want.data(), n, seed, stream, offset);
  Tensor<T, Cuda> d(Shape{std::int64_t(n)});
  philox::fill_normal(ctx(), d.data(), n, seed, stream, offset);
  auto got = d.to_host();
  ASSERT_EQ(0, std::memcmp(got.data(), want.data(), n * sizeof(T)))
      << "fill_normal n=" << n << " seed=" << seed << " stream=" << stream
      << " offset=" << offset;
}

TYPED_TEST(CudaEw, PhiloxNormalBitIdentical) {
  REDI_REQUIRE_CUDA();
  using T = TypeParam;
  check_philox<T>(1, 0, 0, 0);
  check_philox<T>(7, 42, 3, 0);
  check_philox<T>(1001, 42, 3, 5);
  check_philox<T>(4096, 0x123456789abcdefull, philox::stream_id(2, 77, 9), 2);
  check_philox<T>(1 << 20, 7, 1, 1234567);
}

TEST(CudaPhilox, UniformBitIdentical) {
  REDI_REQUIRE_CUDA();
  const std::size_t n = 100001;
  const std::uint64_t seed = 99, stream = 5, offset = 3;
  Tensor<float, Cuda> d(Shape{std::int64_t(n)});
  ops::fill_uniform(ctx(), d.data(), n, seed, stream, offset);
  auto got = d.to_host();
  std::vector<float> want(n);
  for (std::size_t k = 0; k < n; ++k) want[k] = float(philox::uniform(seed, stream, offset + k));
  EXPECT_EQ(0, std::memcmp(got.data(), want.data(), n * sizeof(float)));
}

}  // namespace
}  // namespace redi::test
