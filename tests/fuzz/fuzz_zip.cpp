// Fuzz target: redi::io::zip::Archive (the container of torch.save checkpoints and .npz files).
#include "fuzz_common.hpp"
#include "redi/io/zip.hpp"

static void run(const std::uint8_t* data, std::size_t size) {
  using namespace redi;
  const io::zip::Archive z(io::FileImage::from_bytes(fuzz::bytes_of(data, size), "fuzz.zip"));
  std::uint32_t acc = 0;
  for (const auto& e : z.entries()) {
    if (z.find(e.name) != &e) __builtin_trap();  // names are unique
    try {
      const auto b = z.bytes(e);
      acc += io::zip::crc32(b);
    } catch (const Error&) {
    }
  }
  (void)acc;
}
REDI_FUZZ_TARGET(run)
