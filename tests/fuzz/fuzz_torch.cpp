// Fuzz target: redi::io::TorchCheckpoint (zip + restricted pickle VM + tensor bounds), then
// every readable tensor read; both global policies.
#include "fuzz_common.hpp"
#include "redi/io/torch_pickle.hpp"

static void run(const std::uint8_t* data, std::size_t size) {
  using namespace redi;
  io::TorchOptions opt;
  opt.strict_globals = size > 0 && (data[size - 1] & 1);  // a bit the zip end record ignores
  const auto c = io::TorchCheckpoint::from_bytes(fuzz::bytes_of(data, size), "fuzz.pt", opt);
  for (const auto& name : c.names()) {
    const io::TensorInfo& t = c.info(name);
    if (!t.supported) continue;
    if (io::convertible_from<float>(t.dtype)) (void)c.read<float>(name);
    else (void)c.read<std::int64_t>(name);
  }
}
REDI_FUZZ_TARGET(run)
