// Fuzz target: redi::io::NpzFile (zip + .npy header parser), every array read, and the ADM
// sample-batch loader on the same bytes.
#include "fuzz_common.hpp"
#include "redi/io/npz.hpp"

static void run(const std::uint8_t* data, std::size_t size) {
  using namespace redi;
  static fuzz::ScratchFile scratch(".npz");
  {
    const auto z = io::NpzFile::from_bytes(fuzz::bytes_of(data, size), "fuzz.npz");
    for (const auto& name : z.names()) {
      (void)z.bytes(name);
      try {
        (void)z.read<double>(name);
      } catch (const Error&) {
      }
    }
  }
  (void)io::load_sample_npz(scratch.write(data, size));
}
REDI_FUZZ_TARGET(run)
