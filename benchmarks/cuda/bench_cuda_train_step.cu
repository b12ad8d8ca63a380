// benchmarks/cuda/bench_cuda_train_step.cu — the GPU training step and sampling of the
// user-facing redi::ReDi<SiT, Merged, FlowMatching, P, Cuda> at SiT-XL/2 ReDi (4 VAE + 8 PCA
// channels, 32x32 latents, learn_sigma off), for P = BF16Mixed (bf16 compute, fp32 master
// weights; cuDNN fused attention where supported) and P = float with TF32 GEMMs.
//
// Per precision, in one process (after the bf16 and TF32 8192^3 GEMM rates of the context):
//   train_step   ReDi::train_step end to end: the joint loss on the device (redi::DeviceLoss:
//                host draws of B values, device noise, input, target, dout), forward, backward,
//                grad norm + clip, AdamW, EMA. The largest batch of 256/128/64/32 that fits (a
//                failed cudaMalloc throws; next size). images/s, model TFLOP/s, MFU twice:
//                against the measured bf16 8192^3 GEMM rate (mfu_vs_bf16_gemm) and against the
//                datasheet's dense bf16 peak (mfu_vs_datasheet: H100 SXM / H200 989 TFLOP/s,
//                H100 PCIe 756, A100 312, L40S 362; --peak-tflops overrides; absent when the
//                device is not in the table and no override is given).
//   device_fwd_bwd  the same network's forward + backward on device-resident inputs (no host
//                loss, no optimiser): how much of the step the host side and optimiser take.
//   sample       ReDi::sample<OdeEuler, CFG<VaeOnly>> of 256 images (512 rows per NFE through
//                the inference forward), a few Euler steps; images x NFE / s, and the implied
//                images/s for the paper's 250-step SDE sampler with CFG.
//
//   bench_cuda_train_step [--steps N] [--batch B] [--precision bf16|fp32|both] [--json FILE]
//                         [--peak-tflops X] [--recompute none|attention|mlp|block]
//   --recompute: the activation-recomputation policy of the trained network (nn/recompute.hpp;
//   e.g. mlp lets batch 256 fit an 80 GB card, docs/cuda.md); reported as the key `recompute`.
//
// Prints one "RESULT key=value ..." line per measurement (parsed by tests/cuda/device_check.sh)
// and writes them as JSON with --json. Without a CUDA device: prints "SKIPPED" and exits 0.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <chrono>

#include "redi/cuda/backend.cuh"
#include "redi/nn/flops.hpp"
#include "redi/redi_model.hpp"

namespace {

using redi::bf16;
using redi::Cuda;
using redi::Shape;
using redi::Tensor;

/// Milliseconds of `iters` calls of f on the context's stream (CUDA events), after `warmup`.
template <class F>
double time_ms(const Cuda& ctx, int warmup, int iters, F&& f) {
  for (int i = 0; i < warmup; ++i) f();
  ctx.synchronize();
  cudaEvent_t a, b;
  REDI_CUDA_CHECK(cudaEventCreate(&a));
  REDI_CUDA_CHECK(cudaEventCreate(&b));
  REDI_CUDA_CHECK(cudaEventRecord(a, ctx.stream()));
  for (int i = 0; i < iters; ++i) f();
  REDI_CUDA_CHECK(cudaEventRecord(b, ctx.stream()));
  REDI_CUDA_CHECK(cudaEventSynchronize(b));
  float ms = 0;
  REDI_CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
  REDI_CUDA_CHECK(cudaEventDestroy(a));
  REDI_CUDA_CHECK(cudaEventDestroy(b));
  return double(ms) / iters;
}

/// TFLOP/s of C[n,n] = A B^T through ops::gemm (the linear-layer layout).
template <class T>
double gemm_tflops(const Cuda& ctx, int n) {
  Tensor<T, Cuda> A(Shape{std::int64_t(n) * n}), B(Shape{std::int64_t(n) * n});
  Tensor<T, Cuda> C(Shape{std::int64_t(n) * n});
  redi::ops::fill_normal(ctx, A.data(), std::size_t(n) * n, 1, 0);
  redi::ops::fill_normal(ctx, B.data(), std::size_t(n) * n, 2, 0);
  const double ms = time_ms(ctx, 3, 20, [&] {
    redi::ops::gemm(ctx, false, true, n, n, n, 1.0f, A.data(), n, B.data(), n, 0.0f, C.data(), n);
  });
  return 2.0 * n * double(n) * n / (ms * 1e-3) * 1e-12;
}

struct Results {
  std::vector<std::pair<std::string, std::string>> kv;
  void add(const std::string& k, double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.6g", v);
    kv.emplace_back(k, buf);
  }
  void add(const std::string& k, const std::string& v) { kv.emplace_back(k, "\"" + v + "\""); }
  void print_line(const char* what, std::size_t from) const {
    std::printf("RESULT %s", what);
    for (std::size_t i = from; i < kv.size(); ++i)
      std::printf(" %s=%s", kv[i].first.c_str(), kv[i].second.c_str());
    std::printf("\n");
    std::fflush(stdout);
  }
  void write_json(const char* path) const {
    FILE* f = std::fopen(path, "w");
    if (!f) return;
    std::fprintf(f, "{\n");
    for (std::size_t i = 0; i < kv.size(); ++i)
      std::fprintf(f, "  \"%s\": %s%s\n", kv[i].first.c_str(), kv[i].second.c_str(),
                   i + 1 < kv.size() ? "," : "");
    std::fprintf(f, "}\n");
    std::fclose(f);
  }
};

double wall_ms(const Cuda& ctx, int warmup, int iters, const std::function<void()>& f) {
  for (int i = 0; i < warmup; ++i) f();
  ctx.synchronize();
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < iters; ++i) f();
  ctx.synchronize();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / iters;
}

redi::ModelConfig xl2_redi() {
  redi::ModelConfig cfg;
  cfg.preset("XL/2");
  cfg.input_size = 32;
  cfg.image_channels = 4;
  cfg.feature_channels = 8;
  cfg.num_classes = 1000;
  cfg.learn_sigma = false;
  return cfg;
}

/// Dense bf16 tensor-core peak of the datasheet, TFLOP/s, by device name (0: not in the table).
double datasheet_bf16_tflops(const std::string& name) {
  auto has = [&](const char* s) { return name.find(s) != std::string::npos; };
  if (has("H200")) return 989.0;
  if (has("H100") && (has("PCIe") || has("PCIE"))) return 756.0;
  if (has("H100")) return 989.0;  // SXM / HBM3
  if (has("A100")) return 312.0;
  if (has("L40S")) return 362.0;
  return 0.0;
}

/// One precision's measurements; returns false when no batch fits.
template <class P>
bool bench_precision(const Cuda& ctx, const char* tag, int steps, int forced_batch, redi::Recompute recompute,
                     double peak_bf16, double datasheet, Results& R) {
  using Model = redi::ReDi<redi::SiT, redi::Merged, redi::FlowMatching, P, Cuda>;
  using T = typename Model::network_type::value_type;
  const redi::ModelConfig cfg = xl2_redi();
  typename Model::Options o;
  o.model = cfg;
  o.loss.p_drop = 0.2;  // the public RG training setting
  o.train.grad_clip = 1.0;
  const auto t_init = std::chrono::steady_clock::now();
  Model m(o, ctx);  // host-side DiT init of 2 x 675M parameters
  m.net().set_recompute(recompute);
  const double init_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t_init).count();
  const int Cx = cfg.image_channels, r = cfg.feature_channels, HW = cfg.input_size * cfg.input_size;
  std::vector<int> tries = forced_batch > 0 ? std::vector<int>{forced_batch}
                                            : std::vector<int>{256, 128, 64, 32};
  std::size_t mark = R.kv.size();
  // keys carry the precision: bf16_step_ms, fp32_step_ms, ...
  auto add = [&](const std::string& k, const auto& v) { R.add(std::string(tag) + "_" + k, v); };
  int B = 0;
  std::vector<float> x0, z0;
  std::vector<int> y;
  std::uint64_t first = 0;
  auto step = [&] {
    m.train_step(x0.data(), z0.data(), y.data(), B, first);
    first += std::uint64_t(B);
  };
  for (int b : tries) {
    try {
      B = b;
      x0.resize(std::size_t(B) * Cx * HW);
      z0.resize(std::size_t(B) * r * HW);
      redi::philox::fill_normal(x0.data(), x0.size(), 3, 0);
      redi::philox::fill_normal(z0.data(), z0.size(), 4, 0);
      y.resize(B);
      for (int i = 0; i < B; ++i) y[i] = (i * 37) % cfg.num_classes;
      step();  // sizes the arenas (throws redi::Error when cudaMalloc fails)
      ctx.synchronize();
      break;
    } catch (const redi::Error& e) {
      std::printf("[%s] batch %d does not fit: %s\n", tag, b, e.what());
      std::fflush(stdout);
      B = 0;
    }
  }
  if (B == 0) {
    std::printf("RESULT train_step_%s error=\"no batch size fits\"\n", tag);
    return false;
  }
  auto last = m.train_step(x0.data(), z0.data(), y.data(), B, first);
  const double ms = wall_ms(ctx, 0, steps, step);
  const double tflops = redi::train_step_flops<redi::Merged>(cfg, B) / (ms * 1e-3) * 1e-12;
  std::size_t free_b = 0, total_b = 0;
  REDI_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  add("precision", tag);
  add("model", "SiT-XL/2 ReDi Merged 4+8ch 32x32");
  add("params_M", double(m.net().num_params()) / 1e6);
  add("init_s", init_s);
  add("flash_attention", m.net().uses_flash_attention() ? "cudnn" : "fallback");
  add("batch", double(B));
  add("recompute", std::string(redi::recompute_name(recompute)));
  add("step_ms", ms);
  add("train_images_per_s", B / (ms * 1e-3));
  add("train_tflops", tflops);
  add("mfu_vs_bf16_gemm", tflops / peak_bf16);
  if (datasheet > 0) add("mfu_vs_datasheet", tflops / datasheet);
  add("gpu_mem_used_GiB", double(total_b - free_b) / double(1u << 30));
  add("loss", last.loss.loss);
  add("grad_norm", last.grad_norm);
  R.print_line((std::string("train_step_") + tag).c_str(), mark);

  // ---- the network alone on device-resident data: forward + backward
  mark = R.kv.size();
  {
    auto& net = m.net();
    const std::int64_t nin = std::int64_t(B) * cfg.channels_in() * HW;
    const std::int64_t nout = std::int64_t(B) * cfg.channels_out() * HW;
    Tensor<float, Cuda> xf(Shape{nin}), gf(Shape{nout}), t(Shape{B});
    Tensor<T, Cuda> x(Shape{nin}), out(Shape{nout}), g(Shape{nout});
    Tensor<int, Cuda> yd(Shape{B});
    redi::ops::fill_normal(ctx, xf.data(), nin, 5, 0);
    redi::ops::fill_normal(ctx, gf.data(), nout, 6, 0);
    redi::ops::fill_uniform(ctx, t.data(), B, 7, 0);
    redi::ops::convert(ctx, x.data(), xf.data(), nin);
    redi::ops::convert(ctx, g.data(), gf.data(), nout);
    yd.from_host(y);
    const double fb = wall_ms(ctx, 1, steps, [&] {
      net.forward(x.data(), t.data(), yd.data(), B, out.data());
      net.backward(g.data());
    });
    add("device_fwd_bwd_ms", fb);
    add("device_fwd_bwd_tflops", redi::train_step_flops<redi::Merged>(cfg, B) / (fb * 1e-3) * 1e-12);
    add("step_over_fwd_bwd", ms / fb);
    R.print_line((std::string("device_fwd_bwd_") + tag).c_str(), mark);
  }

  // ---- sampling: 256 images, CFG (512 rows per NFE), a few Euler steps
  mark = R.kv.size();
  {
    const int images = 256, nfe = 4;
    std::vector<float> out(std::size_t(images) * cfg.channels_in() * HW);
    std::vector<int> labels(images);
    for (int i = 0; i < images; ++i) labels[i] = (i * 13) % cfg.num_classes;
    redi::SampleRequest req;
    req.B = images;
    req.labels = labels.data();
    req.seed = 1;
    redi::OdeEuler::Options so;
    so.num_steps = nfe;
    redi::GuidanceOptions go;
    go.cfg_scale = 4.0;
    auto run_sampler = [&] { m.template sample<redi::OdeEuler, redi::CFG<redi::VaeOnly>>(out.data(), req, so, go); };
    const double sms = wall_ms(ctx, 1, 2, run_sampler);
    const double per_nfe = sms / nfe;
    add("sample_images", double(images));
    add("sample_rows_per_nfe", double(2 * images));
    add("sample_ms_per_nfe", per_nfe);
    add("sample_images_x_nfe_per_s", images / (per_nfe * 1e-3));
    add("sample_images_per_s_250_nfe", images / (per_nfe * 1e-3) / 250.0);
    add("sample_forward_tflops", redi::forward_flops<redi::Merged>(cfg) * 2 * images / (per_nfe * 1e-3) * 1e-12);
    R.print_line((std::string("sample_cfg_") + tag).c_str(), mark);
  }
  return true;
}

int run(int argc, char** argv) {
  int steps = 5, forced_batch = 0;
  std::string precision = "both";
  const char* json = nullptr;
  redi::Recompute recompute = redi::Recompute::None;
  double peak_override = 0;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--steps") && i + 1 < argc) steps = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--batch") && i + 1 < argc) forced_batch = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--precision") && i + 1 < argc) precision = argv[++i];
    else if (!std::strcmp(argv[i], "--json") && i + 1 < argc) json = argv[++i];
    else if (!std::strcmp(argv[i], "--peak-tflops") && i + 1 < argc) peak_override = std::atof(argv[++i]);
    else if (!std::strcmp(argv[i], "--recompute") && i + 1 < argc) recompute = redi::parse_recompute(argv[++i]);
    else {
      std::fprintf(stderr,
                   "usage: %s [--steps N] [--batch B] [--precision bf16|fp32|both] [--json FILE] [--peak-tflops X]"
                   " [--recompute none|attention|mlp|block]\n",
                   argv[0]);
      return 2;
    }
  }
  if (precision != "bf16" && precision != "fp32" && precision != "both") {
    std::fprintf(stderr, "--precision must be bf16, fp32 or both, got '%s'\n", precision.c_str());
    return 2;
  }
  if (!redi::cuda_available()) {
    std::printf("SKIPPED: no CUDA device available\n");
    return 0;
  }
  redi::CudaOptions opt;
  opt.tf32 = true;  // the fp32 model runs TF32 tensor-core GEMMs (bf16 GEMMs are unaffected)
  const Cuda ctx = Cuda::create(0, opt);
  cudaDeviceProp prop{};
  REDI_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  Results R;
  R.add("device", prop.name);
  const double peak_bf16 = gemm_tflops<bf16>(ctx, 8192);
  const double peak_tf32 = gemm_tflops<float>(ctx, 8192);
  R.add("gemm_bf16_8192_tflops", peak_bf16);
  R.add("gemm_tf32_8192_tflops", peak_tf32);
  const double datasheet = peak_override > 0 ? peak_override : datasheet_bf16_tflops(prop.name);
  if (datasheet > 0) {
    R.add("datasheet_bf16_tflops", datasheet);
    R.add("gemm_bf16_vs_datasheet", peak_bf16 / datasheet);
  }
  R.print_line("gemm", 0);
  bool ok = true;
  if (precision != "fp32") ok &= bench_precision<redi::BF16Mixed>(ctx, "bf16", steps, forced_batch, recompute, peak_bf16, datasheet, R);
  if (precision != "bf16") ok &= bench_precision<float>(ctx, "fp32", steps, forced_batch, recompute, peak_bf16, datasheet, R);
  if (json) R.write_json(json);
  return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::printf("RESULT error=\"%s\"\n", e.what());
    return 1;
  }
}
