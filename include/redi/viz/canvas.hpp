// redi/viz/canvas.hpp — an RGB8 raster canvas for redi's charts: alpha blending, filled
// rectangles, anti-aliased thick lines and polylines, filled polygons (bands) and markers.
//
// Coordinates: pixel (i, j) covers the square [i, i+1) x [j, j+1); its centre is (i+0.5, j+0.5).
// Points (Point) are continuous coordinates in that system, so a line through y = 10.5 lies on
// pixel row 10. Every write goes through blend() and is clipped to the clip rectangle.
//
// Blending (one channel, alpha a in [0, 1]): out = round(bg (1 - a) + fg a).
// Lines and markers: the coverage of a pixel is clamp(r + 1/2 - d, 0, 1), d the distance from
// its centre to the shape's core (a segment for lines, of half-width r), so edges are
// anti-aliased over one pixel. A polyline is rasterised into one coverage buffer (the maximum
// over its segments) and blended once, so joints and overlaps are not darkened twice.
// Polygons are filled with the even-odd rule at pixel centres, each pixel blended once.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "redi/core/error.hpp"

namespace redi::viz {

struct Rgb {
  std::uint8_t r = 0, g = 0, b = 0;
  friend bool operator==(const Rgb&, const Rgb&) = default;
};

namespace colors {
inline constexpr Rgb white{255, 255, 255}, black{0, 0, 0};
inline constexpr Rgb text{34, 34, 34}, axis{90, 90, 90}, grid{228, 228, 228}, legend_border{170, 170, 170};
}  // namespace colors

struct Point {
  double x = 0, y = 0;
};

struct Rect {
  int x = 0, y = 0, w = 0, h = 0;
  int right() const { return x + w; }   ///< one past the last column
  int bottom() const { return y + h; }  ///< one past the last row
  bool contains(int px, int py) const { return px >= x && px < x + w && py >= y && py < y + h; }
  bool empty() const { return w <= 0 || h <= 0; }
  Rect intersect(const Rect& o) const {
    const int x0 = std::max(x, o.x), y0 = std::max(y, o.y);
    const int x1 = std::min(right(), o.right()), y1 = std::min(bottom(), o.bottom());
    return {x0, y0, std::max(0, x1 - x0), std::max(0, y1 - y0)};
  }
};

/// One channel: round(bg (1 - a) + fg a), a clamped to [0, 1].
inline std::uint8_t blend_channel(std::uint8_t bg, std::uint8_t fg, double a) {
  a = std::clamp(a, 0.0, 1.0);
  return std::uint8_t(std::lround(double(bg) * (1.0 - a) + double(fg) * a));
}
inline Rgb blend(Rgb bg, Rgb fg, double a) {
  return {blend_channel(bg.r, fg.r, a), blend_channel(bg.g, fg.g, a), blend_channel(bg.b, fg.b, a)};
}

enum class Marker { Auto, None, Circle, Square, Diamond, Triangle };

class Canvas {
public:
  Canvas() = default;
  Canvas(int w, int h, Rgb background = colors::white) : w_(w), h_(h) {
    REDI_CHECK(w > 0 && h > 0 && std::int64_t(w) * h <= (std::int64_t(1) << 28), "Canvas: bad size ", w, "x", h);
    px_.resize(std::size_t(w) * std::size_t(h) * 3);
    for (std::size_t i = 0; i < px_.size(); i += 3)
      px_[i] = background.r, px_[i + 1] = background.g, px_[i + 2] = background.b;
    clip_ = bounds();
  }

  int width() const { return w_; }
  int height() const { return h_; }
  Rect bounds() const { return {0, 0, w_, h_}; }
  /// HWC RGB bytes, row-major (what encode_png takes).
  const std::vector<std::uint8_t>& pixels() const { return px_; }
  Rgb at(int x, int y) const {
    REDI_CHECK(x >= 0 && x < w_ && y >= 0 && y < h_, "Canvas::at(", x, ", ", y, ") outside ", w_, "x", h_);
    const std::size_t i = idx(x, y);
    return {px_[i], px_[i + 1], px_[i + 2]};
  }

  /// Restricts every later write to `r` (intersected with the canvas).
  void set_clip(const Rect& r) { clip_ = r.intersect(bounds()); }
  void reset_clip() { clip_ = bounds(); }
  const Rect& clip() const { return clip_; }

  /// Blends `c` with alpha `a` into pixel (x, y); outside the clip rectangle nothing happens.
  void blend(int x, int y, Rgb c, double a = 1.0) {
    if (!clip_.contains(x, y) || !(a > 0.0)) return;
    const std::size_t i = idx(x, y);
    px_[i] = blend_channel(px_[i], c.r, a), px_[i + 1] = blend_channel(px_[i + 1], c.g, a);
    px_[i + 2] = blend_channel(px_[i + 2], c.b, a);
  }

  void fill_rect(const Rect& r, Rgb c, double alpha = 1.0) {
    const Rect k = r.intersect(clip_);
    for (int y = k.y; y < k.bottom(); ++y)
      for (int x = k.x; x < k.right(); ++x) blend(x, y, c, alpha);
  }
  /// The outline of `r`, `t` pixels thick, drawn inside it.
  void stroke_rect(const Rect& r, Rgb c, int t = 1) {
    fill_rect({r.x, r.y, r.w, t}, c);
    fill_rect({r.x, r.bottom() - t, r.w, t}, c);
    fill_rect({r.x, r.y + t, t, r.h - 2 * t}, c);
    fill_rect({r.right() - t, r.y + t, t, r.h - 2 * t}, c);
  }

  /// An anti-aliased line of `width` pixels with round caps.
  void line(Point a, Point b, Rgb c, double width = 1.0, double alpha = 1.0) { polyline({a, b}, c, width, alpha); }

  /// Connected segments through `pts` (one point: a dot), `width` pixels wide, blended once.
  void polyline(const std::vector<Point>& pts, Rgb c, double width = 1.0, double alpha = 1.0) {
    if (pts.empty()) return;
    REDI_CHECK(width > 0.0 && width <= 64.0, "Canvas::polyline: width ", width, " outside (0, 64]");
    const double r = 0.5 * width;
    Coverage cov(clip_, pts, r + 1.0);
    if (cov.box.empty()) return;
    for (std::size_t i = 0; i < pts.size(); ++i) {
      const Point a = pts[i], b = pts[i + 1 < pts.size() ? i + 1 : i];
      if (!finite(a) || !finite(b)) continue;
      const Rect box = cov.segment_box(a, b, r + 1.0);
      for (int y = box.y; y < box.bottom(); ++y)
        for (int x = box.x; x < box.right(); ++x) {
          const double d = segment_distance({x + 0.5, y + 0.5}, a, b);
          cov.max_at(x, y, std::clamp(r + 0.5 - d, 0.0, 1.0));
        }
    }
    cov.blend_into(*this, c, alpha);
  }

  /// Fills the polygon through `pts` (closed implicitly) with the even-odd rule.
  void fill_polygon(const std::vector<Point>& pts, Rgb c, double alpha = 1.0) {
    if (pts.size() < 3) return;
    double y0 = pts[0].y, y1 = pts[0].y;
    for (const Point& p : pts) {
      if (!finite(p)) return;
      y0 = std::min(y0, p.y), y1 = std::max(y1, p.y);
    }
    const int ya = std::max(clip_.y, int(std::floor(std::max(y0, -1.0))));
    const int yb = std::min(clip_.bottom() - 1, int(std::ceil(std::min(y1, double(h_) + 1.0))));
    std::vector<double> xs;
    for (int y = ya; y <= yb; ++y) {
      const double yc = y + 0.5;
      xs.clear();
      for (std::size_t i = 0; i < pts.size(); ++i) {
        const Point p = pts[i], q = pts[(i + 1) % pts.size()];
        if ((p.y <= yc && yc < q.y) || (q.y <= yc && yc < p.y))
          xs.push_back(p.x + (yc - p.y) / (q.y - p.y) * (q.x - p.x));
      }
      std::sort(xs.begin(), xs.end());
      for (std::size_t k = 0; k + 1 < xs.size(); k += 2) {
        const double lo = std::clamp(xs[k], double(clip_.x) - 1.0, double(clip_.right()) + 1.0);
        const double hi = std::clamp(xs[k + 1], double(clip_.x) - 1.0, double(clip_.right()) + 1.0);
        for (int x = int(std::ceil(lo - 0.5)); x + 0.5 < hi; ++x) blend(x, y, c, alpha);
      }
    }
  }

  /// A filled marker of radius `r` (centre to edge for circles and squares, to a vertex for
  /// diamonds and triangles) at `p`, anti-aliased.
  void marker(Point p, Marker m, Rgb c, double r = 3.0, double alpha = 1.0) {
    if (m == Marker::None || m == Marker::Auto || !finite(p) || !(r > 0.0 && r <= 64.0)) return;
    if (std::abs(p.x) > 1e8 || std::abs(p.y) > 1e8) return;
    const double e = 1.2 * r + 2.0;  // covers every shape
    const Rect box = Coverage::to_rect(p.x - e, p.y - e, p.x + e, p.y + e).intersect(clip_);
    for (int y = box.y; y < box.bottom(); ++y)
      for (int x = box.x; x < box.right(); ++x) {
        const double dx = x + 0.5 - p.x, dy = y + 0.5 - p.y;
        double inside = 0;  // signed distance to the edge, positive inside
        switch (m) {
          case Marker::Circle: inside = r - std::hypot(dx, dy); break;
          case Marker::Square: inside = r - std::max(std::abs(dx), std::abs(dy)); break;
          case Marker::Diamond: inside = (r - std::abs(dx) - std::abs(dy)) / std::sqrt(2.0); break;
          default: {  // triangle, apex up, centroid at p, circumradius R = 1.2 r (inradius R/2)
            const double R = 1.2 * r, h = 0.5 * std::sqrt(3.0) * dx;
            inside = std::min({0.5 * R - dy, 0.5 * (R + dy) - h, 0.5 * (R + dy) + h});
          }
        }
        blend(x, y, c, alpha * std::clamp(inside + 0.5, 0.0, 1.0));
      }
  }

  /// Copies `src` with its top-left corner at (x, y) (clipped).
  void blit(const Canvas& src, int x, int y) {
    const Rect k = Rect{x, y, src.w_, src.h_}.intersect(clip_);
    for (int j = k.y; j < k.bottom(); ++j)
      std::copy_n(src.px_.data() + src.idx(k.x - x, j - y), std::size_t(k.w) * 3, px_.data() + idx(k.x, j));
  }

  /// Distance from `p` to the segment [a, b].
  static double segment_distance(Point p, Point a, Point b) {
    const double vx = b.x - a.x, vy = b.y - a.y, len2 = vx * vx + vy * vy;
    double t = len2 > 0 ? ((p.x - a.x) * vx + (p.y - a.y) * vy) / len2 : 0.0;
    t = std::clamp(t, 0.0, 1.0);
    return std::hypot(p.x - (a.x + t * vx), p.y - (a.y + t * vy));
  }

private:
  static bool finite(Point p) { return std::isfinite(p.x) && std::isfinite(p.y); }
  std::size_t idx(int x, int y) const { return (std::size_t(y) * std::size_t(w_) + std::size_t(x)) * 3; }

  /// Coverage in [0, 1] over the clipped bounding box of a shape.
  struct Coverage {
    Rect box;
    std::vector<float> v;
    Coverage(const Rect& clip, const std::vector<Point>& pts, double pad) {
      double x0 = 1e300, y0 = 1e300, x1 = -1e300, y1 = -1e300;
      for (const Point& p : pts)
        if (finite(p)) x0 = std::min(x0, p.x), y0 = std::min(y0, p.y), x1 = std::max(x1, p.x), y1 = std::max(y1, p.y);
      if (x0 > x1) return;
      box = to_rect(x0 - pad, y0 - pad, x1 + pad, y1 + pad).intersect(clip);
      v.assign(std::size_t(std::max(0, box.w)) * std::size_t(std::max(0, box.h)), 0.0f);
    }
    static Rect to_rect(double x0, double y0, double x1, double y1) {
      auto c = [](double t) { return int(std::floor(std::clamp(t, -1e8, 1e8))); };
      return {c(x0), c(y0), c(x1) - c(x0) + 1, c(y1) - c(y0) + 1};
    }
    Rect segment_box(Point a, Point b, double pad) const {
      return to_rect(std::min(a.x, b.x) - pad, std::min(a.y, b.y) - pad, std::max(a.x, b.x) + pad,
                     std::max(a.y, b.y) + pad)
          .intersect(box);
    }
    void max_at(int x, int y, double c) {
      float& f = v[std::size_t(y - box.y) * std::size_t(box.w) + std::size_t(x - box.x)];
      f = std::max(f, float(c));
    }
    void blend_into(Canvas& cv, Rgb c, double alpha) const {
      for (int y = box.y; y < box.bottom(); ++y)
        for (int x = box.x; x < box.right(); ++x) {
          const float f = v[std::size_t(y - box.y) * std::size_t(box.w) + std::size_t(x - box.x)];
          if (f > 0.0f) cv.blend(x, y, c, alpha * double(f));
        }
    }
  };

  int w_ = 0, h_ = 0;
  std::vector<std::uint8_t> px_;
  Rect clip_;
};

}  // namespace redi::viz
