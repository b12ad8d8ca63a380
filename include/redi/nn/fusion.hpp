// redi/nn/fusion.hpp — token-fusion policies (docs/method.md section 3) as empty tag types.
//  Merged:   one token per patch, h = x W^x + z W^z (= one patch-embed over the channel concat);
//            one final linear with p*p*(Cx + r) outputs. Cost of the plain DiT.
//  Separate: 2L tokens [x tokens ; z tokens], each modality with its own patch embed and head;
//            both halves get the same 2-D sin-cos position table (a z token sits at the same
//            image position as its x token); the final adaLN/LN is shared. ~2x compute.
#pragma once
#include <concepts>

namespace redi {

struct Merged {
  static constexpr const char* name = "Merged";
  static constexpr int sequence_factor = 1;  // tokens per patch
};

struct Separate {
  static constexpr const char* name = "Separate";
  static constexpr int sequence_factor = 2;
};

template <class F>
concept Fusion = requires {
  { F::name } -> std::convertible_to<const char*>;
  { F::sequence_factor } -> std::convertible_to<int>;
} && (std::same_as<F, Merged> || std::same_as<F, Separate>);

}  // namespace redi
