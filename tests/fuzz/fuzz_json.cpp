// Fuzz target: redi::json::parse (safetensors headers, run configurations, metrics lines).
#include "fuzz_common.hpp"
#include "redi/io/json.hpp"

static void run(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const redi::json::Value v = redi::json::parse(text, "fuzz.json");
  if (v.is_object())
    for (const auto& [k, m] : v.object()) {
      std::int64_t i = 0;
      (void)m.int64(i);
      (void)redi::json::quote(k);
    }
}
REDI_FUZZ_TARGET(run)
