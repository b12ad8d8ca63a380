// tests/torch_test_writer.hpp — a minimal writer of torch.save-style checkpoints (a ZIP of
// stored entries + a pickle program), so the tests and the fuzz seed generator need no PyTorch.
// Shared by tests/test_io_torch.cpp and tests/fuzz/make_seeds.cpp.
#pragma once
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "redi/core/dtype.hpp"
#include "redi/io/zip.hpp"

namespace redi::test::torchw {

using redi::half;
namespace zip = redi::io::zip;

inline std::string le(std::uint64_t v, int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s += char((v >> (8 * i)) & 0xff);
  return s;
}
inline std::uint32_t crc_of(const std::string& s) {
  return zip::crc32(std::span<const std::byte>(reinterpret_cast<const std::byte*>(s.data()),
                                               s.size()));
}

/// A ZIP writer for stored entries, optionally with zip64 records.
struct ZipWriter {
  struct E { std::string name, data; std::uint16_t method; std::uint32_t crc; std::uint64_t off; };
  std::vector<E> entries;
  void add(std::string name, std::string data, std::uint16_t method = 0, bool bad_crc = false) {
    std::uint32_t c = crc_of(data) ^ (bad_crc ? 1u : 0u);
    entries.push_back({std::move(name), std::move(data), method, c, 0});
  }
  std::string finish(bool zip64 = false) {
    std::string out;
    for (auto& e : entries) {
      e.off = out.size();
      out += le(0x04034b50, 4) + le(20, 2) + le(0, 2) + le(e.method, 2) + le(0, 4) +
             le(e.crc, 4) + le(e.data.size(), 4) + le(e.data.size(), 4) + le(e.name.size(), 2) +
             le(0, 2) + e.name + e.data;
    }
    const std::uint64_t cd = out.size();
    for (const auto& e : entries) {
      std::string extra = zip64 ? le(1, 2) + le(24, 2) + le(e.data.size(), 8) +
                                      le(e.data.size(), 8) + le(e.off, 8)
                                : "";
      std::uint64_t big = 0xffffffffu;
      out += le(0x02014b50, 4) + le(45, 2) + le(45, 2) + le(0, 2) + le(e.method, 2) + le(0, 4) +
             le(e.crc, 4) + le(zip64 ? big : e.data.size(), 4) +
             le(zip64 ? big : e.data.size(), 4) + le(e.name.size(), 2) + le(extra.size(), 2) +
             le(0, 2) + le(0, 2) + le(0, 2) + le(0, 4) + le(zip64 ? big : e.off, 4) + e.name +
             extra;
    }
    const std::uint64_t cd_size = out.size() - cd;
    if (zip64) {
      const std::uint64_t z = out.size();
      out += le(0x06064b50, 4) + le(44, 8) + le(45, 2) + le(45, 2) + le(0, 4) + le(0, 4) +
             le(entries.size(), 8) + le(entries.size(), 8) + le(cd_size, 8) + le(cd, 8);
      out += le(0x07064b50, 4) + le(0, 4) + le(z, 8) + le(1, 4);
      out += le(0x06054b50, 4) + le(0, 4) + le(0xffff, 2) + le(0xffff, 2) +
             le(0xffffffffu, 4) + le(0xffffffffu, 4) + le(0, 2);
    } else {
      out += le(0x06054b50, 4) + le(0, 4) + le(entries.size(), 2) + le(entries.size(), 2) +
             le(cd_size, 4) + le(cd, 4) + le(0, 2);
    }
    return out;
  }
};

/// Emits pickle opcodes.
struct Pickler {
  std::string b;
  Pickler& raw(const std::string& s) { b += s; return *this; }
  Pickler& op(char c) { b += c; return *this; }
  Pickler& str(const std::string& s) { return op('X').raw(le(s.size(), 4) + s); }
  Pickler& sstr(const std::string& s) { return op('\x8c').raw(le(s.size(), 1) + s); }
  Pickler& int1(int v) { return op('K').raw(le(std::uint64_t(v), 1)); }
  Pickler& global(const std::string& m, const std::string& n) { return op('c').raw(m + "\n" + n + "\n"); }
  Pickler& ints(const std::vector<std::int64_t>& v) {  // a tuple of ints
    op('(');
    for (auto x : v) {
      if (x >= 0 && x < 256) int1(int(x));
      else op('\x8a').raw(le(8, 1) + le(std::uint64_t(x), 8));  // LONG1
    }
    return op('t');
  }
  /// _rebuild_tensor_v2(('storage', torch.<type>, key, 'cpu', numel), off, shape, stride, False,
  /// OrderedDict())
  Pickler& tensor(const std::string& type, const std::string& key, std::int64_t numel,
                  std::int64_t off, const std::vector<std::int64_t>& shape,
                  const std::vector<std::int64_t>& stride) {
    global("torch._utils", "_rebuild_tensor_v2").op('(');
    op('(').str("storage").global("torch", type).str(key).str("cpu");
    ints({numel}).raw("\x85").op('0');  // (exercise TUPLE1 + POP), then the real element count
    if (numel < 256) int1(int(numel)); else op('J').raw(le(std::uint64_t(numel), 4));
    op('t').op('Q').int1(int(off)).ints(shape).ints(stride).op('\x89');
    global("collections", "OrderedDict").op(')').op('R');
    return op('t').op('R');
  }
};

inline std::string f32_bytes(const std::vector<float>& v) {
  std::string s(v.size() * 4, '\0');
  std::memcpy(s.data(), v.data(), s.size());
  return s;
}

/// A checkpoint {"w": F32[2,2], "nested": {"t": F32[3,2] transposed view of 'w2' storage,
/// 7: F16[2]}} written with protocol-4 style opcodes (FRAME, MEMOIZE, SHORT_BINUNICODE).
inline std::string good_pickle() {
  Pickler p;
  p.op('\x80').raw("\x04").op('\x95').raw(le(0, 8)).op('}').op('\x94').op('(');
  p.sstr("w").op('\x94').tensor("FloatStorage", "0", 4, 0, {2, 2}, {2, 1}).op('r').raw(le(1000, 4));
  p.sstr("nested").global("collections", "OrderedDict").op(')').op('R').op('(');
  p.str("t").tensor("FloatStorage", "1", 6, 0, {3, 2}, {1, 3});
  p.op('J').raw(le(7, 4)).tensor("HalfStorage", "2", 3, 1, {2}, {1});
  p.op('u').op('}').sstr("_metadata").op('j').raw(le(1000, 4)).op('s').op('b');
  p.sstr("again").op('h').raw(le(1, 1));  // memo 1 = the string "w" (MEMOIZE)
  p.sstr("pos").op('M').raw(le(300, 2));
  p.op('u').op('.');
  return p.b;
}

inline std::string good_zip(bool zip64 = false) {
  ZipWriter z;
  z.add("ckpt/data.pkl", good_pickle());
  z.add("ckpt/data/0", f32_bytes({1, 2, 3, 4}));
  z.add("ckpt/data/1", f32_bytes({0, 1, 2, 3, 4, 5}));
  std::string h = le(half::from_float(9.f), 2) + le(half::from_float(0.5f), 2) +
                  le(half::from_float(-1.f), 2);
  z.add("ckpt/data/2", h);
  z.add("ckpt/version", "3\n");
  return z.finish(zip64);
}


}  // namespace redi::test::torchw
