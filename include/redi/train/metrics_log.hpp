// redi/train/metrics_log.hpp — what a training run reports: a one-line JSON object builder,
// an append-only JSONL log (one object per logged step) and the console progress line's
// duration format. (The Frechet distance moved to redi/eval/frechet.hpp.)
// A resumed run reopens its log with JsonlLog::open_resumed(path, step): the lines a killed run
// wrote after its last checkpoint (step > the resumed step) and a torn last line are cut off, so
// the log holds every logged step once (docs/crash_safety.md).
#pragma once
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "redi/core/error.hpp"
#include "redi/io/json.hpp"

#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>  // fsync
#define REDI_METRICS_LOG_POSIX 1
#else
#define REDI_METRICS_LOG_POSIX 0
#endif

namespace redi::train {

/// Builds one JSON object on one line: {"step":100,"loss":0.25,...}. Doubles are written with
/// 17 significant digits (they parse back to the same double); NaN and infinities, which JSON
/// cannot hold, are written as null.
class JsonObject {
public:
  JsonObject& add(std::string_view key, double v) {
    if (!std::isfinite(v)) return raw(key, "null");
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    return raw(key, buf);
  }
  JsonObject& add(std::string_view key, float v) { return add(key, double(v)); }
  JsonObject& add(std::string_view key, std::int64_t v) { return raw(key, std::to_string(v)); }
  JsonObject& add(std::string_view key, std::uint64_t v) { return raw(key, std::to_string(v)); }
  JsonObject& add(std::string_view key, int v) { return raw(key, std::to_string(v)); }
  JsonObject& add(std::string_view key, bool v) { return raw(key, v ? "true" : "false"); }
  JsonObject& add(std::string_view key, std::string_view v) { return raw(key, json::quote(std::string(v))); }
  JsonObject& add(std::string_view key, const char* v) { return add(key, std::string_view(v)); }
  JsonObject& add(std::string_view key, const std::string& v) { return add(key, std::string_view(v)); }
  /// A nested object.
  JsonObject& add(std::string_view key, const JsonObject& o) { return raw(key, o.str()); }
  /// A pre-formatted JSON value (array, nested object, ...), inserted verbatim.
  JsonObject& raw(std::string_view key, std::string_view json_value) {
    body_ += body_.empty() ? "" : ",";
    body_ += json::quote(std::string(key));
    body_ += ':';
    body_ += json_value;
    return *this;
  }
  std::string str() const { return "{" + body_ + "}"; }
  bool empty() const { return body_.empty(); }

private:
  std::string body_;
};

/// An append-only JSON-lines file: each write() adds one object and a newline and flushes, so
/// the file is readable (and complete up to the last line) while the run goes on, and a line
/// written survives a kill -9 of the process (it is in the kernel's page cache); sync() makes
/// it survive a power cut too (the trainer syncs before every checkpoint).
class JsonlLog {
public:
  JsonlLog() = default;
  /// Opens `path`; `append` keeps existing lines, otherwise the file is truncated.
  JsonlLog(const std::filesystem::path& path, bool append) { open(path, append); }
  ~JsonlLog() {
    if (f_) std::fclose(f_);
  }
  JsonlLog(const JsonlLog&) = delete;
  JsonlLog& operator=(const JsonlLog&) = delete;

  void open(const std::filesystem::path& path, bool append) {
    close();
    path_ = path;
    f_ = std::fopen(path.string().c_str(), append ? "ab" : "wb");
    REDI_CHECK(f_ != nullptr, path.string(), ": cannot open the metrics log: ", std::strerror(errno));
  }
  /// Opens the log of a run resumed at `step`: cuts the file at its first line whose leading
  /// "step" is greater than `step` (what the interrupted run logged after its checkpoint) or
  /// that is incomplete (no newline: a write cut by a kill), then appends. Returns the number
  /// of bytes cut. A missing file is created.
  std::uintmax_t open_resumed(const std::filesystem::path& path, std::int64_t step) {
    close();
    const std::uintmax_t cut = truncate_after_step(path, step);
    open(path, /*append=*/true);
    return cut;
  }
  /// The byte length of the prefix of the JSONL file `path` that a run resumed at `step` keeps
  /// (see open_resumed), and cuts the file there. Lines that do not start with {"step":<int>
  /// are kept (they are not ours to judge).
  static std::uintmax_t truncate_after_step(const std::filesystem::path& path, std::int64_t step) {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) return 0;
    std::FILE* f = std::fopen(path.string().c_str(), "rb");
    REDI_CHECK(f != nullptr, path.string(), ": cannot open the metrics log to resume it: ", std::strerror(errno));
    std::uintmax_t keep = 0, pos = 0;
    std::string line;
    bool cut = false, eof = false;
    while (!cut && !eof) {
      line.clear();
      int ch = 0;
      while ((ch = std::fgetc(f)) != EOF && ch != '\n') line.push_back(char(ch));
      if (ch == EOF) {
        eof = true;
        if (line.empty()) break;
        cut = true;  // an incomplete last line
        break;
      }
      pos += line.size() + 1;
      std::int64_t s = 0;
      if (leading_step(line, s) && s > step) cut = true;
      else keep = pos;
    }
    const bool read_error = std::ferror(f) != 0;
    std::fclose(f);
    REDI_CHECK(!read_error, path.string(), ": read error in the metrics log");
    const std::uintmax_t size = std::filesystem::file_size(path, ec);
    REDI_CHECK(!ec, path.string(), ": cannot stat the metrics log: ", ec.message());
    if (keep == size) return 0;
    std::filesystem::resize_file(path, keep, ec);
    REDI_CHECK(!ec, path.string(), ": cannot cut the metrics log to step ", step, ": ", ec.message());
    return size - keep;
  }
  bool is_open() const { return f_ != nullptr; }
  const std::filesystem::path& path() const { return path_; }
  void write(const JsonObject& o) {
    if (!f_) return;
    const std::string line = o.str() + "\n";
    if (std::fwrite(line.data(), 1, line.size(), f_) != line.size() || std::fflush(f_) != 0)
      REDI_FAIL(path_.string(), ": write to the metrics log failed: ", std::strerror(errno));
  }
  /// fsync: the lines written so far survive a power cut.
  void sync() {
    if (!f_) return;
#if REDI_METRICS_LOG_POSIX
    if (std::fflush(f_) != 0 || ::fsync(::fileno(f_)) != 0)
      REDI_FAIL(path_.string(), ": fsync of the metrics log failed: ", std::strerror(errno));
#endif
  }
  /// Closes the file; a failure (a deferred write error) is a redi::Error naming it.
  void close() {
    if (!f_) return;
    const int rc = std::fclose(f_);
    f_ = nullptr;
    REDI_CHECK(rc == 0, path_.string(), ": closing the metrics log failed: ", std::strerror(errno));
  }

private:
  /// `line` starts with {"step":<integer> (how the trainer's records start).
  static bool leading_step(const std::string& line, std::int64_t& step) {
    static constexpr std::string_view kPrefix = "{\"step\":";
    if (line.compare(0, kPrefix.size(), kPrefix) != 0) return false;
    const char* b = line.data() + kPrefix.size();
    const char* e = line.data() + line.size();
    const auto r = std::from_chars(b, e, step);
    return r.ec == std::errc() && r.ptr != b && (r.ptr == e || *r.ptr == ',' || *r.ptr == '}');
  }

  std::FILE* f_ = nullptr;
  std::filesystem::path path_;
};

/// "42s", "3m05s", "1h02m03s" (negative or non-finite: "?").
inline std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const auto s = std::int64_t(std::llround(seconds));
  char buf[48];
  if (s < 60) std::snprintf(buf, sizeof buf, "%llds", (long long)s);
  else if (s < 3600) std::snprintf(buf, sizeof buf, "%lldm%02llds", (long long)(s / 60), (long long)(s % 60));
  else
    std::snprintf(buf, sizeof buf, "%lldh%02lldm%02llds", (long long)(s / 3600), (long long)(s / 60 % 60),
                  (long long)(s % 60));
  return buf;
}

}  // namespace redi::train
