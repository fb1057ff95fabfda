// Crash safety and graceful stop, with real signals sent to a real sendq process.
#include <doctest/doctest.h>
#include <signal.h>

#include <map>
#include <set>

#include "scenario.h"

namespace sendq::test {
namespace {

bool HasUnknownAttempt(SendqProcess& sendq, const std::string& id) {
  HttpResult ledger = sendq.Get("/v1/messages/" + id + "/attempts");
  for (const auto& a : ledger.json.at("data")) {
    if (a.at("outcome") == "unknown") return true;
  }
  return false;
}

TEST_CASE("crash: after SIGKILL with a backlog, every acknowledged message is delivered") {
  // Slow upstream and few workers: when the kill comes, some sends are in flight, some are
  // queued, and some producers are mid-request.
  Scenario s(std::vector<std::string>{"--latency-ms", "150"}, {"--workers", "4"});
  std::vector<std::string> acknowledged;
  for (int i = 0; i < 40; ++i) {
    acknowledged.push_back(Enqueue(*s.sendq, ExampleRequest("crash test " + std::to_string(i))));
  }
  // Wait until sends are in flight at the upstream, then kill without warning.
  s.upstream->Received(4, 10'000);
  CHECK(s.sendq->process().Kill() == 128 + SIGKILL);

  s.RestartSendq();
  int sent = 0;
  for (const std::string& id : acknowledged) {
    nlohmann::json record = WaitFinal(*s.sendq, id, 60'000);
    INFO("message " << id << ": " << record.dump());
    CHECK(record.at("status") == "sent");
    if (record.at("status") == "sent") ++sent;
  }
  CHECK(sent == static_cast<int>(acknowledged.size()));

  // Exactly once at the upstream, except where the ledger admits the outcome was unknown
  // (the kill came while the request was in flight).
  std::map<std::string, int> accepted;
  const nlohmann::json upstream_sends = s.upstream->Sent();
  for (const auto& send : upstream_sends.at("sends")) {
    ++accepted[send.at("idempotency_key").get<std::string>()];
  }
  int unknown = 0;
  for (const std::string& id : acknowledged) {
    INFO("message " << id);
    CHECK(accepted[id] >= 1);
    if (HasUnknownAttempt(*s.sendq, id)) {
      ++unknown;
    } else {
      CHECK(accepted[id] == 1);
    }
  }
  MESSAGE("messages with an unknown attempt (possibly sent twice): " << unknown);
  // Nothing is left mid-flight.
  HttpResult sending = s.sendq->Get("/v1/messages?status=sending");
  CHECK(sending.json.at("data").empty());
}

TEST_CASE("crash: SIGKILL while producers are enqueuing loses no acknowledged message") {
  Scenario s;
  s.upstream->SetConfig({{"force_status", 503}});  // keep everything queued
  std::vector<std::string> acknowledged;
  std::mutex mu;
  std::atomic<bool> killed{false};
  std::vector<std::thread> producers;
  for (int p = 0; p < 4; ++p) {
    producers.emplace_back([&, p] {
      for (int i = 0; i < 200 && !killed; ++i) {
        HttpResult r = s.sendq->Post(
            "/v1/messages", ExampleRequest("p" + std::to_string(p) + "-" + std::to_string(i)), {},
            5000);
        if (r.status == 202) {
          std::lock_guard<std::mutex> guard(mu);
          acknowledged.push_back(r.json.at("id"));
        }
      }
    });
  }
  // Kill once some work has been acknowledged; the producers are still sending.
  s.sendq->process().WaitForLine(Stream::kStderr, "message_enqueued", 10'000, 30);
  s.sendq->process().Kill();
  killed = true;
  for (auto& t : producers) t.join();
  REQUIRE_FALSE(acknowledged.empty());

  s.upstream->SetConfig({{"force_status", 0}});
  s.RestartSendq();
  for (const std::string& id : acknowledged) {
    HttpResult r = s.sendq->Get("/v1/messages/" + id);
    INFO("acknowledged message " << id << " after restart: " << r.status);
    REQUIRE(r.status == 200);
  }
  for (const std::string& id : acknowledged) CHECK(WaitFinal(*s.sendq, id).at("status") == "sent");
}

TEST_CASE("crash: graceful SIGTERM stops intake, finishes the in-flight send and exits 0") {
  Scenario s({"--latency-ms", "1000"});
  std::string id = Enqueue(*s.sendq);
  s.upstream->Received(1, 10'000);  // the send is now in flight
  s.sendq->process().Signal(SIGTERM);
  REQUIRE(s.sendq->process().WaitForLine(Stream::kStderr, "shutdown_started", 10'000));

  HttpResult refused = s.sendq->Post("/v1/messages", ExampleRequest());
  CHECK(refused.status == 503);
  CHECK(refused.json.at("code") == "shutting_down");

  auto exit_status = s.sendq->process().Wait(30'000);
  REQUIRE(exit_status.has_value());
  CHECK(*exit_status == 0);
  CHECK(s.sendq->process().WaitForLine(Stream::kStderr, "attempt_finished", 0));

  // The in-flight send was recorded before exit: after a restart it is sent, once.
  s.RestartSendq();
  nlohmann::json record = s.sendq->Get("/v1/messages/" + id).json;
  CHECK(record.at("status") == "sent");
  CHECK(record.at("attempts") == 1);
  CHECK(s.upstream->Sent().at("count") == 1);
}

}  // namespace
}  // namespace sendq::test
