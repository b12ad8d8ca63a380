# tests/cuda/device_deps.cmake — a CMake dependency provider (CMake >= 3.24) used only by
# tests/cuda/device_check.sh, through -DCMAKE_PROJECT_TOP_LEVEL_INCLUDES=<this file>. It lets a
# bare GPU machine (no Eigen, GoogleTest, Google Benchmark; cuDNN only inside PyTorch's wheel)
# configure redi without any change to redi's own CMake files:
#
#   find_package(Eigen3 | GTest | benchmark | RediCUDNN ...)
#     1. the system's copy, searched as usual (quietly);
#     2. when that fails: the prepared folder REDI_DEVICE_DEPS (tests/cuda/prepare_device.sh):
#          Eigen3    -> find_package in REDI_DEVICE_DEPS/eigen3/share/eigen3/cmake only
#          GTest     -> add_subdirectory(REDI_DEVICE_DEPS/googletest), GTest::gtest(_main) aliases
#          benchmark -> add_subdirectory(REDI_DEVICE_DEPS/benchmark) (benchmark::benchmark)
#        or, for cuDNN, RediCUDNN_ROOT = REDI_DEVICE_CUDNN_ROOT (a wheel's nvidia/cudnn folder).
#   Every other find_package goes to CMake's own implementation.
#
# Inputs (cache or -D): REDI_DEVICE_DEPS, REDI_DEVICE_CUDNN_ROOT, and REDI_DEVICE_DEPS_NO_SYSTEM
# (a list of the package names above whose system copy is ignored: the dry run's stand-in for a
# machine without them where CMAKE_IGNORE_PATH cannot hide one, e.g. a cuDNN inside the toolkit).
# Each decision is printed as "redi-devcheck dep <name>: <origin> <where>", which the check
# collects into its summary.

cmake_minimum_required(VERSION 3.24)

macro(redi_devcheck_provide method name)
  # Only the four packages; anything else falls through to CMake (no <name>_FOUND set here).
  # A find_package nested in the system attempt (FindGTest asks for GTest's config package) goes
  # to CMake directly: _rdc_busy_<name> marks the outer call.
  if("${name}" MATCHES "^(Eigen3|GTest|benchmark|RediCUDNN)$" AND NOT _rdc_busy_${name})
    set(_rdc_busy_${name} ON)
    set(_rdc_args ${ARGN})
    set(_rdc_required OFF)
    if("REQUIRED" IN_LIST _rdc_args)
      set(_rdc_required ON)
    endif()
    list(REMOVE_ITEM _rdc_args REQUIRED QUIET)
    set(_rdc_found OFF)
    if(NOT "${name}" IN_LIST REDI_DEVICE_DEPS_NO_SYSTEM)
      find_package(${name} ${_rdc_args} QUIET BYPASS_PROVIDER)
      if(${name}_FOUND)
        set(_rdc_found ON)
        set(_rdc_where "${${name}_DIR}")
        if("${name}" STREQUAL "RediCUDNN")
          set(_rdc_where "${RediCUDNN_LIBRARY}")
        elseif("${name}" STREQUAL "GTest" AND NOT _rdc_where)
          set(_rdc_where "${GTEST_LIBRARY}")
        endif()
        # On a re-configure the cache already points at the prepared folder or the wheel.
        set(_rdc_origin system)
        string(FIND "${_rdc_where}" "${REDI_DEVICE_DEPS}/" _rdc_pos)
        if(REDI_DEVICE_DEPS AND _rdc_pos EQUAL 0)
          set(_rdc_origin prepared)
        endif()
        string(FIND "${_rdc_where}" "${REDI_DEVICE_CUDNN_ROOT}/" _rdc_pos)
        if(REDI_DEVICE_CUDNN_ROOT AND _rdc_pos EQUAL 0)
          set(_rdc_origin wheel)
        endif()
        message(STATUS "redi-devcheck dep ${name}: ${_rdc_origin} ${_rdc_where}")
      endif()
    endif()
    if(NOT _rdc_found)
      if("${name}" STREQUAL "Eigen3"
         AND EXISTS "${REDI_DEVICE_DEPS}/eigen3/share/eigen3/cmake/Eigen3Config.cmake")
        find_package(Eigen3 ${_rdc_args} QUIET BYPASS_PROVIDER NO_DEFAULT_PATH
                     PATHS "${REDI_DEVICE_DEPS}/eigen3/share/eigen3/cmake")
        if(Eigen3_FOUND)
          set(_rdc_found ON)
          message(STATUS "redi-devcheck dep Eigen3: prepared ${Eigen3_DIR}")
        endif()
      elseif("${name}" STREQUAL "GTest" AND EXISTS "${REDI_DEVICE_DEPS}/googletest/CMakeLists.txt")
        if(NOT TARGET gtest)
          set(BUILD_GMOCK OFF)
          set(INSTALL_GTEST OFF)
          set(gtest_force_shared_crt OFF)
          # googletest looks for a Python interpreter for its own tests (not built here): seconds
          # of probing on some machines, for nothing.
          set(CMAKE_DISABLE_FIND_PACKAGE_Python ON)
          add_subdirectory("${REDI_DEVICE_DEPS}/googletest" "${CMAKE_BINARY_DIR}/_deps/googletest"
                           EXCLUDE_FROM_ALL)
          unset(CMAKE_DISABLE_FIND_PACKAGE_Python)
          # googletest >= 1.11 names its targets GTest::gtest(_main) itself; older ones do not.
          if(NOT TARGET GTest::gtest)
            add_library(GTest::gtest ALIAS gtest)
            add_library(GTest::gtest_main ALIAS gtest_main)
          endif()
        endif()
        set(GTest_FOUND TRUE)
        set(GTEST_FOUND TRUE)
        set(_rdc_found ON)
        message(STATUS "redi-devcheck dep GTest: prepared ${REDI_DEVICE_DEPS}/googletest (built here)")
      elseif("${name}" STREQUAL "benchmark" AND EXISTS "${REDI_DEVICE_DEPS}/benchmark/CMakeLists.txt")
        if(NOT TARGET benchmark)
          set(BENCHMARK_ENABLE_TESTING OFF)
          set(BENCHMARK_ENABLE_GTEST_TESTS OFF)
          set(BENCHMARK_ENABLE_INSTALL OFF)
          set(BENCHMARK_INSTALL_DOCS OFF)
          set(BENCHMARK_ENABLE_WERROR OFF)  # a newer compiler's new warnings must not stop the check
          set(BENCHMARK_ENABLE_LTO OFF)
          set(BENCHMARK_ENABLE_LIBPFM OFF)
          # Upstream asks git for the version and gets 0.0.0 outside a checkout (then uses
          # project()'s); Debian's patch drops the git call, its build passes the version.
          set(GIT_VERSION "0.0.0")
          # Its feature checks compile and run a test program each (std::regex alone takes
          # seconds). These three hold for every glibc/libstdc++ target nvcc supports; seeding
          # them gives the defines its checks would give. GNU_POSIX_REGEX is still checked.
          set(HAVE_STD_REGEX 1)
          set(HAVE_POSIX_REGEX 1)
          set(HAVE_STEADY_CLOCK 1)
          add_subdirectory("${REDI_DEVICE_DEPS}/benchmark" "${CMAKE_BINARY_DIR}/_deps/benchmark"
                           EXCLUDE_FROM_ALL)
          # GCC >= 13 no longer includes <cstdint> transitively; older releases relied on it.
          target_compile_options(benchmark PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-include cstdint>)
        endif()
        set(benchmark_FOUND TRUE)
        set(_rdc_found ON)
        message(STATUS "redi-devcheck dep benchmark: prepared ${REDI_DEVICE_DEPS}/benchmark (built here)")
      elseif("${name}" STREQUAL "RediCUDNN" AND REDI_DEVICE_CUDNN_ROOT)
        # A half-found system copy (header without library) must not mix with the wheel's.
        unset(RediCUDNN_INCLUDE_DIR CACHE)
        unset(RediCUDNN_LIBRARY CACHE)
        set(RediCUDNN_ROOT "${REDI_DEVICE_CUDNN_ROOT}")
        find_package(RediCUDNN ${_rdc_args} QUIET BYPASS_PROVIDER)
        if(RediCUDNN_FOUND)
          set(_rdc_found ON)
          message(STATUS "redi-devcheck dep RediCUDNN: wheel ${RediCUDNN_LIBRARY} "
                         "(cuDNN ${RediCUDNN_VERSION}, headers ${RediCUDNN_INCLUDE_DIR})")
        endif()
      endif()
    endif()
    if(NOT _rdc_found)
      # Not setting <name>_FOUND hands the call back to CMake's own find_package.
      message(STATUS "redi-devcheck dep ${name}: MISSING (not on the system, not prepared in "
                     "'${REDI_DEVICE_DEPS}')")
      if(_rdc_required)
        message(FATAL_ERROR "redi-devcheck: ${name} is required and neither the system nor the "
                            "prepared folder has it (run tests/cuda/prepare_device.sh)")
      endif()
    endif()
    unset(_rdc_busy_${name})
    unset(_rdc_args)
    unset(_rdc_required)
    unset(_rdc_found)
    unset(_rdc_where)
    unset(_rdc_origin)
    unset(_rdc_pos)
  endif()
endmacro()

cmake_language(SET_DEPENDENCY_PROVIDER redi_devcheck_provide SUPPORTED_METHODS FIND_PACKAGE)
