// redi/cuda/check.hpp — error checks for the CUDA runtime, cuBLAS(Lt) and cuDNN. Each macro
// evaluates the call once and, on failure, throws redi::Error naming the call expression and
// the library's status name/string. Host-only C++; includable by g++.
#pragma once
#include <cuda_runtime_api.h>

#include "redi/core/error.hpp"

#if __has_include(<cublas_api.h>)
#include <cublas_api.h>
#define REDI_CUDA_HAVE_CUBLAS_HEADER 1
#endif
#if __has_include(<cudnn.h>)
#include <cudnn.h>
#define REDI_CUDA_HAVE_CUDNN_HEADER 1
#endif

namespace redi::cuda_detail {

inline const char* status_string(cudaError_t e) { return cudaGetErrorString(e); }
inline const char* status_name(cudaError_t e) { return cudaGetErrorName(e); }
#if defined(REDI_CUDA_HAVE_CUBLAS_HEADER)
// cublasGetStatusString lives in libcublas; keep this header link-free by naming statuses here.
inline const char* status_name(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_LICENSE_ERROR: return "CUBLAS_STATUS_LICENSE_ERROR";
    default: return "CUBLAS_STATUS_<unknown>";
  }
}
inline const char* status_string(cublasStatus_t s) { return status_name(s); }
#endif
#if defined(REDI_CUDA_HAVE_CUDNN_HEADER)
inline const char* status_name(cudnnStatus_t s) { return cudnnGetErrorString(s); }
inline const char* status_string(cudnnStatus_t s) { return cudnnGetErrorString(s); }
#endif

}  // namespace redi::cuda_detail

/// REDI_CUDA_CHECK(cudaMalloc(&p, n)): throws redi::Error on anything but cudaSuccess.
#define REDI_CUDA_CHECK(expr)                                                               \
  do {                                                                                      \
    cudaError_t redi_cuda_err_ = (expr);                                                    \
    if (redi_cuda_err_ != cudaSuccess)                                                      \
      REDI_FAIL("CUDA call `" #expr "` failed: ",                                          \
                ::redi::cuda_detail::status_name(redi_cuda_err_), " (",                    \
                ::redi::cuda_detail::status_string(redi_cuda_err_), ")");                  \
  } while (0)

/// After a kernel launch: reports launch-configuration errors (and earlier sticky errors).
#define REDI_CUDA_LAUNCH_CHECK(what)                                                        \
  do {                                                                                      \
    cudaError_t redi_cuda_err_ = cudaGetLastError();                                        \
    if (redi_cuda_err_ != cudaSuccess)                                                      \
      REDI_FAIL("CUDA kernel launch `", what, "` failed: ",                                 \
                ::redi::cuda_detail::status_name(redi_cuda_err_), " (",                    \
                ::redi::cuda_detail::status_string(redi_cuda_err_), ")");                  \
  } while (0)

#define REDI_CUBLAS_CHECK(expr)                                                             \
  do {                                                                                      \
    cublasStatus_t redi_cublas_st_ = (expr);                                                \
    if (redi_cublas_st_ != CUBLAS_STATUS_SUCCESS)                                           \
      REDI_FAIL("cuBLAS call `" #expr "` failed: ",                                        \
                ::redi::cuda_detail::status_name(redi_cublas_st_));                        \
  } while (0)

#define REDI_CUDNN_CHECK(expr)                                                              \
  do {                                                                                      \
    cudnnStatus_t redi_cudnn_st_ = (expr);                                                  \
    if (redi_cudnn_st_ != CUDNN_STATUS_SUCCESS)                                             \
      REDI_FAIL("cuDNN call `" #expr "` failed: ",                                         \
                ::redi::cuda_detail::status_string(redi_cudnn_st_));                       \
  } while (0)
