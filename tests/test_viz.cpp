// tests/test_viz.cpp — redi/viz drawing: nice ticks, the data-to-pixel map, blending, lines,
// polygons, the bitmap font, line charts (where the data says, the series colours are) and their
// PNG round trip, and bad series. File inputs (metrics.jsonl, series files): test_viz_files.cpp.
#include <gtest/gtest.h>
#include <zlib.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "io_test_util.hpp"
#include "redi/viz/viz.hpp"

#if defined(REDI_TEST_HAVE_STB)
#include "redi/data/image_io.hpp"
#endif

using namespace redi;
using namespace redi::viz;

namespace {

bool is_nice(double step) {
  const double p = std::pow(10.0, std::floor(std::log10(step) + 1e-9)), m = step / p;
  return std::abs(m - 1) < 1e-9 || std::abs(m - 2) < 1e-9 || std::abs(m - 5) < 1e-9;
}

/// Every pixel of `c` that differs from `bg`, as (x, y).
std::vector<std::pair<int, int>> ink(const Canvas& c, Rgb bg = colors::white) {
  std::vector<std::pair<int, int>> out;
  for (int y = 0; y < c.height(); ++y)
    for (int x = 0; x < c.width(); ++x)
      if (!(c.at(x, y) == bg)) out.emplace_back(x, y);
  return out;
}

/// Decodes the PNG redi writes (8-bit RGB, one IDAT, filter None) with zlib alone.
std::vector<std::uint8_t> inflate_own_png(const std::vector<std::uint8_t>& png, int& w, int& h) {
  auto be32 = [&](std::size_t at) {
    return std::uint32_t(png[at]) << 24 | std::uint32_t(png[at + 1]) << 16 | std::uint32_t(png[at + 2]) << 8 |
           png[at + 3];
  };
  w = int(be32(16)), h = int(be32(20));
  std::size_t at = 8;
  std::vector<std::uint8_t> z;
  while (at + 8 <= png.size()) {
    const std::size_t n = be32(at);
    if (std::string(png.begin() + std::ptrdiff_t(at + 4), png.begin() + std::ptrdiff_t(at + 8)) == "IDAT")
      z.insert(z.end(), png.begin() + std::ptrdiff_t(at + 8), png.begin() + std::ptrdiff_t(at + 8 + n));
    at += 12 + n;
  }
  std::vector<std::uint8_t> raw(std::size_t(h) * (std::size_t(w) * 3 + 1));
  uLongf len = uLongf(raw.size());
  EXPECT_EQ(::uncompress(raw.data(), &len, z.data(), uLong(z.size())), Z_OK);
  std::vector<std::uint8_t> px;
  for (int y = 0; y < h; ++y) {
    EXPECT_EQ(raw[std::size_t(y) * (std::size_t(w) * 3 + 1)], 0);
    const auto row = raw.begin() + std::ptrdiff_t(std::size_t(y) * (std::size_t(w) * 3 + 1) + 1);
    px.insert(px.end(), row, row + std::ptrdiff_t(w) * 3);
  }
  return px;
}

}  // namespace

TEST(VizTicks, NiceStepsCoverTheRangeWithinTheCount) {
  std::mt19937_64 rng(11);
  std::uniform_real_distribution<double> u(-1, 1), e(-8, 8);
  for (int trial = 0; trial < 2000; ++trial) {
    const double scale = std::pow(10.0, e(rng)), a = u(rng) * scale,
                 b = a + std::abs(u(rng)) * scale * (trial % 7 + 0.01);
    const int max_ticks = 3 + trial % 8;
    const Ticks t = linear_ticks(a, b, max_ticks);
    ASSERT_GE(t.values.size(), 2u) << a << " " << b << " " << max_ticks;
    ASSERT_LE(int(t.values.size()), max_ticks) << a << " " << b;
    EXPECT_TRUE(is_nice(t.step)) << t.step;
    EXPECT_LE(t.lo(), a + 1e-9 * t.step);
    EXPECT_GE(t.hi(), b - 1e-9 * t.step);
    for (std::size_t i = 0; i < t.values.size(); ++i) {
      const double k = t.values[i] / t.step;
      EXPECT_NEAR(k, std::round(k), 1e-6) << "tick " << t.values[i] << " is not a multiple of " << t.step;
      if (i) EXPECT_NEAR(t.values[i] - t.values[i - 1], t.step, 1e-9 * std::abs(t.step) * (1 + std::abs(k)));
    }
    // the step is the smallest nice one that fits: one notch finer gives too many ticks
    const double finer = t.step / (is_nice(t.step / 2) ? 2.0 : 2.5);
    if (b > a && is_nice(finer)) {
      const double n = std::ceil(b / finer - 1e-9) - std::floor(a / finer + 1e-9) + 1;
      EXPECT_GT(n, max_ticks) << a << " " << b << " step " << t.step;
    }
  }
  EXPECT_EQ(linear_ticks(0, 2000, 6).values, (std::vector<double>{0, 500, 1000, 1500, 2000}));
  EXPECT_EQ(linear_ticks(0.25, 0.9, 6).step, 0.2);
  const Ticks flat = linear_ticks(3, 3, 5);  // a degenerate range is widened around the value
  EXPECT_LT(flat.lo(), 3);
  EXPECT_GT(flat.hi(), 3);
  EXPECT_THROW(linear_ticks(0, std::nan(""), 5), Error);
  EXPECT_THROW(linear_ticks(0, 1, 2), Error);
  EXPECT_EQ(linear_ticks(-0.3, 0.8, 3).values, (std::vector<double>{-1, 0, 1}));  // around 0: 3 ticks
}

TEST(VizTicks, LogTicksAndLabels) {
  EXPECT_EQ(log_ticks(0.46, 3.85).values, (std::vector<double>{0.2, 0.5, 1, 2, 5}));
  const Ticks wide = log_ticks(1e-4, 1e3, 6);  // 7 decades: every 2nd power
  ASSERT_LE(wide.values.size(), 6u);
  EXPECT_LE(wide.lo(), 1e-4 * (1 + 1e-12));
  EXPECT_GE(wide.hi(), 1e3 * (1 - 1e-12));
  for (double v : wide.values) EXPECT_NEAR(std::log10(v), std::round(std::log10(v)), 1e-9);
  EXPECT_THROW(log_ticks(0, 1), Error);
  EXPECT_THROW(log_ticks(-1, 1), Error);

  EXPECT_EQ(format_tick(0.1 + 0.2, 0.1), "0.3");
  EXPECT_EQ(format_tick(2000, 500), "2000");
  EXPECT_EQ(format_tick(-0.5, 0.5), "-0.5");
  EXPECT_EQ(format_tick(1e-17, 0.2), "0.0");
  EXPECT_EQ(format_tick(-1e-13, 500), "0");
  EXPECT_EQ(format_tick(0.05, 0), "0.05");
  EXPECT_EQ(format_tick(1e-5, 0), "1e-5");
  EXPECT_EQ(format_tick(2.5e6, 5e5), "2.5e6");
  EXPECT_EQ(tick_labels(linear_ticks(0, 1, 6)), (std::vector<std::string>{"0.0", "0.2", "0.4", "0.6", "0.8", "1.0"}));
}

TEST(VizAxis, LinearAndLogMapping) {
  const Axis x{0, 10, false, 100.0, 200.0};
  EXPECT_DOUBLE_EQ(x.to_pixel(0), 100.0);
  EXPECT_DOUBLE_EQ(x.to_pixel(2.5), 125.0);
  EXPECT_EQ(x.pixel_index(10), 200);
  const Axis y{1, 1000, true, 300.0, 0.0};  // a y axis: pixels grow downwards
  EXPECT_NEAR(y.to_pixel(10), 200.0, 1e-9);
  EXPECT_NEAR(y.to_pixel(100), 100.0, 1e-9);
  EXPECT_NEAR(y.to_pixel(std::sqrt(10.0)), 250.0, 1e-9);
}

TEST(VizCanvas, BlendingArithmetic) {
  EXPECT_EQ(blend_channel(255, 0, 0.25), 191);  // 255 * 0.75 = 191.25
  EXPECT_EQ(blend_channel(255, 0, 0.5), 128);   // 127.5 rounds away from zero
  EXPECT_EQ(blend_channel(10, 200, 1.0), 200);
  EXPECT_EQ(blend_channel(10, 200, 0.0), 10);
  EXPECT_EQ(blend_channel(10, 200, 2.0), 200);  // alpha clamped
  const Rgb band{0, 114, 178};
  EXPECT_EQ(blend(colors::white, band, 0.2), (Rgb{204, 227, 240}));

  // a polygon is blended once per pixel; an overlapping second band blends again on top
  Canvas c(40, 30);
  c.fill_polygon({{5, 5}, {35, 5}, {35, 25}, {5, 25}}, band, 0.2);
  EXPECT_EQ(c.at(20, 15), blend(colors::white, band, 0.2));
  EXPECT_EQ(c.at(2, 2), colors::white);
  c.fill_polygon({{15, 5}, {35, 5}, {35, 25}, {15, 25}}, band, 0.2);
  EXPECT_EQ(c.at(25, 15), blend(blend(colors::white, band, 0.2), band, 0.2));
  EXPECT_EQ(c.at(10, 15), blend(colors::white, band, 0.2));
}

TEST(VizCanvas, ThickAntiAliasedLinesAndJoints) {
  const Rgb col{213, 94, 0};
  for (int width : {1, 3}) {
    Canvas c(60, 30);
    c.line({5.5, 10.5}, {50.5, 10.5}, col, width);  // through the centres of row 10
    for (int x = 6; x <= 50; ++x)
      for (int y = 10 - width / 2; y <= 10 + width / 2; ++y)
        EXPECT_EQ(c.at(x, y), col) << width << " " << x << "," << y;
    EXPECT_EQ(c.at(30, 10 - width / 2 - 1), colors::white);
    EXPECT_EQ(c.at(30, 10 + width / 2 + 1), colors::white);
  }
  Canvas half(60, 30);
  half.line({5.5, 10.5}, {50.5, 10.5}, col, 2.0);  // edge rows half covered
  EXPECT_EQ(half.at(30, 9), blend(colors::white, col, 0.5));
  EXPECT_EQ(half.at(30, 10), col);
  // a translucent polyline does not darken its joint (one coverage buffer)
  Canvas j(60, 60);
  j.polyline({{5.5, 30.5}, {30.5, 30.5}, {30.5, 5.5}}, col, 3.0, 0.5);
  EXPECT_EQ(j.at(30, 30), blend(colors::white, col, 0.5));
  EXPECT_EQ(j.at(15, 30), blend(colors::white, col, 0.5));
  // clipping: nothing outside the clip rectangle changes
  Canvas k(40, 40);
  k.set_clip({10, 10, 10, 10});
  k.line({0.5, 15.5}, {39.5, 15.5}, col, 3);
  for (const auto& [x, y] : ink(k)) EXPECT_TRUE(Rect({10, 10, 10, 10}).contains(x, y)) << x << "," << y;
}

TEST(VizText, InkStaysInsideTheTextBox) {
  for (int scale : {1, 2}) {
    for (int ch = font::kFirst; ch <= font::kLast; ++ch) {
      Canvas c(40, 40);
      const std::string s(1, char(ch));
      draw_text(c, 7, 5, s, colors::black, scale);
      const Rect box = text_box(7, 5, s, scale);
      const auto px = ink(c);
      EXPECT_EQ(px.empty(), ch == ' ') << "glyph '" << char(ch) << "'";
      for (const auto& [x, y] : px) EXPECT_TRUE(box.contains(x, y)) << "'" << char(ch) << "' at " << x << "," << y;
    }
    const std::string s = "FD 0.85 (judge), g_j";
    Canvas c(300, 80);
    draw_text(c, 11, 13, s, colors::black, scale);
    const Rect box = text_box(11, 13, s, scale);
    const auto px = ink(c);
    ASSERT_FALSE(px.empty());
    int x0 = 1 << 30, x1 = -1, y0 = 1 << 30, y1 = -1;
    for (const auto& [x, y] : px) {
      EXPECT_TRUE(box.contains(x, y));
      x0 = std::min(x0, x), x1 = std::max(x1, x), y0 = std::min(y0, y), y1 = std::max(y1, y);
    }
    EXPECT_EQ(x0, box.x);           // 'F' starts in the first column
    EXPECT_EQ(y0, box.y);           // capitals start in the first row
    EXPECT_EQ(y1, box.bottom() - 1);  // descenders reach the last row
    // turned a quarter turn: the box is transposed
    Canvas u(80, 300);
    draw_text_up(u, 9, 4, s, colors::black, scale);
    const Rect ubox{9, 4, text_height(scale), text_width(s, scale)};
    const auto upx = ink(u);
    EXPECT_EQ(upx.size(), px.size());
    for (const auto& [x, y] : upx) EXPECT_TRUE(ubox.contains(x, y)) << x << "," << y;
  }
  // only glyphs with descenders use rows 7..8; no glyph uses bits above the 5 columns
  for (int ch = font::kFirst; ch <= font::kLast; ++ch) {
    const std::uint8_t* g = font::glyph(char(ch));
    for (int r = 0; r < font::kGlyphRows; ++r) EXPECT_EQ(g[r] & ~0x1f, 0) << char(ch);
    const bool desc = std::string("gjpqy,;_|").find(char(ch)) != std::string::npos;
    EXPECT_EQ(desc, (g[7] | g[8]) != 0) << "'" << char(ch) << "'";
  }
  EXPECT_EQ(font::glyph('\n'), font::glyph('?'));
}

namespace {
std::vector<Series> two_series() {
  Series a, b;
  a.name = "ReDi", b.name = "plain";
  for (int i = 0; i <= 8; ++i) {
    a.x.push_back(250.0 * i), a.y.push_back(3.0 / (1 + i));
    b.x.push_back(250.0 * i), b.y.push_back(3.5 / (1 + 0.6 * i));
  }
  return {a, b};
}
}  // namespace

TEST(VizChart, DataLandsOnTheExpectedPixels) {
  std::vector<Series> s = two_series();
  ChartOptions o;
  o.title = "FD", o.x_label = "step", o.y_label = "FD";
  o.width = 640, o.height = 400;
  Canvas c(o.width, o.height);
  const ChartLayout L = draw_chart(c, c.bounds(), s, o);
  EXPECT_LE(L.x.lo, 0);
  EXPECT_GE(L.x.hi, 2000);
  EXPECT_EQ(L.x.pixel_index(L.x.lo), L.plot.x + kInset);
  EXPECT_EQ(L.y.pixel_index(L.y.lo), L.plot.bottom() - kInset);
  for (std::size_t k = 0; k < s.size(); ++k)
    for (std::size_t i = 0; i < s[k].x.size(); ++i) {
      const int px = L.x.pixel_index(s[k].x[i]), py = L.y.pixel_index(s[k].y[i]);
      ASSERT_TRUE(L.plot.contains(px, py));
      EXPECT_EQ(c.at(px, py), palette_color(k)) << "series " << k << " point " << i;
    }
  // far from every curve (bottom right of the frame, between grid lines) there is only paper
  EXPECT_EQ(c.at(L.plot.right() - 3, L.plot.bottom() - 3), colors::white);

  // log y: 10 sits halfway between 1 and 100
  Series l;
  l.name = "log";
  l.x = {0, 1, 2}, l.y = {1, 10, 100};
  ChartOptions lo;
  lo.log_y = true;
  Canvas lc(400, 300);
  const ChartLayout LL = draw_chart(lc, lc.bounds(), {l}, lo);
  EXPECT_DOUBLE_EQ(LL.y.lo, 1);
  EXPECT_DOUBLE_EQ(LL.y.hi, 100);
  EXPECT_NEAR(LL.y.to_pixel(10), 0.5 * (LL.y.p_lo + LL.y.p_hi), 1e-9);
  EXPECT_EQ(lc.at(LL.x.pixel_index(1), LL.y.pixel_index(10)), palette_color(0));
}

TEST(VizChart, BandIsBlendedUnderTheLine) {
  Series s;
  s.name = "mean +- std";
  s.x = {0, 10}, s.y = {5, 5}, s.y_lo = {3, 3}, s.y_hi = {7, 7};
  s.marker = Marker::None;
  ChartOptions o;
  o.width = 400, o.height = 300;
  Canvas c(o.width, o.height);
  const ChartLayout L = draw_chart(c, c.bounds(), {s}, o);
  // a pixel inside the band, off the line and off the grid lines
  int px = L.x.pixel_index(3.3), py = L.y.pixel_index(3.9);
  for (double t : L.x_ticks.values) ASSERT_NE(L.x.pixel_index(t), px);
  for (double t : L.y_ticks.values) ASSERT_NE(L.y.pixel_index(t), py);
  EXPECT_EQ(c.at(px, py), blend(colors::white, palette_color(0), s.band_alpha));
  EXPECT_EQ(c.at(px, L.y.pixel_index(5)), palette_color(0));          // the line
  EXPECT_EQ(c.at(px, L.plot.bottom() - 3), colors::white);            // below the band (y < 3)
}

TEST(VizChart, PngRoundTripAndMultiPanel) {
  const std::vector<Series> s = two_series();
  ChartOptions o;
  o.title = "round trip";
  const Canvas c = line_chart(s, o);
  EXPECT_EQ(c.width(), o.width);
  EXPECT_EQ(c.height(), o.height);
  const std::vector<std::uint8_t> png = encode_png(c);
  int w = 0, h = 0;
  EXPECT_EQ(inflate_own_png(png, w, h), c.pixels());
  EXPECT_EQ(w, o.width);
  EXPECT_EQ(h, o.height);
#if defined(REDI_TEST_HAVE_STB)
  const data::DecodedImage im = data::decode_image(png.data(), png.size(), 3, "chart.png");
  EXPECT_EQ(im.w, o.width);
  EXPECT_EQ(im.h, o.height);
  EXPECT_EQ(im.pixels, c.pixels());
  const ChartLayout L = layout_chart(s, o, c.bounds());
  const std::size_t at =
      (std::size_t(L.y.pixel_index(s[1].y[4])) * std::size_t(im.w) + std::size_t(L.x.pixel_index(s[1].x[4]))) * 3;
  EXPECT_EQ((Rgb{im.pixels[at], im.pixels[at + 1], im.pixels[at + 2]}), palette_color(1));
#endif
  std::vector<Panel> panels(3, Panel{s, {}});
  panels[0].options.title = "a", panels[1].options.title = "b", panels[2].options.title = "c";
  const Canvas m = multi_panel(panels, 2, "figure", 300, 200);
  EXPECT_EQ(m.width(), 600);
  EXPECT_EQ(m.height(), 400 + text_height(2) + 12);
  const ChartLayout P = layout_chart(s, panels[1].options, {300, text_height(2) + 12, 300, 200});  // panel b
  EXPECT_EQ(m.at(P.x.pixel_index(s[0].x[2]), P.y.pixel_index(s[0].y[2])), palette_color(0));
}

TEST(VizChart, BadSeriesNameTheSeries) {
  ChartOptions o;
  o.title = "judge FD";
  test::expect_error([&] { line_chart({}, o); }, {"judge FD", "no series"});
  Series empty;
  empty.name = "seed 3";
  test::expect_error([&] { line_chart({empty}, o); }, {"judge FD", "seed 3", "no points"});
  Series nan = two_series()[0];
  nan.y[2] = std::nan("");
  test::expect_error([&] { line_chart({nan}, o); }, {"ReDi", "y[2]", "finite"});
  Series mism = two_series()[1];
  mism.x.pop_back();
  test::expect_error([&] { line_chart({mism}, o); }, {"plain", "x values"});
  Series band = two_series()[0];
  band.y_lo = {1, 2};
  test::expect_error([&] { line_chart({band}, o); }, {"ReDi", "band"});
  Series zero = two_series()[0];
  zero.y[0] = 0;
  o.log_y = true;
  test::expect_error([&] { line_chart({zero}, o); }, {"ReDi", "y[0]", "log"});
  o.log_y = false, o.width = 60, o.height = 40;
  test::expect_error([&] { line_chart(two_series(), o); }, {"judge FD", "no room"});
}
