// redi/core/macros.hpp — host/device annotations shared by code that nvcc and g++ both compile.
#pragma once

#if defined(__CUDACC__)
#define REDI_HD __host__ __device__ __forceinline__
#else
#define REDI_HD inline
#endif
