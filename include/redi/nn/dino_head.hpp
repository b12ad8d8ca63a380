// redi/nn/dino_head.hpp — the DINO projection head (Caron et al. 2021, section 3 and appendix):
// an MLP with GELU, an L2-normalised bottleneck, and a weight-normalised linear layer onto K
// "prototypes" whose output the DINO loss turns into a distribution. Forward and backward side
// by side; T = float or double (gradient checks run in double).
//
//   h1 = x W1^T + b1,  a1 = GELU(h1)                         [B, hidden]
//   h2 = a1 W2^T + b2, a2 = GELU(h2)                         [B, hidden]   (layers - 2 of these)
//   z  = a2 W3^T + b3                                        [B, bottleneck]
//   u  = z / max(|z|, eps)                                   (eps = 1e-12, as F.normalize)
//   Wn_k = v_k / |v_k|   (weight norm with the gain fixed at 1: DINO's norm_last_layer)
//   logits = u Wn^T                                          [B, K], each in [-1, 1]
//
// Backward of the two normalisations (P = projection orthogonal to a unit vector):
//   dz  = (du - u (u . du)) / max(|z|, eps)        du = dlogits Wn
//   dv_k = (dWn_k - Wn_k (Wn_k . dWn_k)) / |v_k|    dWn = dlogits^T u
// GELU is redi's tanh approximation (ops::gelu_*), not the erf form of PyTorch's nn.GELU.
//
// Memory as in ViTEncoder: one flat parameter buffer (order = entries()), one gradient buffer,
// one activation arena sized for the largest batch seen. Parameter gradients ACCUMULATE.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "redi/core/philox.hpp"
#include "redi/core/tensor.hpp"
#include "redi/nn/param_layout.hpp"
#include "redi/ops/ops.hpp"

namespace redi::nn {

struct DinoHeadConfig {
  int in_dim = 64;        ///< the encoder's feature width D
  int hidden = 256;       ///< MLP width (DINO: 2048)
  int bottleneck = 64;    ///< normalised bottleneck (DINO: 256)
  int out_dim = 1024;     ///< K prototypes (DINO: 65536)
  int layers = 3;         ///< linear layers of the MLP (>= 1; 1 = a single linear to the bottleneck)

  void validate() const {
    REDI_CHECK(in_dim > 0 && hidden > 0 && bottleneck > 0 && out_dim > 1 && layers >= 1,
               "DinoHeadConfig: in_dim ", in_dim, ", hidden ", hidden, ", bottleneck ", bottleneck, ", out_dim ",
               out_dim, ", layers ", layers);
  }
};

template <CpuReal T>
class DinoHead {
public:
  using value_type = T;
  static constexpr double kEps = 1e-12;

  explicit DinoHead(const DinoHeadConfig& cfg, std::uint64_t seed = 0) : cfg_(cfg) {
    cfg_.validate();
    int in = cfg_.in_dim;
    for (int l = 0; l < cfg_.layers; ++l) {
      const int out = l + 1 == cfg_.layers ? cfg_.bottleneck : cfg_.hidden;
      const std::string p = "mlp." + std::to_string(2 * l) + ".";
      mlp_.push_back({add(p + "weight", Shape{out, in}, Init::Normal002), add(p + "bias", Shape{out}, Init::Zero), in,
                      out});
      in = out;
    }
    last_v_ = add("last_layer.weight_v", Shape{cfg_.out_dim, cfg_.bottleneck}, Init::XavierUniform);
    params_ = Tensor<T>(Shape{layout_.total});
    grads_ = Tensor<T>(Shape{layout_.total});
    wn_ = Tensor<T>(Shape{cfg_.out_dim, cfg_.bottleneck});
    vnorm_.assign(std::size_t(cfg_.out_dim), T(0));
    initialize(seed);
  }

  const DinoHeadConfig& config() const { return cfg_; }
  const std::vector<ParamEntry>& entries() const { return layout_.entries; }
  Tensor<T>& params() { return params_; }
  Tensor<T>& grads() { return grads_; }
  const Tensor<T>& params() const { return params_; }
  const Tensor<T>& grads() const { return grads_; }
  std::int64_t num_params() const { return layout_.total; }
  void zero_grad() { grads_.zero(); }
  /// The last layer's direction vectors v [K, bottleneck] (offset into params()/grads()).
  std::int64_t last_layer_offset() const { return last_v_; }
  std::int64_t last_layer_numel() const { return std::int64_t(cfg_.out_dim) * cfg_.bottleneck; }
  std::size_t arena_allocations() const { return arena_allocs_; }

  /// MLP weights ~ N(0, 0.02^2) (DINO's trunc_normal), biases 0, v ~ U(+-sqrt(6/(K + d)));
  /// Philox keyed by (seed, entry index).
  void initialize(std::uint64_t seed) {
    T* P = params_.data();
    for (std::size_t k = 0; k < layout_.entries.size(); ++k) {
      const auto& e = layout_.entries[k];
      const double bound = std::sqrt(6.0 / double(e.rows() + e.cols()));
      for (std::int64_t i = 0; i < e.numel(); ++i)
        P[e.offset + i] = e.init == Init::Normal002  ? T(0.02 * philox::normal(seed, 7000 + k, std::uint64_t(i)))
                          : e.init == Init::XavierUniform
                              ? T((2.0 * philox::uniform(seed, 7000 + k, std::uint64_t(i)) - 1.0) * bound)
                              : T(0);
    }
  }

  /// x [B, in_dim] -> logits() [B, out_dim]; saves what backward needs.
  void forward(const T* x, int B) {
    ensure_batch(B);
    const T* P = params_.data();
    const T* in = x;
    for (std::size_t l = 0; l < mlp_.size(); ++l) {
      const Layer& L = mlp_[l];
      T* pre = a_.pre[l];
      ops::linear_forward(cpu, pre, in, P + L.w, P + L.b, B, L.in, L.out);
      if (l + 1 < mlp_.size()) {
        ops::gelu_forward(cpu, a_.post[l], pre, std::int64_t(B) * L.out);
        in = a_.post[l];
      }
    }
    x_ = x;
    const int d = cfg_.bottleneck, K = cfg_.out_dim;
    const T* z = a_.pre.back();
    for (int b = 0; b < B; ++b) {
      double s = 0;
      for (int c = 0; c < d; ++c) s += double(z[std::int64_t(b) * d + c]) * double(z[std::int64_t(b) * d + c]);
      const T n = T(std::max(std::sqrt(s), kEps));
      a_.znorm[b] = n;
      for (int c = 0; c < d; ++c) a_.u[std::int64_t(b) * d + c] = z[std::int64_t(b) * d + c] / n;
    }
    normalize_last_layer();
    ops::linear_forward(cpu, a_.logits, a_.u, wn_.data(), static_cast<const T*>(nullptr), B, d, K);
  }

  int batch() const { return batch_; }
  const T* logits() const { return a_.logits; }        ///< [B, out_dim] of the last forward
  const T* bottleneck_unit() const { return a_.u; }    ///< [B, bottleneck]: u

  /// Backward from dlogits [B, out_dim] of the last forward: parameter gradients ACCUMULATE into
  /// grads(); dx [B, in_dim] (may be null) is OVERWRITTEN with dL/dx. The input x of forward()
  /// must still be alive.
  void backward(const T* dlogits, T* dx) {
    const int B = batch_, d = cfg_.bottleneck, K = cfg_.out_dim;
    const T* P = params_.data();
    T* G = grads_.data();
    // logits = u Wn^T: du = dlogits Wn ; dWn = dlogits^T u (into scratch, then through the norm)
    std::fill(dwn_.begin(), dwn_.end(), T(0));
    ops::linear_backward(cpu, a_.du, dwn_.data(), static_cast<T*>(nullptr), dlogits, a_.u, wn_.data(), B, d, K);
    for (int k = 0; k < K; ++k) {
      const T* w = wn_.data() + std::int64_t(k) * d;
      const T* g = dwn_.data() + std::int64_t(k) * d;
      double dot = 0;
      for (int c = 0; c < d; ++c) dot += double(w[c]) * double(g[c]);
      T* gv = G + last_v_ + std::int64_t(k) * d;
      const T inv = T(1) / vnorm_[std::size_t(k)];
      for (int c = 0; c < d; ++c) gv[c] += (g[c] - w[c] * T(dot)) * inv;
    }
    // u = z / |z|
    T* dz = a_.dpre[mlp_.size() - 1];
    for (int b = 0; b < B; ++b) {
      const T* u = a_.u + std::int64_t(b) * d;
      const T* du = a_.du + std::int64_t(b) * d;
      double dot = 0;
      for (int c = 0; c < d; ++c) dot += double(u[c]) * double(du[c]);
      const T inv = T(1) / a_.znorm[b];
      for (int c = 0; c < d; ++c) dz[std::int64_t(b) * d + c] = (du[c] - u[c] * T(dot)) * inv;
    }
    // MLP
    for (std::size_t l = mlp_.size(); l-- > 0;) {
      const Layer& L = mlp_[l];
      const T* in = l == 0 ? x_ : a_.post[l - 1];
      T* din = l == 0 ? dx : a_.dpost[l - 1];
      ops::linear_backward(cpu, din, G + L.w, G + L.b, a_.dpre[l], in, P + L.w, B, L.in, L.out);
      if (l > 0) ops::gelu_backward(cpu, a_.dpre[l - 1], a_.dpost[l - 1], a_.pre[l - 1], std::int64_t(B) * mlp_[l - 1].out);
    }
  }

private:
  struct Layer {
    std::int64_t w, b;
    int in, out;
  };
  struct Acts {
    std::vector<T*> pre, post, dpre, dpost;  // per MLP layer (post/dpost: all but the last)
    T *u, *znorm, *logits, *du;
  };

  std::int64_t add(std::string name, Shape s, Init init) { return layout_.add(std::move(name), s, init); }

  /// Wn = rows of v divided by their norms (recomputed every forward: v changes every step).
  void normalize_last_layer() {
    const int d = cfg_.bottleneck;
    const T* V = params_.data() + last_v_;
    for (int k = 0; k < cfg_.out_dim; ++k) {
      double s = 0;
      for (int c = 0; c < d; ++c) s += double(V[std::int64_t(k) * d + c]) * double(V[std::int64_t(k) * d + c]);
      const T n = T(std::max(std::sqrt(s), kEps));
      vnorm_[std::size_t(k)] = n;
      for (int c = 0; c < d; ++c) wn_.data()[std::int64_t(k) * d + c] = V[std::int64_t(k) * d + c] / n;
    }
  }

  void ensure_batch(int B) {
    REDI_CHECK(B > 0, "DinoHead::forward: batch size must be > 0, got ", B);
    batch_ = B;
    if (dwn_.empty()) dwn_.assign(std::size_t(cfg_.out_dim) * std::size_t(cfg_.bottleneck), T(0));
    if (B <= capacity_) return;
    const std::size_t nl = mlp_.size();
    for (int pass = 0; pass < 2; ++pass) {
      std::int64_t off = 0;
      auto grab = [&](std::int64_t n) -> T* {
        const std::int64_t start = (off + 15) / 16 * 16;
        off = start + n;
        return pass == 0 ? nullptr : arena_.data() + start;
      };
      Acts a;
      for (std::size_t l = 0; l < nl; ++l) {
        a.pre.push_back(grab(std::int64_t(B) * mlp_[l].out));
        a.dpre.push_back(grab(std::int64_t(B) * mlp_[l].out));
        if (l + 1 < nl) {
          a.post.push_back(grab(std::int64_t(B) * mlp_[l].out));
          a.dpost.push_back(grab(std::int64_t(B) * mlp_[l].out));
        }
      }
      a.u = grab(std::int64_t(B) * cfg_.bottleneck);
      a.du = grab(std::int64_t(B) * cfg_.bottleneck);
      a.znorm = grab(B);
      a.logits = grab(std::int64_t(B) * cfg_.out_dim);
      if (pass == 0) {
        arena_ = Tensor<T>(Shape{off});
        ++arena_allocs_;
      } else {
        a_ = std::move(a);
      }
    }
    capacity_ = B;
  }

  DinoHeadConfig cfg_;
  ParamLayout layout_;  // names, shapes, offsets (the init is this head's own, above)
  std::vector<Layer> mlp_;
  std::int64_t last_v_ = 0;
  Tensor<T> params_, grads_, wn_, arena_;
  std::vector<T> vnorm_, dwn_;
  Acts a_{};
  const T* x_ = nullptr;
  int batch_ = 0, capacity_ = 0;
  std::size_t arena_allocs_ = 0;
};

}  // namespace redi::nn
