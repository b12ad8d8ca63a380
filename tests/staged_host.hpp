// tests/staged_host.hpp — the test device of the device-path tests: a device tag that is NOT
// host (so models take their device code paths: uploads, device loss and sampler, staging of
// checkpoints) but whose memory is host memory and whose backend is the CPU's. Results through
// it must equal the plain CPU model's bit for bit.
#pragma once
#include "redi/core/device.hpp"
#include "redi/ops/cpu_backend.hpp"

namespace staged {
/// Host memory behind a non-host device tag; its context converts to the CPU's.
struct StagedHost : redi::Cpu {
  static constexpr bool is_host = false;
  static constexpr const char* name = "staged-host";
};
}  // namespace staged

/// The test device runs the CPU's ops.
template <>
struct redi::Backend<staged::StagedHost> : redi::Backend<redi::Cpu> {};
