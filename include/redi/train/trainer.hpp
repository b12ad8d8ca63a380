// redi/train/trainer.hpp — the training loop of a redi::ReDi model over an in-memory data set:
// resumable shuffled batches (data::BatchSampler), the joint loss with label / representation
// dropout (JointLoss options of the model), AdamW + warm-up + clipping + EMA (the model's
// StepConfig), a console progress line, JSONL metrics, PNG sample grids and checkpoints that
// resume bit-identically. docs/training.md has the guarantees and the file layout.
// Crash safety (docs/crash_safety.md): every file is replaced atomically (io/atomic_file.hpp),
// kept checkpoint copies included; run() first removes the temporaries a killed run left in
// out_dir, and a resumed run cuts metrics.jsonl back to its step, so after any number of
// kill -9 + resume the checkpoint loads and every logged step appears once.
//
//   redi::data::TrainSet data = ...;                      // x [N,Cx,H,W], z [N,r,h,w], labels
//   redi::ReDi<redi::SiT, redi::Merged, redi::FlowMatching> model(opts);
//   redi::train::Trainer trainer(model, data, {.steps = 2000, .batch = 64, .out_dir = "runs/x"}, &std::cout);
//   trainer.run();                                        // or trainer.resume(path); trainer.run();
#pragma once
#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <iomanip>
#include <ostream>
#include <span>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "redi/data/dataset.hpp"
#include "redi/data/sampler.hpp"
#include "redi/data/train_set.hpp"
#include "redi/io/atomic_file.hpp"
#include "redi/io/image_write.hpp"
#include "redi/nn/recompute.hpp"
#include "redi/redi_model.hpp"
#include "redi/train/checkpoint.hpp"
#include "redi/train/data_parallel.hpp"
#include "redi/train/metrics_log.hpp"

namespace redi::train {

struct TrainerConfig {
  std::int64_t steps = 1000;        ///< total optimiser steps (a resumed run continues up to it)
  int batch = 64;
  std::uint64_t data_seed = 0;      ///< shuffling and flips
  bool hflip = false;               ///< random horizontal flips (x and z together)
  int log_every = 50;               ///< console line + JSONL record every N steps (0: never)
  std::int64_t sample_every = 0;    ///< PNG grid every N steps (0: only at the end; -1: never)
  std::int64_t ckpt_every = 0;      ///< checkpoint every N steps (0: only at the end; -1: never)
  bool keep_checkpoints = false;    ///< also keep checkpoint_<step>.safetensors copies
  std::string out_dir;              ///< where files go (empty: no files at all)
  double max_seconds = 0;           ///< wall-clock guard for run(): stop before a step would pass it (0: off)
  int grid_samples = 64;            ///< images in a sample grid (labels cycle over the classes)
  int grid_cols = 8;
  std::uint64_t grid_seed = 1234;   ///< the same noise at every grid, so grids are comparable
  std::int64_t eval_every = 0;      ///< call the evaluation function every N steps and at the end (0: never)
  bool allow_config_change = false; ///< resume even if batch/seeds/optimiser/loss settings differ
  /// Activation recomputation of the model's training passes (nn/recompute.hpp): memory only,
  /// the same bits; recorded in the checkpoint's "trainer" settings, free to change on resume.
  Recompute recompute = Recompute::None;
  /// Data-parallel ranks (nullptr: one process). `batch` stays the GLOBAL batch; each rank trains
  /// on its batch / ranks slice, only rank 0 logs and writes files (docs/distributed.md).
  dist::Communicator* comm = nullptr;
};

/// One optimisation step's numbers.
struct StepRecord {
  std::int64_t step = 0;  ///< 1-based: the step that just finished
  double loss = 0, mse_x = 0, mse_z = 0, vb = 0, grad_norm = 0, lr = 0;
  int rep_dropped = 0, labels_dropped = 0;
};

/// Trains `model` on `data` (both held by reference: they must outlive the trainer).
template <class Model>
class Trainer {
public:
  using T = typename Model::value_type;
  /// Draws req.B samples [B, Cin, H, W] with `m` (the sample grids use it).
  using SampleFn = std::function<void(Model& m, T* out, const SampleRequest& req)>;
  /// Evaluates the model during training (e.g. samples and a Frechet distance) and adds its
  /// figures to `record`, which already holds {"step": N}; the record becomes one line of
  /// metrics.jsonl with an "eval" marker, so curves can be drawn from the log alone.
  using EvalFn = std::function<void(Model& m, std::int64_t step, JsonObject& record)>;

  Trainer(Model& model, const data::TrainSet& data, TrainerConfig cfg, std::ostream* console = nullptr)
      : m_(model), data_(data), cfg_(std::move(cfg)), console_(console),
        batches_((data.validate(), data.n), cfg_.batch, cfg_.data_seed), dp_(cfg_.comm) {
    const ModelConfig& mc = m_.net().config();
    REDI_CHECK(cfg_.batch > 0 && cfg_.steps >= 0, "Trainer: batch ", cfg_.batch, ", steps ", cfg_.steps);
    REDI_CHECK(data_.cx == mc.image_channels && data_.r == mc.feature_channels && data_.h == mc.input_size &&
                   data_.w == mc.input_size,
               "Trainer: data ", data_.name, " is [", data_.cx, " + ", data_.r, " channels, ", data_.h, "x", data_.w,
               "], the model expects [", mc.image_channels, " + ", mc.feature_channels, ", ", mc.input_size, "x",
               mc.input_size, "]");
    REDI_CHECK(data_.num_classes <= mc.num_classes, "Trainer: data has ", data_.num_classes,
               " classes, the model's label table ", mc.num_classes);
    const std::size_t B = std::size_t(cfg_.batch);
    xf_.resize(B * data_.cx * data_.h * data_.w);
    zf_.resize(B * data_.r * mc.feature_grid() * mc.feature_grid());
    y_.resize(B);
    if constexpr (!std::is_same_v<T, float>) { xt_.resize(xf_.size()); zt_.resize(zf_.size()); }
    sample_fn_ = default_sample_fn();
    m_.net().set_recompute(cfg_.recompute);
    if (dp_.distributed()) {  // same settings everywhere, rank 0's initial state, one console
      (void)dp_.slice(cfg_.batch);
      dist::check_same_on_all_ranks(dp_.comm(), config_json(), "the run's configuration");
      dp_.broadcast_state(m_);
      if (!dp_.root()) console_ = nullptr;
    }
  }

  Model& model() { return m_; }
  const TrainerConfig& config() const { return cfg_; }
  const data::BatchSampler& data_sampler() const { return batches_; }
  /// Every step this trainer ran (a resumed trainer: only the steps after the resume).
  const std::vector<StepRecord>& history() const { return history_; }
  bool stopped_early() const { return stopped_early_; }
  void set_sample_fn(SampleFn f) { sample_fn_ = std::move(f); }
  void set_eval_fn(EvalFn f) { eval_fn_ = std::move(f); }

  /// Runs the evaluation function now (cfg.eval_every drives it inside run()) and logs its record.
  void evaluate() {
    if (!eval_fn_ || !dp_.root()) return;
    JsonObject o;
    o.add("step", m_.step()).add("eval", true);
    eval_fn_(m_, m_.step(), o);
    log_.write(o);
    last_eval_step_ = m_.step();
    say("evaluation at step ", m_.step(), ": ", o.str());
  }

  /// One optimisation step on the next batch. Throws redi::Error naming the step when the loss
  /// or the gradient is not finite; a non-finite loss is caught BEFORE the update, so the model
  /// keeps the last good weights.
  StepRecord step() {
    const auto draw = batches_.next();
    const dist::Range part = dp_.slice(std::int64_t(draw.indices.size()));  // this rank's slice
    const int B = int(part.size());
    const int fg = m_.net().config().feature_grid();
    data_.gather(std::span<const std::int64_t>(draw.indices).subspan(std::size_t(part.begin), std::size_t(B)),
                 data::Augment{cfg_.hflip, cfg_.data_seed, draw.epoch}, xf_.data(), zf_.data(), y_.data(), fg, fg);
    const T* x = xf_ptr();
    const T* z = data_.r > 0 ? zf_ptr() : nullptr;
    const std::int64_t s = m_.step() + 1;
    typename Model::StepStats st;
    st.loss = dp_.reduce_stats(m_.backprop(m_.batch(x, z, y_.data(), B, std::uint64_t(part.begin))), B);
    if (!std::isfinite(st.loss.loss))
      REDI_FAIL("training stopped at step ", s, ": the loss is ", st.loss.loss, " (mse_x ", st.loss.mse_x, ", mse_z ",
                st.loss.mse_z, "); the model keeps the weights of step ", s - 1,
                ". Check the data for NaN/Inf and lower the learning rate (", m_.options().train.adamw.lr, ")");
    dp_.sync_gradients(m_);  // averaged over the ranks before clipping
    st = m_.finish_step(st);
    if (!std::isfinite(st.grad_norm))
      REDI_FAIL("training stopped at step ", s, ": the gradient norm is ", st.grad_norm, " (loss ", st.loss.loss,
                "); the weights are no longer finite — resume from the last checkpoint with a lower learning rate "
                "or gradient clipping");
    StepRecord r{s, st.loss.loss, st.loss.mse_x, st.loss.mse_z, st.loss.vb, st.grad_norm, st.lr,
                 st.loss.rep_dropped, st.loss.labels_dropped};
    history_.push_back(r);
    return r;
  }

  /// Trains up to cfg.steps (from wherever the model stands), logging, sampling and
  /// checkpointing on the configured intervals, and writes a final checkpoint and grid.
  void run() {
    namespace fs = std::filesystem;
    using clock = std::chrono::steady_clock;
    if (!cfg_.out_dir.empty() && dp_.root()) {
      io::create_directories(cfg_.out_dir);
      remove_stale_temp_files(cfg_.out_dir);
      if (!log_.is_open()) {
        const fs::path log = fs::path(cfg_.out_dir) / "metrics.jsonl";
        if (m_.step() > 0) {  // a resumed run: drop what the interrupted one logged after its checkpoint
          if (const auto cut = log_.open_resumed(log, m_.step()))
            say("cut ", cut, " bytes logged after step ", m_.step(), " from ", log.string());
        } else {
          log_.open(log, /*append=*/false);
        }
      }
    }
    const auto t0 = clock::now();
    const std::int64_t first = m_.step();
    double train_s = 0, win_s = 0;
    Window win;
    stopped_early_ = false;
    while (m_.step() < cfg_.steps) {
      const double elapsed = std::chrono::duration<double>(clock::now() - t0).count();
      const std::int64_t done = m_.step() - first;
      if (cfg_.max_seconds > 0 && dp_.agree(done > 0 && elapsed + elapsed / double(done) > cfg_.max_seconds)) {
        stopped_early_ = true;
        say("time budget of ", format_duration(cfg_.max_seconds), " reached after ", done, " steps (step ", m_.step(),
            " of ", cfg_.steps, "); stopping");
        break;
      }
      const auto s0 = clock::now();
      const StepRecord r = step();
      const double dt = std::chrono::duration<double>(clock::now() - s0).count();
      train_s += dt;
      win_s += dt;
      win.add(r, int(batches_.batch_size()));
      const std::int64_t s = r.step;
      if (cfg_.log_every > 0 && (s % cfg_.log_every == 0 || s == cfg_.steps)) {
        log_window(win, win_s, train_s / double(s - first) * double(cfg_.steps - s));
        win = Window{};
        win_s = 0;
      }
      if (cfg_.eval_every > 0 && s % cfg_.eval_every == 0) evaluate();
      if (cfg_.sample_every > 0 && s % cfg_.sample_every == 0 && s != cfg_.steps) write_grid();
      if (cfg_.ckpt_every > 0 && s % cfg_.ckpt_every == 0 && s != cfg_.steps) checkpoint();
    }
    if (win.n > 0 && cfg_.log_every > 0) log_window(win, win_s, 0.0);
    if (cfg_.eval_every > 0 && last_eval_step_ != m_.step()) evaluate();
    if (cfg_.sample_every >= 0) write_grid();
    if (cfg_.ckpt_every >= 0) checkpoint();
    dp_.comm().barrier();  // the files exist when run() returns on any rank
    const double total = std::chrono::duration<double>(clock::now() - t0).count();
    const std::int64_t n = m_.step() - first;
    say("trained ", n, " steps in ", format_duration(total), " (", fmt(n > 0 ? train_s / double(n) * 1e3 : 0.0, 1),
        " ms/step, ", fmt(n > 0 ? double(n) * double(batches_.batch_size()) / train_s : 0.0, 1), " img/s)");
  }

  /// The checkpoint file run() writes: <out_dir>/checkpoint.safetensors.
  std::filesystem::path checkpoint_path() const {
    return std::filesystem::path(cfg_.out_dir) / "checkpoint.safetensors";
  }
  /// Saves model, EMA, AdamW state, step, seed, data position and configuration.
  /// Rank 0 only writes (the state is the same on every rank).
  void save(const std::filesystem::path& path, std::map<std::string, std::string> extra = {}) {
    if (!dp_.root()) return;
    CheckpointState st;
    st.step = m_.step();
    st.seed = m_.options().train.seed;
    st.data_epoch = batches_.position().epoch;
    st.data_index = batches_.position().index;
    st.config_json = config_json();
    st.extra = std::move(extra);
    save_checkpoint(path, m_, st);
  }
  /// Restores model, EMA, AdamW state and step from `path` and moves the data sampler to the
  /// stored position: the following steps are bit-identical to an uninterrupted run. Settings
  /// that change the trajectory (batch, seeds, optimiser, loss, data set) must match unless
  /// cfg.allow_config_change.
  CheckpointState resume(const std::filesystem::path& path) {
    if (dp_.root())  // rank 0 owns the files (another node's rank cannot tell whose temporaries are dead)
      remove_stale_temp_files(path.parent_path().empty() ? std::filesystem::path(".") : path.parent_path(), 0);
    const CheckpointState peek = read_checkpoint_state(path);
    check_resume_config(path, peek.config_json);
    CheckpointState st = load_checkpoint(path, m_);
    batches_.seek({st.data_epoch, st.data_index});
    say("resumed from ", path.string(), " at step ", st.step, " (epoch ", st.data_epoch, ", index ", st.data_index, ")");
    return st;
  }

  /// The run's configuration as one JSON object: {"resume": {...settings that must match...},
  /// "model": {...}, "trainer": {...}}.
  std::string config_json() const {
    JsonObject o;
    o.add("type", model_type_name<Model>());
    o.add("resume", resume_settings());
    o.add("model", to_json(m_.net().config()));
    JsonObject t;
    t.add("steps", cfg_.steps).add("log_every", cfg_.log_every).add("sample_every", cfg_.sample_every);
    t.add("ckpt_every", cfg_.ckpt_every).add("out_dir", cfg_.out_dir).add("max_seconds", cfg_.max_seconds);
    t.add("recompute", recompute_name(cfg_.recompute));
    o.add("trainer", t);
    return o.str();
  }

  /// Samples a grid with the current sample function and writes it as PNG (x channels only,
  /// 1 or 3 of them) to <out_dir>/samples/step_<N>.png. Returns the path (empty: skipped).
  std::filesystem::path write_grid() {
    const ModelConfig& mc = m_.net().config();
    if (cfg_.out_dir.empty() || cfg_.grid_samples <= 0 || !sample_fn_ || !dp_.root()) return {};
    if (mc.image_channels != 1 && mc.image_channels != 3) return {};  // latents: no direct picture
    const int G = cfg_.grid_samples, H = mc.input_size;
    const std::size_t per = std::size_t(mc.input_elems());  // packed [x | z] per sample
    std::vector<T> out(std::size_t(G) * per);
    std::vector<int> labels(static_cast<std::size_t>(G));
    for (int i = 0; i < G; ++i) labels[std::size_t(i)] = i % std::max(1, data_.num_classes);
    SampleRequest req;
    req.B = G; req.labels = labels.data(); req.seed = cfg_.grid_seed;
    sample_fn_(m_, out.data(), req);
    std::vector<float> x(std::size_t(G) * mc.image_channels * H * H);
    for (int b = 0; b < G; ++b)
      for (std::size_t e = 0; e < std::size_t(mc.image_channels) * H * H; ++e)
        x[std::size_t(b) * mc.image_channels * H * H + e] = float(out[std::size_t(b) * per + e]);
    char name[48];
    std::snprintf(name, sizeof name, "step_%07lld.png", (long long)m_.step());
    const auto path = std::filesystem::path(cfg_.out_dir) / "samples" / name;
    io::create_directories(path.parent_path());
    io::write_image_grid(path, x.data(), G, mc.image_channels, H, H, cfg_.grid_cols);
    say("sample grid ", path.string());
    return path;
  }

private:
  struct Window {
    int n = 0;
    double loss = 0, mse_x = 0, mse_z = 0, vb = 0, grad = 0, lr = 0;
    std::int64_t images = 0, step = 0;
    void add(const StepRecord& r, int B) {
      ++n; loss += r.loss; mse_x += r.mse_x; mse_z += r.mse_z; vb += r.vb; grad += r.grad_norm;
      lr = r.lr; images += B; step = r.step;
    }
  };

  const T* xf_ptr() {
    if constexpr (std::is_same_v<T, float>) return xf_.data();
    else { std::copy(xf_.begin(), xf_.end(), xt_.begin()); return xt_.data(); }
  }
  const T* zf_ptr() {
    if constexpr (std::is_same_v<T, float>) return zf_.data();
    else { std::copy(zf_.begin(), zf_.end(), zt_.begin()); return zt_.data(); }
  }

  static std::string fmt(double v, int prec, bool sci = false) {
    std::ostringstream os;
    os << (sci ? std::scientific : std::fixed) << std::setprecision(prec) << v;
    return os.str();
  }
  template <class... A>
  void say(A&&... a) {
    if (!console_) return;
    std::ostream& os = *console_ << "[redi] ";
    (os << ... << a) << std::endl;  // the fold's init must be a plain name (clang)
  }

  /// Removes what killed writers left under `dir` (AtomicFile temporaries of dead processes).
  void remove_stale_temp_files(const std::filesystem::path& dir, int depth = 2) {
    for (const auto& p : io::remove_stale_temp_files(dir, depth)) say("removed stale temporary file ", p.string());
  }

  void log_window(const Window& w, double secs, double eta_s) {
    if (w.n == 0) return;
    const double k = 1.0 / w.n, ips = secs > 0 ? double(w.images) / secs : 0.0;
    const auto pos = batches_.position();
    if (console_) {
      const int width = int(std::to_string(cfg_.steps).size());
      *console_ << "[redi] step " << std::setw(width) << w.step << "/" << cfg_.steps << "  loss " << fmt(w.loss * k, 4)
                << "  mse_x " << fmt(w.mse_x * k, 4) << "  mse_z " << fmt(w.mse_z * k, 4);
      if (w.vb != 0) *console_ << "  vb " << fmt(w.vb * k, 4);
      *console_ << "  |g| " << fmt(w.grad * k, 3) << "  lr " << fmt(w.lr, 2, true) << "  " << fmt(ips, 1)
                << " img/s  ETA " << format_duration(eta_s) << std::endl;
    }
    JsonObject o;
    o.add("step", w.step).add("epoch", pos.epoch).add("loss", w.loss * k).add("mse_x", w.mse_x * k);
    o.add("mse_z", w.mse_z * k).add("vb", w.vb * k).add("grad_norm", w.grad * k).add("lr", w.lr);
    o.add("img_per_s", ips).add("steps_averaged", w.n);
    log_.write(o);
  }

  void checkpoint() {
    if (cfg_.out_dir.empty() || !dp_.root()) return;
    log_.sync();  // the log reaches the checkpoint's step on disk before the checkpoint does
    save(checkpoint_path());
    if (cfg_.keep_checkpoints) {
      char name[64];
      std::snprintf(name, sizeof name, "checkpoint_%07lld.safetensors", (long long)m_.step());
      io::copy_file_atomic(checkpoint_path(), std::filesystem::path(cfg_.out_dir) / name);
    }
    say("checkpoint ", checkpoint_path().string(), " (step ", m_.step(), ")");
  }

  JsonObject resume_settings() const {
    const auto& o = m_.options();
    const auto& l = o.loss;
    JsonObject r;
    r.add("data", data_.name).add("data_n", data_.n).add("batch", cfg_.batch).add("data_seed", cfg_.data_seed);
    r.add("hflip", cfg_.hflip).add("seed", o.train.seed).add("init_seed", o.init_seed);
    r.add("lr", o.train.adamw.lr).add("beta1", o.train.adamw.beta1).add("beta2", o.train.adamw.beta2);
    r.add("eps", o.train.adamw.eps).add("weight_decay", o.train.adamw.weight_decay);
    r.add("ema_decay", o.train.ema_decay).add("grad_clip", o.train.grad_clip).add("warmup_steps", o.train.warmup_steps);
    r.add("lambda_z", l.lambda_z).add("p_drop", l.p_drop).add("rep_drop_per_sample", l.rep_drop == RepDrop::PerSample);
    r.add("zero_noisy_z", l.zero_noisy_z).add("label_drop_prob", l.label_drop_prob);
    return r;
  }

  void check_resume_config(const std::filesystem::path& path, const std::string& theirs_text) const {
    if (cfg_.allow_config_change) return;
    const json::Value theirs = json::parse(theirs_text, path.string() + ": redi.config");
    const json::Value* tr = theirs.find("resume");
    REDI_CHECK(tr && tr->is_object(), path.string(), ": checkpoint configuration has no \"resume\" settings");
    const json::Value mine = json::parse(resume_settings().str(), "resume settings");
    std::string diffs;
    for (const auto& [k, v] : mine.object()) {
      const json::Value* t = tr->find(k);
      auto text = [](const json::Value* x) {
        if (!x) return std::string("(absent)");
        if (x->is_bool()) return std::string(x->as_bool() ? "true" : "false");
        return x->str();
      };
      if (text(t) != text(&v)) diffs += (diffs.empty() ? "" : ", ") + k + " " + text(t) + " -> " + text(&v);
    }
    REDI_CHECK(diffs.empty(), path.string(), ": this run's settings differ from the checkpoint's (", diffs,
               "); a resume would not continue the same run. Use the checkpoint's settings, or set "
               "TrainerConfig::allow_config_change");
  }

  SampleFn default_sample_fn() const {
    return [](Model& m, T* out, const SampleRequest& req) {
      if constexpr (Model::objective::is_flow) m.template sample<SdeEulerMaruyama>(out, req, {.num_steps = 50});
      else m.template sample<DDIM>(out, req, {.respacing = "ddim50"});
    };
  }

  Model& m_;
  const data::TrainSet& data_;
  TrainerConfig cfg_;
  std::ostream* console_;
  data::BatchSampler batches_;  // the shuffled, resumable order of the training samples
  DataParallel dp_;             // the ranks (one process: a no-op)
  JsonlLog log_;
  SampleFn sample_fn_;
  EvalFn eval_fn_;
  std::int64_t last_eval_step_ = -1;
  std::vector<float> xf_, zf_;
  std::vector<T> xt_, zt_;
  std::vector<int> y_;
  std::vector<StepRecord> history_;
  bool stopped_early_ = false;
};

}  // namespace redi::train
