// redi/diffusion/objectives.hpp — the compile-time objective policies (redi::DDPM,
// redi::FlowMatching), their per-element forward-process math, and the Philox keying of
// every random number the diffusion code draws. Equations: docs/objectives.md.
#pragma once
#include <concepts>
#include <cstdint>
#include <type_traits>

#include "redi/core/philox.hpp"
#include "redi/diffusion/network.hpp"
#include "redi/diffusion/schedule.hpp"

namespace redi {

/// DiT objective: 1000-step DDPM, linear betas 1e-4..0.02, eps prediction; with a
/// learned-sigma network the loss is mse + vb (improved-DDPM hybrid loss).
struct DDPM {
  static constexpr bool is_ddpm = true;
  static constexpr bool is_flow = false;
  static constexpr bool supports_learned_sigma = true;
  static constexpr int num_timesteps = 1000;
  static constexpr double beta_start = 1e-4, beta_end = 0.02;
  static constexpr const char* name = "DDPM";
};

/// SiT objective: linear path x_t = t x1 + (1-t) n (t = 1 is data), t ~ U[0,1), velocity
/// target x1 - n.
struct FlowMatching {
  static constexpr bool is_ddpm = false;
  static constexpr bool is_flow = true;
  static constexpr bool supports_learned_sigma = false;
  static constexpr const char* name = "FlowMatching";
};

template <class O>
concept Objective = requires {
  { O::is_ddpm } -> std::convertible_to<bool>;
  { O::is_flow } -> std::convertible_to<bool>;
  { O::supports_learned_sigma } -> std::convertible_to<bool>;
} && (O::is_ddpm != O::is_flow);

namespace diffusion {

/// Compile-time check of the objective a loss or sampler is instantiated with (whether a
/// network learns sigma is a run-time property: checked against the objective at run time).
template <class O, class N>
constexpr void check_objective_network() {
  static_assert(Objective<O>, "redi: the objective must be redi::DDPM or redi::FlowMatching");
}

// ---- forward process, per element ----

/// DDPM q_sample: x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps.
inline double ddpm_q_sample(double x0, double eps, double sqrt_ac, double sqrt_1mac) {
  return sqrt_ac * x0 + sqrt_1mac * eps;
}
/// Flow linear path: x_t = t x1 + (1 - t) n ; target velocity x1 - n.
inline double flow_interp(double x1, double n, double t) { return t * x1 + (1.0 - t) * n; }
inline double flow_velocity_target(double x1, double n) { return x1 - n; }

// ---- random numbers: redi::philox keyed so that nothing depends on the batch layout ----

namespace rng {

/// Purposes (16 bits of the Philox stream id). Each (purpose, global sample index, step)
/// is an independent stream.
enum Purpose : std::uint32_t {
  TrainNoise = 1,     // noise for all Cin channels of a training sample (x then z), elem c*HW+p
  TrainTime = 2,      // the sample's timestep / t
  LabelDrop = 3,      // the sample's label-dropout coin
  RepDropSample = 4,  // per-sample representation-drop coin
  RepDropBatch = 5,   // the once-per-batch representation-drop coin (sample index 0)
  SampleInit = 16,    // initial noise x_T / x_{t=0} of a generated sample
  SampleStep = 17,    // per-step noise of a generated sample (step = sampler step index)
};

inline std::uint64_t splitmix64(std::uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/// Philox key of a training step: the stream id has only 16 step bits, so the (64-bit)
/// training step is folded into the key instead: key = splitmix64(seed ^ splitmix64(step)).
inline std::uint64_t train_key(std::uint64_t seed, std::uint64_t step) {
  return splitmix64(seed ^ splitmix64(step));
}

inline std::uint64_t stream(Purpose p, std::uint64_t sample, std::uint32_t step = 0) {
  return philox::stream_id(std::uint32_t(p), sample, step);
}

}  // namespace rng
}  // namespace diffusion
}  // namespace redi
