// redi/nn/vae_layout.hpp — the SD-VAE's configuration and parameter layout: the diffusers
// AutoencoderKL of `stabilityai/sd-vae-ft-ema` (DownEncoderBlock2D x4 / UpDecoderBlock2D x4,
// block_out_channels 128/256/512/512, layers_per_block 2, latent_channels 4, GroupNorm 32 groups
// eps 1e-6, single-head mid-block attention), under the diffusers state_dict names:
//
//   encoder.conv_in                                   3 -> c0, 3x3 pad 1
//   encoder.down_blocks.i.resnets.j.{norm1,conv1,norm2,conv2[,conv_shortcut]}
//   encoder.down_blocks.i.downsamplers.0.conv         (i < last) pad (0,1,0,1), 3x3 stride 2
//   encoder.mid_block.{resnets.0, attentions.0, resnets.1}
//   encoder.{conv_norm_out, conv_out}                 GN + SiLU, c_top -> 2*latent, 3x3
//   quant_conv, post_quant_conv                       1x1, 2*latent -> 2*latent / latent -> latent
//   decoder.conv_in                                   latent -> c_top, 3x3
//   decoder.mid_block.{resnets.0, attentions.0, resnets.1}
//   decoder.up_blocks.i.resnets.j (j < layers+1)      channels reversed(block_out): up_blocks.0 is
//   decoder.up_blocks.i.upsamplers.0.conv             the first executed (lowest resolution)
//   decoder.{conv_norm_out, conv_out}                 c0 -> 3
//
// ResnetBlock2D: h = conv1(silu(norm1(x))); h = conv2(silu(norm2(h))); out = shortcut(x) + h,
// shortcut = conv_shortcut (1x1) when in != out channels, else identity.
// Attention (mid block): group_norm, then to_q / to_k / to_v / to_out.0 as Linear [C, C] over
// the H*W tokens (one head of width C), out = x + to_out(softmax(q k^T / sqrt(C)) v). Older
// files name them query / key / value / proj_attn (weights/vae.hpp accepts both); the layout
// keeps the current names and stores to_q, to_k, to_v weights back to back (then their biases),
// so one 1x1 convolution with a [3C, C] weight produces q, k and v.
#pragma once
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "redi/core/error.hpp"
#include "redi/nn/param_layout.hpp"

namespace redi {

struct VaeConfig {
  int in_channels = 3, out_channels = 3, latent_channels = 4;
  std::vector<int> block_out_channels{128, 256, 512, 512};
  int layers_per_block = 2;  ///< resnets per encoder block (decoder blocks have one more)
  int norm_groups = 32;
  double norm_eps = 1e-6;
  double scaling_factor = 0.18215;  ///< latents the diffusion model sees = scaling_factor * z

  /// `stabilityai/sd-vae-ft-ema` (and -ft-mse, SD 1.x's VAE): the defaults.
  static VaeConfig sd_vae_ft_ema() { return {}; }
  int blocks() const { return int(block_out_channels.size()); }
  /// Image size / latent size.
  int downsample_factor() const { return 1 << (blocks() - 1); }
  int top_channels() const { return block_out_channels.back(); }
  void validate() const {
    REDI_CHECK(!block_out_channels.empty() && layers_per_block > 0 && latent_channels > 0 && in_channels > 0 &&
                   out_channels > 0 && norm_groups > 0 && norm_eps > 0 && scaling_factor > 0,
               "VaeConfig: invalid ", str());
    for (int c : block_out_channels)
      REDI_CHECK(c > 0 && c % norm_groups == 0, "VaeConfig: block width ", c, " is not a multiple of ",
                 norm_groups, " groups (", str(), ")");
  }
  std::string str() const {
    std::ostringstream s;
    s << "blocks=";
    for (std::size_t i = 0; i < block_out_channels.size(); ++i) s << (i ? "/" : "") << block_out_channels[i];
    s << " layers=" << layers_per_block << " latent=" << latent_channels << " groups=" << norm_groups
      << " eps=" << norm_eps << " scale=" << scaling_factor;
    return s.str();
  }
};

/// Offsets of one ResnetBlock2D's tensors (sc_w = -1 without a shortcut convolution).
struct VaeResnet {
  int cin = 0, cout = 0;
  std::int64_t n1_w, n1_b, c1_w, c1_b, n2_w, n2_b, c2_w, c2_b, sc_w = -1, sc_b = -1;
};
/// Offsets of the mid-block attention: qkv_w [3C, C] and qkv_b [3C] are contiguous.
struct VaeAttention {
  int c = 0;
  std::int64_t gn_w, gn_b, qkv_w, qkv_b, out_w, out_b;
};
struct VaeConvOffsets {
  std::int64_t w = -1, b = -1;
};

/// The whole AutoencoderKL's flat parameter buffer.
struct VaeLayout : ParamLayout {
  // encoder
  VaeConvOffsets enc_in;
  std::vector<std::vector<VaeResnet>> enc_blocks;
  std::vector<VaeConvOffsets> enc_down;  // one per block; w = -1 for the last
  VaeResnet enc_mid0, enc_mid1;
  VaeAttention enc_attn;
  VaeConvOffsets enc_norm_out, enc_out, quant;
  // decoder
  VaeConvOffsets post_quant, dec_in;
  VaeResnet dec_mid0, dec_mid1;
  VaeAttention dec_attn;
  std::vector<std::vector<VaeResnet>> dec_blocks;
  std::vector<VaeConvOffsets> dec_up;  // one per block; w = -1 for the last
  VaeConvOffsets dec_norm_out, dec_out;

  static VaeLayout make(const VaeConfig& c) {
    c.validate();
    VaeLayout L;
    auto conv = [&](const std::string& n, int cout, int cin, int k) {
      VaeConvOffsets o;
      o.w = L.add(n + ".weight", Shape{cout, cin, k, k}, Init::XavierUniform);
      o.b = L.add(n + ".bias", Shape{cout}, Init::Zero);
      return o;
    };
    auto norm = [&](const std::string& n, int ch) {
      VaeConvOffsets o;
      o.w = L.add(n + ".weight", Shape{ch}, Init::Zero);
      o.b = L.add(n + ".bias", Shape{ch}, Init::Zero);
      return o;
    };
    auto resnet = [&](const std::string& n, int cin, int cout) {
      VaeResnet r;
      r.cin = cin;
      r.cout = cout;
      auto n1 = norm(n + ".norm1", cin);
      auto c1 = conv(n + ".conv1", cout, cin, 3);
      auto n2 = norm(n + ".norm2", cout);
      auto c2 = conv(n + ".conv2", cout, cout, 3);
      r.n1_w = n1.w, r.n1_b = n1.b, r.c1_w = c1.w, r.c1_b = c1.b;
      r.n2_w = n2.w, r.n2_b = n2.b, r.c2_w = c2.w, r.c2_b = c2.b;
      if (cin != cout) {
        auto sc = conv(n + ".conv_shortcut", cout, cin, 1);
        r.sc_w = sc.w, r.sc_b = sc.b;
      }
      return r;
    };
    auto attention = [&](const std::string& n, int ch) {
      VaeAttention a;
      a.c = ch;
      auto gn = norm(n + ".group_norm", ch);
      a.gn_w = gn.w, a.gn_b = gn.b;
      a.qkv_w = L.add(n + ".to_q.weight", Shape{ch, ch}, Init::XavierUniform);
      L.add(n + ".to_k.weight", Shape{ch, ch}, Init::XavierUniform);
      L.add(n + ".to_v.weight", Shape{ch, ch}, Init::XavierUniform);
      a.qkv_b = L.add(n + ".to_q.bias", Shape{ch}, Init::Zero);
      L.add(n + ".to_k.bias", Shape{ch}, Init::Zero);
      L.add(n + ".to_v.bias", Shape{ch}, Init::Zero);
      a.out_w = L.add(n + ".to_out.0.weight", Shape{ch, ch}, Init::XavierUniform);
      a.out_b = L.add(n + ".to_out.0.bias", Shape{ch}, Init::Zero);
      return a;
    };
    const auto& bo = c.block_out_channels;
    const int nb = c.blocks(), top = c.top_channels(), lc = c.latent_channels;
    // encoder
    L.enc_in = conv("encoder.conv_in", bo[0], c.in_channels, 3);
    int ch = bo[0];
    for (int i = 0; i < nb; ++i) {
      std::vector<VaeResnet> rs;
      for (int j = 0; j < c.layers_per_block; ++j) {
        rs.push_back(resnet("encoder.down_blocks." + std::to_string(i) + ".resnets." + std::to_string(j), ch, bo[i]));
        ch = bo[i];
      }
      L.enc_blocks.push_back(rs);
      L.enc_down.push_back(i + 1 < nb ? conv("encoder.down_blocks." + std::to_string(i) + ".downsamplers.0.conv",
                                             ch, ch, 3)
                                      : VaeConvOffsets{});
    }
    L.enc_attn = attention("encoder.mid_block.attentions.0", top);
    L.enc_mid0 = resnet("encoder.mid_block.resnets.0", top, top);
    L.enc_mid1 = resnet("encoder.mid_block.resnets.1", top, top);
    L.enc_norm_out = norm("encoder.conv_norm_out", top);
    L.enc_out = conv("encoder.conv_out", 2 * lc, top, 3);
    // decoder
    L.dec_in = conv("decoder.conv_in", top, lc, 3);
    L.dec_attn = attention("decoder.mid_block.attentions.0", top);
    L.dec_mid0 = resnet("decoder.mid_block.resnets.0", top, top);
    L.dec_mid1 = resnet("decoder.mid_block.resnets.1", top, top);
    ch = top;
    for (int i = 0; i < nb; ++i) {
      const int out = bo[nb - 1 - i];
      std::vector<VaeResnet> rs;
      for (int j = 0; j < c.layers_per_block + 1; ++j) {
        rs.push_back(resnet("decoder.up_blocks." + std::to_string(i) + ".resnets." + std::to_string(j), ch, out));
        ch = out;
      }
      L.dec_blocks.push_back(rs);
      L.dec_up.push_back(i + 1 < nb ? conv("decoder.up_blocks." + std::to_string(i) + ".upsamplers.0.conv", ch, ch, 3)
                                    : VaeConvOffsets{});
    }
    L.dec_norm_out = norm("decoder.conv_norm_out", bo[0]);
    L.dec_out = conv("decoder.conv_out", c.out_channels, bo[0], 3);
    L.quant = conv("quant_conv", 2 * lc, 2 * lc, 1);
    L.post_quant = conv("post_quant_conv", lc, lc, 1);
    return L;
  }
};

}  // namespace redi
