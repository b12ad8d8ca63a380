// tests/test_viz_files.cpp — redi/viz inputs: a trainer's metrics.jsonl (training and evaluation
// records, missing and null values, resumed runs, malformed and unreadable files), the training
// curves PNG, chart series files (JSON, CSV) and the mean +- std band over runs.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "io_test_util.hpp"
#include "redi/train/metrics_log.hpp"
#include "redi/viz/viz.hpp"

#if defined(REDI_TEST_HAVE_STB)
#include "redi/data/image_io.hpp"
#endif

using namespace redi;
using namespace redi::viz;

namespace {
const auto& kTmp = test::add_program_temp_dir("redi_test_viz_files");

const char* kLog =
    "{\"step\":100,\"epoch\":0,\"loss\":2.5,\"mse_x\":1.5,\"mse_z\":1.0,\"lr\":0.001}\n"
    "\n"
    "{\"step\":200,\"epoch\":0,\"loss\":1.5,\"mse_x\":0.9,\"mse_z\":null,\"note\":\"warm\"}\n"
    "{\"step\":200,\"eval\":true,\"fd\":3.25,\"acc\":0.5}\n"
    "{\"step\":300,\"epoch\":1,\"loss\":1.0,\"mse_x\":0.6,\"mse_z\":0.4}\n"
    "{\"step\":300,\"eval\":true,\"fd\":2.0}\n";
}  // namespace

TEST(VizMetrics, TrainingAndEvaluationRecords) {
  const MetricsLog log = parse_metrics_jsonl(kLog, "run/metrics.jsonl");
  EXPECT_EQ(log.train_records, 3u);
  EXPECT_EQ(log.eval_records, 2u);
  EXPECT_EQ(log.train_keys, (std::vector<std::string>{"epoch", "loss", "mse_x", "mse_z", "lr"}));
  EXPECT_EQ(log.eval_keys, (std::vector<std::string>{"fd", "acc"}));
  ASSERT_NE(log.find("loss", false), nullptr);
  EXPECT_EQ(log.find("loss", false)->x, (std::vector<double>{100, 200, 300}));
  EXPECT_EQ(log.find("loss", false)->y, (std::vector<double>{2.5, 1.5, 1.0}));
  // null and absent values give no point; a string is not a series
  EXPECT_EQ(log.find("mse_z", false)->x, (std::vector<double>{100, 300}));
  EXPECT_EQ(log.find("lr", false)->x, (std::vector<double>{100}));
  EXPECT_EQ(log.find("note", false), nullptr);
  EXPECT_EQ(log.find("fd", true)->y, (std::vector<double>{3.25, 2.0}));
  EXPECT_EQ(log.find("acc", true)->x, (std::vector<double>{200}));
  EXPECT_EQ(log.find("fd", false), nullptr);
  EXPECT_EQ(log.find("eval", true), nullptr);  // the marker is not a series

  EXPECT_EQ(curve_keys(log), (std::vector<std::string>{"loss", "mse_x", "mse_z", "fd", "acc"}));
  CurvesOptions every;
  every.every_key = true;
  EXPECT_EQ(curve_keys(log, every), (std::vector<std::string>{"epoch", "loss", "mse_x", "mse_z", "lr", "fd", "acc"}));
  CurvesOptions picked;
  picked.keys = {"fd", "loss"};
  EXPECT_EQ(curve_keys(log, picked), (std::vector<std::string>{"fd", "loss"}));
  picked.keys = {"loss", "fid"};
  test::expect_error([&] { curve_keys(log, picked); }, {"run/metrics.jsonl", "\"fid\""});

  // one x range for all panels; a key in both kinds of record gets two series
  const MetricsLog both = parse_metrics_jsonl(
      "{\"step\":0,\"loss\":2}\n{\"step\":50,\"loss\":1}\n{\"step\":40,\"eval\":true,\"loss\":1.5}\n", "both");
  const std::vector<Panel> panels = training_panels(both);
  ASSERT_EQ(panels.size(), 1u);
  ASSERT_EQ(panels[0].series.size(), 2u);
  EXPECT_EQ(panels[0].series[0].name, "train");
  EXPECT_EQ(panels[0].series[1].name, "eval");
  EXPECT_EQ(panels[0].options.x_min, 0.0);
  EXPECT_EQ(panels[0].options.x_max, 50.0);
}

TEST(VizMetrics, ResumedRunsAndRecordsInProgress) {
  // a resumed run appends from its checkpoint: repeated steps keep the later line, points sorted
  const MetricsLog log = parse_metrics_jsonl(
      "{\"step\":100,\"loss\":3}\n{\"step\":200,\"loss\":2}\n{\"step\":300,\"loss\":1.9}\n"
      "{\"step\":200,\"loss\":2.1}\n{\"step\":300,\"loss\":1.7}\n{\"step\":400,\"loss\":1.2}\n"
      "{\"step\":500,\"lo",  // the last line, still being written
      "resumed");
  EXPECT_EQ(log.find("loss", false)->x, (std::vector<double>{100, 200, 300, 400}));
  EXPECT_EQ(log.find("loss", false)->y, (std::vector<double>{3, 2.1, 1.7, 1.2}));
  EXPECT_EQ(log.train_records, 6u);
}

TEST(VizMetrics, BadLogsNameTheFileAndLine) {
  test::expect_error(
      [] { parse_metrics_jsonl("{\"step\":1,\"loss\":1}\n{\"step\":2,\"loss\":}\n{\"step\":3}\n", "m.jsonl"); },
      {"m.jsonl line 2", "invalid JSON"});
  test::expect_error([] { parse_metrics_jsonl("{\"step\":1}\n[1,2]\n", "m.jsonl"); }, {"m.jsonl line 2", "object"});
  test::expect_error([] { parse_metrics_jsonl("{\"loss\":1}\n", "m.jsonl"); }, {"m.jsonl line 1", "\"step\""});
  test::expect_error([] { parse_metrics_jsonl("{\"step\":\"ten\"}\n", "m.jsonl"); }, {"m.jsonl line 1", "\"step\""});
  test::expect_error([] { parse_metrics_jsonl("\n\n", "m.jsonl"); }, {"m.jsonl", "no records"});
  const std::string missing = (kTmp.path() / "no_such_run" / "metrics.jsonl").string();
  test::expect_error([&] { read_metrics_jsonl(missing); }, {missing, "cannot open"});
  test::expect_error([&] { plot_training_curves(missing, kTmp.path() / "x.png"); }, {missing});
  const std::string only_vb = (kTmp.path() / "vb.jsonl").string();
  test::write_file(only_vb, "{\"step\":1,\"vb\":0}\n");
  test::expect_error([&] { plot_training_curves(only_vb, kTmp.path() / "x.png"); }, {only_vb, "nothing to plot"});
}

TEST(VizMetrics, PlotTrainingCurvesFromTheTrainersLog) {
  // a log written by the trainer's own writer (redi/train/metrics_log.hpp)
  const auto jsonl = kTmp.path() / "metrics.jsonl";
  {
    train::JsonlLog out(jsonl, false);
    for (int s = 50; s <= 1000; s += 50) {
      train::JsonObject o;
      o.add("step", s).add("loss", 2.0 / s * 100).add("mse_x", 1.0 / s * 100).add("mse_z", std::nan(""));
      out.write(o);
      if (s % 250 == 0) {
        train::JsonObject e;
        e.add("step", s).add("eval", true).add("fd", 5.0 - s / 250.0);
        out.write(e);
      }
    }
  }
  const auto png = kTmp.path() / "curves.png";
  CurvesOptions o;
  o.log_y = true;
  EXPECT_EQ(plot_training_curves(jsonl, png, o), (std::vector<std::string>{"loss", "mse_x", "fd"}));
  ASSERT_TRUE(std::filesystem::exists(png));
  const Canvas c = training_curves(read_metrics_jsonl(jsonl), o);
  EXPECT_EQ(c.width(), 2 * o.panel_w);
  EXPECT_EQ(c.height(), 2 * o.panel_h);
  // the fd panel (bottom left) shows its evaluation points where the data says
  const std::vector<Panel> panels = training_panels(read_metrics_jsonl(jsonl), o);
  const ChartLayout L = layout_chart(panels[2].series, panels[2].options, {0, o.panel_h, o.panel_w, o.panel_h});
  EXPECT_TRUE(L.y.log);
  for (int s = 250; s <= 1000; s += 250)
    EXPECT_EQ(c.at(L.x.pixel_index(s), L.y.pixel_index(5.0 - s / 250.0)), palette_color(0)) << "step " << s;
#if defined(REDI_TEST_HAVE_STB)
  const data::DecodedImage im = data::decode_image_file(png.string(), 3);
  EXPECT_EQ(im.w, c.width());
  EXPECT_EQ(im.h, c.height());
  EXPECT_EQ(im.pixels, c.pixels());
#endif
}

TEST(VizSeriesFile, JsonChart) {
  const Panel p = parse_chart_json(R"({"title": "FD", "x_label": "step", "log_y": true, "width": 500,
      "series": [{"name": "ReDi", "x": [1, 2, 3], "y": [3, 2, 1], "y_err": [0.5, 0.25, 0.125]},
                 {"name": "plain", "x": [1, 3], "y": [4, 2], "y_lo": [3, 1], "y_hi": [5, 3]}]})",
                                   "fd.json");
  EXPECT_EQ(p.options.title, "FD");
  EXPECT_TRUE(p.options.log_y);
  EXPECT_EQ(p.options.width, 500);
  ASSERT_EQ(p.series.size(), 2u);
  EXPECT_EQ(p.series[0].y_lo, (std::vector<double>{2.5, 1.75, 0.875}));
  EXPECT_EQ(p.series[0].y_hi, (std::vector<double>{3.5, 2.25, 1.125}));
  EXPECT_EQ(p.series[1].y_hi, (std::vector<double>{5, 3}));
  EXPECT_NO_THROW(line_chart(p.series, p.options));

  test::expect_error([] { parse_chart_json(R"({"series": [], "titel": "x"})", "a.json"); }, {"a.json", "\"titel\""});
  test::expect_error([] { parse_chart_json(R"({"series": []})", "a.json"); }, {"a.json", "\"series\""});
  test::expect_error([] { parse_chart_json(R"({"series": [{"name": "s", "x": [1], "y": ["a"]}]})", "a.json"); },
                     {"a.json", "series[0] ('s')", "\"y\"[0]"});
  test::expect_error([] { parse_chart_json("{\"series\": [", "a.json"); }, {"a.json", "invalid JSON"});
  // null is a missing value: the chart names the series
  const Panel gap = parse_chart_json(R"({"series": [{"name": "seed 2", "x": [1, 2], "y": [1, null]}]})", "g.json");
  test::expect_error([&] { line_chart(gap.series, gap.options); }, {"seed 2", "y[1]"});
}

TEST(VizSeriesFile, CsvChart) {
  const Panel p = parse_chart_csv(
      "# judge FD\n"
      "step, ReDi, ReDi_err, plain, plain_lo, plain_hi\n"
      "250, 2.0, 0.5, 2.2, 2.0, 2.4\n"
      "500, 1.5, 0.25, , , \n"
      "750, 1.0, 0.125, 1.2, 1.1, 1.3\n",
      "fd.csv");
  EXPECT_EQ(p.options.x_label, "step");
  ASSERT_EQ(p.series.size(), 2u);
  EXPECT_EQ(p.series[0].name, "ReDi");
  EXPECT_EQ(p.series[0].x, (std::vector<double>{250, 500, 750}));
  EXPECT_EQ(p.series[0].y_lo, (std::vector<double>{1.5, 1.25, 0.875}));
  EXPECT_EQ(p.series[1].name, "plain");
  EXPECT_EQ(p.series[1].x, (std::vector<double>{250, 750}));  // the empty cell is a missing point
  EXPECT_EQ(p.series[1].y_hi, (std::vector<double>{2.4, 1.3}));
  EXPECT_NO_THROW(line_chart(p.series, p.options));

  test::expect_error([] { parse_chart_csv("x,a\n1,2\n2,zwei\n", "b.csv"); }, {"b.csv line 3", "column 'a'", "zwei"});
  test::expect_error([] { parse_chart_csv("x,a\n1,2,3\n", "b.csv"); }, {"b.csv line 2", "3 cells"});
  test::expect_error([] { parse_chart_csv("x,a\n,2\n", "b.csv"); }, {"b.csv line 2", "x cell"});
  test::expect_error([] { parse_chart_csv("# nothing\n", "b.csv"); }, {"b.csv", "no header"});
  test::expect_error([] { parse_chart_csv("x,a,a_lo\n1,2,1\n", "b.csv"); }, {"b.csv", "'a'", "_lo and _hi"});
  test::expect_error([] { read_chart_file(kTmp.path() / "chart.txt"); }, {"chart.txt", ".json or .csv"});
  test::expect_error([] { read_chart_file(kTmp.path() / "absent.csv"); }, {"absent.csv", "cannot open"});
}

TEST(VizSeriesFile, MeanAndStdOverRuns) {
  const std::vector<XY> runs = {{{0, 100, 200}, {3, 2, 1}}, {{0, 100, 200}, {5, 2, 3}}, {{0, 200}, {4, 2}}};
  const Series s = mean_band("ReDi", runs);
  EXPECT_EQ(s.x, (std::vector<double>{0, 200}));  // only the x values every run has
  EXPECT_EQ(s.y, (std::vector<double>{4, 2}));
  ASSERT_EQ(s.y_lo.size(), 2u);
  EXPECT_DOUBLE_EQ(s.y_hi[0] - s.y[0], 1.0);  // sample std of {3, 5, 4}
  EXPECT_DOUBLE_EQ(s.y[1] - s.y_lo[1], 1.0);  // of {1, 3, 2}
  const Series one = mean_band("plain", {runs[0]});
  EXPECT_EQ(one.y, runs[0].y);
  EXPECT_TRUE(one.y_lo.empty());  // one run: no band
  test::expect_error([] { mean_band("x", {{{0}, {1}}, {{1}, {1}}}); }, {"mean_band 'x'", "share no x"});
  test::expect_error([] { mean_band("x", {}); }, {"mean_band 'x'", "no runs"});
}
