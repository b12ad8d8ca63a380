# REDI_WITH_MPI selects redi's MPI programs and tests (docs/distributed.md):
#   AUTO (default) — on when find_package(MPI COMPONENTS CXX) succeeds; otherwise off, with a notice.
#   ON             — required: no MPI is a configure error.
#   OFF            — never look for MPI.
# The library stays header-only and MPI-free: redi/dist/mpi.hpp includes <mpi.h> and compiles
# only in a target that links MPI::MPI_CXX (redi's own: redi_train, the mpi tests, the scaling
# benchmark). Output: REDI_HAVE_MPI, REDI_MPIEXEC (the launcher), REDI_MPIEXEC_FLAGS (Open MPI:
# --oversubscribe for more ranks than cores, --allow-run-as-root for CI containers).
# With CUDA: REDI_HAVE_NCCL and the imported target RediNCCL::nccl when nccl.h and libnccl are
# found next to the CUDA toolkit (or under NCCL_ROOT).
set(REDI_WITH_MPI AUTO CACHE STRING "Build redi's MPI programs and tests: AUTO, ON or OFF")
set_property(CACHE REDI_WITH_MPI PROPERTY STRINGS AUTO ON OFF)
string(TOUPPER "${REDI_WITH_MPI}" _redi_mpi_mode)
set(REDI_HAVE_MPI OFF)
set(REDI_MPIEXEC "")
set(REDI_MPIEXEC_FLAGS "")
if(NOT _redi_mpi_mode STREQUAL "OFF")
  find_package(MPI COMPONENTS CXX)
  if(MPI_CXX_FOUND AND MPIEXEC_EXECUTABLE)
    set(REDI_HAVE_MPI ON)
    set(REDI_MPIEXEC "${MPIEXEC_EXECUTABLE}")
    execute_process(COMMAND "${MPIEXEC_EXECUTABLE}" --version OUTPUT_VARIABLE _redi_mpi_version
                    ERROR_VARIABLE _redi_mpi_version TIMEOUT 20)
    if(_redi_mpi_version MATCHES "Open MPI|OpenRTE")
      set(REDI_MPIEXEC_FLAGS --oversubscribe --allow-run-as-root)
    endif()
    unset(_redi_mpi_version)
  elseif(_redi_mpi_mode STREQUAL "ON")
    message(FATAL_ERROR "redi: REDI_WITH_MPI=ON but MPI (C++ bindings and mpiexec) was not found. "
                        "On Debian: apt-get install openmpi-bin libopenmpi-dev")
  else()
    message(STATUS "redi: MPI off (REDI_WITH_MPI=AUTO and no MPI found: the mpi tests skip)")
  endif()
endif()
unset(_redi_mpi_mode)

set(REDI_HAVE_NCCL OFF)
if(REDI_HAVE_CUDA)
  find_path(REDI_NCCL_INCLUDE_DIR nccl.h HINTS ENV NCCL_ROOT ${CUDAToolkit_INCLUDE_DIRS} PATH_SUFFIXES include)
  find_library(REDI_NCCL_LIBRARY nccl HINTS ENV NCCL_ROOT ${CUDAToolkit_LIBRARY_DIR} PATH_SUFFIXES lib lib64)
  if(REDI_NCCL_INCLUDE_DIR AND REDI_NCCL_LIBRARY)
    set(REDI_HAVE_NCCL ON)
    if(NOT TARGET RediNCCL::nccl)
      add_library(RediNCCL::nccl UNKNOWN IMPORTED)
      set_target_properties(RediNCCL::nccl PROPERTIES IMPORTED_LOCATION "${REDI_NCCL_LIBRARY}"
                            INTERFACE_INCLUDE_DIRECTORIES "${REDI_NCCL_INCLUDE_DIR}")
    endif()
  else()
    message(STATUS "redi: NCCL not found (nccl.h, libnccl): the NCCL communicator is not built")
  endif()
endif()
message(STATUS "redi: MPI ${REDI_HAVE_MPI} (${REDI_MPIEXEC} ${REDI_MPIEXEC_FLAGS}), NCCL ${REDI_HAVE_NCCL}")
