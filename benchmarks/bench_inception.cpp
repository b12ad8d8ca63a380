// Benchmarks for the FID Inception (redi/nn/inception.hpp): the network forward at 299 in
// images/s (synthetic weights: timing does not depend on the values beyond ReLU sparsity), the
// whole encoder from uint8 256x256 images (resize included), and the Frechet distance at
// d = 2048 (two symmetric eigendecompositions). The PyTorch peer and the ratio:
// benchmarks/inception_vs_pytorch.sh.
//   build/benchmarks/bench_inception --benchmark_filter=Forward --benchmark_min_time=5
#include <benchmark/benchmark.h>

#include <cstdint>
#include <vector>

#include "redi/core/philox.hpp"
#include "redi/eval/frechet.hpp"
#include "redi/eval/inception.hpp"
#include "redi/weights/inception_synthetic.hpp"

using namespace redi;

namespace {
InceptionV3<float>& network() {
  static InceptionV3<float> net = [] {
    InceptionV3<float> n(299);
    load_inception(n, inception_synthetic_weights());
    return n;
  }();
  return net;
}
}  // namespace

// Batch B of [3, 299, 299] inputs in [-1, 1] -> pool3 (+ the spatial features).
static void BM_InceptionForward(benchmark::State& state) {
  const int B = int(state.range(0));
  auto& net = network();
  std::vector<float> x(std::size_t(B) * 3 * 299 * 299), pool(std::size_t(B) * 2048),
      spatial(std::size_t(B) * std::size_t(net.spatial_dim()));
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = float(2 * philox::uniform(3, 0, i) - 1);
  for (auto _ : state) {
    net.forward(x.data(), B, pool.data(), spatial.data());
    benchmark::DoNotOptimize(pool.data());
  }
  state.counters["images/s"] = benchmark::Counter(double(B) * double(state.iterations()), benchmark::Counter::kIsRate);
  state.counters["GFLOPS"] =
      benchmark::Counter(2.0 * net.macs() * B * 1e-9 * double(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_InceptionForward)->Arg(1)->Arg(8)->Arg(32)->Unit(benchmark::kMillisecond)->UseRealTime();

// The encoder on uint8 256x256x3 images (resize to 299 included).
static void BM_InceptionEncoder256(benchmark::State& state) {
  const int n = 16;
  InceptionV3<float> net(299);
  load_inception(net, inception_synthetic_weights());
  eval::InceptionEncoder enc(std::move(net));
  std::vector<std::uint8_t> u8(std::size_t(n) * 256 * 256 * 3);
  for (std::size_t i = 0; i < u8.size(); ++i) u8[i] = std::uint8_t(philox::uniform(4, 0, i) * 256);
  std::vector<float> pool(std::size_t(n) * 2048);
  for (auto _ : state) {
    enc.features(u8.data(), n, 256, 256, 3, pool.data());
    benchmark::DoNotOptimize(pool.data());
  }
  state.counters["images/s"] = benchmark::Counter(double(n) * double(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_InceptionEncoder256)->Unit(benchmark::kMillisecond)->UseRealTime();

// FD between two 2048-d Gaussians (full-rank covariances).
static void BM_FrechetDistance2048(benchmark::State& state) {
  const int d = 2048, n = 4096;
  std::vector<float> a(std::size_t(n) * d), b(std::size_t(n) * d);
  for (std::size_t i = 0; i < a.size(); ++i) a[i] = float(philox::normal(5, 0, i)), b[i] = float(philox::normal(6, 0, i));
  eval::GaussianStats sa(d), sb(d);
  sa.add(a.data(), n);
  sb.add(b.data(), n);
  const auto m1 = sa.mean(), m2 = sb.mean();
  const auto s1 = sa.covariance(), s2 = sb.covariance();
  for (auto _ : state) benchmark::DoNotOptimize(eval::frechet_distance(m1, s1, m2, s2));
}
BENCHMARK(BM_FrechetDistance2048)->Unit(benchmark::kMillisecond)->UseRealTime();

BENCHMARK_MAIN();
