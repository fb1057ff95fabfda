// The upstream: an interface, and its AgentPhone HTTP implementation.
//
// Thread-safety: one UpstreamClient is used by one thread at a time (each worker owns one,
// so keep-alive connections are not shared). The factory may be called from any thread.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "queue/retry_policy.h"
#include "util/clock.h"

namespace sendq::delivery {

class UpstreamClient {
 public:
  virtual ~UpstreamClient() = default;
  // POSTs `request_json` as a Send Message request with `Idempotency-Key: idempotency_key`.
  // Never throws; every failure is described in the returned UpstreamResponse.
  virtual UpstreamResponse Send(const std::string& idempotency_key,
                                const std::string& request_json) = 0;
};

using UpstreamClientFactory = std::function<std::unique_ptr<UpstreamClient>()>;

struct AgentPhoneOptions {
  std::string base_url;  // e.g. https://api.agentphone.ai, optionally with a path prefix
  std::string token;     // the AgentPhone key; sent only in the Authorization header
  DurationMs timeout = 30'000;
};

UpstreamClientFactory AgentPhoneClientFactory(AgentPhoneOptions options);

}  // namespace sendq::delivery
