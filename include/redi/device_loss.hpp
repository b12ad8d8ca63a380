// redi/device_loss.hpp — redi::DeviceLoss<Net, Obj>: the joint loss of a training step with its
// per-element half on the network's device (ReDi::backprop uses it on every device whose
// backend has the ops of redi/ops/joint_loss.hpp, e.g. redi::Cuda):
//   host:   JointLoss::draw_samples (time, label and representation dropout: B values), the
//           per-sample coefficients ops::LossSample; upload x0, z0 (the data batch), B
//           coefficients, times and labels
//   device: joint_loss_inputs (Philox noise, noisy input, target) -> cast -> net.forward ->
//           cast -> joint_loss_grad (dout, per-sample squared-error sums) -> cast -> net.backward
//   host:   download 2B doubles, JointLoss::stats_from_sums
// against DeviceBridge + the host JointLoss (the reference): no B x Cin x H x W output download
// and dout upload, no host noise draws. Same results: input, target and dout bit-identical
// (the ops' contract), the loss to the rounding of the per-sample sums — bit-identical on a test
// device that runs the CPU ops (tests/test_device_path.cpp).
// Not served (ReDi falls back to the bridge and the host loss): learned sigma (DDPM's vb term)
// and batches with explicit noise (Batch::noise).
#pragma once
#include <algorithm>
#include <concepts>
#include <cstdint>
#include <vector>

#include "redi/core/error.hpp"
#include "redi/core/tensor.hpp"
#include "redi/diffusion/loss.hpp"
#include "redi/diffusion/network.hpp"
#include "redi/ops/backend.hpp"
#include "redi/ops/joint_loss.hpp"

namespace redi {

/// Whether Backend<Dev> has the joint loss ops for master type M.
template <class Dev, class M>
concept DeviceLossBackend = requires(const Dev& d, M* x, const M* cx, const ops::LossSample* s, double* sums,
                                     std::int64_t n, std::uint64_t k) {
  Backend<Dev>::joint_loss_inputs(d, x, x, cx, cx, s, 1, n, n, k, ops::LossTarget::Epsilon, false);
  Backend<Dev>::joint_loss_grad(d, x, sums, cx, cx, s, 1, n, n, 1.0);
};

template <class Net, Objective Obj>
class DeviceLoss {
  using M = typename Net::master_type;  // the loss's type (host data, loss buffers)
  using T = typename Net::value_type;   // the network's compute type
  using Dev = typename Net::device_type;
  using Ops = Backend<Dev>;
  static constexpr bool kCast = !std::same_as<T, M>;
  static_assert(std::same_as<typename Net::time_type, M>, "redi::DeviceLoss: the network's time_type must be its master type");

public:
  /// Whether this path serves net and batch b (else: DeviceBridge + the host JointLoss).
  template <class Batch>
  static bool serves(const Net& net, const Batch& b) {
    return net.channels_out() == net.channels_in() && b.noise == nullptr;
  }

  /// One loss evaluation of `loss` (its options, its per-sample draws) with the network on its
  /// device: forward, loss, dout and (if `backward`) net.backward(dout).
  typename JointLoss<Obj, M>::Stats operator()(Net& net, JointLoss<Obj, M>& loss,
                                                const typename JointLoss<Obj, M>::Batch& b, bool backward = true) {
    namespace rng = diffusion::rng;
    const diffusion::Layout L = diffusion::layout_of(net);
    REDI_CHECK(serves(net, b), "DeviceLoss: learned sigma or explicit noise: use the host JointLoss");
    REDI_CHECK(b.B > 0 && b.x0 && (L.r() == 0 || b.z0), "DeviceLoss: empty batch or null x0/z0");
    const int B = b.B;
    const std::int64_t nin = L.in_elems(), nx = std::int64_t(L.cx) * L.hw(), nz = nin - nx;
    ensure(B, nin, nx, nz);
    // host half: the per-sample draws and coefficients
    loss.draw_samples(int(net.null_class()), b);
    const auto& o = loss.options();
    for (int i = 0; i < B; ++i) {
      ops::LossSample& s = hs_[std::size_t(i)];
      if constexpr (Obj::is_ddpm) {
        const int t = loss.timestep_index()[std::size_t(i)];
        s.a = loss.schedule().sqrt_alphas_cumprod[t];
        s.b = loss.schedule().sqrt_one_minus_alphas_cumprod[t];
      } else {
        const double tt = double(loss.net_time()[i]);
        s.a = tt;
        s.b = 1.0 - tt;
      }
      s.drop = loss.rep_mask()[std::size_t(i)] ? 1 : 0;
      s.lam = s.drop ? 0.0 : o.lambda_z;
      s.stream = rng::stream(rng::TrainNoise, loss.index_of(b, i));
    }
    Dev::copy_from_host(x0_.data(), b.x0, std::size_t(B * nx) * sizeof(M));
    if (nz > 0) Dev::copy_from_host(z0_.data(), b.z0, std::size_t(B * nz) * sizeof(M));
    Dev::copy_from_host(s_.data(), hs_.data(), std::size_t(B) * sizeof(ops::LossSample));
    Dev::copy_from_host(t_.data(), loss.net_time(), std::size_t(B) * sizeof(M));
    Dev::copy_from_host(y_.data(), loss.net_labels(), std::size_t(B) * sizeof(int));
    // device half
    const auto& ctx = net.context();
    const auto tgt = Obj::is_ddpm ? ops::LossTarget::Epsilon : ops::LossTarget::Velocity;
    Ops::joint_loss_inputs(ctx, in_.data(), tg_.data(), x0_.data(), z0_.data(), s_.data(), B, nx, nz,
                           rng::train_key(b.seed, b.step), tgt, o.zero_noisy_z);
    if constexpr (kCast) {
      Ops::convert(ctx, in_c_.data(), in_.data(), B * nin);
      net.forward(in_c_.data(), t_.data(), y_.data(), B, out_c_.data());
      Ops::convert(ctx, out_.data(), out_c_.data(), B * nin);
    } else {
      net.forward(in_.data(), t_.data(), y_.data(), B, out_.data());
    }
    Ops::joint_loss_grad(ctx, dout_.data(), sums_.data(), out_.data(), tg_.data(), s_.data(), B, nx, nz, 1.0 / B);
    Dev::copy_to_host(hsums_.data(), sums_.data(), std::size_t(2 * B) * sizeof(double));
    const auto st = loss.stats_from_sums(L, B, hsums_.data());
    if (backward) {
      if constexpr (kCast) {
        Ops::convert(ctx, out_c_.data(), dout_.data(), B * nin);
        net.backward(out_c_.data());
      } else {
        net.backward(dout_.data());
      }
    }
    ++steps_;
    return st;
  }

  /// Loss evaluations served so far (tests: the device path was taken).
  std::int64_t evaluations() const { return steps_; }

private:
  void ensure(int B, std::int64_t nin, std::int64_t nx, std::int64_t nz) {
    if (B <= cap_ && nin == nin_) return;
    const std::int64_t n = std::int64_t(B) * nin;
    x0_.reallocate(Shape{std::int64_t(B) * nx});
    z0_.reallocate(Shape{std::max<std::int64_t>(1, std::int64_t(B) * nz)});
    in_.reallocate(Shape{n}); tg_.reallocate(Shape{n}); out_.reallocate(Shape{n}); dout_.reallocate(Shape{n});
    if constexpr (kCast) { in_c_.reallocate(Shape{n}); out_c_.reallocate(Shape{n}); }
    t_.reallocate(Shape{B}); y_.reallocate(Shape{B});
    s_.reallocate(Shape{B}); sums_.reallocate(Shape{2 * std::int64_t(B)});
    hs_.assign(std::size_t(B), ops::LossSample{});
    hsums_.assign(2 * std::size_t(B), 0.0);
    cap_ = B;
    nin_ = nin;
  }

  Tensor<M, Dev> x0_, z0_, in_, tg_, out_, dout_, t_;
  Tensor<T, Dev> in_c_, out_c_;  // compute-type copies (BF16Mixed)
  Tensor<int, Dev> y_;
  Tensor<ops::LossSample, Dev> s_;
  Tensor<double, Dev> sums_;
  std::vector<ops::LossSample> hs_;
  std::vector<double> hsums_;
  int cap_ = 0;
  std::int64_t nin_ = 0, steps_ = 0;
};

}  // namespace redi
