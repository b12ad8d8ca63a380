// Fuzz target: redi::data::decode_image (signature check, stbi_info bounds, stb's PNG decoder;
// for JPEG redi's libjpeg glue in data/jpeg.hpp: error manager, setjmp/longjmp, header limits,
// scan limit, colour conversion) and the ADM center crop of what it decodes. stb_image is
// compiled HERE, with the sanitizers (the same stb_image.h that Debian's libstb is built from),
// so its own bugs are findings too. libjpeg-turbo is Debian's shared library as shipped: its
// heap blocks are ASan-tracked (malloc is intercepted), its own code is not instrumented.
#include "fuzz_common.hpp"
#include "redi/data/image_io.hpp"  // stb_image's declarations

// ... and its implementation, in this translation unit (its declarations are include-guarded,
// its implementation is not).
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ASSERT(x) do { if (!(x)) __builtin_trap(); } while (0)
#if __has_include(<stb/stb_image.h>)
#include <stb/stb_image.h>
#else
#include <stb_image.h>
#endif

static void run(const std::uint8_t* data, std::size_t size) {
  using namespace redi;
  data::ImageLimits lim;
  lim.max_side = 4096;
  lim.max_pixels = 1 << 22;
  lim.max_jpeg_scans = 100;
  lim.strict_jpeg = size < 2 || (data[size - 2] & 1);  // both warning policies
  static const int kChannels[3] = {1, 3, 4};  // a trailing byte (after IEND) picks the conversion
  const int channels = size ? kChannels[data[size - 1] % 3] : 3;
  const data::DecodedImage im = data::decode_image(data, size, channels, "fuzz.png", lim);
  if (im.pixels.size() != std::size_t(im.h) * std::size_t(im.w) * std::size_t(im.c)) __builtin_trap();
  if (im.h * im.w <= 4096) (void)data::center_crop_adm(im.pixels.data(), im.h, im.w, im.c, 8);
}
REDI_FUZZ_TARGET(run)
