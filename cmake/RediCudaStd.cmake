# RediCudaStd — teach older CMake that nvcc >= 12 compiles C++20.
# CMake releases before nvcc 12 (Debian 12's CMake 3.25 among them) list no CUDA20 dialect for
# NVIDIA, so a target needing cuda_std_20 / CUDA_STANDARD 20 fails at generate time ("requires
# the language dialect CUDA20 ... the current compiler NVIDIA does not support this"). This
# fills in the flag when CUDA is enabled in the current directory scope and CMake left it out.
# Included by cmake/RediCuda.cmake right after enable_language(CUDA), and by the installed
# rediConfig.cmake when the consumer has already enabled CUDA.
if(CMAKE_CUDA_COMPILER_ID STREQUAL "NVIDIA"
   AND CMAKE_CUDA_COMPILER_VERSION VERSION_GREATER_EQUAL 12.0
   AND NOT CMAKE_CUDA20_STANDARD_COMPILE_OPTION)
  set(CMAKE_CUDA20_STANDARD_COMPILE_OPTION "-std=c++20")
  set(CMAKE_CUDA20_EXTENSION_COMPILE_OPTION "-std=c++20")
  set(CMAKE_CUDA20_COMPILE_FEATURES cuda_std_20)
  if(NOT "cuda_std_20" IN_LIST CMAKE_CUDA_COMPILE_FEATURES)
    list(APPEND CMAKE_CUDA_COMPILE_FEATURES cuda_std_20)
  endif()
endif()
