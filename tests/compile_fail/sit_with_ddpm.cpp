// Must NOT compile: SiT is the flow-matching backbone.
#include "redi/ops/cpu_backend.hpp"
#include "redi/redi_model.hpp"
int main() { redi::ReDi<redi::SiT, redi::Merged, redi::DDPM> m({}); (void)m; }
