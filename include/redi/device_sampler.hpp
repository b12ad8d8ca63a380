// redi/device_sampler.hpp — redi::DeviceSampler<Net, S, G>: a flow sampler (SdeEulerMaruyama,
// OdeEuler) with any guidance policy, run entirely on the network's device: the state, the
// noise (device Philox, the host Sampler's streams), the branch rows of each guided forward,
// the guided combination and the step are device ops (redi/ops/sampler_steps.hpp); the host
// uploads B indices and labels once and downloads the B samples at the end. ReDi::sample uses
// it on devices whose backend has those ops; the host redi::Sampler through the DeviceBridge
// stays the reference and serves what this does not: DDPM samplers (Ancestral, DDIM), OdeHeun,
// feature-conditioned sampling (SampleRequest::known_z), learned sigma.
// Same results as the host Sampler bit for bit (the ops' contract; checked on a test device
// running the CPU ops by tests/test_device_path.cpp, the CUDA ops against the CPU ones by
// tests/cuda/test_cuda_sampler.cu).
#pragma once
#include <cmath>
#include <concepts>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "redi/core/error.hpp"
#include "redi/core/tensor.hpp"
#include "redi/diffusion/guidance.hpp"
#include "redi/diffusion/network.hpp"
#include "redi/diffusion/objectives.hpp"
#include "redi/diffusion/samplers.hpp"
#include "redi/ops/backend.hpp"
#include "redi/ops/sampler_steps.hpp"

namespace redi {

/// Whether Backend<Dev> has the sampler-step ops for master type M.
template <class Dev, class M>
concept DeviceSamplerBackend = requires(const Dev& d, M* x, const M* cx, int* iy, const int* cy,
                                        const std::uint64_t* idx, const ops::GuideSpec& g, std::int64_t n) {
  Backend<Dev>::fill_normal_rows(d, x, 1, n, std::uint64_t(0), idx, 0u, 0u);
  Backend<Dev>::guidance_inputs(d, x, x, iy, cx, cy, g, 0.0);
  Backend<Dev>::guidance_combine(d, x, cx, g, 1.0, 1.0);
  Backend<Dev>::flow_step(d, x, cx, cx, n, ops::FlowStep::Euler, 0.0, 0.0, 0.0, 0.0);
};

template <class Net, class S, class G>
class DeviceSampler {
  using M = typename Net::master_type;
  using T = typename Net::value_type;
  using Dev = typename Net::device_type;
  using Ops = Backend<Dev>;
  static constexpr bool kCast = !std::same_as<T, M>;

public:
  /// The sampler policies this runs (the rest: the host Sampler through the DeviceBridge).
  static constexpr bool kSampler = std::is_same_v<S, SdeEulerMaruyama> || std::is_same_v<S, OdeEuler>;

  /// Whether it serves this network and request.
  static bool serves(const Net& net, const SampleRequest& req) {
    return kSampler && req.known_z == nullptr && net.channels_out() == net.channels_in();
  }

  /// As Sampler<S, G, M>::run(net-through-the-bridge, x, req) with options so, guidance go;
  /// x [B, Cin, H, W] on the host.
  void run(Net& net, M* x, const SampleRequest& req, const typename S::Options& so, const GuidanceOptions& go)
    requires kSampler
  {
    REDI_CHECK(serves(net, req), "DeviceSampler: known_z or learned sigma: use the host Sampler");
    REDI_CHECK(req.B > 0, "Sampler: B must be positive");
    const diffusion::Layout L = diffusion::layout_of(net);
    const int B = req.B;
    const std::int64_t nin = L.in_elems();
    ensure(B, nin);
    // indices and labels, once
    for (int b = 0; b < B; ++b) hidx_[std::size_t(b)] = req.index ? req.index[b] : req.first_index + std::uint64_t(b);
    Dev::copy_from_host(idx_.data(), hidx_.data(), std::size_t(B) * sizeof(std::uint64_t));
    if (req.labels) Dev::copy_from_host(y_.data(), req.labels, std::size_t(B) * sizeof(int));
    const int* y = req.labels ? y_.data() : nullptr;
    const auto& ctx = net.context();
    ops::GuideSpec g;
    g.B = B;
    g.null_class = int(net.null_class());
    g.cfg = G::uses_cfg;
    g.rg = G::uses_rg;
    g.guide_features = G::guide_features;
    g.cfg_branch = G::uses_cfg ? 1 : -1;
    g.rg_branch = G::uses_rg ? (G::uses_cfg ? 2 : 1) : -1;
    g.nin = nin;
    g.nout = nin;
    g.nx = std::int64_t(L.cx) * L.hw();
    namespace rng = diffusion::rng;
    Ops::fill_normal_rows(ctx, x_.data(), B, nin, req.seed, idx_.data(), std::uint32_t(rng::SampleInit), 0u);
    auto predict = [&](double t) {
      g.nb = (G::branches > 1 && diffusion::guidance_active(go, t)) ? G::branches : 1;
      const int rows = g.nb * B;
      Ops::guidance_inputs(ctx, in_.data(), time_.data(), lab_.data(), x_.data(), y, g, t);
      if constexpr (kCast) {
        Ops::convert(ctx, in_c_.data(), in_.data(), rows * nin);
        net.infer(in_c_.data(), time_.data(), lab_.data(), rows, out_c_.data());
        Ops::convert(ctx, out_.data(), out_c_.data(), rows * nin);
      } else {
        net.infer(in_.data(), time_.data(), lab_.data(), rows, out_.data());
      }
      Ops::guidance_combine(ctx, pred_.data(), out_.data(), g, go.cfg_scale, go.rg_scale);
    };
    const std::int64_t n = std::int64_t(B) * nin;
    if constexpr (std::is_same_v<S, SdeEulerMaruyama>) {
      const int steps = so.num_steps;
      REDI_CHECK(steps >= 2, "SdeEulerMaruyama: num_steps must be >= 2 (grid points incl. both ends)");
      const double t0 = 0.0, t1 = 1.0 - so.last_step_size, norm = so.diffusion_norm;
      const double dt = (t1 - t0) / double(steps - 1);
      for (int k = 0; k < steps - 1; ++k) {
        const double t = t0 + dt * k;
        predict(t);
        Ops::fill_normal_rows(ctx, noise_.data(), B, nin, req.seed, idx_.data(), std::uint32_t(rng::SampleStep),
                              std::uint32_t(k));
        const double sd = std::sqrt(2.0 * norm * (1.0 - t) * dt);
        Ops::flow_step(ctx, x_.data(), pred_.data(), noise_.data(), n, ops::FlowStep::Sde, t, dt, norm, sd);
      }
      if (so.last_step_size > 0) {
        predict(t1);
        Ops::flow_step(ctx, x_.data(), pred_.data(), static_cast<const M*>(nullptr), n, ops::FlowStep::Mean, t1,
                       so.last_step_size, norm, 0.0);
      }
    } else {  // OdeEuler
      const int steps = so.num_steps;
      const double dt = 1.0 / double(steps);
      for (int k = 0; k < steps; ++k) {
        const double t = dt * k, tn = (k + 1 == steps) ? 1.0 : dt * (k + 1);
        predict(t);
        Ops::flow_step(ctx, x_.data(), pred_.data(), static_cast<const M*>(nullptr), n, ops::FlowStep::Euler, t,
                       tn - t, 0.0, 0.0);
      }
    }
    Dev::copy_to_host(x, x_.data(), std::size_t(n) * sizeof(M));
    ++runs_;
  }

  /// Sampling runs served so far (tests: the device path was taken).
  std::int64_t runs() const { return runs_; }

private:
  void ensure(int B, std::int64_t nin) {
    if (B <= cap_ && nin == nin_) return;
    const std::int64_t n = std::int64_t(B) * nin, nb = std::int64_t(G::branches) * n;
    x_.reallocate(Shape{n}); noise_.reallocate(Shape{n}); pred_.reallocate(Shape{n});
    in_.reallocate(Shape{nb}); out_.reallocate(Shape{nb});
    if constexpr (kCast) { in_c_.reallocate(Shape{nb}); out_c_.reallocate(Shape{nb}); }
    time_.reallocate(Shape{std::int64_t(G::branches) * B});
    lab_.reallocate(Shape{std::int64_t(G::branches) * B});
    y_.reallocate(Shape{B});
    idx_.reallocate(Shape{B});
    hidx_.assign(std::size_t(B), 0);
    cap_ = B;
    nin_ = nin;
  }

  Tensor<M, Dev> x_, noise_, pred_, in_, out_, time_;
  Tensor<T, Dev> in_c_, out_c_;
  Tensor<int, Dev> lab_, y_;
  Tensor<std::uint64_t, Dev> idx_;
  std::vector<std::uint64_t> hidx_;
  int cap_ = 0;
  std::int64_t nin_ = 0, runs_ = 0;
};

}  // namespace redi
