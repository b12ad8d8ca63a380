// CUDA vs CPU: cuBLASLt GEMM (all transposes, leading dimensions, alpha/beta, strided batches,
// fp32 with TF32 off, bf16 with fp32 or bf16 output), linear forward/backward (bias epilogue,
// fp32 parameter gradients for bf16), and the attention fallback forward/backward (hd 64 and
// 72, both loop orders). Skips without a device.
#include "cpu_reference.hpp"
#include "cuda_test_util.hpp"
#include "redi/cuda/ops/attention.cuh"
#include "redi/cuda/ops/gemm.cuh"
#include "redi/cuda/ops/linear.cuh"

namespace redi::test {
namespace {

template <class T>
class CudaGemm : public ::testing::Test {
protected:
  void SetUp() override {
    if (cuda_available()) ctx().set_tf32(false);
  }
};
using Types = ::testing::Types<float, bf16>;
TYPED_TEST_SUITE(CudaGemm, Types);

TYPED_TEST(CudaGemm, AllTransposesAlphaBeta) {
  REDI_REQUIRE_CUDA();
  using T = TypeParam;
  const int M = 37, N = 45, K = 70;
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb) {
      const int lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 5, ldc = N + 2;
      auto A = input<T>(std::size_t(ta ? K : M) * lda, 40 + ta);
      auto Bm = input<T>(std::size_t(tb ? N : K) * ldb, 42 + tb);
      auto C0 = input<T>(std::size_t(M) * ldc, 44);
      auto ref = C0;
      ref::gemm(ta, tb, M, N, K, 0.7f, A.data(), lda, Bm.data(), ldb, 0.3f, ref.data(), ldc);
      auto dA = dev<T>(A), dB = dev<T>(Bm), dC = dev<T>(C0);
      ops::gemm(ctx(), bool(ta), bool(tb), M, N, K, 0.7f, dA.data(), lda, dB.data(), ldb, 0.3f,
                dC.data(), ldc);
      EXPECT_TRUE(close(host(dC), ref, Tol<T>::gemm)) << "ta=" << ta << " tb=" << tb;
      if constexpr (std::is_same_v<T, bf16>) {  // bf16 inputs, fp32 output
        auto dCf = dev<float>(C0);
        ops::gemm(ctx(), bool(ta), bool(tb), M, N, K, 0.7f, dA.data(), lda, dB.data(), ldb, 0.3f,
                  dCf.data(), ldc);
        EXPECT_TRUE(close(host(dCf), ref, 1e-5, 1e-5)) << "fp32 out ta=" << ta << " tb=" << tb;
      }
    }
  // beta = 0 must ignore NaN in C
  auto A = input<T>(16 * 8, 46), Bm = input<T>(8 * 4, 47);
  std::vector<float> ref(16 * 4, 0.0f);
  ref::gemm(false, false, 16, 4, 8, 1.0f, A.data(), 8, Bm.data(), 4, 0.0f, ref.data(), 4);
  auto dA = dev<T>(A), dB = dev<T>(Bm);
  auto dC = dev<T>(std::vector<float>(16 * 4, std::nanf("")));
  ops::gemm(ctx(), false, false, 16, 4, 8, 1.0f, dA.data(), 8, dB.data(), 4, 0.0f, dC.data(), 4);
  EXPECT_TRUE(close(host(dC), ref, Tol<T>::gemm)) << "beta=0 with NaN C";
}

TYPED_TEST(CudaGemm, StridedBatched) {
  REDI_REQUIRE_CUDA();
  using T = TypeParam;
  const int M = 20, N = 24, K = 72, batch = 5;
  const std::int64_t sA = std::int64_t(M) * K + 8, sB = std::int64_t(N) * K + 16,
                     sC = std::int64_t(M) * N + 4;
  auto A = input<T>(std::size_t(sA) * batch, 48), Bm = input<T>(std::size_t(sB) * batch, 49);
  std::vector<float> ref(std::size_t(sC) * batch, 0.0f);
  for (int b = 0; b < batch; ++b)
    ref::gemm(false, true, M, N, K, 1.5f, A.data() + b * sA, K, Bm.data() + b * sB, K, 0.0f,
              ref.data() + b * sC, N);
  auto dA = dev<T>(A), dB = dev<T>(Bm);
  auto dC = dev_zeros<T>(ref.size());
  ops::gemm_strided_batched(ctx(), false, true, M, N, K, 1.5f, dA.data(), K, sA, dB.data(), K, sB,
                            0.0f, dC.data(), N, sC, batch);
  EXPECT_TRUE(close(host(dC), ref, Tol<T>::gemm));
}

TYPED_TEST(CudaGemm, LinearForwardBackward) {
  REDI_REQUIRE_CUDA();
  using T = TypeParam;
  const int rows = 1100, in_f = 96, out_f = 136;  // rows > one 512-row bias chunk
  auto x = input<T>(std::size_t(rows) * in_f, 50), W = input<T>(std::size_t(out_f) * in_f, 51);
  auto b = input<T>(out_f, 52), g = input<T>(std::size_t(rows) * out_f, 53);
  auto dW0 = input<T>(W.size(), 54, 0.1f), db0 = input<T>(out_f, 55, 0.1f);
  std::vector<float> out(std::size_t(rows) * out_f), din(x.size());
  auto dW = dW0, db = db0;
  ref::linear_forward(out.data(), x.data(), W.data(), b.data(), rows, in_f, out_f);
  ref::linear_backward(din.data(), dW.data(), db.data(), g.data(), x.data(), W.data(), rows, in_f,
                       out_f);
  auto d_x = dev<T>(x), d_W = dev<T>(W), d_b = dev<T>(b), d_g = dev<T>(g);
  auto d_out = dev_zeros<T>(out.size()), d_din = dev_zeros<T>(din.size());
  ops::linear_forward(ctx(), d_out.data(), d_x.data(), d_W.data(), d_b.data(), rows, in_f, out_f);
  EXPECT_TRUE(close(host(d_out), out, Tol<T>::gemm)) << "linear_forward";
  ops::linear_forward(ctx(), d_out.data(), d_x.data(), d_W.data(), static_cast<const T*>(nullptr),
                      rows, in_f, out_f);
  std::vector<float> out_nb(out.size());
  ref::linear_forward(out_nb.data(), x.data(), W.data(), nullptr, rows, in_f, out_f);
  EXPECT_TRUE(close(host(d_out), out_nb, Tol<T>::gemm)) << "linear_forward without bias";
  // fp32 parameter gradients (BF16Mixed) for both storage types
  auto d_dW = dev<float>(dW0), d_db = dev<float>(db0);
  ops::linear_backward(ctx(), d_din.data(), d_dW.data(), d_db.data(), d_g.data(), d_x.data(),
                       d_W.data(), rows, in_f, out_f);
  EXPECT_TRUE(close(host(d_din), din, Tol<T>::gemm)) << "din";
  EXPECT_TRUE(close(host(d_dW), dW, 1e-5, 1e-5)) << "dW (fp32)";
  EXPECT_TRUE(close(host(d_db), db, 1e-5, 1e-5)) << "db (fp32)";
  // gradients in T
  auto t_dW = dev<T>(dW0), t_db = dev<T>(db0);
  ops::linear_backward(ctx(), static_cast<T*>(nullptr), t_dW.data(), t_db.data(), d_g.data(),
                       d_x.data(), d_W.data(), rows, in_f, out_f);
  EXPECT_TRUE(close(host(t_dW), dW, Tol<T>::gemm)) << "dW (T)";
  EXPECT_TRUE(close(host(t_db), db, Tol<T>::gemm)) << "db (T)";
}

struct AttnCase {
  int B, L, H, hd;
};

TYPED_TEST(CudaGemm, AttentionFallback) {
  REDI_REQUIRE_CUDA();
  using T = TypeParam;
  constexpr bool is_bf16 = std::is_same_v<T, bf16>;
  const Tolerance fwd = is_bf16 ? Tolerance{3e-2, 2e-2} : Tolerance{1e-5, 1e-5};
  const Tolerance bwd = is_bf16 ? Tolerance{5e-2, 3e-2} : Tolerance{1e-4, 1e-5};
  for (AttnCase c : {AttnCase{2, 16, 3, 64}, AttnCase{3, 64, 2, 72}, AttnCase{1, 33, 2, 72}}) {
    const int D = c.H * c.hd;
    const std::size_t nqkv = std::size_t(c.B) * c.L * 3 * D, nout = std::size_t(c.B) * c.L * D;
    const std::size_t np = std::size_t(c.B) * c.H * c.L * c.L;
    auto qkv = input<T>(nqkv, 60, 1.0f), g = input<T>(nout, 61);
    std::vector<float> out(nout), probs(np), dqkv(nqkv),
        scratch(std::size_t(ref::attention_scratch_elems(c.B, c.L, c.H, c.hd)));
    ref::attention_forward(out.data(), probs.data(), qkv.data(), c.B, c.L, c.H, c.hd);
    ref::attention_backward(dqkv.data(), scratch.data(), g.data(), qkv.data(), probs.data(), c.B,
                            c.L, c.H, c.hd);
    auto d_qkv = dev<T>(qkv), d_g = dev<T>(g);
    auto d_out = dev_zeros<T>(nout), d_probs = dev_zeros<T>(np), d_dqkv = dev_zeros<T>(nqkv);
    auto d_scr = dev_zeros<T>(std::size_t(ops::attention_scratch_elems(ctx(), c.B, c.L, c.H, c.hd)));
    ops::attention_forward(ctx(), d_out.data(), d_probs.data(), d_qkv.data(), c.B, c.L, c.H, c.hd);
    ops::attention_backward(ctx(), d_dqkv.data(), d_scr.data(), d_g.data(), d_qkv.data(),
                            d_probs.data(), c.B, c.L, c.H, c.hd);
    const std::string tag = "B=" + std::to_string(c.B) + " L=" + std::to_string(c.L) +
                            " H=" + std::to_string(c.H) + " hd=" + std::to_string(c.hd);
    EXPECT_TRUE(close(host(d_probs), probs, fwd)) << "probs " << tag;
    EXPECT_TRUE(close(host(d_out), out, fwd)) << "out " << tag;
    EXPECT_TRUE(close(host(d_dqkv), dqkv, bwd)) << "dqkv " << tag;
  }
}

TEST(CudaGemmTf32, Fp32WithTf32IsClose) {
  REDI_REQUIRE_CUDA();
  const int M = 64, N = 64, K = 256;
  auto A = randn(std::size_t(M) * K, 70), Bm = randn(std::size_t(K) * N, 71);
  std::vector<float> ref(std::size_t(M) * N, 0.0f);
  ref::gemm(false, false, M, N, K, 1.0f, A.data(), K, Bm.data(), N, 0.0f, ref.data(), N);
  auto dA = dev<float>(A), dB = dev<float>(Bm);
  auto dC = dev_zeros<float>(ref.size());
  ctx().set_tf32(true);
  ops::gemm(ctx(), false, false, M, N, K, 1.0f, dA.data(), K, dB.data(), N, 0.0f, dC.data(), N);
  ctx().set_tf32(false);
  EXPECT_TRUE(close(host(dC), ref, 1e-2, 5e-3));  // TF32: 10-bit mantissa inputs
}

}  // namespace
}  // namespace redi::test
