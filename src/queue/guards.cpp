#include "queue/guards.h"

#include <fmt/format.h>

#include "util/duration.h"

namespace sendq {

Result<CountPerWindow> ParseCountPerWindow(std::string_view text) {
  const size_t slash = text.find('/');
  auto invalid = [&] {
    return Status::InvalidArgument(
        fmt::format("'{}' is not COUNT/WINDOW, such as 20/h or 100/d", text));
  };
  if (slash == std::string_view::npos || slash == 0 || slash > 9) return invalid();
  int count = 0;
  for (char c : text.substr(0, slash)) {
    if (c < '0' || c > '9') return invalid();
    count = count * 10 + (c - '0');
  }
  std::string unit(text.substr(slash + 1));
  if (unit == "s" || unit == "m" || unit == "h" || unit == "d") unit = "1" + unit;
  // Days are not a duration unit elsewhere; here "100/d" reads naturally.
  DurationMs days = 0;
  if (unit.size() >= 2 && unit.back() == 'd' &&
      unit.find_first_not_of("0123456789") == unit.size() - 1 && unit.size() <= 5) {
    days = std::stoll(unit.substr(0, unit.size() - 1));
    unit = std::to_string(days * 24) + "h";
  }
  Result<DurationMs> window = ParseDuration(unit);
  if (count < 1 || !window.ok() || *window <= 0) return invalid();
  return CountPerWindow{count, *window};
}

int64_t BodyHash(std::string_view body) {
  uint64_t h = 14695981039346656037ULL;
  for (unsigned char c : body) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return static_cast<int64_t>(h);
}

}  // namespace sendq
