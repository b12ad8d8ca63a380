// redi/nn/config.hpp — run-time model geometry (depth, width, heads, patch, channels) and the
// DiT/SiT size presets S/B/L/XL x patch 2/4/8.
#pragma once
#include <string>
#include <string_view>

#include "redi/core/error.hpp"

namespace redi {

struct ModelConfig {
  int input_size = 32;        // H == W of the latent (or pixel) grid
  int patch = 2;              // p
  int image_channels = 4;     // Cx: VAE latent (or pixel) channels
  int feature_channels = 8;   // r: PCA feature channels; 0 = the plain DiT/SiT
  int depth = 12;
  int width = 384;            // D
  int heads = 6;
  int mlp_ratio = 4;
  int num_classes = 1000;     // the label table has num_classes + 1 rows (last = null / CFG)
  bool learn_sigma = false;   // DiT: doubles the outputs (variance interpolation values)
  int freq_dim = 256;         // timestep sinusoid size
  /// Spatial size of the feature grid z [r, F, F]. 0 (default) = input_size: the features are
  /// resized to the latent grid and patchified like the image (the paper's layout, official
  /// checkpoints). A coarser grid gives the features their own patch size
  /// feature_patch() = patch * F / input_size (F = input_size / patch: one feature vector per
  /// token, no interpolated copies); the two modalities then have separate embedders and
  /// output heads whose contributions are summed (Merged) or concatenated (Separate), and the
  /// network's input/output per sample is the packed [x (Cx*H*W) | z (r*F*F)] (docs/models.md).
  int feature_size = 0;

  int grid() const { return input_size / patch; }
  int tokens() const { return grid() * grid(); }          // L per modality
  int channels_in() const { return image_channels + feature_channels; }
  int channels_out() const { return learn_sigma ? 2 * channels_in() : channels_in(); }
  int head_dim() const { return width / heads; }
  int feature_grid() const { return feature_size > 0 ? feature_size : input_size; }  // F
  int feature_patch() const { return patch * feature_grid() / input_size; }          // p_z
  /// Whether image and features have separate embedders/heads at different grids.
  bool own_feature_grid() const { return feature_channels > 0 && feature_grid() != input_size; }
  /// Values per sample of the network input: Cx*H*W + r*F*F (the output has 1x or 2x this).
  long long input_elems() const {
    return (long long)image_channels * input_size * input_size + (long long)feature_channels * feature_grid() * feature_grid();
  }
  int null_class() const { return num_classes; }

  /// Throws redi::Error naming the first inconsistent field. Every field is also bounded above
  /// (kMax* below), so the derived sizes (tokens, width * mlp_ratio, input_elems, parameter
  /// counts) cannot overflow int for a configuration read from a file.
  static constexpr int kMaxInputSize = 4096, kMaxChannels = 4096, kMaxDepth = 1024,
                       kMaxWidth = 65536, kMaxRatio = 64, kMaxClasses = 1 << 24, kMaxFreqDim = 65536;
  void validate() const {
    REDI_CHECK(patch == 1 || patch == 2 || patch == 4 || patch == 8, "ModelConfig: patch ", patch,
               " not in {1,2,4,8}");
    REDI_CHECK(input_size > 0 && input_size % patch == 0, "ModelConfig: input_size ", input_size,
               " must be a positive multiple of patch ", patch);
    REDI_CHECK(image_channels > 0, "ModelConfig: image_channels must be > 0");
    REDI_CHECK(feature_channels >= 0, "ModelConfig: feature_channels must be >= 0");
    REDI_CHECK(depth > 0, "ModelConfig: depth must be > 0");
    REDI_CHECK(heads > 0 && width % heads == 0, "ModelConfig: width ", width,
               " must be divisible by heads ", heads);
    REDI_CHECK(width % 4 == 0, "ModelConfig: width ", width,
               " must be divisible by 4 (2-D sin-cos position embedding)");
    REDI_CHECK(num_classes >= 1, "ModelConfig: num_classes must be >= 1 (1 = unconditional)");
    REDI_CHECK(freq_dim % 2 == 0, "ModelConfig: freq_dim must be even");
    REDI_CHECK(mlp_ratio >= 1, "ModelConfig: mlp_ratio must be >= 1");
    REDI_CHECK(feature_size >= 0 && feature_size <= input_size, "ModelConfig: feature_size ", feature_size,
               " must be in [0, input_size = ", input_size, "] (0: the input grid)");
    REDI_CHECK(feature_size == 0 || (patch * feature_size) % input_size == 0, "ModelConfig: feature_size ",
               feature_size, " gives no whole feature patch (patch * feature_size / input_size = ", patch, " * ",
               feature_size, " / ", input_size, "); use input_size / patch (one feature vector per token) or input_size");
    auto in = [](int v, int lo, int hi) { return v >= lo && v <= hi; };
    REDI_CHECK(in(input_size, 1, kMaxInputSize), "ModelConfig: input_size ", input_size, " outside [1, ",
               kMaxInputSize, "]");
    REDI_CHECK(in(image_channels, 1, kMaxChannels), "ModelConfig: image_channels ", image_channels,
               " outside [1, ", kMaxChannels, "]");
    REDI_CHECK(in(feature_channels, 0, kMaxChannels), "ModelConfig: feature_channels ", feature_channels,
               " outside [0, ", kMaxChannels, "]");
    REDI_CHECK(in(depth, 1, kMaxDepth), "ModelConfig: depth ", depth, " outside [1, ", kMaxDepth, "]");
    REDI_CHECK(in(width, 1, kMaxWidth), "ModelConfig: width ", width, " outside [1, ", kMaxWidth, "]");
    REDI_CHECK(in(heads, 1, kMaxWidth), "ModelConfig: heads ", heads, " outside [1, ", kMaxWidth, "]");
    REDI_CHECK(in(mlp_ratio, 1, kMaxRatio), "ModelConfig: mlp_ratio ", mlp_ratio, " outside [1, ", kMaxRatio, "]");
    REDI_CHECK(in(num_classes, 1, kMaxClasses), "ModelConfig: num_classes ", num_classes, " outside [1, ",
               kMaxClasses, "] (1 = unconditional)");
    REDI_CHECK(in(freq_dim, 2, kMaxFreqDim), "ModelConfig: freq_dim ", freq_dim, " outside [2, ", kMaxFreqDim, "]");
  }

  /// "S/2", "B/4", "XL/2", ... (DiT/SiT presets); other fields keep their values.
  ModelConfig& preset(std::string_view name) {
    auto slash = name.find('/');
    REDI_CHECK(slash != std::string_view::npos, "ModelConfig::preset: '", std::string(name),
               "' is not SIZE/PATCH (e.g. S/2, XL/2)");
    std::string_view size = name.substr(0, slash);
    std::string_view p = name.substr(slash + 1);
    if (size == "S") { depth = 12; width = 384; heads = 6; }
    else if (size == "B") { depth = 12; width = 768; heads = 12; }
    else if (size == "L") { depth = 24; width = 1024; heads = 16; }
    else if (size == "XL") { depth = 28; width = 1152; heads = 16; }
    else REDI_FAIL("ModelConfig::preset: unknown size '", std::string(size), "' (use S, B, L or XL)");
    if (p == "2") patch = 2;
    else if (p == "4") patch = 4;
    else if (p == "8") patch = 8;
    else REDI_FAIL("ModelConfig::preset: unknown patch '", std::string(p), "' (use 2, 4 or 8)");
    return *this;
  }
};

}  // namespace redi
