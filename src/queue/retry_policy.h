// What an upstream answer means for a message: classification, backoff, Retry-After, and
// AgentPhone's error message.
//
// Thread-safety: pure functions.
#pragma once

#include <optional>
#include <string>

#include "util/clock.h"

namespace sendq {

// What the transport saw. Filled by the upstream client.
struct UpstreamResponse {
  enum class Transport {
    kResponded,   // an HTTP response arrived (any status)
    kNotSent,     // connection refused / DNS / connect timeout: the request never left
    kNoResponse,  // the request was (maybe) sent, then a timeout or reset: outcome unknown
  };
  Transport transport = Transport::kResponded;
  int http_status = 0;
  std::string body;
  std::optional<std::string> retry_after;  // the raw Retry-After header, if any
  std::string transport_error;             // e.g. "connection refused", for the ledger
};

enum class OutcomeClass {
  kSent,            // 2xx
  kRetryable,       // 408, 429, 500, 502, 503, 504
  kPermanent,       // any other status (400, 404, 409, 422, ...)
  kUnknown,         // sent, but no response
  kUpstreamPaused,  // 401, 402, 403: the account, not the message
  kUnreachable,     // never sent
};

OutcomeClass Classify(const UpstreamResponse& response);

struct BackoffPolicy {
  DurationMs base = 1000;
  DurationMs max = 300'000;
};

// Exponential backoff with full jitter for retry number `retry` (1 for the first retry):
// uniform in [base, min(max, base * 2^(retry-1))]. `unit_random` is uniform in [0, 1).
DurationMs ComputeBackoff(const BackoffPolicy& policy, int retry, double unit_random);

// Retry-After in either form: delta-seconds or an HTTP-date (relative to `now`). A date in
// the past is 0. Anything unparseable is nullopt.
std::optional<DurationMs> ParseRetryAfter(const std::string& value, TimeMs now);

// AgentPhone's error message from any of its error shapes: {"detail": "..."},
// {"detail": [{"loc","msg"}...]}, {"error": {"message": ...}}; else a short prefix of the body.
std::string ParseUpstreamErrorMessage(int http_status, const std::string& body);

}  // namespace sendq
