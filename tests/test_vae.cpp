// Tests for the SD-VAE (redi/nn/vae.hpp, nn/vae_layout.hpp, weights/vae.hpp):
//  - PyTorch parity: tests/data/vae/tiny_vae.safetensors (random weights at reduced width under
//    the diffusers names) and tiny_vae_ref.npz (encoder moments, clamped logvar, decoder output
//    of an independent float64 torch implementation, make_vae_ref.py) within 1e-4 relative in
//    float32 (1e-10 in double);
//  - the parity fails when one weight is used wrongly (two same-shape tensors swapped);
//  - the older attention names (tiny_vae_legacy.bin, a torch.save zip, fp16) load the same weights;
//  - errors naming the file and the tensor: missing, unexpected, wrong shape, truncated;
//  - the full-size sd-vae-ft-ema table: 248 tensors, 83,653,863 parameters, known names/shapes;
//  - micro-batching, the arena (no allocation after warm-up, independent of the batch size),
//    and vae_latents (the scaling factor, Philox noise keyed by the sample's index).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "io_test_util.hpp"
#include "redi/io/npz.hpp"
#include "redi/ops/cpu_backend.hpp"
#include "redi/weights/vae.hpp"

using namespace redi;
using namespace redi::test;

namespace {

VaeConfig tiny_config() {
  VaeConfig c;
  c.block_out_channels = {8, 16, 16};
  c.layers_per_block = 2;
  c.norm_groups = 4;
  return c;
}

std::string tiny_path() { return test_data_path("vae/tiny_vae.safetensors").string(); }

struct Ref {
  std::vector<double> images, moments, mean, logvar, latents, decoded;
  static Ref load() {
    const auto f = io::NpzFile::open(test_data_path("vae/tiny_vae_ref.npz"));
    Ref r;
    r.images = f.read<double>("images");
    r.moments = f.read<double>("moments");
    r.mean = f.read<double>("mean");
    r.logvar = f.read<double>("logvar");
    r.latents = f.read<double>("latents");
    r.decoded = f.read<double>("decoded");
    return r;
  }
};

/// max |a - b| / max |b| (error relative to the reference's scale).
template <class A>
double rel_err(const std::vector<A>& a, const std::vector<double>& b) {
  double m = 0, s = 0;
  for (std::size_t i = 0; i < b.size(); ++i) {
    m = std::max(m, std::abs(double(a[i]) - b[i]));
    s = std::max(s, std::abs(b[i]));
  }
  return a.size() == b.size() ? m / s : 1e300;
}

template <class T>
struct Outputs {
  std::vector<T> moments, decoded;
};

template <class T>
Outputs<T> run(Vae<T>& vae, const Ref& r) {
  Outputs<T> o;
  std::vector<T> img(r.images.begin(), r.images.end()), z(r.latents.begin(), r.latents.end());
  o.moments.resize(r.moments.size());
  o.decoded.resize(r.decoded.size());
  vae.encode(o.moments.data(), img.data(), 2, 32, 32);
  vae.decode(o.decoded.data(), z.data(), 2, 8, 8);
  return o;
}

TEST(Vae, ParityWithPyTorchFloat32) {
  const Ref r = Ref::load();
  Vae<float> vae(tiny_config());
  load_vae_weights(vae, tiny_path());
  const auto o = run(vae, r);
  const double em = rel_err(o.moments, r.moments), ed = rel_err(o.decoded, r.decoded);
  std::cout << "[vae parity fp32] moments " << em << "  decoded " << ed << "\n";
  EXPECT_LT(em, 1e-4);
  EXPECT_LT(ed, 1e-4);
  std::vector<float> mean(r.mean.size()), logvar(r.logvar.size());
  vae_split_moments(mean.data(), logvar.data(), o.moments.data(), 2, 8, 8, vae.config());
  EXPECT_LT(rel_err(mean, r.mean), 1e-4);
  EXPECT_LT(rel_err(logvar, r.logvar), 1e-4);
}

TEST(Vae, ParityWithPyTorchFloat64) {
  const Ref r = Ref::load();
  Vae<double> vae(tiny_config());
  load_vae_weights(vae, tiny_path());
  const auto o = run(vae, r);
  EXPECT_LT(rel_err(o.moments, r.moments), 1e-10);
  EXPECT_LT(rel_err(o.decoded, r.decoded), 1e-10);
}

TEST(Vae, ParityFailsWhenOneWeightIsUsedWrongly) {
  const Ref r = Ref::load();
  Vae<float> vae(tiny_config());
  load_vae_weights(vae, tiny_path());
  const auto good = vae.params_to_host();
  const auto& L = vae.layout();
  // Swapping two tensors of the same shape must break the encoder / decoder parity.
  for (const auto& [a, b] : std::vector<std::pair<std::string, std::string>>{
           {"encoder.down_blocks.0.resnets.0.conv1.weight", "encoder.down_blocks.0.resnets.0.conv2.weight"},
           {"encoder.mid_block.attentions.0.to_q.weight", "encoder.mid_block.attentions.0.to_k.weight"},
           {"decoder.up_blocks.1.resnets.2.norm1.weight", "decoder.up_blocks.1.resnets.2.norm2.weight"},
           {"decoder.mid_block.attentions.0.to_v.weight", "decoder.mid_block.attentions.0.to_out.0.weight"}}) {
    const ParamEntry *ea = L.find(a), *eb = L.find(b);
    ASSERT_TRUE(ea && eb) << a << " / " << b;
    ASSERT_EQ(ea->shape, eb->shape);
    auto p = good;
    std::swap_ranges(p.begin() + ea->offset, p.begin() + ea->offset + ea->numel(), p.begin() + eb->offset);
    vae.set_params(p.data());
    const auto o = run(vae, r);
    const double err = a.rfind("encoder", 0) == 0 ? rel_err(o.moments, r.moments) : rel_err(o.decoded, r.decoded);
    EXPECT_GT(err, 1e-3) << "swapping " << a << " and " << b << " went unnoticed";
  }
}

TEST(Vae, LegacyAttentionNamesFromTorchBin) {
  Vae<float> a(tiny_config()), b(tiny_config());
  load_vae_weights(a, tiny_path());
  const auto bin = test_data_path("vae/tiny_vae_legacy.bin");
  ASSERT_TRUE(io::is_zip_file(bin));
  EXPECT_EQ(vae_attention_naming(io::TorchCheckpoint::open(bin)), VaeAttentionNames::Legacy);
  load_vae_weights(b, bin);
  EXPECT_EQ(a.params_to_host(), b.params_to_host());
  // and a safetensors file written with the legacy names round-trips
  TempDir d("redi_vae_legacy");
  save_vae_weights(a, d / "legacy.safetensors", VaeAttentionNames::Legacy);
  EXPECT_TRUE(io::SafeTensorsFile::open(d / "legacy.safetensors").contains("decoder.mid_block.attentions.0.proj_attn.bias"));
  Vae<float> c(tiny_config());
  load_vae_weights(c, d / "legacy.safetensors");
  EXPECT_EQ(a.params_to_host(), c.params_to_host());
}

TEST(Vae, FileErrorsNameTheFileAndTensor) {
  Vae<float> vae(tiny_config());
  load_vae_weights(vae, tiny_path());
  const auto host = vae.params_to_host();
  const auto& L = vae.layout();
  TempDir d("redi_vae_errors");
  auto write = [&](const std::string& file, const std::string& skip, const std::string& extra, bool bad_shape) {
    io::SafeTensorsWriter w;
    for (const auto& e : L.entries) {
      if (e.name == skip) continue;
      Shape s = e.shape;
      if (bad_shape && e.name == "decoder.conv_out.weight") s = Shape{3, 16, 3, 1};
      w.add<float>(e.name, s, host.data() + e.offset);
    }
    if (!extra.empty()) w.add<float>(extra, Shape{1}, host.data());
    w.write(d / file);
    return (d / file).string();
  };
  const auto missing = write("missing.safetensors", "encoder.mid_block.resnets.1.conv2.bias", "", false);
  expect_error([&] { load_vae_weights(vae, missing); }, {"missing.safetensors", "encoder.mid_block.resnets.1.conv2.bias", "missing"});
  const auto extra = write("extra.safetensors", "", "encoder.extra.weight", false);
  expect_error([&] { load_vae_weights(vae, extra); }, {"extra.safetensors", "encoder.extra.weight", "unexpected"});
  const auto shape = write("shape.safetensors", "", "", true);
  expect_error([&] { load_vae_weights(vae, shape); }, {"shape.safetensors", "decoder.conv_out.weight"});
  // truncated: the header promises more bytes than the file holds
  {
    std::ifstream in(tiny_path(), std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::ofstream out(d / "truncated.safetensors", std::ios::binary);
    out.write(bytes.data(), std::streamsize(bytes.size() - 1000));
  }
  expect_error([&] { load_vae_weights(vae, (d / "truncated.safetensors").string()); }, {"truncated.safetensors"});
  // a non-finite value names the tensor
  {
    auto p = host;
    p[std::size_t(L.find("decoder.conv_in.bias")->offset) + 2] = std::nanf("");
    io::SafeTensorsWriter w;
    for (const auto& e : L.entries) w.add<float>(e.name, e.shape, p.data() + e.offset);
    w.write(d / "nan.safetensors");
  }
  expect_error([&] { load_vae_weights(vae, (d / "nan.safetensors").string()); }, {"nan.safetensors", "decoder.conv_in.bias", "non-finite"});
}

TEST(Vae, FullSizeTensorTable) {
  const auto cfg = VaeConfig::sd_vae_ft_ema();
  const auto t = vae_expected_tensors(cfg);
  EXPECT_EQ(t.size(), 248u);
  std::int64_t total = 0;
  std::map<std::string, Shape> m;
  for (const auto& [n, s] : t) {
    total += s.numel();
    EXPECT_TRUE(m.emplace(n, s).second) << "duplicate " << n;
  }
  EXPECT_EQ(total, 83653863);  // AutoencoderKL(sd-vae-ft-ema).num_parameters()
  EXPECT_EQ(VaeLayout::make(cfg).total, total);
  const std::vector<std::pair<std::string, Shape>> known{
      {"encoder.conv_in.weight", Shape{128, 3, 3, 3}},
      {"encoder.down_blocks.0.resnets.1.norm2.weight", Shape{128}},
      {"encoder.down_blocks.1.resnets.0.conv_shortcut.weight", Shape{256, 128, 1, 1}},
      {"encoder.down_blocks.2.downsamplers.0.conv.weight", Shape{512, 512, 3, 3}},
      {"encoder.mid_block.attentions.0.to_q.weight", Shape{512, 512}},
      {"encoder.mid_block.attentions.0.to_out.0.bias", Shape{512}},
      {"encoder.conv_out.weight", Shape{8, 512, 3, 3}},
      {"quant_conv.weight", Shape{8, 8, 1, 1}},
      {"post_quant_conv.weight", Shape{4, 4, 1, 1}},
      {"decoder.conv_in.weight", Shape{512, 4, 3, 3}},
      {"decoder.up_blocks.0.resnets.2.conv2.weight", Shape{512, 512, 3, 3}},
      {"decoder.up_blocks.2.resnets.0.conv_shortcut.weight", Shape{256, 512, 1, 1}},
      {"decoder.up_blocks.2.upsamplers.0.conv.weight", Shape{256, 256, 3, 3}},
      {"decoder.up_blocks.3.resnets.0.conv_shortcut.weight", Shape{128, 256, 1, 1}},
      {"decoder.conv_norm_out.bias", Shape{128}},
      {"decoder.conv_out.weight", Shape{3, 128, 3, 3}}};
  for (const auto& [n, s] : known) {
    ASSERT_TRUE(m.count(n)) << n;
    EXPECT_EQ(m[n], s) << n;
  }
  for (const char* absent : {"encoder.down_blocks.3.downsamplers.0.conv.weight", "decoder.up_blocks.3.upsamplers.0.conv.weight",
                             "encoder.down_blocks.0.resnets.0.conv_shortcut.weight", "decoder.up_blocks.0.resnets.3.conv1.weight"})
    EXPECT_FALSE(m.count(absent)) << absent;
  const auto legacy = vae_expected_tensors(cfg, VaeAttentionNames::Legacy);
  std::map<std::string, Shape> ml(legacy.begin(), legacy.end());
  for (const char* n : {"encoder.mid_block.attentions.0.query.weight", "encoder.mid_block.attentions.0.key.bias",
                        "decoder.mid_block.attentions.0.value.weight", "decoder.mid_block.attentions.0.proj_attn.weight"})
    EXPECT_TRUE(ml.count(n)) << n;
  EXPECT_FALSE(ml.count("decoder.mid_block.attentions.0.to_out.0.weight"));
  EXPECT_EQ(ml.size(), 248u);
}

TEST(Vae, MicroBatchesAndArena) {
  const Ref r = Ref::load();
  Vae<float> vae(tiny_config());
  load_vae_weights(vae, tiny_path());
  vae.micro_batch = 2;
  const auto o2 = run(vae, r);
  const auto alloc = vae.arena_allocations();
  const auto bytes = vae.arena_bytes();
  const auto again = run(vae, r);  // warm: no allocation
  EXPECT_EQ(vae.arena_allocations(), alloc);
  EXPECT_EQ(again.moments, o2.moments);
  Vae<float> one(tiny_config());
  load_vae_weights(one, tiny_path());
  one.micro_batch = 1;
  const auto o1 = run(one, r);
  EXPECT_LT(one.arena_bytes(), bytes);  // the arena scales with the chunk, not the batch
  std::vector<double> m2(o2.moments.begin(), o2.moments.end()), d2(o2.decoded.begin(), o2.decoded.end());
  EXPECT_LT(rel_err(o1.moments, m2), 1e-6);
  EXPECT_LT(rel_err(o1.decoded, d2), 1e-6);
  // a 4-image batch in chunks of 1 uses the same arena as 1 image
  std::vector<float> img4(4 * 3 * 32 * 32), mom4(4 * 8 * 8 * 8);
  for (std::size_t i = 0; i < img4.size(); ++i) img4[i] = float(r.images[i % r.images.size()]);
  const auto b1 = one.arena_bytes();
  one.encode(mom4.data(), img4.data(), 4, 32, 32);
  EXPECT_EQ(one.arena_bytes(), b1);
  for (std::size_t i = 0; i < mom4.size(); ++i) ASSERT_EQ(mom4[i], o1.moments[i % o1.moments.size()]) << i;
  expect_error([&] { one.encode(mom4.data(), img4.data(), 1, 30, 32); }, {"Vae::encode", "30x32"});
}

TEST(Vae, LatentsScaleAndPhiloxNoise) {
  const VaeConfig cfg = tiny_config();
  const int B = 3, h = 2, w = 2, n = 4 * h * w;
  std::vector<double> mom(std::size_t(B) * 2 * n);
  for (std::size_t i = 0; i < mom.size(); ++i) mom[i] = std::sin(double(i)) * 3;
  mom[n + 1] = 50;  // logvar beyond the clamp (20)
  std::vector<double> zm(std::size_t(B) * n), zs(zm.size());
  vae_latents(zm.data(), mom.data(), B, h, w, cfg, VaeLatentMode::Mean);
  vae_latents(zs.data(), mom.data(), B, h, w, cfg, VaeLatentMode::Sample, 7, 100);
  for (int b = 0; b < B; ++b)
    for (int i = 0; i < n; ++i) {
      const double mean = mom[std::size_t(b) * 2 * n + i];
      const double lv = std::clamp(mom[std::size_t(b) * 2 * n + n + i], -30.0, 20.0);
      EXPECT_DOUBLE_EQ(zm[std::size_t(b) * n + i], 0.18215 * mean);
      const double eps = philox::normal(7, 100 + b, i);
      EXPECT_NEAR(zs[std::size_t(b) * n + i], 0.18215 * (mean + std::exp(0.5 * lv) * eps),
                  1e-12 * (1 + std::abs(zs[std::size_t(b) * n + i])));
    }
  // sample 2 alone (first_index 102) draws the same noise as inside the batch
  std::vector<double> z1(n);
  vae_latents(z1.data(), mom.data() + 2 * 2 * n, 1, h, w, cfg, VaeLatentMode::Sample, 7, 102);
  for (int i = 0; i < n; ++i) EXPECT_EQ(z1[i], zs[std::size_t(2) * n + i]);
}

}  // namespace
