// redi/version.hpp — the library version. This header is the single source of truth: the
// top-level CMakeLists.txt reads these three numbers for project(VERSION) and for the package's
// rediConfigVersion.cmake.
#pragma once

#define REDI_VERSION_MAJOR 0
#define REDI_VERSION_MINOR 1
#define REDI_VERSION_PATCH 0

#define REDI_VERSION_STR_(x) #x
#define REDI_VERSION_STR(x) REDI_VERSION_STR_(x)
/// "MAJOR.MINOR.PATCH"
#define REDI_VERSION_STRING                                                       \
  REDI_VERSION_STR(REDI_VERSION_MAJOR) "." REDI_VERSION_STR(REDI_VERSION_MINOR) "." \
  REDI_VERSION_STR(REDI_VERSION_PATCH)
/// MAJOR * 10000 + MINOR * 100 + PATCH, for #if comparisons.
#define REDI_VERSION (REDI_VERSION_MAJOR * 10000 + REDI_VERSION_MINOR * 100 + REDI_VERSION_PATCH)

namespace redi {
struct Version {
  int major, minor, patch;
};
inline constexpr Version version{REDI_VERSION_MAJOR, REDI_VERSION_MINOR, REDI_VERSION_PATCH};
inline constexpr const char* version_string = REDI_VERSION_STRING;
}  // namespace redi
