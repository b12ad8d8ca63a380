// Whole-model tests for the DiT/SiT transformer: finite-difference gradient checks in double for
// both fusions and both backbones, Merged == single patch-embed over the channel concat, the
// channel layout against the plain model, DiT's zero-output initialisation, the
// one-allocation activation arena, and the outputs of the PyTorch parity fixtures.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "gradcheck.hpp"
#include "parity_fixture.hpp"
#include "redi/core/philox.hpp"
#include "redi/nn/transformer.hpp"
#include "redi/ops/cpu_backend.hpp"
#include "redi/weights/transformer.hpp"

using namespace redi;

namespace {

ModelConfig tiny_config(int r, bool learn_sigma, int feature_size = 0) {
  ModelConfig c;
  c.feature_size = feature_size;
  c.input_size = 8;
  c.patch = 2;
  c.image_channels = 2;
  c.feature_channels = r;
  c.depth = 2;
  c.width = 16;
  c.heads = 2;
  c.num_classes = 3;
  c.learn_sigma = learn_sigma;
  return c;
}

template <class T>
std::vector<T> normals(std::size_t n, std::uint64_t stream, double s = 1.0) {
  std::vector<T> v(n);
  philox::fill_normal(v.data(), n, 77, stream);
  for (auto& x : v) x = T(x * s);
  return v;
}

struct Batch {
  std::vector<double> x, t, w;
  std::vector<int> y;
};

template <class M>
Batch make_batch(const M& m, int B, bool integer_t) {
  Batch b;
  const std::size_t nin = std::size_t(m.config().input_elems()), nout = m.config().learn_sigma ? 2 * nin : nin;
  b.x = normals<double>(std::size_t(B) * nin, 1);
  b.w = normals<double>(std::size_t(B) * nout, 2);
  for (int i = 0; i < B; ++i) {
    b.t.push_back(integer_t ? double((137 * i + 11) % 1000) : 0.1 + 0.8 * i / double(B));
    b.y.push_back(i % (m.null_class() + 1));  // includes the null class
  }
  return b;
}

/// loss = sum(w .* model(x)); analytic gradient via backward(w); check every parameter.
template <class F>
void check_model_gradients(int r, bool learn_sigma, bool integer_t, double tol, int feature_size = 0) {
  Transformer<double, F> m(tiny_config(r, learn_sigma, feature_size));
  m.layout().randomize(m.params().data(), 5, 0.3);
  const int B = 3;
  Batch b = make_batch(m, B, integer_t);
  std::vector<double> out(b.w.size());
  auto loss = [&] {
    m.forward(b.x.data(), b.t.data(), b.y.data(), B, out.data());
    double s = 0;
    for (std::size_t i = 0; i < out.size(); ++i) s += b.w[i] * out[i];
    return s;
  };
  loss();
  m.zero_grad();
  m.backward(b.w.data());
  std::vector<double> g = m.grads().to_host();
  // Check per tensor so a failure names it. Richardson-extrapolated differences: the randomised
  // model is strongly curved, and plain central differences need h so small that round-off
  // (~5e-10 absolute here) dominates; hence also the 1e-4 floor of the relative error.
  for (const auto& e : m.layout().entries) {
    std::int64_t at = -1;
    const double worst = test::max_rel_error_richardson(loss, m.params().data() + e.offset, e.numel(),
                                                        g.data() + e.offset, 1e-4, 48, &at);
    EXPECT_LT(worst, tol) << F::name << " " << e.name << "[" << at << "]";
  }
}

}  // namespace

TEST(ModelGrad, SiTMerged) { check_model_gradients<Merged>(3, false, false, 1e-5); }
TEST(ModelGrad, SiTSeparate) { check_model_gradients<Separate>(3, false, false, 1e-5); }
TEST(ModelGrad, DiTMergedLearnSigma) { check_model_gradients<Merged>(3, true, true, 1e-5); }
TEST(ModelGrad, DiTSeparateLearnSigma) { check_model_gradients<Separate>(3, true, true, 1e-5); }
TEST(ModelGrad, PlainSiT) { check_model_gradients<Merged>(0, false, false, 1e-5); }
// Features on their own grid: 4x4 = the token grid of an 8x8 input at patch 2 (feature patch 1),
// and 8x8 -> 4x4 is not the only choice: a 2x2 grid would need patch 1/2 and is rejected.
TEST(ModelGrad, SiTMergedTokenGridFeatures) { check_model_gradients<Merged>(3, false, false, 1e-5, 4); }
TEST(ModelGrad, DiTMergedLearnSigmaTokenGridFeatures) { check_model_gradients<Merged>(3, true, true, 1e-5, 4); }
TEST(ModelGrad, SiTSeparateTokenGridFeatures) { check_model_gradients<Separate>(3, false, false, 1e-5, 4); }

// Merged with features on the token grid == the fused (official-layout) Merged model fed the
// same features nearest-upsampled to the image grid, when the fused weights are the
// own-grid weights spread over each patch: W_fused[d, c, i, j] = W_z[d, c] / p^2 for the
// feature channels (the patch sums p^2 equal values), one shared bias b_x + b_z, and the fused
// final linear's rows for (i, j, c >= Cx) = the feature head's row c. Then the fused output's
// feature channels are the own-grid output upsampled, and the image channels agree.
TEST(Model, TokenGridFeaturesEqualFusedModelOnUpsampledFeatures) {
  const int r = 3, fs = 4;
  Transformer<double, Merged> own(tiny_config(r, false, fs)), fused(tiny_config(r, false));
  own.layout().randomize(own.params().data(), 7, 0.3);
  const ModelConfig c = fused.config();
  const int Cx = c.image_channels, Cin = c.channels_in(), p = c.patch, H = c.input_size, D = c.width;
  const auto& lo = own.layout();
  const auto& lf = fused.layout();
  const double* P = own.params().data();
  std::vector<double> F(fused.params().to_host());
  // everything shared by name and shape (blocks, embedders of t and y, final adaLN)
  for (const auto& e : lf.entries)
    if (const ParamEntry* o = lo.find(e.name); o && o->shape == e.shape)
      std::copy_n(P + o->offset, e.numel(), F.data() + e.offset);
  for (int d = 0; d < D; ++d) {
    for (int ch = 0; ch < Cin; ++ch)
      for (int k = 0; k < p * p; ++k)
        F[std::size_t(lf.xemb_w + (d * Cin + ch) * p * p + k)] =
            ch < Cx ? P[lo.xemb_w + (d * Cx + ch) * p * p + k] : P[lo.zemb_w + d * r + (ch - Cx)] / (p * p);
    F[std::size_t(lf.xemb_b + d)] = P[lo.xemb_b + d] + P[lo.zemb_b + d];
  }
  for (int ij = 0; ij < p * p; ++ij)
    for (int ch = 0; ch < Cin; ++ch) {
      const std::int64_t row = std::int64_t(ij) * Cin + ch;
      const std::int64_t src_w = ch < Cx ? lo.flin_w + (std::int64_t(ij) * Cx + ch) * D : lo.zlin_w + std::int64_t(ch - Cx) * D;
      std::copy_n(P + src_w, D, F.data() + lf.flin_w + row * D);
      F[std::size_t(lf.flin_b + row)] = ch < Cx ? P[lo.flin_b + ij * Cx + ch] : P[lo.zlin_b + (ch - Cx)];
    }
  fused.params().from_host(F);
  const int B = 2, HW = H * H, FF = fs * fs;
  Batch b = make_batch(own, B, false);  // packed [x | z] on the 4x4 feature grid
  std::vector<double> up(std::size_t(B) * Cin * HW);
  for (int s = 0; s < B; ++s) {
    const double* xs = b.x.data() + std::size_t(s) * (Cx * HW + r * FF);
    std::copy_n(xs, Cx * HW, up.data() + std::size_t(s) * Cin * HW);
    for (int ch = 0; ch < r; ++ch)
      for (int y = 0; y < H; ++y)
        for (int x = 0; x < H; ++x)
          up[std::size_t(s) * Cin * HW + std::size_t(Cx + ch) * HW + y * H + x] = xs[Cx * HW + ch * FF + (y / p) * fs + x / p];
  }
  std::vector<double> out_own(b.x.size()), out_fused(up.size());
  own.forward(b.x.data(), b.t.data(), b.y.data(), B, out_own.data());
  fused.forward(up.data(), b.t.data(), b.y.data(), B, out_fused.data());
  double worst = 0, mag = 0;
  for (int s = 0; s < B; ++s) {
    const double* o = out_own.data() + std::size_t(s) * (Cx * HW + r * FF);
    const double* f = out_fused.data() + std::size_t(s) * Cin * HW;
    for (int i = 0; i < Cx * HW; ++i) worst = std::max(worst, std::abs(o[i] - f[i])), mag = std::max(mag, std::abs(f[i]));
    for (int ch = 0; ch < r; ++ch)
      for (int y = 0; y < H; ++y)
        for (int x = 0; x < H; ++x)
          worst = std::max(worst, std::abs(f[(Cx + ch) * HW + y * H + x] - o[Cx * HW + ch * FF + (y / p) * fs + x / p]));
  }
  EXPECT_GT(mag, 1e-2);  // a non-trivial output
  EXPECT_LT(worst, 1e-12);
}

TEST(Model, FeatureGridMustGiveWholePatches) {
  ModelConfig c = tiny_config(3, false, 2);  // 8x8 at patch 2 -> 4x4 tokens; a 2x2 grid has no whole patch
  EXPECT_THROW(c.validate(), Error);
  c.feature_size = 4;
  EXPECT_NO_THROW(c.validate());
  EXPECT_EQ(c.feature_patch(), 1);
  EXPECT_TRUE(c.own_feature_grid());
  EXPECT_EQ(c.input_elems(), 2 * 64 + 3 * 16);
  c.feature_channels = 0;
  EXPECT_FALSE(c.own_feature_grid());  // the plain model has no features to place
}

TEST(Model, ZeroInitGivesZeroOutput) {
  Transformer<float, Merged> m(tiny_config(3, false), cpu, 123);
  Batch b = make_batch(m, 2, false);
  std::vector<float> x(b.x.begin(), b.x.end()), t(b.t.begin(), b.t.end());
  std::vector<float> out(std::size_t(2) * m.channels_out() * 64, 1.f);
  m.forward(x.data(), t.data(), b.y.data(), 2, out.data());
  for (float v : out) ASSERT_EQ(v, 0.f);
}

// The Merged model over [x, z] with W^z = 0 and the z output rows removed is the plain model:
// checks the channel order of the patch-embed weight [D, Cx + r, p, p] (c, i, j) and of the
// final linear's outputs (i, j, c), and that features enter only through their own columns.
TEST(Model, MergedReducesToPlainModelWhenFeatureWeightsVanish) {
  const int r = 3;
  Transformer<double, Merged> plain(tiny_config(0, false));
  Transformer<double, Merged> redi(tiny_config(r, false));
  plain.layout().randomize(plain.params().data(), 9, 0.3);
  redi.layout().randomize(redi.params().data(), 10, 0.3);
  const int D = 16, p = 2, Cx = 2, Cin = Cx + r;
  double* P = plain.params().data();
  double* Q = redi.params().data();
  for (const auto& e : plain.layout().entries) {
    const ParamEntry* f = redi.layout().find(e.name);
    ASSERT_NE(f, nullptr) << e.name;
    if (e.name == "x_embedder.proj.weight") {  // [D, C, p, p]
      for (int d = 0; d < D; ++d)
        for (int c = 0; c < Cin; ++c)
          for (int k = 0; k < p * p; ++k)
            Q[f->offset + (d * Cin + c) * p * p + k] = c < Cx ? P[e.offset + (d * Cx + c) * p * p + k] : 0.0;
    } else if (e.name == "final_layer.linear.weight" || e.name == "final_layer.linear.bias") {
      const int cols = e.name.ends_with("weight") ? D : 1;  // rows (i, j, c) with c fastest
      for (int ij = 0; ij < p * p; ++ij)
        for (int c = 0; c < Cx; ++c)
          for (int k = 0; k < cols; ++k)
            Q[f->offset + (ij * Cin + c) * cols + k] = P[e.offset + (ij * Cx + c) * cols + k];
    } else {
      ASSERT_EQ(e.numel(), f->numel()) << e.name;
      for (std::int64_t i = 0; i < e.numel(); ++i) Q[f->offset + i] = P[e.offset + i];
    }
  }
  const int B = 2, HW = 64;
  Batch b = make_batch(redi, B, false);
  std::vector<double> xonly(std::size_t(B) * Cx * HW);
  for (int s = 0; s < B; ++s)
    for (int i = 0; i < Cx * HW; ++i) xonly[s * Cx * HW + i] = b.x[s * Cin * HW + i];
  std::vector<double> out_plain(std::size_t(B) * Cx * HW), out_redi(std::size_t(B) * Cin * HW);
  plain.forward(xonly.data(), b.t.data(), b.y.data(), B, out_plain.data());
  redi.forward(b.x.data(), b.t.data(), b.y.data(), B, out_redi.data());
  for (int s = 0; s < B; ++s)
    for (int i = 0; i < Cx * HW; ++i)
      EXPECT_NEAR(out_redi[s * Cin * HW + i], out_plain[s * Cx * HW + i], 1e-12);
}

// Merged == "two embedders": h = x W^x + z W^z + b, with the slices of the single conv weight.
TEST(Model, MergedEmbedEqualsSumOfTwoEmbedders) {
  const int B = 2, Cx = 2, r = 3, Cin = Cx + r, H = 8, p = 2, D = 6, L = 16;
  auto img = normals<double>(std::size_t(B) * Cin * H * H, 3);
  auto W = normals<double>(std::size_t(D) * Cin * p * p, 4);
  auto bias = normals<double>(D, 5);
  std::vector<double> tok(std::size_t(B) * L * Cin * p * p), h(std::size_t(B) * L * D);
  ops::patchify_forward(cpu, tok.data(), img.data(), B, Cin, H, H, p);
  ops::linear_forward(cpu, h.data(), tok.data(), W.data(), bias.data(), B * L, Cin * p * p, D);
  // Two embedders over the separate groups.
  std::vector<double> Wx(std::size_t(D) * Cx * p * p), Wz(std::size_t(D) * r * p * p);
  for (int d = 0; d < D; ++d)
    for (int c = 0; c < Cin; ++c)
      for (int k = 0; k < p * p; ++k)
        (c < Cx ? Wx[(d * Cx + c) * p * p + k] : Wz[(d * r + c - Cx) * p * p + k]) =
            W[(d * Cin + c) * p * p + k];
  std::vector<double> hx(h.size()), hz(h.size());
  for (int s = 0; s < B; ++s) {
    std::vector<double> tx(std::size_t(L) * Cx * p * p), tz(std::size_t(L) * r * p * p);
    ops::patchify_forward(cpu, tx.data(), img.data() + s * Cin * H * H, 1, Cx, H, H, p);
    ops::patchify_forward(cpu, tz.data(), img.data() + s * Cin * H * H + Cx * H * H, 1, r, H, H, p);
    ops::linear_forward(cpu, hx.data() + s * L * D, tx.data(), Wx.data(), bias.data(), L, Cx * p * p, D);
    ops::linear_forward(cpu, hz.data() + s * L * D, tz.data(), Wz.data(), static_cast<const double*>(nullptr),
                        L, r * p * p, D);
  }
  for (std::size_t i = 0; i < h.size(); ++i) EXPECT_NEAR(h[i], hx[i] + hz[i], 1e-12);
}

TEST(Model, SeparateRejectsPlainModel) {
  EXPECT_THROW((Transformer<float, Separate>(tiny_config(0, false))), Error);
}

TEST(Model, SeparateHasTwiceTheTokensAndItsOwnKeys) {
  Transformer<float, Separate> m(tiny_config(3, true));
  EXPECT_NE(m.layout().find("z_embedder.proj.weight"), nullptr);
  EXPECT_NE(m.layout().find("final_layer.z_linear.weight"), nullptr);
  EXPECT_EQ(m.layout().find("x_embedder.proj.weight")->shape, (Shape{16, 2, 2, 2}));
  EXPECT_EQ(m.layout().find("final_layer.linear.weight")->shape, (Shape{2 * 2 * 4, 16}));  // p*p*2Cx
  EXPECT_EQ(m.layout().find("final_layer.z_linear.weight")->shape, (Shape{2 * 2 * 6, 16}));  // p*p*2r
  EXPECT_EQ(m.channels_out(), 10);
}

TEST(Model, OfficialShapesForReDiXL2) {
  ModelConfig c;
  c.preset("XL/2");
  c.input_size = 32;
  c.image_channels = 4;
  c.feature_channels = 8;
  TransformerLayout L = TransformerLayout::make<Merged>(c);
  EXPECT_EQ(L.find("x_embedder.proj.weight")->shape, (Shape{1152, 12, 2, 2}));
  EXPECT_EQ(L.find("final_layer.linear.weight")->shape, (Shape{48, 1152}));
  EXPECT_EQ(L.find("y_embedder.embedding_table.weight")->shape, (Shape{1001, 1152}));
  EXPECT_EQ(L.find("blocks.27.adaLN_modulation.1.weight")->shape, (Shape{6 * 1152, 1152}));
  EXPECT_EQ(L.find("t_embedder.mlp.0.weight")->shape, (Shape{1152, 256}));
  EXPECT_EQ(L.find("blocks.28.attn.qkv.weight"), nullptr);
  // SiT-XL/2 has 675M parameters without the fixed pos_embed (DiT paper: 675M).
  EXPECT_NEAR(double(L.total) / 1e6, 675.2, 0.5);
}

TEST(Model, ArenaAllocatesOnceForRepeatedSteps) {
  Transformer<float, Merged> m(tiny_config(3, false));
  Batch b = make_batch(m, 4, false);
  std::vector<float> x(b.x.begin(), b.x.end()), t(b.t.begin(), b.t.end()), w(b.w.begin(), b.w.end());
  std::vector<float> out(w.size());
  for (int step = 0; step < 3; ++step) {
    m.forward(x.data(), t.data(), b.y.data(), 4, out.data());
    m.backward(w.data());
  }
  m.forward(x.data(), t.data(), b.y.data(), 2, out.data());  // a smaller batch reuses the arena
  m.backward(w.data());
  EXPECT_EQ(m.arena_allocations(), 1u);
}

/// infer() is the training forward without the saved activations: the same output bit for bit
/// (same kernels, same order), from an arena a fraction of the training one's size, and it does
/// not disturb what a pending backward() needs.
template <class F>
void check_infer_matches_forward(bool learn_sigma, int feature_size = 0) {
  ModelConfig c = tiny_config(3, learn_sigma, feature_size);
  c.depth = 3;
  Transformer<float, F> m(c, Cpu{}, 5);
  // Randomise the zero-initialised output layers so every path carries signal.
  {
    auto& P = m.params();
    std::vector<float> host = P.to_host();
    std::vector<float> noise = normals<float>(host.size(), 9, 0.05);
    for (std::size_t i = 0; i < host.size(); ++i) host[i] += noise[i];
    P.from_host(host);
  }
  const int B = 3;
  Batch b = make_batch(m, B, false);
  std::vector<float> x(b.x.begin(), b.x.end()), t(b.t.begin(), b.t.end()), w(b.w.begin(), b.w.end());
  std::vector<float> out_f(w.size()), out_i(w.size()), out_i2(w.size());
  m.forward(x.data(), t.data(), b.y.data(), B, out_f.data());
  // a different batch through infer() between forward and backward
  std::vector<float> x2 = normals<float>(x.size(), 31);
  std::vector<int> y2(b.y.rbegin(), b.y.rend());
  m.infer(x2.data(), t.data(), y2.data(), B, out_i2.data());
  m.zero_grad();
  m.backward(w.data());
  std::vector<float> g_mixed = m.grads().to_host();
  m.infer(x.data(), t.data(), b.y.data(), B, out_i.data());
  EXPECT_EQ(out_f, out_i) << "infer() must reproduce forward() exactly";
  EXPECT_NE(out_i2, out_i);
  // reference gradients: forward + backward with nothing in between
  m.forward(x.data(), t.data(), b.y.data(), B, out_f.data());
  m.zero_grad();
  m.backward(w.data());
  EXPECT_EQ(m.grads().to_host(), g_mixed) << "infer() between forward and backward changed the gradients";
  EXPECT_LT(m.infer_arena_bytes() * 2, m.train_arena_bytes())
      << "inference keeps one block's activations, not depth blocks'";
  EXPECT_EQ(m.arena_allocations(), 2u);  // one training arena, one inference arena
}

TEST(Model, InferMatchesForwardMerged) { check_infer_matches_forward<Merged>(false); }
TEST(Model, InferMatchesForwardMergedLearnSigma) { check_infer_matches_forward<Merged>(true); }
TEST(Model, InferMatchesForwardSeparate) { check_infer_matches_forward<Separate>(false); }
TEST(Model, InferMatchesForwardSeparateLearnSigma) { check_infer_matches_forward<Separate>(true); }
TEST(Model, InferMatchesForwardMergedTokenGridFeatures) { check_infer_matches_forward<Merged>(true, 4); }

// ---------------------------------------------------------------------------------------------
// Parity with an independent PyTorch implementation of the official DiT / SiT / ReDi models
// (tests/data/parity/make_parity_fixtures.py): the network output from the reference weights
// and the reference noisy input, in float (2e-6; measured 2.5e-7, outputs of rms 0.3) and in
// double (1e-12; measured 4e-16).

namespace {

constexpr double kOutTolFloat = 2e-6, kOutTolDouble = 1e-12;

/// max |out - torch| of the fixture's network output; `perturb` (a parameter name) is scaled by
/// 1 + eps first (the negative control: the comparison must see a 1e-3 change in one weight).
template <class T, Fusion F>
double output_error(const std::string& name, const std::string& perturb = "", double eps = 0) {
  const auto fx = test::parity::Fixture::open(name);
  Transformer<T, F> net(fx.cfg, cpu, typename Transformer<T, F>::Uninitialized{});
  load_weights(net, fx.path, {.prefix = "model."});
  if (!perturb.empty()) {
    const ParamEntry* e = net.layout().find(perturb);
    EXPECT_NE(e, nullptr) << perturb;
    T* w = net.params().data() + e->offset;
    for (std::int64_t i = 0; i < e->numel(); ++i) w[i] *= T(1 + eps);
  }
  const auto x = test::parity::Fixture::as<T>(fx.x_t), t = test::parity::Fixture::as<T>(fx.t);
  std::vector<T> out(fx.out.size());
  net.forward(x.data(), t.data(), fx.labels.data(), fx.B, out.data());
  // infer() is the same function without the saved activations
  std::vector<T> inf(out.size());
  net.infer(x.data(), t.data(), fx.labels.data(), fx.B, inf.data());
  EXPECT_EQ(inf, out) << name;
  return test::parity::max_abs_error(out.data(), fx.out);
}

template <class T, Fusion F>
void expect_output_parity(const std::string& name, double tol) {
  const double err = output_error<T, F>(name);
  EXPECT_LE(err, tol) << name << " (" << (sizeof(T) == 4 ? "float" : "double") << "): max |out - torch| = " << err;
  std::printf("[parity] %s %s: max |out - torch| %.3g\n", name.c_str(), sizeof(T) == 4 ? "float" : "double", err);
}

}  // namespace

TEST(ModelParity, SiTMergedOutputsMatchPyTorch) {
  expect_output_parity<float, Merged>("sit_merged_flow.safetensors", kOutTolFloat);
  expect_output_parity<double, Merged>("sit_merged_flow.safetensors", kOutTolDouble);
}

TEST(ModelParity, DiTSeparateLearnedSigmaOutputsMatchPyTorch) {
  expect_output_parity<float, Separate>("dit_separate_ddpm_sigma.safetensors", kOutTolFloat);
  expect_output_parity<double, Separate>("dit_separate_ddpm_sigma.safetensors", kOutTolDouble);
}

TEST(ModelParity, PlainDiTOutputsMatchPyTorch) {
  expect_output_parity<float, Merged>("dit_plain_ddpm_sigma.safetensors", kOutTolFloat);
  expect_output_parity<double, Merged>("dit_plain_ddpm_sigma.safetensors", kOutTolDouble);
}

// The comparison can fail: a 1e-3 relative change in the use of one weight tensor (the first
// attention, the last MLP, the timestep embedder) moves the output past the float tolerance
// (measured: 1.2e-5, 1.4e-5, 8.8e-6).
TEST(ModelParity, SeesA1e3ChangeInOneWeight) {
  for (const char* w : {"blocks.0.attn.qkv.weight", "blocks.1.mlp.fc2.weight", "t_embedder.mlp.0.weight"}) {
    const double err = output_error<double, Merged>("sit_merged_flow.safetensors", w, 1e-3);
    EXPECT_GT(err, 2 * kOutTolFloat) << w;
    std::printf("[parity] sit_merged_flow with %s x (1 + 1e-3): max |out - torch| %.3g\n", w, err);
  }
}
