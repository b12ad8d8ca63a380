// tests/fuzz/fuzz_common.hpp — what every libFuzzer target shares: the entry point that lets a
// redi::Error through (the contract: a hostile file is a redi::Error) and lets anything else
// (another exception, a sanitizer report, a crash) reach libFuzzer as a finding, and a scratch
// file for readers that take a path.
#pragma once
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "redi/core/error.hpp"

namespace redi::fuzz {

inline std::vector<std::byte> bytes_of(const std::uint8_t* data, std::size_t size) {
  const auto* p = reinterpret_cast<const std::byte*>(data);
  return std::vector<std::byte>(p, p + size);
}

/// A per-process scratch file (in /dev/shm when there is one): `write` replaces its contents.
class ScratchFile {
public:
  explicit ScratchFile(const std::string& suffix) {
    const std::filesystem::path dir =
        std::filesystem::is_directory("/dev/shm") ? std::filesystem::path("/dev/shm")
                                                  : std::filesystem::temp_directory_path();
    path_ = (dir / ("redi_fuzz_" + std::to_string(::getpid()) + suffix)).string();
  }
  ~ScratchFile() { std::remove(path_.c_str()); }
  const std::string& write(const std::uint8_t* data, std::size_t size) {
    std::FILE* f = std::fopen(path_.c_str(), "wb");
    if (!f) __builtin_trap();
    if (size && std::fwrite(data, 1, size, f) != size) __builtin_trap();
    std::fclose(f);
    return path_;
  }
  const std::string& path() const { return path_; }

private:
  std::string path_;
};

}  // namespace redi::fuzz

/// Defines LLVMFuzzerTestOneInput around `body` (a function of (const uint8_t*, size_t)):
/// redi::Error is the expected outcome for bad input; every other exception escapes to
/// libFuzzer (std::terminate -> abort -> reported with the input that caused it).
#define REDI_FUZZ_TARGET(body)                                                        \
  extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) { \
    try {                                                                             \
      body(data, size);                                                               \
    } catch (const ::redi::Error&) {                                                  \
    }                                                                                 \
    return 0;                                                                         \
  }
