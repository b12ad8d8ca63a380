// tests/cuda/vae_reference.cpp — see vae_reference.hpp.
#include "vae_reference.hpp"

#include <cstdint>
#include <cstdlib>

#include "redi/io/npz.hpp"
#include "redi/ops/cpu_backend.hpp"
#include "redi/weights/vae.hpp"

namespace redi::test::ref {

std::vector<float> conv2d(const std::vector<float>& in, const std::vector<float>& w, const std::vector<float>& b,
                          int B, int H, int W, const ops::Conv2dGeometry& g) {
  std::vector<float> out(std::size_t(B) * g.out_channels * g.out_h(H) * g.out_w(W));
  std::vector<float> scratch(std::size_t(ops::conv2d_scratch_elems(g, H, W, B)));
  ops::conv2d_forward(cpu, out.data(), in.data(), w.data(), b.empty() ? nullptr : b.data(), B, H, W, g,
                      scratch.data(), std::int64_t(scratch.size()));
  return out;
}

VaeCase tiny_vae_on_cpu() {
  const char* d = std::getenv("REDI_TEST_DATA");
  const std::string dir = std::string(d ? d : REDI_VAE_TEST_DATA) + "/vae/";
  VaeCase c;
  c.cfg.block_out_channels = {8, 16, 16};
  c.cfg.layers_per_block = 2;
  c.cfg.norm_groups = 4;
  Vae<float> vae(c.cfg);
  load_vae_weights(vae, dir + "tiny_vae.safetensors");
  c.params = vae.params_to_host();
  const auto f = io::NpzFile::open(dir + "tiny_vae_ref.npz");
  c.images = f.read<float>("images");
  c.latents = f.read<float>("latents");
  c.moments.resize(std::size_t(c.B) * 8 * c.h * c.w);
  c.decoded.resize(c.images.size());
  vae.encode(c.moments.data(), c.images.data(), c.B, c.H, c.W);
  vae.decode(c.decoded.data(), c.latents.data(), c.B, c.h, c.w);
  return c;
}

}  // namespace redi::test::ref
