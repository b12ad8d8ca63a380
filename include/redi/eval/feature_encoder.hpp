// redi/eval/feature_encoder.hpp — the contract of an evaluation feature space, and a reference
// set cached in it.
//
// An eval::FeatureEncoder maps a batch of uint8 images (NHWC, the ADM sample format) to one
// feature vector per image: the judge's penultimate CNN features (redi/eval/judge.hpp) today;
// Inception pool3 or DINOv2 features later. (data::FeatureEncoder, redi/data/features.hpp, is a
// different contract: per-PATCH features of float images, the representation ReDi learns.)
//
// A ReferenceSet holds what every evaluation against the same real images reuses: their
// features, mean and covariance (FD), and k-NN radii (precision/recall), computed once.
#pragma once
#include <Eigen/Dense>

#include <algorithm>
#include <concepts>
#include <cstdint>
#include <string>
#include <vector>

#include "redi/core/error.hpp"
#include "redi/eval/frechet.hpp"
#include "redi/eval/precision_recall.hpp"

namespace redi::eval {

/// The contract:
///  * feature_dim(): D;
///  * feature_space(): a name for reports and for matching reference sets (e.g. "judge:...");
///  * features(nhwc, n, h, w, c, out): out [n, D] (row-major float) for n uint8 images of
///    h x w x c; throws redi::Error for an image size it does not take.
template <class E>
concept FeatureEncoder = requires(E& e, const E& ce, const std::uint8_t* px, std::int64_t n, int h, float* out) {
  { ce.feature_dim() } -> std::convertible_to<int>;
  { ce.feature_space() } -> std::convertible_to<std::string>;
  e.features(px, n, h, h, h, out);
};

/// Features [n, D] of n images of h x w x c.
template <FeatureEncoder E>
std::vector<float> encode_images(E& enc, const std::uint8_t* nhwc, std::int64_t n, int h, int w, int c) {
  REDI_CHECK(n > 0 && h > 0 && w > 0 && c > 0, "encode_images: ", n, " images of ", h, "x", w, "x", c);
  std::vector<float> f(std::size_t(n) * std::size_t(enc.feature_dim()));
  enc.features(nhwc, n, h, w, c, f.data());
  return f;
}

/// Real images' features and the statistics derived from them, for repeated evaluations.
struct ReferenceSet {
  std::string name;           ///< where the images came from (reports print it)
  std::string feature_space;  ///< FeatureEncoder::feature_space() of the encoder that made it
  std::int64_t n = 0;
  int dim = 0;
  int k = 3;                   ///< neighbourhood size of radii_sq
  std::vector<float> features;  ///< [n, dim]
  Eigen::VectorXd mean;
  Eigen::MatrixXd covariance;
  std::vector<double> radii_sq;  ///< squared k-NN radii (precision_recall.hpp)

  /// From features [n, dim] (copied). Needs n > k (radii) and n >= 2 (covariance).
  static ReferenceSet from_features(const float* f, std::int64_t n, int dim, std::string name,
                                    std::string feature_space, int k = 3) {
    REDI_CHECK(n > std::max(1, k), "ReferenceSet ", name, ": ", n, " images (at least ", std::max(1, k) + 1,
               " needed for k = ", k, ")");
    ReferenceSet r;
    r.name = std::move(name);
    r.feature_space = std::move(feature_space);
    r.n = n;
    r.dim = dim;
    r.k = k;
    r.features.assign(f, f + n * dim);
    GaussianStats st(dim);
    st.add(f, n);
    r.mean = st.mean();
    r.covariance = st.covariance();
    r.radii_sq = knn_radii_squared(f, n, dim, k);
    return r;
  }
  /// Encodes n images with `enc` and builds the set.
  template <FeatureEncoder E>
  static ReferenceSet build(E& enc, const std::uint8_t* nhwc, std::int64_t n, int h, int w, int c, std::string name,
                            int k = 3) {
    const auto f = encode_images(enc, nhwc, n, h, w, c);
    return from_features(f.data(), n, enc.feature_dim(), std::move(name), enc.feature_space(), k);
  }
};

/// FD between feature rows f [n, dim] and the reference set.
inline double frechet_distance(const float* f, std::int64_t n, int dim, const ReferenceSet& ref) {
  REDI_CHECK(dim == ref.dim, "frechet_distance: features of dimension ", dim, ", reference ", ref.name, " has ", ref.dim);
  GaussianStats st(dim);
  st.add(f, n);
  return frechet_distance(st.mean(), st.covariance(), ref.mean, ref.covariance);
}

}  // namespace redi::eval
