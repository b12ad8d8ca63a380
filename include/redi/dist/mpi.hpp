// redi/dist/mpi.hpp — dist::Mpi, the communicator over MPI ranks (host memory), and
// dist::MpiRuntime, the MPI_Init / MPI_Finalize pair of a program. Include it only from a target
// that links MPI::MPI_CXX (CMake: REDI_HAVE_MPI); the rest of redi never includes <mpi.h>.
//
//   int main(int argc, char** argv) {
//     redi::dist::MpiRuntime mpi(argc, argv);   // MPI_Init_thread(FUNNELED); finalizes at exit
//     redi::dist::Mpi comm;                     // MPI_COMM_WORLD; local rank from the node's ranks
//     ... TrainerConfig{.comm = &comm} ...
//   }
//
// allreduce_mean is MPI_Allreduce(MPI_SUM) followed by a multiply by 1/size on every rank.
// Every allreduce algorithm Open MPI picks (recursive doubling, ring, Rabenseifner) combines
// the same two partial sums with the commutative + on every rank, so the result has the same
// bits on every rank; test_dist_mpi checks it on the trained weights. For a power-of-two world
// the 1/size scaling is exact. Buffers longer than INT_MAX elements go in INT_MAX chunks.
// OpenMP threads inside a rank never call MPI (FUNNELED).
#pragma once
#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "redi/core/error.hpp"
#include "redi/dist/communicator.hpp"

#define REDI_MPI_CHECK(call)                                                                      \
  do {                                                                                            \
    const int redi_mpi_rc_ = (call);                                                              \
    if (redi_mpi_rc_ != MPI_SUCCESS) {                                                            \
      char redi_mpi_msg_[MPI_MAX_ERROR_STRING];                                                   \
      int redi_mpi_len_ = 0;                                                                      \
      MPI_Error_string(redi_mpi_rc_, redi_mpi_msg_, &redi_mpi_len_);                              \
      REDI_FAIL("MPI: ", #call, " failed: ", std::string(redi_mpi_msg_, std::size_t(redi_mpi_len_))); \
    }                                                                                             \
  } while (0)

namespace redi::dist {

/// MPI_Init_thread (MPI_THREAD_FUNNELED) on construction unless MPI is already initialised,
/// MPI_Finalize on destruction if this object initialised it.
class MpiRuntime {
public:
  MpiRuntime(int& argc, char**& argv) {
    int inited = 0;
    MPI_Initialized(&inited);
    if (inited) return;
    int provided = 0;
    REDI_MPI_CHECK(MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided));
    owner_ = true;
  }
  MpiRuntime() {
    int inited = 0;
    MPI_Initialized(&inited);
    if (inited) return;
    int provided = 0;
    REDI_MPI_CHECK(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided));
    owner_ = true;
  }
  MpiRuntime(const MpiRuntime&) = delete;
  MpiRuntime& operator=(const MpiRuntime&) = delete;
  ~MpiRuntime() {
    int fin = 0;
    MPI_Finalized(&fin);
    if (owner_ && !fin) MPI_Finalize();
  }
  /// True when a launcher started this process (before MPI_Init, from its environment): Open
  /// MPI's mpirun (OMPI_COMM_WORLD_SIZE), Hydra / PMI-1/2 (PMI_SIZE, PMI_RANK), PMIx (PMIX_RANK),
  /// srun with several tasks (SLURM_NTASKS > 1), or REDI_MPI=1. Programs that are also run
  /// directly (redi_train) initialise MPI only then: a plain run never touches MPI.
  static bool launched() {
    auto set = [](const char* k) { const char* v = std::getenv(k); return v && *v; };
    if (const char* f = std::getenv("REDI_MPI")) return std::string(f) == "1";
    if (set("OMPI_COMM_WORLD_SIZE") || set("PMI_SIZE") || set("PMI_RANK") || set("PMIX_RANK")) return true;
    const char* nt = std::getenv("SLURM_NTASKS");
    return nt && std::atoi(nt) > 1 && set("SLURM_PROCID");
  }

private:
  bool owner_ = false;
};

/// The communicator over an MPI communicator (default MPI_COMM_WORLD; MPI must be initialised).
class Mpi final : public Communicator {
public:
  explicit Mpi(MPI_Comm comm = MPI_COMM_WORLD) : comm_(comm) {
    int inited = 0;
    MPI_Initialized(&inited);
    REDI_CHECK(inited, "dist::Mpi: MPI is not initialised (construct a dist::MpiRuntime first)");
    REDI_MPI_CHECK(MPI_Comm_rank(comm_, &rank_));
    REDI_MPI_CHECK(MPI_Comm_size(comm_, &size_));
    MPI_Comm node;  // the ranks that share this node's memory: the local rank picks the GPU
    REDI_MPI_CHECK(MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node));
    REDI_MPI_CHECK(MPI_Comm_rank(node, &local_));
    REDI_MPI_CHECK(MPI_Comm_size(node, &local_size_));
    MPI_Comm_free(&node);
  }
  Mpi(const Mpi&) = delete;
  Mpi& operator=(const Mpi&) = delete;

  const char* name() const override { return "mpi"; }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int local_rank() const override { return local_; }
  int local_size() const { return local_size_; }
  MPI_Comm handle() const { return comm_; }

  void allreduce_mean(float* p, std::size_t n) override { mean(p, n, MPI_FLOAT); }
  void allreduce_mean(double* p, std::size_t n) override { mean(p, n, MPI_DOUBLE); }
  void allreduce_sum(double* p, std::size_t n) override { sum(p, n, MPI_DOUBLE); }

  void broadcast(void* p, std::size_t bytes, int root) override {
    REDI_CHECK(root >= 0 && root < size_, "dist::Mpi::broadcast: root ", root, " of ", size_, " ranks");
    auto* b = static_cast<char*>(p);
    for (std::size_t off = 0; off < bytes; off += kChunk)
      REDI_MPI_CHECK(MPI_Bcast(b + off, int(std::min(kChunk, bytes - off)), MPI_BYTE, root, comm_));
  }

  std::vector<std::byte> gather(const void* send, std::size_t bytes) override {
    REDI_CHECK(bytes <= kChunk, "dist::Mpi::gather: ", bytes, " bytes from one rank (at most ", kChunk, ")");
    int mine = int(bytes);
    std::vector<int> counts(static_cast<std::size_t>(size_)), displs(static_cast<std::size_t>(size_));
    REDI_MPI_CHECK(MPI_Gather(&mine, 1, MPI_INT, counts.data(), 1, MPI_INT, 0, comm_));
    std::vector<std::byte> out;
    if (rank_ == 0) {
      std::size_t total = 0;
      for (int r = 0; r < size_; ++r) {
        REDI_CHECK(total <= kChunk, "dist::Mpi::gather: more than ", kChunk, " bytes in all");
        displs[std::size_t(r)] = int(total);
        total += std::size_t(counts[std::size_t(r)]);
      }
      out.resize(total);
    }
    REDI_MPI_CHECK(MPI_Gatherv(send, mine, MPI_BYTE, out.data(), counts.data(), displs.data(), MPI_BYTE, 0, comm_));
    return out;
  }

  void barrier() override { REDI_MPI_CHECK(MPI_Barrier(comm_)); }

private:
  static constexpr std::size_t kChunk = std::size_t(INT_MAX);

  template <class T>
  void sum(T* p, std::size_t n, MPI_Datatype type) {
    for (std::size_t off = 0; off < n; off += kChunk)
      REDI_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, p + off, int(std::min(kChunk, n - off)), type, MPI_SUM, comm_));
  }
  template <class T>
  void mean(T* p, std::size_t n, MPI_Datatype type) {
    if (size_ == 1) return;
    sum(p, n, type);
    const T k = T(1) / T(size_);
    for (std::size_t i = 0; i < n; ++i) p[i] *= k;
  }

  MPI_Comm comm_;
  int rank_ = 0, size_ = 1, local_ = 0, local_size_ = 1;
};

}  // namespace redi::dist
