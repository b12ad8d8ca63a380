# FindRediCUDNN — NVIDIA cuDNN (8 or 9) as the imported target RediCUDNN::cudnn.
# Searched in RediCUDNN_ROOT (variable or environment: a cuDNN folder with include/ and lib/,
# e.g. the pip wheel's site-packages/nvidia/cudnn), then CUDNN_ROOT / CUDNN_PATH / CUDNN_HOME
# (variables or environment), then next to the CUDA toolkit (CUDAToolkit_ROOT,
# CUDAToolkit_INCLUDE_DIRS, CUDAToolkit_LIBRARY_DIR — cuDNN 9's tarball is often unpacked into the
# toolkit), then the system folders (Debian/Ubuntu packages put it in /usr/include/<arch> and
# /usr/lib/<arch>). The library may be the unversioned libcudnn.so or only the versioned
# libcudnn.so.9 / .so.8 (the wheels ship no unversioned name); every folder is tried with all
# names before the next folder, so a root given as a hint wins. The cache entries
# RediCUDNN_INCLUDE_DIR and RediCUDNN_LIBRARY may also be set directly.
# Result: RediCUDNN_FOUND, RediCUDNN_INCLUDE_DIR, RediCUDNN_LIBRARY, RediCUDNN_VERSION, target
# RediCUDNN::cudnn. Installed next to rediConfig.cmake so that an installed redi re-finds it.

set(_redi_cudnn_hints)
foreach(_root IN ITEMS "${RediCUDNN_ROOT}" "$ENV{RediCUDNN_ROOT}" "${CUDNN_ROOT}" "$ENV{CUDNN_ROOT}"
                       "${CUDNN_PATH}" "$ENV{CUDNN_PATH}" "$ENV{CUDNN_HOME}"
                       "${CUDAToolkit_ROOT}" "$ENV{CUDAToolkit_ROOT}" "${CUDAToolkit_LIBRARY_ROOT}")
  if(_root)
    list(APPEND _redi_cudnn_hints "${_root}")
  endif()
endforeach()
if(CUDAToolkit_BIN_DIR)
  get_filename_component(_redi_cudnn_tk "${CUDAToolkit_BIN_DIR}" DIRECTORY)
  list(APPEND _redi_cudnn_hints "${_redi_cudnn_tk}")
endif()
list(APPEND _redi_cudnn_hints /usr/local/cuda)

find_path(RediCUDNN_INCLUDE_DIR cudnn.h
  HINTS ${_redi_cudnn_hints} ${CUDAToolkit_INCLUDE_DIRS}
  PATH_SUFFIXES include include/${CMAKE_LIBRARY_ARCHITECTURE}
  DOC "Folder holding cudnn.h")
find_library(RediCUDNN_LIBRARY NAMES cudnn libcudnn.so.9 libcudnn.so.8 NAMES_PER_DIR
  HINTS ${_redi_cudnn_hints} ${CUDAToolkit_LIBRARY_DIR}
  PATH_SUFFIXES lib64 lib lib/x64 lib/${CMAKE_LIBRARY_ARCHITECTURE}
  DOC "The cuDNN library")
mark_as_advanced(RediCUDNN_INCLUDE_DIR RediCUDNN_LIBRARY)

set(RediCUDNN_VERSION "")
if(RediCUDNN_INCLUDE_DIR)
  set(_redi_cudnn_vh "${RediCUDNN_INCLUDE_DIR}/cudnn_version.h")
  if(NOT EXISTS "${_redi_cudnn_vh}")
    set(_redi_cudnn_vh "${RediCUDNN_INCLUDE_DIR}/cudnn.h")
  endif()
  file(STRINGS "${_redi_cudnn_vh}" _redi_cudnn_defs REGEX "^#define CUDNN_(MAJOR|MINOR|PATCHLEVEL) +[0-9]+")
  foreach(_p MAJOR MINOR PATCHLEVEL)
    string(REGEX MATCH "CUDNN_${_p} +([0-9]+)" _m "${_redi_cudnn_defs}")
    set(_redi_cudnn_${_p} "${CMAKE_MATCH_1}")
  endforeach()
  if(NOT _redi_cudnn_MAJOR STREQUAL "")
    set(RediCUDNN_VERSION "${_redi_cudnn_MAJOR}.${_redi_cudnn_MINOR}.${_redi_cudnn_PATCHLEVEL}")
  endif()
endif()

# A versioned library must match the header's major version (a wheel's lib next to another
# cuDNN's headers would otherwise link and fail at run time).
set(RediCUDNN_LIBRARY_MATCHES_HEADER TRUE)
set(_redi_cudnn_reason "")
if(RediCUDNN_LIBRARY MATCHES "libcudnn\\.so\\.([0-9]+)$" AND NOT "${_redi_cudnn_MAJOR}" STREQUAL "")
  # (CMAKE_MATCH_1 is read in a command of its own: arguments are expanded before if() matches)
  if(NOT CMAKE_MATCH_1 STREQUAL _redi_cudnn_MAJOR)
    set(RediCUDNN_LIBRARY_MATCHES_HEADER FALSE)
    set(_redi_cudnn_reason
        "${RediCUDNN_LIBRARY} is not cuDNN ${_redi_cudnn_MAJOR} (cudnn.h in ${RediCUDNN_INCLUDE_DIR})")
  endif()
endif()

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(RediCUDNN
  REQUIRED_VARS RediCUDNN_LIBRARY RediCUDNN_INCLUDE_DIR RediCUDNN_LIBRARY_MATCHES_HEADER
  VERSION_VAR RediCUDNN_VERSION
  REASON_FAILURE_MESSAGE "${_redi_cudnn_reason}")

if(RediCUDNN_FOUND AND NOT TARGET RediCUDNN::cudnn)
  add_library(RediCUDNN::cudnn UNKNOWN IMPORTED)
  set_target_properties(RediCUDNN::cudnn PROPERTIES
    IMPORTED_LOCATION "${RediCUDNN_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${RediCUDNN_INCLUDE_DIR}")
endif()
unset(_redi_cudnn_hints)
unset(_redi_cudnn_tk)
unset(_redi_cudnn_vh)
unset(_redi_cudnn_defs)
unset(RediCUDNN_LIBRARY_MATCHES_HEADER)
unset(_redi_cudnn_reason)
