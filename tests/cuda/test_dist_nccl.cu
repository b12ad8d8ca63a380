// redi/dist/nccl.hpp under nvcc: the NCCL communicator of GPU ranks. Without a GPU every test
// skips (what this project's CI runs); with one, a world of one bootstrapped through
// dist::Single: the device all-reduce average over one rank returns the same bits (float and
// double, synchronous and async + wait), a device broadcast from rank 0 keeps the buffer, the
// compute-stream ordering holds (a buffer written on another stream is reduced after the
// write), and a DataParallel with this communicator takes the device path.
#include <gtest/gtest.h>

#include <cuda_runtime_api.h>

#include <vector>

#include "cuda_test_util.hpp"
#include "redi/dist/nccl.hpp"
#include "redi/train/data_parallel.hpp"

using namespace redi;

namespace {

template <class T>
std::vector<T> roundtrip(dist::Nccl& c, const std::vector<T>& h, bool async) {
  T* d = nullptr;
  REDI_CUDA_CHECK(cudaMalloc(&d, h.size() * sizeof(T)));
  REDI_CUDA_CHECK(cudaMemcpy(d, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice));
  if constexpr (std::is_same_v<T, float>) {
    if (async) { c.allreduce_mean_async(d, h.size()); c.wait(); }
    else c.allreduce_mean(d, h.size());
  } else {
    c.allreduce_mean(d, h.size());
  }
  std::vector<T> out(h.size());
  REDI_CUDA_CHECK(cudaMemcpy(out.data(), d, h.size() * sizeof(T), cudaMemcpyDeviceToHost));
  cudaFree(d);
  return out;
}

TEST(DistNccl, WorldOfOneAllReduceKeepsTheBits) {
  REDI_REQUIRE_CUDA();
  dist::Nccl c(dist::single());
  EXPECT_EQ(c.size(), 1);
  EXPECT_EQ(c.rank(), 0);
  EXPECT_EQ(c.device(), 0);
  EXPECT_TRUE(c.device_memory());
  const std::vector<float> f = test::randn(1 << 16, 3);
  EXPECT_EQ(roundtrip(c, f, false), f);
  EXPECT_EQ(roundtrip(c, f, true), f);
  std::vector<double> d(1000);
  for (std::size_t i = 0; i < d.size(); ++i) d[i] = 0.1 * double(i) - 3.0;
  EXPECT_EQ(roundtrip(c, d, false), d);
}

TEST(DistNccl, BroadcastAndComputeStreamOrdering) {
  REDI_REQUIRE_CUDA();
  dist::Nccl c(dist::single());
  cudaStream_t s = nullptr;
  REDI_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  c.set_compute_stream(s);
  const std::size_t n = 1 << 20;
  std::vector<float> h(n, 2.5f), out(n);
  float* d = nullptr;
  REDI_CUDA_CHECK(cudaMalloc(&d, n * sizeof(float)));
  REDI_CUDA_CHECK(cudaMemsetAsync(d, 0, n * sizeof(float), s));
  REDI_CUDA_CHECK(cudaMemcpyAsync(d, h.data(), n * sizeof(float), cudaMemcpyHostToDevice, s));
  c.allreduce_mean(d, n);  // must see the copy queued on s
  REDI_CUDA_CHECK(cudaMemcpy(out.data(), d, n * sizeof(float), cudaMemcpyDeviceToHost));
  EXPECT_EQ(out, h);
  c.broadcast_device(d, n * sizeof(float), 0);
  REDI_CUDA_CHECK(cudaMemcpy(out.data(), d, n * sizeof(float), cudaMemcpyDeviceToHost));
  EXPECT_EQ(out, h);
  cudaFree(d);
  cudaStreamDestroy(s);
}

TEST(DistNccl, DataParallelUsesTheDeviceCommunicator) {
  REDI_REQUIRE_CUDA();
  dist::Nccl c(dist::single());
  train::DataParallel dp(&c);
  EXPECT_FALSE(dp.distributed());  // a world of one: the trainer's steps are the plain ones
  EXPECT_EQ(dp.slice(8).size(), 8);
}

}  // namespace
