// CUDA: the cuDNN fused SDPA (flash attention, redi/cuda/ops/attention_cudnn.cuh) against the
// exact-contract fallback (ops::attention_forward/backward, fp32, TF32 off) on the same
// bf16-rounded inputs, and the stats against a host log-sum-exp. Also the switches that force
// it off and the error for an unsupported shape. Skips without a device.
//
// Tolerances (bf16 path vs fp32 reference; |got - ref| <= rtol*|ref| + atol*rms(ref)):
//   out   rtol 2e-2, atol 1e-2: P is rounded to bf16 before P*V and out to bf16 (2^-9 each).
//   stats rtol 1e-4, atol 1e-4: fp32 max + log(sum exp) of the same bf16 products.
//   dqkv  rtol 2e-2, atol 2e-2: P and dS rounded to bf16 before their GEMMs, dq/dk/dv to bf16;
//         dS rows sum to ~0, so the floor is relative to the RMS, not to each element.
//
// Shapes: B=2, H=3, hd 64 and 72 (the S/B/L/XL head dims), L=256 and the odd L=100. On sm_80+
// an unsupported answer for L=256 FAILS with cuDNN's kept reason (the first GPU run must tell
// why); for L=100 it skips with the reason.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "cuda_test_util.hpp"
#include "redi/cuda/ops/attention.cuh"
#include "redi/cuda/ops/attention_cudnn.cuh"
#include "redi/cuda/backend.cuh"

namespace redi::test {
namespace {

static_assert(has_flash_attention<Cuda, bf16>);
static_assert(!has_flash_attention<Cuda, float>);

int compute_major() {
  int major = 0;
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, ctx().device()) !=
      cudaSuccess)
    return 0;
  return major;
}

/// Restores the context switch and REDI_CUDNN_SDPA on scope exit (tests change them).
struct SdpaSwitchGuard {
  std::string env;
  bool had_env = false;
  SdpaSwitchGuard() {
    if (const char* e = std::getenv("REDI_CUDNN_SDPA")) had_env = true, env = e;
    unsetenv("REDI_CUDNN_SDPA");
    ctx().set_cudnn_sdpa(true);
  }
  ~SdpaSwitchGuard() {
    ctx().set_cudnn_sdpa(true);
    if (had_env)
      setenv("REDI_CUDNN_SDPA", env.c_str(), 1);
    else
      unsetenv("REDI_CUDNN_SDPA");
  }
};

/// Row log-sum-exp of the scaled scores, in double, from the (bf16-rounded) fp32 qkv.
std::vector<float> host_lse(const std::vector<float>& qkv, int B, int L, int H, int hd) {
  const int D = H * hd;
  const double scale = 1.0 / std::sqrt(double(hd));
  std::vector<float> lse(std::size_t(B) * H * L);
  std::vector<double> s(L);
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < H; ++h)
      for (int i = 0; i < L; ++i) {
        const float* q = qkv.data() + (std::size_t(b) * L + i) * 3 * D + h * hd;
        double mx = -1e300;
        for (int j = 0; j < L; ++j) {
          const float* k = qkv.data() + (std::size_t(b) * L + j) * 3 * D + D + h * hd;
          double acc = 0;
          for (int d = 0; d < hd; ++d) acc += double(q[d]) * k[d];
          s[j] = acc * scale;
          mx = std::max(mx, s[j]);
        }
        double sum = 0;
        for (int j = 0; j < L; ++j) sum += std::exp(s[j] - mx);
        lse[(std::size_t(b) * H + h) * L + i] = float(mx + std::log(sum));
      }
  return lse;
}

struct Case {
  int B, L, H, hd;
  bool must_support;  // on sm_80+: unsupported is a failure, not a skip
};

class CudaFlashAttention : public ::testing::TestWithParam<Case> {};

TEST_P(CudaFlashAttention, MatchesFallback) {
  REDI_REQUIRE_CUDA();
  SdpaSwitchGuard guard;
  ctx().set_tf32(false);
  const auto [B, L, H, hd, must] = GetParam();
  const std::string shape = "B=" + std::to_string(B) + " L=" + std::to_string(L) +
                            " H=" + std::to_string(H) + " hd=" + std::to_string(hd);
  if (!ops::flash_attention_supported<bf16>(ctx(), B, L, H, hd)) {
    const std::string why = ops::flash_attention_status(ctx(), B, L, H, hd);
    if (must && compute_major() >= 8)
      FAIL() << "cuDNN fused SDPA unsupported on sm_" << compute_major() << "x for " << shape
             << " (cuDNN " << cudnnGetVersion() << "): " << why;
    GTEST_SKIP() << "cuDNN fused SDPA unsupported for " << shape << ": " << why;
  }
  std::printf("[ info ] %s: %s\n", shape.c_str(),
              ops::flash_attention_status(ctx(), B, L, H, hd).c_str());
  const int D = H * hd;
  const std::size_t n_qkv = std::size_t(B) * L * 3 * D, n_out = std::size_t(B) * L * D;
  const auto qkv = input<bf16>(n_qkv, 71 + hd + L);  // bf16-exact values
  const auto g = input<bf16>(n_out, 72 + hd + L);

  // reference: the fp32 fallback on the same values
  auto f_qkv = dev<float>(qkv), f_g = dev<float>(g);
  auto f_out = dev_zeros<float>(n_out), f_dqkv = dev_zeros<float>(n_qkv);
  auto f_probs = dev_zeros<float>(std::size_t(B) * H * L * L);
  auto f_scr = dev_zeros<float>(std::size_t(ops::attention_scratch_elems(ctx(), B, L, H, hd)));
  ops::attention_forward(ctx(), f_out.data(), f_probs.data(), f_qkv.data(), B, L, H, hd);
  ops::attention_backward(ctx(), f_dqkv.data(), f_scr.data(), f_g.data(), f_qkv.data(),
                          f_probs.data(), B, L, H, hd);

  // the cuDNN flash path (dqkv pre-filled with NaN: it must be fully overwritten)
  auto b_qkv = dev<bf16>(qkv), b_g = dev<bf16>(g);
  auto b_out = dev_zeros<bf16>(n_out);
  auto stats = dev_zeros<float>(std::size_t(B) * H * L);
  auto b_dqkv = dev<bf16>(std::vector<float>(n_qkv, std::nanf("")));
  ops::flash_attention_forward(ctx(), b_out.data(), stats.data(), b_qkv.data(), B, L, H, hd);
  ops::flash_attention_backward(ctx(), b_dqkv.data(), b_g.data(), b_qkv.data(), b_out.data(),
                                stats.data(), B, L, H, hd);
  ctx().synchronize();

  EXPECT_TRUE(close(host(b_out), host(f_out), 2e-2, 1e-2)) << "out " << shape;
  EXPECT_TRUE(close(host(stats), host_lse(qkv, B, L, H, hd), 1e-4, 1e-4)) << "stats " << shape;
  const auto got = host(b_dqkv), ref = host(f_dqkv);
  // dQ, dK, dV separately (each has its own scale)
  for (int part = 0; part < 3; ++part) {
    std::vector<float> gp, rp;
    for (std::size_t r = 0; r < std::size_t(B) * L; ++r)
      for (int c = 0; c < D; ++c) {
        gp.push_back(got[r * 3 * D + part * D + c]);
        rp.push_back(ref[r * 3 * D + part * D + c]);
      }
    EXPECT_TRUE(close(gp, rp, 2e-2, 2e-2)) << "d" << "QKV"[part] << " " << shape;
  }
  // Cached plans: a second call of the same shape reuses them and gives the same result.
  auto b_out2 = dev_zeros<bf16>(n_out);
  ops::flash_attention_forward(ctx(), b_out2.data(), stats.data(), b_qkv.data(), B, L, H, hd);
  EXPECT_EQ(host(b_out2), host(b_out)) << "repeat forward " << shape;
}

INSTANTIATE_TEST_SUITE_P(Shapes, CudaFlashAttention,
                         ::testing::Values(Case{2, 256, 3, 64, true}, Case{2, 256, 3, 72, true},
                                           Case{2, 100, 3, 64, false},
                                           Case{2, 100, 3, 72, false}),
                         [](const ::testing::TestParamInfo<Case>& i) {
                           return "L" + std::to_string(i.param.L) + "_hd" +
                                  std::to_string(i.param.hd);
                         });

TEST(CudaFlashAttentionSwitches, ContextAndEnvironmentForceUnsupported) {
  REDI_REQUIRE_CUDA();
  SdpaSwitchGuard guard;
  const int B = 2, L = 256, H = 3, hd = 64;
  EXPECT_FALSE(ops::flash_attention_supported<float>(ctx(), B, L, H, hd)) << "fp32 has no flash";
  ctx().set_cudnn_sdpa(false);
  EXPECT_FALSE(ctx().cudnn_sdpa());
  EXPECT_FALSE(ops::flash_attention_supported<bf16>(ctx(), B, L, H, hd));
  EXPECT_NE(ops::flash_attention_status(ctx(), B, L, H, hd).find("set_cudnn_sdpa"),
            std::string::npos);
  EXPECT_THROW(ops::flash_attention_forward(ctx(), nullptr, nullptr, nullptr, B, L, H, hd),
               redi::Error);
  ctx().set_cudnn_sdpa(true);
  setenv("REDI_CUDNN_SDPA", "0", 1);
  EXPECT_FALSE(ops::flash_attention_supported<bf16>(ctx(), B, L, H, hd));
  EXPECT_NE(ops::flash_attention_status(ctx(), B, L, H, hd).find("REDI_CUDNN_SDPA"),
            std::string::npos);
  unsetenv("REDI_CUDNN_SDPA");
  // Back on: the answer is cuDNN's again (whatever it is on this device).
  const bool on = ops::flash_attention_supported<bf16>(ctx(), B, L, H, hd);
  std::printf("[ info ] switches back on: supported=%d (%s)\n", int(on),
              ops::flash_attention_status(ctx(), B, L, H, hd).c_str());
}

TEST(CudaFlashAttentionSwitches, UnsupportedShapeThrowsNamingTheShape) {
  REDI_REQUIRE_CUDA();
  SdpaSwitchGuard guard;
  const int B = 1, L = 16, H = 2, hd = 20;  // head dim not a multiple of 8
  EXPECT_FALSE(ops::flash_attention_supported<bf16>(ctx(), B, L, H, hd));
  EXPECT_FALSE(ops::flash_attention_status(ctx(), B, L, H, hd).empty());
  auto qkv = dev_zeros<bf16>(std::size_t(B) * L * 3 * H * hd);
  auto out = dev_zeros<bf16>(std::size_t(B) * L * H * hd);
  auto stats = dev_zeros<float>(std::size_t(B) * H * L);
  try {
    ops::flash_attention_forward(ctx(), out.data(), stats.data(), qkv.data(), B, L, H, hd);
    FAIL() << "no throw";
  } catch (const redi::Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("flash_attention_forward"), std::string::npos) << m;
    EXPECT_NE(m.find("B=1 L=16 H=2 hd=20"), std::string::npos) << m;
  }
  auto dqkv = dev_zeros<bf16>(std::size_t(B) * L * 3 * H * hd);
  try {
    ops::flash_attention_backward(ctx(), dqkv.data(), out.data(), qkv.data(), out.data(),
                                  stats.data(), B, L, H, hd);
    FAIL() << "no throw";
  } catch (const redi::Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("flash_attention_backward"), std::string::npos) << m;
    EXPECT_NE(m.find("B=1 L=16 H=2 hd=20"), std::string::npos) << m;
  }
}

}  // namespace
}  // namespace redi::test
