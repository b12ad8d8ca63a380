// Downstream smoke test: the umbrella header compiles, a tensor can be made and filled with
// Philox normals, and the result matches the scalar generator; redi's shipped data files are
// found (the installed copy under <prefix>/share/redi/data, or the source tree's data/).
#include <redi/redi.hpp>

#include <cmath>
#include <cstdio>
#include <filesystem>

int main() {
  redi::Tensor<float> t(redi::Shape{4, 8});
  redi::philox::fill_normal(t.data(), static_cast<std::size_t>(t.numel()), /*seed=*/42,
                            /*stream=*/7);
  double sum_sq = 0.0;
  for (std::int64_t i = 0; i < t.numel(); ++i) {
    if (t[i] != static_cast<float>(redi::philox::normal(42, 7, static_cast<std::uint64_t>(i)))) {
      std::printf("consumer: element %lld differs from philox::normal\n", static_cast<long long>(i));
      return 1;
    }
    sum_sq += double(t[i]) * double(t[i]);
  }
  // The shipped PCA file (data/README.md) through redi::data_file(): throws if it is missing.
  const std::filesystem::path pca = redi::data_file("dinov2_vitb14_reg_pca.safetensors");
  const auto pca_bytes = std::filesystem::file_size(pca);
  std::printf("consumer: data dir %s (PCA file %llu bytes)\n", redi::data_dir().string().c_str(),
              static_cast<unsigned long long>(pca_bytes));
  if (pca_bytes != 2372216u) return 1;
  std::printf("consumer: redi %s (%d.%d.%d), tensor %s, x[0] = %.6f, mean square %.4f\n",
              redi::version_string, redi::version.major, redi::version.minor, redi::version.patch,
              t.shape().str().c_str(), double(t[0]), sum_sq / double(t.numel()));
  return std::isfinite(sum_sq) && sum_sq > 0.0 ? 0 : 1;
}
