// redi/io/torch_pickle.hpp — reads PyTorch `torch.save` checkpoints (the ZIP format of
// torch >= 1.6) without executing anything: a restricted pickle VM that knows only the opcodes
// and globals state dicts use builds a tree of plain values, and tensors are byte ranges of
// the archive's data/<key> entries.
//
// Every tensor reachable through dicts/lists is named by its dotted path: a checkpoint
// {"model": sd, "ema": sd} has "model.blocks.0.attn.qkv.weight", "ema.blocks.0...". Use
// LoadOptions::prefix (state_dict.hpp) to pick one.
//
// Globals: collections.OrderedDict, torch._utils._rebuild_tensor(_v2), _rebuild_parameter and
// torch.<Type>Storage mean what they mean in torch. Any other global (argparse.Namespace in
// "args", numpy scalars, ...) becomes an inert opaque value that is never called; with
// TorchOptions::strict_globals it is an error instead. Opcodes outside the supported set are
// errors naming the opcode and its byte offset in data.pkl.
#pragma once
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "redi/io/common.hpp"
#include "redi/io/zip.hpp"

namespace redi::io {

struct TorchOptions {
  bool strict_globals = false;  ///< reject globals outside the allow-list instead of opaque
};

namespace pickle {

struct Obj;
using Ptr = std::shared_ptr<Obj>;

struct StorageRef {
  std::string key, type;  // type: "FloatStorage"...
  std::int64_t numel = 0;
};
struct TensorRef {
  std::shared_ptr<StorageRef> storage;
  std::int64_t offset = 0;
  std::vector<std::int64_t> shape, stride;
};

struct Obj {
  enum class K { None, Bool, Int, Float, Str, Bytes, Tuple, List, Dict, Global, Storage, Tensor,
                 Opaque };
  K k = K::None;
  std::int64_t i = 0;
  double f = 0;
  std::string s;  // Str/Bytes; Global/Opaque: "module.name"
  std::vector<Ptr> items;
  std::vector<std::pair<Ptr, Ptr>> dict;
  std::shared_ptr<StorageRef> storage;
  TensorRef tensor;
};

inline Ptr make(Obj::K k) { auto p = std::make_shared<Obj>(); p->k = k; return p; }

/// Runs a pickle program (protocols 2..5 opcodes that state dicts use) to its STOP value.
class Machine {
public:
  Machine(std::span<const std::byte> prog, std::string what, TorchOptions opt)
      : b_(prog), what_(std::move(what)), opt_(opt) {}

  std::vector<std::string> opaque;  // non-allow-listed globals met

  Ptr run() {
    while (p_ < b_.size()) {
      op_at_ = p_;
      const auto op = std::uint8_t(b_[p_++]);
      switch (op) {
        case 0x80: u(1); break;                                   // PROTO
        case 0x95: u(8); break;                                   // FRAME
        case '.': if (st_.size() != 1) fail("STOP with ", st_.size(), " stack items"); return pop();
        case '(': marks_.push_back(st_.size()); break;            // MARK
        case '0': pop(); break;                                   // POP
        case '1': pop_mark(); break;                              // POP_MARK
        case '2': push(top()); break;                             // DUP
        case 'N': push(make(Obj::K::None)); break;
        case 0x88: case 0x89: { auto o = make(Obj::K::Bool); o->i = op == 0x88; push(o); break; }
        case 'J': push_int(std::int32_t(std::uint32_t(u(4)))); break;  // BININT
        case 'K': push_int(std::int64_t(u(1))); break;                 // BININT1
        case 'M': push_int(std::int64_t(u(2))); break;                 // BININT2
        case 0x8a: {                                                   // LONG1
          std::size_t n = std::size_t(u(1));
          if (n > 8) fail("LONG1 of ", n, " bytes does not fit 64 bits");
          std::uint64_t v = n ? u(int(n)) : 0;
          if (n && n < 8 && (v >> (8 * n - 1)) & 1) v |= ~std::uint64_t(0) << (8 * n);
          push_int(std::int64_t(v));
          break;
        }
        case 'G': {                                                    // BINFLOAT (big-endian)
          std::uint64_t bits = 0;
          for (std::byte c : take(8)) bits = (bits << 8) | std::uint64_t(c);
          auto o = make(Obj::K::Float);
          std::memcpy(&o->f, &bits, 8);
          push(o);
          break;
        }
        case 'X': push_str(Obj::K::Str, u(4)); break;                  // BINUNICODE
        case 0x8c: push_str(Obj::K::Str, u(1)); break;                 // SHORT_BINUNICODE
        case 0x8d: push_str(Obj::K::Str, u(8)); break;                 // BINUNICODE8
        case 'C': push_str(Obj::K::Bytes, u(1)); break;                // SHORT_BINBYTES
        case 'B': push_str(Obj::K::Bytes, u(4)); break;                // BINBYTES
        case 0x8e: push_str(Obj::K::Bytes, u(8)); break;               // BINBYTES8
        case ']': push(make(Obj::K::List)); break;
        case '}': push(make(Obj::K::Dict)); break;
        case ')': push(make(Obj::K::Tuple)); break;
        case 't': { auto o = make(Obj::K::Tuple); o->items = pop_mark(); push(o); break; }
        case 0x85: case 0x86: case 0x87: {                             // TUPLE1..3
          auto o = make(Obj::K::Tuple);
          o->items.resize(std::size_t(op - 0x84));
          for (auto it = o->items.rbegin(); it != o->items.rend(); ++it) *it = pop();
          push(o);
          break;
        }
        case 'a': { Ptr v = pop(); append(top(), {v}); break; }        // APPEND
        case 'e': { auto v = pop_mark(); append(top(), v); break; }    // APPENDS
        case 's': { Ptr v = pop(), k = pop(); setitems(top(), {k, v}); break; }
        case 'u': { auto v = pop_mark(); setitems(top(), v); break; }  // SETITEMS
        case 'c': {                                                    // GLOBAL
          std::string mod = line(), name = line();
          push(global(mod, name));
          break;
        }
        case 0x93: {                                                   // STACK_GLOBAL
          Ptr name = pop(), mod = pop();
          if (mod->k != Obj::K::Str || name->k != Obj::K::Str) fail("STACK_GLOBAL of non-strings");
          push(global(mod->s, name->s));
          break;
        }
        case 'R': { Ptr args = pop(), fn = pop(); push(reduce(fn, args)); break; }  // REDUCE
        case 0x81: {                                                   // NEWOBJ
          Ptr args = pop(), cls = pop();
          if (cls->k != Obj::K::Opaque) fail("NEWOBJ of ", cls->s.empty() ? "a non-class" : cls->s);
          push(opaque_value(cls->s));
          break;
        }
        case 'b': {                                                    // BUILD
          Ptr state = pop();
          Obj::K k = top()->k;
          if (k != Obj::K::Dict && k != Obj::K::Opaque && k != Obj::K::Tensor)
            fail("BUILD on an unsupported object");
          break;  // state (e.g. a state dict's _metadata) is not needed
        }
        case 'Q': push(persistent(pop())); break;                      // BINPERSID
        case 'h': push(memo_get(u(1))); break;                         // BINGET
        case 'j': push(memo_get(u(4))); break;                         // LONG_BINGET
        case 'q': memo_[u(1)] = top(); break;                          // BINPUT
        case 'r': memo_[u(4)] = top(); break;                          // LONG_BINPUT
        case 0x94: memo_[memo_.size()] = top(); break;                 // MEMOIZE
        default: {
          std::string c = (op >= 0x20 && op < 0x7f) ? std::string(" ('") + char(op) + "')" : "";
          const char* hex = "0123456789abcdef";
          fail("unsupported pickle opcode 0x", hex[op >> 4], hex[op & 15], c);
        }
      }
    }
    fail("pickle ends without STOP");
  }

private:
  std::span<const std::byte> b_;
  std::string what_;
  TorchOptions opt_;
  std::size_t p_ = 0, op_at_ = 0;
  std::vector<Ptr> st_;
  std::vector<std::size_t> marks_;
  std::map<std::uint64_t, Ptr> memo_;

  template <class... A>
  [[noreturn]] void fail(A&&... a) const {
    REDI_FAIL(what_, " byte ", op_at_, ": ", std::forward<A>(a)...);
  }
  std::span<const std::byte> take(std::uint64_t n) {
    if (n > b_.size() - p_) fail("truncated pickle (needs ", n, " more bytes)");
    auto s = b_.subspan(p_, std::size_t(n));
    p_ += std::size_t(n);
    return s;
  }
  std::uint64_t u(int n) { return load_le(take(std::uint64_t(n)).data(), n); }
  std::string line() {
    std::string s;
    for (;;) {
      char c = char(take(1)[0]);
      if (c == '\n') return s;
      if (s.size() > 256) fail("GLOBAL name too long");
      s += c;
    }
  }
  void push(Ptr o) {
    if (st_.size() > (1u << 20)) fail("pickle stack too deep");
    st_.push_back(std::move(o));
  }
  void push_int(std::int64_t v) { auto o = make(Obj::K::Int); o->i = v; push(o); }
  void push_str(Obj::K k, std::uint64_t n) {
    auto s = take(n);
    auto o = make(k);
    o->s.assign(reinterpret_cast<const char*>(s.data()), s.size());
    push(o);
  }
  Ptr pop() {
    if (st_.empty() || (!marks_.empty() && st_.size() <= marks_.back())) fail("stack underflow");
    Ptr o = st_.back();
    st_.pop_back();
    return o;
  }
  Ptr top() {
    if (st_.empty()) fail("stack underflow");
    return st_.back();
  }
  std::vector<Ptr> pop_mark() {
    if (marks_.empty()) fail("no MARK on the stack");
    std::vector<Ptr> v(st_.begin() + std::ptrdiff_t(marks_.back()), st_.end());
    st_.resize(marks_.back());
    marks_.pop_back();
    return v;
  }
  Ptr memo_get(std::uint64_t i) {
    auto it = memo_.find(i);
    if (it == memo_.end()) fail("memo key ", i, " not set");
    return it->second;
  }
  void append(const Ptr& list, const std::vector<Ptr>& v) {
    if (list->k == Obj::K::List) list->items.insert(list->items.end(), v.begin(), v.end());
    else if (list->k != Obj::K::Opaque) fail("APPEND to a non-list");
  }
  void setitems(const Ptr& d, const std::vector<Ptr>& kv) {
    if (kv.size() % 2) fail("SETITEMS with an odd number of items");
    if (d->k == Obj::K::Opaque) return;
    if (d->k != Obj::K::Dict) fail("SETITEM on a non-dict");
    for (std::size_t i = 0; i < kv.size(); i += 2) d->dict.emplace_back(kv[i], kv[i + 1]);
  }
  Ptr opaque_value(const std::string& what) {
    auto o = make(Obj::K::Opaque);
    o->s = what;
    return o;
  }
  Ptr global(const std::string& mod, const std::string& name) {
    static const char* storages[] = {"FloatStorage", "HalfStorage", "BFloat16Storage",
                                     "DoubleStorage", "LongStorage", "IntStorage", "ByteStorage",
                                     "BoolStorage", "CharStorage", "ShortStorage"};
    bool ok = (mod == "collections" && name == "OrderedDict") ||
              (mod == "torch._utils" &&
               (name == "_rebuild_tensor_v2" || name == "_rebuild_tensor" ||
                name == "_rebuild_parameter" || name == "_rebuild_parameter_with_state"));
    if (mod == "torch")
      for (const char* s : storages) ok = ok || name == s;
    std::string full = mod + "." + name;
    if (ok) {
      auto o = make(Obj::K::Global);
      o->s = full;
      return o;
    }
    if (opt_.strict_globals) fail("GLOBAL '", full, "' is not in the allow-list");
    opaque.push_back(full);
    return opaque_value(full);
  }
  std::vector<std::int64_t> ints(const Ptr& t, const char* what) {
    if (t->k != Obj::K::Tuple) fail(what, " is not a tuple");
    std::vector<std::int64_t> v;
    for (const auto& x : t->items) {
      if (x->k != Obj::K::Int) fail(what, " holds a non-integer");
      v.push_back(x->i);
    }
    return v;
  }
  Ptr reduce(const Ptr& fn, const Ptr& args) {
    if (fn->k == Obj::K::Opaque) return opaque_value(fn->s + "(...)");
    if (fn->k != Obj::K::Global) fail("REDUCE of a non-callable");
    if (args->k != Obj::K::Tuple) fail("REDUCE arguments are not a tuple");
    const auto& a = args->items;
    if (fn->s == "collections.OrderedDict") {
      if (!a.empty()) fail("OrderedDict with arguments");
      return make(Obj::K::Dict);
    }
    if (fn->s == "torch._utils._rebuild_tensor_v2" || fn->s == "torch._utils._rebuild_tensor") {
      if (a.size() < 4 || a[0]->k != Obj::K::Storage || a[1]->k != Obj::K::Int)
        fail(fn->s, ": expected (storage, offset, size, stride, ...)");
      auto o = make(Obj::K::Tensor);
      o->tensor.storage = a[0]->storage;
      o->tensor.offset = a[1]->i;
      o->tensor.shape = ints(a[2], "tensor size");
      o->tensor.stride = ints(a[3], "tensor stride");
      if (o->tensor.shape.size() != o->tensor.stride.size()) fail("size and stride ranks differ");
      return o;
    }
    if (fn->s.starts_with("torch._utils._rebuild_parameter")) {
      if (a.empty() || a[0]->k != Obj::K::Tensor) fail(fn->s, ": expected a tensor argument");
      return a[0];
    }
    fail("REDUCE of '", fn->s, "' is not supported");
  }
  Ptr persistent(const Ptr& pid) {
    // ('storage', torch.<T>Storage, key, location, numel)
    if (pid->k != Obj::K::Tuple || pid->items.size() < 5 || pid->items[0]->k != Obj::K::Str ||
        pid->items[0]->s != "storage")
      fail("persistent id is not a ('storage', type, key, location, numel) tuple");
    const auto& a = pid->items;
    if (a[1]->k != Obj::K::Global || !a[1]->s.starts_with("torch.") ||
        !a[1]->s.ends_with("Storage"))
      fail("persistent id storage type is not a torch storage class");
    if (a[2]->k != Obj::K::Str || a[4]->k != Obj::K::Int || a[4]->i < 0)
      fail("persistent id has a bad key or element count");
    auto o = make(Obj::K::Storage);
    o->storage = std::make_shared<StorageRef>(StorageRef{a[2]->s, a[1]->s.substr(6), a[4]->i});
    return o;
  }
};

}  // namespace pickle

class TorchCheckpoint : public TensorReads<TorchCheckpoint> {
public:
  static TorchCheckpoint open(const std::filesystem::path& path, TorchOptions opt = {}) {
    return TorchCheckpoint(FileImage::open(path), opt);
  }
  static TorchCheckpoint from_bytes(std::vector<std::byte> bytes, std::string label,
                                    TorchOptions opt = {}) {
    return TorchCheckpoint(FileImage::from_bytes(std::move(bytes), std::move(label)), opt);
  }

  const std::string& label() const { return zip_.label(); }
  /// Dotted tensor names in pickle order.
  std::vector<std::string> names() const {
    std::vector<std::string> v;
    for (const auto& t : tensors_) v.push_back(t.name);
    return v;
  }
  bool contains(std::string_view name) const { return index_.find(name) != index_.end(); }
  const TensorInfo& info(std::string_view name) const { return get(name).info; }
  /// Globals outside the allow-list that the pickle referenced (kept inert).
  const std::vector<std::string>& opaque_globals() const { return opaque_; }

  template <Storable T>
  void read_into(std::string_view name, std::span<T> out, const Shape* expected = nullptr) const {
    const Tensor& t = get(name);
    check_read<T>(label(), name, t.info, out.size(), expected);
    const std::size_t es = dtype_size(t.info.dtype);
    const std::byte* base = t.data + std::size_t(t.offset) * es;
    // Contiguous (row-major) fast path; size-1 dims may have any stride.
    bool contiguous = true;
    std::int64_t want = 1;
    for (std::size_t d = t.info.shape.size(); d-- > 0;) {
      if (t.info.shape[d] != 1 && t.stride[d] != want) contiguous = false;
      want *= t.info.shape[d];
    }
    if (contiguous || out.empty()) {
      convert_elements<T>(base, t.info.dtype, out.size(), out.data());
      return;
    }
    const std::size_t rank = t.info.shape.size();
    std::vector<std::int64_t> idx(rank, 0);
    std::int64_t src = 0;
    for (std::size_t i = 0; i < out.size(); ++i) {
      convert_elements<T>(base + std::size_t(src) * es, t.info.dtype, 1, out.data() + i);
      for (std::size_t d = rank; d-- > 0;) {  // odometer increment
        src += t.stride[d];
        if (++idx[d] < t.info.shape[d]) break;
        src -= t.stride[d] * idx[d];
        idx[d] = 0;
      }
    }
  }
  using TensorReads<TorchCheckpoint>::read_into;  // + read(name[, expected]): see common.hpp

private:
  struct Tensor {
    std::string name;
    TensorInfo info;
    const std::byte* data = nullptr;  // storage bytes
    std::int64_t offset = 0;
    std::vector<std::int64_t> stride;
  };
  std::shared_ptr<const FileImage> img_;
  zip::Archive zip_;
  std::vector<Tensor> tensors_;
  std::map<std::string, std::size_t, std::less<>> index_;
  std::vector<std::string> opaque_;
  std::size_t visits_ = 0;

  static std::shared_ptr<const FileImage> not_legacy(std::shared_ptr<const FileImage> img) {
    const std::byte* d = img->data();
    if (img->size() >= 2 && d[0] == std::byte(0x80) && d[1] == std::byte(0x02))
      REDI_FAIL(img->label(), ": legacy (pre-1.6, non-zip) torch.save format is not supported; "
                              "re-save it with a current torch.save");
    return img;
  }
  TorchCheckpoint(std::shared_ptr<const FileImage> img, TorchOptions opt)
      : img_(not_legacy(img)), zip_(img) {
    const zip::Entry* pkl = nullptr;
    for (const auto& e : zip_.entries()) {
      auto slash = e.name.find('/');
      if (slash != std::string::npos && e.name.substr(slash) == "/data.pkl") { pkl = &e; break; }
    }
    if (!pkl) REDI_FAIL(label(), ": no <archive>/data.pkl entry; not a torch.save checkpoint");
    const std::string dir = pkl->name.substr(0, pkl->name.size() - 8);  // "archive/"
    if (const zip::Entry* bo = zip_.find(dir + "byteorder")) {
      auto b = zip_.bytes(*bo);
      std::string order(reinterpret_cast<const char*>(b.data()), b.size());
      if (order != "little") REDI_FAIL(label(), ": byteorder '", order, "' is not supported");
    }
    auto prog = zip_.bytes(*pkl);
    if (zip::crc32(prog) != pkl->crc) REDI_FAIL(label(), ": ", pkl->name, " fails its CRC check");
    pickle::Machine vm(prog, label() + ": " + pkl->name, opt);
    pickle::Ptr root = vm.run();
    opaque_ = std::move(vm.opaque);
    walk(root, "", dir, 0);
  }

  const Tensor& get(std::string_view name) const {
    auto it = index_.find(name);
    if (it == index_.end()) REDI_FAIL(label(), ": no tensor named '", name, "'");
    return tensors_[it->second];
  }

  static bool storage_dtype(const std::string& type, DType& d) {
    static const std::pair<const char*, DType> m[] = {
        {"FloatStorage", DType::F32}, {"DoubleStorage", DType::F64}, {"HalfStorage", DType::F16},
        {"BFloat16Storage", DType::BF16}, {"IntStorage", DType::I32}, {"LongStorage", DType::I64},
        {"ByteStorage", DType::U8}};
    for (const auto& [n, t] : m)
      if (type == n) { d = t; return true; }
    return false;
  }

  void walk(const pickle::Ptr& o, const std::string& path, const std::string& dir, int depth) {
    using K = pickle::Obj::K;
    if (depth > 64) REDI_FAIL(label(), ": object nesting deeper than 64 at '", path, "'");
    if (++visits_ > (1u << 22))  // shared references can make a small pickle a huge tree
      REDI_FAIL(label(), ": object graph too large (more than 2^22 nodes reachable)");
    auto child = [&](const std::string& key) { return path.empty() ? key : path + "." + key; };
    if (o->k == K::Dict) {
      for (const auto& [k, v] : o->dict) {
        if (k->k == K::Str) walk(v, child(k->s), dir, depth + 1);
        else if (k->k == K::Int) walk(v, child(std::to_string(k->i)), dir, depth + 1);
      }
    } else if (o->k == K::List || o->k == K::Tuple) {
      for (std::size_t i = 0; i < o->items.size(); ++i)
        walk(o->items[i], child(std::to_string(i)), dir, depth + 1);
    } else if (o->k == K::Tensor) {
      add_tensor(o->tensor, path, dir);
    }
  }

  void add_tensor(const pickle::TensorRef& r, const std::string& name, const std::string& dir) {
    if (index_.count(name)) REDI_FAIL(label(), ": tensor name '", name, "' occurs twice");
    Tensor t;
    t.name = name;
    t.offset = r.offset;
    t.stride = r.stride;
    t.info.shape = r.shape;
    t.info.supported = storage_dtype(r.storage->type, t.info.dtype);
    t.info.dtype_name = t.info.supported ? std::string(dtype_name(t.info.dtype)) : r.storage->type;
    const zip::Entry* e = zip_.find(dir + "data/" + r.storage->key);
    if (!e)
      REDI_FAIL(label(), ": tensor '", name, "': storage entry '", dir, "data/", r.storage->key,
                "' is missing from the archive");
    auto bytes = zip_.bytes(*e);
    t.data = bytes.data();
    if (t.info.supported) {
      const std::uint64_t es = dtype_size(t.info.dtype);
      if (std::uint64_t(r.storage->numel) > bytes.size() / es)
        REDI_FAIL(label(), ": tensor '", name, "': storage '", r.storage->key, "' holds ",
                  bytes.size(), " bytes, fewer than its ", r.storage->numel, " elements");
      // The furthest element must lie inside the storage.
      bool empty = false;
      std::int64_t last = r.offset;
      for (std::size_t d = 0; d < r.shape.size(); ++d) {
        if (r.shape[d] < 0 || r.stride[d] < 0)
          REDI_FAIL(label(), ": tensor '", name, "': negative size or stride");
        if (r.shape[d] == 0) empty = true;
        else if (r.stride[d] > 0 &&
                 r.shape[d] - 1 > (std::int64_t(1) << 62) / r.stride[d])
          REDI_FAIL(label(), ": tensor '", name, "': stride overflow");
        else last += (r.shape[d] - 1) * r.stride[d];
      }
      if (r.offset < 0 || (!empty && last >= r.storage->numel))
        REDI_FAIL(label(), ": tensor '", name, "' (offset ", r.offset, ", shape ",
                  shape_str(r.shape), ", stride ", shape_str(r.stride),
                  ") reaches past its storage of ", r.storage->numel, " elements");
    }
    index_[name] = tensors_.size();
    tensors_.push_back(std::move(t));
  }
};

}  // namespace redi::io
