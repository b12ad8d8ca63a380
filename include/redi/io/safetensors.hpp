// redi/io/safetensors.hpp — reader and writer for the safetensors format:
//   [u64 little-endian N][N bytes of JSON header][data buffer]
// header = {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
//           optional "__metadata__": {"key": "string", ...}}; offsets are relative to the
// start of the data buffer.
//
// The reader validates the whole header at open() and reports every problem as a redi::Error
// naming the file, the tensor and the problem. Tolerated (as the reference implementation's
// readers in practice are, and reported rather than rejected): gaps between tensors and
// unused bytes after the last tensor (`trailing_bytes()`), extra fields in a tensor entry,
// and dtypes safetensors knows but redi does not hold (BOOL, I8, U16, F8_*...: listed by
// names()/info() with supported == false; reading them throws).
//
// Hostile files (docs/security.md): the header length is capped (kMaxSafetensorsHeader) and
// parsed with json::Limits (values, depth); every offset and shape product is checked without
// overflow (core/checked.hpp) and against the data buffer before any tensor is read.
#pragma once
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "redi/io/atomic_file.hpp"
#include "redi/io/common.hpp"
#include "redi/io/json.hpp"

namespace redi::io {

/// Largest header accepted (the reference implementation's limit).
inline constexpr std::uint64_t kMaxSafetensorsHeader = 100'000'000;

namespace detail {
struct StDtype { std::string_view name; std::size_t size; bool supported; DType dtype; };
inline const StDtype* find_st_dtype(std::string_view n) {
  static const StDtype table[] = {
      {"F32", 4, true, DType::F32},   {"F64", 8, true, DType::F64},
      {"F16", 2, true, DType::F16},   {"BF16", 2, true, DType::BF16},
      {"I32", 4, true, DType::I32},   {"I64", 8, true, DType::I64},
      {"U8", 1, true, DType::U8},     {"BOOL", 1, false, DType::U8},
      {"I8", 1, false, DType::U8},    {"I16", 2, false, DType::U8},
      {"U16", 2, false, DType::U8},   {"U32", 4, false, DType::U8},
      {"U64", 8, false, DType::U8},   {"F8_E4M3", 1, false, DType::U8},
      {"F8_E5M2", 1, false, DType::U8}};
  for (const auto& d : table)
    if (d.name == n) return &d;
  return nullptr;
}
}  // namespace detail

class SafeTensorsFile : public TensorReads<SafeTensorsFile> {
public:
  /// Opens and validates `path` (memory-mapped where possible).
  static SafeTensorsFile open(const std::filesystem::path& path) {
    return SafeTensorsFile(FileImage::open(path));
  }
  /// Parses an in-memory file; `label` names it in errors.
  static SafeTensorsFile from_bytes(std::vector<std::byte> bytes, std::string label) {
    return SafeTensorsFile(FileImage::from_bytes(std::move(bytes), std::move(label)));
  }

  const std::string& label() const { return img_->label(); }
  /// Tensor names in header order.
  std::vector<std::string> names() const {
    std::vector<std::string> v;
    for (const auto& [n, i] : order_) v.push_back(n);
    return v;
  }
  bool contains(std::string_view name) const { return index_.find(name) != index_.end(); }
  const TensorInfo& info(std::string_view name) const {
    auto it = index_.find(name);
    if (it == index_.end()) REDI_FAIL(label(), ": no tensor named '", name, "'");
    return order_[it->second].second;
  }
  /// The "__metadata__" map (empty when absent).
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  /// Bytes of the data buffer after the end of the last tensor (tolerated, not an error).
  std::uint64_t trailing_bytes() const { return trailing_; }
  /// Size of the JSON header in bytes (N).
  std::uint64_t header_size() const { return header_n_; }
  /// The raw little-endian bytes of a tensor.
  std::span<const std::byte> bytes(std::string_view name) const {
    const TensorInfo& t = info(name);
    return {data_ + t.begin, std::size_t(t.end - t.begin)};
  }

  /// Reads tensor `name` into `out` (exactly numel elements), converting per convertible_from.
  template <Storable T>
  void read_into(std::string_view name, std::span<T> out, const Shape* expected = nullptr) const {
    const TensorInfo& t = info(name);
    check_read<T>(label(), name, t, out.size(), expected);
    convert_elements<T>(data_ + t.begin, t.dtype, out.size(), out.data());
  }
  using TensorReads<SafeTensorsFile>::read_into;  // + read(name[, expected]): see common.hpp

private:
  std::shared_ptr<const FileImage> img_;
  const std::byte* data_ = nullptr;  // data buffer start
  std::uint64_t header_n_ = 0, trailing_ = 0;
  std::vector<std::pair<std::string, TensorInfo>> order_;
  std::map<std::string, std::size_t, std::less<>> index_;
  std::map<std::string, std::string> metadata_;

  explicit SafeTensorsFile(std::shared_ptr<const FileImage> img) : img_(std::move(img)) { parse(); }

  void parse() {
    const std::string& f = label();
    const std::size_t size = img_->size();
    if (size < 8)
      REDI_FAIL(f, ": file is ", size,
                " bytes, too short for the 8-byte safetensors header length");
    header_n_ = load_le(img_->data(), 8);
    if (header_n_ > kMaxSafetensorsHeader)
      REDI_FAIL(f, ": header length ", header_n_, " is implausibly large (limit ",
                kMaxSafetensorsHeader, " bytes); not a safetensors file?");
    if (8 + header_n_ > size)
      REDI_FAIL(f, ": header length ", header_n_, " exceeds the file size ", size,
                " (truncated file?)");
    std::string_view text(reinterpret_cast<const char*>(img_->data()) + 8,
                          std::size_t(header_n_));
    json::Value root = json::parse(text, f + ": safetensors header", 8);
    if (!root.is_object())
      REDI_FAIL(f, ": safetensors header is a JSON ", root.kind_name(), ", expected an object");
    data_ = img_->data() + 8 + header_n_;
    const std::uint64_t buffer = size - 8 - header_n_;

    for (const auto& [name, v] : root.object()) {
      if (name == "__metadata__") {
        if (!v.is_object())
          REDI_FAIL(f, ": \"__metadata__\" is a JSON ", v.kind_name(), ", expected an object");
        for (const auto& [k, s] : v.object()) {
          if (!s.is_string())
            REDI_FAIL(f, ": \"__metadata__\" value for \"", k, "\" is a JSON ", s.kind_name(),
                      ", expected a string");
          metadata_[k] = s.str();
        }
        continue;
      }
      index_[name] = order_.size();
      order_.emplace_back(name, entry(name, v, buffer));
    }

    // Overlaps (empty tensors occupy nothing), and the unused tail.
    std::vector<std::size_t> by_begin;
    std::uint64_t last_end = 0;
    for (std::size_t i = 0; i < order_.size(); ++i) {
      const TensorInfo& t = order_[i].second;
      if (t.end > t.begin) by_begin.push_back(i);
      last_end = std::max(last_end, t.end);
    }
    std::sort(by_begin.begin(), by_begin.end(), [&](std::size_t a, std::size_t b) {
      return order_[a].second.begin < order_[b].second.begin;
    });
    for (std::size_t k = 1; k < by_begin.size(); ++k) {
      const auto& [na, a] = order_[by_begin[k - 1]];
      const auto& [nb, b] = order_[by_begin[k]];
      if (b.begin < a.end)
        REDI_FAIL(f, ": tensors '", na, "' (bytes ", a.begin, "..", a.end, ") and '", nb,
                  "' (bytes ", b.begin, "..", b.end, ") overlap");
    }
    trailing_ = buffer - last_end;
  }

  TensorInfo entry(const std::string& name, const json::Value& v, std::uint64_t buffer) const {
    const std::string& f = label();
    if (!v.is_object())
      REDI_FAIL(f, ": tensor '", name, "': entry is a JSON ", v.kind_name(),
                ", expected an object");
    auto field = [&](const char* key, json::Value::Kind kind) -> const json::Value& {
      const json::Value* x = v.find(key);
      if (!x) REDI_FAIL(f, ": tensor '", name, "': missing \"", key, "\"");
      if (x->kind() != kind)
        REDI_FAIL(f, ": tensor '", name, "': \"", key, "\" is a JSON ", x->kind_name(),
                  ", expected ", json::Value::kind_name(kind));
      return *x;
    };
    auto uints = [&](const char* key, const json::Value& arr) {
      std::vector<std::int64_t> out;
      for (const auto& e : arr.array()) {
        std::int64_t x = -1;
        if (!e.int64(x) || x < 0)
          REDI_FAIL(f, ": tensor '", name, "': \"", key,
                    "\" must hold non-negative integers, found ",
                    e.is_number() ? e.str() : std::string("a JSON ") + e.kind_name());
        out.push_back(x);
      }
      return out;
    };
    TensorInfo t;
    t.dtype_name = field("dtype", json::Value::Kind::String).str();
    const detail::StDtype* d = detail::find_st_dtype(t.dtype_name);
    if (!d) REDI_FAIL(f, ": tensor '", name, "': unknown dtype \"", t.dtype_name, "\"");
    t.supported = d->supported;
    t.dtype = d->dtype;
    t.shape = uints("shape", field("shape", json::Value::Kind::Array));
    auto off = uints("data_offsets", field("data_offsets", json::Value::Kind::Array));
    if (off.size() != 2)
      REDI_FAIL(f, ": tensor '", name, "': \"data_offsets\" has ", off.size(),
                " entries, expected 2 [begin, end]");
    t.begin = std::uint64_t(off[0]);
    t.end = std::uint64_t(off[1]);
    if (t.end < t.begin)
      REDI_FAIL(f, ": tensor '", name, "': data_offsets [", t.begin, ", ", t.end,
                "] end before begin");
    if (t.end > buffer)
      REDI_FAIL(f, ": tensor '", name, "': data_offsets [", t.begin, ", ", t.end,
                "] run past the end of the data buffer (", buffer, " bytes)");
    // numel * size in checked arithmetic: a shape claiming more than kMaxTensorElements (or a
    // product that wraps) is an error, never a small number that happens to match.
    const std::int64_t n =
        checked::numel(t.shape, kMaxTensorElements, f, ": tensor '", name, "': shape ", shape_str(t.shape));
    const std::uint64_t need = std::uint64_t(n) * d->size;  // < 2^44
    if (need != t.end - t.begin)
      REDI_FAIL(f, ": tensor '", name, "': data_offsets [", t.begin, ", ", t.end, "] span ",
                t.end - t.begin, " bytes but shape ", shape_str(t.shape), " of ", t.dtype_name,
                " needs ", need, " bytes");
    return t;
  }
};

/// Collects tensors (non-owning: the data must stay alive until write()) and writes a
/// safetensors file atomically.
class SafeTensorsWriter {
public:
  /// Adds raw little-endian data of `dtype` (copied verbatim at write()).
  void add(std::string name, DType dtype, std::vector<std::int64_t> shape, const void* data) {
    const std::size_t es = dtype_size(dtype);
    const auto* src = static_cast<const std::byte*>(data);
    push(std::move(name), dtype, std::move(shape),
         [src, es](std::size_t first, std::size_t n, std::byte* dst) {
           std::memcpy(dst, src + first * es, n * es);
         });
  }
  /// Adds host elements of T, stored as `store_as` (float types convert with one rounding).
  template <Storable T>
  void add(std::string name, const Shape& shape, const T* data,
           DType store_as = dtype_of<T>::value) {
    if (store_as != dtype_of<T>::value && !(convertible_from<T>(store_as) &&
                                            convertible_from<float>(store_as)))
      REDI_FAIL("SafeTensorsWriter: tensor '", name, "': cannot store ",
                dtype_name(dtype_of<T>::value), " as ", dtype_name(store_as));
    push(std::move(name), store_as, shape.vec(),
         [data, store_as](std::size_t first, std::size_t n, std::byte* dst) {
           store_elements<T>(data + first, n, store_as, dst);
         });
  }
  std::size_t size() const { return entries_.size(); }

  /// Writes all tensors to `path` via a temporary file in the same directory and a rename,
  /// so readers never see a half-written file.
  void write(const std::filesystem::path& path,
             const std::map<std::string, std::string>& metadata = {}) const {
    std::string header = "{";
    if (!metadata.empty()) {
      header += "\"__metadata__\":{";
      bool first = true;
      for (const auto& [k, v] : metadata) {
        if (!first) header += ',';
        header += json::quote(k);
        header += ':';
        header += json::quote(v);
        first = false;
      }
      header += "}";
    }
    std::uint64_t off = 0;
    for (std::size_t i = 0; i < entries_.size(); ++i) {
      const Entry& e = entries_[i];
      std::uint64_t nb = std::uint64_t(numel(e.shape)) * dtype_size(e.dtype);
      if (i || !metadata.empty()) header += ',';
      header += json::quote(e.name);
      header += ":{\"dtype\":\"";
      header += dtype_name(e.dtype);
      header += "\",\"shape\":[";
      for (std::size_t k = 0; k < e.shape.size(); ++k) {
        if (k) header += ',';
        header += std::to_string(e.shape[k]);
      }
      header += "],\"data_offsets\":[" + std::to_string(off) + "," + std::to_string(off + nb) + "]}";
      off += nb;
    }
    header += "}";
    while (header.size() % 8) header += ' ';  // data buffer 8-byte aligned

    AtomicFile out(path);
    std::byte len[8];
    for (int i = 0; i < 8; ++i) len[i] = std::byte((header.size() >> (8 * i)) & 0xff);
    out.put(len, 8);
    out.put(reinterpret_cast<const std::byte*>(header.data()), header.size());
    std::vector<std::byte> chunk;
    for (const Entry& e : entries_) {
      const std::size_t n = std::size_t(numel(e.shape)), es = dtype_size(e.dtype);
      const std::size_t step = std::max<std::size_t>(1, (std::size_t(1) << 22) / es);
      for (std::size_t first = 0; first < n; first += step) {
        std::size_t k = std::min(step, n - first);
        chunk.resize(k * es);
        e.fill(first, k, chunk.data());
        out.put(chunk.data(), chunk.size());
      }
    }
    out.commit();
  }


private:
  struct Entry {
    std::string name;
    DType dtype;
    std::vector<std::int64_t> shape;
    std::function<void(std::size_t, std::size_t, std::byte*)> fill;
  };
  std::vector<Entry> entries_;
  std::map<std::string, std::size_t, std::less<>> names_;

  static std::int64_t numel(const std::vector<std::int64_t>& s) {
    std::int64_t n = 1;
    for (auto d : s) n *= d;
    return n;
  }
  void push(std::string name, DType dtype, std::vector<std::int64_t> shape,
            std::function<void(std::size_t, std::size_t, std::byte*)> fill) {
    if (name == "__metadata__" || name.empty())
      REDI_FAIL("SafeTensorsWriter: invalid tensor name '", name, "'");
    if (names_.count(name)) REDI_FAIL("SafeTensorsWriter: tensor '", name, "' added twice");
    for (auto d : shape)
      if (d < 0) REDI_FAIL("SafeTensorsWriter: tensor '", name, "': negative extent ", d);
    names_[name] = entries_.size();
    entries_.push_back({std::move(name), dtype, std::move(shape), std::move(fill)});
  }
};

}  // namespace redi::io
