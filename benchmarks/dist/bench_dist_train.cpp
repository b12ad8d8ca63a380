// bench_dist_train — data-parallel training throughput of one model over the ranks it is
// launched with (benchmarks/dist/scaling.sh runs it with 1 and 2 ranks and prints the ratio).
//   mpirun -np W bench_dist_train [--batch B] [--steps N] [--width C] [--depth D]
// A SiT + ReDi (Merged, flow matching) on 32x32x1 images with r = 8 features on an 8x8 grid,
// random data, trained by redi::train::Trainer with the MPI communicator (global batch B, B / W
// per rank). Prints one JSON line from rank 0: ranks, batch, parameters, ms per step (median of
// the timed steps after 3 warm-up steps), images/s, the gradient all-reduce alone (median of 20
// MPI all-reduces of the gradient buffer) and the bytes moved per step: the gradient buffer
// (4 bytes a parameter) and what a ring all-reduce sends per rank, 2 (W - 1) / W of it.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "redi/dist/mpi.hpp"
#include "redi/ops/cpu_backend.hpp"
#include "redi/train/trainer.hpp"

namespace {
double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}
int arg(int argc, char** argv, const std::string& name, int def) {
  for (int i = 1; i + 1 < argc; ++i)
    if (argv[i] == "--" + name) return std::atoi(argv[i + 1]);
  return def;
}
}  // namespace

int main(int argc, char** argv) {
  redi::dist::MpiRuntime mpi(argc, argv);
  redi::dist::Mpi world;
  using Model = redi::ReDi<redi::SiT, redi::Merged, redi::FlowMatching>;
  const int batch = arg(argc, argv, "batch", 32), steps = arg(argc, argv, "steps", 12);
  Model::Options o;
  o.model.input_size = 32; o.model.patch = 4; o.model.image_channels = 1; o.model.feature_channels = 8;
  o.model.feature_size = 8; o.model.width = arg(argc, argv, "width", 128); o.model.depth = arg(argc, argv, "depth", 4);
  o.model.heads = 4; o.model.num_classes = 1;
  o.loss.p_drop = 0.2;
  o.train.adamw.lr = 1e-3;
  Model m(o);
  redi::data::TrainSet d;
  d.n = 512; d.cx = 1; d.h = d.w = 32; d.r = 8; d.zh = d.zw = 8; d.name = "random";
  d.x.resize(std::size_t(d.n) * 1024);
  d.z.resize(std::size_t(d.n) * 8 * 64);
  d.labels.assign(std::size_t(d.n), 0);
  redi::philox::fill_normal(d.x.data(), d.x.size(), 1, 1);
  redi::philox::fill_normal(d.z.data(), d.z.size(), 1, 2);
  redi::train::TrainerConfig tc;
  tc.batch = batch; tc.steps = steps + 3; tc.log_every = 0; tc.sample_every = -1; tc.ckpt_every = -1;
  tc.comm = &world;
  redi::train::Trainer<Model> t(m, d, tc);
  std::vector<double> ms;
  for (int s = 0; s < steps + 3; ++s) {
    world.barrier();
    const auto t0 = std::chrono::steady_clock::now();
    t.step();
    world.barrier();
    if (s >= 3) ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::vector<float> g(std::size_t(m.net().num_params()), 1.0f);
  std::vector<double> ar;
  for (int i = 0; i < 20; ++i) {
    world.barrier();
    const auto t0 = std::chrono::steady_clock::now();
    world.allreduce_mean(g.data(), g.size());
    ar.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  const double step_ms = median(ms), W = world.size();
  const double bytes = double(g.size()) * sizeof(float);
  if (world.rank() == 0)
    std::printf("{\"ranks\": %d, \"batch\": %d, \"parameters\": %lld, \"ms_per_step\": %.3f, \"img_per_s\": %.2f, "
                "\"allreduce_ms\": %.3f, \"grad_bytes\": %.0f, \"ring_bytes_per_rank\": %.0f}\n",
                world.size(), batch, (long long)m.net().num_params(), step_ms, batch / step_ms * 1e3,
                W > 1 ? median(ar) : 0.0, bytes, 2.0 * (W - 1) / W * bytes);
  return 0;
}
