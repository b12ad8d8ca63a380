// redi/viz/chart.hpp — line charts: named series (x, y, optional y_lo/y_hi band) on linear or
// log-y axes with nice ticks, tick labels, a grid, a title, axis labels and a legend.
//
// Layout of a chart in its rectangle (text scale s, text height 9 s): a title on top; tick labels
// left of and below the framed plot rectangle; axis labels outside them (the y label turned a
// quarter turn). Inside the frame the axes map [first tick, last tick] onto the frame less an
// inset of kInset pixels, so points on the range ends are drawn whole. Drawing order: grid, every
// series' band (alpha blended), every line, every marker (all clipped to the frame), frame,
// ticks, labels, legend. The legend (shown by default for two or more series) goes into the
// corner of the frame that covers the fewest drawn points.
// Colours: the Okabe-Ito palette (Okabe & Ito 2008, "Color Universal Design"), readable with the
// common colour-vision deficiencies; markers also differ in shape per series.
#pragma once
#include <algorithm>
#include <array>
#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "redi/viz/canvas.hpp"
#include "redi/viz/text.hpp"
#include "redi/viz/ticks.hpp"

namespace redi::viz {

/// The series colours, in order (yellow last: weakest on white).
inline constexpr std::array<Rgb, 8> kPalette = {{{0, 114, 178},     // blue
                                                 {213, 94, 0},      // vermillion
                                                 {0, 158, 115},     // bluish green
                                                 {204, 121, 167},   // reddish purple
                                                 {230, 159, 0},     // orange
                                                 {86, 180, 233},    // sky blue
                                                 {0, 0, 0},         // black
                                                 {240, 228, 66}}};  // yellow
inline Rgb palette_color(std::size_t i) { return kPalette[i % kPalette.size()]; }

struct Series {
  std::string name;
  std::vector<double> x, y;
  std::vector<double> y_lo, y_hi;  ///< optional band: both empty, or both of y's size
  std::optional<Rgb> color;        ///< default: palette_color(position of the series)
  Marker marker = Marker::Auto;    ///< Auto: a shape per series when it has <= kAutoMarkerPoints points
  double line_width = 2.0;         ///< pixels; 0 draws markers only
  double band_alpha = 0.2;         ///< opacity of the band fill
};

enum class LegendPos { Auto, None, TopRight, TopLeft, BottomRight, BottomLeft };

struct ChartOptions {
  std::string title, x_label, y_label;
  bool log_y = false;
  int width = 720, height = 450;       ///< line_chart's image size (in a multi_panel: the panel's)
  LegendPos legend = LegendPos::Auto;  ///< Auto: emptiest corner, shown when there are >= 2 series
  int text_scale = 1, title_scale = 2;
  int max_x_ticks = 8, max_y_ticks = 8;  ///< >= 3
  std::optional<double> x_min, x_max, y_min, y_max;  ///< fixed range ends (default: the data's)
};

inline constexpr int kInset = 8;             ///< pixels between the frame and the range ends
inline constexpr int kAutoMarkerPoints = 30;

/// Where a chart's parts go inside its rectangle.
struct ChartLayout {
  Rect area, plot;  ///< the chart's rectangle; the framed data rectangle
  Axis x, y;
  Ticks x_ticks, y_ticks;
  std::vector<std::string> x_labels, y_labels;
};

namespace detail {
inline std::string series_what(const ChartOptions& o, const Series& s, std::size_t i) {
  return "chart '" + o.title + "': series " + (s.name.empty() ? "#" + std::to_string(i) : "'" + s.name + "'");
}
inline void check_values(const std::string& what, const char* field, const std::vector<double>& v, bool positive) {
  for (std::size_t i = 0; i < v.size(); ++i) {
    REDI_CHECK(std::isfinite(v[i]), what, ": ", field, "[", i, "] is ", v[i], " (values must be finite)");
    REDI_CHECK(!positive || v[i] > 0, what, ": ", field, "[", i, "] = ", v[i], " is not positive (log y axis)");
  }
}
/// The title's scale: o.title_scale, or 1 when the title would not fit the width at it.
inline int title_scale(const ChartOptions& o, int width) {
  return text_width(o.title, o.title_scale) <= width - 16 ? o.title_scale : 1;
}
inline Marker series_marker(const Series& s, std::size_t i) {
  if (s.marker != Marker::Auto) return s.marker;
  if (s.y.size() > std::size_t(kAutoMarkerPoints)) return Marker::None;
  constexpr Marker shapes[] = {Marker::Circle, Marker::Square, Marker::Diamond, Marker::Triangle};
  return shapes[i % 4];
}
}  // namespace detail

/// Throws redi::Error naming the chart and the series for: no series, an empty series, x/y or
/// band sizes that differ, a non-finite value, a value <= 0 on a log y axis.
inline void validate_series(const std::vector<Series>& series, const ChartOptions& o) {
  REDI_CHECK(!series.empty(), "chart '", o.title, "': no series to draw");
  for (std::size_t i = 0; i < series.size(); ++i) {
    const Series& s = series[i];
    const std::string what = detail::series_what(o, s, i);
    REDI_CHECK(!s.y.empty(), what, ": no points");
    REDI_CHECK(s.x.size() == s.y.size(), what, ": ", s.x.size(), " x values but ", s.y.size(), " y values");
    REDI_CHECK((s.y_lo.empty() && s.y_hi.empty()) || (s.y_lo.size() == s.y.size() && s.y_hi.size() == s.y.size()),
               what, ": the band (y_lo ", s.y_lo.size(), ", y_hi ", s.y_hi.size(), " values) must match y's ",
               s.y.size(), " values");
    REDI_CHECK(s.line_width >= 0 && s.line_width <= 16, what, ": line width ", s.line_width, " outside [0, 16]");
    detail::check_values(what, "x", s.x, false);
    detail::check_values(what, "y", s.y, o.log_y);
    detail::check_values(what, "y_lo", s.y_lo, o.log_y);
    detail::check_values(what, "y_hi", s.y_hi, o.log_y);
  }
}

/// The layout of `series` drawn with `o` into `area` (validates the series).
inline ChartLayout layout_chart(const std::vector<Series>& series, const ChartOptions& o, Rect area) {
  validate_series(series, o);
  REDI_CHECK(o.text_scale >= 1 && o.text_scale <= 8 && o.title_scale >= 1 && o.title_scale <= 8,
             "chart '", o.title, "': text scales must be in [1, 8]");
  REDI_CHECK(o.max_x_ticks >= 3 && o.max_y_ticks >= 3, "chart '", o.title, "': max ticks must be >= 3");
  double x0 = 1e300, x1 = -1e300, y0 = 1e300, y1 = -1e300;
  for (const Series& s : series) {
    for (double v : s.x) x0 = std::min(x0, v), x1 = std::max(x1, v);
    for (const auto* ys : {&s.y, &s.y_lo, &s.y_hi})
      for (double v : *ys) y0 = std::min(y0, v), y1 = std::max(y1, v);
  }
  x0 = o.x_min.value_or(x0), x1 = o.x_max.value_or(x1), y0 = o.y_min.value_or(y0), y1 = o.y_max.value_or(y1);
  REDI_CHECK(x0 <= x1 && y0 <= y1, "chart '", o.title, "': empty range x [", x0, ", ", x1, "], y [", y0, ", ", y1, "]");
  REDI_CHECK(!o.log_y || y0 > 0, "chart '", o.title, "': log y axis with y_min ", y0, " <= 0");

  const int ts = o.text_scale, th = text_height(ts), pad = 8, tick = 4;
  ChartLayout L;
  L.area = area;
  const int top = pad + (o.title.empty() ? 0 : text_height(detail::title_scale(o, area.w)) + 8);
  const int bottom = pad + tick + 4 + th + (o.x_label.empty() ? 0 : 6 + th);
  const int plot_h = area.h - top - bottom;
  const int y_max_ticks = std::clamp(plot_h / (3 * th), 3, std::max(3, o.max_y_ticks));
  L.y_ticks = o.log_y ? log_ticks(y0, y1, y_max_ticks) : linear_ticks(y0, y1, y_max_ticks);
  L.y_labels = tick_labels(L.y_ticks);
  int label_w = 0;
  for (const auto& s : L.y_labels) label_w = std::max(label_w, text_width(s, ts));
  const int left = pad + (o.y_label.empty() ? 0 : th + 8) + label_w + tick + 4;
  // x ticks: as many as fit with a gap of 3 characters between labels
  const int right_guess = pad + text_width(format_tick(linear_ticks(x0, x1, o.max_x_ticks).hi(), 0), ts) / 2;
  const int plot_w = area.w - left - right_guess;
  REDI_CHECK(plot_w >= 40 && plot_h >= 40, "chart '", o.title, "': ", area.w, "x", area.h,
             " pixels leave no room for the plot (", plot_w, "x", plot_h, ")");
  for (int m = o.max_x_ticks; m >= 3; --m) {
    L.x_ticks = linear_ticks(x0, x1, m);
    L.x_labels = tick_labels(L.x_ticks);
    int w = 0;
    for (const auto& s : L.x_labels) w = std::max(w, text_width(s, ts));
    if (double(plot_w - 2 * kInset) / double(L.x_ticks.values.size() - 1) >= w + 3 * 6 * ts) break;
  }
  L.plot = {area.x + left, area.y + top, plot_w, plot_h};
  L.x = {L.x_ticks.lo(), L.x_ticks.hi(), false, double(L.plot.x + kInset), double(L.plot.right() - kInset)};
  L.y = {L.y_ticks.lo(), L.y_ticks.hi(), o.log_y, double(L.plot.bottom() - kInset), double(L.plot.y + kInset)};
  return L;
}

namespace detail {
inline std::vector<Point> screen_points(const ChartLayout& L, const std::vector<double>& x,
                                        const std::vector<double>& y) {
  std::vector<Point> p(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) p[i] = {L.x.to_pixel(x[i]), L.y.to_pixel(y[i])};
  return p;
}

/// The legend box at `pos`, and how many drawn points (sampled every 2 px along lines) it covers.
inline Rect legend_box(const ChartLayout& L, LegendPos pos, int w, int h) {
  const int m = 6;
  const int x = (pos == LegendPos::TopLeft || pos == LegendPos::BottomLeft) ? L.plot.x + m : L.plot.right() - m - w;
  const int y = (pos == LegendPos::TopLeft || pos == LegendPos::TopRight) ? L.plot.y + m : L.plot.bottom() - m - h;
  return {x, y, w, h};
}
inline std::size_t covered(const Rect& box, const std::vector<std::vector<Point>>& lines) {
  std::size_t n = 0;
  auto in = [&](double x, double y) {
    return x >= box.x - 3 && x < box.right() + 3 && y >= box.y - 3 && y < box.bottom() + 3;
  };
  for (const auto& pts : lines)
    for (std::size_t i = 0; i < pts.size(); ++i) {
      const Point a = pts[i], b = pts[i + 1 < pts.size() ? i + 1 : i];
      const int k = std::max(1, int(std::hypot(b.x - a.x, b.y - a.y) / 2.0));
      for (int j = 0; j < k; ++j)
        n += in(a.x + (b.x - a.x) * j / k, a.y + (b.y - a.y) * j / k) ? 1 : 0;
    }
  return n;
}

inline void draw_legend(Canvas& c, const ChartLayout& L, const std::vector<Series>& series, const ChartOptions& o,
                        const std::vector<std::vector<Point>>& lines) {
  if (o.legend == LegendPos::None || (o.legend == LegendPos::Auto && series.size() < 2)) return;
  const int ts = o.text_scale, th = text_height(ts), row = th + 6, sample = 24;
  int name_w = 0;
  for (const Series& s : series) name_w = std::max(name_w, text_width(s.name, ts));
  const int w = 8 + sample + 6 + name_w + 8, h = 6 + int(series.size()) * row;
  LegendPos pos = o.legend;
  if (pos == LegendPos::Auto) {
    std::size_t best = ~std::size_t(0);
    for (LegendPos p : {LegendPos::TopRight, LegendPos::TopLeft, LegendPos::BottomRight, LegendPos::BottomLeft}) {
      const std::size_t n = covered(legend_box(L, p, w, h), lines);
      if (n < best) best = n, pos = p;
    }
  }
  const Rect box = legend_box(L, pos, w, h);
  c.fill_rect(box, colors::white, 0.88);
  c.stroke_rect(box, colors::legend_border);
  for (std::size_t i = 0; i < series.size(); ++i) {
    const Series& s = series[i];
    const Rgb col = s.color.value_or(palette_color(i));
    const int cy = box.y + 6 + int(i) * row + th / 2;
    const double ly = cy + 0.5, lx0 = box.x + 8, lx1 = box.x + 8 + sample;
    if (!s.y_lo.empty()) c.fill_rect({int(lx0), cy - th / 2, sample, th}, col, s.band_alpha);
    if (s.line_width > 0) c.line({lx0, ly}, {lx1, ly}, col, s.line_width);
    c.marker({0.5 * (lx0 + lx1), ly}, series_marker(s, i), col, 1.5 + s.line_width);
    draw_text(c, box.x + 8 + sample + 6, cy - 7 * ts / 2, s.name, colors::text, ts);
  }
}
}  // namespace detail

/// Draws `series` into `area` of `c`; returns the layout used.
inline ChartLayout draw_chart(Canvas& c, Rect area, const std::vector<Series>& series, const ChartOptions& o) {
  const ChartLayout L = layout_chart(series, o, area);
  const Rect saved = c.clip();
  c.set_clip(area);
  c.fill_rect(area, colors::white);
  const Rect& P = L.plot;
  for (double t : L.x_ticks.values) c.fill_rect({L.x.pixel_index(t), P.y, 1, P.h}, colors::grid);
  for (double t : L.y_ticks.values) c.fill_rect({P.x, L.y.pixel_index(t), P.w, 1}, colors::grid);

  c.set_clip(P.intersect(area));
  std::vector<std::vector<Point>> lines;
  for (std::size_t i = 0; i < series.size(); ++i) {
    const Series& s = series[i];
    lines.push_back(detail::screen_points(L, s.x, s.y));
    if (s.y_lo.empty()) continue;
    std::vector<Point> poly = detail::screen_points(L, s.x, s.y_hi);
    const std::vector<Point> lo = detail::screen_points(L, s.x, s.y_lo);
    poly.insert(poly.end(), lo.rbegin(), lo.rend());
    c.fill_polygon(poly, s.color.value_or(palette_color(i)), s.band_alpha);
  }
  for (std::size_t i = 0; i < series.size(); ++i)
    if (series[i].line_width > 0 && lines[i].size() >= 2)
      c.polyline(lines[i], series[i].color.value_or(palette_color(i)), series[i].line_width);
  for (std::size_t i = 0; i < series.size(); ++i) {
    const Marker m = detail::series_marker(series[i], i);
    const Rgb col = series[i].color.value_or(palette_color(i));
    // a lone point without a marker still shows, as a dot
    const Marker shown = (m == Marker::None && lines[i].size() == 1) ? Marker::Circle : m;
    for (const Point& p : lines[i]) c.marker(p, shown, col, 1.5 + std::max(1.0, series[i].line_width));
  }

  c.set_clip(area);
  c.stroke_rect(P, colors::axis);
  const int ts = o.text_scale, th = text_height(ts);
  for (std::size_t k = 0; k < L.x_ticks.values.size(); ++k) {
    const int px = L.x.pixel_index(L.x_ticks.values[k]);
    c.fill_rect({px, P.bottom(), 1, 4}, colors::axis);
    draw_text_aligned(c, px, P.bottom() + 8, L.x_labels[k], colors::text, ts, Align::Center, Align::Start);
  }
  for (std::size_t k = 0; k < L.y_ticks.values.size(); ++k) {
    const int py = L.y.pixel_index(L.y_ticks.values[k]);
    c.fill_rect({P.x - 4, py, 4, 1}, colors::axis);
    // centre the cap height (7 s rows) on the tick
    draw_text_aligned(c, P.x - 8, py - 7 * ts / 2, L.y_labels[k], colors::text, ts, Align::End, Align::Start);
  }
  if (!o.x_label.empty())
    draw_text_aligned(c, P.x + P.w / 2, P.bottom() + 8 + th + 6, o.x_label, colors::text, ts, Align::Center,
                      Align::Start);
  if (!o.y_label.empty())
    draw_text_up(c, area.x + 8, P.y + P.h / 2 - text_width(o.y_label, ts) / 2, o.y_label, colors::text, ts);
  if (!o.title.empty()) {  // centred over the frame, kept inside the chart's rectangle
    const int s = detail::title_scale(o, area.w), w = text_width(o.title, s);
    const int x = std::max(area.x + 8, std::min(P.x + P.w / 2 - w / 2, area.right() - 8 - w));
    draw_text(c, x, area.y + 8, o.title, colors::text, s);
  }
  detail::draw_legend(c, L, series, o, lines);
  c.set_clip(saved);
  return L;
}

/// One chart as an image of o.width x o.height pixels.
inline Canvas line_chart(const std::vector<Series>& series, const ChartOptions& o = {}) {
  Canvas c(o.width, o.height);
  draw_chart(c, c.bounds(), series, o);
  return c;
}

/// One chart of a multi-panel figure.
struct Panel {
  std::vector<Series> series;
  ChartOptions options;  ///< width/height are ignored: every panel is panel_w x panel_h
};

/// Panels in a grid of `cols` columns (row-major), each panel_w x panel_h pixels, under an
/// optional figure title.
inline Canvas multi_panel(const std::vector<Panel>& panels, int cols = 2, const std::string& title = "",
                          int panel_w = 480, int panel_h = 320) {
  REDI_CHECK(!panels.empty(), "multi_panel '", title, "': no panels");
  REDI_CHECK(cols >= 1 && panel_w > 0 && panel_h > 0, "multi_panel '", title, "': bad grid (cols ", cols, ", panel ",
             panel_w, "x", panel_h, ")");
  cols = std::min<int>(cols, int(panels.size()));
  const int rows = (int(panels.size()) + cols - 1) / cols;
  const int title_scale = text_width(title, 2) <= cols * panel_w - 16 ? 2 : 1;
  const int top = title.empty() ? 0 : text_height(title_scale) + 12;
  Canvas c(cols * panel_w, top + rows * panel_h);
  if (!title.empty())
    draw_text_aligned(c, c.width() / 2, 8, title, colors::text, title_scale, Align::Center, Align::Start);
  for (std::size_t i = 0; i < panels.size(); ++i) {
    const Rect r{int(i % std::size_t(cols)) * panel_w, top + int(i / std::size_t(cols)) * panel_h, panel_w, panel_h};
    draw_chart(c, r, panels[i].series, panels[i].options);
  }
  return c;
}

}  // namespace redi::viz
