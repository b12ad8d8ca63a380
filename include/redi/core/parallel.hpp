// redi/core/parallel.hpp — when a CPU loop goes parallel. An OpenMP region costs more than it
// saves for small loops (and badly so on an oversubscribed host, where threads spin at the
// barrier while their partner is descheduled), so every `omp parallel` in redi is conditional
// on the work of the loop:
//   elementwise loops (ops, the diffusion per-element math)        n >  kOmpMinWork
//   loops doing several operations per element (norms, softmax,
//   modulation, AdamW's fused update, the activations' chunks)     n >  kOmpMinWork / 2
// The diffusion loops (loss, samplers, guidance) test B * elements >= kOmpMinWork.
#pragma once
#include <cstdint>

namespace redi {

/// Element count from which CPU loops run on OpenMP threads (see the header comment).
inline constexpr std::int64_t kOmpMinWork = std::int64_t(1) << 16;

}  // namespace redi
