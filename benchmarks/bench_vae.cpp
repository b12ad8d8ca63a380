// Benchmarks for the SD-VAE (redi/nn/vae.hpp) on the CPU: encode (256x256 images -> moments)
// and decode (32x32x4 latents -> 256x256 images) in images/s, at the sd-vae-ft-ema width
// (128/256/512/512, "full") and at a quarter of it (32/64/128/128, "quarter"; GroupNorm 32
// groups as the real one, widths / 4). Weights are random with the real structure (GroupNorm
// scales 1, fan-in-scaled convolutions), so activations stay O(1) as with real weights.
//   build/benchmarks/bench_vae --benchmark_filter=quarter
//   python3 benchmarks/vae_vs_pytorch.py build/benchmarks/bench_vae   # + the PyTorch peer, ratio
#include <benchmark/benchmark.h>

#include <cmath>
#include <string>
#include <vector>

#include "redi/core/philox.hpp"
#include "redi/nn/vae.hpp"
#include "redi/ops/cpu_backend.hpp"

using namespace redi;

namespace {

VaeConfig config(int quarter) {
  VaeConfig c = VaeConfig::sd_vae_ft_ema();
  if (quarter)
    for (auto& w : c.block_out_channels) w /= 4;
  return c;
}

/// GroupNorm scales 1, biases 0, weights N(0, 1/fan_in).
void init(Vae<float>& v) {
  std::vector<float> p(std::size_t(v.num_params()));
  const auto& entries = v.layout().entries;
  for (std::size_t k = 0; k < entries.size(); ++k) {
    const auto& e = entries[k];
    const bool vec = e.shape.rank == 1;
    const bool norm = vec && e.name.find("norm") != std::string::npos && e.name.ends_with(".weight");
    const double sd = vec ? 0.0 : 1.0 / std::sqrt(double(e.cols()));
    for (std::int64_t i = 0; i < e.numel(); ++i)
      p[std::size_t(e.offset + i)] = norm ? 1.0f : float(sd * philox::normal(3, k, std::uint64_t(i)));
  }
  v.set_params(p.data());
}

std::vector<float> uniform(std::size_t n) {
  std::vector<float> x(n);
  for (std::size_t i = 0; i < n; ++i) x[i] = float(2 * philox::uniform(1, 0, i) - 1);
  return x;
}

void BM_vae_encode_256(benchmark::State& state) {
  Vae<float> vae(config(int(state.range(0))));
  init(vae);
  const int B = int(state.range(1));
  vae.micro_batch = B;
  const auto img = uniform(std::size_t(B) * 3 * 256 * 256);
  std::vector<float> mom(std::size_t(B) * 8 * 32 * 32);
  vae.encode(mom.data(), img.data(), B, 256, 256);  // warm-up: the arena
  for (auto _ : state) {
    vae.encode(mom.data(), img.data(), B, 256, 256);
    benchmark::DoNotOptimize(mom.data());
  }
  state.counters["images/s"] = benchmark::Counter(double(B) * double(state.iterations()), benchmark::Counter::kIsRate);
  state.counters["arena_MiB"] = double(vae.arena_bytes()) / (1 << 20);
  state.SetLabel(state.range(0) ? "quarter" : "full");
}

void BM_vae_decode_256(benchmark::State& state) {
  Vae<float> vae(config(int(state.range(0))));
  init(vae);
  const int B = int(state.range(1));
  vae.micro_batch = B;
  auto z = uniform(std::size_t(B) * 4 * 32 * 32);
  for (auto& v : z) v *= 0.18215f * 3;
  std::vector<float> img(std::size_t(B) * 3 * 256 * 256);
  vae.decode(img.data(), z.data(), B, 32, 32);
  for (auto _ : state) {
    vae.decode(img.data(), z.data(), B, 32, 32);
    benchmark::DoNotOptimize(img.data());
  }
  state.counters["images/s"] = benchmark::Counter(double(B) * double(state.iterations()), benchmark::Counter::kIsRate);
  state.counters["arena_MiB"] = double(vae.arena_bytes()) / (1 << 20);
  state.SetLabel(state.range(0) ? "quarter" : "full");
}

}  // namespace

// Args: {quarter width?, batch}. Full width: one image per pass (seconds per image on 2 cores).
BENCHMARK(BM_vae_encode_256)->Args({1, 1})->Args({0, 1})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_vae_decode_256)->Args({1, 1})->Args({0, 1})->Unit(benchmark::kMillisecond)->UseRealTime();

BENCHMARK_MAIN();
