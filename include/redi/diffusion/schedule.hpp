// redi/diffusion/schedule.hpp — the DDPM Gaussian schedule (all in double), timestep
// respacing, and the small per-element formulas of the variational bound (normal KL and the
// discretised Gaussian decoder), each with the derivative the learned-sigma loss needs.
// Follows improved-DDPM / DiT `gaussian_diffusion.py` and `respace.py` (equations in
// docs/objectives.md and docs/samplers.md).
#pragma once
#include <algorithm>
#include <cfenv>
#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "redi/core/error.hpp"

namespace redi::diffusion {

/// numpy.linspace(b0*s, b1*s, T) with s = 1000/T (DiT's "linear" schedule), in double.
inline std::vector<double> linear_betas(int T = 1000, double beta_start = 1e-4,
                                        double beta_end = 0.02) {
  REDI_CHECK(T >= 2, "linear_betas: need at least 2 timesteps, got ", T);
  const double s = 1000.0 / T, a = beta_start * s, b = beta_end * s;
  const double step = (b - a) / double(T - 1);
  std::vector<double> betas(T);
  for (int i = 0; i < T; ++i) betas[i] = a + double(i) * step;  // numpy: arange*step + start
  betas[T - 1] = b;                                             // numpy sets the endpoint exactly
  return betas;
}

/// A (possibly respaced) DDPM schedule. Index i runs over the kept steps; timestep_map[i] is
/// the ORIGINAL timestep the network is fed.
struct GaussianSchedule {
  std::vector<double> betas, log_betas, alphas_cumprod, alphas_cumprod_prev;
  std::vector<double> sqrt_alphas_cumprod, sqrt_one_minus_alphas_cumprod;
  std::vector<double> sqrt_recip_alphas_cumprod, sqrt_recipm1_alphas_cumprod;
  std::vector<double> posterior_variance, posterior_log_variance_clipped;
  std::vector<double> posterior_mean_coef1, posterior_mean_coef2;
  std::vector<double> fixed_large_log_variance;  // log(append(posterior_variance[1], betas[1:]))
  std::vector<int> timestep_map;

  int size() const { return int(betas.size()); }

  static GaussianSchedule from_betas(std::vector<double> b, std::vector<int> map = {}) {
    const int n = int(b.size());
    REDI_CHECK(n >= 2, "GaussianSchedule: need at least 2 steps, got ", n);
    GaussianSchedule s;
    if (map.empty()) {
      map.resize(n);
      for (int i = 0; i < n; ++i) map[i] = i;
    }
    REDI_CHECK(int(map.size()) == n, "GaussianSchedule: timestep_map size mismatch");
    s.timestep_map = std::move(map);
    s.betas = std::move(b);
    auto vec = [n] { return std::vector<double>(n); };
    s.log_betas = vec(); s.alphas_cumprod = vec(); s.alphas_cumprod_prev = vec();
    s.sqrt_alphas_cumprod = vec(); s.sqrt_one_minus_alphas_cumprod = vec();
    s.sqrt_recip_alphas_cumprod = vec(); s.sqrt_recipm1_alphas_cumprod = vec();
    s.posterior_variance = vec(); s.posterior_log_variance_clipped = vec();
    s.posterior_mean_coef1 = vec(); s.posterior_mean_coef2 = vec();
    s.fixed_large_log_variance = vec();
    double acp = 1.0;
    for (int i = 0; i < n; ++i) {
      const double beta = s.betas[i];
      REDI_CHECK(beta > 0 && beta <= 1, "GaussianSchedule: beta[", i, "]=", beta, " not in (0,1]");
      s.alphas_cumprod_prev[i] = acp;
      acp *= (1.0 - beta);
      s.alphas_cumprod[i] = acp;
    }
    for (int i = 0; i < n; ++i) {
      const double ac = s.alphas_cumprod[i], acp_i = s.alphas_cumprod_prev[i], beta = s.betas[i];
      s.log_betas[i] = std::log(beta);
      s.sqrt_alphas_cumprod[i] = std::sqrt(ac);
      s.sqrt_one_minus_alphas_cumprod[i] = std::sqrt(1.0 - ac);
      s.sqrt_recip_alphas_cumprod[i] = std::sqrt(1.0 / ac);
      s.sqrt_recipm1_alphas_cumprod[i] = std::sqrt(1.0 / ac - 1.0);
      s.posterior_variance[i] = beta * (1.0 - acp_i) / (1.0 - ac);
      s.posterior_mean_coef1[i] = beta * std::sqrt(acp_i) / (1.0 - ac);
      s.posterior_mean_coef2[i] = (1.0 - acp_i) * std::sqrt(1.0 - beta) / (1.0 - ac);
    }
    // posterior_variance[0] = 0: the clipped log uses posterior_variance[1] at index 0.
    for (int i = 0; i < n; ++i) {
      s.posterior_log_variance_clipped[i] = std::log(s.posterior_variance[i == 0 ? 1 : i]);
      s.fixed_large_log_variance[i] =
          i == 0 ? std::log(s.posterior_variance[1]) : std::log(s.betas[i]);
    }
    return s;
  }

  /// The DiT/SiT base schedule: T linear betas 1e-4..0.02.
  static GaussianSchedule linear(int T = 1000) { return from_betas(linear_betas(T)); }

  /// improved-DDPM SpacedDiffusion: keep the (sorted, unique) timesteps `use`, recompute
  /// betas from the kept alphas_cumprod: beta_i = 1 - abar[k_i] / abar[k_{i-1}].
  GaussianSchedule respaced(const std::vector<int>& use) const {
    std::vector<double> nb;
    std::vector<int> map;
    double last = 1.0;
    std::size_t j = 0;
    for (int i = 0; i < size() && j < use.size(); ++i) {
      if (use[j] != i) continue;
      nb.push_back(1.0 - alphas_cumprod[i] / last);
      last = alphas_cumprod[i];
      map.push_back(timestep_map[i]);
      ++j;
    }
    REDI_CHECK(j == use.size(), "respaced: timesteps must be sorted, unique and < ", size());
    return from_betas(std::move(nb), std::move(map));
  }
};

/// improved-DDPM space_timesteps(T, spec): "250" / "10,15,20" (per-section counts, evenly
/// strided inside each of len(counts) equal sections, Python round-half-even), or "ddimN"
/// (the integer stride s with len(range(0,T,s)) == N). Returns the sorted kept timesteps.
inline std::vector<int> space_timesteps(int T, const std::string& spec) {
  REDI_CHECK(T >= 1, "space_timesteps: T must be positive");
  std::vector<int> out;
  if (spec.empty()) {
    for (int i = 0; i < T; ++i) out.push_back(i);
    return out;
  }
  if (spec.rfind("ddim", 0) == 0) {
    const int want = std::atoi(spec.c_str() + 4);
    for (int stride = 1; stride < T; ++stride) {
      if ((T + stride - 1) / stride == want) {
        for (int i = 0; i < T; i += stride) out.push_back(i);
        return out;
      }
    }
    REDI_FAIL("space_timesteps: cannot create exactly ", want, " steps with an integer stride");
  }
  std::vector<int> counts;
  std::size_t pos = 0;
  while (pos <= spec.size()) {
    std::size_t comma = spec.find(',', pos);
    if (comma == std::string::npos) comma = spec.size();
    const std::string tok = spec.substr(pos, comma - pos);
    REDI_CHECK(!tok.empty() && tok.find_first_not_of("0123456789") == std::string::npos,
               "space_timesteps: bad section count '", tok, "' in '", spec, "'");
    counts.push_back(std::atoi(tok.c_str()));
    pos = comma + 1;
  }
  const int nsec = int(counts.size());
  const int size_per = T / nsec, extra = T % nsec;
  int start = 0;
  const int old_round = std::fegetround();
  std::fesetround(FE_TONEAREST);  // Python's round(): half to even
  for (int i = 0; i < nsec; ++i) {
    const int size = size_per + (i < extra ? 1 : 0);
    const int count = counts[i];
    REDI_CHECK(count >= 1 && count <= size, "space_timesteps: cannot divide section of ", size,
               " steps into ", count);
    const double frac_stride = count <= 1 ? 1.0 : double(size - 1) / double(count - 1);
    double cur = 0.0;
    for (int k = 0; k < count; ++k) {
      out.push_back(start + int(std::nearbyint(cur)));
      cur += frac_stride;
    }
    start += size;
  }
  std::fesetround(old_round);
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

// ---- per-element variational-bound pieces (double) ----

/// KL( N(m1, e^lv1) || N(m2, e^lv2) ) in nats; *d_lv2 = d KL / d lv2.
inline double normal_kl(double m1, double lv1, double m2, double lv2, double* d_lv2) {
  const double d = m1 - m2;
  const double r = std::exp(lv1 - lv2), q = d * d * std::exp(-lv2);
  if (d_lv2) *d_lv2 = 0.5 * (1.0 - r - q);
  return 0.5 * (-1.0 + lv2 - lv1 + r + q);
}

/// improved-DDPM's tanh approximation of the standard normal CDF, and its derivative.
inline double approx_std_normal_cdf(double u, double* dcdf) {
  constexpr double c = 0.7978845608028654;  // sqrt(2/pi)
  const double th = std::tanh(c * (u + 0.044715 * u * u * u));
  if (dcdf) *dcdf = 0.5 * (1.0 - th * th) * c * (1.0 + 3.0 * 0.044715 * u * u);
  return 0.5 * (1.0 + th);
}

/// log p(x) of the discretised Gaussian decoder (bin width 2/255, edge bins open) with mean
/// `mean` and log std `log_scale`; *d_ls = d logp / d log_scale (0 where a clamp is active).
inline double discretized_gaussian_loglik(double x, double mean, double log_scale, double* d_ls) {
  const double cx = x - mean, inv = std::exp(-log_scale);
  const double pin = inv * (cx + 1.0 / 255.0), min = inv * (cx - 1.0 / 255.0);
  double dp, dm;
  const double cdf_plus = approx_std_normal_cdf(pin, &dp);
  const double cdf_min = approx_std_normal_cdf(min, &dm);
  constexpr double tiny = 1e-12;
  double lp, g = 0.0;  // d pin / d ls = -pin ; d min / d ls = -min
  if (x < -0.999) {
    lp = std::log(std::max(cdf_plus, tiny));
    if (cdf_plus > tiny) g = dp * (-pin) / cdf_plus;
  } else if (x > 0.999) {
    const double one_m = 1.0 - cdf_min;
    lp = std::log(std::max(one_m, tiny));
    if (one_m > tiny) g = -dm * (-min) / one_m;
  } else {
    const double delta = cdf_plus - cdf_min;
    lp = std::log(std::max(delta, tiny));
    if (delta > tiny) g = (dp * (-pin) - dm * (-min)) / delta;
  }
  if (d_ls) *d_ls = g;
  return lp;
}

/// One element's vb term in BITS at schedule index i (0 = decoder NLL, else the KL of the
/// true posterior q(x_{i-1}|x_i,x0) from the model's p with the model mean (from eps_pred)
/// treated as a constant), learned range log var = frac*log(beta) + (1-frac)*log(pv_clipped)
/// with frac = (v+1)/2. *d_v = d vb / d v.
inline double vb_bits(const GaussianSchedule& s, int i, double x0, double xt, double eps_pred,
                       double v, double* d_v) {
  constexpr double inv_ln2 = 1.4426950408889634;
  const double frac = 0.5 * (v + 1.0);
  const double min_log = s.posterior_log_variance_clipped[i], max_log = s.log_betas[i];
  const double model_lv = frac * max_log + (1.0 - frac) * min_log;
  const double dlv_dv = 0.5 * (max_log - min_log);
  const double px0 = s.sqrt_recip_alphas_cumprod[i] * xt - s.sqrt_recipm1_alphas_cumprod[i] * eps_pred;
  const double c1 = s.posterior_mean_coef1[i], c2 = s.posterior_mean_coef2[i];
  const double model_mean = c1 * px0 + c2 * xt;
  double val, dlv;
  if (i == 0) {
    double dls;
    val = -discretized_gaussian_loglik(x0, model_mean, 0.5 * model_lv, &dls);
    dlv = -0.5 * dls;
  } else {
    const double true_mean = c1 * x0 + c2 * xt;
    val = normal_kl(true_mean, min_log, model_mean, model_lv, &dlv);
  }
  if (d_v) *d_v = dlv * dlv_dv * inv_ln2;
  return val * inv_ln2;
}

}  // namespace redi::diffusion
