// examples/train_imagenet/run_cuda.cu — redi_train_imagenet's GPU runs: the four model types
// (SiT/DiT x Merged/Separate) as ReDi<..., BF16Mixed, Cuda> on GPU 0, through the same
// training/sampling code as the CPU runs (examples/train/train_run.hpp). Built only with CUDA.
#include "redi/cuda/backend.cuh"
#include "../train/train_run.hpp"

namespace redi_examples {

int run_cuda(const CliOptions& c, const redi::data::TrainSet& data) {
  using P = redi::BF16Mixed;
  using redi::Cuda;
  const Cuda ctx = Cuda::create(0);
  const bool sep = c.fusion == "separate";
  if (c.backbone == "sit") {
    if (sep) return run_training<redi::ReDi<redi::SiT, redi::Separate, redi::FlowMatching, P, Cuda>>(c, data, ctx);
    return run_training<redi::ReDi<redi::SiT, redi::Merged, redi::FlowMatching, P, Cuda>>(c, data, ctx);
  }
  if (sep) return run_training<redi::ReDi<redi::DiT, redi::Separate, redi::DDPM, P, Cuda>>(c, data, ctx);
  return run_training<redi::ReDi<redi::DiT, redi::Merged, redi::DDPM, P, Cuda>>(c, data, ctx);
}

}  // namespace redi_examples
