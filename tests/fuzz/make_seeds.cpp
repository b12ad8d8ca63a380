// tests/fuzz/make_seeds.cpp — writes the seed corpus of every fuzz target with redi's own
// writers (run at build time by tests/fuzz/CMakeLists.txt; nothing binary is committed for the
// fuzzers; the JPEG seeds are the parity fixtures committed under tests/data/jpeg):
//   make_seeds <out_dir> <repo>/tests/data     ->  <out_dir>/<target>/<seed files>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "../torch_test_writer.hpp"
#include "fuzz_models.hpp"
#include "redi/data/idx.hpp"
#include "redi/data/pca_io.hpp"
#include "redi/io/image_write.hpp"
#include "redi/io/npz.hpp"
#include "redi/io/safetensors.hpp"
#include "redi/train/checkpoint.hpp"

namespace fs = std::filesystem;
using namespace redi;

static fs::path out_root;
static int count = 0;

static fs::path dir_of(const std::string& target) {
  const fs::path d = out_root / target;
  fs::create_directories(d);
  return d;
}
static void put(const std::string& target, const std::string& name, const std::string& bytes) {
  std::ofstream f(dir_of(target) / name, std::ios::binary);
  f.write(bytes.data(), std::streamsize(bytes.size()));
  ++count;
}
static std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}
static void copy_as(const fs::path& from, const std::string& target, const std::string& name) {
  put(target, name, slurp(from));
}

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: make_seeds <out_dir> <repo>/tests/data\n");
    return 2;
  }
  out_root = argv[1];
  const fs::path test_data = argv[2];
  fs::create_directories(out_root);
  const fs::path tmp = out_root / "tmp";
  fs::create_directories(tmp);

  // ---- safetensors (also PCA-shaped files and JSON headers)
  {
    std::vector<float> f32 = {1.5f, -2.f, 0.f, 3.25f, 1e-3f, 7.f};
    std::vector<double> f64 = {0.5, -1.0};
    std::vector<std::int64_t> i64 = {1, -2, 1 << 20};
    std::vector<std::int32_t> i32 = {7, -7};
    std::vector<std::uint8_t> u8 = {0, 255, 3};
    io::SafeTensorsWriter w;
    w.add("a.weight", Shape{2, 3}, f32.data());
    w.add("a.bias", Shape{2}, f64.data());
    w.add("half", Shape{3}, f32.data(), DType::F16);
    w.add("bf", Shape{2}, f32.data(), DType::BF16);
    w.add("ids", Shape{3}, i64.data());
    w.add("i32", Shape{2}, i32.data());
    w.add("u8", Shape{3}, u8.data());
    w.add("scalar", Shape{}, f32.data());
    w.add("empty", Shape{0, 4}, f32.data());
    w.write(tmp / "a.safetensors", {{"format", "pt"}, {"note", "seed"}});
    copy_as(tmp / "a.safetensors", "safetensors", "dtypes.safetensors");
    io::SafeTensorsWriter one;
    one.add("x", Shape{1}, f32.data());
    one.write(tmp / "b.safetensors");
    copy_as(tmp / "b.safetensors", "safetensors", "one.safetensors");
    const std::string st = slurp(tmp / "a.safetensors");
    const std::uint64_t n = io::load_le(reinterpret_cast<const std::byte*>(st.data()), 8);
    put("json", "safetensors_header.json", st.substr(8, std::size_t(n)));
  }
  // ---- JSON
  put("json", "model.json", train::to_json(fuzz::ckpt_model_options().model).str());
  put("json", "values.json", R"({"a":[1,-2.5e3,0.0,"\u00e9\ud83d\ude00\n",true,false,null],"b":{"c":{}},"d":[]})");
  put("json", "line.json", R"({"step":100,"loss":0.5,"lr":1e-4,"name":"run \"x\""})");
  // ---- PCA files
  {
    data::Pca p;
    p.dim = 4;
    p.num_components = 2;
    p.feature_mean = {0.1f, 0.2f, 0.3f, 0.4f};
    p.feature_std = {1.f, 2.f, 0.5f, 1.f};
    p.pca_mean = {0.f, 0.f, 0.f, 0.f};
    p.components = {1, 0, 0, 0, 0, 1, 0, 0};
    p.explained_variance = {2.f, 1.f};
    data::save_pca(tmp / "pca.safetensors", p, {{"source", "seed"}});
    copy_as(tmp / "pca.safetensors", "pca", "pca.safetensors");
    data::PcNormalization nrm;
    nrm.mean = {0.f, 0.5f, -0.5f};
    nrm.std = {1.f, 2.f, 0.25f};
    data::save_pc_normalization(tmp / "pcn.safetensors", nrm);
    copy_as(tmp / "pcn.safetensors", "pca", "pc_norm.safetensors");
  }
  // ---- checkpoint of the tiny model
  {
    fuzz::CkptModel m(fuzz::ckpt_model_options());
    train::CheckpointState s;
    s.step = 3;
    s.seed = 7;
    s.config_json = R"({"lr":0.001})";
    train::save_checkpoint(tmp / "ckpt.safetensors", m, s);
    copy_as(tmp / "ckpt.safetensors", "checkpoint", "tiny.safetensors");
    copy_as(tmp / "ckpt.safetensors", "safetensors", "checkpoint.safetensors");
  }
  // ---- npz (also zip seeds)
  {
    std::vector<std::uint8_t> px(2 * 4 * 4 * 3);
    for (std::size_t i = 0; i < px.size(); ++i) px[i] = std::uint8_t(i * 7);
    const int labels[2] = {1, 0};
    io::save_sample_npz(tmp / "s.npz", px.data(), 2, 4, 4, 3, labels);
    copy_as(tmp / "s.npz", "npz", "samples.npz");
    copy_as(tmp / "s.npz", "zip", "samples.npz");
    std::vector<float> f = {1, 2, 3};
    std::vector<double> d = {0.25};
    std::vector<std::int32_t> i = {-1, 2};
    io::NpzWriter w;
    w.add("f", {3}, f.data());
    w.add("d", {1, 1}, d.data());
    w.add("i", {2}, i.data());
    w.force_zip64(true);
    w.write(tmp / "z64.npz");
    copy_as(tmp / "z64.npz", "npz", "zip64.npz");
    copy_as(tmp / "z64.npz", "zip", "zip64.npz");
  }
  // ---- torch checkpoints (the tests' writer, and the committed real torch.save file)
  {
    using namespace redi::test::torchw;
    put("torch", "synthetic.pt", good_zip(false));
    put("torch", "synthetic_zip64.pt", good_zip(true));
    put("zip", "torch.pt", good_zip(false));
    if (fs::exists(test_data / "io" / "tiny_torch_ckpt.pt")) {
      copy_as(test_data / "io" / "tiny_torch_ckpt.pt", "torch", "tiny_torch_ckpt.pt");
      copy_as(test_data / "io" / "tiny_torch_ckpt.pt", "zip", "tiny_torch_ckpt.pt");
    }
  }
  // ---- IDX, plain and gzip
  {
    std::vector<std::uint8_t> im(3 * 4 * 5);
    for (std::size_t i = 0; i < im.size(); ++i) im[i] = std::uint8_t(i * 3);
    data::write_idx((tmp / "im").string(), {3, 4, 5}, im);
    data::write_idx((tmp / "im.gz").string(), {3, 4, 5}, im, true);
    data::write_idx((tmp / "lb").string(), {3}, {1, 2, 9});
    data::write_idx((tmp / "lb.gz").string(), {3}, {1, 2, 9}, true);
    for (const char* n : {"im", "im.gz", "lb", "lb.gz"}) copy_as(tmp / n, "idx", n);
  }
  // ---- PNG images (grey, RGB, RGBA)
  {
    for (int c : {1, 3, 4}) {
      std::vector<std::uint8_t> px(std::size_t(6) * 5 * std::size_t(c));
      for (std::size_t i = 0; i < px.size(); ++i) px[i] = std::uint8_t(i * 11);
      const auto png = io::encode_png(px.data(), 6, 5, c);
      put("image", "c" + std::to_string(c) + ".png", std::string(png.begin(), png.end()));
    }
  }
  // ---- JPEG images: the committed PIL-made fixtures (tests/data/jpeg: baseline 4:2:0/4:2:2/
  // 4:4:4, progressive, odd sizes, grey, Adobe CMYK, EXIF); redi has no JPEG writer.
  if (fs::is_directory(test_data / "jpeg"))
    for (const auto& e : fs::directory_iterator(test_data / "jpeg"))
      if (e.path().extension() == ".jpg") copy_as(e.path(), "image", e.path().filename().string());
  fs::remove_all(tmp);
  std::printf("make_seeds: %d seed files in %s\n", count, out_root.string().c_str());
  return 0;
}
