# Install rules + package config: after `cmake --install`, `find_package(redi)` works from the
# prefix and gives redi::redi (and redi::cuda when redi was configured with CUDA). The package
# config re-finds every dependency on the consuming machine (no build-machine paths inside).
include(CMakePackageConfigHelpers)
set(REDI_INSTALL_CMAKEDIR "${CMAKE_INSTALL_LIBDIR}/cmake/redi" CACHE STRING
    "Where redi's CMake package files go, relative to the install prefix")

set(_redi_export_targets redi)
if(REDI_HAVE_CUDA)
  list(APPEND _redi_export_targets redi_cuda)
endif()
install(TARGETS ${_redi_export_targets} EXPORT rediTargets)
install(DIRECTORY include/redi DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
# The shipped data files (data/README.md), found by redi::data_dir() through the target's
# REDI_DATA_DIR definition.
install(DIRECTORY ${PROJECT_SOURCE_DIR}/data/ DESTINATION ${CMAKE_INSTALL_DATADIR}/redi/data)
install(EXPORT rediTargets NAMESPACE redi:: DESTINATION ${REDI_INSTALL_CMAKEDIR})

configure_package_config_file(cmake/rediConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/rediConfig.cmake
  INSTALL_DESTINATION ${REDI_INSTALL_CMAKEDIR})
# The library is header-only, but 0.x releases break between minors.
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/rediConfigVersion.cmake
  COMPATIBILITY SameMinorVersion ARCH_INDEPENDENT)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/rediConfig.cmake
              ${CMAKE_CURRENT_BINARY_DIR}/rediConfigVersion.cmake
              ${PROJECT_SOURCE_DIR}/cmake/FindRediOpenBLAS.cmake
              ${PROJECT_SOURCE_DIR}/cmake/FindRediCUDNN.cmake
              ${PROJECT_SOURCE_DIR}/cmake/RediCudaStd.cmake
        DESTINATION ${REDI_INSTALL_CMAKEDIR})
install(FILES ${PROJECT_SOURCE_DIR}/LICENSE ${PROJECT_SOURCE_DIR}/README.md
        DESTINATION ${CMAKE_INSTALL_DOCDIR} OPTIONAL)
unset(_redi_export_targets)
