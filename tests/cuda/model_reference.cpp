// tests/cuda/model_reference.cpp — see model_reference.hpp (g++ only).
#include "model_reference.hpp"
#include "redi/ops/cpu_backend.hpp"

#include <variant>

#include "redi/nn/transformer.hpp"
#include "redi/ops/ops.hpp"

namespace redi::test::ref {

struct CpuModel::Impl {
  std::variant<Transformer<float, Merged, Cpu>, Transformer<float, Separate, Cpu>> net;
  std::vector<float> m, v, ema;
  std::vector<float> out;

  static decltype(net) make(const ModelConfig& c, FusionKind f, std::uint64_t seed) {
    if (f == FusionKind::Merged)
      return decltype(net)(std::in_place_index<0>, c, cpu, seed);
    return decltype(net)(std::in_place_index<1>, c, cpu, seed);
  }
  template <class Fn>
  decltype(auto) visit(Fn&& fn) {
    return std::visit(std::forward<Fn>(fn), net);
  }
  Impl(const ModelConfig& c, FusionKind f, std::uint64_t seed) : net(make(c, f, seed)) {
    visit([&](auto& n) {
      m.assign(std::size_t(n.num_params()), 0.0f);
      v.assign(std::size_t(n.num_params()), 0.0f);
      ema = n.params().to_host();
    });
  }
};

CpuModel::CpuModel(const ModelConfig& cfg, FusionKind fusion, std::uint64_t init_seed)
    : impl_(std::make_unique<Impl>(cfg, fusion, init_seed)) {}
CpuModel::~CpuModel() = default;

std::int64_t CpuModel::num_params() const {
  return impl_->visit([](auto& n) { return n.num_params(); });
}
int CpuModel::channels_in() const {
  return impl_->visit([](auto& n) { return n.channels_in(); });
}
int CpuModel::channels_out() const {
  return impl_->visit([](auto& n) { return n.channels_out(); });
}
std::vector<CpuModel::Entry> CpuModel::entries() const {
  return impl_->visit([](auto& n) {
    std::vector<Entry> r;
    for (const auto& e : n.layout().entries) r.push_back({e.name.c_str(), e.offset, e.numel()});
    return r;
  });
}
std::vector<float> CpuModel::randomized_params(std::uint64_t seed, double std) const {
  return impl_->visit([&](auto& n) {
    std::vector<float> p(std::size_t(n.num_params()));
    n.layout().randomize(p.data(), seed, std);
    return p;
  });
}
std::vector<float> CpuModel::params() const {
  return impl_->visit([](auto& n) { return n.params().to_host(); });
}
void CpuModel::set_params(const std::vector<float>& p) {
  impl_->visit([&](auto& n) { n.params().from_host(p); });
  impl_->ema = p;
}
std::vector<float> CpuModel::grads() const {
  return impl_->visit([](auto& n) { return n.grads().to_host(); });
}
std::vector<float> CpuModel::ema() const { return impl_->ema; }
void CpuModel::zero_grad() {
  impl_->visit([](auto& n) { n.zero_grad(); });
}

std::vector<float> CpuModel::forward(const std::vector<float>& x, const std::vector<float>& t,
                                     const std::vector<int>& y, int B) {
  return impl_->visit([&](auto& n) {
    const std::int64_t hw = std::int64_t(n.height()) * n.width();
    REDI_CHECK(std::int64_t(x.size()) == B * n.channels_in() * hw, "CpuModel::forward: x size");
    std::vector<float> out(std::size_t(B * n.channels_out() * hw));
    n.forward(x.data(), t.data(), y.data(), B, out.data());
    return out;
  });
}
void CpuModel::backward(const std::vector<float>& dout) {
  impl_->visit([&](auto& n) { n.backward(dout.data()); });
}

double CpuModel::mse(const std::vector<float>& pred, const std::vector<float>& target) {
  double s = 0;
  for (std::size_t i = 0; i < pred.size(); ++i) {
    const double d = double(pred[i]) - double(target[i]);
    s += d * d;
  }
  return s / double(pred.size());
}
std::vector<float> CpuModel::mse_grad(const std::vector<float>& pred,
                                      const std::vector<float>& target) {
  std::vector<float> d(pred.size());
  const float k = float(2.0 / double(pred.size()));
  for (std::size_t i = 0; i < pred.size(); ++i) d[i] = k * (pred[i] - target[i]);
  return d;
}

void CpuModel::optimizer_step(double lr, double beta1, double beta2, double eps,
                              double weight_decay, std::int64_t step, double ema_decay) {
  impl_->visit([&](auto& n) {
    const ops::AdamWConfig a{lr, beta1, beta2, eps, weight_decay};
    const std::int64_t np = n.num_params();
    ops::adamw_step(cpu, n.params().data(), n.grads().data(), impl_->m.data(), impl_->v.data(), np,
                    a, step);
    ops::ema_update(cpu, impl_->ema.data(), n.params().data(), np, ema_decay);
  });
}

}  // namespace redi::test::ref
