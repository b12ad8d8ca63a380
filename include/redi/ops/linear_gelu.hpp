// redi/ops/linear_gelu.hpp — the MLP's first half as one op, forward and backward side by side:
//   forward : pre = in W^T + b ;  out = gelu(pre)             (GELU: tanh approximation)
//   backward: dpre = (dout_next W_next) * gelu'(pre) ;  db += column sums of dpre
// The backward is fused with the input gradient of the NEXT linear layer (fc2 in the DiT MLP):
// dout_next [rows, out_next] is fc2's output gradient and W_next [out_next, f] its weight, so
// dout_next W_next = dL/d(out) and the op returns dL/d(pre) plus the bias gradient of the
// linear that produced pre (fc1). This is the cut cuBLASLt's epilogues make on a GPU
// (cuda/ops/linear_gelu.cuh: GELU_AUX_BIAS forward, DGELU_BGRAD backward); fc2's own dW/db and
// fc1's din/dW stay with linear_backward. Here, on the CPU, each op is the unfused composition
// of linear_forward / gelu_forward / linear_backward / gelu_backward — the same calls in the
// same order as before the op existed, so results are bit-identical to them
// (tests/test_ops_linear_gelu.cpp asserts equality to the last bit).
#pragma once
#include <cstdint>

#include "redi/ops/activation.hpp"
#include "redi/ops/linear.hpp"

namespace redi::ops {

/// pre[rows, f] = in[rows, in_f] W^T + b (b may be null) ; out = gelu(pre). f = out_f.
template <CpuReal T>
inline void linear_gelu_forward(const Cpu& dev, T* out, T* pre, const T* in, const T* W, const T* b, int rows,
                                int in_f, int out_f) {
  linear_forward<T>(dev, pre, in, W, b, rows, in_f, out_f);
  gelu_forward<T>(dev, out, pre, std::int64_t(rows) * out_f);
}

/// dpre[rows, f] = (dout[rows, out_n] W[out_n, f]) * gelu'(pre) (overwritten) ;
/// dbpre[f] += column sums of dpre (dbpre may be null). W and dout are the next linear's weight
/// and output gradient; pre is what linear_gelu_forward saved.
template <CpuReal T>
inline void linear_dgelu_backward(const Cpu& dev, T* dpre, T* dbpre, const T* dout, const T* W, const T* pre,
                                  int rows, int f, int out_n) {
  linear_backward<T>(dev, dpre, nullptr, nullptr, dout, nullptr, W, rows, f, out_n);  // dL/d(out)
  gelu_backward<T>(dev, dpre, dpre, pre, std::int64_t(rows) * f);                     // in place
  if (dbpre) linear_backward<T>(dev, nullptr, nullptr, dbpre, dpre, nullptr, nullptr, rows, 0, f);
}

}  // namespace redi::ops
