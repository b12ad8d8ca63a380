// Full ReDi training step (forward, joint loss, backward, clip, AdamW, EMA) on the CPU,
// templated over the fusion policy, plus the sgemm ceiling of the same build.
//   tiny: SiT depth 4, width 128, 4 heads, patch 2, 16x16 input, 1+8 channels, batch 64
//   S2:   SiT-S/2 on 32x32, 4+8 channels, batch 8
// Wall-clock time (UseRealTime): the step is multi-threaded. Counters: items_per_second = images/s; GFLOPS = achieved model FLOP rate (training FLOPs =
// 3x the forward's matmul + attention FLOPs); ceiling_frac = GFLOPS / sgemm GFLOPS measured in
// this process: compare the GFLOPS counters of BM_sgemm_2048 and the steps in one run.
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "redi/core/philox.hpp"
#include "redi/ops/cpu_backend.hpp"
#include "redi/ops/gemm.hpp"
#include "redi/nn/flops.hpp"
#include "redi/redi_model.hpp"

namespace {

void BM_sgemm_2048(benchmark::State& state) {
  const int n = 2048;
  std::vector<float> A(std::size_t(n) * n), B(std::size_t(n) * n), C(std::size_t(n) * n);
  redi::philox::fill_normal(A.data(), A.size(), 1, 1);
  redi::philox::fill_normal(B.data(), B.size(), 1, 2);
  for (auto _ : state) {
    redi::ops::gemm(redi::cpu, false, false, n, n, n, 1.f, A.data(), n, B.data(), n, 0.f, C.data(), n);
    benchmark::DoNotOptimize(C.data());
  }
  const double flops = 2.0 * n * n * n;
  state.counters["GFLOPS"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

struct StepConfig {
  const char* name;
  redi::ModelConfig model;
  int batch;
};

StepConfig tiny_config() {
  redi::ModelConfig c;
  c.input_size = 16; c.patch = 2; c.image_channels = 1; c.feature_channels = 8;
  c.depth = 4; c.width = 128; c.heads = 4; c.num_classes = 10;
  return {"tiny", c, 64};
}

StepConfig s2_config() {
  redi::ModelConfig c;
  c.preset("S/2");
  c.input_size = 32; c.image_channels = 4; c.feature_channels = 8; c.num_classes = 1000;
  return {"S2", c, 8};
}

template <class F>
void BM_train_step(benchmark::State& state, StepConfig sc) {
  using Model = redi::ReDi<redi::SiT, F, redi::FlowMatching, float>;
  typename Model::Options o;
  o.model = sc.model;
  o.loss.p_drop = 0.2;
  Model m(o);
  const int B = sc.batch, H = sc.model.input_size;
  std::vector<float> x(std::size_t(B) * sc.model.image_channels * H * H);
  std::vector<float> z(std::size_t(B) * sc.model.feature_channels * H * H);
  std::vector<int> y(B);
  redi::philox::fill_normal(x.data(), x.size(), 3, 1);
  redi::philox::fill_normal(z.data(), z.size(), 3, 2);
  for (int i = 0; i < B; ++i) y[i] = i % sc.model.num_classes;
  m.train_step(x.data(), z.data(), y.data(), B);  // warm-up: sizes the arena
  for (auto _ : state) {
    auto st = m.train_step(x.data(), z.data(), y.data(), B);
    benchmark::DoNotOptimize(st.loss.loss);
  }
  const double flops = 3.0 * redi::forward_flops<F>(sc.model) * B;
  state.SetItemsProcessed(state.iterations() * B);
  state.counters["GFLOPS"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["params_M"] = double(m.net().num_params()) / 1e6;
}

}  // namespace

template <class F>
void register_step(const StepConfig& sc, double min_time) {
  std::string name = std::string("train_step/") + sc.name + "/" + F::name;
  benchmark::RegisterBenchmark(name.c_str(), [sc](benchmark::State& st) { BM_train_step<F>(st, sc); })
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime()
      ->MinTime(min_time);
}

int main(int argc, char** argv) {
  benchmark::RegisterBenchmark("sgemm_2048", BM_sgemm_2048)
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime()
      ->MinTime(1.0);
  register_step<redi::Merged>(tiny_config(), 2.0);
  register_step<redi::Separate>(tiny_config(), 2.0);
  register_step<redi::Merged>(s2_config(), 3.0);
  register_step<redi::Separate>(s2_config(), 3.0);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
