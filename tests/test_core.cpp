// Tests for the tensor core: shapes, tensors, workspace, bf16/half conversions, Philox.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "redi/core/dtype.hpp"
#include "redi/core/philox.hpp"
#include "redi/core/tensor.hpp"
#include "redi/core/workspace.hpp"

using namespace redi;

TEST(Core, TensorShapeAndHostCopy) {
  Tensor<float> t(Shape{2, 3, 4});
  EXPECT_EQ(t.numel(), 24);
  EXPECT_EQ(t.shape().str(), "[2, 3, 4]");
  for (int i = 0; i < 24; ++i) EXPECT_EQ(t[i], 0.f);
  std::vector<float> v(24);
  for (int i = 0; i < 24; ++i) v[i] = float(i);
  t.from_host(v);
  EXPECT_EQ(t.to_host(), v);
  EXPECT_THROW(t.from_host(std::vector<float>(23)), Error);
  Tensor<float> u = std::move(t);
  EXPECT_EQ(u[5], 5.f);
  EXPECT_EQ(t.data(), nullptr);
}

TEST(Core, WorkspaceCarvesWithOneAllocation) {
  Workspace<> ws;
  float* a = nullptr;
  double* b = nullptr;
  int* c = nullptr;
  int calls = 0;
  auto layout = [&](int n) {
    return [&, n](Workspace<>& w) {
      ++calls;
      a = w.take<float>(1000 * n);
      b = w.take<double>(17);
      c = w.take<int>(n);
    };
  };
  EXPECT_TRUE(ws.carve(layout(2)));  // measures, allocates once, carves
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(ws.allocations(), 1u);
  ASSERT_NE(a, nullptr);
  for (const void* p : {static_cast<const void*>(a), static_cast<const void*>(b), static_cast<const void*>(c)})
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % 256, 0u);
  // the buffers are disjoint and in order
  EXPECT_GE(reinterpret_cast<const char*>(b), reinterpret_cast<const char*>(a + 2000));
  EXPECT_GE(reinterpret_cast<const char*>(c), reinterpret_cast<const char*>(b + 17));
  const std::size_t cap = ws.capacity();
  EXPECT_FALSE(ws.carve(layout(1)));  // a smaller layout fits: no allocation
  EXPECT_FALSE(ws.carve(layout(2)));
  EXPECT_EQ(ws.allocations(), 1u);
  EXPECT_EQ(ws.capacity(), cap);
  EXPECT_TRUE(ws.carve(layout(3)));  // a bigger one grows the arena once
  EXPECT_EQ(ws.allocations(), 2u);
  // the simple bump protocol: reserve once, take and reset per step
  Workspace<> s;
  s.reserve(1 << 16);
  for (int step = 0; step < 3; ++step) {
    s.reset();
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(s.take<float>(100)) % 256, 0u);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(s.take<double>(7)) % 256, 0u);
  }
  EXPECT_EQ(s.allocations(), 1u);
  EXPECT_THROW(s.take<float>(1 << 20), Error);
}

TEST(Core, Bf16AndHalfRoundTrip) {
  for (float f : {0.f, 1.f, -2.5f, 3.140625f, 65504.f, 1e-3f, -7.75f}) {
    EXPECT_EQ(float(half(f)), f == 1e-3f ? float(half(f)) : f);
    EXPECT_NEAR(float(bf16(f)), f, std::fabs(f) * 1.0f / 128);
  }
  // Round to nearest even: 1 + 2^-8 is exactly halfway between bf16 1 and 1 + 2^-7.
  EXPECT_EQ(float(bf16(1.0f + 1.0f / 256)), 1.0f);
  EXPECT_EQ(float(bf16(1.0f + 3.0f / 256)), 1.0f + 4.0f / 256);
  EXPECT_EQ(float(half(1.0f + 1.0f / 2048)), 1.0f);
  EXPECT_TRUE(std::isinf(float(half(1e6f))));
  EXPECT_TRUE(std::isnan(float(bf16(NAN))));
  EXPECT_NEAR(float(half(1e-6f)), 1e-6f, 6e-8f);  // subnormal
  // Every half value round-trips exactly through float.
  for (std::uint32_t b = 0; b < 0x7c00u; ++b) {
    half h;
    h.bits = std::uint16_t(b);
    EXPECT_EQ(half(float(h)).bits, h.bits) << b;
  }
}

TEST(Philox, KnownAnswerVector) {
  // Random123's published known-answer test for philox4x32_10 (counter = key = 0).
  philox::U4 r = philox::philox4x32({0, 0, 0, 0}, 0, 0);
  EXPECT_EQ(r.x, 0x6627e8d5u);
  EXPECT_EQ(r.y, 0xe169c58du);
  EXPECT_EQ(r.z, 0xbc57ac4cu);
  EXPECT_EQ(r.w, 0x9b00dbd8u);
  philox::U4 s = philox::philox4x32({0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu},
                                    0xffffffffu, 0xffffffffu);
  EXPECT_EQ(s.x, 0x408f276du);
  EXPECT_EQ(s.y, 0x41c83b0eu);
  EXPECT_EQ(s.z, 0xa20bc7c6u);
  EXPECT_EQ(s.w, 0x6d5451fdu);
}

TEST(Philox, DeterministicMathMatchesLibm) {
  for (double u : {1e-7, 0.001, 0.1, 0.3333, 0.5, 0.75, 0.999999, 1.0})
    EXPECT_NEAR(philox::det_log(u), std::log(u), 1e-15 * std::max(1.0, std::fabs(std::log(u))));
  for (double f = 0.0; f < 1.0; f += 0.0137) {
    double s, c;
    philox::det_sincos2pi(f, s, c);
    EXPECT_NEAR(s, std::sin(2 * M_PI * f), 2e-15);
    EXPECT_NEAR(c, std::cos(2 * M_PI * f), 2e-15);
  }
}

TEST(Philox, NormalDependsOnlyOnSeedStreamIndex) {
  std::vector<float> a(1001), b(400);
  philox::fill_normal(a.data(), a.size(), 42, 7, 0);
  philox::fill_normal(b.data(), b.size(), 42, 7, 333);  // unaligned offset
  for (std::size_t i = 0; i < b.size(); ++i) EXPECT_EQ(b[i], a[333 + i]);
  for (std::size_t i = 0; i < 50; ++i) EXPECT_EQ(float(philox::normal(42, 7, i)), a[i]);
  std::vector<float> c(1001);
  philox::fill_normal(c.data(), c.size(), 43, 7, 0);
  int same = 0;
  for (std::size_t i = 0; i < c.size(); ++i) same += (c[i] == a[i]);
  EXPECT_LT(same, 3);
}

TEST(Philox, NormalMomentsAndTails) {
  const std::size_t n = 1 << 20;
  std::vector<double> x(n);
  philox::fill_normal(x.data(), n, 2024, 1, 0);
  double m1 = 0, m2 = 0, m3 = 0, m4 = 0;
  std::size_t beyond2 = 0;
  for (double v : x) {
    m1 += v; m2 += v * v; m3 += v * v * v; m4 += v * v * v * v;
    beyond2 += std::fabs(v) > 2.0;
  }
  m1 /= n; m2 /= n; m3 /= n; m4 /= n;
  // Standard errors for n = 2^20: mean 1e-3, var 1.4e-3, skew 2.4e-3, kurtosis 4.8e-3 (x5 margin).
  EXPECT_NEAR(m1, 0.0, 5e-3);
  EXPECT_NEAR(m2, 1.0, 7e-3);
  EXPECT_NEAR(m3, 0.0, 1.2e-2);
  EXPECT_NEAR(m4, 3.0, 5e-2);
  // P(|x| > 2) = 0.0455; binomial sd ~ 2e-4.
  EXPECT_NEAR(double(beyond2) / n, 0.0455003, 1e-3);
  // Lag-1 correlation of neighbours (including the Box-Muller pair partner) ~ 0.
  double c = 0;
  for (std::size_t i = 0; i + 1 < n; ++i) c += x[i] * x[i + 1];
  EXPECT_NEAR(c / n, 0.0, 5e-3);
}

TEST(Philox, UniformIsUniform) {
  const int n = 1 << 18, bins = 16;
  std::vector<int> h(bins, 0);
  for (int i = 0; i < n; ++i) {
    double u = philox::uniform(9, 3, i);
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    ++h[int(u * bins)];
  }
  double chi2 = 0, e = double(n) / bins;
  for (int v : h) chi2 += (v - e) * (v - e) / e;
  EXPECT_LT(chi2, 37.7);  // chi-square(15) 0.999 quantile
}
