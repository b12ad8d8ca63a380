// redi/core/tensor.hpp — shapes, non-owning views and owning tensors (contiguous, row-major,
// rank <= 4) over any device tag. Ops take raw pointers and sizes (llm.c style); tensors and
// views carry shapes between them and check them.
#pragma once
#include <array>
#include <cstdint>
#include <initializer_list>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "redi/core/device.hpp"
#include "redi/core/dtype.hpp"
#include "redi/core/error.hpp"

namespace redi {

/// Up to four extents, row-major.
struct Shape {
  std::array<std::int64_t, 4> dims{1, 1, 1, 1};
  int rank = 0;

  Shape() = default;
  Shape(std::initializer_list<std::int64_t> d) {
    REDI_CHECK(d.size() <= 4, "Shape: rank ", d.size(), " > 4");
    for (auto v : d) {
      REDI_CHECK(v >= 0, "Shape: negative extent ", v);
      dims[rank++] = v;
    }
  }
  static Shape from(const std::vector<std::int64_t>& d) {
    Shape s;
    REDI_CHECK(d.size() <= 4, "Shape: rank ", d.size(), " > 4");
    for (auto v : d) s.dims[s.rank++] = v;
    return s;
  }
  std::int64_t operator[](int i) const { return dims[i]; }
  std::int64_t numel() const {
    std::int64_t n = 1;
    for (int i = 0; i < rank; ++i) n *= dims[i];
    return n;
  }
  std::vector<std::int64_t> vec() const { return {dims.begin(), dims.begin() + rank}; }
  friend bool operator==(const Shape& a, const Shape& b) {
    if (a.rank != b.rank) return false;
    for (int i = 0; i < a.rank; ++i)
      if (a.dims[i] != b.dims[i]) return false;
    return true;
  }
  std::string str() const {
    std::ostringstream os;
    os << '[';
    for (int i = 0; i < rank; ++i) os << (i ? ", " : "") << dims[i];
    os << ']';
    return os.str();
  }
};

/// A non-owning view of contiguous memory on device Dev.
template <class T, Device Dev = Cpu>
struct View {
  T* data = nullptr;
  Shape shape;
  std::int64_t numel() const { return shape.numel(); }
  std::size_t bytes() const { return std::size_t(numel()) * sizeof(T); }
  /// Host-only element access (CPU views).
  T& operator[](std::int64_t i) const requires(Dev::is_host) { return data[i]; }
  operator View<const T, Dev>() const { return {data, shape}; }
};

/// An owning contiguous tensor on device Dev. Move-only.
template <class T, Device Dev = Cpu>
class Tensor {
public:
  Tensor() = default;
  explicit Tensor(Shape s) : shape_(s) {
    data_ = static_cast<T*>(Dev::allocate(bytes()));
    if (data_) Dev::memset_zero(data_, bytes());
  }
  ~Tensor() { Dev::deallocate(data_); }
  Tensor(const Tensor&) = delete;
  Tensor& operator=(const Tensor&) = delete;
  Tensor(Tensor&& o) noexcept : data_(std::exchange(o.data_, nullptr)), shape_(o.shape_) {}
  Tensor& operator=(Tensor&& o) noexcept {
    if (this != &o) {
      Dev::deallocate(data_);
      data_ = std::exchange(o.data_, nullptr);
      shape_ = o.shape_;
    }
    return *this;
  }

  T* data() { return data_; }
  const T* data() const { return data_; }
  const Shape& shape() const { return shape_; }
  std::int64_t numel() const { return shape_.numel(); }
  std::size_t bytes() const { return std::size_t(numel()) * sizeof(T); }
  View<T, Dev> view() { return {data_, shape_}; }
  View<const T, Dev> view() const { return {data_, shape_}; }
  void zero() { Dev::memset_zero(data_, bytes()); }
  /// A new zeroed buffer of shape s; the old one is freed FIRST, so growing a large buffer never
  /// holds both (contents are discarded).
  void reallocate(Shape s) {
    Dev::deallocate(std::exchange(data_, nullptr));
    shape_ = Shape{};
    *this = Tensor(s);
  }

  T& operator[](std::int64_t i) requires(Dev::is_host) { return data_[i]; }
  const T& operator[](std::int64_t i) const requires(Dev::is_host) { return data_[i]; }

  /// Copy to a host vector (any device).
  std::vector<T> to_host() const {
    std::vector<T> v(static_cast<std::size_t>(numel()));
    Dev::copy_to_host(v.data(), data_, bytes());
    return v;
  }
  /// Copy from a host buffer of exactly numel() elements.
  void from_host(const T* src, std::size_t n) {
    REDI_CHECK(n == std::size_t(numel()), "Tensor::from_host: ", n, " elements for shape ",
               shape_.str());
    Dev::copy_from_host(data_, src, bytes());
  }
  void from_host(const std::vector<T>& v) { from_host(v.data(), v.size()); }

private:
  T* data_ = nullptr;
  Shape shape_;
};

}  // namespace redi
