// redi/cuda/cudnn_graph.hpp — a thin RAII layer over the cuDNN 9 backend graph API (no
// cudnn-frontend): owned descriptors, checked attribute setters, tensor/op builders, plan
// selection from the heuristics and execution through a variant pack. Host-only C++ (includable
// by g++); link cuDNN. Used by redi/cuda/ops/attention_cudnn.cuh.
//
// Every failing backend call throws redi::Error naming the call, the attribute/descriptor it was
// building, cuDNN's status and cudnnGetLastErrorString (the backend's own reason).
#pragma once
#include <cudnn.h>

#include <array>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "redi/cuda/check.hpp"

namespace redi::cuda_detail::cudnn_graph {

/// The backend's last error message (empty when none).
inline std::string last_error() {
  char buf[1024] = {0};
  cudnnGetLastErrorString(buf, sizeof(buf));
  return buf;
}

/// Throws like REDI_CUDNN_CHECK, naming `what` and adding the backend's last error message.
inline void check(cudnnStatus_t st, const char* call, const std::string& what) {
  if (st == CUDNN_STATUS_SUCCESS) return;
  const std::string detail = last_error();
  REDI_FAIL("cuDNN call `", call, "` (", what, ") failed: ", status_string(st),
            detail.empty() ? "" : " — ", detail);
}

/// An owned backend descriptor (move-only; cudnnBackendDestroyDescriptor on destruction).
class Desc {
public:
  Desc() = default;
  explicit Desc(cudnnBackendDescriptorType_t type, const char* what = "descriptor") {
    check(cudnnBackendCreateDescriptor(type, &d_), "cudnnBackendCreateDescriptor", what);
  }
  Desc(const Desc&) = delete;
  Desc& operator=(const Desc&) = delete;
  Desc(Desc&& o) noexcept : d_(std::exchange(o.d_, nullptr)) {}
  Desc& operator=(Desc&& o) noexcept {
    if (this != &o) {
      reset();
      d_ = std::exchange(o.d_, nullptr);
    }
    return *this;
  }
  ~Desc() { reset(); }
  void reset() {
    if (d_) (void)cudnnBackendDestroyDescriptor(d_);
    d_ = nullptr;
  }
  cudnnBackendDescriptor_t get() const { return d_; }

  /// cudnnBackendSetAttribute; `name` is the attribute's name for the error message.
  Desc& set(cudnnBackendAttributeName_t attr, cudnnBackendAttributeType_t type, std::int64_t n,
            const void* v, const char* name) {
    check(cudnnBackendSetAttribute(d_, attr, type, n, v), "cudnnBackendSetAttribute", name);
    return *this;
  }
  Desc& set_desc(cudnnBackendAttributeName_t attr, cudnnBackendDescriptor_t v, const char* name) {
    return set(attr, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &v, name);
  }
  Desc& finalize(const char* what) {
    check(cudnnBackendFinalize(d_), "cudnnBackendFinalize", what);
    return *this;
  }

private:
  cudnnBackendDescriptor_t d_ = nullptr;
};

#define REDI_CUDNN_SET(desc, attr, type, n, v) (desc).set(attr, type, n, v, #attr)
#define REDI_CUDNN_SET_DESC(desc, attr, v) (desc).set_desc(attr, v, #attr)

// CUDNN_ATTR_OPERATIONGRAPH_HANDLE / CUDNN_ATTR_EXECUTION_PLAN_HANDLE are deprecated in cuDNN
// 9.8+ headers (the handle became optional) but required by older 9.x runtimes: set them by value
// so that the deprecation attribute does not warn.
inline constexpr auto kAttrOpGraphHandle = static_cast<cudnnBackendAttributeName_t>(800);
inline constexpr auto kAttrPlanHandle = static_cast<cudnnBackendAttributeName_t>(400);

using Dims = std::array<std::int64_t, 4>;

/// An operation graph under construction: owns every tensor and op descriptor it creates (the
/// finalised plan keeps the whole Graph alive, so nothing it refers to is destroyed early).
class Graph {
public:
  /// A 4-d tensor; virtual tensors are the fused intermediates, by-value ones host scalars.
  cudnnBackendDescriptor_t tensor(const char* name, std::int64_t uid, cudnnDataType_t type,
                                  const Dims& dim, const Dims& stride, bool is_virtual = false,
                                  bool by_value = false) {
    Desc t(CUDNN_BACKEND_TENSOR_DESCRIPTOR, name);
    const std::int64_t align = 16;
    const std::string what = std::string("tensor '") + name + "'";
    t.set(CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &type, what.c_str());
    t.set(CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 4, dim.data(), what.c_str());
    t.set(CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4, stride.data(), what.c_str());
    t.set(CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid, what.c_str());
    t.set(CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &align, what.c_str());
    if (is_virtual) {
      const bool v = true;
      t.set(CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &v, what.c_str());
    }
    if (by_value) {
      const bool v = true;
      t.set(CUDNN_ATTR_TENSOR_IS_BY_VALUE, CUDNN_TYPE_BOOLEAN, 1, &v, what.c_str());
    }
    t.finalize(what.c_str());
    return keep(tensors_, std::move(t));
  }

  /// C = A B (batched over the leading dims), fp32 compute.
  void matmul(const char* name, cudnnBackendDescriptor_t a, cudnnBackendDescriptor_t b,
              cudnnBackendDescriptor_t c) {
    Desc mm(CUDNN_BACKEND_MATMUL_DESCRIPTOR, name);
    const cudnnDataType_t comp = CUDNN_DATA_FLOAT;
    REDI_CUDNN_SET(mm, CUDNN_ATTR_MATMUL_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &comp);
    mm.finalize(name);
    Desc op(CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR, name);
    REDI_CUDNN_SET_DESC(op, CUDNN_ATTR_OPERATION_MATMUL_ADESC, a);
    REDI_CUDNN_SET_DESC(op, CUDNN_ATTR_OPERATION_MATMUL_BDESC, b);
    REDI_CUDNN_SET_DESC(op, CUDNN_ATTR_OPERATION_MATMUL_CDESC, c);
    REDI_CUDNN_SET_DESC(op, CUDNN_ATTR_OPERATION_MATMUL_DESC, mm.get());
    op.finalize(name);
    keep(aux_, std::move(mm));
    keep(ops_, std::move(op));
  }

  /// y = mode(x) or y = mode(x, b) (b broadcast), fp32 math.
  void pointwise(const char* name, cudnnPointwiseMode_t mode, cudnnBackendDescriptor_t x,
                 cudnnBackendDescriptor_t b, cudnnBackendDescriptor_t y) {
    Desc pw(CUDNN_BACKEND_POINTWISE_DESCRIPTOR, name);
    const cudnnDataType_t prec = CUDNN_DATA_FLOAT;
    REDI_CUDNN_SET(pw, CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1, &mode);
    REDI_CUDNN_SET(pw, CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, 1, &prec);
    pw.finalize(name);
    Desc op(CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR, name);
    REDI_CUDNN_SET_DESC(op, CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, pw.get());
    REDI_CUDNN_SET_DESC(op, CUDNN_ATTR_OPERATION_POINTWISE_XDESC, x);
    if (b) REDI_CUDNN_SET_DESC(op, CUDNN_ATTR_OPERATION_POINTWISE_BDESC, b);
    REDI_CUDNN_SET_DESC(op, CUDNN_ATTR_OPERATION_POINTWISE_YDESC, y);
    op.finalize(name);
    keep(aux_, std::move(pw));
    keep(ops_, std::move(op));
  }

  /// y = reduce(x) over the dims where y has extent 1, fp32 compute.
  void reduction(const char* name, cudnnReduceTensorOp_t red, cudnnBackendDescriptor_t x,
                 cudnnBackendDescriptor_t y) {
    Desc rd(CUDNN_BACKEND_REDUCTION_DESCRIPTOR, name);
    const cudnnDataType_t comp = CUDNN_DATA_FLOAT;
    REDI_CUDNN_SET(rd, CUDNN_ATTR_REDUCTION_OPERATOR, CUDNN_TYPE_REDUCTION_OPERATOR_TYPE, 1, &red);
    REDI_CUDNN_SET(rd, CUDNN_ATTR_REDUCTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &comp);
    rd.finalize(name);
    Desc op(CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR, name);
    REDI_CUDNN_SET_DESC(op, CUDNN_ATTR_OPERATION_REDUCTION_XDESC, x);
    REDI_CUDNN_SET_DESC(op, CUDNN_ATTR_OPERATION_REDUCTION_YDESC, y);
    REDI_CUDNN_SET_DESC(op, CUDNN_ATTR_OPERATION_REDUCTION_DESC, rd.get());
    op.finalize(name);
    keep(aux_, std::move(rd));
    keep(ops_, std::move(op));
  }

  /// y = x viewed with y's dims/strides (a transpose when the strides are swapped).
  void reshape(const char* name, cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t y) {
    Desc op(CUDNN_BACKEND_OPERATION_RESHAPE_DESCRIPTOR, name);
    REDI_CUDNN_SET_DESC(op, CUDNN_ATTR_OPERATION_RESHAPE_XDESC, x);
    REDI_CUDNN_SET_DESC(op, CUDNN_ATTR_OPERATION_RESHAPE_YDESC, y);
    op.finalize(name);
    keep(ops_, std::move(op));
  }

  /// Finalise the operation graph and pick the first engine config (heuristics mode A, then
  /// FALLBACK) whose execution plan finalises. Throws redi::Error with every config's reason
  /// when none does. Returns the plan's workspace size. `deviceprop` (optional, cuDNN >= 9.8: a
  /// finalised CUDNN_BACKEND_DEVICEPROP_DESCRIPTOR) targets that device instead of the handle's,
  /// which lets a machine without a GPU check plans (then handle may be null; such a plan is
  /// not for execution).
  std::int64_t build_plan(cudnnHandle_t handle, const char* what,
                          cudnnBackendDescriptor_t deviceprop = nullptr) {
    opgraph_ = Desc(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR, what);
    std::vector<cudnnBackendDescriptor_t> ops;
    for (const auto& o : ops_) ops.push_back(o.get());
    if (handle)
      opgraph_.set(kAttrOpGraphHandle, CUDNN_TYPE_HANDLE, 1, &handle,
                   "CUDNN_ATTR_OPERATIONGRAPH_HANDLE");
    REDI_CUDNN_SET(opgraph_, CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR,
                   std::int64_t(ops.size()), ops.data());
    opgraph_.finalize((std::string(what) + ": operation graph").c_str());
    std::string reasons;
    for (cudnnBackendHeurMode_t mode : {CUDNN_HEUR_MODE_A, CUDNN_HEUR_MODE_FALLBACK}) {
      const char* mode_name = mode == CUDNN_HEUR_MODE_A ? "heuristics A" : "heuristics FALLBACK";
      Desc heur(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR, mode_name);
      const auto g = opgraph_.get();
      REDI_CUDNN_SET(heur, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                     &g);
      REDI_CUDNN_SET(heur, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode);
#if CUDNN_VERSION >= 90800
      if (deviceprop) REDI_CUDNN_SET_DESC(heur, CUDNN_ATTR_ENGINEHEUR_DEVICEPROP, deviceprop);
#endif
      if (cudnnBackendFinalize(heur.get()) != CUDNN_STATUS_SUCCESS) {
        reasons += std::string(" [") + mode_name + ": finalize failed: " + last_error() + "]";
        continue;
      }
      std::int64_t count = 0;
      check(cudnnBackendGetAttribute(heur.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS,
                                     CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, &count, nullptr),
            "cudnnBackendGetAttribute", "CUDNN_ATTR_ENGINEHEUR_RESULTS count");
      if (count <= 0) {
        reasons += std::string(" [") + mode_name + ": no engine config]";
        continue;
      }
      std::vector<Desc> cfgs;
      std::vector<cudnnBackendDescriptor_t> raw;
      for (std::int64_t i = 0; i < count; ++i) {
        cfgs.emplace_back(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR, "engine config");
        raw.push_back(cfgs.back().get());
      }
      std::int64_t got = 0;
      check(cudnnBackendGetAttribute(heur.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS,
                                     CUDNN_TYPE_BACKEND_DESCRIPTOR, count, &got, raw.data()),
            "cudnnBackendGetAttribute", "CUDNN_ATTR_ENGINEHEUR_RESULTS");
      if (got <= 0) reasons += std::string(" [") + mode_name + ": " + std::to_string(count) +
                               " engine configs announced, none returned]";
      for (std::int64_t i = 0; i < got && i < count; ++i) {
        Desc plan(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR, "execution plan");
        if (handle)
          plan.set(kAttrPlanHandle, CUDNN_TYPE_HANDLE, 1, &handle,
                   "CUDNN_ATTR_EXECUTION_PLAN_HANDLE");
#if CUDNN_VERSION >= 90800
        if (deviceprop) REDI_CUDNN_SET_DESC(plan, CUDNN_ATTR_EXECUTION_PLAN_DEVICEPROP, deviceprop);
#endif
        REDI_CUDNN_SET_DESC(plan, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, raw[i]);
        if (cudnnBackendFinalize(plan.get()) != CUDNN_STATUS_SUCCESS) {
          reasons += std::string(" [") + mode_name + " config " + std::to_string(i) + ": " +
                     last_error() + "]";
          continue;
        }
        std::int64_t ws = 0, n = 0;
        check(cudnnBackendGetAttribute(plan.get(), CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE,
                                       CUDNN_TYPE_INT64, 1, &n, &ws),
              "cudnnBackendGetAttribute", "CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE");
        plan_ = std::move(plan);
        cfg_ = std::move(cfgs[std::size_t(i)]);
        return ws;
      }
    }
    REDI_FAIL(what, ": no cuDNN engine config finalised an execution plan:", reasons);
  }

  cudnnBackendDescriptor_t plan() const { return plan_.get(); }

private:
  static cudnnBackendDescriptor_t keep(std::vector<Desc>& v, Desc&& d) {
    v.push_back(std::move(d));
    return v.back().get();
  }
  std::vector<Desc> tensors_, ops_, aux_;
  Desc opgraph_, cfg_, plan_;
};

/// Run `plan` with the (uid, pointer) pairs (device pointers; host pointers for by-value
/// tensors) and the workspace, on the handle's stream.
template <std::size_t N>
void execute(cudnnHandle_t handle, cudnnBackendDescriptor_t plan,
             const std::array<std::int64_t, N>& uids, const std::array<void*, N>& ptrs,
             void* workspace, const char* what) {
  Desc vp(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR, what);
  REDI_CUDNN_SET(vp, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, std::int64_t(N),
                 uids.data());
  REDI_CUDNN_SET(vp, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, std::int64_t(N),
                 ptrs.data());
  REDI_CUDNN_SET(vp, CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &workspace);
  vp.finalize(what);
  check(cudnnBackendExecute(handle, plan, vp.get()), "cudnnBackendExecute", what);
}

}  // namespace redi::cuda_detail::cudnn_graph
