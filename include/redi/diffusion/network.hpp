// redi/diffusion/network.hpp — the contract between a denoiser network and the diffusion
// policies (objectives, samplers, guidance). The policies only ever see a network through
// this concept, so any backbone (DiT, SiT, a test oracle, a toy linear map) plugs in.
//
// Channel layout ("fused"): input [B, Cin, H, W] with Cin = Cx + r — the image-latent channels
// first, then the r representation (PCA'd DINOv2) channels. Output [B, Cout, H, W] with
// Cout = Cin, or Cout = 2*Cin when the network learns sigma (DiT learn_sigma): the first Cin
// channels are the eps prediction for all channels (x then z), the next Cin the variance
// interpolation values v of improved-DDPM's learned range (one per input channel, x then z).
//
// Time: DDPM networks get the ORIGINAL integer timestep 0..999 as a T (also when sampling
// with a respaced schedule); flow-matching networks get t in [0, 1] (t = 1 is data).
// Labels: ints in [0, num_classes]; num_classes (= null_class()) is the CFG "null" row.
// The network must NOT drop labels itself: label dropout is done by redi::JointLoss.
#pragma once
#include <concepts>
#include <type_traits>

#include "redi/core/error.hpp"
#include "redi/core/parallel.hpp"  // kOmpMinWork: the diffusion loops' OpenMP threshold

namespace redi {

/// Inference contract: what samplers and guidance need.
template <class N>
concept Network = std::floating_point<typename N::value_type> &&
    requires(N& n, const typename N::value_type* x, const typename N::value_type* t, const int* y,
             typename N::value_type* out, int B) {
      { n.channels_in() } -> std::convertible_to<int>;     // Cx + r
      { n.channels_out() } -> std::convertible_to<int>;    // Cin or 2*Cin (learned sigma)
      { n.image_channels() } -> std::convertible_to<int>;  // Cx
      { n.height() } -> std::convertible_to<int>;
      { n.width() } -> std::convertible_to<int>;
      { n.null_class() } -> std::convertible_to<int>;      // label of the CFG null row
      n.forward(x, t, y, B, out);
    };

/// Training contract: a Network whose backward(dout) accumulates parameter gradients from
/// d loss / d out of the most recent forward() call (dout has the shape of that out).
template <class N>
concept TrainableNetwork = Network<N> && requires(N& n, const typename N::value_type* dout) {
  n.backward(dout);
};

namespace diffusion {

/// Sizes of the fused layout, read once from a network and checked. A sample is the packed
/// [x (cx*h*w) | z (r*zh*zw)]: the features share the image grid (zh = h, zw = w: the
/// channel-stacked [Cin, H, W]) unless the network reports its own feature grid through
/// feature_height() / feature_width(). With learned sigma the output is [eps | v], each packed.
struct Layout {
  int cx = 0, cin = 0, cout = 0, h = 0, w = 0, zh = 0, zw = 0;
  bool learned_sigma = false;
  int hw() const { return h * w; }
  int r() const { return cin - cx; }
  long long nx() const { return (long long)cx * h * w; }                   // image values per sample
  long long nz() const { return (long long)(cin - cx) * zh * zw; }         // feature values per sample
  long long in_elems() const { return nx() + nz(); }                       // per sample
  long long out_elems() const { return learned_sigma ? 2 * in_elems() : in_elems(); }  // per sample
};

/// The layout of any object with the Network contract's shape queries (also a device network
/// whose value_type is bf16: redi::DeviceLoss / DeviceSampler take it from the network itself).
template <class N>
Layout layout_of(N& net) {
  Layout L;
  L.cx = int(net.image_channels());
  L.cin = int(net.channels_in());
  L.cout = int(net.channels_out());
  L.h = int(net.height());
  L.w = int(net.width());
  L.zh = L.h;
  L.zw = L.w;
  if constexpr (requires { net.feature_height(); net.feature_width(); }) {
    L.zh = int(net.feature_height());
    L.zw = int(net.feature_width());
    REDI_CHECK(L.zh > 0 && L.zw > 0, "network: feature_height/feature_width must be positive");
  }
  REDI_CHECK(L.cx > 0 && L.cx <= L.cin, "network: image_channels()=", L.cx,
             " must be in [1, channels_in()=", L.cin, "]");
  REDI_CHECK(L.cout == L.cin || L.cout == 2 * L.cin, "network: channels_out()=", L.cout,
             " must be channels_in()=", L.cin, " or 2*channels_in() (learned sigma)");
  REDI_CHECK(L.h > 0 && L.w > 0, "network: height/width must be positive");
  L.learned_sigma = (L.cout == 2 * L.cin);
  return L;
}

/// Inference evaluation for samplers: net.infer(...) where the network has one (it keeps no
/// activations for a backward pass, so big sampling batches fit), else net.forward(...).
template <Network N>
void evaluate(N& net, const typename N::value_type* x, const typename N::value_type* t,
              const int* y, int B, typename N::value_type* out) {
  if constexpr (requires { net.infer(x, t, y, B, out); }) net.infer(x, t, y, B, out);
  else net.forward(x, t, y, B, out);
}

}  // namespace diffusion
}  // namespace redi
