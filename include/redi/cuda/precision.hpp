// redi/cuda/precision.hpp — the precision policies (FP32, BF16Mixed) now live in
// redi/core/precision.hpp, shared by the CPU and CUDA model templates; this header stays for
// code that included it from here.
#pragma once
#include "redi/core/precision.hpp"
