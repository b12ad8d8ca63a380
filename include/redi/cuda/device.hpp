// redi/cuda/device.hpp — the CUDA device tag and op context, host C++ over the CUDA runtime
// API only (includable by g++; link CUDA::cudart). No kernels here.
//
// `redi::Cuda` plays two roles, like `redi::Cpu`:
//  - as a TYPE it is a device tag satisfying redi::Device (static allocate/deallocate/copies),
//    so `Tensor<float, Cuda>` and `Workspace<Cuda>` work;
//  - its OBJECTS are the op context passed as `const Cuda&` to every CUDA op: a cheap, copyable
//    handle (shared_ptr) to one CudaState = device id, stream, lazily created library handles
//    (cuBLASLt, cuBLAS, cuDNN; the op headers create them on first use, so this header needs
//    no library but cudart), the cuBLASLt workspace, a grow-only scratch buffer for CUB
//    reductions, pinned host memory for scalar results, and a plan cache (cuBLASLt matmul
//    plans, cuDNN fused-SDPA graphs) keyed by shape.
// Make one with `auto ctx = redi::Cuda::create(0);`. Copies share the state. A context is used
// by one host thread at a time (the caches are not locked). A default-constructed Cuda is a
// tag only; passing it to an op throws.
//
// Stream semantics: the context's stream is a *blocking* stream (cudaStreamCreate), so the
// static memory functions (legacy default stream: cudaMemcpy/cudaMemset) are ordered with it.
// copy_to_host additionally synchronises the device first. Do not build with
// --default-stream per-thread.
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>

#include "redi/core/device.hpp"
#include "redi/core/error.hpp"
#include "redi/cuda/check.hpp"

namespace redi {

/// True when the CUDA runtime reports at least one usable device (false on any error, e.g.
/// no driver or no GPU).
inline bool cuda_available() {
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();  // clear the sticky error
    return false;
  }
  return n > 0;
}

/// Options for Cuda::create.
struct CudaOptions {
  bool tf32 = false;                          ///< fp32 GEMMs may use TF32 tensor cores
  std::size_t lt_workspace_bytes = 32u << 20;  ///< cuBLASLt workspace (32 MiB suits Hopper)
  cudaStream_t stream = nullptr;              ///< use this stream (not owned) instead of a new one
};

namespace cuda_detail {

/// Everything a context owns. Destroyed when the last Cuda copy goes.
struct CudaState {
  int device = 0;
  cudaStream_t stream = nullptr;
  bool own_stream = false;
  bool tf32 = false;
  bool cudnn_sdpa = true;  // allow the cuDNN fused SDPA (ops/attention_cudnn.cuh)
  // Library handles, created on first use by the op headers (type-erased with their deleters).
  std::shared_ptr<void> cublaslt, cublas, cudnn;
  void* lt_workspace = nullptr;
  std::size_t lt_workspace_bytes = 0;
  void* scratch = nullptr;  // grow-only, stream-ordered reuse (CUB temp storage, ...)
  std::size_t scratch_bytes = 0;
  double* host_result = nullptr;  // pinned, 8 doubles
  // Cached plans keyed by shape: cuBLASLt matmul plans ("lt:..." keys, ops/gemm.cuh) and the
  // cuDNN fused-SDPA graphs ("cudnn_sdpa:..." keys, ops/attention_cudnn.cuh).
  std::unordered_map<std::string, std::shared_ptr<void>> plans;

  CudaState() = default;
  CudaState(const CudaState&) = delete;
  CudaState& operator=(const CudaState&) = delete;
  ~CudaState() {
    // Order matters: plans reference handles; handles before the stream they may be bound to.
    if (stream) (void)cudaStreamSynchronize(stream);
    plans.clear();
    cudnn.reset();
    cublas.reset();
    cublaslt.reset();
    if (lt_workspace) (void)cudaFree(lt_workspace);
    if (scratch) (void)cudaFree(scratch);
    if (host_result) (void)cudaFreeHost(host_result);
    if (stream && own_stream) (void)cudaStreamDestroy(stream);
    (void)cudaGetLastError();
  }
};

}  // namespace cuda_detail

/// The CUDA device tag and op context (see the file comment).
class Cuda {
public:
  static constexpr bool is_host = false;
  static constexpr const char* name = "cuda";

  // ---- device-tag memory functions (current device)
  static void* allocate(std::size_t bytes) {
    if (bytes == 0) return nullptr;
    void* p = nullptr;
    cudaError_t e = cudaMalloc(&p, bytes);
    if (e != cudaSuccess) {
      (void)cudaGetLastError();
      REDI_FAIL("cuda: cudaMalloc of ", bytes, " bytes failed: ", cudaGetErrorName(e), " (",
                cudaGetErrorString(e), ")");
    }
    return p;
  }
  static void deallocate(void* p) noexcept {
    if (p) (void)cudaFree(p);  // errors at process teardown are ignored
  }
  static void copy_to_host(void* dst, const void* src, std::size_t bytes) {
    if (!bytes) return;
    REDI_CUDA_CHECK(cudaDeviceSynchronize());  // also covers non-blocking user streams
    REDI_CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost));
  }
  static void copy_from_host(void* dst, const void* src, std::size_t bytes) {
    // Legacy-default-stream cudaMemcpy is ordered after queued work on blocking streams.
    if (bytes) REDI_CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice));
  }
  static void copy(void* dst, const void* src, std::size_t bytes) {
    if (bytes) REDI_CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToDevice));
  }
  static void memset_zero(void* p, std::size_t bytes) {
    if (bytes) REDI_CUDA_CHECK(cudaMemset(p, 0, bytes));
  }

  // ---- the context
  Cuda() = default;  // a tag only (no state)

  /// Create a context on `device`: sets it current, creates a stream, the cuBLASLt workspace
  /// and pinned result memory. Library handles come on first use.
  static Cuda create(int device = 0, const CudaOptions& opt = {}) {
    REDI_CHECK(cuda_available(), "cuda: no CUDA device is available");
    Cuda c;
    c.s_ = std::make_shared<cuda_detail::CudaState>();
    auto& s = *c.s_;
    s.device = device;
    REDI_CUDA_CHECK(cudaSetDevice(device));
    if (opt.stream) {
      s.stream = opt.stream;
    } else {
      REDI_CUDA_CHECK(cudaStreamCreate(&s.stream));
      s.own_stream = true;
    }
    s.tf32 = opt.tf32;
    if (opt.lt_workspace_bytes) {
      REDI_CUDA_CHECK(cudaMalloc(&s.lt_workspace, opt.lt_workspace_bytes));
      s.lt_workspace_bytes = opt.lt_workspace_bytes;
    }
    REDI_CUDA_CHECK(cudaMallocHost(reinterpret_cast<void**>(&s.host_result), 8 * sizeof(double)));
    return c;
  }

  bool valid() const { return s_ != nullptr; }
  cuda_detail::CudaState& state() const {
    REDI_CHECK(s_ != nullptr, "cuda: op called with a Cuda tag that has no context "
                              "(make one with redi::Cuda::create())");
    return *s_;
  }
  int device() const { return state().device; }
  cudaStream_t stream() const { return state().stream; }
  bool tf32() const { return state().tf32; }
  /// Settings live in the shared state: every copy of this context sees them.
  void set_tf32(bool on) const { state().tf32 = on; }
  /// Whether ops::flash_attention_supported may answer true (the cuDNN fused SDPA path; default
  /// on). Off makes it answer false, so a benchmark can A/B cuDNN against the fallback in one
  /// process. The environment variable REDI_CUDNN_SDPA=0 also forces it off.
  bool cudnn_sdpa() const { return state().cudnn_sdpa; }
  void set_cudnn_sdpa(bool on) const { state().cudnn_sdpa = on; }
  /// Make this context's device current on the calling thread.
  void activate() const { REDI_CUDA_CHECK(cudaSetDevice(state().device)); }
  void synchronize() const { REDI_CUDA_CHECK(cudaStreamSynchronize(state().stream)); }

  /// Grow-only device scratch (stream-ordered: valid until the next call that asks for it).
  void* scratch(std::size_t bytes) const {
    auto& s = state();
    if (bytes > s.scratch_bytes) {
      if (s.scratch) {
        REDI_CUDA_CHECK(cudaStreamSynchronize(s.stream));
        REDI_CUDA_CHECK(cudaFree(s.scratch));
        s.scratch = nullptr;
        s.scratch_bytes = 0;
      }
      std::size_t n = bytes < (1u << 20) ? (1u << 20) : bytes;
      REDI_CUDA_CHECK(cudaMalloc(&s.scratch, n));
      s.scratch_bytes = n;
    }
    return s.scratch;
  }

  // Stream-ordered copies on the context's stream.
  void copy_async(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind kind) const {
    if (bytes) REDI_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, kind, stream()));
  }
  void zero_async(void* p, std::size_t bytes) const {
    if (bytes) REDI_CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, stream()));
  }

private:
  std::shared_ptr<cuda_detail::CudaState> s_;
};

static_assert(Device<Cuda>);

}  // namespace redi
