// redi/dist/nccl.hpp — dist::Nccl, the communicator of GPU ranks: gradient all-reduce and
// weight broadcast over device memory through NCCL, one GPU per rank chosen by the local rank,
// bootstrapped through a host communicator (dist::Mpi across processes; dist::Single for a world
// of one). Host-side collectives (statistics, strings, barriers) go through that host
// communicator. Host C++ (cuda_runtime_api.h + nccl.h): compiles under g++ and nvcc; a target
// that includes it links CUDA::cudart and the NCCL library (CMake: REDI_HAVE_NCCL, RediNCCL::nccl).
//
//   redi::dist::MpiRuntime mpi(argc, argv);
//   redi::dist::Mpi host;
//   redi::dist::Nccl comm(host);                       // cudaSetDevice(local rank % GPUs), ncclCommInitRank
//   auto ctx = redi::Cuda::create(comm.device(), {.stream = ...});
//   comm.set_compute_stream(ctx.stream());            // all-reduces wait for the backward on it
//
// Bootstrap: rank 0 calls ncclGetUniqueId, the id's bytes are broadcast over the host
// communicator, every rank calls ncclCommInitRank(size, id, rank).
// allreduce_mean(dev, n): an event recorded on the compute stream (or a device synchronise when
// none was set), then ncclAllReduce(ncclAvg) on the communicator's own stream, then a stream
// synchronise: synchronous, the gradients are averaged when it returns. NCCL's ring/tree
// all-reduce gives every rank the same bits.
// allreduce_mean_async / wait: the same split in two (enqueue, then synchronise), the building
// block of a bucketed all-reduce overlapped with the backward pass (not wired into the model's
// backward yet: docs/distributed.md, "GPU").
#pragma once
#include <cuda_runtime_api.h>
#include <nccl.h>

#include <cstddef>
#include <string>
#include <vector>

#include "redi/core/error.hpp"
#include "redi/cuda/check.hpp"
#include "redi/dist/communicator.hpp"

#define REDI_NCCL_CHECK(call)                                                                 \
  do {                                                                                        \
    const ncclResult_t redi_nccl_rc_ = (call);                                                \
    if (redi_nccl_rc_ != ncclSuccess)                                                         \
      REDI_FAIL("NCCL: ", #call, " failed: ", ncclGetErrorString(redi_nccl_rc_), " (", int(redi_nccl_rc_), ")"); \
  } while (0)

namespace redi::dist {

class Nccl final : public Communicator {
public:
  /// `host`: the communicator that carries the unique id and the host collectives (must outlive
  /// this object). `device` < 0: the local rank modulo the visible GPUs.
  explicit Nccl(Communicator& host, int device = -1) : host_(host) {
    int n = 0;
    REDI_CUDA_CHECK(cudaGetDeviceCount(&n));
    REDI_CHECK(n > 0, "dist::Nccl: no CUDA device visible to rank ", host.rank());
    device_ = device >= 0 ? device : host.local_rank() % n;
    REDI_CHECK(device_ < n, "dist::Nccl: device ", device_, " of ", n, " visible GPUs");
    REDI_CUDA_CHECK(cudaSetDevice(device_));
    ncclUniqueId id{};
    if (host.rank() == 0) REDI_NCCL_CHECK(ncclGetUniqueId(&id));
    host.broadcast(&id, sizeof id, 0);
    REDI_NCCL_CHECK(ncclCommInitRank(&comm_, host.size(), id, host.rank()));
    REDI_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    REDI_CUDA_CHECK(cudaEventCreateWithFlags(&ready_, cudaEventDisableTiming));
  }
  Nccl(const Nccl&) = delete;
  Nccl& operator=(const Nccl&) = delete;
  ~Nccl() {
    if (stream_) (void)cudaStreamSynchronize(stream_);
    if (comm_) (void)ncclCommDestroy(comm_);
    if (ready_) (void)cudaEventDestroy(ready_);
    if (stream_) (void)cudaStreamDestroy(stream_);
  }

  const char* name() const override { return "nccl"; }
  int rank() const override { return host_.rank(); }
  int size() const override { return host_.size(); }
  int local_rank() const override { return host_.local_rank(); }
  bool device_memory() const override { return true; }
  int device() const { return device_; }
  cudaStream_t stream() const { return stream_; }
  ncclComm_t handle() const { return comm_; }
  /// The stream the gradients are produced on; all-reduces start after the work queued on it.
  void set_compute_stream(cudaStream_t s) { compute_ = s; has_compute_ = true; }

  void allreduce_mean(float* dev, std::size_t n) override {
    allreduce_mean_async(dev, n);
    wait();
  }
  void allreduce_mean(double* dev, std::size_t n) override {
    after_compute();
    REDI_NCCL_CHECK(ncclAllReduce(dev, dev, n, ncclDouble, ncclAvg, comm_, stream_));
    wait();
  }
  /// Enqueues the average of dev[0, n) on the communicator's stream after the compute stream's
  /// queued work; returns at once. wait() synchronises.
  void allreduce_mean_async(float* dev, std::size_t n) {
    after_compute();
    REDI_NCCL_CHECK(ncclAllReduce(dev, dev, n, ncclFloat, ncclAvg, comm_, stream_));
  }
  void wait() { REDI_CUDA_CHECK(cudaStreamSynchronize(stream_)); }
  /// root's device bytes to every rank's `dev` (initial weights on the GPU).
  void broadcast_device(void* dev, std::size_t bytes, int root) {
    after_compute();
    REDI_NCCL_CHECK(ncclBroadcast(dev, dev, bytes, ncclUint8, root, comm_, stream_));
    wait();
  }

  // host-memory collectives: through the bootstrap communicator
  void allreduce_sum(double* p, std::size_t n) override { host_.allreduce_sum(p, n); }
  void broadcast(void* p, std::size_t bytes, int root) override { host_.broadcast(p, bytes, root); }
  std::vector<std::byte> gather(const void* send, std::size_t bytes) override { return host_.gather(send, bytes); }
  void barrier() override { host_.barrier(); }

private:
  void after_compute() {
    if (has_compute_) {
      REDI_CUDA_CHECK(cudaEventRecord(ready_, compute_));
      REDI_CUDA_CHECK(cudaStreamWaitEvent(stream_, ready_, 0));
    } else {
      REDI_CUDA_CHECK(cudaDeviceSynchronize());
    }
  }

  Communicator& host_;
  int device_ = 0;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr, compute_ = nullptr;
  bool has_compute_ = false;
  cudaEvent_t ready_ = nullptr;
};

}  // namespace redi::dist
