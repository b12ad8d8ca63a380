// Must NOT compile: a flow-matching model cannot use the DDPM ancestral sampler.
#include "redi/ops/cpu_backend.hpp"
#include "redi/redi_model.hpp"
int main() {
  redi::ReDi<redi::SiT, redi::Merged, redi::FlowMatching> m({});
  m.sample<redi::Ancestral>(nullptr, redi::SampleRequest{});
}
