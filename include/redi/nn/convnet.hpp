// redi/nn/convnet.hpp — a small VGG-style convolutional classifier: the architecture of redi's
// independent judge (redi/eval/judge.hpp), deliberately unlike the ViT feature encoders
// (redi/nn/vit_encoder.hpp): convolutions and pooling, no attention, no patch tokens.
//
//   layers "32-M-64-M-128-M-128" (the default, the judge's):
//     N  = conv 3x3, stride 1, padding 1, N output channels, + ReLU
//     M  = max pool 2x2, stride 2
//   then global average pooling -> features() [B, D] (D = the last conv's channels; the
//   "penultimate features") -> linear head -> logits() [B, num_classes].
//
// Input: images [B, C, S, S] in [-1, 1] (redi's convention: uint8 p -> p / 127.5 - 1), which the
// network first normalises with fixed constants: (x - input_mean) / input_std.
// Parameters, in one flat buffer in this order, named like torchvision's VGG:
//   features.<i>.weight [N, C_in, 3, 3], features.<i>.bias [N]   (i = the layer's index in the list)
//   head.weight [num_classes, D], head.bias [num_classes]
// Initialisation (Philox keyed by (seed, tensor index, element)): conv weights He-uniform
// (bound sqrt(6 / fan_in), for ReLU), head weights uniform(+-1/sqrt(D)), biases 0.
//
// Memory is llm.c style, as in ViTEncoder: one flat parameter buffer, one gradient buffer, one
// activation arena sized for the largest batch seen (conv scratch included).
#pragma once
#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <filesystem>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "redi/core/philox.hpp"
#include "redi/core/tensor.hpp"
#include "redi/nn/param_layout.hpp"
#include "redi/ops/activation.hpp"
#include "redi/ops/conv2d.hpp"
#include "redi/ops/linear.hpp"
#include "redi/ops/pool.hpp"

namespace redi {

struct ConvNetConfig {
  int image_size = 32;  // H == W of the input
  int channels = 1;     // C of the input
  int num_classes = 10;
  std::string layers = "32-M-64-M-128-M-128";  // see the header comment
  /// The network first maps its input x to (x - input_mean) / input_std (a fixed
  /// normalisation, like torchvision's Normalize; 0 and 1: none).
  double input_mean = 0.0, input_std = 1.0;

  /// One entry per layer: the conv's output channels, or 0 for a max pool.
  std::vector<int> layer_list() const {
    std::vector<int> out;
    std::istringstream is(layers);
    std::string tok;
    while (std::getline(is, tok, '-')) {
      if (tok == "M") {
        out.push_back(0);
        continue;
      }
      std::size_t used = 0;
      int n = 0;
      try {
        n = std::stoi(tok, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      REDI_CHECK(used == tok.size() && n > 0, "ConvNetConfig: layer '", tok, "' in '", layers,
                 "' is neither a channel count nor M");
      out.push_back(n);
    }
    return out;
  }
  /// D: the channels of the last convolution.
  int feature_dim() const {
    int d = 0;
    for (int n : layer_list()) d = n > 0 ? n : d;
    return d;
  }

  void validate() const {
    REDI_CHECK(image_size > 0 && channels > 0, "ConvNetConfig: image_size ", image_size, ", channels ", channels);
    REDI_CHECK(num_classes >= 2, "ConvNetConfig: num_classes must be >= 2, got ", num_classes);
    REDI_CHECK(std::isfinite(input_mean) && std::isfinite(input_std) && input_std > 0, "ConvNetConfig: input_mean ",
               input_mean, ", input_std ", input_std);
    const auto L = layer_list();
    REDI_CHECK(!L.empty() && feature_dim() > 0, "ConvNetConfig: layers '", layers, "' have no convolution");
    int s = image_size;
    for (int n : L)
      if (n == 0) {
        REDI_CHECK(s >= 2, "ConvNetConfig: layers '", layers, "' pool a ", s, "x", s, " map");
        s /= 2;
      }
  }

  /// "image_size=32,channels=1,num_classes=10,layers=32-M-64-M-128-M-128,input_mean=0,input_std=1"
  /// (saved files' metadata "redi.convnet").
  std::string str() const {
    std::ostringstream os;
    os.precision(17);
    os << "image_size=" << image_size << ",channels=" << channels << ",num_classes=" << num_classes
       << ",layers=" << layers << ",input_mean=" << input_mean << ",input_std=" << input_std;
    return os.str();
  }
  static ConvNetConfig parse(const std::string& s) {
    ConvNetConfig c;
    std::istringstream is(s);
    std::string kv;
    while (std::getline(is, kv, ',')) {
      const auto eq = kv.find('=');
      REDI_CHECK(eq != std::string::npos, "ConvNetConfig::parse: '", kv, "' is not key=value");
      const std::string k = kv.substr(0, eq), v = kv.substr(eq + 1);
      int* f = k == "image_size" ? &c.image_size : k == "channels" ? &c.channels
             : k == "num_classes" ? &c.num_classes : nullptr;
      if (k == "layers") {
        c.layers = v;
      } else if (k == "input_mean" || k == "input_std") {
        std::size_t used = 0;
        double x = 0;
        try {
          x = std::stod(v, &used);
        } catch (const std::exception&) {
          used = 0;
        }
        REDI_CHECK(used == v.size() && !v.empty(), "ConvNetConfig::parse: '", kv, "' is not a number");
        (k == "input_mean" ? c.input_mean : c.input_std) = x;
      } else if (f) {
        std::size_t used = 0;
        try {
          *f = std::stoi(v, &used);
        } catch (const std::exception&) {
          used = 0;
        }
        REDI_CHECK(used == v.size() && !v.empty(), "ConvNetConfig::parse: '", kv, "' is not an integer");
      } else {
        REDI_FAIL("ConvNetConfig::parse: unknown key '", k, "'");
      }
    }
    c.validate();
    return c;
  }
};

/// Mean softmax cross-entropy of logits [B, K] against labels [B], in double; `correct`
/// (optional) receives the number of argmax hits; `dlogits` (optional, overwritten) the
/// gradient of the mean.
template <CpuReal T>
double softmax_cross_entropy(const T* logits, const int* labels, int B, int K, int* correct = nullptr,
                             T* dlogits = nullptr) {
  double loss = 0;
  int hits = 0;
  std::vector<double> pr(static_cast<std::size_t>(K));
  for (int b = 0; b < B; ++b) {
    const T* z = logits + std::int64_t(b) * K;
    REDI_CHECK(labels[b] >= 0 && labels[b] < K, "softmax_cross_entropy: label ", labels[b], " outside [0, ", K, ")");
    const int arg = int(std::max_element(z, z + K) - z);
    hits += arg == labels[b];
    double s = 0;
    for (int k = 0; k < K; ++k) s += (pr[std::size_t(k)] = std::exp(double(z[k]) - double(z[arg])));
    loss += std::log(s) - (double(z[labels[b]]) - double(z[arg]));
    if (dlogits)
      for (int k = 0; k < K; ++k)
        dlogits[std::int64_t(b) * K + k] = T((pr[std::size_t(k)] / s - (k == labels[b] ? 1.0 : 0.0)) / B);
  }
  if (correct) *correct = hits;
  return loss / B;
}

/// A network's weights file (safetensors), specialised per network type in redi/weights/.
template <class Net>
struct WeightsFile;

template <CpuReal T>
class ConvNetClassifier {
public:
  using value_type = T;
  static constexpr const char* kMetadataKey = "redi.convnet";
  /// Conv scratch budget (elements): chunks of images are sized to stay within it.
  static constexpr std::int64_t kScratchBudget = std::int64_t(1) << 22;

  explicit ConvNetClassifier(const ConvNetConfig& cfg, std::uint64_t seed = 0) : cfg_(cfg) {
    cfg_.validate();
    auto add = [&](std::string name, Shape s, Init init) { return layout_.add(std::move(name), s, init); };
    int c = cfg_.channels, s = cfg_.image_size;
    const auto list = cfg_.layer_list();
    for (std::size_t i = 0; i < list.size(); ++i) {
      Layer l;
      l.in_c = c;
      l.H = l.W = s;
      if (list[i] > 0) {
        l.conv = true;
        l.g = ops::Conv2dGeometry::square(c, list[i], 3, 1, 1);
        l.out_c = list[i];
        l.OH = l.OW = s;
        const std::string n = "features." + std::to_string(i) + ".";
        l.w_off = add(n + "weight", Shape{list[i], c, 3, 3}, Init::XavierUniform);  // tag only: see initialize()
        l.b_off = add(n + "bias", Shape{list[i]}, Init::Zero);
      } else {
        l.out_c = c;
        l.OH = l.OW = s / 2;
      }
      c = l.out_c;
      s = l.OH;
      layers_.push_back(l);
    }
    head_w_ = add("head.weight", Shape{cfg_.num_classes, c}, Init::XavierUniform);
    head_b_ = add("head.bias", Shape{cfg_.num_classes}, Init::Zero);
    params_ = Tensor<T>(Shape{layout_.total});
    grads_ = Tensor<T>(Shape{layout_.total});
    initialize(seed);
  }

  // ---- configuration and parameters
  const ConvNetConfig& config() const { return cfg_; }
  const std::vector<ParamEntry>& entries() const { return layout_.entries; }
  Tensor<T>& params() { return params_; }
  Tensor<T>& grads() { return grads_; }
  const Tensor<T>& params() const { return params_; }
  const Tensor<T>& grads() const { return grads_; }
  std::int64_t num_params() const { return layout_.total; }
  void zero_grad() { grads_.zero(); }
  int feature_dim() const { return cfg_.feature_dim(); }
  int num_classes() const { return cfg_.num_classes; }
  std::size_t arena_allocations() const { return arena_allocs_; }
  /// Multiply-accumulates of one image's forward pass (convolutions and head).
  std::int64_t forward_macs() const {
    std::int64_t m = std::int64_t(feature_dim()) * cfg_.num_classes;
    for (const auto& l : layers_)
      if (l.conv) m += l.g.weight_elems() * l.OH * l.OW;
    return m;
  }

  /// He-uniform conv weights, uniform(+-1/sqrt(D)) head weights, zero biases (see the header).
  void initialize(std::uint64_t seed) {
    T* P = params_.data();
    for (std::size_t k = 0; k < layout_.entries.size(); ++k) {
      const auto& e = layout_.entries[k];
      const bool head = e.offset == head_w_;
      const double bound = head ? 1.0 / std::sqrt(double(e.cols())) : std::sqrt(6.0 / double(e.cols()));
      for (std::int64_t i = 0; i < e.numel(); ++i)
        P[e.offset + i] = e.init == Init::Zero ? T(0)
                                               : T((2.0 * philox::uniform(seed, k, std::uint64_t(i)) - 1.0) * bound);
    }
  }

  /// Every parameter perturbed by N(0, std) (gradient checks: zero biases hide terms).
  void randomize(std::uint64_t seed, double std) {
    T* P = params_.data();
    for (std::size_t k = 0; k < layout_.entries.size(); ++k)
      for (std::int64_t i = 0; i < layout_.entries[k].numel(); ++i)
        P[layout_.entries[k].offset + i] += T(std * philox::normal(seed, 1000 + k, std::uint64_t(i)));
  }

  // ---- files (defined by WeightsFile<ConvNetClassifier<T>> in redi/weights/convnet.hpp; the
  // template parameter only defers the lookup, so that nn/ does not depend on io/)

  /// Views of every parameter under its name (for io::save_state / io::load_state).
  template <class File = WeightsFile<ConvNetClassifier>>
  auto param_refs() {
    return File::refs(*this);
  }
  /// Saves safetensors with the config in metadata[kMetadataKey] (plus `metadata`).
  template <class File = WeightsFile<ConvNetClassifier>>
  void save(const std::filesystem::path& path, std::map<std::string, std::string> metadata = {},
            DType store_as = dtype_of<T>::value) {
    File::save(*this, path, std::move(metadata), store_as);
  }
  /// Loads weights saved by save() (strict: every name and shape must match; non-finite values
  /// are an error naming the file and tensor).
  template <class File = WeightsFile<ConvNetClassifier>>
  void load_weights(const std::filesystem::path& path) {
    File::load_weights(*this, path);
  }
  /// A network built from the config stored in the file, with its weights.
  template <class File = WeightsFile<ConvNetClassifier>>
  static ConvNetClassifier load(const std::filesystem::path& path) {
    return File::load(path);
  }

  // ---- forward / backward

  /// images [B, C, S, S] (in [-1, 1]) -> features() [B, D], logits() [B, K]; saves what
  /// backward needs (the input is copied).
  void forward(const T* images, int B) {
    ensure_batch(B);
    const T* P = params_.data();
    const std::int64_t n_in = std::int64_t(B) * cfg_.channels * cfg_.image_size * cfg_.image_size;
    const T mu = T(cfg_.input_mean), inv_std = T(1.0 / cfg_.input_std);
    for (std::int64_t i = 0; i < n_in; ++i) act_[0][i] = (images[i] - mu) * inv_std;
    for (std::size_t i = 0; i < layers_.size(); ++i) {
      const Layer& l = layers_[i];
      if (l.conv) {
        ops::conv2d_forward<T>(cpu, act_[i + 1], act_[i], P + l.w_off, P + l.b_off, B, l.H, l.W, l.g, scratch_,
                               scratch_elems_);
        ops::relu_forward<T>(cpu, act_[i + 1], act_[i + 1], std::int64_t(B) * l.out_elems());
      } else {
        ops::maxpool2d_forward<T>(cpu, act_[i + 1], act_[i], B, l.in_c, l.H, l.W, ops::Pool2dGeometry::square(2));
      }
    }
    const Layer& last = layers_.back();
    ops::global_avgpool_forward<T>(cpu, feat_, act_.back(), B, last.out_c, last.OH, last.OW);
    ops::linear_forward<T>(cpu, logits_, feat_, P + head_w_, P + head_b_, B, feature_dim(), cfg_.num_classes);
  }

  int batch() const { return batch_; }
  const T* features() const { return feat_; }  ///< [B, D] of the last forward (penultimate layer)
  const T* logits() const { return logits_; }   ///< [B, num_classes]

  /// Mean cross-entropy of the last forward (see softmax_cross_entropy).
  double cross_entropy(const int* labels, int* correct = nullptr) const {
    return softmax_cross_entropy<T>(logits_, labels, batch_, cfg_.num_classes, correct);
  }
  /// Cross-entropy of the last forward and its backward (gradients ACCUMULATE into grads()).
  double backward_cross_entropy(const int* labels, int* correct = nullptr) {
    const double loss = softmax_cross_entropy<T>(logits_, labels, batch_, cfg_.num_classes, correct, dlogits_);
    backward(dlogits_);
    return loss;
  }

  /// Backward from dL/dlogits [B, K] of the last forward; ACCUMULATES into grads().
  void backward(const T* dlogits) {
    const int B = batch_;
    const T* P = params_.data();
    T* G = grads_.data();
    ops::linear_backward<T>(cpu, dfeat_, G + head_w_, G + head_b_, dlogits, feat_, P + head_w_, B, feature_dim(),
                            cfg_.num_classes);
    const Layer& last = layers_.back();
    T* cur = grad_a_;
    T* next = grad_b_;
    ops::global_avgpool_backward<T>(cpu, cur, dfeat_, B, last.out_c, last.OH, last.OW);
    for (std::size_t k = layers_.size(); k-- > 0;) {
      const Layer& l = layers_[k];
      T* din = k > 0 ? next : nullptr;  // the input image needs no gradient
      if (l.conv) {
        ops::relu_backward<T>(cpu, cur, cur, act_[k + 1], std::int64_t(B) * l.out_elems());
        ops::conv2d_backward<T>(cpu, din, G + l.w_off, G + l.b_off, cur, act_[k], P + l.w_off, B, l.H, l.W, l.g,
                                scratch_, scratch_elems_);
      } else if (din) {
        ops::maxpool2d_backward<T>(cpu, din, cur, act_[k], B, l.in_c, l.H, l.W, ops::Pool2dGeometry::square(2));
      }
      std::swap(cur, next);
    }
  }

private:
  struct Layer {
    bool conv = false;
    int in_c = 0, out_c = 0, H = 0, W = 0, OH = 0, OW = 0;
    ops::Conv2dGeometry g{};
    std::int64_t w_off = -1, b_off = -1;
    std::int64_t in_elems() const { return std::int64_t(in_c) * H * W; }
    std::int64_t out_elems() const { return std::int64_t(out_c) * OH * OW; }
  };


  /// Sizes the arena for batch B (one allocation, only when B grows).
  void ensure_batch(int B) {
    REDI_CHECK(B > 0, "ConvNetClassifier::forward: batch size must be > 0, got ", B);
    batch_ = B;
    if (B <= capacity_) return;
    std::int64_t per_image_scratch = 0, max_act = 0;
    for (const auto& l : layers_) {
      if (l.conv) per_image_scratch = std::max(per_image_scratch, ops::conv2d_scratch_per_image(l.g, l.H, l.W));
      max_act = std::max({max_act, l.in_elems(), l.out_elems()});
    }
    const int chunk = int(std::clamp<std::int64_t>(kScratchBudget / std::max<std::int64_t>(1, per_image_scratch), 1, B));
    const int D = feature_dim(), K = cfg_.num_classes;
    for (int pass = 0; pass < 2; ++pass) {
      std::int64_t off = 0;
      auto grab = [&](std::int64_t n) -> T* {
        const std::int64_t start = (off + 15) / 16 * 16;
        off = start + n;
        return pass == 0 ? nullptr : arena_.data() + start;
      };
      act_.assign(layers_.size() + 1, nullptr);
      act_[0] = grab(std::int64_t(B) * layers_.front().in_elems());
      for (std::size_t i = 0; i < layers_.size(); ++i) act_[i + 1] = grab(std::int64_t(B) * layers_[i].out_elems());
      grad_a_ = grab(std::int64_t(B) * max_act);
      grad_b_ = grab(std::int64_t(B) * max_act);
      feat_ = grab(std::int64_t(B) * D);
      dfeat_ = grab(std::int64_t(B) * D);
      logits_ = grab(std::int64_t(B) * K);
      dlogits_ = grab(std::int64_t(B) * K);
      scratch_elems_ = per_image_scratch * chunk;
      scratch_ = grab(scratch_elems_);
      if (pass == 0) {
        arena_ = Tensor<T>(Shape{off});
        ++arena_allocs_;
      }
    }
    capacity_ = B;
  }

  ConvNetConfig cfg_;
  ParamLayout layout_;  // names, shapes, offsets (the init is this network's own, above)
  std::vector<Layer> layers_;
  std::int64_t head_w_ = 0, head_b_ = 0;
  Tensor<T> params_, grads_, arena_;
  std::vector<T*> act_;
  T *grad_a_ = nullptr, *grad_b_ = nullptr, *feat_ = nullptr, *dfeat_ = nullptr, *logits_ = nullptr,
    *dlogits_ = nullptr, *scratch_ = nullptr;
  std::int64_t scratch_elems_ = 0;
  int batch_ = 0, capacity_ = 0;
  std::size_t arena_allocs_ = 0;
};

}  // namespace redi
