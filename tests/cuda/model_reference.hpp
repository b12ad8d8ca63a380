// tests/cuda/model_reference.hpp — the CPU transformer (redi::Transformer<float, F, Cpu>) behind
// a small non-template interface, compiled by g++ in model_reference.cpp, so that the CUDA
// model test (test_cuda_model.cu) compares against the real CPU model without nvcc compiling
// the CPU model (Eigen/OpenBLAS GEMMs, OpenMP) a second time.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "redi/nn/config.hpp"

namespace redi::test::ref {

enum class FusionKind { Merged, Separate };

/// One CPU model plus its AdamW moments and EMA copy (all flat buffers in the official
/// parameter order, see redi/nn/param_layout.hpp).
class CpuModel {
public:
  CpuModel(const ModelConfig& cfg, FusionKind fusion, std::uint64_t init_seed = 0);
  ~CpuModel();
  CpuModel(const CpuModel&) = delete;
  CpuModel& operator=(const CpuModel&) = delete;

  std::int64_t num_params() const;
  int channels_in() const;
  int channels_out() const;
  /// (name, offset, numel) of every parameter tensor, in buffer order.
  struct Entry {
    const char* name;
    std::int64_t offset, numel;
  };
  std::vector<Entry> entries() const;
  /// Every parameter from N(0, std) (the layout's randomize: DiT's zero init hides terms).
  std::vector<float> randomized_params(std::uint64_t seed, double std) const;

  std::vector<float> params() const;
  void set_params(const std::vector<float>& p);  // also resets the EMA copy to p
  std::vector<float> grads() const;
  std::vector<float> ema() const;
  void zero_grad();

  /// out [B, Cout, H, W]
  std::vector<float> forward(const std::vector<float>& x, const std::vector<float>& t,
                             const std::vector<int>& y, int B);
  void backward(const std::vector<float>& dout);

  /// Mean squared error (accumulated in double) and its gradient 2 (pred - target) / n.
  static double mse(const std::vector<float>& pred, const std::vector<float>& target);
  static std::vector<float> mse_grad(const std::vector<float>& pred,
                                     const std::vector<float>& target);

  /// ops::adamw_step (PyTorch AdamW) then ops::ema_update, on the whole buffer.
  void optimizer_step(double lr, double beta1, double beta2, double eps, double weight_decay,
                      std::int64_t step, double ema_decay);

private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace redi::test::ref
