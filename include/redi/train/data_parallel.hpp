// redi/train/data_parallel.hpp — data-parallel training of a redi::ReDi model over a
// dist::Communicator (docs/distributed.md). What the trainer does with it, per step:
//
//   1. every rank draws the SAME global batch of B indices from the shared BatchSampler order and
//      keeps its contiguous slice [b0, b0 + B/W) (slice());
//   2. the joint loss of the slice runs with first_index = b0, so sample i of the global batch is
//      keyed by its global position i whatever the world size: its noise, time, label dropout and
//      per-sample representation dropout are the draws of a one-process run (the per-batch
//      representation coin is keyed by (seed, step) only);
//   3. the slice's gradient (its mean over B/W samples) is averaged over the ranks
//      (sync_gradients): mean_r (W/B) sum_{i in r} g_i = (1/B) sum_i g_i, the one-process
//      gradient up to the order of the float sums (for a power-of-two W the scalings are exact);
//   4. clipping, AdamW and the EMA then run on identical buffers: every rank holds the same bits;
//   5. the loss statistics are combined as sample-weighted means (reduce_stats), so the logged
//      loss is the global batch's.
// The global batch B must be a multiple of the world size W (equal slices keep the plain mean
// of step 3 the global mean). broadcast_state() copies rank 0's weights, EMA, AdamW moments and
// step to every rank at start-up.
#pragma once
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>
#include <vector>

#include "redi/core/error.hpp"
#include "redi/dist/communicator.hpp"

namespace redi::train {

class DataParallel {
public:
  explicit DataParallel(dist::Communicator* comm = nullptr) : c_(comm ? comm : &dist::single()) {}

  dist::Communicator& comm() const { return *c_; }
  int rank() const { return c_->rank(); }
  int world() const { return c_->size(); }
  bool root() const { return c_->rank() == 0; }
  bool distributed() const { return c_->size() > 1; }

  /// This rank's slice of a global batch of `global_batch` samples.
  dist::Range slice(std::int64_t global_batch) const {
    REDI_CHECK(global_batch % world() == 0, "data-parallel training: the global batch ", global_batch,
               " is not a multiple of the ", world(), " ranks (each rank takes global_batch / ranks samples)");
    return dist::share(global_batch, rank(), world());
  }

  /// Averages the model's gradient buffer over the ranks (before clipping). A device model with a
  /// host communicator (dist::Mpi) is staged through host memory.
  template <class Model>
  void sync_gradients(Model& m) {
    if (!distributed()) return;
    auto& g = m.net().grads();
    using G = std::remove_cvref_t<decltype(*g.data())>;
    static_assert(std::is_same_v<G, float> || std::is_same_v<G, double>,
                  "DataParallel::sync_gradients: gradients must be float or double");
    const std::size_t n = std::size_t(g.numel());
    constexpr bool host = Model::device_type::is_host;
    if (host || c_->device_memory()) {
      REDI_CHECK(host == !c_->device_memory(), "DataParallel: the ", c_->name(), " communicator reduces ",
                 c_->device_memory() ? "device" : "host", " memory, the model's gradients are in ",
                 host ? "host" : "device", " memory");
      c_->allreduce_mean(g.data(), n);
    } else {
      auto& st = staging<G>();
      st.resize(n);
      Model::device_type::copy_to_host(st.data(), g.data(), n * sizeof(G));
      c_->allreduce_mean(st.data(), n);
      g.from_host(st);
    }
  }

  /// The global batch's loss statistics from each rank's (means over its `local_batch` samples).
  template <class Stats>
  Stats reduce_stats(const Stats& s, std::int64_t local_batch) {
    if (!distributed()) return s;
    const double w = double(local_batch);
    double v[7] = {s.loss * w, s.mse_x * w, s.mse_z * w, s.vb * w, double(s.rep_dropped), double(s.labels_dropped), w};
    c_->allreduce_sum(v, 7);
    Stats r = s;
    r.loss = v[0] / v[6]; r.mse_x = v[1] / v[6]; r.mse_z = v[2] / v[6]; r.vb = v[3] / v[6];
    r.rep_dropped = int(v[4]); r.labels_dropped = int(v[5]);
    return r;
  }

  /// Rank 0's weights, EMA, AdamW moments and step counter on every rank (staged through host
  /// memory; once at start-up).
  template <class Model>
  void broadcast_state(Model& m) {
    if (!distributed()) return;
    auto bcast = [&](auto& t) {
      auto h = std::as_const(t).to_host();
      c_->broadcast(h.data(), h.size() * sizeof(h[0]), 0);
      t.from_host(h);
    };
    bcast(m.net().params());
    bcast(m.ema().params());
    bcast(m.adam_m());
    bcast(m.adam_v());
    m.set_step(dist::broadcast_value(*c_, m.step()));
  }

  /// Rank 0's decision on every rank (e.g. a wall-clock stop, which must not differ).
  bool agree(bool rank0_decision) { return distributed() ? dist::broadcast_value(*c_, rank0_decision) : rank0_decision; }

private:
  template <class G>
  std::vector<G>& staging() {
    if constexpr (std::is_same_v<G, float>) return stage_f_;
    else return stage_d_;
  }

  dist::Communicator* c_;
  std::vector<float> stage_f_;
  std::vector<double> stage_d_;
};

}  // namespace redi::train
