// redi/core/workspace.hpp — a bump arena. Scratch memory for a training or sampling step is
// carved from one buffer; the first step sizes it (a planning pass), later steps allocate
// nothing. `allocations()` counts real device allocations so tests can assert that.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "redi/core/device.hpp"

namespace redi {

template <Device Dev = Cpu>
class Workspace {
public:
  Workspace() = default;
  ~Workspace() { Dev::deallocate(base_); }
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;

  /// Ensure at least `bytes` of capacity (reallocates only when growing; contents are lost).
  void reserve(std::size_t bytes) {
    if (bytes <= capacity_) return;
    Dev::deallocate(base_);
    base_ = static_cast<std::byte*>(Dev::allocate(bytes));
    capacity_ = bytes;
    ++allocations_;
    offset_ = 0;
  }

  /// Carve n elements of T (256-byte aligned). If the arena is too small, the request is
  /// recorded and served from an overflow-free planning pass: call `reserve(high_water())`
  /// and retry. `take` throws if the arena cannot serve the request.
  template <class T>
  T* take(std::size_t n) {
    std::size_t start = align(offset_);
    std::size_t end = start + n * sizeof(T);
    high_water_ = std::max(high_water_, end);
    REDI_CHECK(end <= capacity_, "Workspace: request of ", n * sizeof(T), " bytes exceeds capacity ",
               capacity_, " (reserve(high_water()) first)");
    offset_ = end;
    return reinterpret_cast<T*>(base_ + start);
  }

  /// Bytes a sequence of takes would need, without memory: used for planning.
  template <class T>
  std::size_t plan(std::size_t n) {
    std::size_t start = align(offset_);
    offset_ = start + n * sizeof(T);
    high_water_ = std::max(high_water_, offset_);
    return start;
  }

  void reset() { offset_ = 0; }
  std::size_t used() const { return offset_; }
  std::size_t capacity() const { return capacity_; }
  std::size_t high_water() const { return high_water_; }
  std::size_t allocations() const { return allocations_; }

  static constexpr std::size_t alignment = 256;
  static std::size_t align(std::size_t x) { return (x + alignment - 1) / alignment * alignment; }

private:
  std::byte* base_ = nullptr;
  std::size_t capacity_ = 0, offset_ = 0, high_water_ = 0, allocations_ = 0;
};

}  // namespace redi
