// tests/cuda/cpu_reference.cpp — see cpu_reference.hpp.
#include "cpu_reference.hpp"

#include "redi/ops/attention.hpp"
#include "redi/ops/gemm.hpp"
#include "redi/ops/linear.hpp"

namespace redi::test::ref {

void gemm(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda,
          const float* B, int ldb, float beta, float* C, int ldc) {
  ops::gemm<float>(cpu, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
void linear_forward(float* out, const float* in, const float* W, const float* b, int rows,
                    int in_f, int out_f) {
  ops::linear_forward<float>(cpu, out, in, W, b, rows, in_f, out_f);
}
void linear_backward(float* din, float* dW, float* db, const float* dout, const float* in,
                     const float* W, int rows, int in_f, int out_f) {
  ops::linear_backward<float>(cpu, din, dW, db, dout, in, W, rows, in_f, out_f);
}
void attention_forward(float* out, float* probs, const float* qkv, int B, int L, int H, int hd) {
  ops::attention_forward<float>(cpu, out, probs, qkv, B, L, H, hd);
}
long long attention_scratch_elems(int B, int L, int H, int hd) {
  return ops::attention_scratch_elems(B, L, H, hd);
}
void attention_backward(float* dqkv, float* scratch, const float* dout, const float* qkv,
                        const float* probs, int B, int L, int H, int hd) {
  ops::attention_backward<float>(cpu, dqkv, scratch, dout, qkv, probs, B, L, H, hd);
}

}  // namespace redi::test::ref
