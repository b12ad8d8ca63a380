// redi/viz/series_file.hpp — chart data from a file, so scripts can make plots (redi_plot).
//
// JSON (.json): one object
//   {"title": "...", "x_label": "...", "y_label": "...", "log_y": false, "width": 720, "height": 450,
//    "series": [{"name": "ReDi", "x": [...], "y": [...], "y_lo": [...], "y_hi": [...]},
//               {"name": "plain", "x": [...], "y": [...], "y_err": [...]}]}
// Only "series" is required; "y_err" (symmetric) is an alternative to "y_lo"/"y_hi". A null in an
// array is a missing value (NaN), which the chart rejects naming the series. Unknown keys are
// errors (they are usually typos).
// CSV (.csv): a header line, then rows of numbers separated by commas. The first column is x;
// every other column is a series named by its header, except columns named <s>_lo, <s>_hi or
// <s>_err for an existing series <s>, which give its band. An empty cell is a missing point of
// that column's series. Lines starting with '#' and blank lines are skipped. x_label is the
// first header.
// Errors are redi::Error naming the file, and the line/column or key.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "redi/core/error.hpp"
#include "redi/io/json.hpp"
#include "redi/viz/chart.hpp"

namespace redi::viz {

namespace detail {
inline std::vector<double> json_numbers(const json::Value* v, const std::string& what) {
  std::vector<double> out;
  if (!v) return out;
  REDI_CHECK(v->is_array(), what, " must be an array of numbers, got ", v->kind_name());
  for (std::size_t i = 0; i < v->array().size(); ++i) {
    const json::Value& e = v->array()[i];
    REDI_CHECK(e.is_number() || e.is_null(), what, "[", i, "] must be a number or null, got ", e.kind_name());
    out.push_back(e.is_null() ? std::nan("") : e.as_double());
  }
  return out;
}
inline void check_keys(const json::Value& o, std::initializer_list<const char*> allowed, const std::string& what) {
  for (const auto& kv : o.object())
    REDI_CHECK(
        std::find_if(allowed.begin(), allowed.end(), [&](const char* a) { return kv.first == a; }) != allowed.end(),
        what, ": unknown key \"", kv.first, "\"");
}
}  // namespace detail

/// A chart from the JSON text above; `source` names it in errors.
inline Panel parse_chart_json(std::string_view text, const std::string& source) {
  const json::Value doc = json::parse(text, source);
  REDI_CHECK(doc.is_object(), source, ": the chart must be a JSON object, got ", doc.kind_name());
  detail::check_keys(doc, {"title", "x_label", "y_label", "log_y", "width", "height", "series"}, source);
  Panel p;
  auto str = [&](const char* k, std::string& out) {
    if (const json::Value* v = doc.find(k)) {
      REDI_CHECK(v->is_string(), source, ": \"", k, "\" must be a string");
      out = v->str();
    }
  };
  str("title", p.options.title), str("x_label", p.options.x_label), str("y_label", p.options.y_label);
  if (const json::Value* v = doc.find("log_y")) {
    REDI_CHECK(v->is_bool(), source, ": \"log_y\" must be true or false");
    p.options.log_y = v->as_bool();
  }
  for (const char* k : {"width", "height"})
    if (const json::Value* v = doc.find(k)) {
      std::int64_t n = 0;
      REDI_CHECK(v->int64(n) && n >= 64 && n <= 8192, source, ": \"", k, "\" must be an integer in [64, 8192]");
      (k[0] == 'w' ? p.options.width : p.options.height) = int(n);
    }
  const json::Value* ss = doc.find("series");
  REDI_CHECK(ss && ss->is_array() && !ss->array().empty(), source, ": \"series\" must be a non-empty array");
  for (std::size_t i = 0; i < ss->array().size(); ++i) {
    const json::Value& e = ss->array()[i];
    std::string what = source + ": series[" + std::to_string(i) + "]";
    REDI_CHECK(e.is_object(), what, " must be an object");
    detail::check_keys(e, {"name", "x", "y", "y_lo", "y_hi", "y_err"}, what);
    Series s;
    if (const json::Value* n = e.find("name")) {
      REDI_CHECK(n->is_string(), what, ": \"name\" must be a string");
      s.name = n->str();
      what += " ('" + s.name + "')";
    }
    REDI_CHECK(e.find("x") && e.find("y"), what, ": needs \"x\" and \"y\"");
    s.x = detail::json_numbers(e.find("x"), what + " \"x\"");
    s.y = detail::json_numbers(e.find("y"), what + " \"y\"");
    s.y_lo = detail::json_numbers(e.find("y_lo"), what + " \"y_lo\"");
    s.y_hi = detail::json_numbers(e.find("y_hi"), what + " \"y_hi\"");
    if (const json::Value* err = e.find("y_err")) {
      REDI_CHECK(s.y_lo.empty() && s.y_hi.empty(), what, ": \"y_err\" and \"y_lo\"/\"y_hi\" exclude each other");
      const std::vector<double> d = detail::json_numbers(err, what + " \"y_err\"");
      REDI_CHECK(d.size() == s.y.size(), what, ": ", d.size(), " y_err values for ", s.y.size(), " y values");
      for (std::size_t k = 0; k < d.size(); ++k) s.y_lo.push_back(s.y[k] - d[k]), s.y_hi.push_back(s.y[k] + d[k]);
    }
    p.series.push_back(std::move(s));
  }
  return p;
}

/// A chart from the CSV text above; `source` names it in errors.
inline Panel parse_chart_csv(std::string_view text, const std::string& source) {
  auto split = [](std::string_view line) {
    std::vector<std::string> cells;
    std::size_t a = 0;
    for (;;) {
      const std::size_t b = line.find(',', a);
      std::string c(line.substr(a, b == std::string_view::npos ? std::string_view::npos : b - a));
      c.erase(0, c.find_first_not_of(" \t\r"));
      c.erase(c.find_last_not_of(" \t\r") + 1);
      cells.push_back(c);
      if (b == std::string_view::npos) return cells;
      a = b + 1;
    }
  };
  std::vector<std::string> header;
  std::vector<std::vector<double>> cols;  // NaN marks an empty cell
  std::size_t pos = 0, line_no = 0;
  while (pos <= text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view line = text.substr(pos, end - pos);
    pos = end + 1, ++line_no;
    const std::size_t first = line.find_first_not_of(" \t\r");
    if (first == std::string_view::npos || line[first] == '#') continue;
    std::vector<std::string> cells = split(line);
    const std::string where = source + " line " + std::to_string(line_no);
    if (header.empty()) {
      REDI_CHECK(cells.size() >= 2, where, ": the header needs an x column and at least one series column");
      for (const auto& h : cells) REDI_CHECK(!h.empty(), where, ": empty column name in the header");
      header = cells;
      cols.resize(header.size());
      continue;
    }
    REDI_CHECK(cells.size() == header.size(), where, ": ", cells.size(), " cells, the header has ", header.size());
    for (std::size_t k = 0; k < cells.size(); ++k) {
      if (cells[k].empty()) {
        REDI_CHECK(k != 0, where, ": the x cell is empty");
        cols[k].push_back(std::nan(""));
        continue;
      }
      char* e = nullptr;
      const double v = std::strtod(cells[k].c_str(), &e);
      REDI_CHECK(e == cells[k].c_str() + cells[k].size() && std::isfinite(v), where, ", column '", header[k], "': '",
                 cells[k], "' is not a finite number");
      cols[k].push_back(v);
    }
  }
  REDI_CHECK(!header.empty(), source, ": no header line (an empty CSV)");
  Panel p;
  p.options.x_label = header[0];
  auto column = [&](const std::string& name) -> int {
    for (std::size_t k = 1; k < header.size(); ++k)
      if (header[k] == name) return int(k);
    return -1;
  };
  auto band_of = [&](const std::string& h) -> int {  // the series column a band column belongs to
    for (const char* suf : {"_lo", "_hi", "_err"}) {
      const std::string s(suf);
      if (h.size() > s.size() && h.compare(h.size() - s.size(), s.size(), s) == 0)
        if (int k = column(h.substr(0, h.size() - s.size())); k > 0) return k;
    }
    return -1;
  };
  for (std::size_t k = 1; k < header.size(); ++k) {
    if (band_of(header[k]) > 0) continue;
    const int lo = column(header[k] + "_lo"), hi = column(header[k] + "_hi"), err = column(header[k] + "_err");
    REDI_CHECK((lo > 0) == (hi > 0), source, ": series '", header[k], "' has only one of _lo and _hi");
    REDI_CHECK(!(err > 0 && lo > 0), source, ": series '", header[k], "' has both _err and _lo/_hi columns");
    Series s;
    s.name = header[k];
    for (std::size_t r = 0; r < cols[0].size(); ++r) {
      const double y = cols[k][r];
      if (std::isnan(y)) continue;
      s.x.push_back(cols[0][r]), s.y.push_back(y);
      if (lo > 0) s.y_lo.push_back(cols[std::size_t(lo)][r]), s.y_hi.push_back(cols[std::size_t(hi)][r]);
      if (err > 0) s.y_lo.push_back(y - cols[std::size_t(err)][r]), s.y_hi.push_back(y + cols[std::size_t(err)][r]);
    }
    p.series.push_back(std::move(s));
  }
  return p;
}

/// A chart from a .json or .csv file (by extension, case-sensitive).
inline Panel read_chart_file(const std::filesystem::path& path) {
  const std::string ext = path.extension().string();
  REDI_CHECK(ext == ".json" || ext == ".csv", path.string(), ": unknown chart file type '", ext,
             "' (expected .json or .csv)");
  std::ifstream f(path, std::ios::binary);
  REDI_CHECK(f.good(), path.string(), ": cannot open the chart file");
  std::ostringstream ss;
  ss << f.rdbuf();
  return ext == ".json" ? parse_chart_json(ss.str(), path.string()) : parse_chart_csv(ss.str(), path.string());
}

}  // namespace redi::viz
