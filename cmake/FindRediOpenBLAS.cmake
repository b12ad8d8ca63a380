# FindRediOpenBLAS — OpenBLAS with its CBLAS header, as the imported target RediOpenBLAS::OpenBLAS.
# Used by redi's own build and, installed next to rediConfig.cmake, by redi's package config, so
# that an installed redi re-finds OpenBLAS on the consuming machine instead of carrying the
# build machine's library path.
#
# Hints: OpenBLAS_ROOT / OPENBLAS_ROOT (prefix), or the cache entries RediOpenBLAS_INCLUDE_DIR
# and RediOpenBLAS_LIBRARY.
# Result: RediOpenBLAS_FOUND, RediOpenBLAS_INCLUDE_DIR, RediOpenBLAS_LIBRARY, target
# RediOpenBLAS::OpenBLAS.

set(_redi_oblas_hints)
foreach(_root IN ITEMS "${OpenBLAS_ROOT}" "$ENV{OpenBLAS_ROOT}" "${OPENBLAS_ROOT}" "$ENV{OPENBLAS_ROOT}")
  if(_root)
    list(APPEND _redi_oblas_hints "${_root}")
  endif()
endforeach()

# Debian/Ubuntu put the OpenBLAS flavour's cblas.h in a multiarch sub-folder; the plain
# multiarch cblas.h is an alternatives link that may point to another BLAS, so the OpenBLAS
# folders are searched first.
if(CMAKE_LIBRARY_ARCHITECTURE)
  set(_redi_oblas_arch "${CMAKE_LIBRARY_ARCHITECTURE}")
else()
  set(_redi_oblas_arch "")
endif()
find_path(RediOpenBLAS_INCLUDE_DIR cblas.h
  HINTS ${_redi_oblas_hints}
  PATH_SUFFIXES include/openblas include/openblas-openmp include/openblas-pthread
                openblas openblas-openmp openblas-pthread
                ${_redi_oblas_arch}/openblas-openmp ${_redi_oblas_arch}/openblas-pthread
                include
  DOC "Folder holding OpenBLAS's cblas.h")
# Prefer Debian's OpenMP flavour (libopenblas-openmp-dev): its threads are libgomp's, the same
# pool redi's OpenMP loops use. With the pthread flavour the two pools spin against each other
# on every GEMM/elementwise alternation (measured: ~3x slower training steps under load).
# The build tree's RPATH then points at that folder, so the flavour is used at run time too.
set(_redi_oblas_first)
if(_redi_oblas_arch)
  foreach(_d IN ITEMS /usr/lib/${_redi_oblas_arch}/openblas-openmp /usr/lib/${_redi_oblas_arch}/openblas-pthread)
    if(EXISTS "${_d}")
      list(APPEND _redi_oblas_first "${_d}")
    endif()
  endforeach()
endif()
find_library(RediOpenBLAS_LIBRARY NAMES openblas openblasp openblaso
  HINTS ${_redi_oblas_hints} ${_redi_oblas_first}
  PATH_SUFFIXES lib lib64
  DOC "The OpenBLAS library")
mark_as_advanced(RediOpenBLAS_INCLUDE_DIR RediOpenBLAS_LIBRARY)

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(RediOpenBLAS
  REQUIRED_VARS RediOpenBLAS_LIBRARY RediOpenBLAS_INCLUDE_DIR)

if(RediOpenBLAS_FOUND AND NOT TARGET RediOpenBLAS::OpenBLAS)
  add_library(RediOpenBLAS::OpenBLAS UNKNOWN IMPORTED)
  set_target_properties(RediOpenBLAS::OpenBLAS PROPERTIES
    IMPORTED_LOCATION "${RediOpenBLAS_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${RediOpenBLAS_INCLUDE_DIR}")
endif()
unset(_redi_oblas_hints)
unset(_redi_oblas_first)
unset(_redi_oblas_arch)
