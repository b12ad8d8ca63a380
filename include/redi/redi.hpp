// redi/redi.hpp — the umbrella header: everything redi has, for `#include <redi/redi.hpp>`.
// The core is always there. The other layers are listed with __has_include guards while they
// are being written; the guards go once every header below exists. CUDA headers
// (redi/cuda/...) are not included here: include them from .cu files, or from C++ files that
// link redi::cuda.
#pragma once

#include "redi/version.hpp"

// ---- core: device tags, element types, tensors, workspace, counter-based RNG
#include "redi/core/device.hpp"
#include "redi/core/dtype.hpp"
#include "redi/core/error.hpp"
#include "redi/core/macros.hpp"
#include "redi/core/philox.hpp"
#include "redi/core/tensor.hpp"
#include "redi/core/workspace.hpp"

// ---- planned layers (guards removed once they land)
#include "redi/ops/ops.hpp"
#if __has_include("redi/io/safetensors.hpp")
#include "redi/io/safetensors.hpp"
#endif
#include "redi/nn/transformer.hpp"
#include "redi/diffusion/diffusion.hpp"
#include "redi/redi_model.hpp"
