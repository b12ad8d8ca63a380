// redi/nn/backbone.hpp — backbone policies. DiT and SiT share the transformer
// (nn/transformer.hpp); the policy says what the timestep input means and whether the model may
// learn its variance. Objective compatibility is checked by redi::ReDi.
#pragma once
#include <concepts>

namespace redi {

/// DiT (Peebles & Xie): integer DDPM timesteps 0..999 fed to the embedder; optional learned sigma.
struct DiT {
  static constexpr const char* name = "DiT";
  static constexpr bool integer_timesteps = true;
  static constexpr bool supports_learn_sigma = true;
};

/// SiT (Ma et al.): flow-matching time t in [0, 1] fed raw; no learned sigma.
struct SiT {
  static constexpr const char* name = "SiT";
  static constexpr bool integer_timesteps = false;
  static constexpr bool supports_learn_sigma = false;
};

template <class B>
concept Backbone = requires {
  { B::name } -> std::convertible_to<const char*>;
  { B::integer_timesteps } -> std::convertible_to<bool>;
  { B::supports_learn_sigma } -> std::convertible_to<bool>;
};

}  // namespace redi
