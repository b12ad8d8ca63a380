// Benchmarks for the CPU ops: the sgemm ceiling and attention forward+backward for the two
// reference shapes with both parallelisation strategies.
//   build-ops/benchmarks/bench_ops --benchmark_min_time=1
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "redi/ops/ops.hpp"

using namespace redi;

namespace {
template <class T>
std::vector<T> rand_vec(std::size_t n, unsigned seed) {
  std::mt19937 g(seed);
  std::normal_distribution<float> d(0.f, 1.f);
  std::vector<T> v(n);
  for (auto& x : v) x = T(d(g));
  return v;
}
}  // namespace

static void BM_sgemm(benchmark::State& state) {
  const int n = int(state.range(0));
  auto A = rand_vec<float>(std::size_t(n) * n, 1), B = rand_vec<float>(std::size_t(n) * n, 2);
  std::vector<float> C(std::size_t(n) * n);
  for (auto _ : state) {
    ops::gemm<float>(cpu, false, false, n, n, n, 1.f, A.data(), n, B.data(), n, 0.f, C.data(), n);
    benchmark::DoNotOptimize(C.data());
  }
  state.counters["GFLOPS"] = benchmark::Counter(2.0 * n * n * n * 1e-9 * double(state.iterations()),
                                                benchmark::Counter::kIsRate);
}
BENCHMARK(BM_sgemm)->Arg(2048)->Unit(benchmark::kMillisecond)->UseRealTime();

// A linear layer shaped like a DiT MLP fc1 (tokens x width -> 4 width), forward + backward.
static void BM_linear_fwd_bwd(benchmark::State& state) {
  const int rows = int(state.range(0)), in_f = int(state.range(1)), out_f = 4 * in_f;
  auto x = rand_vec<float>(std::size_t(rows) * in_f, 1), W = rand_vec<float>(std::size_t(out_f) * in_f, 2),
       b = rand_vec<float>(out_f, 3), g = rand_vec<float>(std::size_t(rows) * out_f, 4);
  std::vector<float> y(g.size()), dx(x.size()), dW(W.size()), db(out_f);
  for (auto _ : state) {
    ops::linear_forward<float>(cpu, y.data(), x.data(), W.data(), b.data(), rows, in_f, out_f);
    ops::linear_backward<float>(cpu, dx.data(), dW.data(), db.data(), g.data(), x.data(), W.data(),
                                rows, in_f, out_f);
    benchmark::DoNotOptimize(dW.data());
  }
  state.counters["GFLOPS"] = benchmark::Counter(
      3 * 2.0 * rows * in_f * out_f * 1e-9 * double(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_linear_fwd_bwd)->Args({4096, 256})->Unit(benchmark::kMillisecond)->UseRealTime();

// Attention forward + backward; args: B, L, H, hd, strategy (0 Auto, 1 Heads, 2 Blas).
static void BM_attention_fwd_bwd(benchmark::State& state) {
  const int B = int(state.range(0)), L = int(state.range(1)), H = int(state.range(2)),
            hd = int(state.range(3));
  const auto strategy = static_cast<ops::AttentionStrategy>(state.range(4));
  const std::size_t D = std::size_t(H) * hd, np = std::size_t(B) * H * L * L;
  auto qkv = rand_vec<float>(std::size_t(B) * L * 3 * D, 1), g = rand_vec<float>(std::size_t(B) * L * D, 2);
  std::vector<float> out(g.size()), probs(np), dqkv(qkv.size()),
      scratch(std::size_t(ops::attention_scratch_elems(B, L, H, hd)));
  for (auto _ : state) {
    ops::attention_forward<float>(cpu, out.data(), probs.data(), qkv.data(), B, L, H, hd, strategy);
    ops::attention_backward<float>(cpu, dqkv.data(), scratch.data(), g.data(), qkv.data(),
                                   probs.data(), B, L, H, hd, strategy);
    benchmark::DoNotOptimize(dqkv.data());
  }
  state.counters["GFLOPS"] = benchmark::Counter(
      12.0 * B * H * double(L) * L * hd * 1e-9 * double(state.iterations()),
      benchmark::Counter::kIsRate);
}
BENCHMARK(BM_attention_fwd_bwd)
    ->ArgNames({"B", "L", "H", "hd", "strategy"})
    ->Args({64, 64, 4, 32, 1})
    ->Args({64, 64, 4, 32, 2})
    ->Args({64, 64, 4, 32, 0})
    ->Args({8, 256, 6, 64, 1})
    ->Args({8, 256, 6, 64, 2})
    ->Args({8, 256, 6, 64, 0})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// GELU forward + backward and a softmax over attention-sized rows (float, vectorised exp).
static void BM_gelu_fwd_bwd(benchmark::State& state) {
  const std::int64_t n = state.range(0);
  auto x = rand_vec<float>(std::size_t(n), 1), g = rand_vec<float>(std::size_t(n), 2);
  std::vector<float> y(x.size()), dx(x.size());
  for (auto _ : state) {
    ops::gelu_forward<float>(cpu, y.data(), x.data(), n);
    ops::gelu_backward<float>(cpu, dx.data(), g.data(), x.data(), n);
    benchmark::DoNotOptimize(dx.data());
  }
  state.SetItemsProcessed(state.iterations() * n);
}
BENCHMARK(BM_gelu_fwd_bwd)->Arg(1 << 22)->Unit(benchmark::kMillisecond)->UseRealTime();

static void BM_softmax_fwd(benchmark::State& state) {
  const int rows = int(state.range(0)), cols = int(state.range(1));
  auto x = rand_vec<float>(std::size_t(rows) * cols, 1);
  std::vector<float> y(x.size());
  for (auto _ : state) {
    ops::softmax_forward<float>(cpu, y.data(), x.data(), rows, cols);
    benchmark::DoNotOptimize(y.data());
  }
  state.SetItemsProcessed(state.iterations() * rows * cols);
}
BENCHMARK(BM_softmax_fwd)->Args({16384, 256})->Unit(benchmark::kMillisecond)->UseRealTime();

BENCHMARK_MAIN();
