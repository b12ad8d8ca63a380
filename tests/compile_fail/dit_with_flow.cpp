// Must NOT compile: DiT feeds integer DDPM timesteps.
#include "redi/ops/cpu_backend.hpp"
#include "redi/redi_model.hpp"
int main() { redi::ReDi<redi::DiT, redi::Merged, redi::FlowMatching> m({}); (void)m; }
