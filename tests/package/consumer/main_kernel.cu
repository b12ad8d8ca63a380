// Downstream smoke test for a .cu file built against redi::cuda: redi's host/device headers
// compile under nvcc in C++20, and (when a GPU is present) Philox normals drawn on the device
// equal the host's bit for bit.
#include <redi/core/philox.hpp>
#include <redi/version.hpp>

#include <cuda_runtime.h>

#include <cstdio>
#include <vector>

__global__ void draw(float* out, int n, unsigned long long seed, unsigned long long stream) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) out[i] = static_cast<float>(redi::philox::normal(seed, stream, static_cast<unsigned long long>(i)));
}

int main() {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("consumer_kernel: redi %s, compiled; no GPU, kernel not run\n", REDI_VERSION_STRING);
    return 0;
  }
  constexpr int n = 1000;
  float* d = nullptr;
  if (cudaMalloc(&d, n * sizeof(float)) != cudaSuccess) return 1;
  draw<<<(n + 255) / 256, 256>>>(d, n, 42, 7);
  std::vector<float> h(n);
  cudaError_t err = cudaMemcpy(h.data(), d, n * sizeof(float), cudaMemcpyDeviceToHost);
  cudaFree(d);
  if (err != cudaSuccess) {
    std::printf("consumer_kernel: CUDA error %s\n", cudaGetErrorString(err));
    return 1;
  }
  int mismatches = 0;
  for (int i = 0; i < n; ++i)
    if (h[i] != static_cast<float>(redi::philox::normal(42, 7, static_cast<unsigned long long>(i)))) ++mismatches;
  std::printf("consumer_kernel: redi %s, %d GPU(s), %d/%d device normals differ from the host\n",
              REDI_VERSION_STRING, devices, mismatches, n);
  return mismatches == 0 ? 0 : 1;
}
