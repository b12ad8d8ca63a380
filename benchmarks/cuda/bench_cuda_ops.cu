// benchmarks/cuda/bench_cuda_ops.cu — CUDA op throughput (Google Benchmark, CUDA-event manual
// timing): cuBLASLt GEMM peak (bf16, fp32, TF32), the attention fallback forward+backward and
// the cuDNN fused SDPA (flash attention) forward+backward at the SiT-XL/2 shape, fused
// LayerNorm+modulate bandwidth, the Philox fill, and one network: the DINOv2-B/14-reg forward
// (nn/dinov2.hpp, Dinov2<float, Cuda>) in images/s at 224 px, the ReDi feature encoder's input.
// Every benchmark reports an error row (SkipWithError) when no CUDA device is present.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>

#include "redi/core/tensor.hpp"
#include "redi/cuda/backend.cuh"
#include "redi/cuda/device.hpp"
#include "redi/cuda/ops/ops.cuh"
#include "redi/nn/dinov2.hpp"

namespace {

using redi::bf16;
using redi::Cuda;
using redi::Shape;
using redi::Tensor;

const Cuda& ctx() {
  static const Cuda* c = new Cuda(Cuda::create(0));  // never destroyed (see the tests)
  return *c;
}

bool skip_without_device(benchmark::State& state) {
  if (redi::cuda_available()) return false;
  state.SkipWithError("no CUDA device available");
  return true;
}

/// Times `f` per iteration with CUDA events on the context's stream (manual time).
template <class F>
void timed_loop(benchmark::State& state, F&& f) {
  cudaEvent_t a, b;
  REDI_CUDA_CHECK(cudaEventCreate(&a));
  REDI_CUDA_CHECK(cudaEventCreate(&b));
  f();  // warm-up: plans, handles, scratch
  ctx().synchronize();
  for (auto _ : state) {
    REDI_CUDA_CHECK(cudaEventRecord(a, ctx().stream()));
    f();
    REDI_CUDA_CHECK(cudaEventRecord(b, ctx().stream()));
    REDI_CUDA_CHECK(cudaEventSynchronize(b));
    float ms = 0;
    REDI_CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
    state.SetIterationTime(double(ms) * 1e-3);
  }
  REDI_CUDA_CHECK(cudaEventDestroy(a));
  REDI_CUDA_CHECK(cudaEventDestroy(b));
}

template <class T>
Tensor<T, Cuda> randn_dev(std::int64_t n, std::uint64_t seed, float scale = 1.0f) {
  Tensor<T, Cuda> t(Shape{n});
  redi::ops::fill_normal(ctx(), t.data(), std::size_t(n), seed, 0);
  if (scale != 1.0f) redi::ops::scale_inplace(ctx(), t.data(), n, scale);
  return t;
}

// ---- GEMM: C[n,n] = A[n,n] B[n,n]^T (the linear-layer layout)
template <class T>
void BM_Gemm(benchmark::State& state) {
  if (skip_without_device(state)) return;
  const int n = int(state.range(0));
  const bool tf32 = state.range(1) != 0;
  const std::int64_t nn = std::int64_t(n) * n;
  auto A = randn_dev<T>(nn, 1), B = randn_dev<T>(nn, 2);
  Tensor<T, Cuda> C(Shape{nn});
  ctx().set_tf32(tf32);
  timed_loop(state, [&] {
    redi::ops::gemm(ctx(), false, true, n, n, n, 1.0f, A.data(), n, B.data(), n, 0.0f, C.data(), n);
  });
  ctx().set_tf32(false);
  state.counters["TFLOP/s"] = benchmark::Counter(2.0 * double(n) * n * n * 1e-12,
                                                 benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_Gemm<bf16>)->ArgNames({"n", "tf32"})->Args({8192, 0})->Args({4096, 0})
    ->UseManualTime()->Unit(benchmark::kMillisecond)->MinTime(0.3);
BENCHMARK(BM_Gemm<float>)->ArgNames({"n", "tf32"})->Args({4096, 0})->Args({8192, 1})
    ->UseManualTime()->Unit(benchmark::kMillisecond)->MinTime(0.3);

// ---- Attention fallback (probs materialised) at SiT-XL/2: L=256, H=16, hd=72, batch B
template <class T>
void BM_AttentionFwdBwd(benchmark::State& state) {
  if (skip_without_device(state)) return;
  const int B = int(state.range(0)), L = 256, H = 16, hd = 72, D = H * hd;
  auto qkv = randn_dev<T>(std::int64_t(B) * L * 3 * D, 3);
  auto dout = randn_dev<T>(std::int64_t(B) * L * D, 4);
  Tensor<T, Cuda> out(Shape{std::int64_t(B) * L * D}), dqkv(Shape{qkv.numel()});
  Tensor<T, Cuda> probs(Shape{std::int64_t(B) * H * L * L});
  Tensor<T, Cuda> scratch(Shape{redi::ops::attention_scratch_elems(ctx(), B, L, H, hd)});
  timed_loop(state, [&] {
    redi::ops::attention_forward(ctx(), out.data(), probs.data(), qkv.data(), B, L, H, hd);
    redi::ops::attention_backward(ctx(), dqkv.data(), scratch.data(), dout.data(), qkv.data(),
                                  probs.data(), B, L, H, hd);
  });
  // fwd 2 GEMMs + bwd 4 GEMMs of 2*B*H*L*L*hd flops each
  state.counters["TFLOP/s"] = benchmark::Counter(6.0 * 2.0 * B * H * double(L) * L * hd * 1e-12,
                                                 benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_AttentionFwdBwd<bf16>)->ArgName("B")->Arg(64)->Arg(256)->UseManualTime()
    ->Unit(benchmark::kMillisecond)->MinTime(0.3);
BENCHMARK(BM_AttentionFwdBwd<float>)->ArgName("B")->Arg(64)->UseManualTime()
    ->Unit(benchmark::kMillisecond)->MinTime(0.3);

// ---- cuDNN fused SDPA (flash attention, bf16, lse saved instead of probs) at the same shape:
// compare with BM_AttentionFwdBwd<bf16> above (same process, same device). TFLOP/s counts the
// same 6 attention GEMMs (the flash backward recomputes Q K^T: 7 are executed). The label is
// flash_attention_status (cuDNN version, workspaces); unsupported: an error row with the reason.
void BM_FlashAttentionFwdBwd(benchmark::State& state) {
  if (skip_without_device(state)) return;
  const int B = int(state.range(0)), L = 256, H = 16, hd = 72, D = H * hd;
  ctx().set_cudnn_sdpa(true);
  const std::string status = redi::ops::flash_attention_status(ctx(), B, L, H, hd);
  if (!redi::ops::flash_attention_supported<bf16>(ctx(), B, L, H, hd)) {
    state.SkipWithError(("cuDNN fused SDPA unsupported: " + status).c_str());
    return;
  }
  auto qkv = randn_dev<bf16>(std::int64_t(B) * L * 3 * D, 3);
  auto dout = randn_dev<bf16>(std::int64_t(B) * L * D, 4);
  Tensor<bf16, Cuda> out(Shape{std::int64_t(B) * L * D}), dqkv(Shape{qkv.numel()});
  Tensor<float, Cuda> stats(Shape{std::int64_t(B) * H * L});
  timed_loop(state, [&] {
    redi::ops::flash_attention_forward(ctx(), out.data(), stats.data(), qkv.data(), B, L, H, hd);
    redi::ops::flash_attention_backward(ctx(), dqkv.data(), dout.data(), qkv.data(), out.data(),
                                        stats.data(), B, L, H, hd);
  });
  state.counters["TFLOP/s"] = benchmark::Counter(6.0 * 2.0 * B * H * double(L) * L * hd * 1e-12,
                                                 benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(status);
}
BENCHMARK(BM_FlashAttentionFwdBwd)->ArgName("B")->Arg(64)->Arg(256)->UseManualTime()
    ->Unit(benchmark::kMillisecond)->MinTime(0.3);

// ---- Philox normal fill (the noise of a SiT-XL/2 batch is 256 * 256 * 32 values)
void BM_PhiloxFill(benchmark::State& state) {
  if (skip_without_device(state)) return;
  const std::int64_t n = state.range(0);
  Tensor<float, Cuda> x(Shape{n});
  timed_loop(state, [&] { redi::ops::fill_normal(ctx(), x.data(), std::size_t(n), 7, 1, 0); });
  state.counters["Gsamples/s"] = benchmark::Counter(double(n) * 1e-9,
                                                    benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_PhiloxFill)->Arg(256 * 256 * 32)->UseManualTime()->Unit(benchmark::kMicrosecond)
    ->MinTime(0.3);

// ---- DINOv2-B/14 with 4 registers (86.6M parameters) forward at 224 px: 261 tokens per image
// (cls + 4 registers + 16x16 patches), fp32 (tf32 = 0: exact fp32 GEMMs, redi's default; 1: TF32
// tensor cores). Timed: the network on device-resident pixels (Dinov2::forward, one chunk of B);
// not timed: data::dinov2_preprocess and forward_host's copies, which run on the host. Weights:
// N(0, 0.02) filled on the device (the arithmetic does not depend on the values).
void BM_Dinov2Forward(benchmark::State& state) {
  if (skip_without_device(state)) return;
  const int B = int(state.range(0)), S = 224;
  const bool tf32 = state.range(1) != 0;
  static redi::Dinov2<float, Cuda>* net = nullptr;  // built once (never destroyed, like ctx())
  if (!net) {
    net = new redi::Dinov2<float, Cuda>(redi::Dinov2Config::base(), ctx());
    redi::ops::fill_normal(ctx(), net->params().data(), std::size_t(net->num_params()), 5, 0);
    redi::ops::scale_inplace(ctx(), net->params().data(), net->num_params(), 0.02f);
    net->params_changed();
  }
  net->set_chunk_batch(B);
  auto x = randn_dev<float>(std::int64_t(B) * 3 * S * S, 6);
  Tensor<float, Cuda> out(Shape{std::int64_t(B) * 256 * 768});
  ctx().set_tf32(tf32);
  timed_loop(state, [&] { net->forward(x.data(), B, S, S, out.data()); });
  ctx().set_tf32(false);
  state.counters["images/s"] = benchmark::Counter(double(B), benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel("arena " + std::to_string(net->arena_bytes() >> 20) + " MiB");
}
BENCHMARK(BM_Dinov2Forward)->ArgNames({"B", "tf32"})->Args({64, 0})->Args({64, 1})->UseManualTime()
    ->Unit(benchmark::kMillisecond)->MinTime(0.5);

}  // namespace

BENCHMARK_MAIN();
