// redi_extract_test_data — writes what the end-to-end extraction test needs and the repository
// cannot hold: an image folder in the ImageNet layout (2 classes, PNGs of assorted sizes, some
// smaller and some larger than the crop, smooth random patterns) and random weights of a small
// 4-block SD-VAE (block_out_channels 8/8/8/8, 1 resnet per block, 4 groups: the 8x factor of
// sd-vae-ft-ema, so 256 px images give the 32x32 latents redi_train_imagenet expects).
//   redi_extract_test_data OUTDIR   ->  OUTDIR/images/<class>/*.png, OUTDIR/vae.safetensors
// Built only with the tests (examples/extract/CMakeLists.txt).
#include <cmath>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "redi/core/philox.hpp"
#include "redi/io/image_write.hpp"
#include "redi/nn/vae.hpp"
#include "redi/ops/cpu_backend.hpp"
#include "redi/weights/vae.hpp"

namespace fs = std::filesystem;

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: redi_extract_test_data OUTDIR\n";
    return 2;
  }
  const fs::path out = argv[1];
  const int sizes[6][2] = {{300, 260}, {180, 240}, {256, 256}, {520, 610}, {90, 120}, {256, 300}};
  for (int i = 0; i < 6; ++i) {
    const std::string cls = i % 2 ? "n02_dog" : "n01_cat";
    fs::create_directories(out / "images" / cls);
    const int h = sizes[i][0], w = sizes[i][1];
    std::vector<std::uint8_t> px(std::size_t(h) * w * 3);
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x)
        for (int c = 0; c < 3; ++c) {
          const double v = 0.5 + 0.25 * std::sin(0.05 * (i + 1) * x + 0.7 * c) * std::cos(0.03 * (c + 1) * y + i) +
                           0.15 * (redi::philox::uniform(std::uint64_t(i), std::uint64_t(y * w + x), std::uint64_t(c)) - 0.5);
          px[(std::size_t(y) * w + x) * 3 + std::size_t(c)] = std::uint8_t(std::lround(std::clamp(v, 0.0, 1.0) * 255));
        }
    redi::io::write_png(out / "images" / cls / ("img" + std::to_string(i) + ".png"), px.data(), w, h, 3);
  }
  redi::VaeConfig cfg;
  cfg.block_out_channels = {8, 8, 8, 8};
  cfg.layers_per_block = 1;
  cfg.norm_groups = 4;
  redi::Vae<float> vae(cfg);
  std::vector<float> p(std::size_t(vae.num_params()));
  for (std::size_t k = 0; k < vae.layout().entries.size(); ++k) {
    const auto& e = vae.layout().entries[k];
    const bool norm = e.name.find("norm") != std::string::npos;
    const bool bias = e.name.size() > 5 && e.name.compare(e.name.size() - 5, 5, ".bias") == 0;
    const double scale = norm ? 0.1 : bias ? 0.05 : 1.0 / std::sqrt(double(e.numel() / e.shape[0]));
    for (std::int64_t i = 0; i < e.numel(); ++i)
      p[std::size_t(e.offset + i)] = float((norm && !bias ? 1.0 : 0.0) + scale * redi::philox::normal(42, k, std::uint64_t(i)));
  }
  vae.set_params(p.data());
  redi::save_vae_weights(vae, out / "vae.safetensors");
  std::cout << "wrote " << (out / "images").string() << " (6 images, 2 classes) and " << (out / "vae.safetensors").string()
            << " (" << vae.num_params() << " parameters)\n";
  return 0;
}
