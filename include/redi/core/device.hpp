// redi/core/device.hpp — device tags. A device tag is a small type with static memory
// functions (used as a template parameter by Tensor and Workspace) whose *objects* are the
// first argument of every op (CPU: empty; CUDA: stream and library handles).
#pragma once
#include <concepts>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <new>

#include "redi/core/error.hpp"

namespace redi {

/// The contract a device tag fulfils.
template <class D>
concept Device = requires(std::size_t n, void* p, const void* q) {
  { D::is_host } -> std::convertible_to<bool>;
  { D::allocate(n) } -> std::same_as<void*>;
  D::deallocate(p);
  D::copy_to_host(p, q, n);
  D::copy_from_host(p, q, n);
  D::memset_zero(p, n);
};

/// The CPU. Ops are Eigen/OpenBLAS + OpenMP; memory is 256-byte aligned host memory.
struct Cpu {
  static constexpr bool is_host = true;
  static constexpr const char* name = "cpu";
  static void* allocate(std::size_t bytes) {
    if (bytes == 0) return nullptr;
    std::size_t rounded = (bytes + 255) / 256 * 256;  // 256: the workspace's alignment
    void* p = std::aligned_alloc(256, rounded);
    REDI_CHECK(p != nullptr, "cpu: out of memory allocating ", bytes, " bytes");
    return p;
  }
  static void deallocate(void* p) noexcept { std::free(p); }
  static void copy_to_host(void* dst, const void* src, std::size_t bytes) {
    if (bytes) std::memcpy(dst, src, bytes);
  }
  static void copy_from_host(void* dst, const void* src, std::size_t bytes) {
    if (bytes) std::memcpy(dst, src, bytes);
  }
  static void copy(void* dst, const void* src, std::size_t bytes) {
    if (bytes) std::memcpy(dst, src, bytes);
  }
  static void memset_zero(void* p, std::size_t bytes) {
    if (bytes) std::memset(p, 0, bytes);
  }
};

/// The CPU context object passed to ops.
inline constexpr Cpu cpu{};

// The CUDA tag `redi::Cuda` is declared in redi/cuda/device.hpp (host-only C++ over the CUDA
// runtime API; a g++ build that never includes it needs no CUDA toolkit).

}  // namespace redi
