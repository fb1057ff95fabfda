#include "util/duration.h"

#include <fmt/format.h>

#include <cctype>
#include <limits>

namespace sendq {

Result<DurationMs> ParseDuration(const std::string& text) {
  auto bad = [&](const std::string& why) {
    return Status::InvalidArgument(fmt::format(
        "bad duration '{}': {} (use a number with ms, s, m, h or d, e.g. 30s)", text, why));
  };
  if (text.empty()) return bad("empty");
  DurationMs total = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    if (!std::isdigit(static_cast<unsigned char>(text[pos]))) return bad("expected a number");
    int64_t number = 0;
    while (pos < text.size() && std::isdigit(static_cast<unsigned char>(text[pos]))) {
      if (number > std::numeric_limits<int64_t>::max() / 10 - 10) return bad("too large");
      number = number * 10 + (text[pos] - '0');
      ++pos;
    }
    size_t unit_start = pos;
    while (pos < text.size() && std::isalpha(static_cast<unsigned char>(text[pos]))) ++pos;
    std::string unit = text.substr(unit_start, pos - unit_start);
    int64_t scale;
    if (unit == "ms") {
      scale = 1;
    } else if (unit == "s") {
      scale = 1000;
    } else if (unit == "m") {
      scale = 60'000;
    } else if (unit == "h") {
      scale = 3'600'000;
    } else if (unit == "d") {
      scale = 86'400'000;
    } else if (unit.empty()) {
      return bad("missing unit");
    } else {
      return bad("unknown unit '" + unit + "'");
    }
    if (number > (std::numeric_limits<int64_t>::max() - total) / scale) return bad("too large");
    total += number * scale;
  }
  return total;
}

Result<DurationMs> ParseDurationOrSeconds(const std::string& text) {
  if (!text.empty() && text.size() <= 9 &&
      text.find_first_not_of("0123456789") == std::string::npos) {
    return std::stoll(text) * 1000;
  }
  return ParseDuration(text);
}

std::string FormatDuration(DurationMs ms) {
  if (ms != 0 && ms % 3'600'000 == 0) return fmt::format("{}h", ms / 3'600'000);
  if (ms != 0 && ms % 60'000 == 0) return fmt::format("{}m", ms / 60'000);
  if (ms != 0 && ms % 1000 == 0) return fmt::format("{}s", ms / 1000);
  return fmt::format("{}ms", ms);
}

}  // namespace sendq
