// Must not compile: bf16 mixed precision is a GPU policy; on the CPU the model computes in float
// or double.
#include "redi/ops/cpu_backend.hpp"
#include "redi/redi_model.hpp"

int main() {
  redi::ReDi<redi::SiT, redi::Merged, redi::FlowMatching, redi::BF16Mixed>::Options o;
  redi::ReDi<redi::SiT, redi::Merged, redi::FlowMatching, redi::BF16Mixed> m(o);
  return m.step() == 0 ? 0 : 1;
}
