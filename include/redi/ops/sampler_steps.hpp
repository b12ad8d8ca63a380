// redi/ops/sampler_steps.hpp — the per-element work of a flow sampler step with guidance, as ops,
// so a device runs the whole reverse process next to its network (redi::DeviceSampler,
// redi/device_sampler.hpp): no state download/upload per network evaluation and no host noise.
// The host Sampler (diffusion/samplers.hpp) and guided_prediction (diffusion/guidance.hpp) are
// the reference; these CPU loops repeat theirs bit for bit, the CUDA ones
// (redi/cuda/ops/sampler_steps.cuh) give the same bits (device Philox, correctly rounded double
// intrinsics: REDI_DMUL/REDI_DADD/REDI_DSUB).
//
//   fill_normal_rows   row b of dst [B, n] = T(philox::normal(seed, stream_id(purpose, index[b], step), e))
//   guidance_inputs    the nb*B branch rows of one batched forward: row k*B + b = x[b] (its
//                      feature elements e >= nx zeroed in the RG branch), time t, label
//                      y[b] or the null class in the CFG branch
//   guidance_combine   pred[b, e] from the branch outputs: CFG u + w (c - u) (image channels, or
//                      all with guide_features), RG e0 + w_r (c - e0), both (CFG or c) +
//                      (w_r - 1)(c - e0); nb = 1: pred = the conditional output
//   flow_step          SDE Euler-Maruyama x + drift dt + sd n (drift = v + norm (t v - x)), the
//                      noiseless "mean" step (noise null), or the ODE Euler step x + h v
#pragma once
#include <cstdint>

#include "redi/core/device.hpp"
#include "redi/core/philox.hpp"

namespace redi::ops {

/// The branch layout of one guided forward (diffusion/guidance.hpp).
struct GuideSpec {
  int B = 0, nb = 1;                  // rows per branch, branches evaluated (1 outside the interval)
  int null_class = 0;
  int cfg_branch = -1, rg_branch = -1;  // branch index, or -1
  bool cfg = false, rg = false, guide_features = false;
  std::int64_t nin = 0, nout = 0, nx = 0;  // input / output elements per row, image elements
};

enum class FlowStep : int { Sde = 0, Mean = 1, Euler = 2 };

template <class T>
void fill_normal_rows(const Cpu&, T* dst, int B, std::int64_t n, std::uint64_t seed, const std::uint64_t* index,
                      std::uint32_t purpose, std::uint32_t step) {
#if defined(_OPENMP)
#pragma omp parallel for schedule(static) if (std::int64_t(B) * n >= 65536)
#endif
  for (int b = 0; b < B; ++b)
    philox::fill_normal(dst + b * n, std::size_t(n), seed, philox::stream_id(purpose, index[b], step));
}

template <class T>
void guidance_inputs(const Cpu&, T* in, T* time, int* labels, const T* x, const int* y, const GuideSpec& g,
                     double t) {
  for (int k = 0; k < g.nb; ++k)
    for (int b = 0; b < g.B; ++b) {
      const int row = k * g.B + b;
      T* dst = in + row * g.nin;
      const T* src = x + b * g.nin;
      const bool zero_z = k == g.rg_branch;
      for (std::int64_t e = 0; e < g.nin; ++e) dst[e] = (zero_z && e >= g.nx) ? T(0) : src[e];
      time[row] = T(t);
      labels[row] = k == g.cfg_branch ? g.null_class : (y ? y[b] : 0);
    }
}

/// One element of guided_prediction's combination (k = b*nout + e of branch 0's output).
template <class T>
REDI_HD T guide_element(const T* out, const GuideSpec& g, std::int64_t k, std::int64_t e, double w, double wr) {
  const double c = double(out[k]);
  if (e >= g.nin) return out[k];  // learned variance: the conditional values
  const bool cfg_here = g.guide_features || e < g.nx;
  const std::int64_t rows = std::int64_t(g.B) * g.nout;
  double r;
  if (g.cfg && g.rg) {
    const double u = double(out[g.cfg_branch * rows + k]), e0 = double(out[g.rg_branch * rows + k]);
    r = REDI_DADD(cfg_here ? REDI_DADD(u, REDI_DMUL(w, REDI_DSUB(c, u))) : c, REDI_DMUL(REDI_DSUB(wr, 1.0), REDI_DSUB(c, e0)));
  } else if (g.cfg) {
    const double u = double(out[g.cfg_branch * rows + k]);
    r = cfg_here ? REDI_DADD(u, REDI_DMUL(w, REDI_DSUB(c, u))) : c;
  } else if (g.rg) {
    const double e0 = double(out[g.rg_branch * rows + k]);
    r = REDI_DADD(e0, REDI_DMUL(wr, REDI_DSUB(c, e0)));
  } else {
    r = c;
  }
  return T(r);
}

template <class T>
void guidance_combine(const Cpu&, T* pred, const T* out, const GuideSpec& g, double w, double wr) {
  const std::int64_t n = std::int64_t(g.B) * g.nout;
  if (g.nb == 1) {
    for (std::int64_t k = 0; k < n; ++k) pred[k] = out[k];
    return;
  }
#if defined(_OPENMP)
#pragma omp parallel for schedule(static) if (n >= 65536)
#endif
  for (std::int64_t k = 0; k < n; ++k) pred[k] = guide_element(out, g, k, k % g.nout, w, wr);
}

/// One element of a flow step (the host Sampler's expressions, operation for operation).
REDI_HD double flow_step_element(FlowStep kind, double xv, double v, double n, double t, double h,
                                        double norm, double sd) {
  if (kind == FlowStep::Euler) return REDI_DADD(xv, REDI_DMUL(h, v));
  const double drift = REDI_DADD(v, REDI_DMUL(norm, REDI_DSUB(REDI_DMUL(t, v), xv)));
  const double y = REDI_DADD(xv, REDI_DMUL(drift, h));
  return kind == FlowStep::Sde ? REDI_DADD(y, REDI_DMUL(sd, n)) : y;
}

/// x[k] = T(step(x[k], v[k], noise[k])) over the B rows of nin elements; v rows are nout apart
/// (= nin without learned sigma); noise may be null except for FlowStep::Sde.
template <class T>
void flow_step(const Cpu&, T* x, const T* v, const T* noise, std::int64_t n, FlowStep kind, double t, double h,
               double norm, double sd) {
#if defined(_OPENMP)
#pragma omp parallel for schedule(static) if (n >= 65536)
#endif
  for (std::int64_t k = 0; k < n; ++k)
    x[k] = T(flow_step_element(kind, double(x[k]), double(v[k]), noise ? double(noise[k]) : 0.0, t, h, norm, sd));
}

}  // namespace redi::ops
