# REDI_WITH_CUDA selects redi's CUDA code:
#   AUTO (default) — on when a working CUDA compiler, the CUDA toolkit libraries (cudart, cuBLAS,
#                    cuBLASLt) and cuDNN are all found; otherwise off, saying which is missing.
#   ON             — required: any missing piece is a configure error (never a silent fallback).
#   OFF            — never look for CUDA.
# Output: REDI_HAVE_CUDA (ON/OFF); when ON the CUDA language is enabled, CUDA::cudart,
# CUDA::cublas, CUDA::cublasLt and RediCUDNN::cudnn exist, and CMAKE_CUDA_ARCHITECTURES
# defaults to "80;90" (A100, H100) unless set by the user.
set(REDI_WITH_CUDA AUTO CACHE STRING "Build redi's CUDA code: AUTO, ON or OFF")
set_property(CACHE REDI_WITH_CUDA PROPERTY STRINGS AUTO ON OFF)
string(TOUPPER "${REDI_WITH_CUDA}" _redi_cuda_mode)
if(_redi_cuda_mode STREQUAL "TRUE" OR _redi_cuda_mode STREQUAL "YES" OR _redi_cuda_mode STREQUAL "1")
  set(_redi_cuda_mode ON)
elseif(_redi_cuda_mode STREQUAL "FALSE" OR _redi_cuda_mode STREQUAL "NO" OR _redi_cuda_mode STREQUAL "0")
  set(_redi_cuda_mode OFF)
endif()
if(NOT _redi_cuda_mode MATCHES "^(AUTO|ON|OFF)$")
  message(FATAL_ERROR "redi: REDI_WITH_CUDA must be AUTO, ON or OFF (got '${REDI_WITH_CUDA}').")
endif()

set(REDI_HAVE_CUDA OFF)

# Report a missing piece: a configure error when CUDA was demanded, a notice under AUTO.
macro(_redi_cuda_missing what)
  if(_redi_cuda_mode STREQUAL "ON")
    message(FATAL_ERROR
      "redi: REDI_WITH_CUDA=ON but ${what}. Install the CUDA toolkit (nvcc, cudart, cuBLAS) and "
      "cuDNN and put nvcc on PATH or set CMAKE_CUDA_COMPILER (cuDNN: CUDNN_ROOT), or configure "
      "with -DREDI_WITH_CUDA=OFF (or AUTO).")
  else()
    message(STATUS "redi: CUDA off (REDI_WITH_CUDA=AUTO and ${what})")
  endif()
endmacro()

if(NOT _redi_cuda_mode STREQUAL "OFF")
  set(_redi_cuda_ok ON)
  if(DEFINED CMAKE_CUDA_COMPILER AND CMAKE_CUDA_COMPILER AND NOT EXISTS "${CMAKE_CUDA_COMPILER}")
    # check_language() trusts a preset CMAKE_CUDA_COMPILER; a path that is not there must not
    # reach enable_language().
    _redi_cuda_missing("the CUDA compiler CMAKE_CUDA_COMPILER='${CMAKE_CUDA_COMPILER}' does not exist")
    set(_redi_cuda_ok OFF)
  endif()
  if(_redi_cuda_ok)
    include(CheckLanguage)
    check_language(CUDA)
    if(NOT CMAKE_CUDA_COMPILER)
      _redi_cuda_missing("no CUDA compiler was found (nvcc not on PATH, CMAKE_CUDA_COMPILER unset)")
      set(_redi_cuda_ok OFF)
    endif()
  endif()
  if(_redi_cuda_ok)
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      set(CMAKE_CUDA_ARCHITECTURES 80 90)
    endif()
    # A parent project (add_subdirectory) that enabled CUDA itself gets the dialect fix too.
    set(_redi_parent_has_cuda OFF)
    if(NOT PROJECT_IS_TOP_LEVEL AND CMAKE_CUDA_COMPILER_LOADED)
      set(_redi_parent_has_cuda ON)
    endif()
    # Runs in redi's top directory scope: RediCuda is include()d from CMakeLists.txt.
    enable_language(CUDA)
    include(RediCudaStd)  # C++20 dialect flag for nvcc >= 12 on CMake versions that lack it
    if(_redi_parent_has_cuda)
      foreach(_v CMAKE_CUDA20_STANDARD_COMPILE_OPTION CMAKE_CUDA20_EXTENSION_COMPILE_OPTION
                 CMAKE_CUDA20_COMPILE_FEATURES CMAKE_CUDA_COMPILE_FEATURES)
        set(${_v} "${${_v}}" PARENT_SCOPE)
      endforeach()
    endif()
    unset(_redi_parent_has_cuda)
    find_package(CUDAToolkit)
    if(NOT CUDAToolkit_FOUND OR NOT TARGET CUDA::cudart OR NOT TARGET CUDA::cublas
       OR NOT TARGET CUDA::cublasLt)
      _redi_cuda_missing("the CUDA toolkit libraries (cudart, cublas, cublasLt) were not found")
      set(_redi_cuda_ok OFF)
    endif()
  endif()
  if(_redi_cuda_ok)
    find_package(RediCUDNN)  # cmake/FindRediCUDNN.cmake -> RediCUDNN::cudnn
    if(NOT RediCUDNN_FOUND)
      _redi_cuda_missing("cuDNN (cudnn.h, libcudnn) was not found")
      set(_redi_cuda_ok OFF)
    endif()
  endif()
  if(_redi_cuda_ok)
    set(REDI_HAVE_CUDA ON)
    message(STATUS "redi: CUDA on (${CMAKE_CUDA_COMPILER} ${CMAKE_CUDA_COMPILER_VERSION}, "
                   "archs ${CMAKE_CUDA_ARCHITECTURES}, cuDNN ${RediCUDNN_VERSION})")
  endif()
  unset(_redi_cuda_ok)
else()
  message(STATUS "redi: CUDA off (REDI_WITH_CUDA=OFF)")
endif()
