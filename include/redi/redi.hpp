// redi/redi.hpp — the umbrella header: everything redi has, for `#include <redi/redi.hpp>`.
// CUDA headers
// (redi/cuda/...) are not included here: include them from .cu files, or from C++ files that
// link redi::cuda.
#pragma once

#include "redi/version.hpp"

// ---- core: device tags, element types, tensors, workspace, counter-based RNG
#include "redi/core/device.hpp"
#include "redi/core/dtype.hpp"
#include "redi/core/error.hpp"
#include "redi/core/macros.hpp"
#include "redi/core/paths.hpp"
#include "redi/core/philox.hpp"
#include "redi/core/precision.hpp"
#include "redi/core/tensor.hpp"
#include "redi/core/workspace.hpp"

// ---- ops, io, models, diffusion policies, the ReDi type
#include "redi/ops/cpu_backend.hpp"
#include "redi/io/safetensors.hpp"
#include "redi/io/state_dict.hpp"
#include "redi/nn/transformer.hpp"
#include "redi/nn/device_bridge.hpp"
#include "redi/nn/flops.hpp"
#include "redi/nn/weights.hpp"
#include "redi/diffusion/diffusion.hpp"
#include "redi/redi_model.hpp"
