// redi/data/idx.hpp — IDX files (the MNIST / Fashion-MNIST format), plain or gzip-compressed.
//
// DEPENDENCY: zlib (Debian zlib1g-dev; CMake: find_package(ZLIB) + ZLIB::ZLIB). Only this
// header needs it. Files are read through gzopen/gzread, which reads gzip members and plain
// files alike, so "train-images-idx3-ubyte" and "train-images-idx3-ubyte.gz" both work.
//
// Format: a 4-byte magic {0, 0, type, rank}, then `rank` big-endian uint32 extents, then the
// elements row-major. Only type 0x08 (unsigned byte) is read (that is all (Fashion-)MNIST uses):
// images are rank 3 [n, rows, cols] (magic 0x00000803), labels rank 1 [n] (magic 0x00000801).
#pragma once
#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "redi/core/checked.hpp"
#include "redi/core/error.hpp"
#include "redi/data/dataset.hpp"

namespace redi::data {

/// The contents of one ubyte IDX file.
struct IdxArray {
  std::vector<std::uint32_t> dims;
  std::vector<std::uint8_t> data;
};

/// Most data bytes read_idx accepts by default (2 GiB: Fashion-MNIST's train images are 47 MB).
inline constexpr std::uint64_t kMaxIdxBytes = std::uint64_t(1) << 31;

namespace detail {

inline std::uint32_t be32(const std::uint8_t* p) {
  return (std::uint32_t(p[0]) << 24) | (std::uint32_t(p[1]) << 16) | (std::uint32_t(p[2]) << 8) | std::uint32_t(p[3]);
}

/// A gzip (or plain) file read in pieces, never more than asked for: the caller decides how much
/// to inflate from what it has already validated. Errors name the file.
class GzReader {
public:
  explicit GzReader(const std::string& path) : path_(path), f_(gzopen(path.c_str(), "rb")) {
    REDI_CHECK(f_ != nullptr, path, ": cannot open");
  }
  ~GzReader() { if (f_) gzclose(f_); }
  GzReader(const GzReader&) = delete;
  GzReader& operator=(const GzReader&) = delete;

  /// Appends up to n bytes to `out` (fewer only at the end of the stream); returns the count.
  std::size_t read(std::vector<std::uint8_t>& out, std::uint64_t n) {
    std::size_t total = 0;
    while (n > 0) {
      const unsigned chunk = unsigned(std::min<std::uint64_t>(n, 1u << 20));
      const std::size_t at = out.size();
      out.resize(at + chunk);  // grows with what arrives, not with what the header claims
      const int got = gzread(f_, out.data() + at, chunk);
      if (got < 0) {
        int errnum = 0;
        std::string msg = gzerror(f_, &errnum);
        REDI_FAIL(path_, ": read error (", msg, ")");
      }
      out.resize(at + std::size_t(got));
      total += std::size_t(got);
      n -= std::uint64_t(got);
      if (got == 0) break;
    }
    return total;
  }
  /// Closes the stream; a truncated or corrupt gzip stream is an error here at the latest
  /// (gzread returns 0 at a truncated member's end on some zlib versions; gzclose_r reports it).
  void close() {
    const int rc = gzclose(f_);
    f_ = nullptr;
    REDI_CHECK(rc == Z_OK, path_, ": truncated or corrupt gzip stream (zlib code ", rc, ")");
  }

private:
  std::string path_;
  gzFile f_;
};

}  // namespace detail

/// Reads a ubyte IDX file (optionally gzip-compressed). `expected_rank` > 0 checks the rank.
/// Every problem (missing file, bad magic, other element type, wrong rank, truncated or
/// over-long data, a header claiming more than `max_bytes`) throws redi::Error naming the file.
/// The header is read and checked first; the data are then inflated only up to the size the
/// header implies (plus one byte to detect trailing data), so a small gzip bomb cannot make
/// this allocate more than the validated size.
inline IdxArray read_idx(const std::string& path, int expected_rank = 0,
                         std::uint64_t max_bytes = kMaxIdxBytes) {
  detail::GzReader in(path);
  std::vector<std::uint8_t> head;
  in.read(head, 4);
  REDI_CHECK(head.size() >= 4, path, ": not an IDX file (", head.size(), " bytes, no magic number)");
  REDI_CHECK(head[0] == 0 && head[1] == 0, path, ": bad IDX magic number 0x", std::hex,
             detail::be32(head.data()), std::dec, " (expected 0x0000TTRR)");
  REDI_CHECK(head[2] == 0x08, path, ": IDX element type 0x", std::hex, int(head[2]), std::dec,
             " is not unsigned byte (0x08)");
  const int rank = head[3];
  REDI_CHECK(rank >= 1, path, ": IDX rank 0");
  REDI_CHECK(expected_rank <= 0 || rank == expected_rank, path, ": IDX rank ", rank, " (magic 0x",
             std::hex, detail::be32(head.data()), std::dec, "), expected ", expected_rank);
  const std::size_t header = 4 + 4 * std::size_t(rank);
  in.read(head, header - 4);
  REDI_CHECK(head.size() >= header, path, ": truncated IDX header");
  IdxArray a;
  std::uint64_t count = 1;
  for (int i = 0; i < rank; ++i) {
    a.dims.push_back(detail::be32(head.data() + 4 + 4 * i));
    REDI_CHECK(checked::mul<std::uint64_t>(count, a.dims.back(), count) && count <= max_bytes, path,
               ": IDX extents claim more than ", max_bytes, " bytes (the limit)");
  }
  const std::uint64_t have = in.read(a.data, count + 1);
  in.close();
  REDI_CHECK(have >= count, path, ": truncated IDX data (", have, " bytes, ", count, " expected)");
  REDI_CHECK(have == count, path, ": trailing bytes after the IDX data");
  return a;
}

/// Writes a ubyte IDX file; gzip-compressed when `gzip` (tests and tools).
inline void write_idx(const std::string& path, const std::vector<std::uint32_t>& dims,
                      const std::vector<std::uint8_t>& data, bool gzip = false) {
  REDI_CHECK(!dims.empty() && dims.size() < 256, path, ": IDX rank ", dims.size());
  std::vector<std::uint8_t> bytes = {0, 0, 0x08, std::uint8_t(dims.size())};
  for (auto d : dims)
    for (int s = 24; s >= 0; s -= 8) bytes.push_back(std::uint8_t(d >> s));
  bytes.insert(bytes.end(), data.begin(), data.end());
  gzFile f = gzopen(path.c_str(), gzip ? "wb9" : "wbT");  // "T": transparent (no compression)
  REDI_CHECK(f != nullptr, path, ": cannot create");
  const int put = gzwrite(f, bytes.data(), unsigned(bytes.size()));
  const int rc = gzclose(f);
  REDI_CHECK(put == int(bytes.size()) && rc == Z_OK, path, ": write failed");
}

/// An image IDX file [n, rows, cols] and a label IDX file [n] as a dataset (c = 1).
/// Labels must be < num_classes; the counts must agree. Errors name the offending file.
inline ImageDataset read_idx_dataset(const std::string& images_path, const std::string& labels_path,
                                     int num_classes = 10, std::vector<std::string> class_names = {}) {
  IdxArray im = read_idx(images_path, 3);
  IdxArray lb = read_idx(labels_path, 1);
  REDI_CHECK(im.dims[0] == lb.dims[0], images_path, " has ", im.dims[0], " images but ", labels_path, " has ",
             lb.dims[0], " labels");
  REDI_CHECK(im.dims[0] <= 0x7fffffffu && im.dims[1] <= 65536u && im.dims[2] <= 65536u, images_path,
             ": IDX extents too large");
  ImageDataset ds;
  ds.n = int(im.dims[0]);
  ds.h = int(im.dims[1]);
  ds.w = int(im.dims[2]);
  ds.c = 1;
  ds.pixels = std::move(im.data);
  ds.labels.resize(lb.data.size());
  for (std::size_t i = 0; i < lb.data.size(); ++i) {
    REDI_CHECK(int(lb.data[i]) < num_classes, labels_path, ": label ", int(lb.data[i]), " of item ", i,
               " is outside [0, ", num_classes, ")");
    ds.labels[i] = lb.data[i];
  }
  ds.num_classes = num_classes;
  ds.class_names = std::move(class_names);
  ds.source = images_path;
  ds.validate();
  return ds;
}

inline std::vector<std::string> fashion_mnist_class_names() {
  return {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};
}

/// The directory holding Fashion-MNIST: `dir` if given, else $REDI_FASHION_MNIST_DIR, else
/// Debian's /usr/share/datasets/fashion-mnist (package dataset-fashion-mnist).
inline std::string fashion_mnist_dir(const std::string& dir = {}) {
  if (!dir.empty()) return dir;
  if (const char* e = std::getenv("REDI_FASHION_MNIST_DIR"); e && *e) return e;
  return "/usr/share/datasets/fashion-mnist";
}

/// "<dir>/<stem>" or "<dir>/<stem>.gz", whichever exists (empty string: neither).
inline std::string find_idx_file(const std::string& dir, const std::string& stem) {
  namespace fs = std::filesystem;
  std::error_code ec;
  for (const char* suffix : {"", ".gz"}) {
    const fs::path p = fs::path(dir) / (stem + suffix);
    if (fs::is_regular_file(p, ec)) return p.string();
  }
  return {};
}

/// Fashion-MNIST (60,000 train / 10,000 test images, 28x28x1, 10 classes) from `dir` (see
/// fashion_mnist_dir). Pad to 32x32 with pad_to(ds, 32) for a patch-friendly size.
inline ImageDataset load_fashion_mnist(Split split, const std::string& dir = {}) {
  const std::string d = fashion_mnist_dir(dir);
  const std::string pre = split == Split::Train ? "train" : "t10k";
  const std::string im = find_idx_file(d, pre + "-images-idx3-ubyte");
  const std::string lb = find_idx_file(d, pre + "-labels-idx1-ubyte");
  REDI_CHECK(!im.empty() && !lb.empty(), "Fashion-MNIST ", split_name(split), " files (", pre,
             "-images-idx3-ubyte[.gz], ", pre, "-labels-idx1-ubyte[.gz]) not found in ", d,
             "; install them with `apt-get install dataset-fashion-mnist` or set REDI_FASHION_MNIST_DIR");
  return read_idx_dataset(im, lb, 10, fashion_mnist_class_names());
}

}  // namespace redi::data
