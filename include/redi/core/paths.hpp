// redi/core/paths.hpp — where redi finds the data files it ships (committed encoder and judge
// weights, the authors' PCA): the repository's data/ folder, or <prefix>/share/redi/data once
// installed. Resolution order:
//   1. $REDI_DATA_DIR (the user's override),
//   2. the REDI_DATA_DIR compile definition, which every target linking redi::redi carries:
//      the source tree's data/ folder when built against the tree (redi's own tests, examples,
//      add_subdirectory), <prefix>/share/redi/data when found as an installed package,
//   3. ./data (a program started from the repository root, built without CMake).
#pragma once
#include <cstdlib>
#include <filesystem>
#include <string>

#include "redi/core/error.hpp"

namespace redi {

/// The folder of redi's shipped data files (see the header comment for the order).
inline std::filesystem::path data_dir() {
  if (const char* e = std::getenv("REDI_DATA_DIR"); e && *e) return e;
#if defined(REDI_DATA_DIR)
  return REDI_DATA_DIR;
#else
  return "data";
#endif
}

/// data_dir() / rel, which must exist: otherwise a redi::Error that names the path and how to
/// point redi at its data folder.
inline std::filesystem::path data_file(const std::string& rel) {
  const std::filesystem::path p = data_dir() / rel;
  std::error_code ec;
  REDI_CHECK(std::filesystem::exists(p, ec), "redi data file ", p.string(),
             " not found; set REDI_DATA_DIR to the folder that holds redi's data/ files (the repository's "
             "data/ or <prefix>/share/redi/data)");
  return p;
}

}  // namespace redi
