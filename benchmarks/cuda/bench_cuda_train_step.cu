// benchmarks/cuda/bench_cuda_train_step.cu — the GPU training step of SiT-XL/2 ReDi
// (4 VAE + 8 PCA-feature channels, 32x32 latents, Merged tokens, learn_sigma off), fp32 storage
// with TF32 tensor-core GEMMs: zero_grad, forward, MSE loss on the device, backward, gradient
// norm (device-side, as ReDi::finish_step computes it), AdamW, EMA. Runs at the largest batch
// that fits (256, else 128, 64, 32: a failed cudaMalloc throws redi::Error and the next size is
// tried). Also: the bf16 and TF32 8192^3 GEMM rates of the context's gemm in the same process
// (MFU = achieved model TFLOP/s / bf16 GEMM TFLOP/s), and sampling throughput (Euler steps with
// classifier-free guidance for 256 images = 512 model rows per step, in chunks of the batch the
// model's arena holds: the Transformer has no inference-only forward yet, so its arena keeps
// training activations).
//
//   bench_cuda_train_step [--steps N] [--batch B] [--json FILE]
//
// Prints one "RESULT key=value ..." line per measurement (parsed by tests/cuda/device_check.sh)
// and writes them as JSON with --json. Without a CUDA device: prints "SKIPPED" and exits 0.
//
// FLOPs per training step = 3 x forward FLOPs (the formula of benchmarks/bench_train_step.cpp:
// every linear layer + attention scores and mixing, multiply-add = 2 FLOPs).
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "redi/cuda/ops/ops.cuh"
#include "redi/nn/transformer.hpp"

namespace {

using redi::bf16;
using redi::Cuda;
using redi::Shape;
using redi::Tensor;

/// Forward FLOPs of one sample — kept identical to forward_flops() in
/// benchmarks/bench_train_step.cpp (that file is a CPU benchmark main; not includable).
double forward_flops(const redi::ModelConfig& c, int seq_factor) {
  const double D = c.width, L = c.tokens(), S = L * seq_factor, p2 = double(c.patch) * c.patch;
  const double Dm = D * c.mlp_ratio;
  double f = 0;
  f += 2 * L * p2 * c.channels_in() * D;                  // patch embed(s)
  f += 2 * (c.freq_dim * D + D * D);                      // timestep MLP
  const double block = 2 * S * (3 * D * D + D * D + 2 * D * Dm)  // qkv, proj, fc1, fc2
                       + 2 * 2 * S * S * D                     // q k^T and P v
                       + 2 * D * 6 * D;                        // adaLN
  f += c.depth * block;
  f += 2 * D * 2 * D + 2 * L * D * p2 * c.channels_out();  // final adaLN + linear(s)
  return f;
}

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

int run(int argc, char** argv) {
  int steps = 10, forced_batch = 0;
  const char* json = nullptr;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--steps") && i + 1 < argc) steps = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--batch") && i + 1 < argc) forced_batch = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--json") && i + 1 < argc) json = argv[++i];
    else {
      std::fprintf(stderr, "usage: %s [--steps N] [--batch B] [--json FILE]\n", argv[0]);
      return 2;
    }
  }
  if (!redi::cuda_available()) {
    std::printf("SKIPPED: no CUDA device available\n");
    return 0;
  }
  redi::CudaOptions opt;
  opt.tf32 = true;  // fp32 storage, TF32 tensor-core GEMMs
  const Cuda ctx = Cuda::create(0, opt);
  cudaDeviceProp prop{};
  REDI_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  Results R;
  R.add("device", prop.name);

  // ---- GEMM ceilings (same process, same context)
  const double peak_bf16 = gemm_tflops<bf16>(ctx, 8192);
  const double peak_tf32 = gemm_tflops<float>(ctx, 8192);
  R.add("gemm_bf16_8192_tflops", peak_bf16);
  R.add("gemm_tf32_8192_tflops", peak_tf32);
  R.print_line("gemm", 0);
  std::size_t mark = R.kv.size();

  // ---- the model
  redi::ModelConfig cfg;
  cfg.preset("XL/2");
  cfg.input_size = 32;
  cfg.image_channels = 4;
  cfg.feature_channels = 8;
  cfg.num_classes = 1000;
  cfg.learn_sigma = false;
  using Net = redi::Transformer<float, redi::Merged, Cuda>;
  Net net(cfg, ctx);  // host-side DiT init of 675M parameters: ~10 s
  const std::int64_t np = net.num_params();
  const int Cin = cfg.channels_in(), Cout = cfg.channels_out(), HW = cfg.input_size * cfg.input_size;
  Tensor<float, Cuda> mom(Shape{np}), var(Shape{np}), ema(Shape{np});
  redi::ops::copy(ctx, ema.data(), net.params().data(), np);
  Tensor<double, Cuda> stats(Shape{2});  // device-side loss sum and gradient sum of squares
  redi::ops::AdamWConfig adam;           // lr 1e-4, betas (0.9, 0.999), no weight decay
  const double ema_decay = 0.9999;

  std::vector<int> tries = forced_batch > 0 ? std::vector<int>{forced_batch}
                                            : std::vector<int>{256, 128, 64, 32};
  int B = 0;
  Tensor<float, Cuda> x, t, target, out, dout;
  Tensor<int, Cuda> y;
  std::int64_t step = 0;
  auto train_step = [&] {
    const std::int64_t n_out = std::int64_t(B) * Cout * HW;
    net.zero_grad();
    net.forward(x.data(), t.data(), y.data(), B, out.data());
    redi::ops::mse_sum_async(ctx, stats.data(), out.data(), target.data(), n_out);
    redi::ops::mse_backward(ctx, dout.data(), out.data(), target.data(), n_out, 1.0f);
    net.backward(dout.data());
    redi::ops::sum_squares_async(ctx, stats.data() + 1, net.grads().data(), np);
    ++step;
    redi::ops::adamw_step(ctx, net.params().data(), net.grads().data(), mom.data(), var.data(),
                          np, adam, step);
    redi::ops::ema_update(ctx, ema.data(), net.params().data(), np, ema_decay);
  };
  for (int b : tries) {
    try {
      B = b;
      x = Tensor<float, Cuda>(Shape{std::int64_t(B) * Cin * HW});
      target = Tensor<float, Cuda>(Shape{std::int64_t(B) * Cout * HW});
      out = Tensor<float, Cuda>(Shape{std::int64_t(B) * Cout * HW});
      dout = Tensor<float, Cuda>(Shape{std::int64_t(B) * Cout * HW});
      t = Tensor<float, Cuda>(Shape{B});
      y = Tensor<int, Cuda>(Shape{B});
      redi::ops::fill_normal(ctx, x.data(), x.numel(), 3, 0);
      redi::ops::fill_normal(ctx, target.data(), target.numel(), 4, 0);
      redi::ops::fill_uniform(ctx, t.data(), t.numel(), 5, 0);
      std::vector<int> yh(B);
      for (int i = 0; i < B; ++i) yh[i] = (i * 37) % (cfg.num_classes + 1);  // incl. null class
      y.from_host(yh);
      train_step();  // sizes the arena (throws redi::Error when cudaMalloc fails)
      ctx.synchronize();
      break;
    } catch (const redi::Error& e) {
      std::printf("batch %d does not fit: %s\n", b, e.what());
      std::fflush(stdout);
      B = 0;
    }
  }
  if (B == 0) {
    std::printf("RESULT train_step error=\"no batch size fits\"\n");
    return 1;
  }
  const double ms = time_ms(ctx, 1, steps, train_step);
  std::vector<double> st(2);
  REDI_CUDA_CHECK(cudaMemcpy(st.data(), stats.data(), 2 * sizeof(double), cudaMemcpyDeviceToHost));
  const double flops_step = 3.0 * forward_flops(cfg, redi::Merged::sequence_factor) * B;
  const double tflops = flops_step / (ms * 1e-3) * 1e-12;
  std::size_t free_b = 0, total_b = 0;
  REDI_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  R.add("model", "SiT-XL/2 ReDi Merged 4+8ch 32x32 fp32/TF32");
  R.add("params_M", double(np) / 1e6);
  R.add("batch", double(B));
  R.add("step_ms", ms);
  R.add("train_images_per_s", B / (ms * 1e-3));
  R.add("train_tflops", tflops);
  R.add("mfu_vs_bf16_gemm", tflops / peak_bf16);
  R.add("frac_of_tf32_gemm", tflops / peak_tf32);
  R.add("gpu_mem_used_GiB", double(total_b - free_b) / double(1u << 30));
  R.add("last_loss", st[0] / double(std::int64_t(B) * Cout * HW));
  R.add("last_grad_norm", std::sqrt(st[1]));
  R.print_line("train_step", mark);
  mark = R.kv.size();

  // ---- sampling: Euler + CFG for 256 images (512 rows per step) in chunks of B rows
  const int images = 256, rows = 2 * images;
  const std::int64_t img_elems = std::int64_t(Cin) * HW;
  Tensor<float, Cuda> xs(Shape{std::int64_t(images) * img_elems});
  Tensor<float, Cuda> xin(Shape{std::int64_t(rows) * img_elems});
  Tensor<float, Cuda> vel(Shape{std::int64_t(rows) * img_elems});
  Tensor<float, Cuda> ts(Shape{rows});
  Tensor<int, Cuda> ys(Shape{rows});
  redi::ops::fill_normal(ctx, xs.data(), xs.numel(), 6, 0);
  {
    std::vector<int> yh(rows);
    for (int i = 0; i < images; ++i) {
      yh[i] = (i * 13) % cfg.num_classes;
      yh[images + i] = cfg.null_class();
    }
    ys.from_host(yh);
    ts.from_host(std::vector<float>(rows, 0.5f));
  }
  const float guidance = 4.0f, dt = -1.0f / 250;
  const std::int64_t n_img = std::int64_t(images) * img_elems;
  auto sample_step = [&] {
    redi::ops::copy(ctx, xin.data(), xs.data(), n_img);
    redi::ops::copy(ctx, xin.data() + n_img, xs.data(), n_img);
    for (int r0 = 0; r0 < rows; r0 += B) {
      const int nb = rows - r0 < B ? rows - r0 : B;
      net.forward(xin.data() + r0 * img_elems, ts.data() + r0, ys.data() + r0, nb,
                  vel.data() + r0 * img_elems);
    }
    float* vc = vel.data();
    float* vu = vel.data() + n_img;
    redi::ops::scale_inplace(ctx, vu, n_img, -1.0f);
    redi::ops::add_inplace(ctx, vc, vu, n_img);  // v_c - v_u
    redi::ops::scale_inplace(ctx, vc, n_img, guidance);
    redi::ops::scale_inplace(ctx, vu, n_img, -1.0f);
    redi::ops::add_inplace(ctx, vc, vu, n_img);  // v_u + s (v_c - v_u)
    redi::ops::scale_inplace(ctx, vc, n_img, dt);
    redi::ops::add_inplace(ctx, xs.data(), vc, n_img);
  };
  const double sms = time_ms(ctx, 1, 3, sample_step);
  const double fwd_tflops = forward_flops(cfg, 1) * rows / (sms * 1e-3) * 1e-12;
  R.add("sample_images", double(images));
  R.add("sample_rows_per_forward", double(B));
  R.add("sample_step_ms", sms);
  R.add("sample_images_x_steps_per_s", images / (sms * 1e-3));
  R.add("sample_images_per_s_250_steps", images / (sms * 1e-3) / 250.0);
  R.add("sample_forward_tflops", fwd_tflops);
  R.print_line("sample_cfg", mark);
  if (json) R.write_json(json);
  return 0;
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
