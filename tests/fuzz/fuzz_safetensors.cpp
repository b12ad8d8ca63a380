// Fuzz target: redi::io::SafeTensorsFile (open = header validation, then every tensor read).
#include "fuzz_common.hpp"
#include "redi/io/safetensors.hpp"

static void run(const std::uint8_t* data, std::size_t size) {
  using namespace redi;
  const auto f = io::SafeTensorsFile::from_bytes(fuzz::bytes_of(data, size), "fuzz.safetensors");
  for (const auto& name : f.names()) {
    const io::TensorInfo& t = f.info(name);
    (void)f.bytes(name);
    if (!t.supported) continue;
    if (io::convertible_from<double>(t.dtype)) (void)f.read<double>(name);
    else (void)f.read<std::int64_t>(name);
  }
}
REDI_FUZZ_TARGET(run)
