// redi/diffusion/guidance.hpp — guidance policies (compile-time tags) and the one function
// that evaluates a guided prediction with ONE batched net.forward. Equations: docs/guidance.md.
//
// Branch rows of the batched forward (each B rows, stacked along the batch):
//   NoGuidance                : [ (y, z_t) ]
//   CFG<Mode>                 : [ (y, z_t) | (null, z_t) ]
//   RepGuidance               : [ (y, z_t) | (y, 0) ]             (noisy z input zeroed)
//   Combine<CFG<Mode>, RepGuidance>: [ (y, z_t) | (null, z_t) | (y, 0) ]
// Guided prediction (on the first Cin output channels; learned-variance channels keep the
// conditional branch's values):
//   CFG : g = u + w (c - u)      on the image channels (VaeOnly) or all channels (Joint)
//   RG  : g = e0 + w_r (c - e0)  on all channels
//   both: g = CFG(c, u; w) + (w_r - 1)(c - e0)
//         = c + (w - 1)(c - u) + (w_r - 1)(c - e0)   -> w_r = 1: CFG alone; w = 1: RG alone.
#pragma once
#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

#include "redi/diffusion/network.hpp"

namespace redi {

/// CFG modes: guide the image-latent channels only (paper default) or all channels.
struct VaeOnly { static constexpr bool guide_features = false; };
struct Joint { static constexpr bool guide_features = true; };

struct NoGuidance {
  static constexpr int branches = 1;
  static constexpr bool uses_cfg = false, uses_rg = false, guide_features = false;
};

template <class Mode>
struct CFG {
  static_assert(std::is_same_v<Mode, VaeOnly> || std::is_same_v<Mode, Joint>,
                "redi::CFG<Mode>: Mode must be redi::VaeOnly (guide image channels only, the "
                "paper's choice) or redi::Joint (guide image and feature channels)");
  using mode = Mode;
  static constexpr int branches = 2;
  static constexpr bool uses_cfg = true, uses_rg = false, guide_features = Mode::guide_features;
};

/// Representation guidance: unconditional branch = same label, noisy z input zeroed.
struct RepGuidance {
  static constexpr int branches = 2;
  static constexpr bool uses_cfg = false, uses_rg = true, guide_features = true;
};

namespace diffusion::detail {
template <class G> struct is_cfg : std::false_type {};
template <class M> struct is_cfg<CFG<M>> : std::true_type {};
template <class A, class B> struct combine_traits { static constexpr bool ok = false; using cfg = CFG<VaeOnly>; };
template <class M> struct combine_traits<CFG<M>, RepGuidance> { static constexpr bool ok = true; using cfg = CFG<M>; };
template <class M> struct combine_traits<RepGuidance, CFG<M>> { static constexpr bool ok = true; using cfg = CFG<M>; };
}  // namespace diffusion::detail

/// CFG and RG together (3 branches). Only CFG<Mode> + RepGuidance, in either order.
template <class A, class B>
struct Combine {
  static_assert(diffusion::detail::combine_traits<A, B>::ok,
                "redi::Combine<A, B>: only redi::CFG<Mode> with redi::RepGuidance can be combined; "
                "for a single guidance use redi::NoGuidance, redi::CFG<Mode> or redi::RepGuidance");
  using cfg = typename diffusion::detail::combine_traits<A, B>::cfg;
  using mode = typename cfg::mode;
  static constexpr int branches = 3;
  static constexpr bool uses_cfg = true, uses_rg = true, guide_features = cfg::guide_features;
};

template <class G>
concept GuidancePolicy = requires {
  { G::branches } -> std::convertible_to<int>;
  { G::uses_cfg } -> std::convertible_to<bool>;
  { G::uses_rg } -> std::convertible_to<bool>;
  { G::guide_features } -> std::convertible_to<bool>;
};

/// Run-time guidance scales. The interval is in the NETWORK's time units (DDPM: original
/// timestep 0..999; flow: t in [0,1]); outside [interval_lo, interval_hi] the conditional
/// prediction is used and only the B conditional rows are evaluated.
struct GuidanceOptions {
  double cfg_scale = 1.0;  // w   (paper: 2.4 with CFG<VaeOnly>)
  double rg_scale = 1.0;   // w_r (paper: 1.5 for B models, 1.1 for XL)
  double interval_lo = -std::numeric_limits<double>::infinity();
  double interval_hi = std::numeric_limits<double>::infinity();
};

namespace diffusion {

// ---- per-element combination rules ----
inline double cfg_rule(double c, double u, double w) { return u + w * (c - u); }
inline double rg_rule(double c, double e0, double wr) { return e0 + wr * (c - e0); }
inline double cfg_rg_rule(double c, double u, double e0, double w, double wr, bool cfg_here) {
  return (cfg_here ? cfg_rule(c, u, w) : c) + (wr - 1.0) * (c - e0);
}

/// Scratch for guided_prediction: sized on first use, reused afterwards.
template <class T>
struct GuidanceWorkspace {
  std::vector<T> in, out, time;
  std::vector<int> labels;
  std::size_t allocations = 0;
  int last_batch = 0;  // rows of the last net.forward (tests)
  void reserve(std::size_t rows, std::size_t in_per, std::size_t out_per) {
    if (in.size() >= rows * in_per && out.size() >= rows * out_per && time.size() >= rows) return;
    ++allocations;
    in.resize(rows * in_per); out.resize(rows * out_per); time.resize(rows); labels.resize(rows);
  }
};

inline bool guidance_active(const GuidanceOptions& g, double t) {
  return t >= g.interval_lo && t <= g.interval_hi;
}

/// pred[B, Cout, H, W] = the guided network output at state x[B, Cin, H, W] and network time
/// t_net (same for all rows), labels[B] (nullptr: all 0). One net.forward of G::branches*B
/// rows (or B rows outside the guidance interval).
template <GuidancePolicy G, Network N>
void guided_prediction(N& net, const GuidanceOptions& g, const typename N::value_type* x,
                       double t_net, const int* labels, int B, GuidanceWorkspace<typename N::value_type>& ws,
                       typename N::value_type* pred) {
  using T = typename N::value_type;
  const Layout L = layout_of(net);
  const long long nin = L.in_elems(), nout = L.out_elems(), hw = L.hw();
  const long long nx = (long long)L.cx * hw;
  const bool active = G::branches > 1 && guidance_active(g, t_net);
  const int nb = active ? G::branches : 1;
  ws.reserve(std::size_t(G::branches) * B, std::size_t(nin), std::size_t(nout));
  const int null = int(net.null_class());
  // branch roles: 0 = (y, z_t); cfg -> (null, z_t); rg -> (y, 0)
  const int cfg_branch = G::uses_cfg ? 1 : -1;
  const int rg_branch = G::uses_rg ? (G::uses_cfg ? 2 : 1) : -1;
  for (int k = 0; k < nb; ++k) {
    for (int b = 0; b < B; ++b) {
      const int row = k * B + b;
      T* dst = ws.in.data() + row * nin;
      const T* src = x + b * nin;
      const bool zero_z = (k == rg_branch);
      for (long long e = 0; e < nin; ++e) dst[e] = (zero_z && e >= nx) ? T(0) : src[e];
      ws.time[row] = T(t_net);
      const int y = labels ? labels[b] : 0;
      ws.labels[row] = (k == cfg_branch) ? null : y;
    }
  }
  ws.last_batch = nb * B;
  diffusion::evaluate(net, ws.in.data(), ws.time.data(), ws.labels.data(), nb * B, ws.out.data());
  const T* oc = ws.out.data();
  if (!active) {
    for (long long e = 0; e < (long long)B * nout; ++e) pred[e] = oc[e];
    return;
  }
  const double w = g.cfg_scale, wr = g.rg_scale;
  const T* ou = cfg_branch > 0 ? ws.out.data() + (long long)cfg_branch * B * nout : nullptr;
  const T* o0 = rg_branch > 0 ? ws.out.data() + (long long)rg_branch * B * nout : nullptr;
#if defined(_OPENMP)
#pragma omp parallel for schedule(static) if ((long long)B * nout >= kOmpMinWork)
#endif
  for (int b = 0; b < B; ++b) {
    for (long long e = 0; e < nout; ++e) {
      const long long k = b * nout + e;
      const double c = double(oc[k]);
      if (e >= nin) { pred[k] = oc[k]; continue; }  // learned variance: conditional values
      const bool cfg_here = G::guide_features || e < nx;
      double r;
      if constexpr (G::uses_cfg && G::uses_rg) {
        r = cfg_rg_rule(c, double(ou[k]), double(o0[k]), w, wr, cfg_here);
      } else if constexpr (G::uses_cfg) {
        r = cfg_here ? cfg_rule(c, double(ou[k]), w) : c;
      } else if constexpr (G::uses_rg) {
        r = rg_rule(c, double(o0[k]), wr);
      } else {
        r = c;
      }
      pred[k] = T(r);
    }
  }
}

}  // namespace diffusion
}  // namespace redi
