// redi/nn/device_bridge.hpp — redi::DeviceBridge<Net>: presents a model that lives on a device
// (e.g. Transformer<BF16Mixed, F, Cuda>) as a host Network over the master type (float), so the
// host-side diffusion code — JointLoss, the samplers and guidance, all tested on the CPU —
// drives it unchanged and with the same Philox noise:
//   forward/infer: upload x, t, y; cast x to the compute type on the device; run; cast the
//                  output to the master type on the device; download it.
//   backward:      upload dout, cast, net.backward.
// Per training step that is three B x Cin x H x W transfers of the master type plus B times
// and labels; the per-element loss and sampler math stays on the host (OpenMP).
// Buffers grow with the batch and are reused; bind() points the bridge at a network before use
// (it holds a pointer, so a moved-from owner just binds again).
#pragma once
#include <concepts>
#include <cstdint>

#include "redi/core/error.hpp"
#include "redi/core/tensor.hpp"
#include "redi/ops/backend.hpp"

namespace redi {

template <class Net>
class DeviceBridge {
public:
  using value_type = typename Net::master_type;  // host-side type of every pointer argument
  using device_type = typename Net::device_type;

private:
  using T = typename Net::value_type;   // the network's compute type (on the device)
  using Tt = typename Net::time_type;
  using Dev = device_type;
  static constexpr bool kCast = !std::same_as<T, value_type>;
  static_assert(std::same_as<Tt, value_type>,
                "redi::DeviceBridge: the network's time_type must be its master type");

public:
  DeviceBridge() = default;
  DeviceBridge& bind(Net& n) {
    net_ = &n;
    return *this;
  }
  Net& net() const {
    REDI_CHECK(net_ != nullptr, "DeviceBridge: no network bound (call bind(net) first)");
    return *net_;
  }

  // ---- the Network contract, forwarded
  int channels_in() const { return net().channels_in(); }
  int channels_out() const { return net().channels_out(); }
  int image_channels() const { return net().image_channels(); }
  int height() const { return net().height(); }
  int width() const { return net().width(); }
  int feature_height() const { return net().feature_height(); }
  int feature_width() const { return net().feature_width(); }
  int null_class() const { return net().null_class(); }

  /// Training forward (the device network keeps its activations for backward()).
  void forward(const value_type* x, const value_type* t, const int* y, int B, value_type* out) {
    run(x, t, y, B, out, /*train=*/true);
  }
  /// Inference forward (samplers call this through diffusion::evaluate).
  void infer(const value_type* x, const value_type* t, const int* y, int B, value_type* out) {
    run(x, t, y, B, out, /*train=*/false);
  }
  /// dout [B, Cout, H, W] of the last forward(), on the host.
  void backward(const value_type* dout) {
    REDI_CHECK(last_train_batch_ > 0, "DeviceBridge::backward: call forward() first");
    const std::int64_t n = std::int64_t(last_train_batch_) * out_elems();
    Dev::copy_from_host(out_m_.data(), dout, std::size_t(n) * sizeof(value_type));
    if constexpr (kCast) {
      Backend<Dev>::convert(net().context(), out_c_.data(), out_m_.data(), n);
      net().backward(out_c_.data());
    } else {
      net().backward(out_m_.data());
    }
  }

private:
  std::int64_t in_elems() const { return std::int64_t(net().config().input_elems()); }  // packed [x | z]
  std::int64_t out_elems() const { return net().channels_out() == net().channels_in() ? in_elems() : 2 * in_elems(); }

  void ensure(int B) {
    REDI_CHECK(B > 0, "DeviceBridge: batch size must be > 0, got ", B);
    if (B <= cap_) return;
    const Shape in{std::int64_t(B) * in_elems()}, out{std::int64_t(B) * out_elems()};
    in_m_.reallocate(in);
    out_m_.reallocate(out);
    if constexpr (kCast) {
      in_c_.reallocate(in);
      out_c_.reallocate(out);
    }
    t_.reallocate(Shape{B});
    y_.reallocate(Shape{B});
    cap_ = B;
  }

  void run(const value_type* x, const value_type* t, const int* y, int B, value_type* out, bool train) {
    Net& n = net();
    ensure(B);
    const std::int64_t ni = std::int64_t(B) * in_elems(), no = std::int64_t(B) * out_elems();
    Dev::copy_from_host(in_m_.data(), x, std::size_t(ni) * sizeof(value_type));
    Dev::copy_from_host(t_.data(), t, std::size_t(B) * sizeof(Tt));
    Dev::copy_from_host(y_.data(), y, std::size_t(B) * sizeof(int));
    const T* xin;
    T* o;
    if constexpr (kCast) {
      Backend<Dev>::convert(n.context(), in_c_.data(), in_m_.data(), ni);
      xin = in_c_.data();
      o = out_c_.data();
    } else {
      xin = in_m_.data();
      o = out_m_.data();
    }
    if (train) {
      n.forward(xin, t_.data(), y_.data(), B, o);
      last_train_batch_ = B;
    } else {
      n.infer(xin, t_.data(), y_.data(), B, o);
    }
    if constexpr (kCast) Backend<Dev>::convert(n.context(), out_m_.data(), out_c_.data(), no);
    Dev::copy_to_host(out, out_m_.data(), std::size_t(no) * sizeof(value_type));
  }

  Net* net_ = nullptr;
  Tensor<value_type, Dev> in_m_, out_m_;  // master-type staging
  Tensor<T, Dev> in_c_, out_c_;           // compute-type copies (BF16Mixed)
  Tensor<Tt, Dev> t_;
  Tensor<int, Dev> y_;
  int cap_ = 0, last_train_batch_ = 0;
};

}  // namespace redi
