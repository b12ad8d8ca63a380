// examples/extract/dinov2_cuda.cu — redi_extract --device cuda: DINOv2 as Dinov2<float, Cuda> on
// GPU 0 behind the Dinov2Encoder of train/dinov2_encoder.hpp (preprocessing on the host, pixels
// copied to the device, patch tokens back; the PCA projection stays on the host). Built only with
// CUDA.
#include <string>

#include "redi/cuda/backend.cuh"
#include "redi/nn/dinov2.hpp"
#include "redi/train/dinov2_encoder.hpp"
#include "redi/weights/dinov2.hpp"

namespace redi_extract {

redi::Dinov2Encoder make_cuda_dinov2(const std::string& path, int heads) {
  using redi::Cuda;
  return redi::Dinov2Encoder(redi::load_dinov2<float, Cuda>(path, heads, Cuda::create(0)));
}

}  // namespace redi_extract
