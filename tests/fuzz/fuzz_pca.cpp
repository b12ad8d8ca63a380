// Fuzz target: redi::data::load_pca and load_pc_normalization (safetensors + shape, key and
// finiteness checks) on the same bytes.
#include "fuzz_common.hpp"
#include "redi/data/pca_io.hpp"

static void run(const std::uint8_t* data, std::size_t size) {
  using namespace redi;
  static fuzz::ScratchFile scratch(".safetensors");
  const std::string& path = scratch.write(data, size);
  try {
    const data::Pca p = data::load_pca(path, size ? data[0] % 4 : 0);
    if (p.components.size() != std::size_t(p.num_components) * std::size_t(p.dim)) __builtin_trap();
  } catch (const Error&) {
  }
  const data::PcNormalization n = data::load_pc_normalization(path);
  if (n.mean.size() != n.std.size()) __builtin_trap();
}
REDI_FUZZ_TARGET(run)
