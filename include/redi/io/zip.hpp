// redi/io/zip.hpp — a minimal read-only ZIP reader over a FileImage: the central directory
// (zip64 included), stored (uncompressed) entries only, which is what torch.save writes.
// Data is not copied: entries are byte ranges of the image.
#pragma once
#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "redi/io/common.hpp"

namespace redi::io::zip {

struct Entry {
  std::string name;
  std::uint16_t method = 0;      ///< 0 = stored
  std::uint32_t crc = 0;
  std::uint64_t data_offset = 0; ///< file offset of the entry's bytes
  std::uint64_t size = 0;        ///< compressed size (== uncompressed for stored entries)
  std::uint64_t usize = 0;
};

inline std::uint32_t crc32(std::span<const std::byte> d) {
  static const auto table = [] {
    std::array<std::uint32_t, 256> t{};
    for (std::uint32_t i = 0; i < 256; ++i) {
      std::uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  std::uint32_t c = 0xffffffffu;
  for (std::byte b : d) c = table[(c ^ std::uint32_t(b)) & 0xff] ^ (c >> 8);
  return c ^ 0xffffffffu;
}

class Archive {
public:
  explicit Archive(std::shared_ptr<const FileImage> img) : img_(std::move(img)) { parse(); }

  const std::vector<Entry>& entries() const { return entries_; }
  const Entry* find(std::string_view name) const {
    auto it = index_.find(name);
    return it == index_.end() ? nullptr : &entries_[it->second];
  }
  /// The bytes of a stored entry (throws for compressed entries).
  std::span<const std::byte> bytes(const Entry& e) const {
    if (e.method != 0)
      REDI_FAIL(label(), ": zip entry '", e.name, "' is compressed (method ", e.method,
                "); only stored entries are supported (torch.save writes stored entries)");
    return {img_->data() + e.data_offset, std::size_t(e.size)};
  }
  const std::string& label() const { return img_->label(); }

private:
  std::shared_ptr<const FileImage> img_;
  std::vector<Entry> entries_;
  std::map<std::string, std::size_t, std::less<>> index_;

  std::uint64_t le(std::uint64_t off, int n) const { return load_le(img_->data() + off, n); }
  template <class... A>
  [[noreturn]] void fail(A&&... a) const {
    REDI_FAIL(label(), ": corrupt zip archive: ", std::forward<A>(a)...);
  }

  void parse() {
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
      std::uint64_t z = le(eocd - 20 + 8, 8);
      if (z + 56 > size || le(z, 4) != 0x06064b50u) fail("bad zip64 end-of-central-directory");
      count = le(z + 32, 8);
      cd_size = le(z + 40, 8);
      cd_off = le(z + 48, 8);
    }
    if (cd_off > size || cd_size > size - cd_off) fail("central directory outside the file");
    std::uint64_t p = cd_off;
    for (std::uint64_t i = 0; i < count; ++i) {
      if (p + 46 > cd_off + cd_size || le(p, 4) != 0x02014b50u)
        fail("bad central directory header #", i, " at byte ", p);
      Entry e;
      e.method = std::uint16_t(le(p + 10, 2));
      e.crc = std::uint32_t(le(p + 16, 4));
      e.size = le(p + 20, 4);
      e.usize = le(p + 24, 4);
      std::uint64_t nlen = le(p + 28, 2), xlen = le(p + 30, 2), clen = le(p + 32, 2);
      std::uint64_t local = le(p + 42, 4);
      if (p + 46 + nlen + xlen + clen > cd_off + cd_size) fail("central directory entry #", i,
                                                               " runs past the directory");
      e.name.assign(reinterpret_cast<const char*>(img_->data() + p + 46), std::size_t(nlen));
      // zip64 extended information: present fields in order usize, size, local offset.
      for (std::uint64_t x = p + 46 + nlen; x + 4 <= p + 46 + nlen + xlen;) {
        std::uint64_t id = le(x, 2), len = le(x + 2, 2), q = x + 4;
        if (q + len > p + 46 + nlen + xlen) fail("bad extra field in entry '", e.name, "'");
        if (id == 0x0001) {
          auto next = [&](std::uint64_t& v) {
            if (q + 8 > x + 4 + len) fail("short zip64 extra field in entry '", e.name, "'");
            v = le(q, 8);
            q += 8;
          };
          if (e.usize == 0xffffffffu) next(e.usize);
          if (e.size == 0xffffffffu) next(e.size);
          if (local == 0xffffffffu) next(local);
        }
        x = x + 4 + len;
      }
      if (local + 30 > size || le(local, 4) != 0x04034b50u)
        fail("bad local header for entry '", e.name, "' at byte ", local);
      e.data_offset = local + 30 + le(local + 26, 2) + le(local + 28, 2);
      if (e.data_offset > size || e.size > size - e.data_offset)
        fail("entry '", e.name, "' (", e.size, " bytes at ", e.data_offset,
             ") runs past the end of the file (", size, " bytes; truncated?)");
      if (e.method == 0 && e.size != e.usize)
        fail("stored entry '", e.name, "' has different sizes ", e.size, " and ", e.usize);
      index_[e.name] = entries_.size();
      entries_.push_back(std::move(e));
      p += 46 + nlen + xlen + clen;
    }
  }
};

}  // namespace redi::io::zip
