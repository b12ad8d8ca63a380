// Downstream smoke test for redi::cuda: the CUDA runtime, cuBLAS, cuBLASLt and cuDNN headers
// are on the include path and the libraries link and load. Needs no GPU.
#include <redi/redi.hpp>

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <cstdio>

#ifndef REDI_HAVE_CUDA
#error "redi::cuda must define REDI_HAVE_CUDA"
#endif

int main() {
  int runtime = 0;
  cudaRuntimeGetVersion(&runtime);
  int devices = 0;
  cudaError_t err = cudaGetDeviceCount(&devices);
  if (err != cudaSuccess) devices = 0;
  std::printf("consumer_cuda: redi %s, CUDA runtime %d, cuBLASLt %zu, cuDNN %zu, %d GPU(s)%s\n",
              redi::version_string, runtime, cublasLtGetVersion(), cudnnGetVersion(), devices,
              err == cudaSuccess ? "" : " (no usable device; fine for this test)");
  return runtime > 0 && cudnnGetVersion() > 0 ? 0 : 1;
}
