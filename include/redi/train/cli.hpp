// redi/train/cli.hpp — command-line parsing for training and sampling programs (redi's own
// examples use it): --name VALUE, --name=VALUE and bare --flag switches, every value checked.
// Any problem is a UsageError whose message names the flag; run_main prints it and returns
// exit status 2.
//
//   int main(int argc, char** argv) {
//     return redi::cli::run_main("my_program", [&] {
//       const redi::cli::Args a(argc, argv, {"steps", "out"}, {"help"});
//       const auto steps = a.integer("steps", 1000, 1, 1'000'000);
//       ...
//       return 0;
//     });
//   }
#pragma once
#include <charconv>
#include <cmath>
#include <cstdint>
#include <iostream>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "redi/nn/recompute.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace redi::cli {

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Args {
public:
  /// `valued`: flags that take a value; `switches`: flags that take none. Both without "--".
  Args(int argc, char** argv, std::set<std::string> valued, std::set<std::string> switches)
      : valued_(std::move(valued)), switches_(std::move(switches)) {
    for (int i = 1; i < argc; ++i) {
      std::string a = argv[i];
      if (a == "-h") a = "--help";
      if (a.rfind("--", 0) != 0 || a.size() == 2)
        throw UsageError("unexpected argument '" + a + "' (flags start with --)");
      std::string name = a.substr(2), value;
      bool has_value = false;
      if (auto eq = name.find('='); eq != std::string::npos) {
        value = name.substr(eq + 1);
        name = name.substr(0, eq);
        has_value = true;
      }
      if (switches_.count(name)) {
        if (has_value) throw UsageError("--" + name + " takes no value");
        set(name, "1");
      } else if (valued_.count(name)) {
        if (!has_value) {
          if (i + 1 >= argc) throw UsageError("--" + name + " needs a value");
          value = argv[++i];
        }
        set(name, value);
      } else {
        throw UsageError("unknown flag --" + name);
      }
    }
  }

  bool has(const std::string& name) const { return values_.count(name) != 0; }
  bool flag(const std::string& name) const { return has(name); }
  std::string str(const std::string& name, const std::string& def = "") const {
    auto it = values_.find(name);
    return it == values_.end() ? def : it->second;
  }
  /// One of `choices` (default `def`).
  std::string choice(const std::string& name, const std::string& def, const std::vector<std::string>& choices) const {
    const std::string v = str(name, def);
    for (const auto& c : choices)
      if (v == c) return v;
    std::string list;
    for (const auto& c : choices) list += (list.empty() ? "" : ", ") + c;
    throw UsageError("--" + name + ": '" + v + "' is not one of " + list);
  }
  std::int64_t integer(const std::string& name, std::int64_t def, std::int64_t lo, std::int64_t hi) const {
    if (!has(name)) return def;
    const std::string s = str(name);
    std::int64_t v = 0;
    const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
    if (r.ec != std::errc() || r.ptr != s.data() + s.size())
      throw UsageError("--" + name + ": '" + s + "' is not an integer");
    if (v < lo || v > hi)
      throw UsageError("--" + name + ": " + s + " is outside [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
    return v;
  }
  double real(const std::string& name, double def, double lo, double hi) const {
    if (!has(name)) return def;
    const std::string s = str(name);
    std::size_t used = 0;
    double v = 0;
    try {
      v = std::stod(s, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != s.size() || s.empty() || !std::isfinite(v)) throw UsageError("--" + name + ": '" + s + "' is not a number");
    if (v < lo || v > hi)
      throw UsageError("--" + name + ": " + s + " is outside [" + fmt(lo) + ", " + fmt(hi) + "]");
    return v;
  }

private:
  static std::string fmt(double v) {
    char b[32];
    std::snprintf(b, sizeof b, "%g", v);
    return b;
  }
  void set(const std::string& name, std::string v) {
    if (values_.count(name)) throw UsageError("--" + name + " given twice");
    values_[name] = std::move(v);
  }
  std::set<std::string> valued_, switches_;
  std::map<std::string, std::string> values_;
};

/// A program's main(): std::cout unbuffered (progress lines appear at once, also in a log
/// file), then body()'s exit status. A UsageError prints "<program>: <message>" and a pointer
/// to --help (status 2), any other exception "<program>: error: <message>" (status 1).
template <class Body>
int run_main(const std::string& program, Body&& body) {
  std::cout.setf(std::ios::unitbuf);
  try {
    return body();
  } catch (const UsageError& e) {
    std::cerr << program << ": " << e.what() << "\n(see " << program << " --help)\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << program << ": error: " << e.what() << "\n";
    return 1;
  }
}

/// --threads N (1..4096): the OpenMP thread count, when given and built with OpenMP.
inline void apply_threads_flag([[maybe_unused]] const Args& a) {
#if defined(_OPENMP)
  if (a.has("threads")) omp_set_num_threads(int(a.integer("threads", 1, 1, 4096)));
#endif
}

/// --recompute none|attention|mlp|block (default none): the activation recomputation policy of
/// the training passes (nn/recompute.hpp; memory only, the same results).
inline Recompute recompute_flag(const Args& a) {
  return parse_recompute(a.choice("recompute", "none", {"none", "attention", "mlp", "block"}));
}

}  // namespace redi::cli
