// examples/sample/sample_cuda.cu — redi_sample's GPU generators: the four model types as
// Transformer<float | BF16Mixed, F, Cuda> and Vae<float, Cuda> on GPU 0 (CUDA builds only).
#include "redi/cuda/backend.cuh"
#include "generator.hpp"

namespace redi_sample {

std::unique_ptr<Generator> make_cuda_generator(const Settings& s) {
  const redi::Cuda ctx = redi::Cuda::create(0);
  if (s.precision == "bf16") return make_generator<redi::BF16Mixed>(s, ctx);
  return make_generator<float>(s, ctx);
}

}  // namespace redi_sample
