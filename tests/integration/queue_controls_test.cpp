// Queue controls end to end: conversation order, priorities, schedules, pacing and the
// `sendq` member and headers, against the real sendq process and the fake AgentPhone.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <map>

#include "scenario.h"

namespace sendq::test {
namespace {

using nlohmann::json;

TimeMs NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

json WithControls(json request, json controls) {
  request["sendq"] = std::move(controls);
  return request;
}

// The bodies the fake accepted, in the order it accepted them.
std::vector<std::string> SentBodies(const json& sent) {
  std::vector<std::string> out;
  for (const json& send : sent.at("sends")) out.push_back(send.at("body").at("body"));
  return out;
}

TEST_CASE("order: 20 conversations of 20 arrive in enqueue order despite latency and 503s") {
  Scenario s({"--latency-jitter-ms", "10", "--error-rate", "0.2"}, {"--workers", "8"});
  // Batch j holds message j of every conversation, so commit order is j within each.
  for (int j = 0; j < 20; ++j) {
    std::vector<json> items;
    for (int c = 0; c < 20; ++c) items.push_back(ExampleRequestTo(c, fmt::format("{}:{}", c, j)));
    HttpResult r = s.sendq->Post("/v1/messages/batch", {{"messages", items}});
    REQUIRE(r.status == 200);
    REQUIRE(r.json.at("accepted") == 20);
  }
  const json sent = s.upstream->Sent(400, 120'000);
  REQUIRE(sent.at("count") == 400);
  std::map<int, int> next;  // conversation -> the message number it must send next
  int violations = 0;
  for (const std::string& body : SentBodies(sent)) {
    const int c = std::stoi(body.substr(0, body.find(':')));
    const int j = std::stoi(body.substr(body.find(':') + 1));
    if (j != next[c]) ++violations;
    next[c] = j + 1;
  }
  CHECK(violations == 0);
  CHECK(sent.at("max_in_flight") >= 2);  // conversations still go side by side
  // Nothing is left held: every message is final.
  HttpResult queued = s.sendq->Get("/v1/messages?status=queued&status=sending");
  CHECK(queued.json.at("data").empty());
}

TEST_CASE("order: a canceled head releases its successors, and send_at does not reorder") {
  Scenario s;
  const TimeMs later = NowMs() + 3'600'000;
  const std::string head =
      Enqueue(*s.sendq, WithControls(ExampleRequest("first"), {{"send_at", FormatRfc3339(later)}}));
  const std::string next = Enqueue(*s.sendq, ExampleRequest("second"));
  HttpResult waiting = s.sendq->Get("/v1/messages/" + next);
  CHECK(waiting.json.at("status") == "queued");
  CHECK(waiting.json.at("sendq").at("held_by_order") == true);
  HttpResult scheduled = s.sendq->Get("/v1/messages?scheduled=true");
  REQUIRE(scheduled.json.at("data").size() == 1);
  CHECK(scheduled.json["data"][0].at("id") == head);
  CHECK(scheduled.json["data"][0].at("next_attempt_at") == FormatRfc3339(later));

  REQUIRE(s.sendq->Send("POST", "/v1/messages/" + head + "/cancel", "").status == 200);
  CHECK(WaitFinal(*s.sendq, next).at("status") == "sent");
}

TEST_CASE("order: a head that fails (its own ttl runs out) releases its successors") {
  Scenario s;
  s.upstream->SetConfig({{"force_status", 503}});
  const std::string head =
      Enqueue(*s.sendq, WithControls(ExampleRequest("first"), {{"ttl", "1s"}}));
  const std::string next = Enqueue(*s.sendq, ExampleRequest("second"));
  CHECK(s.sendq->Get("/v1/messages/" + next).json.at("sendq").at("held_by_order") == true);
  const json failed = WaitFinal(*s.sendq, head);
  CHECK(failed.at("status") == "failed");
  CHECK(failed.at("last_error").get<std::string>().rfind("expired", 0) == 0);
  s.upstream->SetConfig({{"force_status", 0}});
  CHECK(WaitFinal(*s.sendq, next).at("status") == "sent");
}

TEST_CASE("order: an unknown outcome holds the conversation until it is decided") {
  Scenario s({"--drop-rate", "1"});
  const std::string head = Enqueue(*s.sendq, ExampleRequest("first"));
  CHECK(WaitAttempts(*s.sendq, head, 1)[0].at("outcome") == "unknown");
  const std::string next = Enqueue(*s.sendq, ExampleRequest("second"));
  HttpResult held = s.sendq->Get("/v1/messages/" + next);
  CHECK(held.json.at("sendq").at("held_by_order") == true);
  CHECK(held.json.at("attempts") == 0);
  s.upstream->SetConfig({{"drop_rate", 0}});
  CHECK(WaitFinal(*s.sendq, head).at("status") == "sent");
  CHECK(WaitFinal(*s.sendq, next).at("status") == "sent");
  const std::vector<std::string> bodies = SentBodies(s.upstream->Sent(2, 10'000));
  CHECK(bodies == std::vector<std::string>{"first", "second"});
}

TEST_CASE("order: ordering_key null opts out; an explicit key joins other recipients") {
  Scenario s(std::vector<std::string>{"--latency-ms", "300"}, {"--workers", "4"});
  // Three to the same person, unordered: sent side by side.
  std::vector<json> items(3, WithControls(ExampleRequest(), {{"ordering_key", nullptr}}));
  REQUIRE(s.sendq->Post("/v1/messages/batch", {{"messages", items}}).json.at("accepted") == 3);
  CHECK(s.upstream->Sent(3, 10'000).at("max_in_flight") >= 2);
  HttpResult one = s.sendq->Post("/v1/messages", ExampleRequestTo(1));
  HttpResult two =
      s.sendq->Post("/v1/messages", ExampleRequestTo(2), {{"Sendq-Ordering-Key", "k"}});
  HttpResult three =
      s.sendq->Post("/v1/messages", ExampleRequestTo(3), {{"Sendq-Ordering-Key", "k"}});
  CHECK(one.json.at("sendq").at("ordering_key") == "agent_12345abcde|+14155550001");
  CHECK(three.json.at("sendq").at("ordering_key") == "k");
  CHECK(three.json.at("sendq").at("held_by_order") == true);
}

TEST_CASE("order: --default-ordering none leaves messages without a key unordered") {
  Scenario s(std::vector<std::string>{"--latency-ms", "300"},
             {"--workers", "4", "--default-ordering", "none"});
  std::vector<json> items(3, ExampleRequest());
  HttpResult batch = s.sendq->Post("/v1/messages/batch", {{"messages", items}});
  REQUIRE(batch.json.at("accepted") == 3);
  CHECK(batch.json["results"][0]["message"]["sendq"].at("ordering_key").is_null());
  CHECK(s.upstream->Sent(3, 10'000).at("max_in_flight") >= 2);
}

TEST_CASE("priority: high overtakes a queued bulk backlog") {
  Scenario s(std::vector<std::string>{"--latency-ms", "40"}, {"--workers", "1"});
  std::vector<json> bulk;
  for (int i = 0; i < 40; ++i) {
    bulk.push_back(WithControls(ExampleRequestTo(i, "bulk"), {{"priority", "bulk"}}));
  }
  REQUIRE(s.sendq->Post("/v1/messages/batch", {{"messages", bulk}}).json.at("accepted") == 40);
  s.upstream->Received(1, 10'000);
  const std::string code =
      Enqueue(*s.sendq, ExampleRequestTo(100, "code 123456"), {{"Sendq-Priority", "high"}});
  CHECK(WaitFinal(*s.sendq, code).at("status") == "sent");
  const std::vector<std::string> bodies = SentBodies(s.upstream->Sent(0, 0));
  const auto at = std::find(bodies.begin(), bodies.end(), "code 123456");
  REQUIRE(at != bodies.end());
  CHECK(at - bodies.begin() <= 3);  // behind at most the sends already under way
}

TEST_CASE("pacing: a limited sender keeps its rate, and another sender is not slowed") {
  Scenario s(std::vector<std::string>{}, {"--workers", "4", "--sender-limits", "agent_slow=2/s"});
  std::vector<json> items;
  for (int i = 0; i < 6; ++i) {
    json slow = ExampleRequestTo(i, "slow");
    slow["agent_id"] = "agent_slow";
    items.push_back(slow);
    json fast = ExampleRequestTo(i, "fast");
    fast["agent_id"] = "agent_fast";
    items.push_back(fast);
  }
  REQUIRE(s.sendq->Post("/v1/messages/batch", {{"messages", items}}).json.at("accepted") == 12);
  const json sent = s.upstream->Sent(12, 30'000);
  REQUIRE(sent.at("count") == 12);
  std::vector<TimeMs> slow, fast;
  for (const json& send : sent.at("sends")) {
    (send.at("body").at("body") == "slow" ? slow : fast).push_back(send.at("received_at_ms"));
  }
  REQUIRE(slow.size() == 6);
  // A burst of two, then one every 500 ms (booked at 0, 0, 500, ..., 2000 ms). Arrivals lag
  // their slots by a varying delay, so allow one more than the rate in any span.
  int over_rate = 0;
  for (size_t i = 0; i < slow.size(); ++i) {
    for (size_t j = i + 1; j < slow.size(); ++j) {
      const double allowed = 2 + 1 + 2.0 * static_cast<double>(slow[j] - slow[i]) / 1000.0;
      if (static_cast<double>(j - i + 1) > allowed) ++over_rate;
    }
  }
  CHECK(over_rate == 0);
  CHECK(slow.back() - slow.front() >= 1'400);
  CHECK(*std::max_element(fast.begin(), fast.end()) < slow.back());
  CHECK(fast.back() - fast.front() < 1'000);
}

TEST_CASE("pacing: a 429 pauses its sender, uncharged, while another sender keeps sending") {
  Scenario s(std::vector<std::string>{}, {"--workers", "4"});
  s.upstream->SetConfig(
      {{"force_status", 429}, {"force_retry_after", "1"}, {"force_sender", "agent_limited"}});
  json limited = ExampleRequestTo(1, "limited");
  limited["agent_id"] = "agent_limited";
  const std::string paused = Enqueue(*s.sendq, limited);
  CHECK(WaitAttempts(*s.sendq, paused, 1)[0].at("http_status") == 429);
  std::vector<std::string> others;
  for (int i = 0; i < 5; ++i) others.push_back(Enqueue(*s.sendq, ExampleRequestTo(10 + i)));
  for (const std::string& id : others) CHECK(WaitFinal(*s.sendq, id).at("status") == "sent");
  const json record = s.sendq->Get("/v1/messages/" + paused).json;
  CHECK(record.at("status") == "queued");
  CHECK(record.at("attempts") == 0);                           // not charged
  CHECK(s.sendq->Get("/readyz").json.at("upstream") == "ok");  // the circuit stayed closed
  s.upstream->SetConfig({{"force_status", 0}});
  CHECK(WaitFinal(*s.sendq, paused).at("status") == "sent");
}

TEST_CASE("metrics: queue depth and why messages wait, per priority and sender") {
  Scenario s(UnreachableUrl(), NoProbeArgs());
  const TimeMs later = NowMs() + 3'600'000;
  Enqueue(*s.sendq, WithControls(ExampleRequest("a"), {{"send_at", FormatRfc3339(later)}}));
  Enqueue(*s.sendq, ExampleRequest("b"));  // held behind "a"
  Enqueue(*s.sendq, WithControls(ExampleRequestTo(1),
                                 {{"priority", "bulk"}, {"send_at", FormatRfc3339(later)}}));
  const std::string body = s.sendq->Get("/metrics").body;
  INFO(body);
  const std::string normal = "priority=\"normal\",sender=\"agent_12345abcde\"";
  CHECK(body.find("sendq_queue_depth{" + normal + "} 2\n") != std::string::npos);
  CHECK(body.find("sendq_queue_held{" + normal + ",reason=\"order\"} 1\n") != std::string::npos);
  CHECK(body.find("sendq_queue_held{" + normal + ",reason=\"schedule\"} 1\n") != std::string::npos);
  CHECK(body.find("sendq_queue_depth{priority=\"bulk\",sender=\"agent_12345abcde\"} 1\n") !=
        std::string::npos);
}

TEST_CASE("schedule: send_at is not handed upstream before its time") {
  Scenario s;
  const TimeMs at = NowMs() + 1'500;
  HttpResult r =
      s.sendq->Post("/v1/messages", ExampleRequest(), {{"Sendq-Send-At", FormatRfc3339(at)}});
  REQUIRE(r.status == 202);
  CHECK(r.json.at("sendq").at("send_at") == FormatRfc3339(at));
  CHECK(r.json.at("next_attempt_at") == FormatRfc3339(at));
  CHECK(WaitFinal(*s.sendq, r.json.at("id")).at("status") == "sent");
  const json sent = s.upstream->Sent(1, 10'000);
  CHECK(sent["sends"][0].at("received_at_ms").get<TimeMs>() >= at);
}

TEST_CASE("controls: validated in the usual 422 shape, never forwarded, part of the key") {
  Scenario s;
  HttpResult bad =
      s.sendq->Post("/v1/messages", WithControls(ExampleRequest(), {{"priority", "urgent"}}));
  CHECK(bad.status == 422);
  CHECK(bad.json["detail"][0].at("loc") == json{"body", "sendq", "priority"});
  HttpResult disagree =
      s.sendq->Post("/v1/messages", WithControls(ExampleRequest(), {{"priority", "bulk"}}),
                    {{"Sendq-Priority", "high"}});
  CHECK(disagree.status == 422);
  CHECK(disagree.json["detail"][0].at("loc") == json{"header", "Sendq-Priority"});

  json national = WithControls(ExampleRequest(), {{"priority", "high"}});
  national["to_number"] = "(415) 555-2671";
  HttpResult first = s.sendq->Post("/v1/messages", national, {{"Idempotency-Key", "k-1"}});
  REQUIRE(first.status == 202);
  CHECK(first.json.at("to_number") == "+14155552671");
  CHECK(first.json.at("sendq").at("priority") == "high");
  // The same key and body with other controls is another request.
  json other = national;
  other["sendq"]["priority"] = "bulk";
  CHECK(s.sendq->Post("/v1/messages", other, {{"Idempotency-Key", "k-1"}}).status == 409);
  CHECK(s.sendq->Post("/v1/messages", national, {{"Idempotency-Key", "k-1"}}).status == 200);

  const json sent = s.upstream->Sent(1, 10'000);
  const json& forwarded = sent["sends"][0].at("body");
  CHECK_FALSE(forwarded.contains("sendq"));
  CHECK(forwarded.at("to_number") == "+14155552671");
  // Lists find it by the normalised number, even with the + unencoded.
  HttpResult listed = s.sendq->Get("/v1/messages?to_number=+14155552671");
  CHECK(listed.json.at("data").size() == 1);
  CHECK(s.sendq->Get("/v1/messages?priority=high").json.at("data").size() == 1);
  CHECK(s.sendq->Get("/v1/messages?limit=1&limit=2").status == 422);
}

}  // namespace
}  // namespace sendq::test
