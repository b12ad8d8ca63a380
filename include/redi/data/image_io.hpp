// redi/data/image_io.hpp — decoding PNG (stb_image) and JPEG (libjpeg-turbo, data/jpeg.hpp)
// files, and class-per-folder image datasets (root/<class_name>/<file>.png|jpg|jpeg).
//
// DEPENDENCY: stb_image for PNG. This header only *declares* stb_image's functions (it includes
// stb_image.h without STB_IMAGE_IMPLEMENTATION): a header-only library cannot define the
// implementation, because every translation unit including it would emit the same non-inline
// functions and the link would break (ODR). Link Debian's prebuilt library instead
// (libstb-dev: header /usr/include/stb/stb_image.h, library libstb.so, `-lstb`), or, without
// libstb, define STB_IMAGE_IMPLEMENTATION in exactly ONE .cpp of your program before including
// <stb_image.h> (or this header). JPEG needs libjpeg (redi::redi carries it when CMake found it;
// see data/jpeg.hpp).
//
// WHAT IS DECODED (docs/security.md): PNG and JPEG. The file's signature decides, not its name;
// stb_image's other decoders (and its JPEG decoder: the stb_image 2.27 that Debian ships has a
// known out-of-bounds write on crafted JPEG Huffman tables) are never reached. JPEG goes to
// libjpeg-turbo (data/jpeg.hpp: PIL's decoding, pixel for pixel). Before decoding, the header's
// dimensions are checked against ImageLimits (side and pixel count), so a 3 KB file claiming
// 1x1M pixels is an error, not gigabytes of allocation; the decoded size must then match.
// Both decoders are fuzzed in tests/fuzz (fuzz_image: stb compiled with the sanitizers, redi's
// libjpeg glue instrumented, Debian's libjpeg-turbo as shipped).
#pragma once
#if __has_include(<stb/stb_image.h>)
#include <stb/stb_image.h>
#else
#include <stb_image.h>
#endif

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "redi/core/error.hpp"
#include "redi/data/dataset.hpp"
#include "redi/data/image_types.hpp"
#include "redi/data/jpeg.hpp"
#include "redi/data/resample.hpp"

namespace redi::data {

/// The bytes of a file; redi::Error naming it when it cannot be read.
inline std::vector<std::uint8_t> read_file_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  REDI_CHECK(f.good(), path, ": cannot open");
  f.seekg(0, std::ios::end);
  const std::streamoff size = f.tellg();
  REDI_CHECK(size >= 0, path, ": cannot determine the size");
  f.seekg(0, std::ios::beg);
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(size));
  f.read(reinterpret_cast<char*>(bytes.data()), size);
  REDI_CHECK(f.good() || size == 0, path, ": read error");
  return bytes;
}

/// Decodes a PNG or JPEG from memory into `channels` channels (1: grey, 3: RGB, 4: RGBA;
/// stb / data/jpeg.hpp convert). `what` names the image in errors (the file path). Anything but
/// a PNG or JPEG within `limits` is a redi::Error; the signature decides the format.
inline DecodedImage decode_image(const std::uint8_t* data, std::size_t size, int channels, const std::string& what,
                                 const ImageLimits& limits = {}) {
  REDI_CHECK(channels >= 1 && channels <= 4, what, ": cannot decode to ", channels, " channels");
  REDI_CHECK(size > 0 && size < std::size_t(1) << 31, what, ": ", size, " bytes is not a decodable image size");
  if (is_jpeg(data, size)) return decode_jpeg(data, size, channels, what, limits);
  REDI_CHECK(is_png(data, size), what, ": neither a PNG nor a JPEG file (only PNG and JPEG images are decoded; "
             "the signature decides, not the file name)");
  int w = 0, h = 0, comp = 0;
  if (!stbi_info_from_memory(data, int(size), &w, &h, &comp)) {
    const char* why = stbi_failure_reason();
    REDI_FAIL(what, ": cannot decode image (bad PNG header: ", why ? why : "unknown stb_image error", ")");
  }
  check_image_size(w, h, limits, what);
  const int iw = w, ih = h;
  std::unique_ptr<stbi_uc, void (*)(void*)> px(
      stbi_load_from_memory(data, int(size), &w, &h, &comp, channels), stbi_image_free);
  if (!px) {
    const char* why = stbi_failure_reason();
    REDI_FAIL(what, ": cannot decode image (", why ? why : "unknown stb_image error", ")");
  }
  REDI_CHECK(w == iw && h == ih, what, ": decoded size ", w, "x", h, " differs from the header's ", iw, "x", ih);
  DecodedImage im;
  im.h = h, im.w = w, im.c = channels, im.file_channels = comp;
  im.pixels.assign(px.get(), px.get() + std::size_t(h) * std::size_t(w) * std::size_t(channels));
  return im;
}

inline DecodedImage decode_image_file(const std::string& path, int channels = 3, const ImageLimits& limits = {}) {
  const auto bytes = read_file_bytes(path);
  return decode_image(bytes.data(), bytes.size(), channels, path, limits);
}

/// Options of load_image_folder.
struct ImageFolderOptions {
  int channels = 3;     ///< decode to 1 (grey) or 3 (RGB)
  int image_size = 0;   ///< > 0: ADM center crop every image to size x size (center_crop_adm);
                        ///< 0: images are kept as they are and must all have one size
  std::vector<std::string> extensions = {".png", ".jpg", ".jpeg"};  ///< case-insensitive (.JPEG too); the
                                                                    ///< signature decides the decoder
  ImageLimits limits;   ///< per image, checked before decoding
};

/// The files of a class-per-folder image tree, without decoding them.
struct ImageFolderListing {
  std::vector<std::string> class_names;  ///< sorted sub-directory names; label k = class_names[k]
  std::vector<std::string> files;        ///< class by class, sorted within each class
  std::vector<int> labels;               ///< [files.size()]
};

/// root/<class_name>/<files>: class labels are the sorted (byte order) sub-directory names,
/// files are listed in sorted order within each class; files whose extension (case-insensitive)
/// is not in `extensions` are ignored, as are hidden entries (name starting with '.').
inline ImageFolderListing list_image_folder(const std::string& root, const std::vector<std::string>& extensions = {
                                                                         ".png", ".jpg", ".jpeg"}) {
  namespace fs = std::filesystem;
  std::error_code ec;
  REDI_CHECK(fs::is_directory(root, ec), root, ": not a directory (image folder root expected)");
  ImageFolderListing out;
  for (const auto& e : fs::directory_iterator(root))
    if (e.is_directory() && e.path().filename().string()[0] != '.') out.class_names.push_back(e.path().filename().string());
  std::sort(out.class_names.begin(), out.class_names.end());
  REDI_CHECK(!out.class_names.empty(), root, ": no class sub-directories");
  auto wanted = [&](const fs::path& p) {
    std::string ext = p.extension().string();
    for (auto& ch : ext) ch = char(std::tolower(static_cast<unsigned char>(ch)));
    return std::find(extensions.begin(), extensions.end(), ext) != extensions.end();
  };
  for (std::size_t k = 0; k < out.class_names.size(); ++k) {
    std::vector<std::string> files;
    for (const auto& e : fs::directory_iterator(fs::path(root) / out.class_names[k]))
      if (e.is_regular_file() && e.path().filename().string()[0] != '.' && wanted(e.path()))
        files.push_back(e.path().string());
    std::sort(files.begin(), files.end());
    for (auto& f : files) {
      out.files.push_back(std::move(f));
      out.labels.push_back(int(k));
    }
  }
  if (out.files.empty()) {
    std::string exts;
    for (const auto& e : extensions) exts += (exts.empty() ? "" : " ") + e;
    REDI_FAIL(root, ": no images (", exts, ") in its class sub-directories");
  }
  return out;
}

/// root/<class_name>/<files> decoded into memory (list_image_folder's order and labels). A file
/// that fails to decode throws redi::Error naming it.
inline ImageDataset load_image_folder(const std::string& root, const ImageFolderOptions& opt = {}) {
  REDI_CHECK(opt.channels == 1 || opt.channels == 3, root, ": image folder channels must be 1 or 3, got ", opt.channels);
  const ImageFolderListing list = list_image_folder(root, opt.extensions);
  ImageDataset ds;
  ds.c = opt.channels;
  ds.num_classes = int(list.class_names.size());
  ds.class_names = list.class_names;
  ds.source = root;
  for (std::size_t i = 0; i < list.files.size(); ++i) {
    const std::string& f = list.files[i];
    DecodedImage im = decode_image_file(f, opt.channels, opt.limits);
    std::vector<std::uint8_t> px;
    int h = im.h, w = im.w;
    if (opt.image_size > 0) {
      // The crop first scales the short side to image_size: bound the long side it makes.
      const double long_side = double(std::max(h, w)) * opt.image_size / double(std::min(h, w));
      REDI_CHECK(opt.image_size <= opt.limits.max_side && long_side <= double(opt.limits.max_side), f,
                 ": a ", h, "x", w, " image center-cropped to ", opt.image_size,
                 " would be scaled past ImageLimits::max_side = ", opt.limits.max_side, " (aspect ratio too extreme)");
      px = center_crop_adm(im.pixels.data(), im.h, im.w, im.c, opt.image_size);
      h = w = opt.image_size;
    } else {
      px = std::move(im.pixels);
    }
    if (ds.n == 0) {
      ds.h = h, ds.w = w;
    } else {
      REDI_CHECK(h == ds.h && w == ds.w, f, ": image is ", h, "x", w, " but earlier images are ", ds.h, "x", ds.w,
                 " (set ImageFolderOptions::image_size to center-crop)");
    }
    ds.pixels.insert(ds.pixels.end(), px.begin(), px.end());
    ds.labels.push_back(list.labels[i]);
    ++ds.n;
  }
  ds.validate();
  return ds;
}

}  // namespace redi::data
