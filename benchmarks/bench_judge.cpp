// Benchmarks for the judge (redi/eval/judge.hpp, redi/nn/convnet.hpp): the CNN forward in
// images/s (and its GFLOP/s next to the sgemm ceiling measured in the same process), a training
// step, and a whole report (1,000 samples against a 10,000-image reference set).
//   build/benchmarks/bench_judge --benchmark_min_time=2
#include <benchmark/benchmark.h>

#include <cstdint>
#include <vector>

#include "redi/core/philox.hpp"
#include "redi/eval/judge.hpp"
#include "redi/weights/convnet.hpp"
#include "redi/ops/gemm.hpp"

using namespace redi;

namespace {
std::vector<float> images(int n, int size) {
  std::vector<float> x(std::size_t(n) * size * size);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = float(2 * philox::uniform(1, 0, i) - 1);
  return x;
}
std::vector<std::uint8_t> images_u8(std::int64_t n, std::uint64_t seed) {
  std::vector<std::uint8_t> x(std::size_t(n) * 1024);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = std::uint8_t(philox::uniform(seed, 0, i) * 256);
  return x;
}
}  // namespace

// The sgemm ceiling at a size like the judge's largest conv GEMM (32 x 288 x 32768).
static void BM_sgemm_ceiling(benchmark::State& state) {
  const int M = 64, K = 576, N = 16384;
  std::vector<float> A(std::size_t(M) * K, 0.5f), B(std::size_t(K) * N, 0.25f), C(std::size_t(M) * N);
  for (auto _ : state) {
    ops::gemm<float>(cpu, false, false, M, N, K, 1.f, A.data(), K, B.data(), N, 0.f, C.data(), N);
    benchmark::DoNotOptimize(C.data());
  }
  state.counters["GFLOPS"] = benchmark::Counter(2.0 * M * N * K * 1e-9 * double(state.iterations()),
                                                benchmark::Counter::kIsRate);
}
BENCHMARK(BM_sgemm_ceiling)->Unit(benchmark::kMillisecond)->UseRealTime();

// Judge forward (default architecture, 32x32x1), batch B: images/s.
static void BM_judge_forward(benchmark::State& state) {
  const int B = int(state.range(0));
  ConvNetClassifier<float> net(ConvNetConfig{}, 1);
  const auto x = images(B, 32);
  net.forward(x.data(), B);  // warm-up: arena
  for (auto _ : state) {
    net.forward(x.data(), B);
    benchmark::DoNotOptimize(net.logits());
  }
  state.SetItemsProcessed(std::int64_t(state.iterations()) * B);
  state.counters["GFLOPS"] = benchmark::Counter(2.0 * double(net.forward_macs()) * B * 1e-9 * double(state.iterations()),
                                                benchmark::Counter::kIsRate);
}
BENCHMARK(BM_judge_forward)->Arg(256)->Unit(benchmark::kMillisecond)->UseRealTime();

// One training step (forward, cross-entropy backward), batch B: images/s.
static void BM_judge_train_step(benchmark::State& state) {
  const int B = int(state.range(0));
  ConvNetClassifier<float> net(ConvNetConfig{}, 1);
  const auto x = images(B, 32);
  std::vector<int> labels(static_cast<std::size_t>(B));
  for (int i = 0; i < B; ++i) labels[std::size_t(i)] = i % 10;
  for (auto _ : state) {
    net.forward(x.data(), B);
    net.zero_grad();
    benchmark::DoNotOptimize(net.backward_cross_entropy(labels.data()));
  }
  state.SetItemsProcessed(std::int64_t(state.iterations()) * B);
  state.counters["GFLOPS"] = benchmark::Counter(6.0 * double(net.forward_macs()) * B * 1e-9 * double(state.iterations()),
                                                benchmark::Counter::kIsRate);
}
BENCHMARK(BM_judge_train_step)->Arg(128)->Unit(benchmark::kMillisecond)->UseRealTime();

// A whole report: features and predictions of 1,000 samples, FD, precision/recall (k = 3)
// against a cached 10,000-image reference set, coverage.
static void BM_judge_report(benchmark::State& state) {
  eval::Judge judge(ConvNetClassifier<float>(ConvNetConfig{}, 1), "random");
  const auto ref_px = images_u8(10000, 2), px = images_u8(1000, 3);
  const auto ref = judge.reference(ref_px.data(), 10000, "random reference");
  for (auto _ : state) {
    auto rep = judge.report(px.data(), 1000, nullptr, ref);
    benchmark::DoNotOptimize(rep.fd);
  }
  state.SetItemsProcessed(std::int64_t(state.iterations()) * 1000);
}
BENCHMARK(BM_judge_report)->Unit(benchmark::kMillisecond)->UseRealTime();

BENCHMARK_MAIN();
