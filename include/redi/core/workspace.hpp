// redi/core/workspace.hpp — the memory planner: one grow-only arena of device memory carved into
// typed buffers. Every activation arena in redi (Transformer's training and inference arenas,
// the ViT encoder's) is a Workspace laid out by a function:
//
//   ws.carve([&](Workspace<Dev>& w) {            // called twice:
//     acts.h   = w.take<float>(B * L * D);      //   1. measuring: take() returns nullptr and
//     acts.idx = w.take<int>(B);                //      records each buffer's aligned offset;
//   });                                          //   2. carving, after at most one allocation.
//
// A layout that fits the current capacity allocates nothing; allocations() counts the real
// allocations so tests can assert "none after warm-up". Buffers start on 256-byte boundaries
// (any vector width, and cuDNN's 16-byte rule). Outside carve(), reserve/reset/take serve a
// simple bump allocation for scratch that is rebuilt every step.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "redi/core/device.hpp"
#include "redi/core/error.hpp"

namespace redi {

template <Device Dev = Cpu>
class Workspace {
public:
  using device_type = Dev;

  Workspace() = default;
  ~Workspace() { Dev::deallocate(base_); }
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;
  Workspace(Workspace&& o) noexcept { swap(o); }
  Workspace& operator=(Workspace&& o) noexcept {
    if (this != &o) {
      Workspace t(std::move(o));
      swap(t);
    }
    return *this;
  }

  /// Lays the buffers of `layout(*this)` out in the arena: a measuring call, one allocation if
  /// the arena is too small (the old contents are lost), then the carving call whose take()s
  /// return the buffers. Returns whether the arena grew.
  template <class Layout>
  bool carve(Layout&& layout) {
    measuring_ = true;
    offset_ = 0;
    layout(*this);
    measuring_ = false;
    const bool grow = offset_ > capacity_;
    if (grow) reserve(offset_);
    offset_ = 0;
    layout(*this);
    return grow;
  }

  /// n elements of T at the next 256-byte boundary (nullptr while carve() measures).
  template <class T>
  T* take(std::int64_t n) {
    REDI_CHECK(n >= 0, "Workspace::take: negative size ", n);
    const std::size_t start = align(offset_), end = start + std::size_t(n) * sizeof(T);
    offset_ = end;
    high_water_ = std::max(high_water_, end);
    if (measuring_) return nullptr;
    REDI_CHECK(end <= capacity_, "Workspace: request of ", std::size_t(n) * sizeof(T), " bytes exceeds capacity ",
               capacity_, " (lay the buffers out with carve(), or reserve() first)");
    return reinterpret_cast<T*>(base_ + start);
  }

  /// Ensure at least `bytes` of capacity (reallocates only when growing; contents are lost).
  /// The old block is freed before the new one is allocated (the peak stays one arena); if the
  /// allocation throws, the workspace is empty (capacity 0, no block) and every pointer taken
  /// from it before is invalid — owners re-carve (Transformer::ensure does).
  void reserve(std::size_t bytes) {
    if (bytes <= capacity_) return;
    Dev::deallocate(base_);
    base_ = nullptr;
    capacity_ = 0;
    base_ = static_cast<std::byte*>(Dev::allocate(bytes));
    capacity_ = bytes;
    ++allocations_;
    offset_ = 0;
  }

  /// Start handing out from the beginning again (for take() outside carve()).
  void reset() { offset_ = 0; }
  std::size_t used() const { return offset_; }
  std::size_t capacity() const { return capacity_; }
  std::size_t high_water() const { return high_water_; }
  std::size_t allocations() const { return allocations_; }

  static constexpr std::size_t alignment = 256;
  static std::size_t align(std::size_t x) { return (x + alignment - 1) / alignment * alignment; }

private:
  void swap(Workspace& o) noexcept {
    std::swap(base_, o.base_);
    std::swap(capacity_, o.capacity_);
    std::swap(offset_, o.offset_);
    std::swap(high_water_, o.high_water_);
    std::swap(allocations_, o.allocations_);
    std::swap(measuring_, o.measuring_);
  }

  std::byte* base_ = nullptr;
  std::size_t capacity_ = 0, offset_ = 0, high_water_ = 0, allocations_ = 0;
  bool measuring_ = false;
};

}  // namespace redi
