// Tests for the crash-safety pieces (docs/crash_safety.md): io/atomic_file.hpp (atomic replace,
// temporaries named and cleaned up, checked writes, atomic copies), JsonlLog::open_resumed
// (metrics.jsonl cut back to the resumed step) and the trainer using them (stale temporaries
// removed at the start of a run, no duplicate log steps after a resume, kept checkpoint copies
// complete). The kill -9 test itself is tests/crash/kill_test.cpp.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "redi/io/atomic_file.hpp"
#include "redi/ops/cpu_backend.hpp"
#include "redi/train/checkpoint.hpp"
#include "redi/train/metrics_log.hpp"
#include "redi/train/trainer.hpp"
#include "io_test_util.hpp"

using namespace redi;
namespace fs = std::filesystem;
using redi::test::expect_error;

namespace {

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}
void put_file(const fs::path& p, const std::string& s) {
  std::ofstream f(p, std::ios::binary);
  f << s;
  ASSERT_TRUE(f.good()) << p;
}
std::set<std::string> names_in(const fs::path& dir) {
  std::set<std::string> s;
  for (const auto& e : fs::recursive_directory_iterator(dir)) s.insert(fs::relative(e.path(), dir).string());
  return s;
}
/// The pid of a process that has exited (forked child, reaped).
long dead_pid() {
  const pid_t p = ::fork();
  if (p == 0) ::_exit(0);
  int st = 0;
  ::waitpid(p, &st, 0);
  return long(p);
}
std::string temp_name(const std::string& target, long pid, int n) {
  return "." + target + std::string(io::kTempMarker) + std::to_string(pid) + "." + std::to_string(n);
}

TEST(AtomicFile, CommitReplacesTheTargetAndLeavesNoTemporary) {
  test::TempDir d("crash_commit");
  const fs::path p = d / "a.bin";
  put_file(p, "old contents");
  {
    io::AtomicFile f(p);
    long pid = 0;
    EXPECT_TRUE(io::parse_temp_name(f.temp_path().filename().string(), &pid)) << f.temp_path();
    EXPECT_EQ(pid, long(::getpid()));
    EXPECT_EQ(f.temp_path().parent_path(), p.parent_path());  // same directory: rename, not copy
    f.put("new ");
    EXPECT_EQ(slurp(p), "old contents");  // the target is untouched until commit
    f.put("contents!");
    f.commit();
    expect_error([&] { f.put("x"); }, {"a.bin", "after commit"});
  }
  EXPECT_EQ(slurp(p), "new contents!");
  EXPECT_EQ(names_in(d.path()), (std::set<std::string>{"a.bin"}));
}

TEST(AtomicFile, WithoutCommitTheTargetKeepsItsOldBytesAndTheTemporaryGoes) {
  test::TempDir d("crash_abort");
  const fs::path p = d / "a.bin";
  put_file(p, "old");
  try {
    io::AtomicFile f(p);
    f.put("half of a new fi");
    throw std::runtime_error("writer failed");
  } catch (const std::runtime_error&) {
  }
  EXPECT_EQ(slurp(p), "old");
  EXPECT_EQ(names_in(d.path()), (std::set<std::string>{"a.bin"}));
}

TEST(AtomicFile, FailuresAreRediErrorsNamingTheFile) {
  test::TempDir d("crash_errors");
  // the directory does not exist
  expect_error([&] { io::write_file_atomic(d / "no_dir" / "x.json", "{}"); }, {"x.json", "temporary file"});
  // the target is a directory: the rename fails, the temporary is removed
  fs::create_directories(d / "sub" / "inner");
  expect_error([&] { io::write_file_atomic(d / "sub", "{}"); }, {"sub", "rename"});
  EXPECT_EQ(names_in(d.path()), (std::set<std::string>{"sub", "sub/inner"}));
  // no file name
  expect_error([&] { io::AtomicFile f(fs::path("")); }, {"not a file name"});
  // an output directory that is a file
  put_file(d / "plain", "x");
  expect_error([&] { io::create_directories(d / "plain"); }, {"plain"});
  expect_error([&] { io::create_directories(d / "plain" / "below"); }, {"below"});
}

TEST(AtomicFile, AFailedWriteIsARediErrorAndLeavesTheOldFile) {
  // A file-size limit makes write(2) fail with EFBIG (SIGXFSZ ignored), like a full disk: the
  // failure surfaces in put() or commit(), names the file, and the old target survives.
  test::TempDir d("crash_efbig");
  const fs::path p = d / "big.bin";
  put_file(p, "old");
  const std::string mb(1 << 20, 'x');
  put_file(d / "src.bin", mb);
  struct rlimit old_lim {};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old_lim), 0);
  auto old_sig = std::signal(SIGXFSZ, SIG_IGN);
  struct rlimit lim = old_lim;
  lim.rlim_cur = 4096;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &lim), 0);
  expect_error([&] { io::write_file_atomic(p, mb); }, {"big.bin", "File too large"});
  expect_error([&] { io::copy_file_atomic(d / "src.bin", d / "copy.bin"); }, {"copy.bin", "File too large"});
  ::setrlimit(RLIMIT_FSIZE, &old_lim);
  std::signal(SIGXFSZ, old_sig);
  EXPECT_EQ(slurp(p), "old");
  EXPECT_EQ(names_in(d.path()), (std::set<std::string>{"big.bin", "src.bin"}));
}

TEST(AtomicFile, WriteFileAndCopyFileAreCompleteAndAtomic) {
  test::TempDir d("crash_copy");
  std::string big(5 * (1 << 20) + 123, '\0');  // more than the 4 MiB copy chunk
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = char((i * 2654435761u) >> 13);
  io::write_file_atomic(d / "src.bin", big);
  EXPECT_EQ(slurp(d / "src.bin"), big);
  put_file(d / "dst.bin", "an older copy");
  io::copy_file_atomic(d / "src.bin", d / "dst.bin");
  EXPECT_EQ(slurp(d / "dst.bin"), big);
  io::copy_file_atomic(d / "src.bin", d / "new.bin");
  EXPECT_EQ(slurp(d / "new.bin"), big);
  // a missing source names it and leaves the destination alone
  expect_error([&] { io::copy_file_atomic(d / "missing.bin", d / "dst.bin"); }, {"missing.bin", "cannot open"});
  EXPECT_EQ(slurp(d / "dst.bin"), big);
  // a source that is a directory: a read error naming it, no temporary left
  fs::create_directories(d / "adir");
  expect_error([&] { io::copy_file_atomic(d / "adir", d / "dst.bin"); }, {"adir"});
  EXPECT_EQ(slurp(d / "dst.bin"), big);
  EXPECT_EQ(names_in(d.path()), (std::set<std::string>{"adir", "dst.bin", "new.bin", "src.bin"}));
}

TEST(AtomicFile, TempNamesAreRecognisedExactly) {
  long pid = 0;
  EXPECT_TRUE(io::parse_temp_name(".checkpoint.safetensors.redi-tmp.1234.7", &pid));
  EXPECT_EQ(pid, 1234);
  EXPECT_TRUE(io::parse_temp_name(".a.redi-tmp.1.0"));
  EXPECT_FALSE(io::parse_temp_name("checkpoint.safetensors.redi-tmp.1234.7"));  // no leading dot
  EXPECT_FALSE(io::parse_temp_name(".redi-tmp.1.2"));                           // no target name
  EXPECT_FALSE(io::parse_temp_name(".a.redi-tmp.12"));                          // no counter
  EXPECT_FALSE(io::parse_temp_name(".a.redi-tmp.x.2"));
  EXPECT_FALSE(io::parse_temp_name(".a.redi-tmp.1.2.png"));
  EXPECT_FALSE(io::parse_temp_name(".a.redi-tmp.1."));
  EXPECT_FALSE(io::parse_temp_name(".a.tmp1_2"));
  EXPECT_FALSE(io::parse_temp_name("metrics.jsonl"));
}

TEST(AtomicFile, StaleTemporariesOfDeadWritersAreRemovedOthersKept) {
  test::TempDir d("crash_stale");
  const long dead = dead_pid(), alive = long(::getpid());
  fs::create_directories(d / "samples" / "deep" / "deeper");
  put_file(d / temp_name("checkpoint.safetensors", dead, 0), "partial");
  put_file(d / "samples" / temp_name("step_0000005.png", dead, 3), "partial");
  put_file(d / "samples" / "deep" / "deeper" / temp_name("x", dead, 1), "below max_depth");
  put_file(d / temp_name("metrics.jsonl", alive, 2), "a live writer's");
  put_file(d / ".notes.redi-tmp.x.y", "not a temporary name");
  put_file(d / "checkpoint.safetensors", "kept");
  const auto removed = io::remove_stale_temp_files(d.path(), 1);
  std::set<std::string> got;
  for (const auto& p : removed) got.insert(fs::relative(p, d.path()).string());
  EXPECT_EQ(got, (std::set<std::string>{temp_name("checkpoint.safetensors", dead, 0),
                                        "samples/" + temp_name("step_0000005.png", dead, 3)}));
  EXPECT_EQ(names_in(d.path()),
            (std::set<std::string>{"checkpoint.safetensors", temp_name("metrics.jsonl", alive, 2), ".notes.redi-tmp.x.y",
                                   "samples", "samples/deep", "samples/deep/deeper",
                                   "samples/deep/deeper/" + temp_name("x", dead, 1)}));
  EXPECT_EQ(io::remove_stale_temp_files(d.path(), 3).size(), 1u);  // now the deep one
  EXPECT_TRUE(io::remove_stale_temp_files(d / "no_such_dir").empty());
}

std::string lines(std::initializer_list<const char*> ls) {
  std::string s;
  for (const char* l : ls) s += std::string(l) + "\n";
  return s;
}

TEST(JsonlLog, OpenResumedCutsLinesAfterTheStepAndATornLastLine) {
  test::TempDir d("crash_jsonl");
  const fs::path p = d / "metrics.jsonl";
  const std::string head = lines({R"({"step":1,"loss":0.5})", R"({"step":2,"loss":0.4})", R"({"note":"kept"})",
                                  R"({"step":3,"loss":0.3})", R"({"step":3,"eval":true,"fd":9})"});
  put_file(p, head + lines({R"({"step":4,"loss":0.2})", R"({"step":5,"loss":0.1})"}) + R"({"step":6,"lo)");
  {
    train::JsonlLog log;
    EXPECT_GT(log.open_resumed(p, 3), 0u);
    train::JsonObject o;
    o.add("step", std::int64_t(4)).add("loss", 0.25);
    log.write(o);
    log.sync();
    log.close();
  }
  EXPECT_EQ(slurp(p), head + lines({R"({"step":4,"loss":0.25})"}));
  // nothing to cut: the file is kept as it is
  EXPECT_EQ(train::JsonlLog::truncate_after_step(p, 10), 0u);
  EXPECT_EQ(slurp(p), head + lines({R"({"step":4,"loss":0.25})"}));
  // only a torn last line
  put_file(p, head + R"({"st)");
  EXPECT_EQ(train::JsonlLog::truncate_after_step(p, 10), 4u);
  EXPECT_EQ(slurp(p), head);
  // "step":30 is not step 3; a missing file is created empty
  put_file(p, lines({R"({"step":3})", R"({"step":30})"}));
  EXPECT_EQ(train::JsonlLog::truncate_after_step(p, 3), 12u);
  EXPECT_EQ(slurp(p), lines({R"({"step":3})"}));
  {
    train::JsonlLog log;
    EXPECT_EQ(log.open_resumed(d / "fresh.jsonl", 7), 0u);
  }
  EXPECT_TRUE(fs::exists(d / "fresh.jsonl"));
  expect_error([&] { train::JsonlLog log(d / "no_dir" / "m.jsonl", true); }, {"m.jsonl", "metrics log"});
}

// ---- the trainer

using Model = ReDi<SiT, Merged, FlowMatching>;

data::TrainSet toy_set() {
  data::TrainSet t;
  const int n = 16;
  t.n = n; t.cx = 1; t.h = 8; t.w = 8; t.r = 2; t.zh = 4; t.zw = 4; t.num_classes = 4; t.name = "toy";
  t.x.resize(std::size_t(n) * 64);
  t.z.resize(std::size_t(n) * t.r * 16);
  philox::fill_normal(t.x.data(), t.x.size(), 5, 1);
  philox::fill_normal(t.z.data(), t.z.size(), 5, 2);
  for (int i = 0; i < n; ++i) t.labels.push_back(i % 4);
  return t;
}
Model::Options options() {
  Model::Options o;
  o.model.input_size = 8; o.model.patch = 2; o.model.image_channels = 1; o.model.feature_channels = 2;
  o.model.depth = 1; o.model.width = 32; o.model.heads = 2; o.model.num_classes = 4;
  o.train.seed = 7;
  return o;
}
train::TrainerConfig config(const fs::path& dir, int steps) {
  train::TrainerConfig tc;
  tc.steps = steps; tc.batch = 4; tc.log_every = 1; tc.ckpt_every = 1; tc.keep_checkpoints = true;
  tc.sample_every = -1; tc.out_dir = dir.string();
  return tc;
}
std::vector<std::int64_t> logged_steps(const fs::path& p) {
  std::vector<std::int64_t> v;
  std::ifstream f(p);
  std::string l;
  while (std::getline(f, l)) v.push_back(std::stoll(l.substr(8)));  // {"step":N,...
  return v;
}

TEST(TrainerCrashSafety, AResumeAfterAKillLeavesNoTemporariesAndNoDuplicateSteps) {
  test::TempDir d("crash_trainer");
  const auto data = toy_set();
  {
    Model m(options());
    train::Trainer<Model> t(m, data, config(d.path(), 4));
    t.run();
  }
  // what a run killed during step 6 (after its checkpoint of step 4... and the log of 5, 6)
  // leaves: log lines past the checkpoint, a torn line, temporaries of a dead writer
  const fs::path log = d / "metrics.jsonl";
  {
    std::ofstream f(log, std::ios::app);
    f << R"({"step":5,"loss":1})" << "\n" << R"({"step":6,"loss":1})" << "\n" << R"({"step":7,"lo)";
  }
  const long dead = dead_pid();
  put_file(d / temp_name("checkpoint.safetensors", dead, 9), "half a checkpoint");
  put_file(d / temp_name("checkpoint_0000005.safetensors", dead, 10), "half a copy");
  fs::create_directories(d / "samples");
  put_file(d / "samples" / temp_name("step_0000005.png", dead, 11), "half a png");
  {
    Model m(options());
    train::Trainer<Model> t(m, data, config(d.path(), 7));
    const auto st = t.resume(d / "checkpoint.safetensors");
    EXPECT_EQ(st.step, 4);
    t.run();
  }
  EXPECT_EQ(logged_steps(log), (std::vector<std::int64_t>{1, 2, 3, 4, 5, 6, 7}));
  const std::set<std::string> want = {"checkpoint.safetensors", "metrics.jsonl", "samples",
                                      "checkpoint_0000001.safetensors", "checkpoint_0000002.safetensors",
                                      "checkpoint_0000003.safetensors", "checkpoint_0000004.safetensors",
                                      "checkpoint_0000005.safetensors", "checkpoint_0000006.safetensors",
                                      "checkpoint_0000007.safetensors"};
  EXPECT_EQ(names_in(d.path()), want);
  // the kept copies are complete checkpoints of their steps; the last one equals the main file
  for (int s = 1; s <= 7; ++s) {
    char name[64];
    std::snprintf(name, sizeof name, "checkpoint_%07d.safetensors", s);
    EXPECT_EQ(train::read_checkpoint_state(d / name).step, s) << name;
  }
  EXPECT_EQ(slurp(d / "checkpoint_0000007.safetensors"), slurp(d / "checkpoint.safetensors"));
}

TEST(TrainerCrashSafety, AnOutputDirectoryThatIsAFileIsARediError) {
  test::TempDir d("crash_trainer_err");
  put_file(d / "out", "a file, not a directory");
  const auto data = toy_set();
  Model m(options());
  train::Trainer<Model> t(m, data, config(d / "out", 1));
  expect_error([&] { t.run(); }, {"out", "directory"});
  // a checkpoint path in a directory that cannot be created
  expect_error([&] { t.save(d / "out" / "sub" / "c.safetensors"); }, {"sub"});
}

}  // namespace
