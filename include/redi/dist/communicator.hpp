// redi/dist/communicator.hpp — the communicator a data-parallel run talks through, chosen at run
// time (docs/distributed.md):
//
//   dist::Single  one process (this header; no dependency): rank 0 of 1, every collective a no-op
//   dist::Mpi     MPI ranks over host memory (redi/dist/mpi.hpp; the target links MPI::MPI_CXX)
//   dist::Nccl    GPU ranks over device memory, bootstrapped through MPI (redi/dist/nccl.hpp;
//                 nvcc or the CUDA runtime + NCCL), one GPU per local rank
//
// A run-time interface rather than a compile-time policy: the world size is a launch-time fact
// (mpirun -np W), the trainer and the sampling helpers stay untemplated on it, and only the
// program's main() includes the MPI or NCCL header. A collective costs a few microseconds at
// least, so the virtual call is free.
//
// Contract (every call is collective unless marked local: all ranks call it, in the same order):
//   rank(), size(), local_rank()      local; 0 <= rank < size; local_rank = rank among the ranks
//                                     of this node (picks the GPU)
//   allreduce_mean(p, n)              p[i] <- (sum over ranks of p[i]) / size, on every rank, the
//                                     same bits on every rank; p is host memory, or device memory
//                                     when device_memory() is true
//   allreduce_sum(double* p, n)       host doubles (statistics, counts), sum on every rank
//   broadcast(p, bytes, root)         root's bytes to every rank (host memory)
//   gather(send, bytes) -> bytes      rank 0 receives every rank's bytes concatenated in rank
//                                     order (sizes may differ); the others get an empty vector
//   barrier()
// Single-rank results are exactly the input: allreduce_mean over one rank divides by 1.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "redi/core/error.hpp"

namespace redi::dist {

class Communicator {
public:
  virtual ~Communicator() = default;
  virtual const char* name() const = 0;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual int local_rank() const = 0;
  /// True when allreduce_mean takes device pointers (NCCL); host pointers otherwise.
  virtual bool device_memory() const { return false; }
  virtual void allreduce_mean(float* p, std::size_t n) = 0;
  virtual void allreduce_mean(double* p, std::size_t n) = 0;
  virtual void allreduce_sum(double* p, std::size_t n) = 0;
  virtual void broadcast(void* p, std::size_t bytes, int root) = 0;
  virtual std::vector<std::byte> gather(const void* send, std::size_t bytes) = 0;
  virtual void barrier() = 0;

  bool is_root() const { return rank() == 0; }
};

/// One process: rank 0 of a world of 1.
class Single final : public Communicator {
public:
  const char* name() const override { return "single"; }
  int rank() const override { return 0; }
  int size() const override { return 1; }
  int local_rank() const override { return 0; }
  void allreduce_mean(float*, std::size_t) override {}
  void allreduce_mean(double*, std::size_t) override {}
  void allreduce_sum(double*, std::size_t) override {}
  void broadcast(void*, std::size_t, int root) override {
    REDI_CHECK(root == 0, "dist::Single::broadcast: root ", root, " in a world of 1");
  }
  std::vector<std::byte> gather(const void* send, std::size_t bytes) override {
    std::vector<std::byte> out(bytes);
    if (bytes) std::memcpy(out.data(), send, bytes);
    return out;
  }
  void barrier() override {}
};

/// The process-wide single-rank communicator (what a trainer without one uses).
inline Single& single() {
  static Single s;
  return s;
}

/// Rank 0's value of a trivially copyable `v`, on every rank.
template <class V>
V broadcast_value(Communicator& c, V v, int root = 0) {
  static_assert(std::is_trivially_copyable_v<V>, "dist::broadcast_value: V must be trivially copyable");
  c.broadcast(&v, sizeof v, root);
  return v;
}

/// Rank 0's string on every rank.
inline std::string broadcast_string(Communicator& c, std::string s) {
  std::uint64_t n = broadcast_value(c, std::uint64_t(s.size()));
  s.resize(std::size_t(n));
  if (n) c.broadcast(s.data(), std::size_t(n), 0);
  return s;
}

/// Checks that every rank holds the same `what` (e.g. a run's settings as JSON): throws on ALL
/// ranks (naming the first differing rank) when one differs, so no rank is left waiting in a
/// collective.
inline void check_same_on_all_ranks(Communicator& c, const std::string& value, const std::string& what) {
  if (c.size() == 1) return;
  const std::string root = broadcast_string(c, value);
  // one slot per rank: 1 where the rank's value differs from rank 0's
  std::vector<double> differs(std::size_t(c.size()), 0.0);
  differs[std::size_t(c.rank())] = root == value ? 0.0 : 1.0;
  c.allreduce_sum(differs.data(), differs.size());
  int first = 0, n = 0;
  for (int r = c.size() - 1; r >= 0; --r)
    if (differs[std::size_t(r)] != 0) first = r, ++n;
  if (n == 0) return;
  REDI_FAIL("distributed run: ", what, " differs between rank 0 and rank ", first, " (", int(n), " of ", c.size(),
            " ranks differ); every rank must be started with the same settings");
}

/// A contiguous share [begin, end) of [0, n) for `rank` of `world`: the first n % world ranks
/// get one more. Concatenating the shares in rank order gives [0, n).
struct Range {
  std::int64_t begin = 0, end = 0;
  std::int64_t size() const { return end - begin; }
};
inline Range share(std::int64_t n, int rank, int world) {
  REDI_CHECK(world > 0 && rank >= 0 && rank < world && n >= 0, "dist::share: rank ", rank, " of ", world, ", n ", n);
  const std::int64_t q = n / world, rem = n % world;
  const std::int64_t b = rank * q + std::min<std::int64_t>(rank, rem);
  return {b, b + q + (rank < rem ? 1 : 0)};
}

}  // namespace redi::dist
