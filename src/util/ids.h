// Message ids: "sq_" followed by 26 characters of Crockford base32 (a ULID): 48 bits of
// milliseconds then 80 random bits. Ids sort by creation time as plain strings, which the
// list endpoint and its cursors rely on.
//
// Thread-safety: IdGenerator::Next may be called from any thread.
#pragma once

#include <cstdint>
#include <mutex>
#include <random>
#include <string>

#include "util/clock.h"
#include "util/thread_annotations.h"

namespace sendq {

inline constexpr char kMessageIdPrefix[] = "sq_";

class IdGenerator {
 public:
  explicit IdGenerator(const Clock* clock);
  // Strictly increasing within this process, even within one millisecond.
  std::string Next();

 private:
  const Clock* const clock_;
  Mutex mu_;
  TimeMs last_ms_ GUARDED_BY(mu_) = 0;
  uint64_t last_random_hi_ GUARDED_BY(mu_) = 0;  // top 16 of the 80 random bits
  uint64_t last_random_lo_ GUARDED_BY(mu_) = 0;  // low 64 of the 80 random bits
  std::mt19937_64 rng_ GUARDED_BY(mu_);
};

// True when `id` has the shape of a message id (prefix, length, alphabet).
bool IsMessageId(const std::string& id);

// The creation time encoded in a message id. REQUIRES: IsMessageId(id).
TimeMs MessageIdTime(const std::string& id);

// The smallest id that any message created at or after `t` can have.
std::string MinMessageIdAt(TimeMs t);

}  // namespace sendq
