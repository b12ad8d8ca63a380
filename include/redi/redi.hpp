// redi/redi.hpp — the umbrella header for `#include <redi/redi.hpp>`: the model types, their
// CPU ops and weights files, layer by layer (docs/architecture.md). Not included here: the CUDA
// backend (redi/cuda/backend.cuh, for .cu files compiled by nvcc), and the data readers,
// training loop and writers (redi/data/*, redi/train/*), which link codec libraries (zlib, stb).
#pragma once

#include "redi/version.hpp"

// ---- core: device tags, element types, tensors, the memory planner, counter-based RNG
#include "redi/core/device.hpp"
#include "redi/core/dtype.hpp"
#include "redi/core/error.hpp"
#include "redi/core/macros.hpp"
#include "redi/core/parallel.hpp"
#include "redi/core/paths.hpp"
#include "redi/core/philox.hpp"
#include "redi/core/precision.hpp"
#include "redi/core/tensor.hpp"
#include "redi/core/workspace.hpp"

// ---- ops: the op contract (Backend<Dev>) and the CPU backend
#include "redi/ops/backend.hpp"
#include "redi/ops/cpu_backend.hpp"

// ---- io: file formats (safetensors, PyTorch zip checkpoints, state dicts)
#include "redi/io/safetensors.hpp"
#include "redi/io/state_dict.hpp"

// ---- nn: networks over flat buffers
#include "redi/nn/device_bridge.hpp"
#include "redi/nn/flops.hpp"
#include "redi/nn/transformer.hpp"
#include "redi/nn/vit_encoder.hpp"

// ---- weights: networks <-> files (above nn and io)
#include "redi/weights/transformer.hpp"
#include "redi/weights/vit_encoder.hpp"

// ---- diffusion policies, the optimiser step and the ReDi type
#include "redi/diffusion/diffusion.hpp"
#include "redi/redi_model.hpp"
#include "redi/train/optimizer.hpp"
