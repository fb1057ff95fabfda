// Building blocks shared by the integration tests: a temp directory, a fake AgentPhone and a
// sendq pointed at it, with fast retry settings, plus waits that block on long polls.
#pragma once

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <memory>
#include <string>
#include <vector>

#include "harness.h"
#include "testutil.h"
#include "util/time_format.h"

namespace sendq::test {

// The Send Message page's own example.
inline nlohmann::json ExampleRequest(const std::string& body =
                                         "Hello! Your appointment is "
                                         "confirmed for tomorrow at 3 PM.") {
  return {{"agent_id", "agent_12345abcde"}, {"to_number", "+14155552671"}, {"body", body}};
}

// The example to recipient number `n` (0..9999): each its own conversation, so that messages
// are not held behind each other by conversation order.
inline nlohmann::json ExampleRequestTo(int n, const std::string& body = "Hello!") {
  nlohmann::json request = ExampleRequest(body);
  request["to_number"] = fmt::format("+1415555{:04}", n);
  return request;
}

// Retry settings that keep tests fast: the behaviour is the same, only the scale differs.
inline std::vector<std::string> FastRetryArgs() {
  // The lease stays at its 60s default: a dispatcher that missed a wake-up would then show
  // up as a test timing out, not just a slow one.
  return {"--backoff-base",     "20ms", "--backoff-max",   "200ms",
          "--upstream-timeout", "5s",   "--drain-timeout", "10s"};
}

// Long enough that a paused upstream is not probed again while a test runs (the probe
// interval is capped at a minute), so messages stay `queued` and never flip to `sending`.
inline std::vector<std::string> NoProbeArgs() {
  return {"--backoff-base", "10m", "--backoff-max", "10m"};
}

// An upstream URL with nothing listening.
inline std::string UnreachableUrl() {
  return "http://127.0.0.1:" + std::to_string(FreeLoopbackPort());
}

struct Scenario {
  TempDir dir;
  std::unique_ptr<FakeUpstream> upstream;
  std::unique_ptr<SendqProcess> sendq;

  // Starts the fake with `fake_flags` (the test upstream token is always expected) and sendq
  // with FastRetryArgs() plus `sendq_args`.
  explicit Scenario(std::vector<std::string> fake_flags = {},
                    std::vector<std::string> sendq_args = {}) {
    fake_flags.insert(fake_flags.begin(), {"--token", kTestUpstreamToken});
    upstream = std::make_unique<FakeUpstream>(fake_flags, dir.path());
    StartSendq(upstream->url(), std::move(sendq_args));
  }

  // sendq only, pointed at `upstream_url` (which may have nothing listening yet).
  Scenario(const std::string& upstream_url, std::vector<std::string> sendq_args) {
    StartSendq(upstream_url, std::move(sendq_args));
  }

  void StartSendq(const std::string& upstream_url, std::vector<std::string> sendq_args) {
    SendqOptions options;
    options.upstream_url = upstream_url;
    options.data_dir = dir.path();
    options.extra_args = FastRetryArgs();
    options.extra_args.insert(options.extra_args.end(), sendq_args.begin(), sendq_args.end());
    last_options = options;
    sendq = std::make_unique<SendqProcess>(options);
  }

  // A new sendq process on the same database (after the old one exited or was killed).
  void RestartSendq() {
    sendq.reset();
    sendq = std::make_unique<SendqProcess>(last_options);
  }

  SendqOptions last_options;
};

// An RFC 3339 time from a record, in milliseconds.
inline int64_t ParseTime(const nlohmann::json& t) {
  auto parsed = ParseRfc3339(t.get<std::string>());
  REQUIRE(parsed.has_value());
  return *parsed;
}

// POSTs `request` and returns the new message's id. REQUIRES a 202.
inline std::string Enqueue(SendqProcess& sendq, const nlohmann::json& request = ExampleRequest(),
                           const std::map<std::string, std::string>& headers = {}) {
  HttpResult r = sendq.Post("/v1/messages", request, headers);
  INFO("enqueue answered " << r.status << ": " << r.body);
  REQUIRE(r.status == 202);
  return r.json.at("id").get<std::string>();
}

// Long-polls until the message is final (sent, failed, canceled) or `timeout_ms` passes.
inline nlohmann::json WaitFinal(SendqProcess& sendq, const std::string& id,
                                int timeout_ms = 30'000) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    HttpResult r = sendq.Get("/v1/messages/" + id + "?wait=10s");
    REQUIRE(r.status == 200);
    const std::string status = r.json.at("status");
    if (status == "sent" || status == "failed" || status == "canceled" ||
        std::chrono::steady_clock::now() >= deadline) {
      return r.json;
    }
  }
}

// Long-polls until the message's version is above `version` (it changed) or time runs out.
inline nlohmann::json WaitChanged(SendqProcess& sendq, const std::string& id, int64_t version,
                                  int timeout_ms = 30'000) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    HttpResult r =
        sendq.Get("/v1/messages/" + id + "?wait=10s&after_version=" + std::to_string(version));
    REQUIRE(r.status == 200);
    if (r.json.at("version").get<int64_t>() > version ||
        std::chrono::steady_clock::now() >= deadline) {
      return r.json;
    }
  }
}

// Reads /metrics until it has the line `line` (true) or `timeout_ms` passes (false).
inline bool WaitMetricLine(SendqProcess& sendq, const std::string& line, int timeout_ms = 10'000) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    const std::string body = sendq.Get("/metrics").body;
    if (("\n" + body).find("\n" + line + "\n") != std::string::npos) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
  }
}

// Long-polls until the message has at least `count` finished attempts.
inline nlohmann::json WaitAttempts(SendqProcess& sendq, const std::string& id, size_t count,
                                   int timeout_ms = 30'000) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  int64_t version = 0;
  for (;;) {
    HttpResult attempts = sendq.Get("/v1/messages/" + id + "/attempts");
    REQUIRE(attempts.status == 200);
    size_t finished = 0;
    for (const auto& a : attempts.json.at("data")) {
      if (!a.at("outcome").is_null()) ++finished;
    }
    if (finished >= count || std::chrono::steady_clock::now() >= deadline) {
      return attempts.json.at("data");
    }
    version = WaitChanged(sendq, id, version, 10'000).at("version").get<int64_t>();
  }
}

}  // namespace sendq::test
