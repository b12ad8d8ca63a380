// redi/viz/viz.hpp — redi's plotting facility in one include: an RGB canvas (canvas.hpp), a
// bitmap font (font.hpp, text.hpp), nice ticks (ticks.hpp), line charts and multi-panel figures
// (chart.hpp), PNG output (png.hpp, needs zlib), training curves from metrics.jsonl
// (training_curves.hpp) and chart data files (series_file.hpp). See docs/plots.md.
#pragma once

#include "redi/viz/canvas.hpp"
#include "redi/viz/chart.hpp"
#include "redi/viz/font.hpp"
#include "redi/viz/png.hpp"
#include "redi/viz/series_file.hpp"
#include "redi/viz/text.hpp"
#include "redi/viz/ticks.hpp"
#include "redi/viz/training_curves.hpp"
