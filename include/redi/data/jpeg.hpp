// redi/data/jpeg.hpp — decoding JPEG through libjpeg-turbo (jpeglib.h), as PIL does.
//
// DEPENDENCY: libjpeg (Debian libjpeg-dev = libjpeg62-turbo-dev; CMake find_package(JPEG),
// target JPEG::JPEG). redi's CMake defines REDI_HAVE_JPEG=1 on redi::redi and links JPEG::JPEG
// when it finds libjpeg (the installed package re-finds it); outside CMake, define
// REDI_HAVE_JPEG=1 and link -ljpeg. Without it this header still compiles and decode_jpeg
// refuses every JPEG with an error that names the file and the missing package.
//
// WHAT IS DECODED, and how it matches PIL's Image.open(f).convert("RGB") (docs/security.md):
// - baseline and progressive JPEG, any chroma subsampling; libjpeg's defaults, which PIL keeps:
//   JDCT_ISLOW inverse DCT and fancy (smooth) chroma upsampling. With the same libjpeg-turbo the
//   pixels are identical to PIL's (tests/test_data_jpeg.cpp checks every fixture exactly).
// - grey (1 component) is replicated to RGB; YCbCr/RGB -> RGB by libjpeg; CMYK/YCCK -> CMYK by
//   libjpeg, then RGB as PIL does (it assumes Adobe-inverted CMYK for every CMYK JPEG; the
//   formula is in image_types.hpp). channels = 1 is PIL's convert("L") of that RGB (for a grey
//   file: its own values); channels = 4 is RGB + opaque alpha.
// - EXIF orientation is ignored (no APPn marker is read): the stored pixel grid is returned, as
//   PIL's Image.open and the ADM / torchvision ImageNet loaders see it.
//
// HOSTILE INPUT: every libjpeg error (error_exit) becomes a redi::Error naming the file and
// libjpeg's message. libjpeg's warnings are errors too unless ImageLimits::strict_jpeg is false,
// and "Premature end of JPEG file" (a truncated file) always is (PIL also refuses truncated
// images by default). The header's dimensions are checked against ImageLimits before
// jpeg_start_decompress allocates anything proportional to the image; progressive files may
// have at most ImageLimits::max_jpeg_scans scans (a few KB of scans can otherwise cost minutes).
//
// setjmp/longjmp: libjpeg reports errors through a callback that must not return. Each libjpeg
// call runs inside a small function that owns its setjmp and holds no object with a destructor
// (longjmp may not skip destructors, C++ [csetjmp.syn]); the C++ caller turns a `false` into the
// redi::Error, and a guard object in the caller's frame always calls jpeg_destroy_decompress,
// which frees everything libjpeg allocated (its memory pools) — no leak on any path.
#pragma once
#include <csetjmp>
#include <cstddef>
#include <cstdint>
#include <cstdio>  // jpeglib.h needs FILE and size_t declared first
#include <new>
#include <string>
#include <vector>

#include "redi/core/error.hpp"
#include "redi/data/image_types.hpp"

#if defined(REDI_HAVE_JPEG) && REDI_HAVE_JPEG
#include <jerror.h>
#include <jpeglib.h>
#define REDI_JPEG_ENABLED 1
#else
#define REDI_JPEG_ENABLED 0
#endif

namespace redi::data {

/// Whether this build decodes JPEG (libjpeg found at configure time, REDI_HAVE_JPEG=1).
inline constexpr bool kHaveJpeg = REDI_JPEG_ENABLED != 0;

#if REDI_JPEG_ENABLED
namespace detail::jpeg {

struct ErrorState {
  jpeg_error_mgr mgr;  // first member: cinfo->err points here
  std::jmp_buf jump;
  bool strict = true;
  int max_scans = 0;
  char message[JMSG_LENGTH_MAX + 64];
};

struct Progress {
  jpeg_progress_mgr mgr;  // first member: cinfo->progress points here
  ErrorState* err = nullptr;
};

inline ErrorState* state(j_common_ptr c) { return reinterpret_cast<ErrorState*>(c->err); }

[[noreturn]] inline void error_exit(j_common_ptr c) {
  ErrorState* s = state(c);
  c->err->format_message(c, s->message);
  std::longjmp(s->jump, 1);
}

// level < 0: a warning (corrupt data libjpeg concealed); >= 0: trace messages, ignored.
inline void emit_message(j_common_ptr c, int level) {
  if (level >= 0) return;
  if (state(c)->strict || c->err->msg_code == JWRN_JPEG_EOF) error_exit(c);
  ++c->err->num_warnings;
}

inline void output_message(j_common_ptr) {}  // never print to stderr

inline void progress(j_common_ptr c) {
  auto* p = reinterpret_cast<Progress*>(c->progress);
  const int scans = reinterpret_cast<j_decompress_ptr>(c)->input_scan_number;
  if (scans > p->err->max_scans) {
    std::snprintf(p->err->message, sizeof p->err->message, "more than %d scans (ImageLimits::max_jpeg_scans)",
                  p->err->max_scans);
    std::longjmp(p->err->jump, 1);
  }
}

// The libjpeg calls, each under its own setjmp; false when libjpeg reported an error (the
// message is in the ErrorState). Never inlined (a function calling setjmp cannot be), so no
// C++ object of the caller shares their frame.
[[gnu::noinline]] inline bool create(jpeg_decompress_struct* d, ErrorState* s, const std::uint8_t* data,
                                     std::size_t size) {
  if (setjmp(s->jump)) return false;
  jpeg_create_decompress(d);
  jpeg_mem_src(d, const_cast<unsigned char*>(data), static_cast<unsigned long>(size));
  return true;
}

[[gnu::noinline]] inline bool read_header(jpeg_decompress_struct* d, ErrorState* s) {
  if (setjmp(s->jump)) return false;
  if (jpeg_read_header(d, TRUE) == JPEG_HEADER_OK) return true;  // mem source: never JPEG_SUSPENDED
  std::snprintf(s->message, sizeof s->message, "a tables-only JPEG datastream (no image)");
  return false;
}

[[gnu::noinline]] inline bool start(jpeg_decompress_struct* d, ErrorState* s) {
  if (setjmp(s->jump)) return false;
  return jpeg_start_decompress(d) == TRUE;
}

[[gnu::noinline]] inline bool read_rows(jpeg_decompress_struct* d, ErrorState* s, std::uint8_t* out,
                                        std::size_t stride) {
  if (setjmp(s->jump)) return false;
  while (d->output_scanline < d->output_height) {
    JSAMPROW row = out + std::size_t(d->output_scanline) * stride;
    if (jpeg_read_scanlines(d, &row, 1) != 1) {
      std::snprintf(s->message, sizeof s->message, "no scanline returned at row %u", d->output_scanline);
      return false;
    }
  }
  jpeg_finish_decompress(d);
  return true;
}

struct Guard {  // jpeg_destroy_decompress on every path once created
  jpeg_decompress_struct* d;
  bool created = false;
  ~Guard() {
    if (created) jpeg_destroy_decompress(d);
  }
};

}  // namespace detail::jpeg
#endif

/// Decodes a JPEG from memory into `channels` channels (1: grey, 3: RGB, 4: RGBA), as PIL's
/// Image.open(...).convert(...) does (see the header comment). `what` names the image in errors.
inline DecodedImage decode_jpeg(const std::uint8_t* data, std::size_t size, int channels, const std::string& what,
                                const ImageLimits& limits = {}) {
  REDI_CHECK(channels >= 1 && channels <= 4, what, ": cannot decode to ", channels, " channels");
#if REDI_JPEG_ENABLED
  namespace J = detail::jpeg;
  REDI_CHECK(size > 0 && size < std::size_t(1) << 31, what, ": ", size, " bytes is not a decodable image size");
  J::ErrorState err{};
  jpeg_decompress_struct d{};
  d.err = jpeg_std_error(&err.mgr);
  err.mgr.error_exit = J::error_exit;
  err.mgr.emit_message = J::emit_message;
  err.mgr.output_message = J::output_message;
  err.strict = limits.strict_jpeg;
  err.max_scans = limits.max_jpeg_scans;
  J::Progress prog{};
  prog.mgr.progress_monitor = J::progress;
  prog.err = &err;
  J::Guard guard{&d};
  auto fail = [&](const char* stage) {
    REDI_FAIL(what, ": cannot decode JPEG (", stage, ": ", err.message[0] ? err.message : "unknown libjpeg error",
              ")");
  };
  if (!J::create(&d, &err, data, size)) {
    guard.created = true;  // jpeg_create_decompress ran far enough for destroy to be safe
    fail("libjpeg setup");
  }
  guard.created = true;
  d.progress = &prog.mgr;
  if (!J::read_header(&d, &err)) fail("bad JPEG header");
  check_image_size(int(d.image_width), int(d.image_height), limits, what);  // JDIMENSION <= 65500
  int oc = 0;
  switch (d.jpeg_color_space) {
    case JCS_GRAYSCALE: d.out_color_space = JCS_GRAYSCALE, oc = 1; break;
    case JCS_YCbCr:
    case JCS_RGB: d.out_color_space = JCS_RGB, oc = 3; break;
    case JCS_CMYK:
    case JCS_YCCK: d.out_color_space = JCS_CMYK, oc = 4; break;
    default:
      REDI_FAIL(what, ": JPEG with ", d.num_components, " components in an unknown colour space (",
                int(d.jpeg_color_space), "); grey, YCbCr/RGB and CMYK/YCCK are decoded");
  }
  // libjpeg's defaults, stated: PIL decodes with them (exact parity).
  d.dct_method = JDCT_ISLOW;
  d.do_fancy_upsampling = TRUE;
  d.scale_num = d.scale_denom = 1;
  if (!J::start(&d, &err)) fail("decompression");
  const int w = int(d.output_width), h = int(d.output_height);
  REDI_CHECK(w == int(d.image_width) && h == int(d.image_height) && d.output_components == oc, what,
             ": libjpeg output ", w, "x", h, "x", d.output_components, " differs from the header's ", d.image_width,
             "x", d.image_height, "x", oc);
  const std::size_t n = std::size_t(w) * std::size_t(h);
  std::vector<std::uint8_t> raw;
  try {
    raw.resize(n * std::size_t(oc));
  } catch (const std::bad_alloc&) {
    REDI_FAIL(what, ": cannot allocate ", n * std::size_t(oc), " bytes for a ", w, "x", h, " JPEG");
  }
  if (!J::read_rows(&d, &err, raw.data(), std::size_t(w) * std::size_t(oc))) fail("corrupt JPEG data");
  DecodedImage im;
  im.h = h, im.w = w, im.c = channels, im.file_channels = d.num_components;
  if (oc == channels && oc != 4) {
    im.pixels = std::move(raw);
    return im;
  }
  im.pixels.resize(n * std::size_t(channels));
  if (oc == 4) {  // CMYK -> RGB (PIL), then to the requested channels
    std::vector<std::uint8_t> rgb(n * 3);
    for (std::size_t i = 0; i < n; ++i) image_convert::rgb_from_stored_cmyk(&raw[4 * i], &rgb[3 * i]);
    image_convert::convert_pixels(rgb.data(), 3, im.pixels.data(), channels, n);
  } else {
    image_convert::convert_pixels(raw.data(), oc, im.pixels.data(), channels, n);
  }
  return im;
#else
  (void)data, (void)size, (void)limits;
  REDI_FAIL(what, ": JPEG image, but this build of redi has no JPEG decoder: libjpeg was not found (or "
            "REDI_USE_JPEG=OFF) when redi was configured (Debian/Ubuntu: apt-get install libjpeg-dev, i.e. "
            "libjpeg62-turbo-dev; then reconfigure; outside CMake define REDI_HAVE_JPEG=1 and link -ljpeg)");
#endif
}

}  // namespace redi::data
