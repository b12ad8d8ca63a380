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

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "redi/core/error.hpp"
#include "redi/data/dataset.hpp"

namespace redi::data {

/// The contents of one ubyte IDX file.
struct IdxArray {
  std::vector<std::uint32_t> dims;
  std::vector<std::uint8_t> data;
};

namespace detail {

/// Whole (decompressed) contents of `path`; redi::Error naming the file on any failure,
/// including a corrupt or truncated gzip stream.
inline std::vector<std::uint8_t> read_maybe_gz(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  REDI_CHECK(f != nullptr, path, ": cannot open");
  std::vector<std::uint8_t> out;
  std::vector<std::uint8_t> buf(1 << 20);
  for (;;) {
    const int got = gzread(f, buf.data(), unsigned(buf.size()));
    if (got < 0) {
      int errnum = 0;
      std::string msg = gzerror(f, &errnum);
      gzclose(f);
      REDI_FAIL(path, ": read error (", msg, ")");
    }
    if (got == 0) break;
    out.insert(out.end(), buf.begin(), buf.begin() + got);
  }
  // gzread returns 0 at a truncated gzip member's end without an error on some zlib versions;
  // gzclose_r reports Z_BUF_ERROR ("unexpected end of file") in that case.
  const int rc = gzclose(f);
  REDI_CHECK(rc == Z_OK, path, ": truncated or corrupt gzip stream (zlib code ", rc, ")");
  return out;
}

inline std::uint32_t be32(const std::uint8_t* p) {
  return (std::uint32_t(p[0]) << 24) | (std::uint32_t(p[1]) << 16) | (std::uint32_t(p[2]) << 8) | std::uint32_t(p[3]);
}

}  // namespace detail

/// Reads a ubyte IDX file (optionally gzip-compressed). `expected_rank` > 0 checks the rank.
/// Every problem (missing file, bad magic, other element type, wrong rank, truncated or
/// over-long data) throws redi::Error naming the file.
inline IdxArray read_idx(const std::string& path, int expected_rank = 0) {
  const std::vector<std::uint8_t> bytes = detail::read_maybe_gz(path);
  REDI_CHECK(bytes.size() >= 4, path, ": not an IDX file (", bytes.size(), " bytes, no magic number)");
  REDI_CHECK(bytes[0] == 0 && bytes[1] == 0, path, ": bad IDX magic number 0x", std::hex,
             detail::be32(bytes.data()), std::dec, " (expected 0x0000TTRR)");
  REDI_CHECK(bytes[2] == 0x08, path, ": IDX element type 0x", std::hex, int(bytes[2]), std::dec,
             " is not unsigned byte (0x08)");
  const int rank = bytes[3];
  REDI_CHECK(rank >= 1, path, ": IDX rank 0");
  REDI_CHECK(expected_rank <= 0 || rank == expected_rank, path, ": IDX rank ", rank, " (magic 0x",
             std::hex, detail::be32(bytes.data()), std::dec, "), expected ", expected_rank);
  const std::size_t header = 4 + 4 * std::size_t(rank);
  REDI_CHECK(bytes.size() >= header, path, ": truncated IDX header");
  IdxArray a;
  std::uint64_t count = 1;
  for (int i = 0; i < rank; ++i) {
    a.dims.push_back(detail::be32(bytes.data() + 4 + 4 * i));
    count *= a.dims.back();
    REDI_CHECK(count < (std::uint64_t(1) << 40), path, ": IDX extents too large");
  }
  const std::uint64_t have = bytes.size() - header;
  REDI_CHECK(have >= count, path, ": truncated IDX data (", have, " bytes, ", count, " expected)");
  REDI_CHECK(have == count, path, ": ", have - count, " trailing bytes after the IDX data");
  a.data.assign(bytes.begin() + std::ptrdiff_t(header), bytes.end());
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
