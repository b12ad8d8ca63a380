// redi_eval — the ADM evaluation suite (Inception Score, FID, sFID, precision, recall) of a sample
// batch against a reference batch, both ADM-format npz files, with redi's FID Inception
// (redi/eval/adm.hpp, docs/evaluation.md); and --make-ref, which writes a reference batch in
// ADM's format from an npz of uint8 images or a folder of PNG/JPEG files.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <string>
#include <vector>

#include "redi/eval/adm.hpp"
#include "redi/train/cli.hpp"
#include "redi/weights/inception_synthetic.hpp"
#if defined(REDI_EVAL_HAVE_STB)
#include "redi/data/image_io.hpp"
#endif

namespace fs = std::filesystem;
using redi::cli::Args;
using redi::cli::UsageError;

namespace {

constexpr const char* kUsage = R"(usage: redi_eval SAMPLES.npz REF.npz [options]
       redi_eval --make-ref OUT.npz (--from-npz IMAGES.npz | --from-folder DIR) [--size S] [--max N] [options]

Evaluates SAMPLES.npz (arr_0: uint8 [N, H, W, 3 or 1], the ADM sample format) against REF.npz (an
ADM reference batch: arr_0 images plus mu/sigma/mu_s/sigma_s, e.g. VIRTUAL_imagenet256_labeled.npz
or one made by --make-ref) and prints ADM's table: Inception Score, FID, sFID, Precision, Recall.

options:
  --weights FILE        the FID Inception weights in pytorch-fid's layout (pt_inception-2015-12-05-
                        6726825d.pth re-saved by torch >= 1.6, or safetensors with the same names);
                        default: $REDI_INCEPTION_WEIGHTS
  --synthetic-weights   pseudo-random weights (a smoke run of the pipeline; the numbers mean nothing)
  --json FILE           where to write the JSON result (default: SAMPLES with extension .adm.json)
  --batch N             images per network pass (default 64)
  --device cpu|cuda     where the Inception runs (default cpu; cuda: not available yet)
  --threads N           OpenMP threads
  --input-size S        the network's input side (default 299; other values only for tests)
  --quiet               no progress line
  --make-ref OUT.npz    write a reference batch: the images (arr_0) and their statistics
  --from-npz FILE       ... from arr_0 of an npz (uint8 NHWC)
  --from-folder DIR     ... from the PNG/JPEG files of a folder (sorted by name; all of one size,
                        or --size S: ADM's center crop to S x S)
  --max N               ... at most the first N images
)";

std::string eta(double s) {
  char b[32];
  if (s >= 3600) std::snprintf(b, sizeof b, "%dh%02dm", int(s / 3600), int(s / 60) % 60);
  else std::snprintf(b, sizeof b, "%dm%02ds", int(s / 60), int(s) % 60);
  return b;
}

/// "\r[redi_eval] reference 1234/10000 images  45.6 img/s  eta 3m12s" on stderr.
struct Progress {
  bool quiet = false;
  std::string label;
  std::chrono::steady_clock::time_point t0;
  void operator()(const std::string& l, std::int64_t done, std::int64_t total) {
    if (quiet) return;
    if (l != label) {
      label = l;
      t0 = std::chrono::steady_clock::now();
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double rate = s > 0 ? double(done) / s : 0.0;
    std::fprintf(stderr, "\r[redi_eval] %s %lld/%lld images  %.1f img/s  eta %s   ", l.c_str(), (long long)done,
                 (long long)total, rate, rate > 0 ? eta(double(total - done) / rate).c_str() : "-");
    if (done == total) std::fprintf(stderr, "\n");
  }
};

redi::eval::InceptionEncoder make_encoder(const Args& a) {
  const std::string device = a.choice("device", "cpu", {"cpu", "cuda"});
  if (device == "cuda")
    throw UsageError(
        "--device cuda: the FID Inception has no CUDA backend yet (redi/nn/inception.hpp runs on the CPU "
        "backend; docs/evaluation.md)"
#if !defined(REDI_EVAL_HAVE_CUDA)
        "; this build has no CUDA either"
#endif
    );
  const int S = int(a.integer("input-size", 299, 75, 1024));
  if (a.flag("synthetic-weights")) {
    if (a.has("weights")) throw UsageError("--synthetic-weights and --weights exclude each other");
    redi::InceptionV3<float> net(S);
    redi::load_inception(net, redi::inception_synthetic_weights());
    std::cerr << "[redi_eval] WARNING: synthetic Inception weights: a smoke run, the numbers mean nothing\n";
    return redi::eval::InceptionEncoder(std::move(net), "synthetic weights");
  }
  std::string w = a.str("weights");
  if (w.empty())
    if (const char* e = std::getenv("REDI_INCEPTION_WEIGHTS")) w = e;
  if (w.empty())
    throw UsageError("no Inception weights: --weights FILE (pytorch-fid's pt_inception-2015-12-05-6726825d.pth) or "
                     "$REDI_INCEPTION_WEIGHTS, or --synthetic-weights for a smoke run");
  return redi::eval::InceptionEncoder::load(w, S);
}

struct Images {
  std::vector<std::uint8_t> owned;
  std::int64_t n = 0;
  int h = 0, w = 0, c = 0;
};

#if defined(REDI_EVAL_HAVE_STB)
Images folder_images(const fs::path& dir, int size, std::int64_t max_n) {
  REDI_CHECK(fs::is_directory(dir), dir.string(), ": not a folder");
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir)) {
    std::string ext = e.path().extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char ch) { return char(std::tolower(ch)); });
    if (e.is_regular_file() && (ext == ".png" || ext == ".jpg" || ext == ".jpeg")) files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  if (max_n > 0 && std::int64_t(files.size()) > max_n) files.resize(std::size_t(max_n));
  REDI_CHECK(!files.empty(), dir.string(), ": no .png/.jpg/.jpeg files");
  Images im;
  for (const auto& f : files) {
    auto d = redi::data::decode_image_file(f.string(), 3);
    std::vector<std::uint8_t> px = std::move(d.pixels);
    int h = d.h, w = d.w;
    if (size > 0) {
      px = redi::data::center_crop_adm(px.data(), h, w, 3, size);
      h = w = size;
    }
    if (im.n == 0) im.h = h, im.w = w, im.c = 3;
    REDI_CHECK(h == im.h && w == im.w, f.string(), ": ", h, "x", w, " pixels, the first image has ", im.h, "x", im.w,
               " (use --size S to center-crop all to S x S)");
    im.owned.insert(im.owned.end(), px.begin(), px.end());
    ++im.n;
  }
  return im;
}
#endif

int make_ref(const Args& a) {
  const fs::path out = a.str("make-ref");
  const bool from_npz = a.has("from-npz"), from_folder = a.has("from-folder");
  if (from_npz == from_folder) throw UsageError("--make-ref needs exactly one of --from-npz FILE, --from-folder DIR");
  const std::int64_t max_n = a.integer("max", 0, 0, INT64_MAX);
  const int size = int(a.integer("size", 0, 0, 4096));
  redi::cli::apply_threads_flag(a);
  auto enc = make_encoder(a);
  Progress prog;
  prog.quiet = a.flag("quiet");
  Images im;
  const std::uint8_t* px = nullptr;
  std::optional<redi::eval::AdmBatch> src;
  if (from_npz) {
    if (size > 0) throw UsageError("--size applies to --from-folder only");
    src = redi::eval::AdmBatch::open(a.str("from-npz"), enc.spatial_dim());
    im.n = max_n > 0 ? std::min(max_n, src->n()) : src->n();
    im.h = src->h(), im.w = src->w(), im.c = src->c();
    px = src->pixels();
  } else {
#if defined(REDI_EVAL_HAVE_STB)
    im = folder_images(a.str("from-folder"), size, max_n);
    px = im.owned.data();
#else
    throw UsageError("--from-folder: this redi_eval was built without stb_image (libstb-dev)");
#endif
  }
  std::cout << "[redi_eval] reference from " << im.n << " images of " << im.h << "x" << im.w << "x" << im.c << "\n";
  const auto st = redi::eval::make_adm_reference(
      enc, out, px, im.n, im.h, im.w, im.c, [&](std::int64_t d, std::int64_t t) { prog("reference", d, t); },
      int(a.integer("batch", 64, 1, 4096)));
  std::cout << "[redi_eval] wrote " << out.string() << " (arr_0, mu, sigma, mu_s, sigma_s; tr sigma "
            << st.sigma.trace() << ")\n";
  return 0;
}

int evaluate(const Args& a, const std::string& samples_path, const std::string& ref_path) {
  redi::cli::apply_threads_flag(a);
  auto enc = make_encoder(a);
  const auto ref = redi::eval::AdmBatch::open(ref_path, enc.spatial_dim());
  const auto samples = redi::eval::AdmBatch::open(samples_path, enc.spatial_dim());
  std::cout << "[redi_eval] " << enc.feature_space() << "\n[redi_eval] samples " << samples.n() << " ("
            << samples.h() << "x" << samples.w() << "x" << samples.c() << "), reference " << ref.n() << " ("
            << ref.h() << "x" << ref.w() << "x" << ref.c() << ", statistics "
            << (ref.stats() ? "from the file" : "computed from arr_0") << ")\n";
  Progress prog;
  prog.quiet = a.flag("quiet");
  const auto res = redi::eval::adm_evaluate(enc, samples, ref, int(a.integer("batch", 64, 1, 4096)),
                                            [&](const std::string& l, std::int64_t d, std::int64_t t) { prog(l, d, t); });
  std::cout << res.table();
  fs::path json = a.str("json");
  if (json.empty()) json = fs::path(samples_path).replace_extension(".adm.json");
  std::ofstream f(json);
  REDI_CHECK(f && (f << res.to_json() << "\n"), json.string(), ": cannot write the result");
  std::cout << "[redi_eval] wrote " << json.string() << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return redi::cli::run_main("redi_eval", [&] {
    const std::set<std::string> valued = {"weights", "json", "batch", "device", "threads", "input-size",
                                          "make-ref", "from-npz", "from-folder", "size", "max"};
    const std::set<std::string> switches = {"help", "synthetic-weights", "quiet"};
    std::vector<char*> flags = {argv[0]};
    std::vector<std::string> pos;
    for (int i = 1; i < argc; ++i) {
      const std::string s = argv[i];
      if (s.rfind("--", 0) == 0 || s == "-h") {
        flags.push_back(argv[i]);
        if (s.find('=') == std::string::npos && valued.count(s.substr(2)) && i + 1 < argc) flags.push_back(argv[++i]);
      } else {
        pos.push_back(s);
      }
    }
    const Args a(int(flags.size()), flags.data(), valued, switches);
    if (a.flag("help")) return std::cout << kUsage, 0;
    if (a.has("make-ref")) {
      if (!pos.empty()) throw UsageError("unexpected argument '" + pos[0] + "' with --make-ref");
      return make_ref(a);
    }
    if (pos.size() != 2)
      throw UsageError("needs SAMPLES.npz and REF.npz (got " + std::to_string(pos.size()) + " file arguments)");
    return evaluate(a, pos[0], pos[1]);
  });
}
