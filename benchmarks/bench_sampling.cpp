// Sampling throughput of the tiny config (SiT depth 4, width 128, 4 heads, patch 2, 16x16,
// 1+8 channels, batch 64) with and without each guidance policy. items_per_second = images/s
// for a full 25-step Euler ODE run; guided runs evaluate 2B (CFG or RG) or 3B (CFG+RG) rows
// per step in one batched forward, so their ratio to NoGuidance shows the batching cost.
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "redi/ops/cpu_backend.hpp"
#include "redi/redi_model.hpp"

namespace {

using Model = redi::ReDi<redi::SiT, redi::Merged, redi::FlowMatching, float>;

Model& tiny_model() {
  static Model* m = [] {
    Model::Options o;
    o.model.input_size = 16; o.model.patch = 2; o.model.image_channels = 1;
    o.model.feature_channels = 8; o.model.depth = 4; o.model.width = 128; o.model.heads = 4;
    o.model.num_classes = 10;
    auto* model = new Model(o);
    // Non-zero weights (DiT's zero init would make every branch identical).
    model->ema().layout().randomize(model->ema().params().data(), 7, 0.02);
    return model;
  }();
  return *m;
}

template <class G>
void BM_sample(benchmark::State& state) {
  Model& m = tiny_model();
  const int B = 64, n = B * 9 * 16 * 16;
  std::vector<float> out(std::size_t(n), 0.f);
  std::vector<int> labels(B);
  for (int i = 0; i < B; ++i) labels[i] = i % 10;
  redi::SampleRequest req;
  req.B = B;
  req.labels = labels.data();
  redi::OdeEuler::Options so;
  so.num_steps = 25;
  redi::GuidanceOptions go;
  go.cfg_scale = 2.0;
  go.rg_scale = 1.5;
  m.sample<redi::OdeEuler, G>(out.data(), req, so, go);  // warm-up: sizes the EMA net's arena
  for (auto _ : state) {
    m.sample<redi::OdeEuler, G>(out.data(), req, so, go);
    benchmark::DoNotOptimize(out.data());
    ++req.seed;
  }
  state.SetItemsProcessed(state.iterations() * B);
}

}  // namespace

BENCHMARK(BM_sample<redi::NoGuidance>)->Name("sample/tiny/NoGuidance")->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);
BENCHMARK(BM_sample<redi::CFG<redi::VaeOnly>>)->Name("sample/tiny/CFG_VaeOnly")->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);
BENCHMARK(BM_sample<redi::RepGuidance>)->Name("sample/tiny/RepGuidance")->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);
BENCHMARK(BM_sample<redi::Combine<redi::CFG<redi::VaeOnly>, redi::RepGuidance>>)->Name("sample/tiny/CFG_plus_RG")->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);

BENCHMARK_MAIN();
