// tests/cuda/cpu_reference.hpp — fp32 wrappers over the CPU ops that need Eigen (compiled by
// g++ in cpu_reference.cpp, so the nvcc test units never include Eigen).
#pragma once

namespace redi::test::ref {

void gemm(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda,
          const float* B, int ldb, float beta, float* C, int ldc);
void linear_forward(float* out, const float* in, const float* W, const float* b, int rows,
                    int in_f, int out_f);
void linear_backward(float* din, float* dW, float* db, const float* dout, const float* in,
                     const float* W, int rows, int in_f, int out_f);
void attention_forward(float* out, float* probs, const float* qkv, int B, int L, int H, int hd);
long long attention_scratch_elems(int B, int L, int H, int hd);
void attention_backward(float* dqkv, float* scratch, const float* dout, const float* qkv,
                        const float* probs, int B, int L, int H, int hd);

}  // namespace redi::test::ref
