// redi/train/samples.hpp — drawing a set of samples in batches, keeping their image channels,
// and writing them for evaluation: <dir>/samples.npz in the format of the ADM evaluator
// (openai/guided-diffusion evaluations/evaluator.py: uint8 NHWC arr_0, labels arr_1) and a PNG
// grid <dir>/samples.png.
//
//   auto s = redi::train::sample_images(model.net().config(), labels, /*seed=*/1,
//       [&](float* out, const redi::SampleRequest& req) { model.sample<redi::OdeEuler>(out, req); });
//   redi::train::write_samples("runs/x", s, /*grid=*/100, /*cols=*/10);
#pragma once
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <ostream>
#include <string>
#include <vector>

#include "redi/core/error.hpp"
#include "redi/diffusion/samplers.hpp"
#include "redi/io/image_write.hpp"
#include "redi/io/npz.hpp"
#include "redi/nn/config.hpp"
#include "redi/train/metrics_log.hpp"

namespace redi::train {

/// The image channels of generated samples, x [n, c, h, w] (pixels in [-1, 1], or latents), and
/// the labels they were drawn for.
struct SampleImages {
  int n = 0, c = 0, h = 0, w = 0;
  std::vector<float> x;
  std::vector<int> labels;
};

/// Draws labels.size() samples with draw(float* out [b, per sample mc.input_elems()], const SampleRequest&),
/// `batch` rows at a time (row i has global index i, so a sample does not depend on the batch
/// size), and keeps the image channels of each (the representation channels are dropped).
/// `progress` (optional) gets a line per batch, starting with `tag`.
template <class Draw>
SampleImages sample_images(const ModelConfig& mc, std::vector<int> labels, std::uint64_t seed, Draw&& draw,
                           int batch = 100, std::ostream* progress = nullptr, const std::string& tag = "[redi]") {
  REDI_CHECK(batch > 0, "sample_images: batch ", batch);
  SampleImages s;
  s.n = int(labels.size());
  s.c = mc.image_channels;
  s.h = s.w = mc.input_size;
  s.labels = std::move(labels);
  const std::size_t img = std::size_t(s.c) * s.h * s.w;
  const std::size_t per = std::size_t(mc.input_elems());  // one packed sample [x | z]
  s.x.resize(std::size_t(s.n) * img);
  std::vector<float> buf;
  const auto t0 = std::chrono::steady_clock::now();
  for (int b0 = 0; b0 < s.n; b0 += batch) {
    SampleRequest req;
    req.B = std::min(batch, s.n - b0);
    req.labels = s.labels.data() + b0;
    req.seed = seed;
    req.first_index = std::uint64_t(b0);
    buf.resize(std::size_t(req.B) * per);
    draw(buf.data(), req);
    for (int i = 0; i < req.B; ++i)
      std::copy_n(buf.data() + std::size_t(i) * per, img, s.x.data() + std::size_t(b0 + i) * img);
    if (progress) {
      const int done = b0 + req.B;
      const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      *progress << tag << " sampled " << done << "/" << s.n << "  " << format_duration(el) << "  ETA "
                << format_duration(el / done * (s.n - done)) << std::endl;
    }
  }
  return s;
}

/// Writes s (1 or 3 image channels in [-1, 1]) as <dir>/samples.npz (uint8 NHWC
/// clamp(127.5 x + 128) as arr_0, the labels as arr_1) and <dir>/samples.png (a grid of the first
/// `grid` samples, `cols` per row). Returns the uint8 NHWC pixels.
inline std::vector<std::uint8_t> write_samples(const std::filesystem::path& dir, const SampleImages& s,
                                               int grid = 100, int cols = 10) {
  REDI_CHECK(s.c == 1 || s.c == 3, "write_samples: ", s.c,
             " image channels (1 or 3 make a picture; decode latents with their VAE first)");
  io::create_directories(dir);
  const auto u8 = io::to_uint8_nhwc(s.x.data(), s.n, s.c, s.h, s.w);
  io::save_sample_npz(dir / "samples.npz", u8.data(), s.n, s.h, s.w, s.c, s.labels.data());
  const int shown = std::min(s.n, grid);
  if (shown > 0) io::write_png(dir / "samples.png", io::make_grid(u8.data(), shown, s.h, s.w, s.c, std::max(1, cols)));
  return u8;
}

}  // namespace redi::train
