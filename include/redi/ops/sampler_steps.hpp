// redi/ops/sampler_steps.hpp — the per-element work of a sampler step with guidance, as ops, so a
// device runs the whole reverse process next to its network (redi::DeviceSampler,
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
//   heun_step          OdeHeun's predictor out = x + h v1 (v2 null) or corrector
//                      out = x + (0.5 h)(v1 + v2)
//   ddpm_step          one DDPM reverse step from eps (and the learned-variance channels):
//                      x0 = sr x - srm1 eps (clamped to [-1, 1] with clip); Ancestral
//                      c1 x0 + c2 x + exp(lv / 2) n, lv fixed (its exp(lv / 2) given) or
//                      learned: f = (v + 1) / 2, lv = f log beta + (1 - f) log var_post;
//                      DDIM x0 sqrt(abar') + sqrt(1 - abar' - s^2) eps + s n (eps re-derived
//                      from the clipped x0 with clip); the noise term only when noisy.
//   impose_known       feature-conditioned sampling (SampleRequest::known_z): row b's feature
//                      elements := a known + c zn (the known features noised to the current
//                      time with the row's initial feature noise zn), or known itself (zn null)
// Every expression is the host Sampler's, operation for operation and in the same order; the
// one libm call (exp of a learned log variance) is std::exp on the CPU and CUDA's exp (<= 1 ulp
// in double) on the GPU: the only place a GPU state may differ from the CPU's.
#pragma once
#include <cmath>
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

/// OdeHeun: T(x + h v1) (the Euler predictor) or, with corrector, T(x + (0.5 h)(v1 + v2)) (the
/// trapezoid, as the host Sampler writes 0.5 * h * (v1 + v2)).
REDI_HD double heun_step_element(double xv, double v1, double v2, bool corrector, double h) {
  return corrector ? REDI_DADD(xv, REDI_DMUL(REDI_DMUL(0.5, h), REDI_DADD(v1, v2))) : REDI_DADD(xv, REDI_DMUL(h, v1));
}

/// out[k] = heun_step_element(x[k], v1[k], v2[k], v2 != null, h); out may alias x, v2 may be
/// null (the predictor).
template <class T>
void heun_step(const Cpu&, T* out, const T* x, const T* v1, const T* v2, std::int64_t n, double h) {
#if defined(_OPENMP)
#pragma omp parallel for schedule(static) if (n >= 65536)
#endif
  for (std::int64_t k = 0; k < n; ++k)
    out[k] = T(heun_step_element(double(x[k]), double(v1[k]), v2 ? double(v2[k]) : 0.0, v2 != nullptr, h));
}

enum class DdpmKind : int { Ancestral = 0, Ddim = 1 };

/// One DDPM reverse step i: the respaced schedule's per-step scalars (the host computes them
/// exactly as the host Sampler does) and the row layout.
struct DdpmStep {
  DdpmKind kind = DdpmKind::Ancestral;
  int B = 0;
  std::int64_t nin = 0, nout = 0;  // state / prediction elements per row (nout = 2 nin: learned sigma)
  double sr = 0, srm1 = 0;         // sqrt(1 / abar_i), sqrt(1 / abar_i - 1)
  double c1 = 0, c2 = 0;           // posterior mean coefficients (Ancestral)
  bool clip = false;               // clamp x0 to [-1, 1]
  bool noisy = false;              // add sd n (Ancestral: i > 0; DDIM: i > 0 and eta != 0)
  bool learned = false;            // Ancestral: lv from pred channel nin + e, else sd is given
  double max_log = 0, min_log = 0; // learned: log beta_i, clipped posterior log variance_i
  double sd = 0;                   // Ancestral fixed: exp(0.5 lv); DDIM: sigma
  double a = 0, b = 0;             // DDIM: sqrt(abar_prev), sqrt(1 - abar_prev - sigma^2)
};

REDI_HD double ddpm_exp(double v) {
#if defined(__CUDA_ARCH__)
  return ::exp(v);
#else
  return std::exp(v);
#endif
}

/// One element: xv the state, eps the prediction, vraw the learned-variance value (learned only),
/// nz the noise (noisy only).
REDI_HD double ddpm_step_element(const DdpmStep& s, double xv, double eps, double vraw, double nz) {
  double px0 = REDI_DSUB(REDI_DMUL(s.sr, xv), REDI_DMUL(s.srm1, eps));
  if (s.clip) px0 = px0 < -1.0 ? -1.0 : (px0 > 1.0 ? 1.0 : px0);
  if (s.kind == DdpmKind::Ancestral) {
    const double mean = REDI_DADD(REDI_DMUL(s.c1, px0), REDI_DMUL(s.c2, xv));
    if (!s.noisy) return mean;
    double sd = s.sd;
    if (s.learned) {
      const double frac = REDI_DMUL(0.5, REDI_DADD(vraw, 1.0));
      const double lv = REDI_DADD(REDI_DMUL(frac, s.max_log), REDI_DMUL(REDI_DSUB(1.0, frac), s.min_log));
      sd = ddpm_exp(REDI_DMUL(0.5, lv));
    }
    return REDI_DADD(mean, REDI_DMUL(sd, nz));
  }
  if (s.clip) eps = REDI_DDIV(REDI_DSUB(REDI_DMUL(s.sr, xv), px0), s.srm1);
  const double mean = REDI_DADD(REDI_DMUL(px0, s.a), REDI_DMUL(s.b, eps));
  return s.noisy ? REDI_DADD(mean, REDI_DMUL(s.sd, nz)) : mean;
}

/// x [B, nin] := the step from pred [B, nout]; noise [B, nin] (may be null unless s.noisy).
template <class T>
void ddpm_step(const Cpu&, T* x, const T* pred, const T* noise, const DdpmStep& s) {
  const std::int64_t n = std::int64_t(s.B) * s.nin;
#if defined(_OPENMP)
#pragma omp parallel for schedule(static) if (n >= 65536)
#endif
  for (std::int64_t k = 0; k < n; ++k) {
    const std::int64_t b = k / s.nin, e = k % s.nin, p = b * s.nout + e;
    x[k] = T(ddpm_step_element(s, double(x[k]), double(pred[p]), s.learned ? double(pred[p + s.nin]) : 0.0,
                               s.noisy ? double(noise[k]) : 0.0));
  }
}

/// One feature element of feature-conditioned sampling: T(a k + c zn) (the host Sampler's
/// impose_known), or T(k) without zn (the output's features are the known ones).
REDI_HD double known_element(double k, double zn, bool noised, double a, double c) {
  return noised ? REDI_DADD(REDI_DMUL(a, k), REDI_DMUL(c, zn)) : k;
}

/// x [B, nin]: elements nx .. nin - 1 of row b := known_element(known[b, e], zn[b, e], zn != null, a, c),
/// known and zn [B, nin - nx].
template <class T>
void impose_known(const Cpu&, T* x, const float* known, const T* zn, int B, std::int64_t nin, std::int64_t nx,
                  double a, double c) {
  const std::int64_t nz = nin - nx;
  for (int b = 0; b < B; ++b)
    for (std::int64_t e = 0; e < nz; ++e) {
      const std::int64_t k = std::int64_t(b) * nz + e;
      x[std::int64_t(b) * nin + nx + e] = T(known_element(double(known[k]), zn ? double(zn[k]) : 0.0, zn != nullptr, a, c));
    }
}

}  // namespace redi::ops
