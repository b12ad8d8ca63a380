// redi/io/json.hpp — a small, strict JSON parser and string escaper (RFC 8259), enough for
// safetensors headers. Errors are redi::Error naming the document and the byte offset.
//
// Strict means: no comments, no trailing commas, no leading zeros, no NaN/Infinity, no raw
// control characters in strings, lone UTF-16 surrogates rejected, duplicate object keys
// rejected, nothing but whitespace after the value, nesting depth <= 128.
// Numbers keep their source text, so 64-bit integers (data offsets) are read exactly.
//
// Hostile documents (docs/security.md): work is linear in the text (the duplicate-key check
// hashes each object's keys once), and memory is bounded by json::Limits: at most max_values
// values (each ~90 bytes, whatever the text spends on it) and max_depth nesting levels. The
// parser recurses once per nesting level, so max_depth also bounds the stack.
#pragma once
#include <charconv>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

#include "redi/core/error.hpp"

namespace redi::json {

class Value {
public:
  enum class Kind : std::uint8_t { Null, Bool, Number, String, Array, Object };

  Kind kind() const { return kind_; }
  bool is_null() const { return kind_ == Kind::Null; }
  bool is_bool() const { return kind_ == Kind::Bool; }
  bool is_number() const { return kind_ == Kind::Number; }
  bool is_string() const { return kind_ == Kind::String; }
  bool is_array() const { return kind_ == Kind::Array; }
  bool is_object() const { return kind_ == Kind::Object; }

  bool as_bool() const { return b_; }
  /// String contents (decoded) for strings, source text for numbers.
  const std::string& str() const { return s_; }
  const std::vector<Value>& array() const { return arr_; }
  /// Members in document order.
  const std::vector<std::pair<std::string, Value>>& object() const { return obj_; }

  /// Member lookup on an object; nullptr when absent (or when this is not an object).
  const Value* find(std::string_view key) const {
    for (const auto& kv : obj_)
      if (kv.first == key) return &kv.second;
    return nullptr;
  }
  /// True when this is a number written as an integer (no fraction/exponent) that fits.
  bool is_int64() const { std::int64_t v; return int64(v); }
  bool int64(std::int64_t& out) const {
    if (kind_ != Kind::Number) return false;
    auto r = std::from_chars(s_.data(), s_.data() + s_.size(), out);
    return r.ec == std::errc() && r.ptr == s_.data() + s_.size();
  }
  double as_double() const { return std::strtod(s_.c_str(), nullptr); }

  static const char* kind_name(Kind k) {
    switch (k) {
      case Kind::Null: return "null";
      case Kind::Bool: return "boolean";
      case Kind::Number: return "number";
      case Kind::String: return "string";
      case Kind::Array: return "array";
      case Kind::Object: return "object";
    }
    return "?";
  }
  const char* kind_name() const { return kind_name(kind_); }

private:
  friend class Parser;
  Kind kind_ = Kind::Null;
  bool b_ = false;
  std::string s_;
  std::vector<Value> arr_;
  std::vector<std::pair<std::string, Value>> obj_;
};

/// What one document may cost. Defaults hold a safetensors header of ~200k tensors.
struct Limits {
  std::size_t max_depth = 128;          ///< nesting levels of arrays/objects
  std::size_t max_values = 1u << 21;    ///< values in the document (scalars and containers)
};

class Parser {
public:
  /// `what` names the document in errors (e.g. "model.safetensors header"); `base` is added to
  /// offsets so that they are file offsets.
  Parser(std::string_view text, std::string what, std::size_t base, Limits limits = {})
      : t_(text), what_(std::move(what)), base_(base), lim_(limits) {}

  Value parse_document() {
    ws();
    Value v = value(0);
    ws();
    if (p_ != t_.size()) fail("unexpected '", printable(t_[p_]), "' after the JSON value");
    return v;
  }

private:
  std::string_view t_;
  std::string what_;
  std::size_t base_;
  Limits lim_;
  std::size_t p_ = 0, values_ = 0;

  static std::string printable(char c) {
    auto u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u < 0x7f) return std::string(1, c);
    const char* hex = "0123456789abcdef";
    return std::string("\\x") + hex[u >> 4] + hex[u & 15];
  }
  template <class... A>
  [[noreturn]] void fail(A&&... a) const {
    REDI_FAIL(what_, ": invalid JSON at byte ", base_ + p_, ": ", std::forward<A>(a)...);
  }
  void ws() {
    while (p_ < t_.size() &&
           (t_[p_] == ' ' || t_[p_] == '\t' || t_[p_] == '\n' || t_[p_] == '\r'))
      ++p_;
  }
  void expect_word(std::string_view w) {
    if (t_.substr(p_, w.size()) != w) fail("expected '", w, "'");
    p_ += w.size();
  }

  /// Throws at the first key that repeats an earlier one of `v` (keys_at: their offsets).
  void check_duplicates(const Value& v, const std::vector<std::size_t>& keys_at) {
    const auto& o = v.obj_;
    auto dup = [&](std::size_t i) {
      p_ = keys_at[i];
      fail("duplicate key \"", o[i].first, "\"");
    };
    if (o.size() <= 8) {  // small objects (the usual case): no hashing
      for (std::size_t i = 1; i < o.size(); ++i)
        for (std::size_t j = 0; j < i; ++j)
          if (o[i].first == o[j].first) dup(i);
      return;
    }
    std::unordered_set<std::string_view> seen;
    seen.reserve(o.size());
    for (std::size_t i = 0; i < o.size(); ++i)
      if (!seen.insert(o[i].first).second) dup(i);
  }

  Value value(std::size_t depth) {
    if (depth > lim_.max_depth) fail("nesting deeper than ", lim_.max_depth);
    if (++values_ > lim_.max_values)
      fail("more than ", lim_.max_values, " values (json::Limits::max_values)");
    if (p_ >= t_.size()) fail("unexpected end of input, expected a value");
    Value v;
    char c = t_[p_];
    if (c == '{') {
      v.kind_ = Value::Kind::Object;
      ++p_;
      ws();
      if (p_ < t_.size() && t_[p_] == '}') { ++p_; return v; }
      std::vector<std::size_t> keys_at;
      for (;;) {
        ws();
        if (p_ >= t_.size() || t_[p_] != '"') fail("expected a string key");
        keys_at.push_back(p_);
        std::string key = string();
        ws();
        if (p_ >= t_.size() || t_[p_] != ':') fail("expected ':' after key \"", key, "\"");
        ++p_;
        ws();
        Value m = value(depth + 1);
        v.obj_.emplace_back(std::move(key), std::move(m));
        ws();
        if (p_ < t_.size() && t_[p_] == ',') { ++p_; continue; }
        if (p_ < t_.size() && t_[p_] == '}') {
          ++p_;
          const std::size_t end = p_;
          check_duplicates(v, keys_at);
          p_ = end;
          return v;
        }
        fail(p_ < t_.size() ? "expected ',' or '}' in object" : "unterminated object");
      }
    }
    if (c == '[') {
      v.kind_ = Value::Kind::Array;
      ++p_;
      ws();
      if (p_ < t_.size() && t_[p_] == ']') { ++p_; return v; }
      for (;;) {
        ws();
        v.arr_.push_back(value(depth + 1));
        ws();
        if (p_ < t_.size() && t_[p_] == ',') { ++p_; continue; }
        if (p_ < t_.size() && t_[p_] == ']') { ++p_; return v; }
        fail(p_ < t_.size() ? "expected ',' or ']' in array" : "unterminated array");
      }
    }
    if (c == '"') {
      v.kind_ = Value::Kind::String;
      v.s_ = string();
      return v;
    }
    if (c == 't') { expect_word("true"); v.kind_ = Value::Kind::Bool; v.b_ = true; return v; }
    if (c == 'f') { expect_word("false"); v.kind_ = Value::Kind::Bool; return v; }
    if (c == 'n') { expect_word("null"); return v; }
    if (c == '-' || (c >= '0' && c <= '9')) {
      v.kind_ = Value::Kind::Number;
      v.s_ = number();
      return v;
    }
    fail("unexpected '", printable(c), "', expected a value");
  }

  static bool digit(char c) { return c >= '0' && c <= '9'; }
  std::string number() {
    std::size_t s = p_;
    if (t_[p_] == '-') ++p_;
    if (p_ >= t_.size() || !digit(t_[p_])) fail("expected a digit");
    if (t_[p_] == '0' && p_ + 1 < t_.size() && digit(t_[p_ + 1])) fail("leading zero in number");
    while (p_ < t_.size() && digit(t_[p_])) ++p_;
    if (p_ < t_.size() && t_[p_] == '.') {
      ++p_;
      if (p_ >= t_.size() || !digit(t_[p_])) fail("expected a digit after '.'");
      while (p_ < t_.size() && digit(t_[p_])) ++p_;
    }
    if (p_ < t_.size() && (t_[p_] == 'e' || t_[p_] == 'E')) {
      ++p_;
      if (p_ < t_.size() && (t_[p_] == '+' || t_[p_] == '-')) ++p_;
      if (p_ >= t_.size() || !digit(t_[p_])) fail("expected a digit in exponent");
      while (p_ < t_.size() && digit(t_[p_])) ++p_;
    }
    return std::string(t_.substr(s, p_ - s));
  }

  unsigned hex4() {
    if (p_ + 4 > t_.size()) fail("truncated \\u escape");
    unsigned v = 0;
    for (int i = 0; i < 4; ++i) {
      char c = t_[p_ + i];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= unsigned(c - '0');
      else if (c >= 'a' && c <= 'f') v |= unsigned(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') v |= unsigned(c - 'A' + 10);
      else fail("bad hex digit '", printable(c), "' in \\u escape");
    }
    p_ += 4;
    return v;
  }
  static void utf8(std::string& o, unsigned cp) {
    if (cp < 0x80) {
      o += char(cp);
    } else if (cp < 0x800) {
      o += char(0xc0 | (cp >> 6));
      o += char(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
      o += char(0xe0 | (cp >> 12));
      o += char(0x80 | ((cp >> 6) & 0x3f));
      o += char(0x80 | (cp & 0x3f));
    } else {
      o += char(0xf0 | (cp >> 18));
      o += char(0x80 | ((cp >> 12) & 0x3f));
      o += char(0x80 | ((cp >> 6) & 0x3f));
      o += char(0x80 | (cp & 0x3f));
    }
  }
  std::string string() {
    ++p_;  // opening quote
    std::string o;
    for (;;) {
      if (p_ >= t_.size()) fail("unterminated string");
      char c = t_[p_];
      if (c == '"') { ++p_; return o; }
      if (static_cast<unsigned char>(c) < 0x20) fail("raw control character in string");
      if (c != '\\') { o += c; ++p_; continue; }
      ++p_;
      if (p_ >= t_.size()) fail("unterminated escape");
      char e = t_[p_++];
      switch (e) {
        case '"': o += '"'; break;
        case '\\': o += '\\'; break;
        case '/': o += '/'; break;
        case 'b': o += '\b'; break;
        case 'f': o += '\f'; break;
        case 'n': o += '\n'; break;
        case 'r': o += '\r'; break;
        case 't': o += '\t'; break;
        case 'u': {
          unsigned cp = hex4();
          if (cp >= 0xdc00 && cp <= 0xdfff) fail("lone low surrogate in \\u escape");
          if (cp >= 0xd800 && cp <= 0xdbff) {
            if (t_.substr(p_, 2) != "\\u") fail("high surrogate not followed by \\u low surrogate");
            p_ += 2;
            unsigned lo = hex4();
            if (lo < 0xdc00 || lo > 0xdfff) fail("high surrogate not followed by a low surrogate");
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
          }
          utf8(o, cp);
          break;
        }
        default: --p_; fail("invalid escape '\\", printable(e), "'");
      }
    }
  }
};

/// Parses one JSON document; `what` names it in error messages, `base` offsets byte positions.
inline Value parse(std::string_view text, std::string what = "JSON", std::size_t base = 0,
                   Limits limits = {}) {
  return Parser(text, std::move(what), base, limits).parse_document();
}

/// Member `key` of object `v` as an integer in [lo, hi] (e.g. a model width read from a
/// checkpoint's JSON): absent, not an integer, or out of range is a redi::Error naming `what`
/// (the document) and the key.
inline std::int64_t int_member(const Value& v, std::string_view key, const std::string& what,
                               std::int64_t lo, std::int64_t hi) {
  const Value* x = v.is_object() ? v.find(key) : nullptr;
  if (!x) REDI_FAIL(what, ": no member '", key, "'");
  std::int64_t i = 0;
  if (!x->int64(i))
    REDI_FAIL(what, ": '", key, "' is ", x->is_number() ? x->str() : std::string("a JSON ") + x->kind_name(),
              ", expected an integer");
  if (i < lo || i > hi) REDI_FAIL(what, ": '", key, "' = ", i, " is outside [", lo, ", ", hi, "]");
  return i;
}

/// `s` as a JSON string literal (quotes included); control characters become \u00XX.
inline std::string quote(std::string_view s) {
  std::string o = "\"";
  for (char c : s) {
    switch (c) {
      case '"': o += "\\\""; break;
      case '\\': o += "\\\\"; break;
      case '\n': o += "\\n"; break;
      case '\r': o += "\\r"; break;
      case '\t': o += "\\t"; break;
      case '\b': o += "\\b"; break;
      case '\f': o += "\\f"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          const char* hex = "0123456789abcdef";
          o += "\\u00";
          o += hex[(c >> 4) & 15];
          o += hex[c & 15];
        } else {
          o += c;
        }
    }
  }
  return o + "\"";
}

}  // namespace redi::json
