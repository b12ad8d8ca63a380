// redi/nn/vae.hpp — the SD-VAE (diffusers AutoencoderKL, `stabilityai/sd-vae-ft-ema`) for
// inference on any device: Vae<T, Dev> over Backend<Dev>'s convolutional ops (ConvOpsBackend).
//
// API (stable; files in weights/vae.hpp, latents in one place below):
//   redi::Vae<float> vae(redi::VaeConfig::sd_vae_ft_ema());          // Vae<float, redi::Cuda>(cfg, ctx) on a GPU
//   redi::load_vae_weights(vae, "diffusion_pytorch_model.safetensors");   // or the .bin
//   vae.encode(moments, images, B, 256, 256);   // images [B,3,256,256] in [-1,1] -> moments [B,8,32,32]
//   redi::vae_latents(latents, moments, B, cfg, redi::VaeLatentMode::Mean, seed, first_index);  // host
//   vae.decode(images, latents, B, 32, 32);     // latents [B,4,32,32] (scaled) -> images in ~[-1,1]
// encode/decode take Dev pointers; vae_latents works on host memory.
//
// Scaling factor (0.18215) — the ONE place each direction: vae_latents multiplies
// (mean or mean + std * eps) by config.scaling_factor; Vae::decode divides its input by it before
// post_quant_conv. encode returns the unscaled moments.
//
// Moments: quant_conv's output [B, 2*latent, h, w] = [mean | logvar] along channels (diffusers'
// DiagonalGaussianDistribution: logvar clamped to [-30, 20], std = exp(logvar / 2)).
//
// Memory: the batch runs in chunks of `micro_batch` images (images are independent: GroupNorm
// is per image), and a chunk through three activation buffers of the largest activation's size
// that rotate block by block (input, normalised/activated, convolved; a block's output
// overwrites what its input no longer needs), plus the convolution scratch
// (Backend<Dev>::conv2d_scratch_elems) and the attention's qkv and score matrix (one image at a
// time; on the CPU the im2col scratch is for one image). Sizes come from a measuring pass over the same code (Run::measure), carved from one
// Workspace<Dev>: no allocation once a chunk shape has been seen. At 256 px the decoder's
// largest activation is 256 x 256 x 256 floats (64 MiB per image).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

#include "redi/core/device.hpp"
#include "redi/core/philox.hpp"
#include "redi/core/tensor.hpp"
#include "redi/core/workspace.hpp"
#include "redi/nn/vae_layout.hpp"
#include "redi/ops/backend.hpp"
#include "redi/ops/conv2d_geometry.hpp"

namespace redi {

enum class VaeLatentMode { Mean, Sample };

/// latents [B, latent, h, w] = scaling_factor * (mean, or mean + exp(logvar/2) * eps) from
/// moments [B, 2*latent, h, w] (host memory), logvar clamped to [-30, 20]. eps of sample b,
/// element i is philox::normal(seed, first_index + b, i): a sample's noise does not depend on
/// the batch it is encoded in.
template <class T>
void vae_latents(T* latents, const T* moments, int B, int h, int w, const VaeConfig& cfg, VaeLatentMode mode,
                 std::uint64_t seed = 0, std::uint64_t first_index = 0) {
  const std::int64_t n = std::int64_t(cfg.latent_channels) * h * w;
  for (int b = 0; b < B; ++b) {
    const T* mean = moments + std::int64_t(b) * 2 * n;
    const T* logvar = mean + n;
    T* z = latents + std::int64_t(b) * n;
    for (std::int64_t i = 0; i < n; ++i) {
      double v = double(mean[i]);
      if (mode == VaeLatentMode::Sample) {
        const double lv = std::clamp(double(logvar[i]), -30.0, 20.0);
        v += std::exp(0.5 * lv) * philox::normal(seed, first_index + std::uint64_t(b), std::uint64_t(i));
      }
      z[i] = T(cfg.scaling_factor * v);
    }
  }
}

/// mean and clamped logvar [B, latent, h, w] each, from moments [B, 2*latent, h, w] (host).
template <class T>
void vae_split_moments(T* mean, T* logvar, const T* moments, int B, int h, int w, const VaeConfig& cfg) {
  const std::int64_t n = std::int64_t(cfg.latent_channels) * h * w;
  for (int b = 0; b < B; ++b)
    for (std::int64_t i = 0; i < n; ++i) {
      mean[b * n + i] = moments[b * 2 * n + i];
      logvar[b * n + i] = T(std::clamp(double(moments[b * 2 * n + n + i]), -30.0, 20.0));
    }
}

template <class T, class Dev = Cpu>
class Vae {
  using Ops = Backend<Dev>;

public:
  using value_type = T;
  using device_type = Dev;

  explicit Vae(VaeConfig cfg, Dev ctx = Dev{})
      : cfg_(std::move(cfg)), L_(VaeLayout::make(cfg_)), ctx_(std::move(ctx)), params_(Shape{L_.total}) {
    static_assert(ConvOpsBackend<Dev, T>, "Vae<T, Dev>: Backend<Dev> lacks the convolutional ops (include "
                                          "redi/ops/cpu_backend.hpp, or redi/cuda/backend.cuh in a .cu file)");
  }

  const VaeConfig& config() const { return cfg_; }
  const VaeLayout& layout() const { return L_; }
  const Dev& context() const { return ctx_; }
  std::int64_t num_params() const { return L_.total; }
  /// The flat parameter buffer on Dev (layout().entries give names, shapes, offsets).
  T* params() { return params_.data(); }
  const T* params() const { return params_.data(); }
  /// Copies a host buffer of num_params() values into the parameters.
  void set_params(const T* host) { Dev::copy_from_host(params_.data(), host, std::size_t(L_.total) * sizeof(T)); }
  std::vector<T> params_to_host() const { return params_.to_host(); }

  /// Images per chunk (memory ~ micro_batch x the largest activation x 3).
  int micro_batch = 8;

  /// moments [B, 2*latent, H/f, W/f] from images [B, in_channels, H, W] in [-1, 1] (Dev memory);
  /// H and W multiples of f = config().downsample_factor().
  void encode(T* moments, const T* images, int B, int H, int W) {
    const int f = cfg_.downsample_factor();
    REDI_CHECK(H > 0 && W > 0 && H % f == 0 && W % f == 0, "Vae::encode: ", H, "x", W,
               " is not a multiple of the downsampling factor ", f);
    const std::int64_t in_img = std::int64_t(cfg_.in_channels) * H * W;
    const std::int64_t out_img = std::int64_t(2 * cfg_.latent_channels) * (H / f) * (W / f);
    for_chunks(B, [&](Run& r, int b0, int n) { encoder(r, moments + b0 * out_img, images + b0 * in_img, n, H, W); });
  }

  /// images [B, out_channels, h*f, w*f] from scaled latents [B, latent, h, w] (Dev memory).
  void decode(T* images, const T* latents, int B, int h, int w) {
    REDI_CHECK(h > 0 && w > 0, "Vae::decode: latent grid ", h, "x", w);
    const int f = cfg_.downsample_factor();
    const std::int64_t in_img = std::int64_t(cfg_.latent_channels) * h * w;
    const std::int64_t out_img = std::int64_t(cfg_.out_channels) * (h * f) * (w * f);
    for_chunks(B, [&](Run& r, int b0, int n) { decoder(r, images + b0 * out_img, latents + b0 * in_img, n, h, w); });
  }

  /// Bytes of the activation arena after the calls so far (for memory checks).
  std::size_t arena_bytes() const { return ws_.capacity(); }
  std::size_t arena_allocations() const { return ws_.allocations(); }

private:
  /// One chunk's execution state. measure = true: ops only record sizes.
  struct Run {
    bool measure = true;
    std::int64_t act = 0, scratch = 0, qkv = 0, probs = 0;
    T* buf[3] = {nullptr, nullptr, nullptr};
    T* s = nullptr;
    T* q = nullptr;
    T* p = nullptr;
    int cur = 0;  // index of the buffer holding the current activation
    T* at(int k) const { return buf[(cur + k) % 3]; }
  };

  template <class Body>
  void for_chunks(int B, Body&& body) {
    REDI_CHECK(B >= 0 && micro_batch > 0, "Vae: batch ", B, ", micro_batch ", micro_batch);
    for (int b0 = 0; b0 < B; b0 += micro_batch) {
      const int n = std::min(micro_batch, B - b0);
      Run m;  // measuring pass: sizes only
      body(m, b0, n);
      Run r;
      r.measure = false;
      ws_.carve([&](Workspace<Dev>& w) {
        for (auto& b : r.buf) b = w.template take<T>(m.act);
        r.s = w.template take<T>(m.scratch);
        r.q = w.template take<T>(m.qkv);
        r.p = w.template take<T>(m.probs);
      });
      r.act = m.act, r.scratch = m.scratch, r.qkv = m.qkv, r.probs = m.probs;
      body(r, b0, n);
    }
  }

  const T* P(std::int64_t off) const { return off < 0 ? nullptr : params_.data() + off; }

  // ---- ops with size recording
  void conv(Run& r, T* out, const T* in, VaeConvOffsets o, int n, int H, int W, const ops::Conv2dGeometry& g) {
    if (r.measure) {
      r.act = std::max(r.act, std::int64_t(n) * g.out_channels * g.out_h(H) * g.out_w(W));
      // Host convolutions take their im2col scratch for one image (they then run image by image:
      // one 256 px image is already a large GEMM); a device's scratch is per call (the padded batch).
      r.scratch = std::max(r.scratch, Ops::conv2d_scratch_elems(g, H, W, Dev::is_host ? 1 : n));
      return;
    }
    Ops::conv2d_forward(ctx_, out, in, P(o.w), P(o.b), n, H, W, g, r.s, r.scratch);
  }
  void conv3(Run& r, T* out, const T* in, VaeConvOffsets o, int n, int cin, int cout, int H, int W) {
    conv(r, out, in, o, n, H, W, ops::Conv2dGeometry::square(cin, cout, 3, 1, 1));
  }
  void conv1(Run& r, T* out, const T* in, VaeConvOffsets o, int n, int cin, int cout, int H, int W) {
    conv(r, out, in, o, n, H, W, ops::Conv2dGeometry::square(cin, cout, 1, 1, 0));
  }
  void norm(Run& r, T* out, const T* in, std::int64_t w, std::int64_t b, int n, int C, int H, int W, bool silu) {
    if (r.measure) {
      r.act = std::max(r.act, std::int64_t(n) * C * H * W);
      return;
    }
    Ops::group_norm_forward(ctx_, out, in, P(w), P(b), n, C, std::int64_t(H) * W, cfg_.norm_groups, cfg_.norm_eps,
                            silu);
  }

  /// ResnetBlock2D on the current buffer; the output becomes the current buffer.
  void resnet(Run& r, const VaeResnet& R, int n, int H, int W) {
    T* x = r.at(0);
    T* t = r.at(1);
    T* h = r.at(2);
    norm(r, t, x, R.n1_w, R.n1_b, n, R.cin, H, W, true);
    conv3(r, h, t, {R.c1_w, R.c1_b}, n, R.cin, R.cout, H, W);
    norm(r, h, h, R.n2_w, R.n2_b, n, R.cout, H, W, true);
    conv3(r, t, h, {R.c2_w, R.c2_b}, n, R.cout, R.cout, H, W);
    const std::int64_t cnt = std::int64_t(n) * R.cout * H * W;
    if (R.sc_w >= 0) {
      conv1(r, h, x, {R.sc_w, R.sc_b}, n, R.cin, R.cout, H, W);
      if (!r.measure) Ops::add_inplace(ctx_, t, h, cnt);
    } else if (!r.measure) {
      Ops::add_inplace(ctx_, t, x, cnt);
    }
    r.cur = (r.cur + 1) % 3;
  }

  /// Single-head spatial self-attention with residual on the current buffer (stays current).
  void attention(Run& r, const VaeAttention& A, int n, int H, int W) {
    const int C = A.c;
    const std::int64_t L = std::int64_t(H) * W;
    T* x = r.at(0);
    T* t = r.at(1);
    T* h = r.at(2);
    norm(r, t, x, A.gn_w, A.gn_b, n, C, H, W, false);
    if (r.measure) {
      r.qkv = std::max(r.qkv, std::int64_t(n) * 3 * C * L);
      r.probs = std::max(r.probs, L * L);
    } else {
      // qkv [n, 3C, L] = [Wq; Wk; Wv] t + b : one 1x1 convolution (channel-major q, k, v)
      Ops::conv2d_forward(ctx_, r.q, t, P(A.qkv_w), P(A.qkv_b), n, H, W,
                          ops::Conv2dGeometry::square(C, 3 * C, 1, 1, 0), r.s, r.scratch);
      const T scale = T(1.0 / std::sqrt(double(C)));
      for (int b = 0; b < n; ++b) {
        const T* q = r.q + std::int64_t(b) * 3 * C * L;
        const T* k = q + std::int64_t(C) * L;
        const T* v = k + std::int64_t(C) * L;
        // S [L, L] = q^T k / sqrt(C) ; P = softmax rows ; O^T [C, L] = v P^T
        Ops::gemm(ctx_, true, false, int(L), int(L), C, scale, q, int(L), k, int(L), T(0), r.p, int(L));
        Ops::softmax_forward(ctx_, r.p, r.p, int(L), int(L));
        Ops::gemm(ctx_, false, true, C, int(L), int(L), T(1), v, int(L), r.p, int(L), T(0),
                  t + std::int64_t(b) * C * L, int(L));
      }
    }
    conv1(r, h, t, {A.out_w, A.out_b}, n, C, C, H, W);
    if (!r.measure) Ops::add_inplace(ctx_, x, h, std::int64_t(n) * C * L);
  }

  void mid(Run& r, const VaeResnet& r0, const VaeAttention& a, const VaeResnet& r1, int n, int H, int W) {
    resnet(r, r0, n, H, W);
    attention(r, a, n, H, W);
    resnet(r, r1, n, H, W);
  }

  void encoder(Run& r, T* moments, const T* images, int n, int H, int W) {
    const auto& bo = cfg_.block_out_channels;
    const int nb = cfg_.blocks(), top = cfg_.top_channels(), lc = cfg_.latent_channels;
    r.cur = 0;
    conv3(r, r.at(0), images, L_.enc_in, n, cfg_.in_channels, bo[0], H, W);
    for (int i = 0; i < nb; ++i) {
      for (const auto& R : L_.enc_blocks[i]) resnet(r, R, n, H, W);
      if (i + 1 < nb) {
        const int ch = bo[i];
        conv(r, r.at(1), r.at(0), L_.enc_down[i], n, H, W, ops::Conv2dGeometry{ch, ch, 3, 3, 2, 2, 0, 1, 0, 1});
        r.cur = (r.cur + 1) % 3;
        H /= 2, W /= 2;
      }
    }
    mid(r, L_.enc_mid0, L_.enc_attn, L_.enc_mid1, n, H, W);
    norm(r, r.at(1), r.at(0), L_.enc_norm_out.w, L_.enc_norm_out.b, n, top, H, W, true);
    conv3(r, r.at(2), r.at(1), L_.enc_out, n, top, 2 * lc, H, W);
    conv1(r, moments, r.at(2), L_.quant, n, 2 * lc, 2 * lc, H, W);
  }

  void decoder(Run& r, T* images, const T* latents, int n, int h, int w) {
    const auto& bo = cfg_.block_out_channels;
    const int nb = cfg_.blocks(), top = cfg_.top_channels(), lc = cfg_.latent_channels;
    const std::int64_t zc = std::int64_t(n) * lc * h * w;
    r.cur = 0;
    if (r.measure) {
      r.act = std::max(r.act, zc);
    } else {  // the scaling factor, decode side: z = latents / scaling_factor
      Ops::copy(ctx_, r.at(1), latents, zc);
      Ops::scale_inplace(ctx_, r.at(1), zc, 1.0 / cfg_.scaling_factor);
    }
    conv1(r, r.at(2), r.at(1), L_.post_quant, n, lc, lc, h, w);
    conv3(r, r.at(0), r.at(2), L_.dec_in, n, lc, top, h, w);
    int H = h, W = w;
    mid(r, L_.dec_mid0, L_.dec_attn, L_.dec_mid1, n, H, W);
    for (int i = 0; i < nb; ++i) {
      for (const auto& R : L_.dec_blocks[i]) resnet(r, R, n, H, W);
      if (i + 1 < nb) {
        const int ch = bo[nb - 1 - i];
        if (r.measure)
          r.act = std::max(r.act, std::int64_t(n) * ch * 4 * H * W);
        else
          Ops::upsample_nearest2x_forward(ctx_, r.at(1), r.at(0), n, ch, H, W);
        H *= 2, W *= 2;
        conv3(r, r.at(2), r.at(1), L_.dec_up[i], n, ch, ch, H, W);
        r.cur = (r.cur + 2) % 3;
      }
    }
    norm(r, r.at(1), r.at(0), L_.dec_norm_out.w, L_.dec_norm_out.b, n, bo[0], H, W, true);
    conv3(r, images, r.at(1), L_.dec_out, n, bo[0], cfg_.out_channels, H, W);
  }

  VaeConfig cfg_;
  VaeLayout L_;
  Dev ctx_;
  Tensor<T, Dev> params_;
  Workspace<Dev> ws_;
};

}  // namespace redi
