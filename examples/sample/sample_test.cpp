// redi_sample end to end (runs the built program): the tiny official-format SiT/ReDi checkpoint
// (tests/data/sample/tiny_sit_official.pt, "model" and "ema" dicts) and the tiny SD-VAE
// (tests/data/vae) -> samples.npz in the ADM format (uint8 [N, 32, 32, 3] arr_0, balanced labels
// arr_1) whose pixels are the VAE's decoding of the saved latents; an interrupted run
// (--max-chunks) resumed gives byte-identical files; changed settings on resume are refused;
// the EMA weights (not "model") are the ones sampled; a redi training checkpoint samples too.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "io_test_util.hpp"
#include "redi/io/image_write.hpp"
#include "redi/io/npz.hpp"
#include "redi/io/torch_pickle.hpp"
#include "redi/ops/cpu_backend.hpp"
#include "redi/redi.hpp"
#include "redi/train/checkpoint.hpp"
#include "redi/weights/official.hpp"
#include "redi/weights/vae.hpp"

namespace fs = std::filesystem;
using namespace redi;
using namespace redi::test;

namespace {

std::string pt() { return test_data_path("sample/tiny_sit_official.pt").string(); }
std::string vae() { return test_data_path("vae/tiny_vae.safetensors").string(); }
const char* kVaeFlags = " --vae-channels 8,16,16 --vae-groups 4 --vae-layers 2";

int sh(const std::string& args, const fs::path& log) {
  const std::string cmd = std::string(REDI_SAMPLE_EXE) + " " + args + " > " + log.string() + " 2>&1";
  const int rc = std::system(cmd.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}
std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}
std::string base_args(const fs::path& out) {
  return "--ckpt " + pt() + " --vae " + vae() + kVaeFlags + " --heads 2 --num-samples 7 --chunk 3 --batch 2" +
         " --sampler euler --sample-steps 3 --guidance cfg+rg --cfg 2 --rg 1.5 --seed 5 --grid 7 --threads 1" +
         " --out " + out.string();
}

TEST(RediSample, OfficialCheckpointConfigInference) {
  const auto src = io::TorchCheckpoint::open(pt());
  EXPECT_EQ(state_dict_prefix(src), "ema.");
  const auto m = infer_model_config(src, "ema.", {.image_channels = 4, .heads = 2});
  EXPECT_FALSE(m.has_z_embedder);
  EXPECT_EQ(m.cfg.input_size, 8);
  EXPECT_EQ(m.cfg.patch, 2);
  EXPECT_EQ(m.cfg.image_channels, 4);
  EXPECT_EQ(m.cfg.feature_channels, 3);
  EXPECT_EQ(m.cfg.width, 16);
  EXPECT_EQ(m.cfg.depth, 2);
  EXPECT_EQ(m.cfg.num_classes, 5);
  EXPECT_FALSE(m.cfg.learn_sigma);
  expect_error([&] { (void)infer_model_config(src, "ema.", {.image_channels = 4}); }, {"tiny_sit_official.pt", "width 16", "heads"});
  expect_error([&] { (void)infer_model_config(src, "nope.", {}); }, {"tiny_sit_official.pt", "nope.x_embedder.proj.weight"});
}

TEST(RediSample, OfficialSeparateLearnedSigmaLayout) {
  // the parity fixture's DiT + ReDi Separate with learned sigma, official names under "model."
  const std::string f = test_data_path("parity/dit_separate_ddpm_sigma.safetensors").string();
  const auto src = io::SafeTensorsFile::open(f);
  EXPECT_EQ(state_dict_prefix(src), "model.");
  const auto m = infer_model_config(src, "model.", {.heads = 2});
  EXPECT_TRUE(m.has_z_embedder);
  EXPECT_FALSE(m.cfg.own_feature_grid());
  EXPECT_EQ(m.cfg.image_channels, 4);
  EXPECT_EQ(m.cfg.feature_channels, 3);
  EXPECT_TRUE(m.cfg.learn_sigma);
  EXPECT_EQ(m.cfg.input_size, 8);
  EXPECT_EQ(m.cfg.depth, 2);
  EXPECT_EQ(m.cfg.num_classes, 5);
  TempDir d("redi_sample_sep");
  const std::string args = "--ckpt " + f + " --vae " + vae() + kVaeFlags + " --heads 2 --num-samples 2 --sampler ddim" +
                           " --sample-steps 3 --guidance cfg+rg --out " + (d / "o").string();
  EXPECT_EQ(sh(args, d / "l.log"), 2) << slurp(d / "l.log");  // learned sigma needs --backbone dit
  EXPECT_NE(slurp(d / "l.log").find("--backbone dit"), std::string::npos) << slurp(d / "l.log");
  ASSERT_EQ(sh(args + " --backbone dit", d / "l2.log"), 0) << slurp(d / "l2.log");
  EXPECT_NE(slurp(d / "l2.log").find("dit/separate"), std::string::npos);
  EXPECT_EQ(io::NpzFile::open(d / "o" / "samples.npz").info("arr_0").shape, (std::vector<std::int64_t>{2, 32, 32, 3}));
}

TEST(RediSample, EndToEndNpzAndResume) {
  TempDir d("redi_sample_e2e");
  const fs::path a = d / "a", b = d / "b";
  ASSERT_EQ(sh(base_args(a) + " --save-latents", d / "a.log"), 0) << slurp(d / "a.log");
  const auto f = io::NpzFile::open(a / "samples.npz");
  const auto& i0 = f.info("arr_0");
  ASSERT_EQ(i0.shape, (std::vector<std::int64_t>{7, 32, 32, 3}));
  EXPECT_EQ(i0.descr, "|u1");
  const auto lab = f.read<std::int64_t>("arr_1");
  EXPECT_EQ(lab, (std::vector<std::int64_t>{0, 0, 1, 2, 2, 3, 4}));  // floor(i * 5 / 7)
  EXPECT_TRUE(fs::exists(a / "samples.png"));
  // pixels = the tiny VAE's decoding of the saved latents
  VaeConfig vc;
  vc.block_out_channels = {8, 16, 16};
  vc.norm_groups = 4;
  Vae<float> v(vc);
  load_vae_weights(v, vae());
  const auto pix = f.read<std::uint8_t>("arr_0");
  std::vector<float> lat;
  for (int k = 0; k < 3; ++k) {
    const auto l = io::NpzFile::open(a / "chunks" / ("latents_0000" + std::to_string(k) + ".npz")).read<float>("latents");
    lat.insert(lat.end(), l.begin(), l.end());
  }
  ASSERT_EQ(lat.size(), std::size_t(7 * 4 * 8 * 8));
  std::vector<float> img(std::size_t(7) * 3 * 32 * 32);
  v.decode(img.data(), lat.data(), 7, 8, 8);
  const auto u8 = io::to_uint8_nhwc(img.data(), 7, 3, 32, 32);
  std::size_t off = 0;
  for (std::size_t i = 0; i < u8.size(); ++i) off += u8[i] != pix[i];
  EXPECT_LE(off, u8.size() / 1000) << "decoded pixels differ from the npz";  // rounding at .5 only
  double spread = 0;
  for (std::size_t i = 0; i < lat.size(); ++i) spread += std::abs(lat[i] - lat[i % (4 * 8 * 8)]);
  EXPECT_GT(spread, 1.0) << "all samples identical";
  // interrupted after one chunk, then resumed: the same bytes
  ASSERT_EQ(sh(base_args(b) + " --max-chunks 1", d / "b1.log"), 0) << slurp(d / "b1.log");
  EXPECT_TRUE(fs::exists(b / "chunks" / "samples_00000.npz"));
  EXPECT_FALSE(fs::exists(b / "chunks" / "samples_00001.npz"));
  EXPECT_FALSE(fs::exists(b / "samples.npz"));
  EXPECT_NE(slurp(d / "b1.log").find("rerun to resume"), std::string::npos);
  ASSERT_EQ(sh(base_args(b), d / "b2.log"), 0) << slurp(d / "b2.log");
  EXPECT_EQ(slurp(b / "samples.npz"), slurp(a / "samples.npz"));
  EXPECT_EQ(slurp(b / "samples.png"), slurp(a / "samples.png"));
  // resuming with other settings is refused, naming the setting
  std::string other = base_args(b);
  other.replace(other.find("--cfg 2"), 7, "--cfg 3");
  EXPECT_EQ(sh(other, d / "b3.log"), 1);
  EXPECT_NE(slurp(d / "b3.log").find("cfg=2"), std::string::npos) << slurp(d / "b3.log");
  // the "model" dict instead of "ema" gives other samples (the EMA is what is sampled)
  const fs::path c = d / "c";
  ASSERT_EQ(sh(base_args(c) + " --prefix model.", d / "c.log"), 0) << slurp(d / "c.log");
  EXPECT_NE(slurp(c / "samples.npz"), slurp(a / "samples.npz"));
}

TEST(RediSample, RediCheckpointAndUsageErrors) {
  TempDir d("redi_sample_ckpt");
  ReDi<DiT, Separate, DDPM>::Options o;
  o.model.input_size = 8;
  o.model.patch = 2;
  o.model.image_channels = 4;
  o.model.feature_channels = 2;
  o.model.depth = 1;
  o.model.width = 16;
  o.model.heads = 2;
  o.model.num_classes = 3;
  o.model.learn_sigma = true;
  ReDi<DiT, Separate, DDPM> m(o);
  m.ema().params().data()[0] += 0.5f;
  train::save_checkpoint(d / "ckpt.safetensors", m, {});
  const std::string args = "--ckpt " + (d / "ckpt.safetensors").string() + " --vae " + vae() + kVaeFlags +
                           " --num-samples 4 --chunk 4 --sampler ddim --sample-steps 4 --guidance cfg --out " +
                           (d / "out").string();
  ASSERT_EQ(sh(args, d / "r.log"), 0) << slurp(d / "r.log");
  EXPECT_NE(slurp(d / "r.log").find("dit/separate"), std::string::npos) << slurp(d / "r.log");
  const auto f = io::NpzFile::open(d / "out" / "samples.npz");
  EXPECT_EQ(f.info("arr_0").shape, (std::vector<std::int64_t>{4, 32, 32, 3}));
  EXPECT_EQ(f.read<std::int64_t>("arr_1"), (std::vector<std::int64_t>{0, 0, 1, 2}));
  EXPECT_EQ(sh("--vae " + vae(), d / "u1.log"), 2);
  EXPECT_NE(slurp(d / "u1.log").find("--ckpt FILE is required"), std::string::npos);
  EXPECT_EQ(sh("--ckpt " + pt() + " --vae " + vae() + kVaeFlags + " --out " + (d / "x").string(), d / "u2.log"), 1);
  EXPECT_NE(slurp(d / "u2.log").find("heads"), std::string::npos) << slurp(d / "u2.log");
  EXPECT_EQ(sh("--ckpt " + pt() + " --vae " + pt() + kVaeFlags + " --heads 2 --num-samples 1 --out " + (d / "y").string(),
               d / "u3.log"),
            1);
  EXPECT_NE(slurp(d / "u3.log").find("tiny_sit_official.pt"), std::string::npos) << slurp(d / "u3.log");
}

}  // namespace
