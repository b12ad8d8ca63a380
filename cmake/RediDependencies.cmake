# redi's CPU dependencies: Eigen (required), OpenMP and OpenBLAS (optional, used when found and
# not switched off). Every dependency is consumed through an imported target so that the
# exported redi::redi names targets, not absolute paths; rediConfig.cmake finds them again.
find_package(Eigen3 3.3 REQUIRED NO_MODULE)

set(REDI_HAVE_OPENMP OFF)
if(REDI_USE_OPENMP)
  find_package(OpenMP COMPONENTS CXX)
  if(OpenMP_CXX_FOUND)
    set(REDI_HAVE_OPENMP ON)
  else()
    message(STATUS "redi: OpenMP not found, CPU ops single-threaded")
  endif()
endif()

set(REDI_HAVE_OPENBLAS OFF)
if(REDI_USE_OPENBLAS)
  find_package(RediOpenBLAS)  # cmake/FindRediOpenBLAS.cmake -> RediOpenBLAS::OpenBLAS
  if(RediOpenBLAS_FOUND)
    set(REDI_HAVE_OPENBLAS ON)
    message(STATUS "redi: CPU GEMM through OpenBLAS (${RediOpenBLAS_LIBRARY})")
  else()
    message(STATUS "redi: OpenBLAS not found, CPU GEMM through Eigen")
  endif()
endif()

# Codec libraries used only by the dataset readers (redi/data): zlib for gzip'd IDX files,
# Debian's prebuilt libstb for PNG/JPEG (redi never defines STB_IMAGE_IMPLEMENTATION).
# Code that includes redi/data/idx.hpp links ZLIB::ZLIB; image_io.hpp / cifar10.hpp link
# ${REDI_STB_LIBRARY}.
find_package(ZLIB)
find_library(REDI_STB_LIBRARY NAMES stb)

# JPEG decoding (redi/data/jpeg.hpp) through libjpeg-turbo (Debian libjpeg-dev, i.e.
# libjpeg62-turbo-dev). Optional: when found, redi::redi links JPEG::JPEG and defines
# REDI_HAVE_JPEG=1 (the installed package re-finds it); without it everything builds and a JPEG
# file is refused at run time with an error naming the missing package.
set(REDI_HAVE_JPEG OFF)
if(REDI_USE_JPEG)
  find_package(JPEG)
  if(JPEG_FOUND)
    set(REDI_HAVE_JPEG ON)
  else()
    message(STATUS "redi: libjpeg not found (Debian: libjpeg-dev): JPEG images are refused at run time")
  endif()
endif()
