// DINOv2-B/14 with registers forward on the CPU (nn/dinov2.hpp): images/s at 224 px (the ReDi
// input: 256 px crops resized to 224, a 16x16 patch grid + cls + 4 registers = 261 tokens),
// random weights. Args: {batch, depth} (depth 12 = the full network; smaller depths time a
// prefix of it for quick runs). The PyTorch peer is timed by benchmarks/dinov2_vs_torch.py,
// which runs this binary and the reference in one script with the same thread count.
// BM_dinov2_preprocess times the host preprocessing (data::dinov2_preprocess: [-1, 1] -> ImageNet
// mean/std -> bicubic 256 -> 224), which stays on the host when the network runs on a GPU
// (redi_extract --device cuda): its images/s bound the GPU path's throughput from above. The
// GPU network itself is timed by bench_cuda_ops (BM_Dinov2Forward, the device check).
#include <benchmark/benchmark.h>

#include <cstdint>
#include <vector>

#include "redi/core/philox.hpp"
#include "redi/data/features.hpp"
#include "redi/nn/dinov2.hpp"
#include "redi/ops/cpu_backend.hpp"

static void BM_dinov2_forward(benchmark::State& state) {
  const int B = int(state.range(0));
  redi::Dinov2Config cfg = redi::Dinov2Config::base();
  cfg.depth = int(state.range(1));
  redi::Dinov2<float> net(cfg);
  net.randomize(1);
  net.set_chunk_batch(B);
  const int S = 224;
  std::vector<float> x(std::size_t(B) * 3 * S * S), out(std::size_t(B) * 256 * 768);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = float(redi::philox::normal(7, 0, i));
  net.forward(x.data(), B, S, S, out.data());  // warm-up: arena, position table
  for (auto _ : state) {
    net.forward(x.data(), B, S, S, out.data());
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["images_per_s"] = benchmark::Counter(double(B) * double(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_dinov2_forward)
    ->Args({4, 12})
    ->Args({4, 2})
    ->Args({1, 12})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->MeasureProcessCPUTime()  // cpu_time: all threads (dinov2_vs_torch.py --clock cpu)
    ->MinTime(2.0);

static void BM_dinov2_preprocess(benchmark::State& state) {
  const int B = int(state.range(0)), S = 256;
  redi::Tensor<float> x(redi::Shape{B, 3, S, S});
  for (std::int64_t i = 0; i < x.numel(); ++i) x.data()[i] = float(redi::philox::uniform(8, 0, std::uint64_t(i))) * 2 - 1;
  for (auto _ : state) {
    redi::Tensor<float> p = redi::data::dinov2_preprocess(x.view(), 224);
    benchmark::DoNotOptimize(p.data());
  }
  state.counters["images_per_s"] = benchmark::Counter(double(B) * double(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_dinov2_preprocess)->Arg(16)->Unit(benchmark::kMillisecond)->UseRealTime()->MeasureProcessCPUTime()->MinTime(1.0);

BENCHMARK_MAIN();
