// redi/cuda/ops/ops.cuh — every CUDA op (see docs/ops.md and docs/cuda.md). nvcc only. Models reach
// them through redi::Backend<Cuda> (redi/cuda/backend.cuh).
#pragma once
#include "redi/cuda/ops/activation.cuh"
#include "redi/cuda/ops/attention.cuh"
#include "redi/cuda/ops/attention_cudnn.cuh"
#include "redi/cuda/ops/copy.cuh"
#include "redi/cuda/ops/elementwise.cuh"
#include "redi/cuda/ops/embedding.cuh"
#include "redi/cuda/ops/gemm.cuh"
#include "redi/cuda/ops/joint_loss.cuh"
#include "redi/cuda/ops/layernorm.cuh"
#include "redi/cuda/ops/linear.cuh"
#include "redi/cuda/ops/modulate.cuh"
#include "redi/cuda/ops/optim.cuh"
#include "redi/cuda/ops/patchify.cuh"
#include "redi/cuda/ops/philox.cuh"
#include "redi/cuda/ops/sampler_steps.cuh"
#include "redi/cuda/ops/softmax.cuh"
