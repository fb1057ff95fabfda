// The HTTP API end to end: sendq and the fake AgentPhone as real processes on loopback.
#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <stdlib.h>  // unsetenv
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <fstream>
#include <latch>
#include <set>
#include <sstream>
#include <thread>

#include "raw_http.h"
#include "scenario.h"

namespace sendq::test {
namespace {

using nlohmann::json;

// Accepted sends that the fake recorded for sendq message `id`.
std::vector<json> SendsFor(FakeUpstream& upstream, const std::string& id) {
  const json sent = upstream.Sent();
  std::vector<json> out;
  for (const auto& s : sent.at("sends")) {
    if (s.at("idempotency_key") == id) out.push_back(s);
  }
  return out;
}

// The locs of a 422 body, in order.
std::vector<json> Locs(const HttpResult& r) {
  std::vector<json> out;
  if (!r.json.is_object() || !r.json.contains("detail") || !r.json["detail"].is_array()) {
    return out;
  }
  for (const auto& d : r.json["detail"]) out.push_back(d.at("loc"));
  return out;
}

bool HasLoc(const HttpResult& r, const json& loc) {
  for (const json& l : Locs(r)) {
    if (l == loc) return true;
  }
  return false;
}

std::vector<std::string> SplitLines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

bool HasLine(const std::string& text, const std::string& line) {
  for (const std::string& l : SplitLines(text)) {
    if (l == line) return true;
  }
  return false;
}

// The first line of `text` that starts with `prefix`, or "".
std::string LineStartingWith(const std::string& text, const std::string& prefix) {
  for (const std::string& l : SplitLines(text)) {
    if (l.rfind(prefix, 0) == 0) return l;
  }
  return "";
}

std::string ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

// Ids in a list page, in order.
std::vector<std::string> Ids(const HttpResult& page) {
  std::vector<std::string> ids;
  for (const auto& m : page.json.at("data")) ids.push_back(m.at("id").get<std::string>());
  return ids;
}

// Blocks until sendq has logged the end of the attempt on `id`, which it does after counting
// it in its metrics.
void WaitAttemptLogged(SendqProcess& sendq, const std::string& id) {
  auto line = sendq.process().WaitForLine(
      Stream::kStderr,
      [&](const std::string& l) {
        return l.find("\"attempt_finished\"") != std::string::npos &&
               l.find(id) != std::string::npos;
      },
      30'000);
  REQUIRE(line.has_value());
}

TEST_CASE("api: an Idempotency-Key makes producer retries safe") {
  Scenario s;
  const json request = ExampleRequest();
  const std::map<std::string, std::string> key = {{"Idempotency-Key", "order-4711-confirmation"}};

  HttpResult first = s.sendq->Post("/v1/messages", request, key);
  REQUIRE(first.status == 202);
  CHECK(first.Header("Idempotent-Replayed").empty());
  const std::string id = first.json.at("id");
  CHECK(first.json.at("idempotency_key") == "order-4711-confirmation");

  HttpResult again = s.sendq->Post("/v1/messages", request, key);
  CHECK(again.status == 200);
  CHECK(again.Header("Idempotent-Replayed") == "true");
  CHECK(again.json.at("id") == id);
  CHECK(again.Header("Location") == "/v1/messages/" + id);

  HttpResult other = s.sendq->Post("/v1/messages", ExampleRequest("Another text"), key);
  CHECK(other.status == 409);
  CHECK(other.json.at("code") == "idempotency_key_reused");

  CHECK(WaitFinal(*s.sendq, id).at("status") == "sent");
  CHECK(SendsFor(*s.upstream, id).size() == 1);

  // A replay after delivery answers with the record as it is now, and sends nothing more.
  HttpResult late = s.sendq->Post("/v1/messages", request, key);
  CHECK(late.status == 200);
  CHECK(late.Header("Idempotent-Replayed") == "true");
  CHECK(late.json.at("id") == id);
  CHECK(late.json.at("status") == "sent");
  CHECK(SendsFor(*s.upstream, id).size() == 1);

  HttpResult list = s.sendq->Get("/v1/messages");
  REQUIRE(list.status == 200);
  CHECK(Ids(list) == std::vector<std::string>{id});
}

TEST_CASE("api: concurrent duplicates with one Idempotency-Key make one message") {
  Scenario s;
  constexpr int kThreads = 8;
  const json request = ExampleRequest();
  const std::map<std::string, std::string> key = {{"Idempotency-Key", "burst-key-1"}};
  std::vector<HttpResult> results(kThreads);
  std::latch start(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      start.arrive_and_wait();
      results[i] = s.sendq->Post("/v1/messages", request, key);
    });
  }
  for (std::thread& t : threads) t.join();

  int accepted = 0;
  int replayed = 0;
  std::set<std::string> ids;
  for (const HttpResult& r : results) {
    INFO("answered " << r.status << " " << r.error << ": " << r.body);
    if (r.status == 202) {
      ++accepted;
      CHECK(r.Header("Idempotent-Replayed").empty());
    } else {
      CHECK(r.status == 200);
      CHECK(r.Header("Idempotent-Replayed") == "true");
      ++replayed;
    }
    if (r.json.is_object()) ids.insert(r.json.at("id").get<std::string>());
  }
  CHECK(accepted == 1);
  CHECK(replayed == kThreads - 1);
  REQUIRE(ids.size() == 1);
  const std::string id = *ids.begin();
  CHECK(WaitFinal(*s.sendq, id).at("status") == "sent");
  CHECK(SendsFor(*s.upstream, id).size() == 1);
  CHECK(Ids(s.sendq->Get("/v1/messages")) == std::vector<std::string>{id});
}

TEST_CASE("api: an Idempotency-Key longer than 255 characters is a 422") {
  Scenario s(UnreachableUrl(), NoProbeArgs());
  HttpResult too_long =
      s.sendq->Post("/v1/messages", ExampleRequest(), {{"Idempotency-Key", std::string(256, 'k')}});
  CHECK(too_long.status == 422);
  REQUIRE(too_long.json.at("detail").size() == 1);
  CHECK(too_long.json["detail"][0].at("loc") == json::array({"header", "Idempotency-Key"}));
  CHECK(s.sendq->Get("/v1/messages").json.at("data").empty());

  // 255 is still accepted.
  HttpResult longest =
      s.sendq->Post("/v1/messages", ExampleRequest(), {{"Idempotency-Key", std::string(255, 'k')}});
  CHECK(longest.status == 202);
}

TEST_CASE("api: cancel takes a queued message out, and only a queued one") {
  Scenario s(UnreachableUrl(), NoProbeArgs());
  const std::string id = Enqueue(*s.sendq);
  // The first attempt finds nobody listening; the message waits, queued, for the upstream.
  WaitAttempts(*s.sendq, id, 1);
  REQUIRE(s.sendq->Get("/v1/messages/" + id).json.at("status") == "queued");

  HttpResult cancel = s.sendq->Post("/v1/messages/" + id + "/cancel", json::object());
  CHECK(cancel.status == 200);
  CHECK(cancel.json.at("id") == id);
  CHECK(cancel.json.at("status") == "canceled");
  CHECK(cancel.json.at("next_attempt_at").is_null());
  CHECK(s.sendq->Get("/v1/messages/" + id).json.at("status") == "canceled");

  HttpResult twice = s.sendq->Post("/v1/messages/" + id + "/cancel", json::object());
  CHECK(twice.status == 409);
  CHECK(twice.json.at("status") == "canceled");
  CHECK(twice.json.at("code") == "invalid_state");
  CHECK(twice.json.at("message").at("id") == id);

  HttpResult retry = s.sendq->Post("/v1/messages/" + id + "/retry", json::object());
  CHECK(retry.status == 409);
  CHECK(retry.json.at("status") == "canceled");
  CHECK(s.sendq->Get("/v1/messages/" + id).json.at("status") == "canceled");

  const std::string missing = "sq_01jdx4n7m3f2k8q9r5t6v7w8x9";
  CHECK(s.sendq->Post("/v1/messages/" + missing + "/cancel", json::object()).status == 404);
  CHECK(s.sendq->Post("/v1/messages/" + missing + "/retry", json::object()).status == 404);
}

TEST_CASE("api: retry puts a failed message back in the queue; a sent one stays sent") {
  Scenario s({"--reject-rate", "1"});
  const std::string id = Enqueue(*s.sendq);
  json failed = WaitFinal(*s.sendq, id);
  REQUIRE(failed.at("status") == "failed");
  CHECK(failed.at("last_error").is_string());

  s.upstream->SetConfig({{"reject_rate", 0}});
  HttpResult retry = s.sendq->Post("/v1/messages/" + id + "/retry", json::object());
  REQUIRE(retry.status == 200);
  CHECK(retry.json.at("status") == "queued");
  CHECK(retry.json.at("attempts") == 0);
  CHECK(retry.json.at("last_error").is_null());
  CHECK(retry.json.at("next_attempt_at").is_string());
  // A fresh validity, counted from the retry.
  CHECK(ParseTime(retry.json.at("expires_at")) > ParseTime(failed.at("expires_at")));

  json sent = WaitFinal(*s.sendq, id);
  CHECK(sent.at("status") == "sent");
  CHECK(sent.at("provider_message_id").is_string());
  CHECK(SendsFor(*s.upstream, id).size() == 1);
  HttpResult ledger = s.sendq->Get("/v1/messages/" + id + "/attempts");
  REQUIRE(ledger.status == 200);
  REQUIRE(ledger.json.at("data").size() == 2);
  CHECK(ledger.json["data"][0].at("outcome") == "permanent");
  CHECK(ledger.json["data"][1].at("outcome") == "sent");

  HttpResult cancel = s.sendq->Post("/v1/messages/" + id + "/cancel", json::object());
  CHECK(cancel.status == 409);
  CHECK(cancel.json.at("status") == "sent");
  HttpResult retry_sent = s.sendq->Post("/v1/messages/" + id + "/retry", json::object());
  CHECK(retry_sent.status == 409);
  CHECK(retry_sent.json.at("status") == "sent");
  CHECK(SendsFor(*s.upstream, id).size() == 1);
}

TEST_CASE("api: producers cannot see or touch each other's messages") {
  TempDir dir;
  FakeUpstream upstream({"--token", kTestUpstreamToken}, dir.path());
  SendqOptions options;
  options.upstream_url = upstream.url();
  options.data_dir = dir.path();
  options.api_tokens = "alice:alice-token-123,bob:bob-token-4567";
  options.bearer = "alice-token-123";
  SendqProcess sendq(options);
  const std::map<std::string, std::string> bob = {{"Authorization", "Bearer bob-token-4567"}};

  const std::string id = Enqueue(sendq, ExampleRequest(), {{"Idempotency-Key", "shared-key"}});
  CHECK(WaitFinal(sendq, id).at("status") == "sent");

  CHECK(sendq.Get("/v1/messages/" + id, bob).status == 404);
  CHECK(sendq.Get("/v1/messages/" + id + "?wait=1s", bob).status == 404);
  CHECK(sendq.Get("/v1/messages/" + id + "/attempts", bob).status == 404);
  CHECK(sendq.Post("/v1/messages/" + id + "/cancel", json::object(), bob).status == 404);
  CHECK(sendq.Post("/v1/messages/" + id + "/retry", json::object(), bob).status == 404);

  HttpResult bobs = sendq.Get("/v1/messages", bob);
  REQUIRE(bobs.status == 200);
  CHECK(bobs.json.at("data").empty());
  HttpResult alices = sendq.Get("/v1/messages");
  REQUIRE(alices.status == 200);
  CHECK(Ids(alices) == std::vector<std::string>{id});

  // Idempotency keys are scoped to the producer: bob's "shared-key" is a new message of his.
  HttpResult bob_post =
      sendq.Post("/v1/messages", ExampleRequest("Bob's own text"),
                 {{"Authorization", "Bearer bob-token-4567"}, {"Idempotency-Key", "shared-key"}});
  CHECK(bob_post.status == 202);
  REQUIRE(bob_post.json.is_object());
  CHECK(bob_post.json.at("id") != id);
  CHECK(Ids(sendq.Get("/v1/messages")) == std::vector<std::string>{id});
  CHECK(sendq.Get("/v1/messages/" + bob_post.json.at("id").get<std::string>()).status == 404);
}

TEST_CASE("api: every endpoint but the probes needs a valid producer token") {
  Scenario s(UnreachableUrl(), NoProbeArgs());
  const int port = s.sendq->port();
  const std::string body = ExampleRequest().dump();

  for (const auto& headers : std::vector<std::map<std::string, std::string>>{
           {},
           {{"Authorization", "Bearer wrong-token-abcdef"}},
           {{"Authorization", "Bearer " + std::string(kTestApiToken) + "x"}},
           {{"Authorization", std::string(kTestApiToken)}},
           {{"Authorization", "Basic " + std::string(kTestApiToken)}}}) {
    INFO("Authorization: " << (headers.empty() ? "(none)" : headers.begin()->second));
    HttpResult post = Request("POST", "127.0.0.1", port, "/v1/messages", body, headers);
    CHECK(post.status == 401);
    CHECK(post.Header("WWW-Authenticate") == "Bearer");
    REQUIRE(post.json.is_object());
    CHECK(post.json.at("code") == "unauthorized");
    CHECK(Request("GET", "127.0.0.1", port, "/v1/messages", "", headers).status == 401);
    CHECK(Request("GET", "127.0.0.1", port, "/metrics", "", headers).status == 401);
  }

  HttpResult health = Request("GET", "127.0.0.1", port, "/healthz");
  CHECK(health.status == 200);
  CHECK(health.json == json{{"status", "ok"}});

  // Nothing was queued by the refused requests.
  HttpResult list = s.sendq->Get("/v1/messages");
  REQUIRE(list.status == 200);
  CHECK(list.json.at("data").empty());
}

TEST_CASE("api: validation problems are a 422 listing each one, and nothing is stored") {
  Scenario s(UnreachableUrl(), NoProbeArgs());

  HttpResult not_json = s.sendq->Send("POST", "/v1/messages", "this is { not json");
  CHECK(not_json.status == 422);
  REQUIRE(not_json.json.at("detail").size() == 1);
  CHECK(not_json.json["detail"][0].at("loc") == json::array({"body"}));
  CHECK(not_json.json["detail"][0].at("type") == "json_invalid");

  HttpResult array = s.sendq->Send("POST", "/v1/messages", "[1, 2]");
  CHECK(array.status == 422);
  CHECK(Locs(array) == std::vector<json>{json::array({"body"})});

  const json several = {{"agent_id", 5},
                        {"to_number", "not-a-number"},
                        {"media_urls", {"http://example.com/a.jpg", 3}},
                        {"send_style", "bogus"}};
  HttpResult bad = s.sendq->Post("/v1/messages", several);
  CHECK(bad.status == 422);
  INFO("422 body: " << bad.body);
  CHECK(Locs(bad).size() == 5);
  CHECK(HasLoc(bad, json::array({"body", "agent_id"})));
  CHECK(HasLoc(bad, json::array({"body", "to_number"})));
  CHECK(HasLoc(bad, json::array({"body", "media_urls", 0})));
  CHECK(HasLoc(bad, json::array({"body", "media_urls", 1})));
  CHECK(HasLoc(bad, json::array({"body", "send_style"})));
  for (const auto& d : bad.json.at("detail")) {
    CHECK(d.at("msg").is_string());
    CHECK(d.at("type").is_string());
  }

  HttpResult empty = s.sendq->Post("/v1/messages", json::object());
  CHECK(empty.status == 422);
  CHECK(HasLoc(empty, json::array({"body", "agent_id"})));
  CHECK(HasLoc(empty, json::array({"body", "to_number"})));
  CHECK(HasLoc(empty, json::array({"body", "body"})));

  HttpResult list = s.sendq->Get("/v1/messages");
  REQUIRE(list.status == 200);
  CHECK(list.json.at("data").empty());
  CHECK(HasLine(s.sendq->Get("/metrics").body, "sendq_enqueued_total 0"));
}

TEST_CASE("api: a body over 1 MiB is a 413 with a JSON body, and sendq carries on") {
  Scenario s(UnreachableUrl(), NoProbeArgs());
  const std::string huge = ExampleRequest(std::string((1 << 20) + 1024, 'x')).dump();
  HttpResult r = s.sendq->Send("POST", "/v1/messages", huge);
  INFO("answer: " << r.status << " " << r.error << " " << r.body.substr(0, 200));
  CHECK(r.status == 413);
  REQUIRE(r.json.is_object());
  CHECK(r.json.at("code") == "payload_too_large");
  CHECK(r.json.at("detail").is_string());

  const std::string id = Enqueue(*s.sendq);
  HttpResult list = s.sendq->Get("/v1/messages");
  REQUIRE(list.status == 200);
  CHECK(Ids(list) == std::vector<std::string>{id});
}

TEST_CASE("api: a chunked body over 1 MiB is a 413 as well") {
  Scenario s(UnreachableUrl(), NoProbeArgs());
  const std::string huge = ExampleRequest(std::string((1 << 20) + 1024, 'x')).dump();
  std::string request = "POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " +
                        std::string(kTestApiToken) +
                        "\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
                        "Connection: close\r\n\r\n";
  constexpr size_t kChunk = 64 * 1024;
  for (size_t i = 0; i < huge.size(); i += kChunk) {
    const std::string chunk = huge.substr(i, kChunk);
    std::ostringstream size;
    size << std::hex << chunk.size();
    request += size.str() + "\r\n" + chunk + "\r\n";
  }
  request += "0\r\n\r\n";
  const std::string response = RawExchange(s.sendq->port(), request);
  INFO("answer: " << response.substr(0, 300));
  CHECK(RawStatus(response) == 413);
  const json body = RawJson(response);
  REQUIRE(body.is_object());
  CHECK(body.value("code", "") == "payload_too_large");

  // Nothing was queued, and sendq still serves.
  HttpResult list = s.sendq->Get("/v1/messages");
  REQUIRE(list.status == 200);
  CHECK(list.json.at("data").empty());
  CHECK(s.sendq->Post("/v1/messages", ExampleRequest()).status == 202);
}

TEST_CASE("api: an empty Idempotency-Key header is the same as none") {
  Scenario s(UnreachableUrl(), NoProbeArgs());
  HttpResult r = s.sendq->Post("/v1/messages", ExampleRequest(), {{"Idempotency-Key", ""}});
  INFO("answer: " << r.status << " " << r.body);
  CHECK(r.status == 202);
  CHECK(r.json.at("idempotency_key").is_null());
}

TEST_CASE("api: Idempotency-Keys are compared byte for byte, never percent-decoded") {
  Scenario s(UnreachableUrl(), NoProbeArgs());
  HttpResult escaped =
      s.sendq->Post("/v1/messages", ExampleRequest(), {{"Idempotency-Key", "pct%41key"}});
  REQUIRE(escaped.status == 202);
  CHECK(escaped.json.at("idempotency_key") == "pct%41key");
  HttpResult plain =
      s.sendq->Post("/v1/messages", ExampleRequest(), {{"Idempotency-Key", "pctAkey"}});
  CHECK(plain.status == 202);
  CHECK(plain.Header("Idempotent-Replayed") == "");
  CHECK(plain.json.at("id") != escaped.json.at("id"));
}

TEST_CASE("api: list pages newest first through next_cursor, with filters") {
  Scenario s(UnreachableUrl(), NoProbeArgs());
  auto request = [](int i) {
    json r = ExampleRequest("message " + std::to_string(i));
    r["agent_id"] = i % 2 == 0 ? "agent_even" : "agent_odd";
    r["to_number"] = "+1415555000" + std::to_string(i);
    return r;
  };
  std::vector<std::string> ids;
  ids.push_back(Enqueue(*s.sendq, request(0)));
  // Once the first attempt has found the upstream down, nothing else is claimed, so every
  // message below stays queued.
  WaitAttempts(*s.sendq, ids[0], 1);
  for (int i = 1; i < 5; ++i) ids.push_back(Enqueue(*s.sendq, request(i)));
  const std::vector<std::string> newest_first(ids.rbegin(), ids.rend());

  std::vector<std::string> seen;
  std::string cursor;
  int pages = 0;
  for (;;) {
    std::string path = "/v1/messages?limit=2";
    if (!cursor.empty()) path += "&cursor=" + cursor;
    HttpResult page = s.sendq->Get(path);
    REQUIRE(page.status == 200);
    ++pages;
    REQUIRE(pages <= 3);
    std::vector<std::string> page_ids = Ids(page);
    CHECK(page_ids.size() <= 2);
    seen.insert(seen.end(), page_ids.begin(), page_ids.end());
    if (!page.json.at("has_more").get<bool>()) {
      CHECK(page.json.at("next_cursor").is_null());
      break;
    }
    REQUIRE(page.json.at("next_cursor").is_string());
    cursor = page.json.at("next_cursor").get<std::string>();
  }
  CHECK(pages == 3);
  CHECK(seen == newest_first);
  CHECK(std::set<std::string>(seen.begin(), seen.end()).size() == 5);

  HttpResult queued = s.sendq->Get("/v1/messages?status=queued");
  REQUIRE(queued.status == 200);
  CHECK(Ids(queued) == newest_first);
  CHECK(queued.json.at("has_more") == false);
  HttpResult sent = s.sendq->Get("/v1/messages?status=sent");
  REQUIRE(sent.status == 200);
  CHECK(sent.json.at("data").empty());

  // '+' must be percent-encoded in a query string.
  HttpResult by_number = s.sendq->Get("/v1/messages?to_number=%2B14155550003");
  REQUIRE(by_number.status == 200);
  CHECK(Ids(by_number) == std::vector<std::string>{ids[3]});
  HttpResult by_agent = s.sendq->Get("/v1/messages?agent_id=agent_odd");
  REQUIRE(by_agent.status == 200);
  CHECK(Ids(by_agent) == std::vector<std::string>{ids[3], ids[1]});
  HttpResult both = s.sendq->Get("/v1/messages?agent_id=agent_even&status=queued&limit=1");
  REQUIRE(both.status == 200);
  CHECK(Ids(both) == std::vector<std::string>{ids[4]});
  CHECK(both.json.at("has_more") == true);
  HttpResult old = s.sendq->Get("/v1/messages?created_before=2000-01-01T00:00:00Z");
  REQUIRE(old.status == 200);
  CHECK(old.json.at("data").empty());

  for (const auto& [query, name] : std::vector<std::pair<std::string, std::string>>{
           {"limit=0", "limit"},
           {"status=bogus", "status"},
           {"cursor=garbage", "cursor"},
           {"created_after=notadate", "created_after"}}) {
    INFO("query: " << query);
    HttpResult r = s.sendq->Get("/v1/messages?" + query);
    CHECK(r.status == 422);
    CHECK(Locs(r) == std::vector<json>{json::array({"query", name})});
  }
  HttpResult all_bad =
      s.sendq->Get("/v1/messages?limit=0&status=bogus&cursor=garbage&created_after=notadate");
  CHECK(all_bad.status == 422);
  CHECK(Locs(all_bad).size() == 4);
}

TEST_CASE("api: tokens and message bodies stay out of logs, the database and responses") {
  Scenario s;
  const std::string marker = "zebra-marker-7c1e9f";
  const std::string id = Enqueue(*s.sendq, ExampleRequest("Your code is " + marker));
  REQUIRE(WaitFinal(*s.sendq, id).at("status") == "sent");
  WaitAttemptLogged(*s.sendq, id);
  // The send really carried the marker, so its absence below means something.
  auto sends = SendsFor(*s.upstream, id);
  REQUIRE(sends.size() == 1);
  CHECK(sends[0].at("body").at("body").get<std::string>().find(marker) != std::string::npos);

  std::string output = s.sendq->process().AllStderr();
  for (const std::string& line : s.sendq->process().Lines(Stream::kStdout)) output += line + "\n";
  CHECK(output.find(id) != std::string::npos);
  CHECK(output.find(kTestApiToken) == std::string::npos);
  CHECK(output.find(kTestUpstreamToken) == std::string::npos);
  CHECK(output.find(marker) == std::string::npos);

  const std::string db = ReadBytes(s.sendq->db_path()) + ReadBytes(s.sendq->db_path() + "-wal");
  CHECK(db.find(id) != std::string::npos);
  CHECK(db.find(kTestUpstreamToken) == std::string::npos);
  CHECK(db.find(kTestApiToken) == std::string::npos);

  for (const std::string& path : {"/v1/messages/" + id, "/v1/messages/" + id + "/attempts",
                                  std::string("/v1/messages"), std::string("/metrics")}) {
    HttpResult r = s.sendq->Get(path);
    INFO("GET " << path);
    CHECK(r.status == 200);
    CHECK(r.body.find(kTestUpstreamToken) == std::string::npos);
  }
}

TEST_CASE("api: /metrics counts a sent message") {
  Scenario s;
  const std::string id = Enqueue(*s.sendq);
  REQUIRE(WaitFinal(*s.sendq, id).at("status") == "sent");
  WaitAttemptLogged(*s.sendq, id);

  HttpResult r = s.sendq->Get("/metrics");
  REQUIRE(r.status == 200);
  CHECK(r.Header("Content-Type").rfind("text/plain", 0) == 0);
  INFO("metrics:\n" << r.body);
  CHECK(HasLine(r.body, "sendq_enqueued_total 1"));
  CHECK(HasLine(r.body, "sendq_messages{status=\"sent\"} 1"));
  CHECK(HasLine(r.body, "sendq_messages{status=\"queued\"} 0"));
  CHECK(HasLine(r.body, "sendq_attempts_total{outcome=\"sent\"} 1"));
  CHECK(HasLine(r.body, "sendq_attempts_total{outcome=\"retryable\"} 0"));
  CHECK_FALSE(LineStartingWith(r.body, "sendq_upstream_latency_seconds_bucket{le=").empty());
  CHECK(HasLine(r.body, "sendq_upstream_latency_seconds_bucket{le=\"+Inf\"} 1"));
  CHECK(HasLine(r.body, "sendq_upstream_latency_seconds_count 1"));
  const std::string oldest = LineStartingWith(r.body, "sendq_oldest_queued_age_seconds ");
  REQUIRE_FALSE(oldest.empty());
  CHECK(std::stod(oldest.substr(oldest.find(' ') + 1)) == 0.0);  // nothing is queued
  CHECK(HasLine(r.body, "sendq_upstream_paused 0"));
}

TEST_CASE("api: /readyz is ready on a healthy sendq, without a token") {
  Scenario s;
  HttpResult r = Request("GET", "127.0.0.1", s.sendq->port(), "/readyz");
  CHECK(r.status == 200);
  CHECK(r.json.at("ready") == true);
  CHECK(r.json.at("upstream") == "ok");
  CHECK(r.json.at("reason").is_null());
}

TEST_CASE("api: the deprecated media_url is folded into media_urls") {
  Scenario s;
  json request = {{"agent_id", "agent_12345abcde"},
                  {"to_number", "+14155552671"},
                  {"media_url", "https://example.com/photo.jpg"}};
  HttpResult accepted = s.sendq->Post("/v1/messages", request);
  REQUIRE(accepted.status == 202);
  const std::string id = accepted.json.at("id");
  CHECK(accepted.json.at("media_urls") == json::array({"https://example.com/photo.jpg"}));
  CHECK_FALSE(accepted.json.contains("media_url"));

  // Both given: media_url first, then media_urls without a repeat of it.
  json both = {{"agent_id", "agent_12345abcde"},
               {"to_number", "+14155552671"},
               {"media_url", "https://example.com/a.jpg"},
               {"media_urls", {"https://example.com/b.jpg", "https://example.com/a.jpg"}}};
  const std::string both_id = Enqueue(*s.sendq, both);

  CHECK(WaitFinal(*s.sendq, id).at("media_urls") == json::array({"https://example.com/photo.jpg"}));
  CHECK(WaitFinal(*s.sendq, both_id).at("media_urls") ==
        json::array({"https://example.com/a.jpg", "https://example.com/b.jpg"}));

  auto sends = SendsFor(*s.upstream, id);
  REQUIRE(sends.size() == 1);
  const json& body = sends[0].at("body");
  CHECK(body.at("media_urls") == json::array({"https://example.com/photo.jpg"}));
  CHECK_FALSE(body.contains("media_url"));
  auto both_sends = SendsFor(*s.upstream, both_id);
  REQUIRE(both_sends.size() == 1);
  CHECK(both_sends[0].at("body").at("media_urls") ==
        json::array({"https://example.com/a.jpg", "https://example.com/b.jpg"}));
  CHECK_FALSE(both_sends[0].at("body").contains("media_url"));
}

TEST_CASE("api: GET ?wait= long-polls until the message is final") {
  Scenario s({"--latency-ms", "300"});
  const std::string id = Enqueue(*s.sendq);
  HttpResult r = s.sendq->Get("/v1/messages/" + id + "?wait=10s");
  REQUIRE(r.status == 200);
  CHECK(r.json.at("status") == "sent");
  CHECK(r.json.at("provider_message_id").is_string());
  CHECK(SendsFor(*s.upstream, id).size() == 1);
  // A bare number is seconds.
  CHECK(s.sendq->Get("/v1/messages/" + id + "?wait=10").json.at("status") == "sent");

  for (const auto& [query, name] : std::vector<std::pair<std::string, std::string>>{
           {"wait=bogus", "wait"},
           {"wait=61", "wait"},
           {"wait=2m", "wait"},
           {"wait=1s&after_version=abc", "after_version"}}) {
    INFO("query: " << query);
    HttpResult bad = s.sendq->Get("/v1/messages/" + id + "?" + query);
    CHECK(bad.status == 422);
    CHECK(Locs(bad) == std::vector<json>{json::array({"query", name})});
  }
}

TEST_CASE("api: sendq refuses to start without producer tokens or with a bad duration") {
  // The test process's own settings must not leak into the children.
  unsetenv("SENDQ_API_TOKENS");
  unsetenv("SENDQ_API_TOKENS_FILE");
  TempDir dir;
  const std::vector<std::string> base = {
      SendqBinary(),        "serve",      "--listen",          "127.0.0.1:0", "--db",
      dir.File("sendq.db"), "--upstream", "http://127.0.0.1:9"};

  SUBCASE("no SENDQ_API_TOKENS") {
    ChildProcess sendq(base, {{"SENDQ_UPSTREAM_TOKEN", kTestUpstreamToken}}, dir.path());
    auto line = sendq.WaitForLine(Stream::kStderr, "SENDQ_API_TOKENS", 30'000);
    CHECK(line.has_value());
    auto status = sendq.Wait(30'000);
    REQUIRE(status.has_value());
    CHECK(*status != 0);
    CHECK(sendq.AllStderr().find("\"listening\"") == std::string::npos);
  }

  SUBCASE("--max-age bogus") {
    std::vector<std::string> argv = base;
    argv.insert(argv.end(), {"--max-age", "bogus"});
    ChildProcess sendq(argv,
                       {{"SENDQ_UPSTREAM_TOKEN", kTestUpstreamToken},
                        {"SENDQ_API_TOKENS", std::string("test:") + kTestApiToken}},
                       dir.path());
    auto line = sendq.WaitForLine(Stream::kStderr, "--max-age", 30'000);
    CHECK(line.has_value());
    auto status = sendq.Wait(30'000);
    REQUIRE(status.has_value());
    CHECK(*status != 0);
    CHECK(sendq.AllStderr().find("\"listening\"") == std::string::npos);
  }
}

TEST_CASE("api: idle and half-sent connections do not hold up other producers") {
  Scenario s(UnreachableUrl(), NoProbeArgs());
  // More than --http-threads (64) connections, each stopping in the middle of a request head,
  // as a slow or hostile client would; each keeps a thread until the read timeout (10 s).
  constexpr int kStalled = 150;
  std::vector<int> stalled;
  for (int i = 0; i < kStalled; ++i) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(s.sendq->port()));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
    const std::string partial = "POST /v1/messages HTTP/1.1\r\nHost: sendq\r\n";
    REQUIRE(send(fd, partial.data(), partial.size(), MSG_NOSIGNAL) ==
            static_cast<ssize_t>(partial.size()));
    stalled.push_back(fd);
  }
  // A new producer is served at once, well before the stalled connections time out.
  HttpResult r = s.sendq->Post("/v1/messages", ExampleRequest(), {}, /*timeout_ms=*/5'000);
  INFO("answered " << r.status << " " << r.error);
  CHECK(r.status == 202);
  for (int fd : stalled) close(fd);
}

}  // namespace
}  // namespace sendq::test
