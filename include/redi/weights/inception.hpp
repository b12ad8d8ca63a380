// redi/weights/inception.hpp — the FID Inception's weights from a file in pytorch-fid's layout
// (pt_inception-2015-12-05-6726825d.pth: torchvision Inception3 state_dict names), as
// safetensors or a torch.save ZIP checkpoint (io/torch_pickle.hpp; the legacy pre-1.6 format
// is refused with a message — re-save it once with a current torch, docs/evaluation.md).
//
// Per BasicConv2d P (InceptionV3::convs()):
//   P.conv.weight [OC, C, KH, KW], P.bn.weight, P.bn.bias, P.bn.running_mean, P.bn.running_var [OC]
//   (P.bn.num_batches_tracked is optional and ignored)
// and fc.weight [1008, 2048], fc.bias [1008]. Anything missing, mis-shaped, non-finite, a
// negative running_var, or a tensor the network does not have (AuxLogits.* included: the FID
// network is built without them) is a redi::Error naming the file and the tensor; nothing is
// written into the network before everything has been read and checked.
// The BatchNorm (eps 1e-3) is folded into each convolution in double:
//   s = gamma / sqrt(var + 1e-3);  W'[o] = W[o] * s[o];  b'[o] = beta[o] - mean[o] * s[o]
#pragma once
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "redi/io/safetensors.hpp"
#include "redi/io/state_dict.hpp"
#include "redi/io/torch_pickle.hpp"
#include "redi/nn/inception.hpp"

namespace redi {

struct InceptionTensor {
  std::string name;
  std::vector<std::int64_t> shape;
};

/// Every tensor the network reads, in network order (the optional num_batches_tracked excluded).
template <CpuReal T>
std::vector<InceptionTensor> inception_tensors(const InceptionV3<T>& net) {
  std::vector<InceptionTensor> v;
  for (const auto& c : net.convs()) {
    const std::int64_t oc = c.g.out_channels;
    v.push_back({c.name + ".conv.weight", {oc, c.g.in_channels, c.g.kernel_h, c.g.kernel_w}});
    for (const char* s : {".bn.weight", ".bn.bias", ".bn.running_mean", ".bn.running_var"}) v.push_back({c.name + s, {oc}});
  }
  v.push_back({"fc.weight", {InceptionV3<T>::kClasses, InceptionV3<T>::kPool3}});
  v.push_back({"fc.bias", {InceptionV3<T>::kClasses}});
  return v;
}

/// Loads and folds the weights of `src` (any io::TensorSource) into `net`.
template <CpuReal T, io::TensorSource Src>
void load_inception(InceptionV3<T>& net, const Src& src) {
  const auto want = inception_tensors(net);
  std::set<std::string, std::less<>> known;
  for (const auto& t : want) {
    known.insert(t.name);
    REDI_CHECK(src.contains(t.name), src.label(), ": tensor '", t.name,
               "' is missing (not the FID Inception in torchvision/pytorch-fid names?)");
    const io::TensorInfo& ti = src.info(t.name);
    REDI_CHECK(ti.shape == t.shape, src.label(), ": tensor '", t.name, "' has shape ", io::shape_str(ti.shape),
               ", expected ", io::shape_str(t.shape));
  }
  for (const auto& n : src.names()) {
    const bool optional = n.ends_with(".bn.num_batches_tracked") &&
                          known.count(n.substr(0, n.size() - std::string("num_batches_tracked").size()) + "weight");
    REDI_CHECK(known.count(n) || optional, src.label(), ": unexpected tensor '", n,
               "' (the FID Inception has no such parameter)");
  }
  auto read = [&](const std::string& name) {
    const auto& ti = src.info(name);
    std::vector<double> v(std::size_t(ti.numel()));
    src.read_into(name, std::span<double>(v));
    for (std::size_t i = 0; i < v.size(); ++i)
      REDI_CHECK(std::isfinite(v[i]), src.label(), ": tensor '", name, "' holds a non-finite value at element ", i);
    return v;
  };
  std::vector<T> W(net.conv_weights().size()), b(net.conv_biases().size());
  for (const auto& c : net.convs()) {
    const auto w = read(c.name + ".conv.weight"), gamma = read(c.name + ".bn.weight"),
               beta = read(c.name + ".bn.bias"), mean = read(c.name + ".bn.running_mean"),
               var = read(c.name + ".bn.running_var");
    const std::int64_t oc = c.g.out_channels, per = c.g.col_rows();
    for (std::int64_t o = 0; o < oc; ++o) {
      REDI_CHECK(var[std::size_t(o)] >= 0, src.label(), ": tensor '", c.name, ".bn.running_var' is negative (",
                 var[std::size_t(o)], ") at element ", o);
      const double s = gamma[std::size_t(o)] / std::sqrt(var[std::size_t(o)] + InceptionV3<T>::kBnEps);
      for (std::int64_t k = 0; k < per; ++k)
        W[std::size_t(c.w_off + o * per + k)] = T(w[std::size_t(o * per + k)] * s);
      b[std::size_t(c.b_off + o)] = T(beta[std::size_t(o)] - mean[std::size_t(o)] * s);
    }
  }
  const auto fw = read("fc.weight"), fb = read("fc.bias");
  net.conv_weights() = std::move(W);
  net.conv_biases() = std::move(b);
  for (std::size_t i = 0; i < fw.size(); ++i) net.fc_weight()[i] = T(fw[i]);
  for (std::size_t i = 0; i < fb.size(); ++i) net.fc_bias()[i] = T(fb[i]);
}

/// From a file: a torch.save ZIP checkpoint when it is a ZIP, else safetensors.
template <CpuReal T>
void load_inception(InceptionV3<T>& net, const std::filesystem::path& path) {
  REDI_CHECK(std::filesystem::exists(path), path.string(), ": no such Inception weights file");
  std::ifstream f(path, std::ios::binary);
  char m[2] = {};
  const bool legacy_pickle = f.read(m, 2) && std::uint8_t(m[0]) == 0x80 && m[1] == 2;  // pre-1.6 torch.save
  if (io::is_zip_file(path) || legacy_pickle) load_inception(net, io::TorchCheckpoint::open(path));
  else load_inception(net, io::SafeTensorsFile::open(path));
}

}  // namespace redi
