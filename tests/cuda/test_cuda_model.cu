// tests/cuda/test_cuda_model.cu — the whole transformer on the GPU
// (redi::Transformer<float, F, redi::Cuda>, the same template as the CPU model) against the CPU
// model (model_reference.cpp, g++), both fusions, learn_sigma on and off:
//   - forward outputs, from the same (randomised) flat parameter buffer and inputs;
//   - the full gradient buffer after backward, compared tensor by tensor;
//   - three training steps (zero_grad, forward, MSE loss, backward, AdamW, EMA);
//   - a few Euler ODE steps with classifier-free guidance (the loop is written here: the
//     library's samplers are CPU host code, see docs/cuda.md).
// fp32 throughout, TF32 off. Skips without a device.
//
// Tolerances (|got - ref| <= rtol |ref| + atol * rms(ref), per parameter tensor for gradients):
//   forward 1e-4 / 1e-5: every GEMM sums in a different order than OpenBLAS/Eigen (cuBLASLt
//     kernel tiling, split-K), transcendental functions differ by an ulp; ~1e-6 per op,
//     compounded through the blocks.
//   gradients 1e-3 / 1e-4: weight gradients are sums over B*L rows and bias gradients column
//     sums (different orders again), the label-table gradient is an atomicAdd scatter (order not
//     even fixed between runs), LayerNorm and softmax backward subtract nearly equal terms
//     (relative error grows where the result is small), and the whole chain of forward
//     differences feeds every product of the backward pass.
//   training step: AdamW's update is ~lr * g / (|g| + eps); with eps = 1e-4 its error is at most
//     the gradient's relative error (and lr * |dg| / eps near g = 0, instead of a sign flip of
//     +-lr at the default eps 1e-8), so the parameter *changes* are compared with 5e-3 / 5e-3.
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "redi/cuda/backend.cuh"  // Backend<Cuda>: the ops the GPU model runs
#include "redi/nn/transformer.hpp"

#include "cuda_test_util.hpp"
#include "model_reference.hpp"

namespace {

using redi::Cuda;
using redi::ModelConfig;
using redi::test::ctx;
using redi::test::dev;
using redi::test::dev_int;
using redi::test::dev_zeros;
using redi::test::host;
using redi::test::ref::CpuModel;
using redi::test::ref::FusionKind;

/// SiT-style tiny ReDi model: 8x8 input, patch 2 (L = 16 tokens), 4 image + 8 feature channels,
/// depth 2, width 64, 4 heads (head dim 16), 10 classes (+ the null class).
ModelConfig tiny(bool learn_sigma) {
  ModelConfig c;
  c.input_size = 8;
  c.patch = 2;
  c.image_channels = 4;
  c.feature_channels = 8;
  c.depth = 2;
  c.width = 64;
  c.heads = 4;
  c.mlp_ratio = 4;
  c.num_classes = 10;
  c.learn_sigma = learn_sigma;
  return c;
}

template <class F>
constexpr FusionKind kind() {
  return std::is_same_v<F, redi::Separate> ? FusionKind::Separate : FusionKind::Merged;
}

std::vector<float> sub(const std::vector<float>& a, const std::vector<float>& b) {
  std::vector<float> r(a.size());
  for (std::size_t i = 0; i < a.size(); ++i) r[i] = a[i] - b[i];
  return r;
}

std::vector<float> slice(const std::vector<float>& v, std::int64_t off, std::int64_t n) {
  return std::vector<float>(v.begin() + off, v.begin() + off + n);
}

/// Compare two flat parameter-sized buffers tensor by tensor (each with its own RMS floor).
void expect_close_per_tensor(const CpuModel& ref, const std::vector<float>& got,
                             const std::vector<float>& want, redi::test::Tolerance tol,
                             const char* what) {
  ASSERT_EQ(got.size(), want.size());
  for (const auto& e : ref.entries()) {
    SCOPED_TRACE(std::string(what) + " of " + e.name);
    EXPECT_TRUE(redi::test::close(slice(got, e.offset, e.numel), slice(want, e.offset, e.numel),
                                  tol));
  }
}

/// The fixture: one CPU and one GPU model with the same randomised parameters.
template <class F>
struct Pair {
  ModelConfig cfg;
  CpuModel cpu;
  redi::Transformer<float, F, Cuda> gpu;
  std::vector<float> p0;

  explicit Pair(const ModelConfig& c, double std = 0.05)
      : cfg(c), cpu(c, kind<F>()), gpu(c, ctx()) {
    p0 = cpu.randomized_params(/*seed=*/7, std);
    cpu.set_params(p0);
    gpu.params().from_host(p0);
    EXPECT_EQ(cpu.num_params(), gpu.num_params());
  }
  std::int64_t image_elems(int B, int C) const {
    return std::int64_t(B) * C * cfg.input_size * cfg.input_size;
  }
};

struct Inputs {
  std::vector<float> x, t;
  std::vector<int> y;
};

/// x ~ N(0, 1); t mixes SiT times in [0, 1] and a DiT-style integer step (the sinusoid
/// argument then reaches ~700 rad: the double-precision path of timestep_embedding); labels
/// repeat (scatter-add collisions) and include the null class.
Inputs make_inputs(const ModelConfig& c, int B, std::uint32_t seed) {
  Inputs in;
  in.x = redi::test::randn(std::size_t(B) * c.channels_in() * c.input_size * c.input_size, seed);
  const float ts[] = {0.13f, 0.71f, 731.0f, 0.5f, 0.02f};
  for (int b = 0; b < B; ++b) {
    in.t.push_back(ts[(b + seed) % 5]);
    in.y.push_back(b % 3 == 2 ? c.null_class() : int((seed + 3 * (b % 2)) % c.num_classes));
  }
  return in;
}

constexpr redi::test::Tolerance kFwdTol{1e-4, 1e-5};
constexpr redi::test::Tolerance kGradTol{1e-3, 1e-4};
constexpr redi::test::Tolerance kStepTol{5e-3, 5e-3};

template <class F>
void check_forward_backward(bool learn_sigma) {
  REDI_REQUIRE_CUDA();
  const ModelConfig c = tiny(learn_sigma);
  Pair<F> m(c);
  const int B = 3;
  const Inputs in = make_inputs(c, B, 11);
  const std::int64_t n_out = m.image_elems(B, c.channels_out());

  // forward
  const auto ref_out = m.cpu.forward(in.x, in.t, in.y, B);
  auto x = dev<float>(in.x);
  auto t = dev<float>(in.t);
  auto y = dev_int(in.y);
  auto out = dev_zeros<float>(std::size_t(n_out));
  m.gpu.forward(x.data(), t.data(), y.data(), B, out.data());
  const auto got_out = host(out);
  ASSERT_EQ(got_out.size(), ref_out.size());
  EXPECT_TRUE(redi::test::close(got_out, ref_out, kFwdTol)) << "forward output";

  // backward from a fixed random dL/dout
  const auto dout_h = redi::test::randn(std::size_t(n_out), 12, 1e-2f);
  m.cpu.zero_grad();
  m.cpu.backward(dout_h);
  auto dout = dev<float>(dout_h);
  m.gpu.zero_grad();
  m.gpu.backward(dout.data());
  const auto g_ref = m.cpu.grads();
  const auto g_got = host(m.gpu.grads());
  expect_close_per_tensor(m.cpu, g_got, g_ref, kGradTol, "gradient");

  // backward accumulates: a second pass doubles every gradient
  m.gpu.backward(dout.data());
  auto g2 = host(m.gpu.grads());
  for (auto& v : g2) v *= 0.5f;
  EXPECT_TRUE(redi::test::close(g2, g_got, 1e-5, 1e-6)) << "second backward must accumulate";
}

TEST(CudaModel, ForwardBackwardMerged) { check_forward_backward<redi::Merged>(false); }
TEST(CudaModel, ForwardBackwardMergedLearnSigma) { check_forward_backward<redi::Merged>(true); }
TEST(CudaModel, ForwardBackwardSeparate) { check_forward_backward<redi::Separate>(false); }
TEST(CudaModel, ForwardBackwardSeparateLearnSigma) {
  check_forward_backward<redi::Separate>(true);
}

/// zero_grad, forward, MSE against a target, backward, AdamW, EMA — three times.
template <class F>
void check_train_steps(bool learn_sigma) {
  REDI_REQUIRE_CUDA();
  const ModelConfig c = tiny(learn_sigma);
  Pair<F> m(c);
  const int B = 4;
  const std::int64_t np = m.gpu.num_params();
  const std::int64_t n_out = m.image_elems(B, c.channels_out());
  redi::ops::AdamWConfig adam;
  adam.lr = 1e-3;
  adam.eps = 1e-4;  // see the file comment
  adam.weight_decay = 0.01;
  const double ema_decay = 0.9;

  auto mom = dev_zeros<float>(std::size_t(np));
  auto var = dev_zeros<float>(std::size_t(np));
  redi::Tensor<float, Cuda> ema(redi::Shape{np});
  redi::ops::copy(ctx(), ema.data(), m.gpu.params().data(), np);
  auto out = dev_zeros<float>(std::size_t(n_out));
  auto dout = dev_zeros<float>(std::size_t(n_out));

  for (int step = 1; step <= 3; ++step) {
    SCOPED_TRACE("step " + std::to_string(step));
    const Inputs in = make_inputs(c, B, 20 + step);
    const auto target_h = redi::test::randn(std::size_t(n_out), 30 + step);
    // CPU
    m.cpu.zero_grad();
    const auto pred = m.cpu.forward(in.x, in.t, in.y, B);
    const double loss_ref = CpuModel::mse(pred, target_h);
    m.cpu.backward(CpuModel::mse_grad(pred, target_h));
    m.cpu.optimizer_step(adam.lr, adam.beta1, adam.beta2, adam.eps, adam.weight_decay, step,
                         ema_decay);
    // GPU
    auto x = dev<float>(in.x);
    auto t = dev<float>(in.t);
    auto y = dev_int(in.y);
    m.gpu.zero_grad();
    m.gpu.forward(x.data(), t.data(), y.data(), B, out.data());
    const auto out_h = host(out);  // the loss on the host, as ReDi's JointLoss does
    const double loss = CpuModel::mse(out_h, target_h);
    dout.from_host(CpuModel::mse_grad(out_h, target_h));
    m.gpu.backward(dout.data());
    redi::ops::adamw_step(ctx(), m.gpu.params().data(), m.gpu.grads().data(), mom.data(),
                          var.data(), np, adam, step);
    redi::ops::ema_update(ctx(), ema.data(), m.gpu.params().data(), np, ema_decay);
    EXPECT_NEAR(loss, loss_ref, 1e-4 * std::fabs(loss_ref)) << "MSE loss";
  }
  // parameter and EMA changes (the values themselves would hide update errors under p0)
  const auto p_ref = m.cpu.params();
  const auto p_got = host(m.gpu.params());
  expect_close_per_tensor(m.cpu, sub(p_got, m.p0), sub(p_ref, m.p0), kStepTol, "param change");
  const auto e_ref = m.cpu.ema();
  const auto e_got = host(ema);
  expect_close_per_tensor(m.cpu, sub(e_got, m.p0), sub(e_ref, m.p0), kStepTol, "EMA change");
  EXPECT_EQ(m.gpu.arena_allocations(), 1u);
}

TEST(CudaModel, TrainStepsMerged) { check_train_steps<redi::Merged>(false); }
TEST(CudaModel, TrainStepsMergedLearnSigma) { check_train_steps<redi::Merged>(true); }
TEST(CudaModel, TrainStepsSeparate) { check_train_steps<redi::Separate>(false); }
TEST(CudaModel, TrainStepsSeparateLearnSigma) { check_train_steps<redi::Separate>(true); }

/// Euler ODE steps with classifier-free guidance, velocity model (learn_sigma off):
///   v = v_u + s (v_c - v_u) from one forward on [x, x] with labels [y, null];
///   x += dt * v, t from 1 to 0 in 4 steps.
/// The GPU loop uses only library ops (copy, scale_inplace, add_inplace); the CPU loop is plain
/// host arithmetic around the CPU model's forward.
template <class F>
void check_euler_cfg() {
  REDI_REQUIRE_CUDA();
  const ModelConfig c = tiny(false);
  Pair<F> m(c, 0.03);
  const int B = 3, steps = 4;
  const float s = 1.5f;
  const std::int64_t n = m.image_elems(B, c.channels_in());  // channels_out == channels_in
  std::vector<int> yy;
  for (int b = 0; b < B; ++b) yy.push_back(b);
  for (int b = 0; b < B; ++b) yy.push_back(c.null_class());

  auto xh = redi::test::randn(std::size_t(n), 41);
  // GPU state
  auto x = dev<float>(xh);
  auto x2 = dev_zeros<float>(std::size_t(2 * n));
  auto v2 = dev_zeros<float>(std::size_t(2 * n));
  auto t2 = dev_zeros<float>(std::size_t(2 * B));
  auto y2 = dev_int(yy);
  const float dt = -1.0f / steps;
  for (int k = 0; k < steps; ++k) {
    const float tk = 1.0f + dt * float(k);
    // CPU
    std::vector<float> xx(xh);
    xx.insert(xx.end(), xh.begin(), xh.end());
    const auto v = m.cpu.forward(xx, std::vector<float>(std::size_t(2 * B), tk), yy, 2 * B);
    for (std::int64_t i = 0; i < n; ++i) {
      const float vu = v[std::size_t(n + i)];
      const float g = vu + s * (v[std::size_t(i)] - vu);
      xh[std::size_t(i)] += dt * g;
    }
    // GPU
    redi::ops::copy(ctx(), x2.data(), x.data(), n);
    redi::ops::copy(ctx(), x2.data() + n, x.data(), n);
    t2.from_host(std::vector<float>(std::size_t(2 * B), tk));
    m.gpu.forward(x2.data(), t2.data(), y2.data(), 2 * B, v2.data());
    float* vc = v2.data();
    float* vu = v2.data() + n;
    redi::ops::scale_inplace(ctx(), vu, n, -1.0f);
    redi::ops::add_inplace(ctx(), vc, vu, n);          // v_c - v_u
    redi::ops::scale_inplace(ctx(), vc, n, s);         // s (v_c - v_u)
    redi::ops::scale_inplace(ctx(), vu, n, -1.0f);     // v_u again
    redi::ops::add_inplace(ctx(), vc, vu, n);          // guided velocity
    redi::ops::scale_inplace(ctx(), vc, n, dt);
    redi::ops::add_inplace(ctx(), x.data(), vc, n);
  }
  EXPECT_TRUE(redi::test::close(host(x), xh, 1e-3, 1e-4)) << "Euler + CFG samples";
}

TEST(CudaModel, EulerCfgMerged) { check_euler_cfg<redi::Merged>(); }
TEST(CudaModel, EulerCfgSeparate) { check_euler_cfg<redi::Separate>(); }

/// The model is written once over the op contract: without a device, constructing it must fail
/// with redi::Error (cudaMalloc), never crash. With a device, a tag-only context must throw.
TEST(CudaModel, ContextlessTagThrows) {
  REDI_REQUIRE_CUDA();
  redi::Transformer<float, redi::Merged, Cuda> net(tiny(false), Cuda{});
  const int B = 1;
  auto x = dev_zeros<float>(std::size_t(B) * 12 * 64);
  auto t = dev_zeros<float>(1);
  auto y = dev_int({0});
  auto out = dev_zeros<float>(std::size_t(B) * 12 * 64);
  EXPECT_THROW(net.forward(x.data(), t.data(), y.data(), B, out.data()), redi::Error);
}

}  // namespace
