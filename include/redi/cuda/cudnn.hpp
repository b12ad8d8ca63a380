// redi/cuda/cudnn.hpp — the context's cuDNN handle (created on first use, bound to the
// context's stream). Host-only C++; link cuDNN (RediCUDNN::cudnn). Used by the fused SDPA
// (flash attention) of redi/cuda/ops/attention_cudnn.cuh, built on the backend-graph helpers of
// redi/cuda/cudnn_graph.hpp — compiled, not yet run on a GPU (see docs/cuda.md).
#pragma once
#include <cudnn.h>

#include <memory>

#include "redi/cuda/check.hpp"
#include "redi/cuda/device.hpp"

namespace redi::cuda_detail {

inline cudnnHandle_t cudnn_handle(const Cuda& ctx) {
  auto& s = ctx.state();
  if (!s.cudnn) {
    cudnnHandle_t h = nullptr;
    REDI_CUDNN_CHECK(cudnnCreate(&h));
    s.cudnn = std::shared_ptr<void>(h, [](void* p) { (void)cudnnDestroy(static_cast<cudnnHandle_t>(p)); });
  }
  auto h = static_cast<cudnnHandle_t>(s.cudnn.get());
  REDI_CUDNN_CHECK(cudnnSetStream(h, s.stream));
  return h;
}

}  // namespace redi::cuda_detail
