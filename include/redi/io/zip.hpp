// redi/io/zip.hpp — a minimal read-only ZIP reader over a FileImage: the central directory
// (zip64 included), stored (uncompressed) entries only, which is what torch.save and
// numpy.savez write. Data is not copied: entries are byte ranges of the image.
//
// Hostile archives (docs/security.md): every offset and size from the file is checked with
// overflow-free arithmetic (core/checked.hpp) before it is used; the entry count is bounded by
// the central directory's size and by ZipOptions::max_entries before anything is allocated;
// duplicate entry names are rejected (a reader could otherwise take a header from one entry
// and bytes from another); each stored entry's CRC-32 is checked at open (ZipOptions::
// verify_crc). Every failure is a redi::Error naming the file and the entry.
#pragma once
#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "redi/core/checked.hpp"
#include "redi/io/common.hpp"

namespace redi::io::zip {

struct Entry {
  std::string name;
  std::uint16_t flags = 0;       ///< general purpose bit flag (bit 0: encrypted)
  std::uint16_t method = 0;      ///< 0 = stored
  std::uint32_t crc = 0;
  std::uint64_t data_offset = 0; ///< file offset of the entry's bytes
  std::uint64_t size = 0;        ///< compressed size (== uncompressed for stored entries)
  std::uint64_t usize = 0;
};

struct ZipOptions {
  bool verify_crc = true;                    ///< check every stored entry's CRC-32 at open
  std::uint64_t max_entries = 1u << 20;      ///< more entries than this: an error
};

namespace detail {
/// Slice-by-8 CRC-32 tables (IEEE 802.3, reflected polynomial 0xEDB88320).
inline const std::array<std::array<std::uint32_t, 256>, 8>& crc_tables() {
  static const auto t = [] {
    std::array<std::array<std::uint32_t, 256>, 8> t{};
    for (std::uint32_t i = 0; i < 256; ++i) {
      std::uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
      t[0][i] = c;
    }
    for (std::uint32_t i = 0; i < 256; ++i)
      for (int s = 1; s < 8; ++s) t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xff];
    return t;
  }();
  return t;
}
}  // namespace detail

/// Continues a CRC-32: start with crc = 0, feed the pieces in order.
inline std::uint32_t crc32_update(std::uint32_t crc, const std::byte* p, std::size_t n) {
  const auto& t = detail::crc_tables();
  std::uint32_t c = ~crc;
  for (; n >= 8; n -= 8, p += 8) {
    const std::uint32_t a = c ^ std::uint32_t(load_le(p, 4));
    const std::uint32_t b = std::uint32_t(load_le(p + 4, 4));
    c = t[7][a & 0xff] ^ t[6][(a >> 8) & 0xff] ^ t[5][(a >> 16) & 0xff] ^ t[4][a >> 24] ^
        t[3][b & 0xff] ^ t[2][(b >> 8) & 0xff] ^ t[1][(b >> 16) & 0xff] ^ t[0][b >> 24];
  }
  for (; n > 0; --n, ++p) c = t[0][(c ^ std::uint32_t(*p)) & 0xff] ^ (c >> 8);
  return ~c;
}
inline std::uint32_t crc32(std::span<const std::byte> d) { return crc32_update(0, d.data(), d.size()); }

class Archive {
public:
  explicit Archive(std::shared_ptr<const FileImage> img, ZipOptions opt = {})
      : img_(std::move(img)), opt_(opt) { parse(); }

  const std::vector<Entry>& entries() const { return entries_; }
  const Entry* find(std::string_view name) const {
    auto it = index_.find(name);
    return it == index_.end() ? nullptr : &entries_[it->second];
  }
  /// The bytes of a stored entry (throws for compressed or encrypted entries).
  std::span<const std::byte> bytes(const Entry& e) const {
    if (e.method != 0)
      REDI_FAIL(label(), ": zip entry '", e.name, "' is compressed (method ", e.method,
                "); only stored entries are supported (torch.save writes stored entries)");
    if (e.flags & 1) REDI_FAIL(label(), ": zip entry '", e.name, "' is encrypted");
    return {img_->data() + e.data_offset, std::size_t(e.size)};
  }
  const std::string& label() const { return img_->label(); }

private:
  std::shared_ptr<const FileImage> img_;
  ZipOptions opt_;
  std::vector<Entry> entries_;
  std::map<std::string, std::size_t, std::less<>> index_;

  // Callers check that [off, off + n) lies inside the image first.
  std::uint64_t le(std::uint64_t off, int n) const { return load_le(img_->data() + off, n); }
  template <class... A>
  [[noreturn]] void fail(A&&... a) const {
    REDI_FAIL(label(), ": corrupt zip archive: ", std::forward<A>(a)...);
  }

  void parse() {
    using checked::in_range;
    const std::uint64_t size = img_->size();
    if (size < 22) fail("file is ", size, " bytes, too short for an end-of-central-directory");
    std::uint64_t eocd = size;  // search backwards over a possible comment
    for (std::uint64_t p = size - 22 + 1; p-- > 0 && size - p <= 22 + 65535;) {
      if (le(p, 4) == 0x06054b50u) { eocd = p; break; }
    }
    if (eocd == size) fail("no end-of-central-directory record");
    std::uint64_t count = le(eocd + 10, 2), cd_size = le(eocd + 12, 4), cd_off = le(eocd + 16, 4);
    if (count == 0xffff || cd_size == 0xffffffffu || cd_off == 0xffffffffu) {
      if (eocd < 20 || le(eocd - 20, 4) != 0x07064b50u) fail("zip64 locator missing");
      const std::uint64_t z = le(eocd - 20 + 8, 8);
      if (!in_range(z, 56, size) || le(z, 4) != 0x06064b50u)
        fail("bad zip64 end-of-central-directory offset ", z, " (file is ", size, " bytes)");
      count = le(z + 32, 8);
      cd_size = le(z + 40, 8);
      cd_off = le(z + 48, 8);
    }
    if (!in_range(cd_off, cd_size, size))
      fail("central directory (", cd_size, " bytes at ", cd_off, ") outside the file");
    if (count > cd_size / 46) fail(count, " entries cannot fit a central directory of ", cd_size, " bytes");
    if (count > opt_.max_entries)
      fail(count, " entries, more than the limit of ", opt_.max_entries);
    entries_.reserve(std::size_t(count));
    const std::uint64_t cd_end = cd_off + cd_size;
    std::uint64_t p = cd_off;
    for (std::uint64_t i = 0; i < count; ++i) {
      if (!in_range(p, 46, cd_end) || le(p, 4) != 0x02014b50u)
        fail("bad central directory header #", i, " at byte ", p);
      Entry e;
      e.flags = std::uint16_t(le(p + 8, 2));
      e.method = std::uint16_t(le(p + 10, 2));
      e.crc = std::uint32_t(le(p + 16, 4));
      e.size = le(p + 20, 4);
      e.usize = le(p + 24, 4);
      const std::uint64_t nlen = le(p + 28, 2), xlen = le(p + 30, 2), clen = le(p + 32, 2);
      std::uint64_t local = le(p + 42, 4);
      if (!in_range(p + 46, nlen + xlen + clen, cd_end))
        fail("central directory entry #", i, " runs past the directory");
      e.name.assign(reinterpret_cast<const char*>(img_->data() + p + 46), std::size_t(nlen));
      // zip64 extended information: present fields in order usize, size, local offset.
      const std::uint64_t xend = p + 46 + nlen + xlen;
      for (std::uint64_t x = p + 46 + nlen; in_range(x, 4, xend);) {
        const std::uint64_t id = le(x, 2), len = le(x + 2, 2), q0 = x + 4;
        if (!in_range(q0, len, xend)) fail("bad extra field in entry '", e.name, "'");
        if (id == 0x0001) {
          std::uint64_t q = q0;
          auto next = [&](std::uint64_t& v) {
            if (!in_range(q, 8, q0 + len)) fail("short zip64 extra field in entry '", e.name, "'");
            v = le(q, 8);
            q += 8;
          };
          if (e.usize == 0xffffffffu) next(e.usize);
          if (e.size == 0xffffffffu) next(e.size);
          if (local == 0xffffffffu) next(local);
        }
        x = q0 + len;
      }
      if (!in_range(local, 30, size) || le(local, 4) != 0x04034b50u)
        fail("bad local header for entry '", e.name, "' at byte ", local);
      e.data_offset = local + 30 + le(local + 26, 2) + le(local + 28, 2);  // <= size + 2^17
      if (!in_range(e.data_offset, e.size, size))
        fail("entry '", e.name, "' (", e.size, " bytes at ", e.data_offset,
             ") runs past the end of the file (", size, " bytes; truncated?)");
      if (e.method == 0 && e.size != e.usize)
        fail("stored entry '", e.name, "' has different sizes ", e.size, " and ", e.usize);
      if (index_.count(e.name)) fail("entry name '", e.name, "' occurs twice");
      if (opt_.verify_crc && e.method == 0 && !(e.flags & 1) &&
          crc32_update(0, img_->data() + e.data_offset, std::size_t(e.size)) != e.crc)
        fail("entry '", e.name, "' fails its CRC-32 check (corrupt or altered data)");
      index_[e.name] = entries_.size();
      entries_.push_back(std::move(e));
      p += 46 + nlen + xlen + clen;
    }
  }
};

}  // namespace redi::io::zip
