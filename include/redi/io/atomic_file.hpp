// redi/io/atomic_file.hpp — replacing a file so that a reader, a crash or a `kill -9` never
// leaves a partial one (docs/crash_safety.md):
//
//   1. the bytes go to a temporary file next to the target, named
//        .<target name>.redi-tmp.<writer pid>.<n>
//      (same directory, so the rename cannot cross file systems; the name is recognisable, so a
//      killed writer's leftovers can be found and removed: remove_stale_temp_files);
//   2. commit() flushes the stdio buffer, fsync()s the temporary (the data is on disk before the
//      name points at it), closes it, rename()s it over the target (atomic on POSIX: a reader
//      sees the old file or the new one, never a mix) and fsync()s the directory (the rename
//      itself survives a power cut);
//   3. without commit() (an exception, an early return) the destructor removes the temporary.
//
// Every step is checked; a failure is a redi::Error naming the target file (and the temporary).
// Every redi writer (safetensors, npz, PNG, checkpoints, kept checkpoint copies, JSON reports)
// goes through AtomicFile, write_file_atomic or copy_file_atomic.
// A process killed between 1 and 2 leaves only its temporary (the target is the old file or
// absent): remove_stale_temp_files(dir) deletes those whose writer is no longer alive; the
// trainer calls it on its output directory at the start of every run/resume.
#pragma once
#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "redi/core/error.hpp"
#include "redi/io/common.hpp"

#if defined(__unix__) || defined(__APPLE__)
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>
#define REDI_ATOMIC_FILE_POSIX 1
#else
#define REDI_ATOMIC_FILE_POSIX 0
#endif

namespace redi::io {

/// The marker in every temporary file name: ".<target>.redi-tmp.<pid>.<n>".
inline constexpr std::string_view kTempMarker = ".redi-tmp.";

namespace detail {
inline long current_pid() {
#if REDI_ATOMIC_FILE_POSIX
  return long(::getpid());
#else
  return 0;
#endif
}

/// Whether process `pid` exists (POSIX; elsewhere: never, so every temporary counts as stale).
inline bool process_alive(long pid) {
#if REDI_ATOMIC_FILE_POSIX
  if (pid <= 0) return false;
  if (pid == current_pid()) return true;
  return ::kill(pid_t(pid), 0) == 0 || errno == EPERM;
#else
  (void)pid;
  return false;
#endif
}

/// fsync of a directory, so that a rename into it is durable. File systems that cannot sync a
/// directory (EINVAL, ENOTSUP, EROFS on some network/virtual file systems) are not an error.
inline void sync_directory(const std::filesystem::path& dir, const std::filesystem::path& what) {
#if REDI_ATOMIC_FILE_POSIX
  const std::string d = dir.empty() ? std::string(".") : dir.string();
  const int fd = ::open(d.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    REDI_FAIL(what.string(), ": cannot open its directory ", d, " to sync it: ", std::strerror(errno));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0 && err != EINVAL && err != ENOTSUP && err != EROFS)
    REDI_FAIL(what.string(), ": fsync of its directory ", d, " failed: ", std::strerror(err));
#else
  (void)dir, (void)what;
#endif
}
}  // namespace detail

/// If `name` (a file name, no directory) is an AtomicFile temporary, returns true and sets
/// *pid to the writer's process id.
inline bool parse_temp_name(std::string_view name, long* pid = nullptr) {
  if (name.empty() || name[0] != '.') return false;
  const auto m = name.rfind(kTempMarker);
  if (m == std::string_view::npos || m < 2) return false;  // ".<at least one char>.redi-tmp."
  std::string_view rest = name.substr(m + kTempMarker.size());  // "<pid>.<n>"
  const auto dot = rest.find('.');
  if (dot == std::string_view::npos || dot == 0 || dot + 1 >= rest.size()) return false;
  long p = 0;
  unsigned long n = 0;
  const char* b = rest.data();
  auto r1 = std::from_chars(b, b + dot, p);
  auto r2 = std::from_chars(b + dot + 1, b + rest.size(), n);
  if (r1.ec != std::errc() || r1.ptr != b + dot || r2.ec != std::errc() || r2.ptr != b + rest.size()) return false;
  if (pid) *pid = p;
  return true;
}

/// Creates `dir` and its parents; failures as redi::Error naming it (not std::filesystem_error).
inline void create_directories(const std::filesystem::path& dir) {
  if (dir.empty()) return;
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) REDI_FAIL(dir.string(), ": cannot create the directory: ", ec.message());
  REDI_CHECK(std::filesystem::is_directory(dir, ec), dir.string(), ": exists and is not a directory");
}

/// Writes to a temp file next to the target; commit() syncs it and renames it into place, the
/// destructor removes it otherwise.
class AtomicFile {
public:
  explicit AtomicFile(std::filesystem::path path) : path_(std::move(path)) {
    static std::atomic<unsigned> counter{0};
    REDI_CHECK(!path_.filename().empty(), path_.string(), ": not a file name");
    dir_ = path_.parent_path();
    tmp_ = (dir_.empty() ? std::filesystem::path(".") : dir_) /
           ("." + path_.filename().string() + std::string(kTempMarker) + std::to_string(detail::current_pid()) + "." +
            std::to_string(counter++));
    f_ = std::fopen(tmp_.string().c_str(), "wb");
    if (!f_)
      REDI_FAIL(path_.string(), ": cannot create the temporary file ", tmp_.string(), ": ", std::strerror(errno));
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

  const std::filesystem::path& path() const { return path_; }
  const std::filesystem::path& temp_path() const { return tmp_; }

  void put(const std::byte* p, std::size_t n) {
    REDI_CHECK(f_, path_.string(), ": write after commit");
    if (n && std::fwrite(p, 1, n, f_) != n)
      REDI_FAIL(path_.string(), ": write to ", tmp_.string(), " failed: ", std::strerror(errno));
  }
  void put(std::string_view s) { put(reinterpret_cast<const std::byte*>(s.data()), s.size()); }

  /// Flush + fsync + close the temporary, rename it over the target, fsync the directory.
  void commit() {
    REDI_CHECK(f_ && !committed_, path_.string(), ": commit twice");
    if (std::fflush(f_) != 0 || std::ferror(f_))
      fail_close("flushing");
#if REDI_ATOMIC_FILE_POSIX
    if (::fsync(::fileno(f_)) != 0) fail_close("fsync of");
#endif
    const int rc = std::fclose(f_);
    f_ = nullptr;
    if (rc != 0) REDI_FAIL(path_.string(), ": closing ", tmp_.string(), " failed: ", std::strerror(errno));
    std::error_code ec;
    std::filesystem::rename(tmp_, path_, ec);
    if (ec) REDI_FAIL(path_.string(), ": cannot rename ", tmp_.string(), " into place: ", ec.message());
    committed_ = true;  // the temporary is the target now: nothing to remove
    detail::sync_directory(dir_, path_);
  }

private:
  [[noreturn]] void fail_close(const char* what) {
    const int err = errno;
    std::fclose(f_);
    f_ = nullptr;
    REDI_FAIL(path_.string(), ": ", what, " ", tmp_.string(), " failed: ", std::strerror(err));
  }
  std::filesystem::path path_, dir_, tmp_;
  std::FILE* f_ = nullptr;
  bool committed_ = false;
};

/// Replaces `path` with `bytes` atomically (eval.json, reports).
inline void write_file_atomic(const std::filesystem::path& path, std::string_view bytes) {
  AtomicFile f(path);
  f.put(bytes);
  f.commit();
}

/// Copies `src` to `dst` atomically: `dst` is the old file (or absent) or a complete copy, never
/// a partial one (std::filesystem::copy_file writes in place). Read errors name `src`.
inline void copy_file_atomic(const std::filesystem::path& src, const std::filesystem::path& dst) {
  std::FILE* in = std::fopen(src.string().c_str(), "rb");
  if (!in) REDI_FAIL(src.string(), ": cannot open it to copy to ", dst.string(), ": ", std::strerror(errno));
  struct Closer {
    std::FILE* f;
    ~Closer() { std::fclose(f); }
  } closer{in};
  AtomicFile out(dst);
  std::vector<std::byte> buf(std::size_t(1) << 22);
  for (;;) {
    const std::size_t n = std::fread(buf.data(), 1, buf.size(), in);
    if (n) out.put(buf.data(), n);
    if (n < buf.size()) {
      if (std::ferror(in)) REDI_FAIL(src.string(), ": read error while copying to ", dst.string());
      break;
    }
  }
  out.commit();
}

/// Removes the AtomicFile temporaries under `dir` (and its subdirectories down to `max_depth`
/// levels) whose writer process is gone: what a killed or crashed writer leaves. Temporaries of
/// live processes (another writer at work) are kept. Symbolic links are not followed. Returns
/// the removed paths. Writers on other machines sharing the directory are not detected: the
/// cleanup assumes one machine writes an output directory.
inline std::vector<std::filesystem::path> remove_stale_temp_files(const std::filesystem::path& dir, int max_depth = 2) {
  namespace fs = std::filesystem;
  std::vector<fs::path> removed;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return removed;
  fs::recursive_directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec), end;
  if (ec) REDI_FAIL(dir.string(), ": cannot list it to remove stale temporary files: ", ec.message());
  for (; it != end; it.increment(ec)) {
    if (ec) REDI_FAIL(dir.string(), ": listing it failed: ", ec.message());
    if (it.depth() >= max_depth) it.disable_recursion_pending();
    const fs::path p = it->path();
    long pid = 0;
    if (!parse_temp_name(p.filename().string(), &pid)) continue;
    std::error_code ec2;
    if (!it->is_regular_file(ec2) || it->is_symlink(ec2)) continue;
    if (detail::process_alive(pid)) continue;
    fs::remove(p, ec2);
    if (ec2) REDI_FAIL(p.string(), ": cannot remove this stale temporary file: ", ec2.message());
    removed.push_back(p);
  }
  return removed;
}

}  // namespace redi::io
