// redi/nn/recompute.hpp — selective activation recomputation: which sub-layers of a DiT block
// (nn/dit_block.hpp) keep their activations for the backward pass and which re-run their
// forward from a saved input during the backward pass. A run-time policy (it changes memory
// and time, never the math: gradients and losses are bit-identical to Recompute::None
// wherever the device's forward ops are deterministic, as the CPU's are):
//
//   None      every block keeps every activation (fastest; the memory of docs/cuda.md "Memory").
//   Attention the attention branch (LN1, modulate, qkv, attention probs or lse, attention
//             output, proj, LN1 statistics) is re-run from the saved block input h_in;
//             h_mid and the MLP branch are kept. Extra work: one attention branch forward.
//   Mlp       the MLP branch (LN2, modulate, fc1, GELU, fc2, LN2 statistics) is re-run from the
//             saved h_mid; the attention branch is kept. Extra work: one MLP branch forward.
//   Block     only h_in and the adaLN modulation mod [B, 6D] are kept; the whole block forward
//             (h_mid included) is re-run from h_in. Extra work: one block forward (~1/3 of
//             the block's forward + backward FLOPs).
//
// The recomputed buffers are not carved per block: the blocks' pointers for them all alias one
// shared set (one block's worth), overwritten by each block's forward and refilled by each
// block's backward just before it is read. Training arena size with depth L (docs/cuda.md has
// the byte counts for SiT-XL/2):
//   arena(policy) = arena(None) - (L - 1) * dropped(policy),
//   dropped(Attention) = |ln1| + |m1| + |qkv| + |probs or lse| + |ao| + |a| + |mean1| + |rstd1|,
//   dropped(Mlp)       = |ln2| + |m2| + |f1| + |g| + |f2| + |mean2| + |rstd2|,
//   dropped(Block)     = dropped(Attention) + dropped(Mlp) + |h_mid|,
// where |x| is the buffer's size in bytes rounded up to the arena's 256-byte alignment
// (core/workspace.hpp); tests/test_recompute.cpp asserts it.
#pragma once
#include <string>
#include <string_view>

#include "redi/core/error.hpp"

namespace redi {

enum class Recompute { None, Attention, Mlp, Block };

/// Whether policy r re-runs the attention branch / the MLP branch / h_mid in the backward pass.
constexpr bool recomputes_attention(Recompute r) { return r == Recompute::Attention || r == Recompute::Block; }
constexpr bool recomputes_mlp(Recompute r) { return r == Recompute::Mlp || r == Recompute::Block; }
constexpr bool recomputes_mid(Recompute r) { return r == Recompute::Block; }

/// The policy's name as the training programs spell it: none | attention | mlp | block.
constexpr std::string_view recompute_name(Recompute r) {
  switch (r) {
    case Recompute::None: return "none";
    case Recompute::Attention: return "attention";
    case Recompute::Mlp: return "mlp";
    case Recompute::Block: return "block";
  }
  return "none";
}

/// The policy of a name (none | attention | mlp | block); anything else is a redi::Error.
inline Recompute parse_recompute(std::string_view s) {
  for (Recompute r : {Recompute::None, Recompute::Attention, Recompute::Mlp, Recompute::Block})
    if (s == recompute_name(r)) return r;
  REDI_FAIL("recompute policy '", std::string(s), "' is not one of none, attention, mlp, block");
}

}  // namespace redi
