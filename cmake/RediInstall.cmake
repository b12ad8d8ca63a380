# install(EXPORT) + package config so that find_package(redi) works from an install prefix.
include(CMakePackageConfigHelpers)
install(TARGETS redi EXPORT rediTargets)
install(DIRECTORY include/redi DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT rediTargets NAMESPACE redi:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/redi)
configure_package_config_file(cmake/rediConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/rediConfig.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/redi)
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/rediConfigVersion.cmake
  COMPATIBILITY SameMinorVersion ARCH_INDEPENDENT)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/rediConfig.cmake
              ${CMAKE_CURRENT_BINARY_DIR}/rediConfigVersion.cmake
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/redi)
