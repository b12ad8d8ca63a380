// Must NOT compile: CFG's mode must be VaeOnly or Joint.
#include "redi/ops/cpu_backend.hpp"
#include "redi/redi_model.hpp"
int main() {
  redi::ReDi<redi::SiT, redi::Merged, redi::FlowMatching> m({});
  m.sample<redi::OdeEuler, redi::CFG<int>>(nullptr, redi::SampleRequest{});
}
