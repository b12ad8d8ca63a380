// redi_extract_test_data — writes what the end-to-end extraction test needs and the repository
// cannot hold: an image folder in the ImageNet layout (2 classes, PNGs of assorted sizes, some
// smaller and some larger than the crop, smooth random patterns; with libjpeg, three of them are
// JPEGs named as ImageNet's, .JPEG: baseline 4:2:0, 4:4:4 and progressive, written here through
// libjpeg's encoder) and random weights of a small
// 4-block SD-VAE (block_out_channels 8/8/8/8, 1 resnet per block, 4 groups: the 8x factor of
// sd-vae-ft-ema, so 256 px images give the 32x32 latents redi_train_imagenet expects).
//   redi_extract_test_data OUTDIR   ->  OUTDIR/images/<class>/*.png|*.JPEG, OUTDIR/vae.safetensors
//   redi_extract_test_data verify OUTDIR DINOV2 SHARD
//       recomputes, by a path independent of redi_extract's code, every row of the shard (written
//       with --flips, --latents mean, f32): the listing order and labels, the ADM crop, the mirrored
//       copy, 0.18215 * the VAE mean, the channels-first PCA projection (pca_project on the
//       Dinov2 tokens of the authors' preprocessing) — and checks that the flipped sample is NOT
//       the mirror of the stored arrays (it is the networks' output for the mirrored image).
// Built only with the tests (examples/extract/CMakeLists.txt).
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "redi/core/philox.hpp"
#include "redi/data/dataset.hpp"
#include "redi/data/features.hpp"
#include "redi/data/image_io.hpp"
#include "redi/data/pca_io.hpp"
#include "redi/io/safetensors.hpp"
#include "redi/weights/dinov2.hpp"
#include "redi/io/image_write.hpp"
#include "redi/nn/vae.hpp"
#include "redi/ops/cpu_backend.hpp"
#include "redi/weights/vae.hpp"

#if defined(REDI_HAVE_JPEG) && REDI_HAVE_JPEG
#include <cstdio>
#include <cstdlib>
#include <fstream>

#include <jpeglib.h>
#endif

namespace fs = std::filesystem;

namespace {

#if defined(REDI_HAVE_JPEG) && REDI_HAVE_JPEG
// An RGB image as a JPEG (quality 90; 4:2:0 or 4:4:4; optionally progressive). libjpeg's default
// error handler (print, exit) is fine for a test-data tool writing its own pixels.
void write_jpeg(const fs::path& path, const std::uint8_t* rgb, int w, int h, bool subsample, bool progressive) {
  jpeg_compress_struct c{};
  jpeg_error_mgr err{};
  c.err = jpeg_std_error(&err);
  jpeg_create_compress(&c);
  unsigned char* buf = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&c, &buf, &size);
  c.image_width = JDIMENSION(w), c.image_height = JDIMENSION(h), c.input_components = 3, c.in_color_space = JCS_RGB;
  jpeg_set_defaults(&c);
  jpeg_set_quality(&c, 90, TRUE);
  for (int k = 0; k < 3; ++k)
    c.comp_info[k].h_samp_factor = c.comp_info[k].v_samp_factor = (k == 0 && subsample) ? 2 : 1;
  if (progressive) jpeg_simple_progression(&c);
  jpeg_start_compress(&c, TRUE);
  while (c.next_scanline < c.image_height) {
    JSAMPROW row = const_cast<std::uint8_t*>(rgb + std::size_t(c.next_scanline) * std::size_t(w) * 3);
    jpeg_write_scanlines(&c, &row, 1);
  }
  jpeg_finish_compress(&c);
  jpeg_destroy_compress(&c);
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(buf), std::streamsize(size));
  std::free(buf);
}
#endif

redi::VaeConfig test_vae_config() {
  redi::VaeConfig cfg;
  cfg.block_out_channels = {8, 8, 8, 8};
  cfg.layers_per_block = 1;
  cfg.norm_groups = 4;
  return cfg;
}

double max_abs_diff(const float* a, const float* b, std::size_t n) {
  double m = 0;
  for (std::size_t i = 0; i < n; ++i) m = std::max(m, std::abs(double(a[i]) - double(b[i])));
  return m;
}

int verify(const fs::path& work, const fs::path& dinov2, const fs::path& shard_path) {
  const auto shard = redi::io::SafeTensorsFile::open(shard_path);
  const auto lat = shard.read<float>("latents"), z = shard.read<float>("z");
  const auto labels = shard.read<std::int64_t>("labels"), index = shard.read<std::int64_t>("image_index");
  const auto flipped = shard.read<std::int64_t>("flipped");
  const auto zs = shard.info("z").shape;
  const int n = int(labels.size()), R = int(zs[1]), S = 256;
  const auto listing = redi::data::list_image_folder((work / "images").string());
  redi::Vae<float> vae(test_vae_config());
  redi::load_vae_weights(vae, work / "vae.safetensors");
  auto net = redi::load_dinov2<float>(dinov2);
  const auto pca = redi::data::load_pca(work / "shards" / "pca" / "pca.safetensors");
  const std::size_t ln = 4 * 32 * 32, zn = std::size_t(R) * 256;
  int bad = 0;
  auto fail = [&](const std::string& what) {
    std::cerr << "verify: " << what << "\n";
    ++bad;
  };
  for (int i = 0; i < n; ++i) {
    const auto k = std::size_t(index[std::size_t(i)]);
    if (labels[std::size_t(i)] != listing.labels[k]) fail("label of row " + std::to_string(i));
    if (flipped[std::size_t(i)] != i % 2) fail("flip flag of row " + std::to_string(i));
    const auto im = redi::data::decode_image_file(listing.files[k], 3);
    auto crop = redi::data::center_crop_adm(im.pixels.data(), im.h, im.w, 3, S);
    std::vector<float> x(std::size_t(3) * S * S);  // CHW in [-1, 1]
    for (int c = 0; c < 3; ++c)
      for (int p = 0; p < S * S; ++p) x[std::size_t(c) * S * S + std::size_t(p)] = crop[std::size_t(p) * 3 + std::size_t(c)] / 127.5f - 1.f;
    if (flipped[std::size_t(i)]) redi::data::hflip_chw(x.data(), 3, S, S);
    std::vector<float> mom(2 * ln);
    vae.encode(mom.data(), x.data(), 1, S, S);
    std::vector<float> want_lat(ln);
    for (std::size_t j = 0; j < ln; ++j) want_lat[j] = float(0.18215 * double(mom[j]));
    const double dl = max_abs_diff(want_lat.data(), lat.data() + std::size_t(i) * ln, ln);
    redi::Tensor<float> xt(redi::Shape{1, 3, S, S});
    std::copy(x.begin(), x.end(), xt.data());
    const auto pre = redi::data::dinov2_preprocess(xt.view(), 224);
    std::vector<float> tok(std::size_t(256) * net.feature_dim()), proj(std::size_t(256) * R);
    net.forward(pre.data(), 1, 224, 224, tok.data());
    redi::data::pca_project(pca, R, tok.data(), 256, proj.data());
    std::vector<float> want_z(zn);
    for (int t = 0; t < 256; ++t)
      for (int c = 0; c < R; ++c) want_z[std::size_t(c) * 256 + std::size_t(t)] = proj[std::size_t(t) * R + std::size_t(c)];
    const double dz = max_abs_diff(want_z.data(), z.data() + std::size_t(i) * zn, zn);
    std::cout << "row " << i << " (" << listing.files[k] << (i % 2 ? ", mirrored" : "") << "): |latents - ref| "
              << dl << ", |z - ref| " << dz << "\n";
    if (!(dl < 1e-4) || !(dz < 1e-3)) fail("row " + std::to_string(i) + " differs from the recomputation");
    if (i % 2) {  // the mirrored sample is not the mirror of the stored arrays
      std::vector<float> m(lat.begin() + std::ptrdiff_t((i - 1) * ln), lat.begin() + std::ptrdiff_t(i * ln));
      redi::data::hflip_chw(m.data(), 4, 32, 32);
      if (max_abs_diff(m.data(), lat.data() + std::size_t(i) * ln, ln) < 1e-3) fail("flipped latents = mirrored latents");
    }
  }
  std::cout << (bad ? "verify: FAILED\n" : "verify: all rows match\n");
  return bad ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 5 && std::string(argv[1]) == "verify") return verify(argv[2], argv[3], argv[4]);
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
    const fs::path stem = out / "images" / cls / ("img" + std::to_string(i));
#if defined(REDI_HAVE_JPEG) && REDI_HAVE_JPEG
    if (i == 1 || i == 2 || i == 5) {  // img1: 4:4:4, img2: 4:2:0, img5: progressive 4:2:0
      write_jpeg(fs::path(stem) += ".JPEG", px.data(), w, h, i != 1, i == 5);
      continue;
    }
#endif
    redi::io::write_png(fs::path(stem) += ".png", px.data(), w, h, 3);
  }
  redi::Vae<float> vae(test_vae_config());
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
  std::cout << "wrote " << (out / "images").string() << " (6 images, 2 classes, " << (redi::data::kHaveJpeg ? 3 : 0)
            << " of them JPEG) and " << (out / "vae.safetensors").string()
            << " (" << vae.num_params() << " parameters)\n";
  return 0;
}
