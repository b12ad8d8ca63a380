// redi/io/atomic_file.hpp — writing a file so that readers never see a partial one: the bytes go
// to a temporary file next to the target, and commit() flushes (fsync where available) and
// renames it into place; without commit() the destructor removes the temporary. Every redi
// writer (safetensors, npz, PNG) goes through it.
#pragma once
#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>

#include "redi/core/error.hpp"
#include "redi/io/common.hpp"  // REDI_IO_HAVE_MMAP (POSIX: fsync, getpid)

namespace redi::io {

/// Writes to a temp file next to the target; commit() renames it into place, the
/// destructor removes it otherwise.
class AtomicFile {
public:
  explicit AtomicFile(std::filesystem::path path) : path_(std::move(path)) {
    static std::atomic<unsigned> counter{0};
    auto dir = path_.parent_path();
    tmp_ = (dir.empty() ? std::filesystem::path(".") : dir) /
           ("." + path_.filename().string() + ".tmp" + std::to_string(pid()) + "_" +
            std::to_string(counter++));
    f_ = std::fopen(tmp_.string().c_str(), "wb");
    if (!f_)
      REDI_FAIL(path_.string(), ": cannot create temporary file ", tmp_.string(), ": ",
                std::strerror(errno));
  }
  ~AtomicFile() {
    if (f_) std::fclose(f_);
    if (!committed_) {
      std::error_code ec;
      std::filesystem::remove(tmp_, ec);
    }
  }
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  void put(const std::byte* p, std::size_t n) {
    if (n && std::fwrite(p, 1, n, f_) != n)
      REDI_FAIL(path_.string(), ": write to ", tmp_.string(), " failed: ", std::strerror(errno));
  }
  void commit() {
    bool ok = std::fflush(f_) == 0;
#if REDI_IO_HAVE_MMAP
    ok = ok && ::fsync(fileno(f_)) == 0;
#endif
    ok = (std::fclose(f_) == 0) && ok;
    f_ = nullptr;
    if (!ok) REDI_FAIL(path_.string(), ": flushing ", tmp_.string(), " failed: ",
                       std::strerror(errno));
    std::error_code ec;
    std::filesystem::rename(tmp_, path_, ec);
    if (ec) REDI_FAIL(path_.string(), ": cannot rename ", tmp_.string(), " into place: ",
                      ec.message());
    committed_ = true;
  }

private:
  static long pid() {
#if REDI_IO_HAVE_MMAP
    return long(::getpid());
#else
    return 0;
#endif
  }
  std::filesystem::path path_, tmp_;
  std::FILE* f_ = nullptr;
  bool committed_ = false;
};

}  // namespace redi::io
