// redi/train/metrics_log.hpp — what a training run reports: a one-line JSON object builder,
// an append-only JSONL log (one object per logged step) and the console progress line's
// duration format. (The Frechet distance moved to redi/eval/frechet.hpp.)
#pragma once
#include <cerrno>
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
/// the file is readable (and complete up to the last line) while the run goes on.
class JsonlLog {
public:
  JsonlLog() = default;
  /// Opens `path`; `append` keeps existing lines (a resumed run), otherwise the file is truncated.
  JsonlLog(const std::filesystem::path& path, bool append) { open(path, append); }
  ~JsonlLog() { close(); }
  JsonlLog(const JsonlLog&) = delete;
  JsonlLog& operator=(const JsonlLog&) = delete;

  void open(const std::filesystem::path& path, bool append) {
    close();
    path_ = path;
    f_ = std::fopen(path.string().c_str(), append ? "ab" : "wb");
    REDI_CHECK(f_ != nullptr, path.string(), ": cannot open the metrics log: ", std::strerror(errno));
  }
  bool is_open() const { return f_ != nullptr; }
  const std::filesystem::path& path() const { return path_; }
  void write(const JsonObject& o) {
    if (!f_) return;
    const std::string line = o.str() + "\n";
    if (std::fwrite(line.data(), 1, line.size(), f_) != line.size() || std::fflush(f_) != 0)
      REDI_FAIL(path_.string(), ": write to the metrics log failed: ", std::strerror(errno));
  }
  void close() {
    if (f_) std::fclose(f_);
    f_ = nullptr;
  }

private:
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
