// tests/cuda/dinov2_reference.cpp — see dinov2_reference.hpp.
#include "dinov2_reference.hpp"

#include <cstdint>
#include <cstdlib>

#include "redi/core/philox.hpp"
#include "redi/io/safetensors.hpp"
#include "redi/ops/activation.hpp"
#include "redi/ops/cpu_backend.hpp"
#include "redi/ops/layernorm.hpp"
#include "redi/weights/dinov2.hpp"

namespace redi::test::ref {

std::vector<float> layernorm_affine(const std::vector<float>& x, const std::vector<float>& gamma,
                                    const std::vector<float>& beta, int rows, int C, float eps) {
  std::vector<float> y(x.size());
  ops::layernorm_affine_forward(cpu, y.data(), x.data(), gamma.data(), beta.data(), rows, C, eps);
  return y;
}

std::vector<float> gelu_erf(const std::vector<float>& x) {
  std::vector<float> y(x.size());
  ops::gelu_erf_forward(cpu, y.data(), x.data(), std::int64_t(x.size()));
  return y;
}

namespace {
Dinov2Case run(Dinov2<float>& net, Dinov2Case c) {
  c.cfg = net.config();
  c.params = net.params_to_host();
  const auto g = net.grid(c.H, c.W);
  c.tokens.resize(std::size_t(c.B) * g[0] * g[1] * c.cfg.width);
  net.forward(c.pixels.data(), c.B, c.H, c.W, c.tokens.data());
  return c;
}
}  // namespace

Dinov2Case tiny_dinov2_on_cpu() {
  const char* d = std::getenv("REDI_TEST_DATA");
  const std::string dir = std::string(d ? d : REDI_DINOV2_TEST_DATA) + "/dinov2/";
  Dinov2Case c;
  c.weights = dir + "tiny_dinov2.safetensors";
  auto net = load_dinov2<float>(c.weights);
  const auto f = io::SafeTensorsFile::open(dir + "dinov2_ref.safetensors");
  c.pixels = f.read<float>("case_a_pixels");  // float32 values
  c.torch_tokens = f.read<double>("case_a32_tokens");
  c.B = 2, c.H = 42, c.W = 42;
  return run(net, std::move(c));
}

Dinov2Case random_dinov2_on_cpu() {
  Dinov2Config cfg;
  cfg.width = 96, cfg.heads = 6, cfg.depth = 3, cfg.mlp_dim = 384;
  Dinov2<float> net(cfg);
  net.randomize(11, 0.05);
  Dinov2Case c;
  c.B = 5, c.H = 112, c.W = 168;
  c.pixels.resize(std::size_t(c.B) * 3 * c.H * c.W);
  for (std::size_t i = 0; i < c.pixels.size(); ++i) c.pixels[i] = float(philox::normal(12, 0, i));
  return run(net, std::move(c));
}

}  // namespace redi::test::ref
