// redi/io/common.hpp — what the weight-file readers share: tensor descriptions, a read-only
// file image (mmap on POSIX, read() otherwise), element conversion between file dtypes and
// host types, the TensorSource concept that SafeTensorsFile and TorchCheckpoint satisfy, and
// the limits every reader applies to what a file claims (docs/security.md).
#pragma once
#include <cerrno>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <new>
#include <memory>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "redi/core/checked.hpp"
#include "redi/core/dtype.hpp"
#include "redi/core/error.hpp"
#include "redi/core/tensor.hpp"

#if defined(__unix__) || defined(__APPLE__)
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#define REDI_IO_HAVE_MMAP 1
#endif

namespace redi::io {

/// Most elements one tensor/array of any file may claim (2^40: 4 TiB of F32). A file claiming
/// more is an error before anything is allocated; readers also check that the data exist.
inline constexpr std::int64_t kMaxTensorElements = std::int64_t(1) << 40;

/// One tensor of a weight file as the file describes it.
struct TensorInfo {
  std::string dtype_name;            ///< as spelled in the file ("F32", "BOOL", "torch.FloatStorage")
  bool supported = false;            ///< false: a dtype redi cannot hold; `dtype` is meaningless
  DType dtype = DType::F32;
  std::vector<std::int64_t> shape;   ///< any rank (rank 0 = scalar)
  std::uint64_t begin = 0, end = 0;  ///< safetensors only: byte range in the data buffer

  /// Element count (readers validate shapes at open, so this never overflows for their
  /// TensorInfos; -1 for a shape whose product does not fit, e.g. one built by hand).
  std::int64_t numel() const {
    std::int64_t n = 1;
    for (auto d : shape)
      if (d < 0 || !checked::mul(n, d, n)) return -1;
    return n;
  }
};

inline std::string shape_str(std::span<const std::int64_t> s) {
  std::ostringstream os;
  os << '[';
  for (std::size_t i = 0; i < s.size(); ++i) os << (i ? ", " : "") << s[i];
  os << ']';
  return os.str();
}
inline bool shape_equal(std::span<const std::int64_t> a, const Shape& b) {
  if (a.size() != std::size_t(b.rank)) return false;
  for (int i = 0; i < b.rank; ++i)
    if (a[std::size_t(i)] != b.dims[std::size_t(i)]) return false;
  return true;
}

/// "a, b, c" with at most `max` names, then "... (N more)".
inline std::string join_names(const std::vector<std::string>& v, std::size_t max = 20) {
  std::string o;
  for (std::size_t i = 0; i < v.size() && i < max; ++i) o += (i ? ", " : "") + v[i];
  if (v.size() > max) o += ", ... (" + std::to_string(v.size() - max) + " more)";
  return o;
}

/// Whether elements stored as `from` can be read into T without a lossy reinterpretation:
/// floating types convert among themselves (rounding where narrower), integers only widen.
template <Storable T>
constexpr bool convertible_from(DType from) {
  constexpr DType to = dtype_of<T>::value;
  if (from == to) return true;
  auto is_float = [](DType d) {
    return d == DType::F32 || d == DType::F64 || d == DType::F16 || d == DType::BF16;
  };
  if (is_float(to)) return is_float(from);
  if (to == DType::I64) return from == DType::I32 || from == DType::U8;
  if (to == DType::I32) return from == DType::U8;
  return false;
}

namespace detail {
template <Storable T>
inline T convert_one(const std::byte* p, DType from) {
  auto load = [p]<class S>(S) { S s; std::memcpy(&s, p, sizeof(S)); return s; };
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
    switch (from) {
      case DType::F32: return T(load(float{}));
      case DType::F64: return T(load(double{}));
      case DType::F16: return T(half::to_float(load(std::uint16_t{})));
      case DType::BF16: return T(bf16::to_float(load(std::uint16_t{})));
      default: break;
    }
  } else if constexpr (std::is_same_v<T, half> || std::is_same_v<T, bf16>) {
    switch (from) {
      case DType::F32: return T(load(float{}));
      case DType::F64: return T(float(load(double{})));  // double rounding, documented
      case DType::F16: return T(half::to_float(load(std::uint16_t{})));
      case DType::BF16: return T(bf16::to_float(load(std::uint16_t{})));
      default: break;
    }
  } else {
    switch (from) {
      case DType::I64: return T(load(std::int64_t{}));
      case DType::I32: return T(load(std::int32_t{}));
      case DType::U8: return T(load(std::uint8_t{}));
      default: break;
    }
  }
  return T{};
}
}  // namespace detail

/// Converts n contiguous little-endian elements of dtype `from` into `out` (caller checked
/// convertible_from<T>(from)). Same-type copies are a memcpy.
template <Storable T>
inline void convert_elements(const std::byte* src, DType from, std::size_t n, T* out) {
  if (n == 0) return;
  if (from == dtype_of<T>::value) {
    std::memcpy(static_cast<void*>(out), src, n * sizeof(T));
    return;
  }
  const std::size_t es = dtype_size(from);
  for (std::size_t i = 0; i < n; ++i) out[i] = detail::convert_one<T>(src + i * es, from);
}

/// Writes n host elements of T as dtype `to` (float types only, or same type) into dst.
template <Storable T>
inline void store_elements(const T* src, std::size_t n, DType to, std::byte* dst) {
  if (n == 0) return;
  if (to == dtype_of<T>::value) {
    std::memcpy(dst, static_cast<const void*>(src), n * sizeof(T));
    return;
  }
  for (std::size_t i = 0; i < n; ++i) {
    float f = float(src[i]);
    std::byte* p = dst + i * dtype_size(to);
    switch (to) {
      case DType::F32: std::memcpy(p, &f, 4); break;
      case DType::F64: { double d = double(src[i]); std::memcpy(p, &d, 8); break; }
      case DType::F16: { auto b = half::from_float(f); std::memcpy(p, &b, 2); break; }
      case DType::BF16: { auto b = bf16::from_float(f); std::memcpy(p, &b, 2); break; }
      default: REDI_FAIL("store_elements: cannot store ", dtype_name(dtype_of<T>::value), " as ",
                         dtype_name(to));
    }
  }
}

/// A whole file, read-only: memory-mapped where possible, else read into memory.
class FileImage {
public:
  static std::shared_ptr<const FileImage> open(const std::filesystem::path& path) {
    auto img = std::shared_ptr<FileImage>(new FileImage());
    img->label_ = path.string();
#if REDI_IO_HAVE_MMAP
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) REDI_FAIL(img->label_, ": cannot open: ", std::strerror(errno));
    struct stat st{};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      ::close(fd);
      REDI_FAIL(img->label_, ": not a regular file");
    }
    img->size_ = std::size_t(st.st_size);
    if (img->size_ > 0) {
      void* p = ::mmap(nullptr, img->size_, PROT_READ, MAP_PRIVATE, fd, 0);
      if (p != MAP_FAILED) {
        img->map_ = p;
        img->data_ = static_cast<const std::byte*>(p);
      }
    }
    ::close(fd);
    if (img->map_ || img->size_ == 0) return img;
#endif
    std::FILE* f = std::fopen(path.string().c_str(), "rb");
    if (!f) REDI_FAIL(img->label_, ": cannot open: ", std::strerror(errno));
    std::fseek(f, 0, SEEK_END);
    long n = std::ftell(f);
    std::fseek(f, 0, SEEK_SET);
    img->buf_.resize(n > 0 ? std::size_t(n) : 0);
    std::size_t got = img->buf_.empty() ? 0 : std::fread(img->buf_.data(), 1, img->buf_.size(), f);
    std::fclose(f);
    if (got != img->buf_.size()) REDI_FAIL(img->label_, ": read error");
    img->size_ = img->buf_.size();
    img->data_ = img->buf_.data();
    return img;
  }
  /// An in-memory image (tests, buffers received elsewhere); `label` names it in errors.
  static std::shared_ptr<const FileImage> from_bytes(std::vector<std::byte> bytes,
                                                     std::string label) {
    auto img = std::shared_ptr<FileImage>(new FileImage());
    img->label_ = std::move(label);
    img->buf_ = std::move(bytes);
    img->size_ = img->buf_.size();
    img->data_ = img->buf_.data();
    return img;
  }
  ~FileImage() {
#if REDI_IO_HAVE_MMAP
    if (map_) ::munmap(map_, size_);
#endif
  }
  FileImage(const FileImage&) = delete;
  FileImage& operator=(const FileImage&) = delete;

  const std::byte* data() const { return data_; }
  std::size_t size() const { return size_; }
  const std::string& label() const { return label_; }

private:
  FileImage() = default;
  std::string label_;
  std::vector<std::byte> buf_;
  void* map_ = nullptr;
  const std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

inline std::uint64_t load_le(const std::byte* p, int n) {
  std::uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | std::uint64_t(p[i]);
  return v;
}

/// Throws unless tensor `name` (described by `ti`) of file `label` can be read into `n`
/// elements of T with the expected shape (when given).
template <Storable T>
inline void check_read(const std::string& label, std::string_view name, const TensorInfo& ti,
                       std::size_t n, const Shape* expected) {
  if (!ti.supported)
    REDI_FAIL(label, ": tensor '", name, "' has dtype ", ti.dtype_name,
              ", which redi cannot read");
  if (!convertible_from<T>(ti.dtype))
    REDI_FAIL(label, ": tensor '", name, "' is ", dtype_name(ti.dtype), ", cannot convert it to ",
              dtype_name(dtype_of<T>::value));
  if (expected && !shape_equal(ti.shape, *expected))
    REDI_FAIL(label, ": tensor '", name, "' has shape ", shape_str(ti.shape), ", expected ",
              expected->str());
  if (ti.numel() < 0 || std::int64_t(n) != ti.numel())
    REDI_FAIL(label, ": tensor '", name, "' has ", ti.numel(), " elements (shape ",
              shape_str(ti.shape), "), destination holds ", n);
}

/// A vector of n elements of T; allocation failure is a redi::Error naming `what` (a tensor of a
/// file), never std::bad_alloc.
template <class T, class... What>
std::vector<T> allocate_elements(std::size_t n, What&&... what) {
  if (n > std::vector<T>().max_size())
    REDI_FAIL(std::forward<What>(what)..., ": ", n, " elements cannot be allocated");
  try {
    return std::vector<T>(n);
  } catch (const std::bad_alloc&) {
    REDI_FAIL(std::forward<What>(what)..., ": cannot allocate ", n, " elements of ", sizeof(T),
              " bytes (out of memory)");
  }
}

/// The read overloads SafeTensorsFile and TorchCheckpoint share (CRTP), built on the derived
/// class's label(), info(name) and read_into<T>(name, out, const Shape* expected). A derived
/// class that defines its own read_into must say `using TensorReads<Derived>::read_into;`.
template <class Derived>
class TensorReads {
public:
  /// Reads tensor `name` into `out`, which must hold a tensor of shape `expected`.
  template <Storable T>
  void read_into(std::string_view name, std::span<T> out, const Shape& expected) const {
    self().template read_into<T>(name, out, &expected);
  }
  /// Reads a whole tensor, any shape.
  template <Storable T>
  std::vector<T> read(std::string_view name) const {
    const TensorInfo& t = self().info(name);
    check_read<T>(self().label(), name, t, std::size_t(t.numel()), nullptr);
    auto v = allocate_elements<T>(std::size_t(t.numel()), self().label(), ": tensor '", name, "'");
    self().template read_into<T>(name, std::span<T>(v));
    return v;
  }
  /// Reads a tensor that must have shape `expected` (checked before allocating).
  template <Storable T>
  std::vector<T> read(std::string_view name, const Shape& expected) const {
    const TensorInfo& t = self().info(name);
    check_read<T>(self().label(), name, t, std::size_t(t.numel()), &expected);
    auto v = allocate_elements<T>(std::size_t(t.numel()), self().label(), ": tensor '", name, "'");
    self().template read_into<T>(name, std::span<T>(v), &expected);
    return v;
  }

private:
  const Derived& self() const { return static_cast<const Derived&>(*this); }
};

/// Metadata value `key` of file `file` (e.g. a checkpoint's "redi.step") as an integer in
/// [lo, hi]: absent, not a plain decimal integer, or out of range is a redi::Error naming the file
/// and the key.
inline std::int64_t metadata_int(const std::map<std::string, std::string>& md, const std::string& key,
                                 const std::string& file, std::int64_t lo, std::int64_t hi) {
  auto it = md.find(key);
  if (it == md.end()) REDI_FAIL(file, ": metadata has no '", key, "'");
  const std::string& s = it->second;
  std::int64_t v = 0;
  const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  if (r.ec == std::errc::result_out_of_range || (r.ec == std::errc() && r.ptr == s.data() + s.size() &&
                                                 (v < lo || v > hi)))
    REDI_FAIL(file, ": metadata '", key, "' = \"", s.substr(0, 64), "\" is outside [", lo, ", ", hi, "]");
  if (r.ec != std::errc() || r.ptr != s.data() + s.size() || s.empty())
    REDI_FAIL(file, ": metadata '", key, "' = \"", s.substr(0, 64), "\" is not an integer");
  return v;
}

/// A readable collection of named tensors (SafeTensorsFile, TorchCheckpoint). `read_into`
/// converts (see convertible_from) and checks the element count; `label` names the file.
template <class S>
concept TensorSource = requires(const S& s, std::string_view name, std::span<float> out) {
  { s.label() } -> std::convertible_to<std::string>;
  { s.names() } -> std::convertible_to<std::vector<std::string>>;
  { s.contains(name) } -> std::convertible_to<bool>;
  { s.info(name) } -> std::convertible_to<const TensorInfo&>;
  s.read_into(name, out);
};

}  // namespace redi::io
