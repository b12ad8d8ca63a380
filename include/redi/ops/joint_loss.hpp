// redi/ops/joint_loss.hpp — the per-element half of the joint ReDi loss (diffusion/loss.hpp) as
// two ops, so a device runs it where its network's output lives (no B x Cin x H x W transfer
// of input, output and dout per step, no host noise draws). The per-sample draws (time, label
// and representation dropout: B values) stay on the host, in JointLoss::draw_samples; the host
// JointLoss is the reference and the CPU ops below repeat its loops bit for bit:
//
//   joint_loss_inputs: for sample i, element e < nin = nx + nz (image first, then features):
//     n     = T(philox::normal(key, s[i].stream, e))          (JointLoss's TrainNoise stream)
//     clean = e < nx ? x0[i nx + e] : (s[i].drop ? 0 : z0[i nz + e - nx])
//     input = T(a_i clean + b_i n)   (DDPM: a = sqrt(abar_t), b = sqrt(1 - abar_t); flow: a = t,
//                                     b = 1 - t), 0 for a dropped sample's z with zero_z
//     target = T(n) (DDPM epsilon) or T(clean - n) (flow velocity)
//   joint_loss_grad: err = out - target (double);
//     dout = T(2 err / nx / B)  (image) or T(lam_i 2 err / nz / B)  (features),
//     sums[2i] = sum_x err^2, sums[2i+1] = sum_z err^2 (double; the host forms the Stats)
// Learned sigma (DDPM's vb term) is not covered: that loss stays on the host.
// All double arithmetic is written as separate multiplies and adds (REDI_DMUL/REDI_DADD: no FMA
// on the device, -ffp-contract=off on the host), so the CUDA ops (redi/cuda/ops/joint_loss.cuh)
// produce the same input, target and dout bits; only the order of the per-sample sums differs.
#pragma once
#include <cstdint>

#include "redi/core/device.hpp"
#include "redi/core/philox.hpp"

namespace redi::ops {

/// One sample's coefficients (host-drawn; on a device, uploaded once per step).
struct LossSample {
  double a = 0, b = 0;        // input = a * clean + b * noise
  double lam = 0;             // weight of the feature loss (0 when dropped)
  std::uint64_t stream = 0;   // Philox stream of the sample's noise
  std::int32_t drop = 0;      // representation dropped: clean z = 0
  std::int32_t pad = 0;
};

enum class LossTarget : int { Epsilon = 0, Velocity = 1 };

/// The noisy network input and the regression target of a batch (see the header comment).
template <class T>
void joint_loss_inputs(const Cpu&, T* input, T* target, const T* x0, const T* z0, const LossSample* s,
                       int B, std::int64_t nx, std::int64_t nz, std::uint64_t key, LossTarget tgt,
                       bool zero_z) {
  const std::int64_t nin = nx + nz;
#if defined(_OPENMP)
#pragma omp parallel for schedule(static) if (std::int64_t(B) * nin >= 65536)
#endif
  for (int i = 0; i < B; ++i) {
    T* in = input + i * nin;
    T* tg = target + i * nin;
    philox::fill_normal(tg, std::size_t(nin), key, s[i].stream);  // the noise, in T, first
    for (std::int64_t e = 0; e < nin; ++e) {
      const bool is_z = e >= nx;
      const double clean = is_z ? (s[i].drop ? 0.0 : double(z0[i * nz + (e - nx)])) : double(x0[i * nx + e]);
      const double n = double(tg[e]);
      double xt = REDI_DADD(REDI_DMUL(s[i].a, clean), REDI_DMUL(s[i].b, n));
      if (is_z && s[i].drop && zero_z) xt = 0.0;
      in[e] = T(xt);
      tg[e] = tgt == LossTarget::Epsilon ? T(n) : T(REDI_DSUB(clean, n));
    }
  }
}

/// dout (overwritten) and the per-sample squared-error sums of out against target.
template <class T>
void joint_loss_grad(const Cpu&, T* dout, double* sums, const T* out, const T* target, const LossSample* s,
                     int B, std::int64_t nx, std::int64_t nz, double invB) {
  const std::int64_t nin = nx + nz;
#if defined(_OPENMP)
#pragma omp parallel for schedule(static) if (std::int64_t(B) * nin >= 65536)
#endif
  for (int i = 0; i < B; ++i) {
    const T* o = out + i * nin;
    const T* tg = target + i * nin;
    T* d = dout + i * nin;
    double sx = 0, sz = 0;
    for (std::int64_t e = 0; e < nin; ++e) {
      const double err = REDI_DSUB(double(o[e]), double(tg[e]));
      if (e < nx) {
        sx += err * err;
        d[e] = T(REDI_DMUL(REDI_DDIV(REDI_DMUL(2.0, err), double(nx)), invB));
      } else {
        sz += err * err;
        d[e] = T(REDI_DMUL(REDI_DDIV(REDI_DMUL(REDI_DMUL(s[i].lam, 2.0), err), double(nz)), invB));
      }
    }
    sums[2 * i] = sx;
    sums[2 * i + 1] = sz;
  }
}

}  // namespace redi::ops
