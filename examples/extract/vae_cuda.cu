// examples/extract/vae_cuda.cu — redi_extract --device cuda: the SD-VAE encoder as Vae<float, Cuda>
// on GPU 0, behind the host-memory MomentsFn of extract_pipeline.hpp (images are copied to the
// device, moments back). Built only with CUDA. DINOv2 on the GPU: dinov2_cuda.cu.
#include <memory>
#include <string>

#include "redi/cuda/backend.cuh"
#include "redi/nn/vae.hpp"
#include "redi/weights/vae.hpp"
#include "extract_pipeline.hpp"

namespace redi_extract {

MomentsFn make_cuda_vae(const redi::VaeConfig& cfg, const std::string& path) {
  using redi::Cuda;
  struct State {
    redi::Vae<float, Cuda> vae;
    redi::Tensor<float, Cuda> images, moments;
    std::int64_t cap_in = 0, cap_out = 0;
    explicit State(const redi::VaeConfig& c) : vae(c, Cuda::create(0)) {}
  };
  auto st = std::make_shared<State>(cfg);
  redi::load_vae_weights(st->vae, path);
  return [st](const float* x, int n, int S, float* m) {
    const int f = st->vae.config().downsample_factor();
    const std::int64_t nin = std::int64_t(n) * st->vae.config().in_channels * S * S;
    const std::int64_t nout = std::int64_t(n) * 2 * st->vae.config().latent_channels * (S / f) * (S / f);
    if (nin > st->cap_in) st->images = redi::Tensor<float, Cuda>(redi::Shape{nin}), st->cap_in = nin;
    if (nout > st->cap_out) st->moments = redi::Tensor<float, Cuda>(redi::Shape{nout}), st->cap_out = nout;
    Cuda::copy_from_host(st->images.data(), x, std::size_t(nin) * sizeof(float));
    st->vae.encode(st->moments.data(), st->images.data(), n, S, S);
    Cuda::copy_to_host(m, st->moments.data(), std::size_t(nout) * sizeof(float));
  };
}

}  // namespace redi_extract
