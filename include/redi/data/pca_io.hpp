// redi/data/pca_io.hpp — PCA and PC-normalisation files (safetensors, F32).
//
// A PCA file has exactly the keys of the authors' data/dinov2_vitb14_reg_pca.safetensors:
//   feature_mean [D], feature_std [D], pca_mean [D], components [K, D], explained_variance [K]
// (K <= D; the authors' file has K = D = 768) plus free-form string metadata.
// A PC-normalisation file (optional, kept apart so PCA files stay interchangeable) has
//   pc_mean [r], pc_std [r].
#pragma once
#include <cmath>
#include <filesystem>
#include <map>
#include <string>

#include "redi/core/error.hpp"
#include "redi/data/pca.hpp"
#include "redi/io/safetensors.hpp"

namespace redi::data {

namespace detail {
/// Throws unless every value of tensor `key` is finite (a NaN or Inf in a PCA file would poison
/// every feature it projects, silently).
inline void require_finite(const std::vector<float>& v, const std::string& what, const char* key) {
  for (std::size_t i = 0; i < v.size(); ++i)
    REDI_CHECK(std::isfinite(v[i]), what, ": '", key, "'[", i, "] = ", v[i], " is not finite");
}
}  // namespace detail

inline void save_pca(const std::filesystem::path& path, const Pca& p,
                     const std::map<std::string, std::string>& metadata = {}) {
  p.validate(path.string());
  io::SafeTensorsWriter w;
  const std::int64_t D = p.dim, K = p.num_components;
  w.add("feature_mean", Shape{D}, p.feature_mean.data());
  w.add("feature_std", Shape{D}, p.feature_std.data());
  w.add("pca_mean", Shape{D}, p.pca_mean.data());
  w.add("components", Shape{K, D}, p.components.data());
  w.add("explained_variance", Shape{K}, p.explained_variance.data());
  w.write(path, metadata);
}

/// Loads a PCA file; `max_components` > 0 keeps only the first that many axes.
/// Missing keys or inconsistent shapes throw redi::Error naming the file and the tensor.
inline Pca load_pca(const std::filesystem::path& path, int max_components = 0) {
  const auto f = io::SafeTensorsFile::open(path);
  const std::string what = path.string();
  for (const char* key : {"feature_mean", "feature_std", "pca_mean", "components", "explained_variance"})
    REDI_CHECK(f.contains(key), what, ": PCA file has no tensor '", key, "'");
  const auto& cs = f.info("components").shape;
  REDI_CHECK(cs.size() == 2 && cs[0] > 0 && cs[1] > 0, what, ": 'components' has shape ", io::shape_str(cs),
             ", expected [K, D]");
  const std::int64_t K = cs[0], D = cs[1];
  REDI_CHECK(D <= (1 << 20), what, ": 'components' has ", D, " columns (at most 2^20 feature dimensions)");
  REDI_CHECK(K <= D, what, ": 'components' has more rows (", K, ") than columns (", D, ")");
  Pca p;
  p.dim = int(D);
  p.feature_mean = f.read<float>("feature_mean", Shape{D});
  p.feature_std = f.read<float>("feature_std", Shape{D});
  p.pca_mean = f.read<float>("pca_mean", Shape{D});
  p.components = f.read<float>("components", Shape{K, D});
  p.explained_variance = f.read<float>("explained_variance", Shape{K});
  p.num_components = int(K);
  detail::require_finite(p.feature_mean, what, "feature_mean");
  detail::require_finite(p.feature_std, what, "feature_std");
  detail::require_finite(p.pca_mean, what, "pca_mean");
  detail::require_finite(p.components, what, "components");
  detail::require_finite(p.explained_variance, what, "explained_variance");
  if (max_components > 0 && max_components < K) {
    p.num_components = max_components;
    p.components.resize(std::size_t(max_components) * std::size_t(D));
    p.explained_variance.resize(std::size_t(max_components));
  }
  p.validate(what);
  return p;
}

inline void save_pc_normalization(const std::filesystem::path& path, const PcNormalization& n,
                                  const std::map<std::string, std::string>& metadata = {}) {
  REDI_CHECK(n.mean.size() == n.std.size() && !n.mean.empty(), path.string(), ": PC normalisation sizes ",
             n.mean.size(), " and ", n.std.size());
  io::SafeTensorsWriter w;
  const std::int64_t r = n.channels();
  w.add("pc_mean", Shape{r}, n.mean.data());
  w.add("pc_std", Shape{r}, n.std.data());
  w.write(path, metadata);
}

inline PcNormalization load_pc_normalization(const std::filesystem::path& path) {
  const auto f = io::SafeTensorsFile::open(path);
  const std::string what = path.string();
  for (const char* key : {"pc_mean", "pc_std"})
    REDI_CHECK(f.contains(key), what, ": PC normalisation file has no tensor '", key, "'");
  const auto& s = f.info("pc_mean").shape;
  REDI_CHECK(s.size() == 1 && s[0] > 0, what, ": 'pc_mean' has shape ", io::shape_str(s), ", expected [r]");
  PcNormalization n;
  n.mean = f.read<float>("pc_mean", Shape{s[0]});
  n.std = f.read<float>("pc_std", Shape{s[0]});
  detail::require_finite(n.mean, what, "pc_mean");
  detail::require_finite(n.std, what, "pc_std");
  for (std::size_t k = 0; k < n.std.size(); ++k)
    REDI_CHECK(n.std[k] > 0.f, what, ": pc_std[", k, "] = ", n.std[k], " (must be positive)");
  return n;
}

}  // namespace redi::data
