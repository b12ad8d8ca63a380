// redi/viz/text.hpp — text in the built-in bitmap font (font.hpp): measuring, drawing
// horizontally and rotated a quarter turn (y-axis labels), at integer scales.
//
// A string of n characters at scale s occupies text_width = (6 n - 1) s columns and
// text_height = 9 s rows (7 s above and including the baseline row, 2 s of descenders);
// (x, y) is always the top-left corner of that box. Ink never leaves the box.
#pragma once
#include <string_view>

#include "redi/viz/canvas.hpp"
#include "redi/viz/font.hpp"

namespace redi::viz {

inline int text_width(std::string_view s, int scale = 1) {
  return s.empty() ? 0 : (int(s.size()) * font::kGlyphAdvance - 1) * scale;
}
inline int text_height(int scale = 1) { return font::kGlyphRows * scale; }

/// The box that draw_text(x, y, s, ..., scale) may ink.
inline Rect text_box(int x, int y, std::string_view s, int scale = 1) {
  return {x, y, text_width(s, scale), text_height(scale)};
}

/// Draws `s` with its box's top-left corner at (x, y).
inline void draw_text(Canvas& c, int x, int y, std::string_view s, Rgb color, int scale = 1) {
  REDI_CHECK(scale >= 1 && scale <= 16, "draw_text: scale ", scale, " outside [1, 16]");
  for (std::size_t i = 0; i < s.size(); ++i) {
    const int gx = x + int(i) * font::kGlyphAdvance * scale;
    for (int row = 0; row < font::kGlyphRows; ++row)
      for (int col = 0; col < font::kGlyphWidth; ++col)
        if (font::ink(s[i], col, row)) c.fill_rect({gx + col * scale, y + row * scale, scale, scale}, color);
  }
}

/// Draws `s` turned a quarter turn anticlockwise (read bottom to top) with its box's top-left
/// corner at (x, y); the box is text_height wide and text_width tall.
inline void draw_text_up(Canvas& c, int x, int y, std::string_view s, Rgb color, int scale = 1) {
  REDI_CHECK(scale >= 1 && scale <= 16, "draw_text_up: scale ", scale, " outside [1, 16]");
  const int bottom = y + text_width(s, scale);  // one past the last row of the box
  for (std::size_t i = 0; i < s.size(); ++i) {
    const int gy = bottom - int(i) * font::kGlyphAdvance * scale;  // glyph's left edge maps here
    for (int row = 0; row < font::kGlyphRows; ++row)
      for (int col = 0; col < font::kGlyphWidth; ++col)
        if (font::ink(s[i], col, row)) c.fill_rect({x + row * scale, gy - (col + 1) * scale, scale, scale}, color);
  }
}

enum class Align { Start, Center, End };

/// Draws `s` aligned on (x, y): horizontally Start = left edge at x, Center, End = right edge at
/// x; vertically Start = top at y, Center, End = bottom at y. Returns the box.
inline Rect draw_text_aligned(Canvas& c, int x, int y, std::string_view s, Rgb color, int scale, Align h, Align v) {
  const int w = text_width(s, scale), ht = text_height(scale);
  const int x0 = h == Align::Start ? x : (h == Align::Center ? x - w / 2 : x - w);
  const int y0 = v == Align::Start ? y : (v == Align::Center ? y - ht / 2 : y - ht);
  draw_text(c, x0, y0, s, color, scale);
  return {x0, y0, w, ht};
}

}  // namespace redi::viz
