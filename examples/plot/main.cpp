// redi_plot — charts as PNG from a training run's metrics.jsonl, from a JSON/CSV series file,
// or comparing one metric across runs (mean +- std over seeds). See docs/plots.md.
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "redi/train/cli.hpp"
#include "redi/viz/viz.hpp"

namespace {

using redi::cli::Args;
using redi::cli::UsageError;
namespace viz = redi::viz;
namespace fs = std::filesystem;

const char* kUsage = R"(usage: redi_plot --metrics RUN/metrics.jsonl [--out RUN/curves.png] [--keys K1,K2,...]
                 [--every-key] [--log-y] [--cols N] [--panel-width W] [--panel-height H] [--title T]
       redi_plot --series CHART.json|CHART.csv --out CHART.png [chart flags]
       redi_plot --compare KEY --runs NAME=A.jsonl[+B.jsonl...][,NAME=...] --out CHART.png [chart flags]

--metrics   training curves of a redi trainer log: one panel each for loss, mse_x, mse_z and every
            numeric key of the evaluation records (e.g. fd); --keys picks the panels, --every-key
            draws every numeric key. --out defaults to curves.png next to the log.
--series    one line chart from a series file (format: docs/plots.md).
--compare   KEY (an evaluation key such as fd, else a training key) against the step for several
            runs: one series per NAME, the mean over its files with a +-1 std band when it has
            two or more (seeds).
chart flags: --title T --x-label L --y-label L --log-y --width W --height H
)";

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::size_t a = 0;
  for (;;) {
    const std::size_t b = s.find(sep, a);
    out.push_back(s.substr(a, b == std::string::npos ? std::string::npos : b - a));
    if (b == std::string::npos) return out;
    a = b + 1;
  }
}

/// --title/--x-label/--y-label/--log-y/--width/--height over `o`.
void apply_chart_flags(const Args& a, viz::ChartOptions& o) {
  if (a.has("title")) o.title = a.str("title");
  if (a.has("x-label")) o.x_label = a.str("x-label");
  if (a.has("y-label")) o.y_label = a.str("y-label");
  if (a.flag("log-y")) o.log_y = true;
  o.width = int(a.integer("width", o.width, 160, 8192));
  o.height = int(a.integer("height", o.height, 120, 8192));
}

std::string require_out(const Args& a) {
  if (!a.has("out")) throw UsageError("--out is required (the PNG to write)");
  return a.str("out");
}

int run_metrics(const Args& a) {
  const fs::path log = a.str("metrics");
  const fs::path out = a.has("out") ? fs::path(a.str("out")) : log.parent_path() / "curves.png";
  viz::CurvesOptions o;
  if (a.has("keys")) {
    o.keys = split(a.str("keys"), ',');
    for (const auto& k : o.keys)
      if (k.empty()) throw UsageError("--keys: '" + a.str("keys") + "' has an empty key");
  }
  o.every_key = a.flag("every-key");
  o.log_y = a.flag("log-y");
  o.cols = int(a.integer("cols", o.cols, 1, 16));
  o.panel_w = int(a.integer("panel-width", o.panel_w, 160, 4096));
  o.panel_h = int(a.integer("panel-height", o.panel_h, 120, 4096));
  o.title = a.str("title");
  const std::vector<std::string> keys = viz::plot_training_curves(log, out, o);
  std::string list;
  for (const auto& k : keys) list += (list.empty() ? "" : ", ") + k;
  std::cout << "redi_plot: wrote " << out.string() << " (" << list << ")\n";
  return 0;
}

int run_series(const Args& a) {
  const std::string out = require_out(a);
  viz::Panel p = viz::read_chart_file(a.str("series"));
  apply_chart_flags(a, p.options);
  viz::save_png(viz::line_chart(p.series, p.options), out);
  std::cout << "redi_plot: wrote " << out << " (" << p.series.size() << " series)\n";
  return 0;
}

int run_compare(const Args& a) {
  const std::string out = require_out(a), key = a.str("compare");
  if (key.empty()) throw UsageError("--compare needs a metric key (e.g. fd)");
  if (!a.has("runs")) throw UsageError("--compare needs --runs NAME=A.jsonl[+B.jsonl...][,NAME=...]");
  std::vector<viz::Series> series;
  for (const std::string& group : split(a.str("runs"), ',')) {
    const auto eq = group.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == group.size())
      throw UsageError("--runs: '" + group + "' is not NAME=FILE[+FILE...]");
    std::vector<viz::XY> runs;
    for (const std::string& file : split(group.substr(eq + 1), '+')) {
      if (file.empty()) throw UsageError("--runs: '" + group + "' has an empty file name");
      const viz::MetricsLog log = viz::read_metrics_jsonl(file);
      const viz::XY* xy = log.find(key, true) ? log.find(key, true) : log.find(key, false);
      if (!xy) throw redi::Error(file + ": no numeric values of \"" + key + "\"");
      runs.push_back(*xy);
    }
    series.push_back(viz::mean_band(group.substr(0, eq), runs));
  }
  viz::ChartOptions o;
  o.title = key + " against training step";
  o.x_label = "step";
  o.y_label = key;
  apply_chart_flags(a, o);
  viz::save_png(viz::line_chart(series, o), out);
  std::cout << "redi_plot: wrote " << out << " (" << series.size() << " series)\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return redi::cli::run_main("redi_plot", [&]() -> int {
    const Args a(argc, argv,
                 {"metrics", "series", "compare", "runs", "out", "keys", "cols", "panel-width", "panel-height", "title",
                  "x-label", "y-label", "width", "height"},
                 {"help", "every-key", "log-y"});
    if (a.flag("help")) {
      std::cout << kUsage;
      return 0;
    }
    const int modes = int(a.has("metrics")) + int(a.has("series")) + int(a.has("compare"));
    if (modes != 1) throw UsageError("give exactly one of --metrics, --series or --compare");
    const std::string mode = a.has("metrics") ? "metrics" : (a.has("series") ? "series" : "compare");
    auto only = [&](std::initializer_list<const char*> flags, const std::string& where) {
      for (const char* f : flags)
        if (a.has(f) && mode != where && !(where == "chart" && mode != "metrics"))
          throw UsageError(std::string("--") + f + " does not apply to --" + mode);
    };
    only({"keys", "every-key", "cols", "panel-width", "panel-height"}, "metrics");
    only({"x-label", "y-label", "width", "height"}, "chart");
    only({"runs"}, "compare");
    if (a.has("metrics")) return run_metrics(a);
    if (a.has("series")) return run_series(a);
    return run_compare(a);
  });
}
