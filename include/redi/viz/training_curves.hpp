// redi/viz/training_curves.hpp — reading a trainer's metrics.jsonl and drawing its curves.
//
// The log (redi::train::Trainer, docs/training.md) holds one JSON object per line. Training
// records carry step, loss, mse_x, mse_z, ...; evaluation records carry "eval": true and their
// own keys (e.g. "fd"). Every numeric member becomes a series against the x key ("step"):
// training members in MetricsLog::train, evaluation members in MetricsLog::eval. A member that is
// null (the trainer writes NaN as null), absent, or not a number contributes no point. Points
// are sorted by x; when an x value repeats (a resumed run appends to its log), the later line
// wins. Blank lines are skipped; a last line without its newline that does not parse is taken
// for a record still being written and skipped. Anything else malformed throws redi::Error
// naming the file and the line.
//
// training_curves() draws one panel per key: by default loss, mse_x and mse_z (those present),
// then every numeric key of the evaluation records; a key present in both kinds of record gets
// both series ("train", "eval") in its panel.
#pragma once
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "redi/core/error.hpp"
#include "redi/io/json.hpp"
#include "redi/viz/chart.hpp"
#include "redi/viz/png.hpp"

namespace redi::viz {

struct XY {
  std::vector<double> x, y;
};

struct MetricsLog {
  std::string source;                              ///< the file (or name) it was read from
  std::string x_key = "step";
  std::vector<std::string> train_keys, eval_keys;  ///< numeric keys, in order of first appearance
  std::map<std::string, XY> train, eval;
  std::size_t train_records = 0, eval_records = 0;

  const XY* find(const std::string& key, bool in_eval) const {
    const auto& m = in_eval ? eval : train;
    const auto it = m.find(key);
    return it == m.end() ? nullptr : &it->second;
  }
};

namespace detail {
struct RawPoint {
  double x, y;
  std::size_t line;
};
inline void sort_dedupe(std::vector<RawPoint>& v, XY& out) {
  std::stable_sort(v.begin(), v.end(), [](const RawPoint& a, const RawPoint& b) { return a.x < b.x; });
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (i + 1 < v.size() && v[i + 1].x == v[i].x) continue;  // a later line has this x: it wins
    out.x.push_back(v[i].x), out.y.push_back(v[i].y);
  }
}
}  // namespace detail

/// Parses the text of a metrics log; `source` names it in errors.
inline MetricsLog parse_metrics_jsonl(std::string_view text, const std::string& source,
                                      const std::string& x_key = "step") {
  MetricsLog log;
  log.source = source, log.x_key = x_key;
  std::map<std::string, std::vector<detail::RawPoint>> raw[2];
  std::size_t pos = 0, line_no = 0;
  while (pos < text.size()) {
    std::size_t end = text.find('\n', pos);
    const bool complete = end != std::string_view::npos;
    if (!complete) end = text.size();
    const std::string_view line = text.substr(pos, end - pos);
    const std::size_t base = pos;
    pos = end + 1, ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    const std::string what = source + " line " + std::to_string(line_no);
    json::Value rec;
    try {
      rec = json::parse(line, what, base);
    } catch (const Error&) {
      if (!complete) break;  // the last record, still being written
      throw;
    }
    REDI_CHECK(rec.is_object(), what, ": a record must be a JSON object, got ", rec.kind_name());
    const json::Value* xv = rec.find(x_key);
    REDI_CHECK(xv && xv->is_number() && std::isfinite(xv->as_double()), what, ": no numeric \"", x_key, "\"");
    const json::Value* ev = rec.find("eval");
    const bool is_eval = ev && ev->is_bool() && ev->as_bool();
    (is_eval ? log.eval_records : log.train_records)++;
    auto& keys = is_eval ? log.eval_keys : log.train_keys;
    for (const auto& [k, v] : rec.object()) {
      if (k == x_key || !v.is_number()) continue;
      const double y = v.as_double();
      if (!std::isfinite(y)) continue;
      auto& pts = raw[is_eval][k];
      if (pts.empty() && std::find(keys.begin(), keys.end(), k) == keys.end()) keys.push_back(k);
      pts.push_back({xv->as_double(), y, line_no});
    }
  }
  REDI_CHECK(log.train_records + log.eval_records > 0, source, ": no records (an empty metrics log)");
  for (int e = 0; e < 2; ++e)
    for (auto& [k, pts] : raw[e]) detail::sort_dedupe(pts, (e ? log.eval : log.train)[k]);
  return log;
}

/// Reads a metrics.jsonl file (see parse_metrics_jsonl).
inline MetricsLog read_metrics_jsonl(const std::filesystem::path& path, const std::string& x_key = "step") {
  std::ifstream f(path, std::ios::binary);
  REDI_CHECK(f.good(), path.string(), ": cannot open the metrics log: ", std::strerror(errno));
  std::ostringstream ss;
  ss << f.rdbuf();
  REDI_CHECK(!f.bad(), path.string(), ": read error");
  return parse_metrics_jsonl(ss.str(), path.string(), x_key);
}

struct CurvesOptions {
  /// Keys to draw, one panel each, in this order; each must be in the log. Empty: loss, mse_x,
  /// mse_z (those present), then every numeric evaluation key.
  std::vector<std::string> keys;
  bool every_key = false;  ///< with empty `keys`: every numeric key, training then evaluation
  bool log_y = false;  ///< log y axes (panels with a value <= 0 stay linear)
  int cols = 2, panel_w = 480, panel_h = 320;
  std::string title;  ///< figure title (default: none)
};

/// The keys training_curves() draws, in panel order.
inline std::vector<std::string> curve_keys(const MetricsLog& log, const CurvesOptions& o = {}) {
  std::vector<std::string> keys;
  auto add = [&](const std::string& k) {
    if (std::find(keys.begin(), keys.end(), k) == keys.end()) keys.push_back(k);
  };
  if (!o.keys.empty()) {
    for (const auto& k : o.keys) {
      REDI_CHECK(log.find(k, false) || log.find(k, true), log.source, ": no numeric values of \"", k,
                 "\" to plot");
      add(k);
    }
    return keys;
  }
  if (o.every_key) {
    for (const auto& k : log.train_keys) add(k);
  } else {
    for (const char* k : {"loss", "mse_x", "mse_z"})
      if (log.find(k, false)) add(k);
  }
  for (const auto& k : log.eval_keys) add(k);
  REDI_CHECK(!keys.empty(), log.source, ": nothing to plot (no loss, mse_x, mse_z or evaluation values)");
  return keys;
}

/// One panel per key of curve_keys(log, o).
inline std::vector<Panel> training_panels(const MetricsLog& log, const CurvesOptions& o = {}) {
  std::vector<Panel> panels;
  double x0 = 1e300, x1 = -1e300;  // one x range for every panel, so the curves line up
  for (const auto* m : {&log.train, &log.eval})
    for (const auto& kv : *m)
      for (double x : kv.second.x) x0 = std::min(x0, x), x1 = std::max(x1, x);
  for (const std::string& k : curve_keys(log, o)) {
    Panel p;
    const XY* tr = log.find(k, false);
    const XY* ev = log.find(k, true);
    for (const auto& [xy, name] : {std::pair{tr, "train"}, std::pair{ev, "eval"}}) {
      if (!xy) continue;
      Series s;
      s.name = name, s.x = xy->x, s.y = xy->y;
      p.series.push_back(std::move(s));
    }
    p.options.title = (ev && !tr) ? k + " (eval)" : k;
    p.options.x_label = log.x_key;
    bool positive = true;
    for (const auto& sr : p.series)
      for (double y : sr.y) positive = positive && y > 0;
    p.options.log_y = o.log_y && positive;
    p.options.max_x_ticks = 6;
    p.options.x_min = x0, p.options.x_max = x1;
    panels.push_back(std::move(p));
  }
  return panels;
}

inline Canvas training_curves(const MetricsLog& log, const CurvesOptions& o = {}) {
  return multi_panel(training_panels(log, o), o.cols, o.title, o.panel_w, o.panel_h);
}

/// Reads `jsonl`, draws its curves and writes them to `png`; returns the keys drawn.
inline std::vector<std::string> plot_training_curves(const std::filesystem::path& jsonl,
                                                     const std::filesystem::path& png,
                                                     const CurvesOptions& o = {}) {
  const MetricsLog log = read_metrics_jsonl(jsonl);
  save_png(training_curves(log, o), png);
  return curve_keys(log, o);
}

/// The mean over runs of one metric at the x values every run has, with a +-1 standard
/// deviation band (sample std, n - 1) when there are two runs or more: the spread over seeds.
inline Series mean_band(const std::string& name, const std::vector<XY>& runs) {
  REDI_CHECK(!runs.empty(), "mean_band '", name, "': no runs");
  for (std::size_t r = 0; r < runs.size(); ++r)
    REDI_CHECK(runs[r].x.size() == runs[r].y.size(), "mean_band '", name, "': run ", r, " has ", runs[r].x.size(),
               " x values but ", runs[r].y.size(), " y values");
  Series s;
  s.name = name;
  for (std::size_t i = 0; i < runs[0].x.size(); ++i) {
    const double x = runs[0].x[i];
    std::vector<double> ys;
    for (const XY& r : runs) {
      const auto it = std::find(r.x.begin(), r.x.end(), x);
      if (it == r.x.end()) break;
      ys.push_back(r.y[std::size_t(it - r.x.begin())]);
    }
    if (ys.size() != runs.size()) continue;
    double mean = 0, var = 0;
    for (double y : ys) mean += y;
    mean /= double(ys.size());
    for (double y : ys) var += (y - mean) * (y - mean);
    s.x.push_back(x), s.y.push_back(mean);
    if (ys.size() >= 2) {
      const double sd = std::sqrt(var / double(ys.size() - 1));
      s.y_lo.push_back(mean - sd), s.y_hi.push_back(mean + sd);
    }
  }
  REDI_CHECK(!s.x.empty(), "mean_band '", name, "': the ", runs.size(), " runs share no x values");
  return s;
}

}  // namespace redi::viz
