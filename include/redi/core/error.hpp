// redi/core/error.hpp — the one exception type redi throws, and the check macro.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace redi {

/// Every error redi reports is a redi::Error whose message names the thing
/// (file, tensor, flag, CUDA call) and the problem.
class Error : public std::runtime_error {
public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

namespace detail {
template <class... Args>
[[noreturn]] inline void fail(const char* file, int line, Args&&... args) {
  std::ostringstream os;
  (os << ... << args);
  os << " [" << file << ":" << line << "]";
  throw Error(os.str());
}
}  // namespace detail

}  // namespace redi

/// REDI_CHECK(cond, "message parts", value, ...) throws redi::Error when cond is false.
#define REDI_CHECK(cond, ...)                                                 \
  do {                                                                        \
    if (!(cond)) ::redi::detail::fail(__FILE__, __LINE__, __VA_ARGS__);       \
  } while (0)

#define REDI_FAIL(...) ::redi::detail::fail(__FILE__, __LINE__, __VA_ARGS__)
