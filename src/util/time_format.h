// Time formatting and parsing at the edges: RFC 3339 for the API, HTTP-date for Retry-After.
#pragma once

#include <optional>
#include <string>

#include "util/clock.h"

namespace sendq {

// "2026-11-27T02:43:17.123Z".
std::string FormatRfc3339(TimeMs t);

// Accepts "YYYY-MM-DDTHH:MM:SS[.fff…](Z|±HH:MM)" (a space may stand for the T).
std::optional<TimeMs> ParseRfc3339(const std::string& s);

// Accepts the three HTTP-date forms (RFC 9110 §5.6.7): IMF-fixdate, RFC 850 and asctime.
std::optional<TimeMs> ParseHttpDate(const std::string& s);

}  // namespace sendq
