// tests/io_test_util.hpp — what the file-reading tests (test_io_*, test_data_*, test_train_*)
// share: per-process temporary directories, writing a file, locating test data, and expecting a
// redi::Error that names the right things.
#pragma once
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "redi/core/error.hpp"

namespace redi::test {

/// "<system temp>/<name>_<pid>", emptied: removed (with any contents) and created again.
inline std::filesystem::path fresh_temp_dir(const std::string& name) {
  const auto p = std::filesystem::temp_directory_path() / (name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  return p;
}

/// A fresh_temp_dir for one test, removed with its contents when this object goes away.
class TempDir {
public:
  explicit TempDir(const std::string& name) : path_(fresh_temp_dir(name)) {}
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& s) const { return path_ / s; }
  std::string str() const { return path_.string(); }
  /// The path of file `name` in this directory, as a string.
  std::string file(const std::string& name) const { return (path_ / name).string(); }

private:
  std::filesystem::path path_;
};

/// A temporary directory for a whole test program, "<system temp>/<name>_<pid>": created on
/// first use (so that listing the tests creates nothing) and removed by gtest when the program's
/// tests are over. Register it at namespace scope: `const auto& kTmp = add_program_temp_dir(..)`.
class ProgramTempDir : public ::testing::Environment {
public:
  explicit ProgramTempDir(const std::string& name)
      : path_(std::filesystem::temp_directory_path() / (name + "_" + std::to_string(::getpid()))) {}
  const std::filesystem::path& path() const {
    if (!made_) made_ = (std::filesystem::create_directories(path_), true);
    return path_;
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }

private:
  std::filesystem::path path_;
  mutable bool made_ = false;
};
inline const ProgramTempDir& add_program_temp_dir(const std::string& name) {
  return *static_cast<ProgramTempDir*>(
      ::testing::AddGlobalTestEnvironment(new ProgramTempDir(name)));
}

/// Writes `bytes` to `p` (binary), replacing the file.
inline void write_file(const std::filesystem::path& p, std::string_view bytes) {
  std::ofstream f(p, std::ios::binary);
  f.write(bytes.data(), std::streamsize(bytes.size()));
}

/// `rel` under the test data directory ($REDI_TEST_DATA, set by ctest; else tests/data).
inline std::filesystem::path test_data_path(const std::string& rel) {
  const char* d = std::getenv("REDI_TEST_DATA");
  return std::filesystem::path(d ? d : "tests/data") / rel;
}

/// The committed fuzz regression inputs tests/data/fuzz/<prefix>* (docs/security.md), sorted.
inline std::vector<std::filesystem::path> fuzz_regression_files(const std::string& prefix) {
  std::vector<std::filesystem::path> v;
  const auto dir = test_data_path("fuzz");
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) return v;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    if (e.path().filename().string().starts_with(prefix)) v.push_back(e.path());
  std::sort(v.begin(), v.end());
  return v;
}

/// Runs f, expecting a redi::Error whose message contains every part.
inline void expect_error(const std::function<void()>& f, std::initializer_list<std::string> parts) {
  try {
    f();
  } catch (const Error& e) {
    const std::string msg = e.what();
    for (const auto& part : parts)
      EXPECT_NE(msg.find(part), std::string::npos) << "message: " << msg << "\nmissing: " << part;
    return;
  }
  ADD_FAILURE() << "expected a redi::Error mentioning " << *parts.begin();
}

}  // namespace redi::test
