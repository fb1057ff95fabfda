// Durations on the command line: "250ms", "30s", "5m", "24h", "30d", or sums such as "1h30m".
#pragma once

#include <string>

#include "util/clock.h"
#include "util/status.h"

namespace sendq {

Result<DurationMs> ParseDuration(const std::string& text);
// A duration, or a bare number of seconds ("30"), as a query's ?wait= takes it.
Result<DurationMs> ParseDurationOrSeconds(const std::string& text);

// The shortest exact spelling: 1500 -> "1500ms", 60000 -> "1m".
std::string FormatDuration(DurationMs ms);

}  // namespace sendq
