// The upstream: an interface, and its AgentPhone HTTP implementation.
//
// Thread-safety: one UpstreamClient is used by one thread at a time (each worker owns one,
// so keep-alive connections are not shared). The factory may be called from any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "queue/retry_policy.h"
#include "util/clock.h"

namespace httplib {
enum class Error;  // defined by <httplib.h>, which this header leaves to the .cpp
}  // namespace httplib

namespace sendq::delivery {

class UpstreamClient {
 public:
  virtual ~UpstreamClient() = default;
  // POSTs `request_json` as a Send Message request with `Idempotency-Key: idempotency_key`.
  // Never throws; every failure is described in the returned UpstreamResponse.
  virtual UpstreamResponse Send(const std::string& idempotency_key,
                                const std::string& request_json) = 0;
  // POSTs `body` as a Send Reaction request for AgentPhone's message `message_id`.
  virtual UpstreamResponse SendReaction(const std::string& idempotency_key,
                                        const std::string& message_id, const std::string& body);
  // GETs `path_and_query` (e.g. "/v1/numbers?limit=200"), for looking up what was sent.
  // Only called when CanLookUp().
  virtual UpstreamResponse Get(const std::string& path_and_query);
  // Whether this upstream lists what it accepted (AgentPhone does), so that a send whose
  // outcome is unknown can be looked up.
  virtual bool CanLookUp() const { return false; }
};

using UpstreamClientFactory = std::function<std::unique_ptr<UpstreamClient>()>;

struct AgentPhoneOptions {
  std::string base_url;  // e.g. https://api.agentphone.ai (a path prefix would be kept)
  std::string token;     // the AgentPhone key; sent only in the Authorization header
  DurationMs timeout = 30'000;
};

// The client's UpstreamResponse never holds the key: the body and the transport error pass
// through RedactSecrets (util/redact.h) with it, so an error page that echoes the request's
// Authorization header reaches neither logs, the database nor API responses. The body is read
// with a cap (see CappedResponseBody).
UpstreamClientFactory AgentPhoneClientFactory(AgentPhoneOptions options);

// How much of an answer's body is kept. AgentPhone's answers are far smaller; a longer body
// (an error page, a misbehaving proxy) is cut, and a cut 2xx body is then simply unreadable.
inline constexpr size_t kMaxUpstreamBodyBytes = 64 * 1024;
// How much of a body is read at most, the kept part included. Beyond it the client stops
// reading and closes the connection, and the answer counts with what it has (its status and
// headers arrived before the body).
inline constexpr uint64_t kMaxUpstreamBodyReadBytes = 1024 * 1024;

// The body text kept of an answer, with `secrets` redacted. `received` is the start of the
// body as read (the whole body, or at least its first `cap` bytes), `total_bytes` its length,
// and `complete` false when reading stopped early (total_bytes then is how much was read).
// A body longer than `cap` is cut to at most `cap` bytes (never inside a UTF-8 sequence, and
// without a trailing beginning of a secret), followed by "…[truncated: N bytes total]", or
// "…[truncated: more than N bytes]" when reading stopped early.
std::string CappedResponseBody(std::string_view received, uint64_t total_bytes, bool complete,
                               size_t cap, const std::vector<std::string>& secrets);

// Human text for a request that got no answer, e.g. "connection refused or host unreachable",
// "name not resolved: api.example.com (Name or service not known)", "TLS handshake failed",
// "timed out waiting for the answer". `host` is the upstream's host; `resolve_error` says why
// it does not resolve (empty if it does, or was not checked); `timed_out` whether the request
// ran into its timeout (which tells a read timeout from a reset).
std::string DescribeTransportError(httplib::Error error, const std::string& host,
                                   const std::string& resolve_error, bool timed_out);

}  // namespace sendq::delivery
