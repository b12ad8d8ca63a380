// redi_train: the DiT (DDPM) instantiations.
#include "redi/ops/cpu_backend.hpp"  // these instantiations run on the CPU
#include "train_run.hpp"

namespace redi_examples {
int run_dit(const CliOptions& c, const redi::data::TrainSet& data) {
  if (c.fusion == "separate") return run_training<redi::ReDi<redi::DiT, redi::Separate, redi::DDPM>>(c, data);
  return run_training<redi::ReDi<redi::DiT, redi::Merged, redi::DDPM>>(c, data);
}
}  // namespace redi_examples
