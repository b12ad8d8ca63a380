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
//
// Hostile files (docs/security.md): pickle objects live in one arena and refer to each other
// by index, so freeing them is a flat loop (no recursion, no leak through reference cycles);
// nesting depth is checked while parsing and again while naming tensors; objects, memo entries,
// visited nodes, tensors and name lengths are bounded (TorchOptions); every storage offset,
// size and stride is checked in overflow-free arithmetic (core/checked.hpp) against the bytes
// the archive really holds, for supported and unsupported dtypes alike; the zip layer checks
// CRC-32s and offsets (zip.hpp).
#pragma once
#include <algorithm>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "redi/io/common.hpp"
#include "redi/io/zip.hpp"

namespace redi::io {

/// Options and limits of the torch checkpoint reader. The limits bound the work and memory a
/// crafted data.pkl can cause; each default is far above what a real state dict needs (an
/// official DiT-XL/2 checkpoint has ~700 tensors and ~20k pickle objects, nesting depth 3).
struct TorchOptions {
  bool strict_globals = false;           ///< reject globals outside the allow-list instead of opaque
  std::size_t max_depth = 64;            ///< container nesting (while parsing and while walking)
  std::size_t max_objects = 1u << 20;    ///< pickle objects built (and memo entries, stack items)
  std::size_t max_nodes = 1u << 20;      ///< nodes visited while naming tensors (shared refs count each time)
  std::size_t max_tensors = 1u << 18;    ///< tensors in one checkpoint
  std::size_t max_name = 1024;           ///< bytes of one dotted tensor name
  std::int64_t max_expanded = std::int64_t(1) << 28;  ///< elements of a tensor larger than its storage (stride 0)
};

namespace pickle {

using Ref = std::uint32_t;  ///< index of an object in the Machine's arena

struct StorageRef {
  std::string key, type;  // type: "FloatStorage"...
  std::int64_t numel = 0;
};
struct TensorRef {
  std::size_t storage = 0;  // index into Machine::storages
  std::int64_t offset = 0;
  std::vector<std::int64_t> shape, stride;
};

/// One pickle value. Containers hold arena indices, never owning pointers: the whole object
/// graph (cycles included) is freed with the arena, without recursion.
struct Obj {
  enum class K : std::uint8_t { None, Bool, Int, Float, Str, Bytes, Tuple, List, Dict, Global,
                                Storage, Tensor, Opaque };
  K k = K::None;
  std::uint32_t depth = 0;  // nesting below this object, as built (see Machine)
  std::int64_t i = 0;       // Int/Bool value; Storage/Tensor: index into storages/tensors
  double f = 0;
  std::string s;            // Str/Bytes; Global/Opaque: "module.name" (at most 256 + a few bytes)
  std::vector<Ref> items;   // Tuple/List items; Dict: key, value, key, value, ...
};

/// Runs a pickle program (protocols 2..5 opcodes that state dicts use) to its STOP value.
/// Nothing is executed; every count is bounded by TorchOptions before it grows.
class Machine {
public:
  Machine(std::span<const std::byte> prog, std::string what, TorchOptions opt)
      : b_(prog), what_(std::move(what)), opt_(opt) {}

  std::vector<std::string> opaque;    // distinct non-allow-listed globals met (at most 64)
  std::vector<Obj> objects;           // the arena
  std::vector<StorageRef> storages;
  std::vector<TensorRef> tensors;

  const Obj& at(Ref r) const { return objects[r]; }

  Ref run() {
    while (p_ < b_.size()) {
      op_at_ = p_;
      const auto op = std::uint8_t(b_[p_++]);
      switch (op) {
        case 0x80: u(1); break;                                   // PROTO
        case 0x95: u(8); break;                                   // FRAME
        case '.': if (st_.size() != 1 || !marks_.empty()) fail("STOP with ", st_.size(), " stack items");
                  return pop();
        case '(':                                                 // MARK
          if (marks_.size() >= opt_.max_objects) fail("too many MARKs");
          marks_.push_back(st_.size());
          break;
        case '0': pop(); break;                                   // POP
        case '1': pop_mark(); break;                              // POP_MARK
        case '2': push(top()); break;                             // DUP
        case 'N': push(make(Obj::K::None)); break;
        case 0x88: case 0x89: { Ref o = make(Obj::K::Bool); objects[o].i = op == 0x88; push(o); break; }
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
          Ref o = make(Obj::K::Float);
          std::memcpy(&objects[o].f, &bits, 8);
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
        case 't': { auto v = pop_mark(); push(container(Obj::K::Tuple, std::move(v))); break; }
        case 0x85: case 0x86: case 0x87: {                             // TUPLE1..3
          std::vector<Ref> v(std::size_t(op - 0x84));
          for (auto it = v.rbegin(); it != v.rend(); ++it) *it = pop();
          push(container(Obj::K::Tuple, std::move(v)));
          break;
        }
        case 'a': { Ref v = pop(); append(top(), {v}); break; }        // APPEND
        case 'e': { auto v = pop_mark(); append(top(), v); break; }    // APPENDS
        case 's': { Ref v = pop(), k = pop(); setitems(top(), {k, v}); break; }
        case 'u': { auto v = pop_mark(); setitems(top(), v); break; }  // SETITEMS
        case 'c': {                                                    // GLOBAL
          std::string mod = line(), name = line();
          push(global(mod, name));
          break;
        }
        case 0x93: {                                                   // STACK_GLOBAL
          Ref name = pop(), mod = pop();
          if (at(mod).k != Obj::K::Str || at(name).k != Obj::K::Str) fail("STACK_GLOBAL of non-strings");
          push(global(at(mod).s, at(name).s));
          break;
        }
        case 'R': { Ref args = pop(), fn = pop(); push(reduce(fn, args)); break; }  // REDUCE
        case 0x81: {                                                   // NEWOBJ
          Ref args = pop(), cls = pop();
          (void)args;
          if (at(cls).k != Obj::K::Opaque)
            fail("NEWOBJ of ", at(cls).s.empty() ? std::string("a non-class") : at(cls).s);
          push(opaque_value(at(cls).s));
          break;
        }
        case 'b': {                                                    // BUILD
          pop();
          Obj::K k = at(top()).k;
          if (k != Obj::K::Dict && k != Obj::K::Opaque && k != Obj::K::Tensor)
            fail("BUILD on an unsupported object");
          break;  // state (e.g. a state dict's _metadata) is not needed
        }
        case 'Q': { Ref pid = pop(); push(persistent(pid)); break; }   // BINPERSID
        case 'h': push(memo_get(u(1))); break;                         // BINGET
        case 'j': push(memo_get(u(4))); break;                         // LONG_BINGET
        case 'q': memo_put(u(1)); break;                               // BINPUT
        case 'r': memo_put(u(4)); break;                               // LONG_BINPUT
        case 0x94: memo_put(memo_.size()); break;                      // MEMOIZE
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
  std::vector<Ref> st_;
  std::vector<std::size_t> marks_;
  std::map<std::uint64_t, Ref> memo_;

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
  Ref make(Obj::K k) {
    if (objects.size() >= opt_.max_objects)
      fail("more than ", opt_.max_objects, " pickle objects (TorchOptions::max_objects)");
    objects.emplace_back();
    objects.back().k = k;
    return Ref(objects.size() - 1);
  }
  /// A tuple/list/dict holding `v`; its depth is one more than its deepest item's.
  Ref container(Obj::K k, std::vector<Ref> v) {
    std::uint32_t d = 0;
    for (Ref r : v) d = std::max(d, at(r).depth + 1);
    check_depth(d);
    Ref o = make(k);
    objects[o].items = std::move(v);
    objects[o].depth = d;
    return o;
  }
  void check_depth(std::uint32_t d) const {
    if (d > opt_.max_depth) fail("objects nested deeper than ", opt_.max_depth, " (TorchOptions::max_depth)");
  }
  void push(Ref o) {
    if (st_.size() >= opt_.max_objects) fail("pickle stack too deep");
    st_.push_back(o);
  }
  void push_int(std::int64_t v) { Ref o = make(Obj::K::Int); objects[o].i = v; push(o); }
  void push_str(Obj::K k, std::uint64_t n) {
    auto s = take(n);
    Ref o = make(k);
    objects[o].s.assign(reinterpret_cast<const char*>(s.data()), s.size());
    push(o);
  }
  Ref pop() {
    if (st_.empty() || (!marks_.empty() && st_.size() <= marks_.back())) fail("stack underflow");
    Ref o = st_.back();
    st_.pop_back();
    return o;
  }
  Ref top() {
    if (st_.empty() || (!marks_.empty() && st_.size() <= marks_.back())) fail("stack underflow");
    return st_.back();
  }
  std::vector<Ref> pop_mark() {
    if (marks_.empty()) fail("no MARK on the stack");
    std::vector<Ref> v(st_.begin() + std::ptrdiff_t(marks_.back()), st_.end());
    st_.resize(marks_.back());
    marks_.pop_back();
    return v;
  }
  Ref memo_get(std::uint64_t i) {
    auto it = memo_.find(i);
    if (it == memo_.end()) fail("memo key ", i, " not set");
    return it->second;
  }
  void memo_put(std::uint64_t i) {
    Ref t = top();
    if (memo_.size() >= opt_.max_objects && !memo_.count(i)) fail("memo too large");
    memo_[i] = t;
  }
  // Adding items to a container already inside another one does not update the outer depths;
  // TorchCheckpoint's walk enforces max_depth again, so the bound holds either way.
  void grow(Ref c, const std::vector<Ref>& v) {
    std::uint32_t d = at(c).depth;
    for (Ref r : v) d = std::max(d, at(r).depth + 1);
    check_depth(d);
    if (objects[c].items.size() + v.size() > opt_.max_objects) fail("container too large");
    objects[c].items.insert(objects[c].items.end(), v.begin(), v.end());
    objects[c].depth = d;
  }
  void append(Ref list, const std::vector<Ref>& v) {
    if (at(list).k == Obj::K::List) grow(list, v);
    else if (at(list).k != Obj::K::Opaque) fail("APPEND to a non-list");
  }
  void setitems(Ref d, const std::vector<Ref>& kv) {
    if (kv.size() % 2) fail("SETITEMS with an odd number of items");
    if (at(d).k == Obj::K::Opaque) return;
    if (at(d).k != Obj::K::Dict) fail("SETITEM on a non-dict");
    grow(d, kv);
  }
  Ref opaque_value(std::string what) {  // by value: `what` may live in the arena
    what.resize(std::min<std::size_t>(what.size(), 300));
    Ref o = make(Obj::K::Opaque);
    objects[o].s = std::move(what);  // names stay short however often they are wrapped
    return o;
  }
  Ref global(const std::string& mod, const std::string& name) {
    static const char* storages_[] = {"FloatStorage", "HalfStorage", "BFloat16Storage",
                                      "DoubleStorage", "LongStorage", "IntStorage", "ByteStorage",
                                      "BoolStorage", "CharStorage", "ShortStorage"};
    if (mod.size() > 256 || name.size() > 256) fail("GLOBAL name too long");
    bool ok = (mod == "collections" && name == "OrderedDict") ||
              (mod == "torch._utils" &&
               (name == "_rebuild_tensor_v2" || name == "_rebuild_tensor" ||
                name == "_rebuild_parameter" || name == "_rebuild_parameter_with_state"));
    if (mod == "torch")
      for (const char* s : storages_) ok = ok || name == s;
    std::string full = mod + "." + name;
    if (ok) {
      Ref o = make(Obj::K::Global);
      objects[o].s = full;
      return o;
    }
    if (opt_.strict_globals) fail("GLOBAL '", full, "' is not in the allow-list");
    if (opaque.size() < 64 && std::find(opaque.begin(), opaque.end(), full) == opaque.end())
      opaque.push_back(full);
    return opaque_value(full);
  }
  std::vector<std::int64_t> ints(Ref t, const char* what) {
    if (at(t).k != Obj::K::Tuple) fail(what, " is not a tuple");
    if (at(t).items.size() > 64) fail(what, " has ", at(t).items.size(), " dimensions (at most 64)");
    std::vector<std::int64_t> v;
    for (Ref x : at(t).items) {
      if (at(x).k != Obj::K::Int) fail(what, " holds a non-integer");
      v.push_back(at(x).i);
    }
    return v;
  }
  Ref reduce(Ref fn, Ref args) {
    if (at(fn).k == Obj::K::Opaque) return opaque_value(at(fn).s + "(...)");
    if (at(fn).k != Obj::K::Global) fail("REDUCE of a non-callable");
    if (at(args).k != Obj::K::Tuple) fail("REDUCE arguments are not a tuple");
    const std::string name = at(fn).s;
    const std::vector<Ref> a = at(args).items;
    if (name == "collections.OrderedDict") {
      if (!a.empty()) fail("OrderedDict with arguments");
      return make(Obj::K::Dict);
    }
    if (name == "torch._utils._rebuild_tensor_v2" || name == "torch._utils._rebuild_tensor") {
      if (a.size() < 4 || at(a[0]).k != Obj::K::Storage || at(a[1]).k != Obj::K::Int)
        fail(name, ": expected (storage, offset, size, stride, ...)");
      TensorRef t;
      t.storage = std::size_t(at(a[0]).i);
      t.offset = at(a[1]).i;
      t.shape = ints(a[2], "tensor size");
      t.stride = ints(a[3], "tensor stride");
      if (t.shape.size() != t.stride.size()) fail("size and stride ranks differ");
      if (tensors.size() >= opt_.max_objects) fail("too many tensors");
      Ref o = make(Obj::K::Tensor);
      objects[o].i = std::int64_t(tensors.size());
      tensors.push_back(std::move(t));
      return o;
    }
    if (name.starts_with("torch._utils._rebuild_parameter")) {
      if (a.empty() || at(a[0]).k != Obj::K::Tensor) fail(name, ": expected a tensor argument");
      return a[0];
    }
    fail("REDUCE of '", name, "' is not supported");
  }
  Ref persistent(Ref pid) {
    // ('storage', torch.<T>Storage, key, location, numel)
    const Obj& p = at(pid);
    if (p.k != Obj::K::Tuple || p.items.size() < 5 || at(p.items[0]).k != Obj::K::Str ||
        at(p.items[0]).s != "storage")
      fail("persistent id is not a ('storage', type, key, location, numel) tuple");
    const Obj &type = at(p.items[1]), &key = at(p.items[2]), &numel = at(p.items[4]);
    if (type.k != Obj::K::Global || !type.s.starts_with("torch.") || !type.s.ends_with("Storage"))
      fail("persistent id storage type is not a torch storage class");
    if (key.k != Obj::K::Str || key.s.size() > 256 || numel.k != Obj::K::Int || numel.i < 0)
      fail("persistent id has a bad key or element count");
    if (storages.size() >= opt_.max_objects) fail("too many storages");
    storages.push_back(StorageRef{key.s, type.s.substr(6), numel.i});
    Ref o = make(Obj::K::Storage);
    objects[o].i = std::int64_t(storages.size() - 1);
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
  /// Globals outside the allow-list that the pickle referenced (kept inert; at most 64 listed).
  const std::vector<std::string>& opaque_globals() const { return opaque_; }

  template <Storable T>
  void read_into(std::string_view name, std::span<T> out, const Shape* expected = nullptr) const {
    const Tensor& t = get(name);
    check_read<T>(label(), name, t.info, out.size(), expected);
    // open() proved every index below lies inside the storage (checked arithmetic).
    if (out.empty()) return;
    const std::size_t es = dtype_size(t.info.dtype);
    const std::byte* base = t.data + std::size_t(t.offset) * es;
    // Contiguous (row-major) fast path; size-1 dims may have any stride. (numel > 0 here, so
    // the running product stays <= numel <= kMaxTensorElements.)
    bool contiguous = true;
    std::int64_t want = 1;
    for (std::size_t d = t.info.shape.size(); d-- > 0;) {
      if (t.info.shape[d] != 1 && t.stride[d] != want) contiguous = false;
      want *= t.info.shape[d];
    }
    if (contiguous) {
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
  TorchOptions opt_;
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
      : img_(not_legacy(img)), zip_(img), opt_(opt) {  // zip_ checks every entry's CRC-32
    const zip::Entry* pkl = nullptr;
    for (const auto& e : zip_.entries()) {
      auto slash = e.name.find('/');
      if (slash != std::string::npos && e.name.substr(slash) == "/data.pkl") { pkl = &e; break; }
    }
    if (!pkl) REDI_FAIL(label(), ": no <archive>/data.pkl entry; not a torch.save checkpoint");
    const std::string dir = pkl->name.substr(0, pkl->name.size() - 8);  // "archive/"
    if (const zip::Entry* bo = zip_.find(dir + "byteorder")) {
      auto b = zip_.bytes(*bo);
      std::string order(reinterpret_cast<const char*>(b.data()), std::min<std::size_t>(b.size(), 64));
      if (order != "little") REDI_FAIL(label(), ": byteorder '", order, "' is not supported");
    }
    pickle::Machine vm(zip_.bytes(*pkl), label() + ": " + pkl->name, opt);
    const pickle::Ref root = vm.run();
    opaque_ = std::move(vm.opaque);
    walk(vm, root, "", dir, 0);
  }

  const Tensor& get(std::string_view name) const {
    auto it = index_.find(name);
    if (it == index_.end()) REDI_FAIL(label(), ": no tensor named '", name, "'");
    return tensors_[it->second];
  }

  /// The element type and size of a torch storage class; supported = redi can hold it.
  static std::size_t storage_dtype(const std::string& type, DType& d, bool& supported) {
    struct S { const char* n; DType t; std::size_t size; bool ok; };
    static const S m[] = {
        {"FloatStorage", DType::F32, 4, true},    {"DoubleStorage", DType::F64, 8, true},
        {"HalfStorage", DType::F16, 2, true},     {"BFloat16Storage", DType::BF16, 2, true},
        {"IntStorage", DType::I32, 4, true},      {"LongStorage", DType::I64, 8, true},
        {"ByteStorage", DType::U8, 1, true},      {"BoolStorage", DType::U8, 1, false},
        {"CharStorage", DType::U8, 1, false},     {"ShortStorage", DType::U8, 2, false}};
    for (const auto& s : m)
      if (type == s.n) { d = s.t; supported = s.ok; return s.size; }
    supported = false;
    return 0;
  }

  // Recursion depth is bounded by max_depth; the work by max_nodes.
  void walk(const pickle::Machine& vm, pickle::Ref r, const std::string& path,
            const std::string& dir, std::size_t depth) {
    using K = pickle::Obj::K;
    if (depth > opt_.max_depth)
      REDI_FAIL(label(), ": object nesting deeper than ", opt_.max_depth, " at '", path, "'");
    if (++visits_ > opt_.max_nodes)  // shared references can make a small pickle a huge tree
      REDI_FAIL(label(), ": object graph too large (more than ", opt_.max_nodes, " nodes reachable)");
    const pickle::Obj& o = vm.at(r);
    auto child = [&](const std::string& key) {
      if (path.size() + key.size() + 1 > opt_.max_name)
        REDI_FAIL(label(), ": tensor name longer than ", opt_.max_name, " bytes under '",
                  path.substr(0, 64), "...'");
      return path.empty() ? key : path + "." + key;
    };
    if (o.k == K::Dict) {
      for (std::size_t i = 0; i + 1 < o.items.size(); i += 2) {
        const pickle::Obj& k = vm.at(o.items[i]);
        if (k.k == K::Str) walk(vm, o.items[i + 1], child(k.s), dir, depth + 1);
        else if (k.k == K::Int) walk(vm, o.items[i + 1], child(std::to_string(k.i)), dir, depth + 1);
      }
    } else if (o.k == K::List || o.k == K::Tuple) {
      for (std::size_t i = 0; i < o.items.size(); ++i)
        walk(vm, o.items[i], child(std::to_string(i)), dir, depth + 1);
    } else if (o.k == K::Tensor) {
      add_tensor(vm, vm.tensors[std::size_t(o.i)], path, dir);
    }
  }

  void add_tensor(const pickle::Machine& vm, const pickle::TensorRef& r, const std::string& name,
                  const std::string& dir) {
    if (index_.count(name)) REDI_FAIL(label(), ": tensor name '", name, "' occurs twice");
    if (tensors_.size() >= opt_.max_tensors)
      REDI_FAIL(label(), ": more than ", opt_.max_tensors, " tensors (TorchOptions::max_tensors)");
    const pickle::StorageRef& st = vm.storages[r.storage];
    const std::string what = label() + ": tensor '" + name + "'";
    Tensor t;
    t.name = name;
    t.offset = r.offset;
    t.stride = r.stride;
    t.info.shape = r.shape;
    const std::size_t es = storage_dtype(st.type, t.info.dtype, t.info.supported);
    if (es == 0) REDI_FAIL(what, ": unknown storage type '", st.type, "'");
    t.info.dtype_name = t.info.supported ? std::string(dtype_name(t.info.dtype)) : st.type;
    const zip::Entry* e = zip_.find(dir + "data/" + st.key);
    if (!e)
      REDI_FAIL(what, ": storage entry '", dir, "data/", st.key, "' is missing from the archive");
    auto bytes = zip_.bytes(*e);
    t.data = bytes.data();
    // Every check in overflow-free arithmetic, whether or not redi can hold the dtype.
    if (std::uint64_t(st.numel) > bytes.size() / es)
      REDI_FAIL(what, ": storage '", st.key, "' holds ", bytes.size(), " bytes, fewer than its ",
                st.numel, " elements");
    const std::int64_t n = checked::numel(r.shape, kMaxTensorElements, what);
    auto past = [&]() {
      REDI_FAIL(what, " (offset ", r.offset, ", shape ", shape_str(r.shape), ", stride ",
                shape_str(r.stride), ") reaches past its storage of ", st.numel, " elements");
    };
    if (r.offset < 0) past();
    std::int64_t last = r.offset;  // index of the furthest element
    for (std::size_t d = 0; d < r.shape.size(); ++d) {
      if (r.stride[d] < 0) REDI_FAIL(what, ": negative stride ", r.stride[d]);
      std::int64_t reach = 0;
      if (n > 0 && (!checked::mul(r.shape[d] - 1, r.stride[d], reach) ||
                    !checked::add(last, reach, last)))
        past();
    }
    if (n > 0 && last >= st.numel) past();
    if (n > st.numel && n > opt_.max_expanded)
      REDI_FAIL(what, ": ", n, " elements over a storage of ", st.numel,
                " (stride 0); more than TorchOptions::max_expanded = ", opt_.max_expanded);
    index_[name] = tensors_.size();
    tensors_.push_back(std::move(t));
  }
};

}  // namespace redi::io
