// tests/crash/kill_test.cpp — the kill -9 test of docs/crash_safety.md: a small training process
// that writes a checkpoint (and a kept copy, a metrics line) every step and a sample grid every
// 5 steps is SIGKILLed at random moments, then resumed, `--kills` times; after every kill it
// asserts
//   - checkpoint.safetensors (if any) loads completely, and its step never goes backwards;
//   - every kept copy checkpoint_<N>.safetensors loads and holds step N (they are then deleted,
//     to bound the disk use);
//   - metrics.jsonl holds steps 1..L exactly once each, in order, with L = the checkpoint's step
//     or one more (a line logged before a checkpoint the kill cut off); only its last line may
//     be incomplete;
//   - no temporary file of an earlier (dead) writer survived a child that made progress (its
//     run() must have removed them);
// then a last child trains 3 more steps to completion and it asserts that no temporary file nor
// any file outside the expected set is left, that metrics.jsonl is exactly 1..final, and that
// the final weights, EMA and AdamW moments are bit-identical to an uninterrupted run trained
// in this process to the same step.
//
//   redi_kill_test [--kills N] [--seed S] [--max-delay-ms M] [--dir DIR] [--keep]
//   (internal: redi_kill_test --child DIR [--finish])
// Exit 0: all checks passed (a summary line with the counts is printed); 1: a check failed.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>
#if defined(_OPENMP)
#include <omp.h>
#endif

#include "redi/io/atomic_file.hpp"
#include "redi/ops/cpu_backend.hpp"
#include "redi/train/checkpoint.hpp"
#include "redi/train/trainer.hpp"

extern char** environ;

namespace {
namespace fs = std::filesystem;
using Model = redi::ReDi<redi::SiT, redi::Merged, redi::FlowMatching>;

redi::data::TrainSet toy_set() {
  redi::data::TrainSet t;
  const int n = 64;
  t.n = n; t.cx = 1; t.h = 8; t.w = 8; t.r = 2; t.zh = 4; t.zw = 4; t.num_classes = 4; t.name = "kill_toy";
  t.x.resize(std::size_t(n) * 64);
  t.z.resize(std::size_t(n) * t.r * 16);
  redi::philox::fill_normal(t.x.data(), t.x.size(), 11, 1);
  redi::philox::fill_normal(t.z.data(), t.z.size(), 11, 2);
  for (int i = 0; i < n; ++i) t.labels.push_back(i % 4);
  return t;
}

Model::Options options() {
  Model::Options o;
  auto& c = o.model;
  c.input_size = 8; c.patch = 2; c.image_channels = 1; c.feature_channels = 2;
  c.depth = 2; c.width = 64; c.heads = 2; c.num_classes = 4;
  o.train.adamw.lr = 1e-3;
  o.train.warmup_steps = 4;
  o.train.seed = 5;
  o.init_seed = 3;
  return o;
}

redi::train::TrainerConfig trainer_config(const fs::path& dir, std::int64_t steps) {
  redi::train::TrainerConfig tc;
  tc.steps = steps; tc.batch = 8; tc.data_seed = 9; tc.log_every = 1; tc.ckpt_every = 1;
  tc.keep_checkpoints = true; tc.sample_every = 5; tc.grid_samples = 4; tc.grid_cols = 2;
  tc.out_dir = dir.string();
  return tc;
}

void single_thread() {
#if defined(_OPENMP)
  omp_set_num_threads(1);  // frugal, and the same arithmetic in every process
#endif
}

/// The child: resume if there is a checkpoint, train (forever, or 3 more steps with --finish).
int child(const fs::path& dir, bool finish) {
  single_thread();
  const auto data = toy_set();
  Model m(options());
  const fs::path ck = dir / "checkpoint.safetensors";
  std::int64_t start = 0;
  if (fs::exists(ck)) start = redi::train::read_checkpoint_state(ck).step;
  redi::train::Trainer<Model> t(m, data, trainer_config(dir, finish ? start + 3 : std::int64_t(1) << 40));
  t.set_sample_fn([](Model& mm, float* out, const redi::SampleRequest& req) {
    mm.sample<redi::OdeEuler>(out, req, {.num_steps = 4});
  });
  if (start > 0) t.resume(ck);
  t.run();
  return 0;
}

struct Counts {
  int kills = 0, kills_with_temps = 0, temps_seen = 0, torn_log_lines = 0, corrupt = 0, stale = 0,
      log_errors = 0, kept_copies_checked = 0, backwards = 0;
};

bool fail_msg(const std::string& s) {
  std::cerr << "kill_test: FAIL: " << s << "\n";
  return false;
}

/// Loads a checkpoint completely into a fresh model; returns its step or -1 (and says why).
std::int64_t load_step(const fs::path& p, Model* into = nullptr) {
  try {
    Model m(options());
    const auto st = redi::train::load_checkpoint(p, into ? *into : m);
    return st.step;
  } catch (const std::exception& e) {
    std::cerr << "kill_test: " << p.string() << " does not load: " << e.what() << "\n";
    return -1;
  }
}

/// The steps of metrics.jsonl's complete lines; *torn: the last line has no newline.
std::vector<std::int64_t> log_steps(const fs::path& p, bool* torn, bool* bad) {
  std::vector<std::int64_t> steps;
  *torn = *bad = false;
  std::ifstream f(p, std::ios::binary);
  if (!f) return steps;
  std::stringstream ss;
  ss << f.rdbuf();
  const std::string s = ss.str();
  std::size_t b = 0;
  while (b < s.size()) {
    const auto e = s.find('\n', b);
    if (e == std::string::npos) { *torn = true; break; }
    const std::string line = s.substr(b, e - b);
    long long v = 0;
    if (std::sscanf(line.c_str(), "{\"step\":%lld,", &v) != 1) *bad = true;
    steps.push_back(v);
    b = e + 1;
  }
  return steps;
}

/// Every AtomicFile temporary under dir, with its writer's pid.
std::vector<std::pair<fs::path, long>> temporaries(const fs::path& dir) {
  std::vector<std::pair<fs::path, long>> v;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    long pid = 0;
    if (redi::io::parse_temp_name(e.path().filename().string(), &pid)) v.push_back({e.path(), pid});
  }
  return v;
}

pid_t spawn_child(const std::string& self, const fs::path& dir, bool finish) {
  std::vector<std::string> args = {self, "--child", dir.string()};
  if (finish) args.push_back("--finish");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);  // the trainer's console
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, self.c_str(), &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) {
    std::cerr << "kill_test: posix_spawn failed: " << std::strerror(rc) << "\n";
    std::exit(1);
  }
  return pid;
}

int parent(int kills, std::uint64_t seed, int max_delay_ms, fs::path dir, bool keep) {
  single_thread();
  const std::string self = fs::read_symlink("/proc/self/exe").string();
  fs::remove_all(dir);
  fs::create_directories(dir);
  const fs::path ck = dir / "checkpoint.safetensors", log = dir / "metrics.jsonl";
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> delay(0, max_delay_ms);
  Counts c;
  bool ok = true;
  std::int64_t last_step = 0;
  long prev_pid = -1;
  const auto t0 = std::chrono::steady_clock::now();
  for (int k = 0; k < kills; ++k) {
    const pid_t pid = spawn_child(self, dir, false);
    std::this_thread::sleep_for(std::chrono::milliseconds(delay(rng)));
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (!(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)) {
      ok = fail_msg("child " + std::to_string(k) + " ended before the kill (status " + std::to_string(status) + ")");
      break;
    }
    ++c.kills;
    // 1. the checkpoint
    std::int64_t step = 0;
    if (fs::exists(ck)) {
      step = load_step(ck);
      if (step < 0) { ++c.corrupt; ok = false; step = last_step; }
    }
    if (step < last_step) { ++c.backwards; ok = fail_msg("checkpoint step went back from " + std::to_string(last_step)); }
    const bool progressed = step > last_step;
    // 2. kept copies
    for (const auto& e : fs::directory_iterator(dir)) {
      const std::string n = e.path().filename().string();
      long long s = 0;
      if (std::sscanf(n.c_str(), "checkpoint_%lld.safetensors", &s) != 1 || n[0] == '.') continue;
      const std::int64_t got = load_step(e.path());
      ++c.kept_copies_checked;
      if (got != s) { ++c.corrupt; ok = fail_msg(n + " holds step " + std::to_string(got)); }
      fs::remove(e.path());
    }
    // 3. temporaries: a child that made progress ran its cleanup, so only its own may remain
    const auto tmps = temporaries(dir);
    if (!tmps.empty()) ++c.kills_with_temps;
    c.temps_seen += int(tmps.size());
    for (const auto& [p, tp] : tmps)
      if (progressed && tp != long(pid)) {
        ++c.stale;
        ok = fail_msg("stale temporary " + p.string() + " (writer " + std::to_string(tp) + ") survived child " +
                      std::to_string(pid));
      }
    // 4. the log
    bool torn = false, bad = false;
    const auto steps = log_steps(log, &torn, &bad);
    c.torn_log_lines += torn;
    bool log_ok = !bad;
    for (std::size_t i = 0; i < steps.size(); ++i) log_ok = log_ok && steps[i] == std::int64_t(i) + 1;
    const auto L = std::int64_t(steps.size());
    log_ok = log_ok && (L == step || L == step + 1);
    if (!log_ok) {
      ++c.log_errors;
      ok = fail_msg("metrics.jsonl has " + std::to_string(L) + " lines (checkpoint step " + std::to_string(step) +
                    ")" + (bad ? ", unparsable lines" : ""));
    }
    last_step = step;
    prev_pid = pid;
    if (!ok) break;
  }
  (void)prev_pid;
  std::int64_t final_step = -1;
  bool identical = false;
  if (ok) {  // the last child runs to completion
    const pid_t pid = spawn_child(self, dir, true);
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0)) ok = fail_msg("the finishing child failed");
    Model resumed(options());
    final_step = load_step(ck, &resumed);
    if (final_step != last_step + 3) ok = fail_msg("final step " + std::to_string(final_step));
    if (!temporaries(dir).empty()) { ++c.stale; ok = fail_msg("temporaries left after a completed run"); }
    for (const auto& e : fs::recursive_directory_iterator(dir)) {  // nothing but the expected files
      const std::string rel = fs::relative(e.path(), dir).string();
      long long s = 0;
      const bool expected = rel == "checkpoint.safetensors" || rel == "metrics.jsonl" || rel == "samples" ||
                            (rel.rfind("samples/step_", 0) == 0 && rel.ends_with(".png")) ||
                            std::sscanf(rel.c_str(), "checkpoint_%lld.safetensors", &s) == 1;
      if (!expected) { ++c.stale; ok = fail_msg("unexpected file " + rel); }
    }
    bool torn = false, bad = false;
    const auto steps = log_steps(log, &torn, &bad);
    bool log_ok = !torn && !bad && std::int64_t(steps.size()) == final_step;
    for (std::size_t i = 0; log_ok && i < steps.size(); ++i) log_ok = steps[i] == std::int64_t(i) + 1;
    if (!log_ok) { ++c.log_errors; ok = fail_msg("final metrics.jsonl is not steps 1.." + std::to_string(final_step)); }
    // the same number of steps without interruption, in this process
    if (final_step > 0) {
      const auto data = toy_set();
      Model clean(options());
      auto tc = trainer_config("", final_step);
      redi::train::Trainer<Model> t(clean, data, tc);
      t.run();
      identical = clean.net().params().to_host() == resumed.net().params().to_host() &&
                  clean.ema().params().to_host() == resumed.ema().params().to_host() &&
                  clean.adam_m().to_host() == resumed.adam_m().to_host() &&
                  clean.adam_v().to_host() == resumed.adam_v().to_host();
      if (!identical) ok = fail_msg("the killed-and-resumed run differs from an uninterrupted one");
    }
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::cout << "kill_test: kills " << c.kills << ", kills that left temporaries " << c.kills_with_temps
            << " (" << c.temps_seen << " files), torn last log lines "
            << c.torn_log_lines << "; corrupt checkpoints " << c.corrupt << ", stale leftovers " << c.stale
            << ", log errors (duplicate/missing steps) " << c.log_errors << ", steps going back " << c.backwards
            << "; kept copies checked " << c.kept_copies_checked << "; final step " << final_step
            << ", bit-identical to an uninterrupted run: " << (identical ? "yes" : "no") << "; " << secs << " s\n";
  if (!keep) fs::remove_all(dir);
  return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    int kills = 50, max_delay_ms = 250;
    std::uint64_t seed = 1;
    fs::path dir = fs::temp_directory_path() / ("redi_kill_test_" + std::to_string(::getpid()));
    bool keep = false, finish = false;
    std::string child_dir;
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      auto next = [&]() -> std::string {
        if (i + 1 >= argc) throw std::runtime_error(a + " needs a value");
        return argv[++i];
      };
      if (a == "--kills") kills = std::stoi(next());
      else if (a == "--seed") seed = std::stoull(next());
      else if (a == "--max-delay-ms") max_delay_ms = std::stoi(next());
      else if (a == "--dir") dir = next();
      else if (a == "--keep") keep = true;
      else if (a == "--child") child_dir = next();
      else if (a == "--finish") finish = true;
      else throw std::runtime_error("unknown argument " + a);
    }
    if (!child_dir.empty()) return child(child_dir, finish);
    return parent(kills, seed, max_delay_ms, dir, keep);
  } catch (const std::exception& e) {
    std::cerr << "kill_test: " << e.what() << "\n";
    return 1;
  }
}
