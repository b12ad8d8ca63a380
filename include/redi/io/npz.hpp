// redi/io/npz.hpp — NumPy .npz archives: a ZIP of uncompressed (stored) .npy files, the format
// of numpy.savez and of the ADM evaluator's sample batches (arr_0 uint8 NHWC, arr_1 labels).
//
//   redi::io::NpzWriter w;
//   w.add("arr_0", {1000, 32, 32, 1}, pixels.data());   // uint8 -> '|u1'
//   w.add("arr_1", {1000}, labels.data());              // int32 -> '<i4'
//   w.write("samples.npz");                              // atomic (temp file + rename)
//   auto f = redi::io::NpzFile::open("samples.npz");
//   std::vector<float> x = f.read<float>("arr_0");       // any numeric dtype, converted
//
// .npy: magic "\x93NUMPY", version 1.0 (2.0 when the header exceeds 65535 bytes), a Python
// dict literal {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } padded with spaces
// and a newline so the data starts at a multiple of 64 bytes, then the C-order data.
// ZIP: stored entries with CRC-32, a fixed DOS timestamp (1980-01-01, so output is
// reproducible), zip64 records when a size or offset needs them (sample sets over 4 GiB).
// Reading accepts numpy.savez output (zip64 extras included); numpy.savez_compressed (deflate)
// is rejected with a message saying so. Little-endian hosts only.
//
// Hostile files (docs/security.md): the zip layer checks offsets, CRC-32s and duplicate names;
// the .npy header is parsed as numpy parses it (exact keys, a real tuple, numpy's 10000-byte
// header limit) and its shape product and byte count in checked arithmetic; errors name the
// file and the array.
#pragma once
#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "redi/core/checked.hpp"
#include "redi/core/error.hpp"
#include "redi/io/atomic_file.hpp"
#include "redi/io/zip.hpp"

namespace redi::io {

static_assert(std::endian::native == std::endian::little, "redi/io/npz.hpp assumes a little-endian host");

/// The NumPy dtype string of an element type.
template <class T> struct npy_descr;
template <> struct npy_descr<std::uint8_t> { static constexpr const char* value = "|u1"; };
template <> struct npy_descr<std::int8_t> { static constexpr const char* value = "|i1"; };
template <> struct npy_descr<std::int32_t> { static constexpr const char* value = "<i4"; };
template <> struct npy_descr<std::uint32_t> { static constexpr const char* value = "<u4"; };
template <> struct npy_descr<std::int64_t> { static constexpr const char* value = "<i8"; };
template <> struct npy_descr<float> { static constexpr const char* value = "<f4"; };
template <> struct npy_descr<double> { static constexpr const char* value = "<f8"; };
template <class T>
concept NpyElement = requires { npy_descr<T>::value; };

/// The .npy header (magic, version, length, dict, padding) for `descr` and `shape`.
inline std::string npy_header(std::string_view descr, std::span<const std::int64_t> shape) {
  std::string dict = "{'descr': '" + std::string(descr) + "', 'fortran_order': False, 'shape': (";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    REDI_CHECK(shape[i] >= 0, "npy_header: negative extent ", shape[i]);
    dict += std::to_string(shape[i]);
    dict += (shape.size() == 1 || i + 1 < shape.size()) ? "," : "";
    if (i + 1 < shape.size()) dict += ' ';
  }
  dict += "), }";
  const bool v2 = dict.size() + 1 + 10 > 65535;
  const std::size_t prefix = v2 ? 12 : 10;
  std::size_t total = prefix + dict.size() + 1;
  total = (total + 63) / 64 * 64;
  dict.append(total - prefix - dict.size() - 1, ' ');
  dict += '\n';
  std::string h = "\x93NUMPY";
  h += char(v2 ? 2 : 1);
  h += char(0);
  const std::size_t n = dict.size();
  for (int i = 0; i < (v2 ? 4 : 2); ++i) h += char((n >> (8 * i)) & 0xff);
  return h + dict;
}

/// Collects arrays (NOT copied: the data must stay alive until write()) and writes an .npz.
class NpzWriter {
public:
  template <NpyElement T>
  void add(std::string name, std::vector<std::int64_t> shape, const T* data) {
    REDI_CHECK(!name.empty(), "NpzWriter: empty array name");
    for (const auto& e : entries_) REDI_CHECK(e.name != name, "NpzWriter: array '", name, "' added twice");
    std::int64_t n = 1;
    for (auto d : shape) n *= d;
    Entry e;
    e.name = std::move(name);
    e.header = npy_header(npy_descr<T>::value, shape);
    e.data = reinterpret_cast<const std::byte*>(data);
    e.bytes = std::uint64_t(n) * sizeof(T);
    REDI_CHECK(data || e.bytes == 0, "NpzWriter: array '", e.name, "' has no data");
    entries_.push_back(std::move(e));
  }
  /// Bytes of an array produced on demand: fill(first, n, dst) writes bytes [first, first + n)
  /// of the array's C-order data into dst. Called in order over the whole array twice (once
  /// for the CRC, once to write), so arrays larger than memory (50,000 samples at 256 px are
  /// 9.8 GB) stream from their source.
  using Fill = std::function<void(std::uint64_t first, std::size_t n, std::byte* dst)>;
  template <NpyElement T>
  void add_generated(std::string name, std::vector<std::int64_t> shape, Fill fill) {
    REDI_CHECK(fill, "NpzWriter: array '", name, "' has no fill function");
    static const T dummy{};
    add<T>(std::move(name), shape, &dummy);
    entries_.back().data = nullptr;
    entries_.back().fill = std::move(fill);
  }
  /// Zip64 records for every entry even when not needed (tests of the zip64 path).
  void force_zip64(bool on) { force_zip64_ = on; }

  void write(const std::filesystem::path& path) const {
    AtomicFile f(path);
    std::uint64_t off = 0;
    std::vector<std::uint8_t> cd;
    auto put = [&](const std::vector<std::uint8_t>& b) {
      f.put(reinterpret_cast<const std::byte*>(b.data()), b.size());
      off += b.size();
    };
    for (const auto& e : entries_) {
      const std::string fname = e.name + ".npy";
      const std::uint64_t size = e.header.size() + e.bytes, local = off;
      // CRC over header + data.
      std::uint32_t crc = zip::crc32_update(0, reinterpret_cast<const std::byte*>(e.header.data()), e.header.size());
      std::vector<std::byte> block;
      auto each_block = [&](auto&& f) {  // generated data in blocks of at most 64 MiB
        block.resize(std::size_t(std::min<std::uint64_t>(e.bytes, std::uint64_t(64) << 20)));
        for (std::uint64_t first = 0; first < e.bytes; first += block.size()) {
          const std::size_t n = std::size_t(std::min<std::uint64_t>(block.size(), e.bytes - first));
          e.fill(first, n, block.data());
          f(block.data(), n);
        }
      };
      if (e.fill)
        each_block([&](const std::byte* b, std::size_t n) { crc = zip::crc32_update(crc, b, n); });
      else
        crc = zip::crc32_update(crc, e.data, std::size_t(e.bytes));
      const bool z64 = force_zip64_ || size >= 0xffffffffull || local >= 0xffffffffull;
      std::vector<std::uint8_t> lh;
      le(lh, 0x04034b50u, 4);
      le(lh, z64 ? 45 : 20, 2);               // version needed
      le(lh, 0, 2); le(lh, 0, 2);             // flags, method (stored)
      le(lh, 0, 2); le(lh, 0x21, 2);          // time 00:00, date 1980-01-01
      le(lh, crc, 4);
      le(lh, z64 ? 0xffffffffu : size, 4);    // compressed size
      le(lh, z64 ? 0xffffffffu : size, 4);    // uncompressed size
      le(lh, fname.size(), 2);
      le(lh, z64 ? 20 : 0, 2);
      lh.insert(lh.end(), fname.begin(), fname.end());
      if (z64) { le(lh, 1, 2); le(lh, 16, 2); le(lh, size, 8); le(lh, size, 8); }
      put(lh);
      f.put(reinterpret_cast<const std::byte*>(e.header.data()), e.header.size());
      if (e.fill)
        each_block([&](const std::byte* b, std::size_t n) { f.put(b, n); });
      else
        f.put(e.data, std::size_t(e.bytes));
      off += size;
      // central directory record
      const bool off64 = force_zip64_ || local >= 0xffffffffull;
      le(cd, 0x02014b50u, 4);
      le(cd, z64 ? 45 : 20, 2); le(cd, z64 ? 45 : 20, 2);
      le(cd, 0, 2); le(cd, 0, 2); le(cd, 0, 2); le(cd, 0x21, 2);
      le(cd, crc, 4);
      le(cd, z64 ? 0xffffffffu : size, 4);
      le(cd, z64 ? 0xffffffffu : size, 4);
      le(cd, fname.size(), 2);
      le(cd, z64 ? 4 + 16 + (off64 ? 8 : 0) : 0, 2);
      le(cd, 0, 2); le(cd, 0, 2); le(cd, 0, 2);  // comment, disk, internal attributes
      le(cd, 0x01800000u, 4);                    // external attributes (-rw-------)
      le(cd, off64 ? 0xffffffffu : local, 4);
      cd.insert(cd.end(), fname.begin(), fname.end());
      if (z64) {
        le(cd, 1, 2); le(cd, 16 + (off64 ? 8 : 0), 2);
        le(cd, size, 8); le(cd, size, 8);
        if (off64) le(cd, local, 8);
      }
    }
    const std::uint64_t cd_off = off, cd_size = cd.size(), n = entries_.size();
    put(cd);
    const bool z64 = force_zip64_ || cd_off >= 0xffffffffull || n >= 0xffff;
    std::vector<std::uint8_t> end;
    if (z64) {
      const std::uint64_t rec = off;
      le(end, 0x06064b50u, 4); le(end, 44, 8); le(end, 45, 2); le(end, 45, 2);
      le(end, 0, 4); le(end, 0, 4); le(end, n, 8); le(end, n, 8); le(end, cd_size, 8); le(end, cd_off, 8);
      le(end, 0x07064b50u, 4); le(end, 0, 4); le(end, rec, 8); le(end, 1, 4);
    }
    le(end, 0x06054b50u, 4); le(end, 0, 2); le(end, 0, 2);
    le(end, z64 ? 0xffff : n, 2); le(end, z64 ? 0xffff : n, 2);
    le(end, z64 ? 0xffffffffu : cd_size, 4); le(end, z64 ? 0xffffffffu : cd_off, 4);
    le(end, 0, 2);
    put(end);
    f.commit();
  }

private:
  struct Entry {
    std::string name, header;
    const std::byte* data = nullptr;
    std::uint64_t bytes = 0;
    Fill fill;  // set: the data is generated (add_generated)
  };
  std::vector<Entry> entries_;
  bool force_zip64_ = false;

  static void le(std::vector<std::uint8_t>& o, std::uint64_t v, int n) {
    for (int i = 0; i < n; ++i) o.push_back(std::uint8_t((v >> (8 * i)) & 0xff));
  }
};

/// Writes a sample batch in the ADM evaluator's format (openai/guided-diffusion
/// evaluations/evaluator.py): arr_0 = uint8 NHWC [n, h, w, c] (see io::to_uint8_nhwc in
/// redi/io/image_write.hpp for the pixel conversion), arr_1 = int64 labels [n] (when given).
inline void save_sample_npz(const std::filesystem::path& path, const std::uint8_t* nhwc, int n, int h, int w, int c,
                            const int* labels = nullptr) {
  REDI_CHECK(n > 0 && h > 0 && w > 0 && c > 0, path.string(), ": bad sample batch shape [", n, ", ", h, ", ", w, ", ",
             c, "]");
  NpzWriter z;
  z.add("arr_0", {n, h, w, c}, nhwc);
  std::vector<std::int64_t> lab;
  if (labels) {
    lab.assign(labels, labels + n);
    z.add("arr_1", {n}, lab.data());
  }
  z.write(path);
}

/// An .npy array's header fields.
struct NpyInfo {
  std::string descr;                 ///< e.g. "|u1", "<f4"
  std::vector<std::int64_t> shape;   ///< validated: extents >= 0, product <= kMaxTensorElements
  bool fortran_order = false;
  std::uint64_t data_offset = 0;     ///< within the .npy bytes (<= the entry's size)
  std::int64_t numel() const {
    std::int64_t n = 1;
    for (auto d : shape)
      if (d < 0 || !checked::mul(n, d, n)) return -1;
    return n;
  }
};

/// Longest .npy header dict read (numpy's own default `max_header_size`, numpy >= 1.24).
inline constexpr std::size_t kMaxNpyHeader = 10000;

namespace detail {

/// Parses the header dict as numpy does (numpy/lib/format.py, _read_array_header): a Python
/// dict literal with exactly the keys 'descr' (a string), 'fortran_order' (True/False) and
/// 'shape' (a tuple of non-negative ints; "(3)" is an int, not a tuple), each once, then only
/// whitespace. Structured dtypes (a list as 'descr') are not supported.
class NpyDictParser {
public:
  NpyDictParser(std::string_view h, const std::string& what) : h_(h), what_(what) {}
  NpyInfo parse() {
    NpyInfo info;
    bool have_descr = false, have_fo = false, have_shape = false;
    ws();
    expect('{');
    ws();
    while (!peek('}')) {
      const std::string key = str("key");
      ws();
      expect(':');
      ws();
      auto once = [&](bool& seen) {
        if (seen) fail("key '" + key + "' occurs twice");
        seen = true;
      };
      if (key == "descr") {
        once(have_descr);
        if (peek('[')) fail("'descr' is a list: structured dtypes are not supported");
        info.descr = str("'descr'");
      } else if (key == "fortran_order") {
        once(have_fo);
        if (word("True")) info.fortran_order = true;
        else if (word("False")) info.fortran_order = false;
        else fail("'fortran_order' is not True or False");
      } else if (key == "shape") {
        once(have_shape);
        info.shape = tuple();
      } else {
        fail("unexpected key '" + key.substr(0, 64) + "' (numpy writes only descr, fortran_order, shape)");
      }
      ws();
      if (peek(',')) { ++p_; ws(); continue; }
      if (!peek('}')) fail("expected ',' or '}' in the header dict");
    }
    ++p_;
    ws();
    if (p_ != h_.size()) fail("characters after the header dict");
    if (!have_descr || !have_fo || !have_shape)
      fail("header lacks " + std::string(!have_descr ? "'descr'" : !have_fo ? "'fortran_order'" : "'shape'"));
    checked::numel(info.shape, kMaxTensorElements, what_, ": 'shape' ", shape_str(info.shape));
    return info;
  }

private:
  std::string_view h_;
  const std::string& what_;
  std::size_t p_ = 0;

  [[noreturn]] void fail(const std::string& m) const {
    REDI_FAIL(what_, ": not a valid .npy array: ", m, " (header byte ", p_, ")");
  }
  void ws() { while (p_ < h_.size() && (h_[p_] == ' ' || h_[p_] == '\t' || h_[p_] == '\n' || h_[p_] == '\r')) ++p_; }
  bool peek(char c) const { return p_ < h_.size() && h_[p_] == c; }
  void expect(char c) {
    if (!peek(c)) fail(std::string("expected '") + c + "'");
    ++p_;
  }
  bool word(std::string_view w) {
    if (h_.substr(p_, w.size()) != w) return false;
    p_ += w.size();
    return true;
  }
  std::string str(const char* what) {
    if (!peek('\'') && !peek('"')) fail(std::string(what) + " is not a string");
    const char q = h_[p_++];
    const std::size_t s = p_;
    while (p_ < h_.size() && h_[p_] != q) {
      if (h_[p_] == '\\' || h_[p_] == '\n') fail(std::string("escape or newline in ") + what);
      ++p_;
    }
    if (p_ >= h_.size()) fail(std::string("unterminated ") + what);
    return std::string(h_.substr(s, p_++ - s));
  }
  std::vector<std::int64_t> tuple() {
    expect('(');
    std::vector<std::int64_t> v;
    bool trailing_comma = false;
    ws();
    while (!peek(')')) {
      if (p_ >= h_.size() || h_[p_] < '0' || h_[p_] > '9') fail("'shape' holds a non-integer");
      if (h_[p_] == '0' && p_ + 1 < h_.size() && h_[p_ + 1] >= '0' && h_[p_ + 1] <= '9')
        fail("'shape' holds an integer with a leading zero");
      std::int64_t x = 0;
      while (p_ < h_.size() && h_[p_] >= '0' && h_[p_] <= '9')
        if (!checked::mul<std::int64_t>(x, 10, x) || !checked::add<std::int64_t>(x, h_[p_++] - '0', x))
          fail("'shape' extent does not fit 64 bits");
      if (peek('L')) ++p_;  // Python 2 long
      if (v.size() >= 64) fail("'shape' has more than 64 dimensions");
      v.push_back(x);
      ws();
      trailing_comma = peek(',');
      if (trailing_comma) { ++p_; ws(); continue; }
      if (!peek(')')) fail("expected ',' or ')' in 'shape'");
    }
    ++p_;
    if (v.size() == 1 && !trailing_comma) fail("'shape' is (n) — an int, not a tuple");
    return v;
  }
};

/// Parses a .npy header; `what` names the array in errors.
inline NpyInfo parse_npy_header(std::span<const std::byte> b, const std::string& what) {
  auto fail = [&](const std::string& m) -> NpyInfo { REDI_FAIL(what, ": not a valid .npy array: ", m); };
  if (b.size() < 10 || std::memcmp(b.data(), "\x93NUMPY", 6) != 0) return fail("bad magic");
  const int major = int(b[6]), minor = int(b[7]);
  if (major < 1 || major > 3 || minor != 0)
    return fail("unsupported version " + std::to_string(major) + "." + std::to_string(minor));
  const std::size_t lsize = major == 1 ? 2 : 4;
  if (b.size() < 8 + lsize) return fail("truncated header");
  std::size_t hl = 0;
  for (std::size_t i = 0; i < lsize; ++i) hl |= std::size_t(b[8 + i]) << (8 * i);
  if (hl > kMaxNpyHeader)
    return fail("header of " + std::to_string(hl) + " bytes is longer than numpy's limit of " +
                std::to_string(kMaxNpyHeader));
  if (hl > b.size() - 8 - lsize) return fail("header runs past the end");
  const std::string_view h(reinterpret_cast<const char*>(b.data()) + 8 + lsize, hl);
  NpyInfo info = NpyDictParser(h, what).parse();
  info.data_offset = 8 + lsize + hl;
  return info;
}

/// Bytes per element of a little-endian (or byte-order-free) descr redi reads; 0 otherwise.
inline std::size_t npy_item_size(const std::string& d) {
  static const std::pair<const char*, std::size_t> known[] = {
      {"u1", 1}, {"i1", 1}, {"b1", 1}, {"i2", 2}, {"u2", 2}, {"i4", 4},
      {"u4", 4}, {"i8", 8}, {"u8", 8}, {"f4", 4}, {"f8", 8}};
  if (d.size() != 3 || (d[0] != '<' && d[0] != '|' && d[0] != '=')) return 0;
  for (const auto& [n, s] : known)
    if (d.compare(1, 2, n) == 0) return s;
  return 0;
}

template <class T>
void npy_convert(const std::byte* src, const std::string& d, std::size_t n, T* out, const std::string& what) {
  const std::string body = d.size() >= 2 ? d.substr(1) : d;
  REDI_CHECK(d.size() >= 3 && (d[0] == '<' || d[0] == '|' || (d[0] == '=' )), what, ": dtype '", d,
             "' is not little-endian (only little-endian arrays are read)");
  auto conv = [&](auto tag) {
    using S = decltype(tag);
    if constexpr (std::is_integral_v<T> && std::is_floating_point_v<S>) {
      REDI_FAIL(what, ": dtype '", d, "' holds floating-point values, cannot read them as integers");
    }
    for (std::size_t i = 0; i < n; ++i) {
      S v;
      std::memcpy(&v, src + i * sizeof(S), sizeof(S));
      out[i] = T(v);
    }
  };
  if (body == "u1") conv(std::uint8_t{});
  else if (body == "i1") conv(std::int8_t{});
  else if (body == "b1") conv(std::uint8_t{});
  else if (body == "i2") conv(std::int16_t{});
  else if (body == "u2") conv(std::uint16_t{});
  else if (body == "i4") conv(std::int32_t{});
  else if (body == "u4") conv(std::uint32_t{});
  else if (body == "i8") conv(std::int64_t{});
  else if (body == "u8") conv(std::uint64_t{});
  else if (body == "f4") conv(float{});
  else if (body == "f8") conv(double{});
  else REDI_FAIL(what, ": unsupported dtype '", d, "' (u1, i1, b1, i2, u2, i4, u4, i8, u8, f4, f8 are read)");
}
}  // namespace detail

/// A read-only .npz (memory-mapped). Arrays are named without the ".npy" suffix.
class NpzFile {
public:
  static NpzFile open(const std::filesystem::path& path) { return NpzFile(FileImage::open(path)); }
  static NpzFile from_bytes(std::vector<std::byte> bytes, std::string label) {
    return NpzFile(FileImage::from_bytes(std::move(bytes), std::move(label)));
  }
  const std::string& label() const { return zip_.label(); }
  std::vector<std::string> names() const {
    std::vector<std::string> v;
    for (const auto& [n, i] : info_) v.push_back(n);
    return v;
  }
  bool contains(std::string_view name) const { return info_.find(std::string(name)) != info_.end(); }
  const NpyInfo& info(std::string_view name) const {
    auto it = info_.find(std::string(name));
    REDI_CHECK(it != info_.end(), label(), ": no array named '", std::string(name), "' (arrays: ",
               join_names(names()), ")");
    return it->second.first;
  }
  /// The raw little-endian data bytes of an array.
  std::span<const std::byte> bytes(std::string_view name) const {
    const NpyInfo& i = info(name);
    const auto all = zip_.bytes(*info_.at(std::string(name)).second);
    return all.subspan(std::size_t(i.data_offset));
  }
  /// The whole array, converted to T (C order; Fortran-order arrays are rejected).
  template <class T>
  std::vector<T> read(std::string_view name) const {
    const NpyInfo& i = info(name);
    const std::string what = label() + ": array '" + std::string(name) + "'";
    REDI_CHECK(!i.fortran_order, what, ": Fortran-order arrays are not supported (save a C-contiguous array)");
    const auto b = bytes(name);
    const std::size_t es = detail::npy_item_size(i.descr);
    REDI_CHECK(es > 0, what, ": unsupported dtype '", i.descr,
               "' (little-endian u1, i1, b1, i2, u2, i4, u4, i8, u8, f4, f8 are read)");
    const std::size_t n = std::size_t(i.numel());  // validated at open: <= kMaxTensorElements
    std::uint64_t need = 0;
    REDI_CHECK(checked::mul<std::uint64_t>(n, es, need) && b.size() == need, what, ": ", b.size(),
               " data bytes for shape ", shape_str(i.shape), " of ", i.descr, " (truncated?)");
    auto out = allocate_elements<T>(n, what);
    detail::npy_convert<T>(b.data(), i.descr, n, out.data(), what);
    return out;
  }

private:
  explicit NpzFile(std::shared_ptr<const FileImage> img) : zip_(std::move(img)) {
    for (const auto& e : zip_.entries()) {
      if (!e.name.ends_with(".npy")) continue;
      REDI_CHECK(e.method == 0, label(), ": array '", e.name, "' is compressed (method ", e.method,
                 "); only uncompressed archives are read — save with numpy.savez, not savez_compressed");
      const std::string name = e.name.substr(0, e.name.size() - 4);
      // Entry names are unique (zip::Archive rejects repeats), so names are too.
      info_.emplace(name, std::make_pair(detail::parse_npy_header(zip_.bytes(e), label() + ": array '" + name + "'"),
                                         zip_.find(e.name)));
    }
  }
  zip::Archive zip_;
  std::map<std::string, std::pair<NpyInfo, const zip::Entry*>> info_;
};

/// A sample batch in the ADM evaluator's format (see save_sample_npz).
struct SampleBatch {
  std::vector<std::uint8_t> pixels;  ///< arr_0, uint8 NHWC
  std::vector<int> labels;           ///< arr_1 (empty when absent or not asked for)
  std::int64_t n = 0;
  int h = 0, w = 0, c = 0;
};

/// Reads arr_0 (uint8 [N, H, W, C]) and, when `with_labels` and present, arr_1 (integer [N]).
/// Anything else (another dtype or rank, labels of the wrong length) is a redi::Error naming
/// the file and the array.
inline SampleBatch load_sample_npz(const std::filesystem::path& path, bool with_labels = true) {
  const NpzFile z = NpzFile::open(path);
  const NpyInfo& info = z.info("arr_0");
  REDI_CHECK(info.descr == "|u1" || info.descr == "<u1", path.string(), ": arr_0 has dtype '", info.descr,
             "', expected uint8 images (the ADM sample format)");
  REDI_CHECK(info.shape.size() == 4, path.string(), ": arr_0 has shape ", shape_str(info.shape),
             ", expected [N, H, W, C] (NHWC)");
  SampleBatch b;
  for (std::size_t d = 1; d < 4; ++d)
    REDI_CHECK(info.shape[d] > 0 && info.shape[d] <= 65536, path.string(), ": arr_0 has shape ", shape_str(info.shape),
               ", image extents must be in [1, 65536]");
  b.n = info.shape[0];
  b.h = int(info.shape[1]);
  b.w = int(info.shape[2]);
  b.c = int(info.shape[3]);
  b.pixels = z.read<std::uint8_t>("arr_0");
  if (with_labels && z.contains("arr_1")) {
    const NpyInfo& li = z.info("arr_1");
    REDI_CHECK(li.shape.size() == 1 && li.shape[0] == b.n, path.string(), ": arr_1 (labels) has shape ",
               shape_str(li.shape), ", expected [", b.n, "]");
    const auto l = z.read<std::int64_t>("arr_1");
    b.labels.assign(l.begin(), l.end());
  }
  return b;
}

}  // namespace redi::io
