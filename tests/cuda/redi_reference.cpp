// tests/cuda/redi_reference.cpp — the CPU ReDi run of redi_run.hpp (g++ only), the reference
// for test_cuda_redi.cu.
#include "redi/ops/cpu_backend.hpp"
#include "redi/redi_model.hpp"
#include "redi_run.hpp"

namespace redi::test::ref {

RunResult run_cpu_redi(const ModelConfig& c, const RunSpec& s) {
  using M = ReDi<SiT, Merged, FlowMatching, float, Cpu>;
  M m(run_options<M>(c, s));
  return run_redi(m, c, s);
}

}  // namespace redi::test::ref
