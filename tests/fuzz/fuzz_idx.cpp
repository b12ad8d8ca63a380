// Fuzz target: redi::data::read_idx (plain and gzip IDX files, through zlib), with a small
// byte limit so that a header's claim, not the fuzzer's memory, is what is tested.
#include "fuzz_common.hpp"
#include "redi/data/idx.hpp"

static void run(const std::uint8_t* data, std::size_t size) {
  static redi::fuzz::ScratchFile scratch(".idx");
  const auto a = redi::data::read_idx(scratch.write(data, size), 0, std::uint64_t(1) << 24);
  std::uint64_t n = 1;
  for (auto d : a.dims) n *= d;
  if (n != a.data.size()) __builtin_trap();  // the contract: data holds exactly the extents' product
}
REDI_FUZZ_TARGET(run)
