// redi_train: the SiT (flow matching) instantiations.
#include "redi/ops/cpu_backend.hpp"  // these instantiations run on the CPU
#include "train_run.hpp"

namespace redi_examples {
int run_sit(const CliOptions& c, const redi::data::TrainSet& data) {
  if (c.fusion == "separate") return run_training<redi::ReDi<redi::SiT, redi::Separate, redi::FlowMatching>>(c, data);
  return run_training<redi::ReDi<redi::SiT, redi::Merged, redi::FlowMatching>>(c, data);
}
}  // namespace redi_examples
