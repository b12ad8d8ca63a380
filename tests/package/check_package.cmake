# Packaging checks, run by ctest as `cmake -D... -P check_package.cmake` (see CMakeLists.txt).
#   MODE=install     cmake --install the current build into a scratch prefix, check that the
#                    installed package carries no build-machine library paths, then configure,
#                    build and run tests/package/consumer with find_package(redi REQUIRED).
#   MODE=subdir      configure, build and run the consumer with add_subdirectory(<source tree>).
#   MODE=cuda_option REDI_WITH_CUDA=ON with CMAKE_CUDA_COMPILER=/nonexistent must fail at
#                    configure time with redi's message; AUTO with the same compiler must
#                    configure (CUDA off, with a notice); a bogus value must fail.
# Inputs: MODE SOURCE_DIR BINARY_DIR WORK_DIR GENERATOR MAKE_PROGRAM CXX_COMPILER BUILD_TYPE
#         CUDA_COMPILER (may be empty) WITH_CUDA
cmake_minimum_required(VERSION 3.24)

foreach(v MODE SOURCE_DIR BINARY_DIR WORK_DIR GENERATOR CXX_COMPILER)
  if(NOT DEFINED ${v} OR "${${v}}" STREQUAL "")
    message(FATAL_ERROR "check_package: ${v} not set")
  endif()
endforeach()
if(NOT BUILD_TYPE)
  set(BUILD_TYPE Release)
endif()

file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")

set(common_args -G "${GENERATOR}" "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}"
                "-DCMAKE_BUILD_TYPE=${BUILD_TYPE}")
if(MAKE_PROGRAM)
  list(APPEND common_args "-DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM}")
endif()

# run(<what> <command>...): run, echo the output, fail the test on a non-zero exit.
function(run what)
  message(STATUS "check_package: ${what}: ${ARGN}")
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  message("${out}")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "check_package: ${what} failed (exit ${rc})")
  endif()
  set(run_output "${out}" PARENT_SCOPE)
endfunction()

# configure_fails(<what> <expected regex> <args>...): configuring redi must fail, saying <regex>.
function(configure_fails what regex)
  set(dir "${WORK_DIR}/${what}")
  message(STATUS "check_package: ${what}: expecting a configure error matching '${regex}'")
  execute_process(COMMAND "${CMAKE_COMMAND}" -S "${SOURCE_DIR}" -B "${dir}" ${common_args}
                          -DREDI_BUILD_TESTS=OFF -DREDI_BUILD_BENCHMARKS=OFF
                          -DREDI_BUILD_EXAMPLES=OFF ${ARGN}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  message("${out}")
  if(rc EQUAL 0)
    message(FATAL_ERROR "check_package: ${what}: configure succeeded, expected a failure")
  endif()
  string(REGEX REPLACE "[ \t\r\n]+" " " flat "${out}")  # CMake wraps long messages
  if(NOT flat MATCHES "${regex}")
    message(FATAL_ERROR "check_package: ${what}: configure failed without the expected message")
  endif()
endfunction()

if(MODE STREQUAL "cuda_option")
  configure_fails(cuda_on_missing_compiler
    "REDI_WITH_CUDA=ON but the CUDA compiler CMAKE_CUDA_COMPILER='/nonexistent' does not exist"
    -DREDI_WITH_CUDA=ON -DCMAKE_CUDA_COMPILER=/nonexistent)
  configure_fails(cuda_bogus_value "REDI_WITH_CUDA must be AUTO, ON or OFF"
    -DREDI_WITH_CUDA=maybe)
  run(cuda_auto_falls_back "${CMAKE_COMMAND}" -S "${SOURCE_DIR}" -B "${WORK_DIR}/cuda_auto"
      ${common_args} -DREDI_BUILD_TESTS=OFF -DREDI_BUILD_BENCHMARKS=OFF -DREDI_BUILD_EXAMPLES=OFF
      -DREDI_WITH_CUDA=AUTO -DCMAKE_CUDA_COMPILER=/nonexistent)
  string(REGEX REPLACE "[ \t\r\n]+" " " flat "${run_output}")
  if(NOT flat MATCHES "redi: CUDA off \\(REDI_WITH_CUDA=AUTO")
    message(FATAL_ERROR "check_package: AUTO without a compiler did not say that CUDA is off")
  endif()
  message(STATUS "check_package: REDI_WITH_CUDA checks passed")
  return()
endif()

set(consumer_args)
if(MODE STREQUAL "install")
  set(prefix "${WORK_DIR}/prefix")
  run("install" "${CMAKE_COMMAND}" --install "${BINARY_DIR}" --prefix "${prefix}")
  file(GLOB_RECURSE cfg_files "${prefix}/*/rediConfig.cmake")
  if(NOT cfg_files)
    message(FATAL_ERROR "check_package: no rediConfig.cmake under ${prefix}")
  endif()
  list(GET cfg_files 0 cfg)
  get_filename_component(cfg_dir "${cfg}" DIRECTORY)
  foreach(f rediTargets.cmake rediConfig.cmake rediConfigVersion.cmake)
    if(NOT EXISTS "${cfg_dir}/${f}")
      message(FATAL_ERROR "check_package: ${f} not installed")
    endif()
  endforeach()
  if(NOT EXISTS "${prefix}/include/redi/redi.hpp" OR NOT EXISTS "${prefix}/include/redi/version.hpp")
    message(FATAL_ERROR "check_package: headers not installed under ${prefix}/include")
  endif()
  # The exported targets must name dependencies by target and paths relative to the install
  # prefix: no absolute path (a quoted or list item starting with /), no library file.
  file(READ "${cfg_dir}/rediTargets.cmake" targets_text)
  if(targets_text MATCHES "(\"|;)/[A-Za-z]|\\.so|\\.a\"")
    message(FATAL_ERROR "check_package: rediTargets.cmake holds an absolute path or library "
                        "file; dependencies must be imported targets:\n${targets_text}")
  endif()
  # Only the package's prefix: the consumer must not see the build tree.
  list(APPEND consumer_args "-DCMAKE_PREFIX_PATH=${prefix}" -DREDI_CONSUMER_MODE=install
       -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF)
elseif(MODE STREQUAL "subdir")
  list(APPEND consumer_args -DREDI_CONSUMER_MODE=subdir "-DREDI_SOURCE_DIR=${SOURCE_DIR}"
       "-DREDI_WITH_CUDA=${WITH_CUDA}")
else()
  message(FATAL_ERROR "check_package: unknown MODE '${MODE}'")
endif()
if(CUDA_COMPILER)
  # redi was built with CUDA: the consumer also compiles a kernel (one arch keeps it quick).
  list(APPEND consumer_args "-DCMAKE_CUDA_COMPILER=${CUDA_COMPILER}" -DREDI_CONSUMER_CUDA=ON
       -DCMAKE_CUDA_ARCHITECTURES=80)
endif()

set(cdir "${WORK_DIR}/consumer-build")
run("configure consumer (${MODE})" "${CMAKE_COMMAND}" -S "${CMAKE_CURRENT_LIST_DIR}/consumer"
    -B "${cdir}" ${common_args} ${consumer_args})
run("build consumer (${MODE})" "${CMAKE_COMMAND}" --build "${cdir}" -j 2)
run("run consumer (${MODE})" "${cdir}/consumer")
if(NOT run_output MATCHES "consumer: redi [0-9]+\\.[0-9]+\\.[0-9]+")
  message(FATAL_ERROR "check_package: consumer printed nothing recognisable")
endif()
# redi::data_dir() must point into the package: the installed copy under the prefix, or the
# source tree's data/ for add_subdirectory.
if(MODE STREQUAL "install")
  set(want_data "${prefix}/share/redi/data")
else()
  set(want_data "${SOURCE_DIR}/data")
endif()
string(FIND "${run_output}" "consumer: data dir ${want_data}" at)
if(at EQUAL -1)
  message(FATAL_ERROR "check_package: the consumer's redi::data_dir() is not ${want_data}")
endif()
run("run consumer_jpeg (${MODE})" "${cdir}/consumer_jpeg")
foreach(exe consumer_cuda consumer_kernel)
  if(EXISTS "${cdir}/${exe}")
    run("run ${exe} (${MODE})" "${cdir}/${exe}")
  elseif(CUDA_COMPILER)
    message(FATAL_ERROR "check_package: ${exe} was not built although redi has CUDA")
  endif()
endforeach()
message(STATUS "check_package: ${MODE} consumer passed")
