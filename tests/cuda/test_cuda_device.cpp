// redi/cuda/device.hpp and check.hpp from plain g++: the device tag, the context, tensors and
// workspaces on the GPU, and the error macros. The error-path tests run without a device.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "redi/core/tensor.hpp"
#include "redi/core/workspace.hpp"
#include "redi/cuda/check.hpp"
#include "redi/cuda/cudnn.hpp"
#include "redi/cuda/cudnn_graph.hpp"
#include "redi/cuda/device.hpp"
#include "redi/core/precision.hpp"

namespace {

cudaError_t fails_invalid_value() { return cudaErrorInvalidValue; }

TEST(CudaCheck, ThrowsWithExpressionAndStatus) {
  try {
    REDI_CUDA_CHECK(fails_invalid_value());
    FAIL() << "no throw";
  } catch (const redi::Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("fails_invalid_value()"), std::string::npos) << m;
    EXPECT_NE(m.find("cudaErrorInvalidValue"), std::string::npos) << m;
  }
  try {
    REDI_CUBLAS_CHECK(CUBLAS_STATUS_NOT_SUPPORTED);
    FAIL() << "no throw";
  } catch (const redi::Error& e) {
    EXPECT_NE(std::string(e.what()).find("CUBLAS_STATUS_NOT_SUPPORTED"), std::string::npos);
  }
  EXPECT_NO_THROW(REDI_CUDA_CHECK(cudaSuccess));
}

// The cuDNN backend-graph helpers (cudnn_graph.hpp, used by the fused SDPA) compile under g++
// and name the call, the attribute and cuDNN's status when a call fails. No device needed.
TEST(CudaCheck, CudnnGraphErrorsNameTheCallAndAttribute) {
  namespace cg = redi::cuda_detail::cudnn_graph;
  try {
    cg::check(CUDNN_STATUS_NOT_SUPPORTED, "cudnnBackendFinalize", "tensor 'Q'");
    FAIL() << "no throw";
  } catch (const redi::Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("cudnnBackendFinalize"), std::string::npos) << m;
    EXPECT_NE(m.find("tensor 'Q'"), std::string::npos) << m;
    EXPECT_NE(m.find("CUDNN_STATUS_NOT_SUPPORTED"), std::string::npos) << m;
  }
  EXPECT_NO_THROW(cg::check(CUDNN_STATUS_SUCCESS, "x", "y"));
  cg::Desc none;  // empty descriptors are fine to move and destroy
  cg::Desc moved = std::move(none);
  EXPECT_EQ(moved.get(), nullptr);
}

TEST(CudaDevice, TagWithoutContextThrows) {
  redi::Cuda tag;
  EXPECT_FALSE(tag.valid());
  EXPECT_THROW((void)tag.stream(), redi::Error);
  static_assert(redi::Device<redi::Cuda>);
  static_assert(!redi::Cuda::is_host);
  static_assert(redi::Precision<redi::FP32> && redi::Precision<redi::BF16Mixed>);
}

TEST(CudaDevice, AvailabilityDoesNotThrow) {
  bool a = false;
  EXPECT_NO_THROW(a = redi::cuda_available());
  if (!a) GTEST_SKIP() << "no CUDA device available; nothing more to check";
}

TEST(CudaDevice, TensorRoundTripAndWorkspace) {
  if (!redi::cuda_available()) GTEST_SKIP() << "no CUDA device available";
  auto ctx = redi::Cuda::create(0);
  EXPECT_TRUE(ctx.valid());
  EXPECT_NE(ctx.stream(), nullptr);
  redi::Tensor<float, redi::Cuda> t(redi::Shape{3, 5});
  auto z = t.to_host();
  for (float v : z) EXPECT_EQ(v, 0.0f);  // Tensor zero-fills
  std::vector<float> h(15);
  for (int i = 0; i < 15; ++i) h[i] = float(i) * 0.5f;
  t.from_host(h);
  EXPECT_EQ(t.to_host(), h);
  redi::Workspace<redi::Cuda> ws;
  ws.reserve(1 << 20);
  float* a = ws.take<float>(1000);
  float* b = ws.take<float>(1000);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(b) % 256, 0u);
  EXPECT_NE(a, b);
  EXPECT_EQ(ws.allocations(), 1u);
  void* s1 = ctx.scratch(100);
  void* s2 = ctx.scratch(200);
  EXPECT_EQ(s1, s2);  // grow-only, 1 MiB minimum
  EXPECT_NE(redi::cuda_detail::cudnn_handle(ctx), nullptr);
  ctx.set_tf32(true);
  auto copy = ctx;
  EXPECT_TRUE(copy.tf32());  // settings are shared by copies
  EXPECT_TRUE(copy.cudnn_sdpa());
  ctx.set_cudnn_sdpa(false);
  EXPECT_FALSE(copy.cudnn_sdpa());
  ctx.synchronize();
}

}  // namespace
