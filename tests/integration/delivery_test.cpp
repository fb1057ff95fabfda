// Delivery end to end: sendq and the fake AgentPhone as real processes on loopback.
#include <doctest/doctest.h>

#include "scenario.h"

namespace sendq::test {
namespace {

std::vector<nlohmann::json> SendsFor(FakeUpstream& upstream, const std::string& id,
                                     const char* list = "sent") {
  nlohmann::json all = std::string(list) == "sent" ? upstream.Sent() : upstream.Received();
  std::vector<nlohmann::json> out;
  for (const auto& s : all.at("sends")) {
    if (s.at("idempotency_key") == id) out.push_back(s);
  }
  return out;
}

// A paused upstream does not make sendq unready: it keeps accepting and buffering work. Only
// ?upstream=required says 503.
void CheckReadyWhilePaused(int port) {
  HttpResult ready = Request("GET", "127.0.0.1", port, "/readyz");
  CHECK(ready.status == 200);
  CHECK(ready.json.at("ready") == true);
  CHECK(ready.json.at("upstream") == "paused");
  CHECK(ready.json.at("reason") == "upstream_paused");
  HttpResult required = Request("GET", "127.0.0.1", port, "/readyz?upstream=required");
  CHECK(required.status == 503);
  CHECK(required.json.at("ready") == false);
  CHECK(required.json.at("reason") == "upstream_paused");
}

TEST_CASE("delivery: happy path records sent and AgentPhone's msg_ id") {
  Scenario s;
  nlohmann::json request = ExampleRequest();
  request["future_field"] = {{"kept", true}};  // unknown fields travel upstream unchanged
  std::string id = Enqueue(*s.sendq, request);
  nlohmann::json record = WaitFinal(*s.sendq, id);
  CHECK(record.at("status") == "sent");
  const std::string provider_id = record.at("provider_message_id");
  CHECK(provider_id.rfind("msg_", 0) == 0);
  CHECK(record.at("channel") == "sms");
  CHECK(record.at("from_number").is_string());
  CHECK(record.at("attempts") == 1);
  CHECK(record.at("sent_at").is_string());

  auto sends = SendsFor(*s.upstream, id);
  REQUIRE(sends.size() == 1);
  CHECK(sends[0].at("id") == provider_id);
  CHECK(sends[0].at("body").at("body") == request.at("body"));
  CHECK(sends[0].at("body").at("future_field") == request.at("future_field"));

  HttpResult ledger = s.sendq->Get("/v1/messages/" + id + "/attempts");
  REQUIRE(ledger.status == 200);
  REQUIRE(ledger.json.at("data").size() == 1);
  CHECK(ledger.json["data"][0].at("outcome") == "sent");
  CHECK(ledger.json["data"][0].at("http_status") == 200);

  // "As which provider message?" can be asked the other way round too.
  HttpResult by_provider = s.sendq->Get("/v1/messages?provider_message_id=" + provider_id);
  REQUIRE(by_provider.status == 200);
  REQUIRE(by_provider.json.at("data").size() == 1);
  CHECK(by_provider.json["data"][0].at("id") == id);
}

TEST_CASE("delivery: a 2xx with an unreadable body is sent, kept raw, and never re-sent") {
  Scenario s;
  const std::string garbled = "<html>accepted, but not JSON</html>";
  s.upstream->SetConfig({{"force_status", 200}, {"force_body", garbled}});
  std::string id = Enqueue(*s.sendq);
  nlohmann::json record = WaitFinal(*s.sendq, id);
  CHECK(record.at("status") == "sent");
  CHECK(record.at("provider_message_id").is_null());
  CHECK(record.at("last_error").get<std::string>().find("could not be read") != std::string::npos);
  HttpResult ledger = s.sendq->Get("/v1/messages/" + id + "/attempts");
  REQUIRE(ledger.json.at("data").size() == 1);
  CHECK(ledger.json["data"][0].at("outcome") == "sent");
  CHECK(ledger.json["data"][0].at("response_body") == garbled);
  CHECK(SendsFor(*s.upstream, id, "received").size() == 1);
}

TEST_CASE("delivery: 503 twice, then success: three attempts under one Idempotency-Key") {
  Scenario s({"--fail-first", "2"});
  std::string id = Enqueue(*s.sendq);
  nlohmann::json record = WaitFinal(*s.sendq, id);
  CHECK(record.at("status") == "sent");
  CHECK(record.at("attempts") == 3);
  HttpResult ledger = s.sendq->Get("/v1/messages/" + id + "/attempts");
  const auto& data = ledger.json.at("data");
  REQUIRE(data.size() == 3);
  CHECK(data[0].at("outcome") == "retryable");
  CHECK(data[0].at("http_status") == 503);
  CHECK(data[0].at("charged") == true);
  CHECK(data[1].at("outcome") == "retryable");
  CHECK(data[2].at("outcome") == "sent");
  // Every attempt carried the same key: the sendq id.
  auto received = SendsFor(*s.upstream, id, "received");
  CHECK(received.size() == 3);
  CHECK(SendsFor(*s.upstream, id).size() == 1);
}

TEST_CASE("delivery: a 429's Retry-After is honoured") {
  Scenario s;
  s.upstream->SetConfig({{"force_status", 429}, {"force_retry_after", "1"}});
  std::string id = Enqueue(*s.sendq);
  nlohmann::json first = WaitAttempts(*s.sendq, id, 1);
  REQUIRE(first.size() >= 1);
  CHECK(first[0].at("http_status") == 429);
  s.upstream->SetConfig({{"force_status", 0}});
  nlohmann::json record = WaitFinal(*s.sendq, id);
  CHECK(record.at("status") == "sent");
  HttpResult ledger = s.sendq->Get("/v1/messages/" + id + "/attempts");
  const auto& data = ledger.json.at("data");
  REQUIRE(data.size() == 2);
  // The backoff alone would be 20ms; Retry-After: 1 holds the retry back a whole second.
  auto finished = ParseTime(data[0].at("finished_at"));
  auto retried = ParseTime(data[1].at("started_at"));
  CHECK(retried - finished >= 1000);
}

TEST_CASE("delivery: a permanent 422 fails at once, with AgentPhone's message, and no retry") {
  Scenario s({"--reject-rate", "1"});
  std::string id = Enqueue(*s.sendq);
  nlohmann::json record = WaitFinal(*s.sendq, id);
  CHECK(record.at("status") == "failed");
  CHECK(record.at("attempts") == 1);
  REQUIRE(record.at("last_error").is_string());
  CHECK(record.at("last_error").get<std::string>().find("rejected by AgentPhone") !=
        std::string::npos);
  HttpResult ledger = s.sendq->Get("/v1/messages/" + id + "/attempts");
  REQUIRE(ledger.json.at("data").size() == 1);
  CHECK(ledger.json["data"][0].at("outcome") == "permanent");
  CHECK(ledger.json["data"][0].at("http_status") == 422);
  CHECK(SendsFor(*s.upstream, id, "received").size() == 1);
}

TEST_CASE("delivery: upstream down, messages stay queued uncharged, then all are sent") {
  const int port = FreeLoopbackPort();
  const std::string url = "http://127.0.0.1:" + std::to_string(port);
  Scenario s(url, {});
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) ids.push_back(Enqueue(*s.sendq));
  // The first attempt finds nobody listening: the upstream is paused, nothing is charged.
  nlohmann::json attempts = WaitAttempts(*s.sendq, ids[0], 1);
  CHECK(attempts[0].at("charged") == false);
  nlohmann::json record = s.sendq->Get("/v1/messages/" + ids[0]).json;
  // Queued, or in a probe that is under way (the probe interval here is 20 ms); never failed.
  const std::string status = record.at("status");
  CHECK((status == "queued" || status == "sending"));
  CHECK(record.at("attempts") == 0);
  CheckReadyWhilePaused(s.sendq->port());

  FakeUpstream upstream({"--token", kTestUpstreamToken}, s.dir.path(), port);
  for (const std::string& id : ids) {
    nlohmann::json final_record = WaitFinal(*s.sendq, id);
    CHECK(final_record.at("status") == "sent");
    CHECK(final_record.at("attempts") == 1);
  }
  CHECK(upstream.Sent().at("count") == 5);
  CHECK(Request("GET", "127.0.0.1", s.sendq->port(), "/readyz").status == 200);
}

TEST_CASE("delivery: 401 pauses the upstream, fails nothing, and resumes by itself") {
  Scenario s;
  s.upstream->SetConfig({{"token", "a-rotated-key"}});  // sendq's key is now wrong
  std::string id = Enqueue(*s.sendq);
  nlohmann::json attempts = WaitAttempts(*s.sendq, id, 1);
  CHECK(attempts[0].at("outcome") == "upstream_paused");
  CHECK(attempts[0].at("http_status") == 401);
  CHECK(attempts[0].at("charged") == false);
  nlohmann::json record = s.sendq->Get("/v1/messages/" + id).json;
  const std::string status = record.at("status");
  CHECK((status == "queued" || status == "sending"));  // a probe may be under way
  CHECK(record.at("attempts") == 0);
  CheckReadyWhilePaused(s.sendq->port());
  HttpResult metrics = s.sendq->Get("/metrics");
  CHECK(metrics.body.find("sendq_upstream_paused 1") != std::string::npos);
  // Another message enqueued meanwhile waits too, and is not failed.
  std::string second = Enqueue(*s.sendq);

  s.upstream->SetConfig({{"token", kTestUpstreamToken}});  // the key works again
  CHECK(WaitFinal(*s.sendq, id).at("status") == "sent");
  CHECK(WaitFinal(*s.sendq, second).at("status") == "sent");
  CHECK(Request("GET", "127.0.0.1", s.sendq->port(), "/readyz").status == 200);
}

TEST_CASE("delivery: once a paused upstream resumes, the whole worker pool sends the backlog") {
  // The probe comes a second after the pause; each send then takes 100 ms, so a backlog sent
  // by the probing worker alone would never have two requests in flight at once.
  Scenario s(std::vector<std::string>{},
             {"--workers", "8", "--backoff-base", "1s", "--backoff-max", "2s"});
  s.upstream->SetConfig({{"token", "a-rotated-key"}});
  const std::string first = Enqueue(*s.sendq);
  CHECK(WaitAttempts(*s.sendq, first, 1)[0].at("outcome") == "upstream_paused");
  std::vector<nlohmann::json> backlog;
  for (int i = 0; i < 15; ++i) backlog.push_back(ExampleRequestTo(i));
  HttpResult batch = s.sendq->Post("/v1/messages/batch", {{"messages", backlog}});
  REQUIRE(batch.status == 200);
  REQUIRE(batch.json.at("accepted") == 15);
  s.upstream->SetConfig({{"token", kTestUpstreamToken}, {"latency_ms", 100}});
  const nlohmann::json sent = s.upstream->Sent(16, 30'000);
  REQUIRE(sent.at("count") == 16);
  CHECK(sent.at("max_in_flight") >= 4);
  CHECK(WaitFinal(*s.sendq, first).at("status") == "sent");
}

TEST_CASE("delivery: a burst of 5xx trips the circuit instead of using up attempts") {
  Scenario s(std::vector<std::string>{}, {"--max-attempts", "3"});
  s.upstream->SetConfig({{"force_status", 503}});
  std::vector<std::string> ids;
  for (int i = 0; i < 8; ++i) ids.push_back(Enqueue(*s.sendq, ExampleRequestTo(i)));
  // Once every message has had an attempt, the circuit is open: readiness says so.
  for (const std::string& id : ids) WaitAttempts(*s.sendq, id, 1);
  CheckReadyWhilePaused(s.sendq->port());
  s.upstream->SetConfig({{"force_status", 0}});
  int sent = 0;
  for (const std::string& id : ids) {
    if (WaitFinal(*s.sendq, id).at("status") == "sent") ++sent;
  }
  // With 3 attempts each and no circuit, most of these would have failed.
  CHECK(sent == 8);
}

TEST_CASE("delivery: a dropped connection is an unknown outcome, retried under the same key") {
  Scenario s({"--drop-rate", "1"});
  std::string id = Enqueue(*s.sendq);
  nlohmann::json first = WaitAttempts(*s.sendq, id, 1);
  CHECK(first[0].at("outcome") == "unknown");
  CHECK(first[0].at("http_status").is_null());
  CHECK(first[0].at("charged") == true);
  s.upstream->SetConfig({{"drop_rate", 0}});
  nlohmann::json record = WaitFinal(*s.sendq, id);
  CHECK(record.at("status") == "sent");
  for (const auto& r : SendsFor(*s.upstream, id, "received")) CHECK(r.at("idempotency_key") == id);
}

TEST_CASE("delivery: with --on-unknown=fail an unknown outcome fails for review") {
  Scenario s(std::vector<std::string>{"--drop-rate", "1"}, {"--on-unknown", "fail"});
  std::string id = Enqueue(*s.sendq);
  nlohmann::json record = WaitFinal(*s.sendq, id);
  CHECK(record.at("status") == "failed");
  CHECK(record.at("last_error").get<std::string>().find("--on-unknown=fail") != std::string::npos);
  CHECK(SendsFor(*s.upstream, id, "received").size() == 1);
}

TEST_CASE("delivery: --max-attempts charged failures exhaust a message") {
  Scenario s(std::vector<std::string>{"--fail-first", "5"}, {"--max-attempts", "2"});
  std::string id = Enqueue(*s.sendq);
  nlohmann::json record = WaitFinal(*s.sendq, id);
  CHECK(record.at("status") == "failed");
  CHECK(record.at("attempts") == 2);
  CHECK(record.at("last_error").get<std::string>().find("attempts exhausted (2 of 2)") !=
        std::string::npos);
  CHECK(SendsFor(*s.upstream, id, "received").size() == 2);
}

TEST_CASE("delivery: a message whose validity runs out during an outage fails as expired") {
  const std::string url = "http://127.0.0.1:" + std::to_string(FreeLoopbackPort());
  Scenario s(url, {"--max-age", "300ms"});
  std::string id = Enqueue(*s.sendq);
  nlohmann::json record = WaitFinal(*s.sendq, id);
  CHECK(record.at("status") == "failed");
  CHECK(record.at("attempts") == 0);
  CHECK(record.at("last_error").get<std::string>().find("expired") != std::string::npos);
}

}  // namespace
}  // namespace sendq::test
