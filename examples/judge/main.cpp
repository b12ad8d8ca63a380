// redi_judge — redi's independent judge of generated Fashion-MNIST samples (docs/evaluation.md):
//   redi_judge train     trains the judge CNN on the 55,000-image training split (the command in
//                        data/README.md reproduces data/judge/fashion_mnist_cnn.safetensors)
//   redi_judge accuracy  its top-1 accuracy on the validation or test split
//   redi_judge eval      judges an ADM-format sample npz against a reference set
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <numeric>
#include <set>
#include <string>
#include <vector>

#include "redi/train/cli.hpp"
#include "redi/core/paths.hpp"
#include "redi/data/idx.hpp"
#include "redi/data/splits.hpp"
#include "redi/eval/judge.hpp"
#include "redi/io/atomic_file.hpp"
#include "redi/io/npz.hpp"
#include "redi/train/judge_training.hpp"

namespace {

const char* kUsage = R"(usage: redi_judge <command> [options]
Commands:
  train [options]           train the judge CNN on Fashion-MNIST's first 55,000 training images
      --out FILE            weights (default judge.safetensors)
      --epochs N (6)  --batch N (128)  --lr X (1e-2)  --weight-decay X (0.05)  --warmup N (200)
      --shift N (2)         random translation in pixels (0 = off)   --no-flip  (no horizontal flips)
      --layers SPEC         conv widths and M (max pool) (default 32-M-64-M-128-M-128)
      --input-mean X --input-std X   the fixed input normalisation (default -0.56, 0.66)
      --seed N              (default: the judge's seed, see docs/evaluation.md)
      --train-images N --val-images N   probes: only the first N images of the split
      --test                also report test accuracy at the end (the final number; not for tuning)
  accuracy [options]        top-1 accuracy of the judge on a split
      --split val|test      (default val)
      --weights FILE        (default: redi's data/judge/fashion_mnist_cnn.safetensors)
  eval SAMPLES.npz [options]  judge samples (ADM npz: arr_0 uint8 [N,32,32,1], optional arr_1 labels)
      --ref val|test|REF.npz  reference images (default test; REF.npz: arr_0 as for samples)
      --floor val|test|none   real held-out images scored like the samples, N of them (default:
                              val for --ref test, test for --ref val, none for a file)
      --json FILE           also write the report as JSON
      --weights FILE        (default as for accuracy)
      --k N                 neighbourhood size of precision/recall (default 3)
      --no-labels           ignore arr_1 (unconditional samples saved with dummy labels)
Common: --data-dir DIR (Fashion-MNIST; default $REDI_FASHION_MNIST_DIR or Debian's location)
        --threads N   --help
Exit status: 0 done, 1 error (message names the file), 2 usage error.
)";

using redi::cli::Args;
using redi::cli::UsageError;
namespace fs = std::filesystem;

redi::data::ImageDataset load_split(const std::string& dir, bool test) {
  using namespace redi::data;
  if (test) return pad_to(load_fashion_mnist(Split::Test, dir), 32);
  return pad_to(load_fashion_mnist(Split::Train, dir), 32);
}

redi::data::ImageDataset load_val(const std::string& dir) {
  return redi::data::holdout(load_split(dir, false), redi::data::kFashionMnistValidation).val;
}

fs::path weights_path(const Args& a) {
  if (a.has("weights")) return a.str("weights");
  return redi::data_file(redi::eval::Judge::kDefaultFile);
}

int cmd_train(const Args& a) {
  redi::train::JudgeTrainConfig c;
  c.epochs = int(a.integer("epochs", c.epochs, 1, 10'000));
  c.batch = int(a.integer("batch", c.batch, 1, 1 << 16));
  c.lr = a.real("lr", c.lr, 1e-8, 1.0);
  c.weight_decay = a.real("weight-decay", c.weight_decay, 0.0, 10.0);
  c.warmup_steps = int(a.integer("warmup", c.warmup_steps, 0, 1'000'000'000));
  c.max_shift = int(a.integer("shift", c.max_shift, 0, 16));
  c.flip = !a.flag("no-flip");
  c.seed = std::uint64_t(a.integer("seed", std::int64_t(c.seed), 0, INT64_MAX));
  c.model.input_mean = a.real("input-mean", c.model.input_mean, -1e3, 1e3);
  c.model.input_std = a.real("input-std", c.model.input_std, 1e-6, 1e3);
  if (a.has("layers")) {
    c.model.layers = a.str("layers");
    try {
      c.model.validate();
    } catch (const redi::Error& e) {
      throw UsageError("--layers: " + std::string(e.what()));
    }
  }
  const fs::path out = a.str("out", "judge.safetensors");
  redi::cli::apply_threads_flag(a);
  const std::string dir = a.str("data-dir");
  auto [train, val] = redi::data::holdout(load_split(dir, false), redi::data::kFashionMnistValidation);
  // Probes: the first N images of either split.
  auto first = [](const redi::data::ImageDataset& ds, std::int64_t n) {
    std::vector<std::int64_t> idx(static_cast<std::size_t>(std::min<std::int64_t>(n, ds.n)));
    std::iota(idx.begin(), idx.end(), std::int64_t(0));
    return redi::data::subset(ds, idx);
  };
  if (a.has("train-images")) train = first(train, a.integer("train-images", train.n, 1, train.n));
  if (a.has("val-images")) val = first(val, a.integer("val-images", val.n, 1, val.n));
  redi::train::JudgeTrainStats st;
  auto net = redi::train::train_judge(train, c, &val, &std::cout, &st);
  const double val_acc = st.epochs.back().val_accuracy;
  std::map<std::string, std::string> meta = {
      {"redi.judge.train", "fashion-mnist train split (first 55000 of 60000, padded to 32)"},
      {"redi.judge.epochs", std::to_string(c.epochs)},
      {"redi.judge.batch", std::to_string(c.batch)},
      {"redi.judge.lr", std::to_string(c.lr)},
      {"redi.judge.weight_decay", std::to_string(c.weight_decay)},
      {"redi.judge.warmup", std::to_string(c.warmup_steps)},
      {"redi.judge.shift", std::to_string(c.max_shift)},
      {"redi.judge.flip", c.flip ? "1" : "0"},
      {"redi.judge.seed", std::to_string(c.seed)},
      {"redi.judge.val_accuracy", std::to_string(val_acc)}};
  std::cout << "[judge] trained in " << st.seconds << " s; validation accuracy " << val_acc << "\n";
  if (a.flag("test")) {
    const auto test = load_split(dir, true);
    const double acc = redi::train::classifier_accuracy(net, test);
    std::cout << "[judge] test accuracy " << acc << " (" << test.n << " images)\n";
    meta["redi.judge.test_accuracy"] = std::to_string(acc);
  }
  net.save(out, meta);
  std::cout << "[judge] wrote " << out.string() << "\n";
  return 0;
}

int cmd_accuracy(const Args& a) {
  const std::string split = a.choice("split", "val", {"val", "test"});
  const fs::path w = weights_path(a);
  redi::cli::apply_threads_flag(a);
  auto net = redi::ConvNetClassifier<float>::load(w);
  const std::string dir = a.str("data-dir");
  const redi::data::ImageDataset ds = split == "test" ? load_split(dir, true) : load_val(dir);
  const double acc = redi::train::classifier_accuracy(net, ds);
  std::cout << w.string() << ": " << split << " accuracy " << acc << " (" << ds.n << " images)\n";
  return 0;
}


int cmd_eval(const Args& a, const std::string& samples_path) {
  const std::string ref_arg = a.str("ref", "test");
  const bool ref_file = ref_arg != "val" && ref_arg != "test";
  if (ref_file && fs::path(ref_arg).extension() != ".npz")
    throw UsageError("--ref: '" + ref_arg + "' is not val, test or a .npz file");
  const std::string floor_arg =
      a.choice("floor", ref_file ? "none" : (ref_arg == "test" ? "val" : "test"), {"val", "test", "none"});
  if (!ref_file && floor_arg == ref_arg)
    throw UsageError("--floor: the floor images must not be the reference images (--ref " + ref_arg + ")");
  const int k = int(a.integer("k", 3, 1, 100));
  const fs::path w = weights_path(a);
  redi::cli::apply_threads_flag(a);
  const std::string dir = a.str("data-dir");

  const auto s = redi::io::load_sample_npz(samples_path);
  auto judge = redi::eval::Judge::load(w);
  REDI_CHECK(s.h == judge.image_size() && s.w == judge.image_size() && s.c == judge.channels(), samples_path,
             ": ", s.h, "x", s.w, "x", s.c, " images; the judge takes ", judge.image_size(), "x", judge.image_size(),
             "x", judge.channels());
  redi::eval::ReferenceSet ref;
  if (ref_file) {
    const auto r = redi::io::load_sample_npz(ref_arg, false);
    REDI_CHECK(r.h == judge.image_size() && r.w == judge.image_size() && r.c == judge.channels(), ref_arg, ": ",
               r.h, "x", r.w, "x", r.c, " images; the judge takes ", judge.image_size(), "x", judge.image_size(),
               "x", judge.channels());
    ref = judge.reference(r.pixels.data(), r.n, ref_arg, k);
  } else {
    ref = judge.reference(ref_arg == "test" ? load_split(dir, true) : load_val(dir), k);
  }
  const bool labels = !s.labels.empty() && !a.flag("no-labels");
  auto rep = judge.report(s.pixels.data(), s.n, labels ? s.labels.data() : nullptr, ref);
  if (floor_arg != "none") {
    const auto held = floor_arg == "test" ? load_split(dir, true) : load_val(dir);
    rep.set_floor(judge.floor(held, s.n, ref));
  }
  std::cout << "samples: " << samples_path << (labels ? " (with labels)" : " (no labels)") << "\n"
            << rep.summary();
  if (a.has("json")) {
    const fs::path out = a.str("json");
    redi::io::write_file_atomic(out, rep.to_json() + "\n");
    std::cout << "wrote " << out.string() << "\n";
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return redi::cli::run_main("redi_judge", [&] {
    if (argc < 2) throw UsageError("a command is needed\n" + std::string(kUsage));
    const std::string cmd = argv[1];
    if (cmd == "--help" || cmd == "-h" || cmd == "help") {
      std::cout << kUsage;
      return 0;
    }
    // Everything after the command (and, for eval, its one positional argument) is flags.
    std::vector<char*> rest = {argv[0]};
    std::string positional;
    int first = 2;
    if (cmd == "eval") {
      if (argc < 3 || std::strncmp(argv[2], "--", 2) == 0)
        throw UsageError("eval needs SAMPLES.npz (redi_judge eval SAMPLES.npz [options])");
      positional = argv[2];
      first = 3;
    }
    for (int i = first; i < argc; ++i) rest.push_back(argv[i]);
    const std::set<std::string> common = {"data-dir", "threads"};
    auto with = [&](std::set<std::string> s) {
      s.insert(common.begin(), common.end());
      return s;
    };
    if (cmd == "train") {
      const Args a(int(rest.size()), rest.data(),
                   with({"out", "epochs", "batch", "lr", "weight-decay", "warmup", "shift", "layers", "seed", "input-mean",
                         "input-std", "train-images", "val-images"}),
                   {"help", "no-flip", "test"});
      if (a.flag("help")) return std::cout << kUsage, 0;
      return cmd_train(a);
    }
    if (cmd == "accuracy") {
      const Args a(int(rest.size()), rest.data(), with({"split", "weights"}), {"help"});
      if (a.flag("help")) return std::cout << kUsage, 0;
      return cmd_accuracy(a);
    }
    if (cmd == "eval") {
      const Args a(int(rest.size()), rest.data(), with({"ref", "floor", "json", "weights", "k"}),
                   {"help", "no-labels"});
      if (a.flag("help")) return std::cout << kUsage, 0;
      return cmd_eval(a, positional);
    }
    throw UsageError("unknown command '" + cmd + "' (train, accuracy, eval)");
  });
}
