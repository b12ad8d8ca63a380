// tests/parity_fixture.hpp — the PyTorch parity fixtures in tests/data/parity/ (written by
// make_parity_fixtures.py there: an independent PyTorch implementation of the public DiT / SiT /
// ReDi model and training objectives). Each file holds a small model's config (metadata), its
// weights under the official state_dict names ("model."), a batch (x0, z0, noise, t, labels),
// the reference network input x_t, output, loss terms and every parameter's gradient
// ("grad."), computed in float64 from float32-representable weights and inputs.
// test_model.cpp checks the network output, test_redi.cpp the loss and the gradients.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "io_test_util.hpp"
#include "redi/io/safetensors.hpp"
#include "redi/nn/config.hpp"

namespace redi::test::parity {

struct Fixture {
  std::string path;
  ModelConfig cfg;
  std::string fusion, objective;
  double lambda_z = 1.0;
  int B = 0;
  std::vector<double> x0, z0, noise, t, x_t, out, loss;  // loss = {loss, mse_x, mse_z, vb}
  std::vector<int> labels;

  static Fixture open(const std::string& name) {
    Fixture f;
    f.path = test_data_path("parity/" + name).string();
    const auto file = io::SafeTensorsFile::open(f.path);
    const auto& md = file.metadata();
    auto num = [&](const char* k) { return std::stod(md.at(k)); };
    f.cfg.input_size = int(num("input_size"));
    f.cfg.patch = int(num("patch"));
    f.cfg.image_channels = int(num("Cx"));
    f.cfg.feature_channels = int(num("r"));
    f.cfg.depth = int(num("depth"));
    f.cfg.width = int(num("width"));
    f.cfg.heads = int(num("heads"));
    f.cfg.num_classes = int(num("classes"));
    f.cfg.learn_sigma = md.at("learn_sigma") == "True";
    f.fusion = md.at("fusion");
    f.objective = md.at("objective");
    f.lambda_z = num("lambda_z");
    for (auto [key, v] : {std::pair{"x0", &f.x0}, {"z0", &f.z0}, {"noise", &f.noise}, {"t", &f.t},
                          {"x_t", &f.x_t}, {"out", &f.out}, {"loss", &f.loss}})
      *v = file.read<double>(key);
    for (auto l : file.read<std::int32_t>("labels")) f.labels.push_back(int(l));
    f.B = int(f.t.size());
    return f;
  }

  /// The reference gradient of parameter `name` (official state_dict name).
  std::vector<double> grad(const std::string& name) const {
    return io::SafeTensorsFile::open(path).read<double>("grad." + name);
  }

  template <class T>
  static std::vector<T> as(const std::vector<double>& v) {
    return std::vector<T>(v.begin(), v.end());
  }
};

/// max |a - b| / max(max |b|, floor): the error relative to the reference tensor's scale.
template <class A>
double scaled_error(const A* a, const std::vector<double>& b, double floor = 1e-30) {
  double err = 0, scale = floor;
  for (std::size_t i = 0; i < b.size(); ++i) {
    err = std::max(err, std::fabs(double(a[i]) - b[i]));
    scale = std::max(scale, std::fabs(b[i]));
  }
  return err / scale;
}

/// max |a - b|.
template <class A>
double max_abs_error(const A* a, const std::vector<double>& b) {
  double err = 0;
  for (std::size_t i = 0; i < b.size(); ++i) err = std::max(err, std::fabs(double(a[i]) - b[i]));
  return err;
}

}  // namespace redi::test::parity
