# REDI_WITH_CUDA: AUTO (default) turns CUDA on when a CUDA compiler is found; ON demands it and
# fails at configure time when it is missing; OFF never uses it.
set(REDI_WITH_CUDA AUTO CACHE STRING "Build redi's CUDA code: AUTO, ON or OFF")
set_property(CACHE REDI_WITH_CUDA PROPERTY STRINGS AUTO ON OFF)
set(REDI_HAVE_CUDA OFF)
if(NOT REDI_WITH_CUDA STREQUAL "OFF")
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      set(CMAKE_CUDA_ARCHITECTURES 80 90)
    endif()
    enable_language(CUDA)
    find_package(CUDAToolkit REQUIRED)
    set(REDI_HAVE_CUDA ON)
    message(STATUS "redi: CUDA on (${CMAKE_CUDA_COMPILER}, archs ${CMAKE_CUDA_ARCHITECTURES})")
  elseif(REDI_WITH_CUDA STREQUAL "ON")
    message(FATAL_ERROR "redi: REDI_WITH_CUDA=ON but no CUDA compiler was found. Install the "
                        "CUDA toolkit and put nvcc on PATH (or set CMAKE_CUDA_COMPILER), or "
                        "configure with -DREDI_WITH_CUDA=OFF.")
  else()
    message(STATUS "redi: no CUDA compiler found, CUDA code off")
  endif()
endif()
