// Runaway guards: an agent in a loop must not flood one person's phone. Per producer and
// recipient, a cap on messages in a window (--recipient-cap, e.g. 20/h) and a cap on the same
// body in a window (--duplicate-cap, --duplicate-window, e.g. 3 in 10m). A message over either
// is stored `held`, with its reason, instead of being sent; a person releases or cancels it.
// Both are off unless configured. Idempotent replays are not new messages and never count.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "util/clock.h"
#include "util/status.h"

namespace sendq {

struct RunawayGuards {
  int recipient_cap = 0;  // messages per recipient_window; 0: off
  DurationMs recipient_window = 0;
  int duplicate_cap = 0;  // the same body per duplicate_window; 0: off
  DurationMs duplicate_window = 0;

  bool enabled() const { return recipient_cap > 0 || duplicate_cap > 0; }
};

// The status_reason of a message each guard held.
inline constexpr const char* kRecipientCapReason = "recipient_cap";
inline constexpr const char* kDuplicateBodyReason = "duplicate_body";

// "20/h": 20 in an hour. The unit is s, m, h or d, or a duration ("20/30m").
struct CountPerWindow {
  int count = 0;
  DurationMs window = 0;
};
Result<CountPerWindow> ParseCountPerWindow(std::string_view text);

// A stable 64-bit hash of a message body (FNV-1a), to count repeats of one body. Stored: never
// change it.
int64_t BodyHash(std::string_view body);

}  // namespace sendq
