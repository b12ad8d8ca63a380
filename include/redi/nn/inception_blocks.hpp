// redi/nn/inception_blocks.hpp — the mixed blocks of InceptionV3 (redi/nn/inception.hpp, which
// includes this file and documents the branches). Temporaries T0..T2 hold one branch each;
// outputs are concatenated by channel copies into `out`.
#pragma once
#include "redi/nn/inception.hpp"

namespace redi {

namespace detail {
/// Runs spec `ci` (or the `n` fused 1x1 siblings from ci) through `ops`.
template <class Net, class Ops, class T>
void inception_conv(Ops& ops, const Net& net, const std::vector<InceptionConv>& convs, const std::vector<T>& W,
                    const std::vector<T>& b, T* out, const T* in, int B, int H, std::size_t ci, int n = 1) {
  ops::Conv2dGeometry g = convs[ci].g;
  for (int k = 1; k < n; ++k) g.out_channels += convs[ci + std::size_t(k)].g.out_channels;
  ops.conv_relu(out, in, W.data() + convs[ci].w_off, b.data() + convs[ci].b_off, B, H, H, g);
  (void)net;
}
}  // namespace detail

template <CpuReal T>
void InceptionV3<T>::block_a(T* out, const T* in, int& C, int H, int pf, std::size_t& ci) {
  const int B = curB_, Co = 224 + pf;
  const std::int64_t P = std::int64_t(H) * H;
  T *t0 = T0_.data(), *t1 = T1_.data(), *t2 = T2_.data();
  auto cv = [&](T* o, const T* i, std::size_t k, int n = 1) {
    detail::inception_conv(ops_, *this, convs_, W_, bias_, o, i, B, H, ci + k, n);
  };
  cv(t0, in, 0, 3);  // [1x1 64 | 5x5_1 48 | 3x3dbl_1 64]
  ops_.copy_channels(out, Co, 0, t0, 176, 0, 64, B, P);
  ops_.copy_channels(t1, 48, 0, t0, 176, 64, 48, B, P);
  cv(t2, t1, 3);
  ops_.copy_channels(out, Co, 64, t2, 64, 0, 64, B, P);
  ops_.copy_channels(t1, 64, 0, t0, 176, 112, 64, B, P);
  cv(t2, t1, 4);
  cv(t1, t2, 5);
  ops_.copy_channels(out, Co, 128, t1, 96, 0, 96, B, P);
  ops_.avgpool(t1, in, B, C, H, H, ops::Pool2dGeometry::square(3, 1, 1, /*count_include_pad=*/false));
  cv(t2, t1, 6);
  ops_.copy_channels(out, Co, 224, t2, pf, 0, pf, B, P);
  ci += 7;
  C = Co;
}

template <CpuReal T>
void InceptionV3<T>::block_b(T* out, const T* in, int& C, int& H, std::size_t& ci) {
  const int B = curB_, H2 = (H - 3) / 2 + 1, Co = 480 + C;
  const std::int64_t P2 = std::int64_t(H2) * H2;
  T *t0 = T0_.data(), *t1 = T1_.data(), *t2 = T2_.data();
  auto cv = [&](T* o, const T* i, std::size_t k) {
    detail::inception_conv(ops_, *this, convs_, W_, bias_, o, i, B, H, ci + k);
  };
  cv(t0, in, 0);  // 3x3 stride 2
  ops_.copy_channels(out, Co, 0, t0, 384, 0, 384, B, P2);
  cv(t0, in, 1);
  cv(t1, t0, 2);
  cv(t2, t1, 3);  // stride 2
  ops_.copy_channels(out, Co, 384, t2, 96, 0, 96, B, P2);
  ops_.maxpool(t0, in, B, C, H, H, ops::Pool2dGeometry::square(3, 2, 0));
  ops_.copy_channels(out, Co, 480, t0, C, 0, C, B, P2);
  ci += 4;
  C = Co;
  H = H2;
}

template <CpuReal T>
void InceptionV3<T>::block_c(T* out, const T* in, int& C, int H, int c7, std::size_t& ci, T* spatial) {
  const int B = curB_, Co = 768, F = 192 + 2 * c7;
  const std::int64_t P = std::int64_t(H) * H;
  T *t0 = T0_.data(), *t1 = T1_.data(), *t2 = T2_.data();
  auto cv = [&](T* o, const T* i, std::size_t k, int n = 1) {
    detail::inception_conv(ops_, *this, convs_, W_, bias_, o, i, B, H, ci + k, n);
  };
  cv(t0, in, 0, 3);  // [1x1 192 | 7x7_1 c7 | 7x7dbl_1 c7]
  if (spatial) {     // branch1x1 channels 0..6, NHWC order
    const std::int64_t D = P * kSpatialChannels;
    for (int b = 0; b < B; ++b)
      for (int c = 0; c < kSpatialChannels; ++c) {
        const T* src = t0 + (std::int64_t(b) * F + c) * P;
        for (std::int64_t p = 0; p < P; ++p) spatial[b * D + p * kSpatialChannels + c] = src[p];
      }
  }
  ops_.copy_channels(out, Co, 0, t0, F, 0, 192, B, P);
  ops_.copy_channels(t1, c7, 0, t0, F, 192, c7, B, P);
  cv(t2, t1, 3);
  cv(t1, t2, 4);
  ops_.copy_channels(out, Co, 192, t1, 192, 0, 192, B, P);
  ops_.copy_channels(t1, c7, 0, t0, F, 192 + c7, c7, B, P);
  cv(t2, t1, 5);
  cv(t1, t2, 6);
  cv(t2, t1, 7);
  cv(t1, t2, 8);
  ops_.copy_channels(out, Co, 384, t1, 192, 0, 192, B, P);
  ops_.avgpool(t1, in, B, C, H, H, ops::Pool2dGeometry::square(3, 1, 1, /*count_include_pad=*/false));
  cv(t2, t1, 9);
  ops_.copy_channels(out, Co, 576, t2, 192, 0, 192, B, P);
  ci += 10;
  C = Co;
}

template <CpuReal T>
void InceptionV3<T>::block_d(T* out, const T* in, int& C, int& H, std::size_t& ci) {
  const int B = curB_, H2 = (H - 3) / 2 + 1, Co = 512 + C;
  const std::int64_t P = std::int64_t(H) * H, P2 = std::int64_t(H2) * H2;
  T *t0 = T0_.data(), *t1 = T1_.data(), *t2 = T2_.data();
  auto cv = [&](T* o, const T* i, std::size_t k, int n = 1) {
    detail::inception_conv(ops_, *this, convs_, W_, bias_, o, i, B, H, ci + k, n);
  };
  cv(t0, in, 0, 2);  // [3x3_1 192 | 7x7x3_1 192]
  ops_.copy_channels(t1, 192, 0, t0, 384, 0, 192, B, P);
  cv(t2, t1, 2);  // 3x3 stride 2 -> 320
  ops_.copy_channels(out, Co, 0, t2, 320, 0, 320, B, P2);
  ops_.copy_channels(t1, 192, 0, t0, 384, 192, 192, B, P);
  cv(t2, t1, 3);
  cv(t1, t2, 4);
  cv(t2, t1, 5);  // stride 2
  ops_.copy_channels(out, Co, 320, t2, 192, 0, 192, B, P2);
  ops_.maxpool(t0, in, B, C, H, H, ops::Pool2dGeometry::square(3, 2, 0));
  ops_.copy_channels(out, Co, 512, t0, C, 0, C, B, P2);
  ci += 6;
  C = Co;
  H = H2;
}

template <CpuReal T>
void InceptionV3<T>::block_e(T* out, const T* in, int& C, int H, bool max_pool, std::size_t& ci) {
  const int B = curB_, Co = 2048, F = 1152;
  const std::int64_t P = std::int64_t(H) * H;
  T *t0 = T0_.data(), *t1 = T1_.data(), *t2 = T2_.data();
  auto cv = [&](T* o, const T* i, std::size_t k, int n = 1) {
    detail::inception_conv(ops_, *this, convs_, W_, bias_, o, i, B, H, ci + k, n);
  };
  cv(t0, in, 0, 3);  // [1x1 320 | 3x3_1 384 | 3x3dbl_1 448]
  ops_.copy_channels(out, Co, 0, t0, F, 0, 320, B, P);
  ops_.copy_channels(t1, 384, 0, t0, F, 320, 384, B, P);
  cv(t2, t1, 3);
  ops_.copy_channels(out, Co, 320, t2, 384, 0, 384, B, P);
  cv(t2, t1, 4);
  ops_.copy_channels(out, Co, 704, t2, 384, 0, 384, B, P);
  ops_.copy_channels(t1, 448, 0, t0, F, 704, 448, B, P);
  cv(t2, t1, 5);
  cv(t1, t2, 6);
  ops_.copy_channels(out, Co, 1088, t1, 384, 0, 384, B, P);
  cv(t1, t2, 7);
  ops_.copy_channels(out, Co, 1472, t1, 384, 0, 384, B, P);
  const auto pg = ops::Pool2dGeometry::square(3, 1, 1, /*count_include_pad=*/false);
  if (max_pool) ops_.maxpool(t1, in, B, C, H, H, pg);
  else ops_.avgpool(t1, in, B, C, H, H, pg);
  cv(t2, t1, 8);
  ops_.copy_channels(out, Co, 1856, t2, 192, 0, 192, B, P);
  ci += 9;
  C = Co;
}

}  // namespace redi
