// Tests of fake-agentphone, the stand-in for AgentPhone that the other integration tests rely
// on, and of the harness pieces that run it.

#include <doctest/doctest.h>
#include <signal.h>

#include <atomic>
#include <fstream>
#include <string>
#include <thread>

#include "harness.h"
#include "testutil.h"

namespace sendq::test {
namespace {

using nlohmann::json;

constexpr char kToken[] = "fake-token";
constexpr int kWaitMs = 30'000;

json ValidSend() {
  return {{"agent_id", "agent_12345abcde"}, {"to_number", "+14155552671"}, {"body", "Hello"}};
}

std::map<std::string, std::string> Auth(const std::string& key = "") {
  std::map<std::string, std::string> headers = {{"Authorization", std::string("Bearer ") + kToken}};
  if (!key.empty()) headers["Idempotency-Key"] = key;
  return headers;
}

HttpResult PostSend(const FakeUpstream& fake, const json& body,
                    const std::map<std::string, std::string>& headers) {
  return Request("POST", "127.0.0.1", fake.port(), "/v1/messages", body.dump(), headers);
}

TEST_CASE("fake-agentphone: accepted send answers 200 and is listed in /__fake/sent") {
  FakeUpstream fake({"--token", kToken});
  HttpResult r = PostSend(fake, ValidSend(), Auth("key-1"));
  REQUIRE(r.status == 200);
  REQUIRE(r.json.is_object());
  std::string id = r.json["id"].get<std::string>();
  CHECK(id.rfind("msg_", 0) == 0);
  CHECK(id.size() == 4 + 20);
  CHECK(r.json["status"] == "sent");
  CHECK(r.json["channel"] == "sms");
  CHECK(r.json["from_number"] == "+14155550001");
  CHECK(r.json["to_number"] == "+14155552671");
  CHECK(r.json["conversation_id"].get<std::string>().rfind("conv_", 0) == 0);
  CHECK(r.json["media_urls"] == json::array());
  CHECK(r.json["reply_to_message_id"].is_null());
  CHECK(r.json["reply_parent_unresolved"].is_null());

  json sent = fake.Sent();
  REQUIRE(sent["count"] == 1);
  const json& entry = sent["sends"][0];
  CHECK(entry["idempotency_key"] == "key-1");
  CHECK(entry["id"] == id);
  CHECK(entry["body"] == ValidSend());
  CHECK(entry["received_at_ms"].is_number_integer());
}

TEST_CASE("fake-agentphone: channel, group and reply fields follow the request") {
  FakeUpstream fake;
  json media = ValidSend();
  media["media_urls"] = {"https://example.com/a.png"};
  HttpResult r = PostSend(fake, media, Auth());
  REQUIRE(r.status == 200);
  CHECK(r.json["channel"] == "mms");
  CHECK(r.json["media_urls"] == json::array({"https://example.com/a.png"}));

  json reply = ValidSend();
  reply["reply_to_message_id"] = "msg_parent";
  reply["send_style"] = "slam";
  r = PostSend(fake, reply, Auth());
  REQUIRE(r.status == 200);
  CHECK(r.json["channel"] == "imessage");
  CHECK(r.json["reply_to_message_id"] == "msg_parent");
  CHECK(r.json["reply_parent_unresolved"] == false);

  json group = {{"agent_id", "agent_1"},
                {"recipients", {"+14155552671", "+14155552672"}},
                {"body", "Hi all"}};
  r = PostSend(fake, group, Auth());
  REQUIRE(r.status == 200);
  CHECK(r.json["channel"] == "imessage");
  CHECK(r.json["to_number"].get<std::string>().rfind("grp_", 0) == 0);
}

TEST_CASE("fake-agentphone: does not deduplicate by Idempotency-Key") {
  FakeUpstream fake;
  HttpResult first = PostSend(fake, ValidSend(), Auth("same-key"));
  HttpResult second = PostSend(fake, ValidSend(), Auth("same-key"));
  REQUIRE(first.status == 200);
  REQUIRE(second.status == 200);
  CHECK(first.json["id"] != second.json["id"]);
  json sent = fake.Sent();
  CHECK(sent["count"] == 2);
}

TEST_CASE("fake-agentphone: missing or wrong bearer gets 401 in the error envelope") {
  FakeUpstream fake({"--token", kToken});
  json expected = {{"error",
                    {{"message", "Invalid API key"},
                     {"code", "UNAUTHORIZED"},
                     {"type", "authentication_error"}}}};
  HttpResult missing = PostSend(fake, ValidSend(), {});
  CHECK(missing.status == 401);
  CHECK(missing.json == expected);
  HttpResult wrong = PostSend(fake, ValidSend(), {{"Authorization", "Bearer nope"}});
  CHECK(wrong.status == 401);
  CHECK(wrong.json == expected);
  HttpResult not_bearer = PostSend(fake, ValidSend(), {{"Authorization", "Basic Zm9vOmJhcg=="}});
  CHECK(not_bearer.status == 401);
  CHECK(fake.Sent()["count"] == 0);
  // Every arrival is recorded, whatever its outcome.
  json received = fake.Received();
  REQUIRE(received["count"] == 3);
  for (const json& entry : received["sends"]) CHECK(entry["status"] == 401);
}

TEST_CASE("fake-agentphone: without --token any bearer is accepted, but one is required") {
  FakeUpstream fake;
  CHECK(PostSend(fake, ValidSend(), {{"Authorization", "Bearer anything"}}).status == 200);
  CHECK(PostSend(fake, ValidSend(), {}).status == 401);
}

TEST_CASE("fake-agentphone: an invalid body gets FastAPI's 422") {
  FakeUpstream fake;
  HttpResult r = PostSend(fake, {{"agent_id", "agent_1"}, {"to_number", 5}}, Auth());
  REQUIRE(r.status == 422);
  REQUIRE(r.json["detail"].is_array());
  REQUIRE(!r.json["detail"].empty());
  for (const json& error : r.json["detail"]) {
    CHECK(error["loc"].is_array());
    CHECK(error["loc"][0] == "body");
    CHECK(error["msg"].is_string());
    CHECK(error["type"].is_string());
  }
  HttpResult not_json =
      Request("POST", "127.0.0.1", fake.port(), "/v1/messages", "{not json", Auth());
  CHECK(not_json.status == 422);
  CHECK(fake.Sent()["count"] == 0);
  json received = fake.Received();
  REQUIRE(received["count"] == 2);
  CHECK(received["sends"][1]["body"] == "{not json");
}

TEST_CASE("fake-agentphone: --fail-first fails the first N requests of each key") {
  FakeUpstream fake({"--fail-first", "2"});
  CHECK(PostSend(fake, ValidSend(), Auth("a")).status == 503);
  CHECK(PostSend(fake, ValidSend(), Auth("a")).status == 503);
  // Another key has its own count.
  HttpResult b = PostSend(fake, ValidSend(), Auth("b"));
  CHECK(b.status == 503);
  CHECK(b.json["error"]["code"].is_string());
  CHECK(PostSend(fake, ValidSend(), Auth("a")).status == 200);
  CHECK(PostSend(fake, ValidSend(), Auth("b")).status == 503);
  CHECK(PostSend(fake, ValidSend(), Auth("b")).status == 200);
  json sent = fake.Sent();
  REQUIRE(sent["count"] == 2);
  CHECK(sent["sends"][0]["idempotency_key"] == "a");
  CHECK(sent["sends"][1]["idempotency_key"] == "b");
}

TEST_CASE("fake-agentphone: --rate-429 answers 429 with Retry-After") {
  FakeUpstream fake({"--rate-429", "1"});
  HttpResult r = PostSend(fake, ValidSend(), Auth("k"));
  CHECK(r.status == 429);
  CHECK(r.Header("Retry-After") == "1");
  CHECK(r.json["error"]["code"] == "RATE_LIMIT_EXCEEDED");
  CHECK(r.json["error"]["message"] == "Rate limit exceeded");
}

TEST_CASE("fake-agentphone: --error-rate answers a random 5xx") {
  FakeUpstream fake({"--error-rate", "1", "--seed", "7"});
  for (int i = 0; i < 8; ++i) {
    HttpResult r = PostSend(fake, ValidSend(), Auth());
    CHECK(r.status >= 500);
    CHECK(r.status <= 504);
    CHECK(r.json["error"].is_object());
  }
  CHECK(fake.Sent()["count"] == 0);
}

TEST_CASE("fake-agentphone: --reject-rate answers 422 for a valid body") {
  FakeUpstream fake({"--reject-rate", "1"});
  HttpResult r = PostSend(fake, ValidSend(), Auth());
  CHECK(r.status == 422);
  CHECK(r.json["detail"].is_array());
}

TEST_CASE("fake-agentphone: --drop-rate closes the connection without an answer") {
  FakeUpstream fake({"--drop-rate", "1"});
  HttpResult r = PostSend(fake, ValidSend(), Auth("dropped-key"));
  CHECK(r.status == 0);
  CHECK(!r.error.empty());
  CHECK(fake.Sent()["count"] == 0);
  json received = fake.Received();
  REQUIRE(received["count"] == 1);
  CHECK(received["sends"][0]["status"] == 0);
  CHECK(received["sends"][0]["idempotency_key"] == "dropped-key");
  // The fake keeps serving after a drop.
  fake.SetConfig({{"drop_rate", 0}});
  CHECK(PostSend(fake, ValidSend(), Auth()).status == 200);
}

TEST_CASE("fake-agentphone: force_status via /__fake/config") {
  FakeUpstream fake;
  json config = fake.SetConfig({{"force_status", 402}});
  CHECK(config["force_status"] == 402);
  CHECK(config["latency_ms"] == 0);
  HttpResult r = PostSend(fake, ValidSend(), Auth());
  CHECK(r.status == 402);
  CHECK(r.json["error"]["code"] == "INSUFFICIENT_BALANCE");

  fake.SetConfig({{"force_status", 401}});
  r = PostSend(fake, ValidSend(), Auth());
  CHECK(r.status == 401);
  CHECK(r.json["error"]["code"] == "UNAUTHORIZED");

  fake.SetConfig({{"force_status", 429}});
  r = PostSend(fake, ValidSend(), Auth());
  CHECK(r.status == 429);
  CHECK(r.Header("Retry-After") == "1");

  fake.SetConfig({{"force_status", 503}, {"force_retry_after", "7"}});
  r = PostSend(fake, ValidSend(), Auth());
  CHECK(r.status == 503);
  CHECK(r.Header("Retry-After") == "7");

  fake.SetConfig({{"force_status", 0}, {"force_retry_after", ""}});
  CHECK(PostSend(fake, ValidSend(), Auth()).status == 200);
}

TEST_CASE("fake-agentphone: /__fake/config rejects unknown fields and bad values") {
  FakeUpstream fake;
  auto post_config = [&](const std::string& body) {
    return Request("POST", "127.0.0.1", fake.port(), "/__fake/config", body);
  };
  CHECK(post_config(R"({"no_such_switch": 1})").status == 400);
  CHECK(post_config(R"({"error_rate": 2})").status == 400);
  CHECK(post_config(R"({"force_status": 199})").status == 400);
  CHECK(post_config("[1]").status == 400);
  CHECK(post_config("{oops").status == 400);
  // A refused change leaves the config as it was, even its valid fields.
  CHECK(post_config(R"({"latency_ms": 5, "bogus": true})").status == 400);
  HttpResult current = post_config("{}");
  REQUIRE(current.status == 200);
  CHECK(current.json["latency_ms"] == 0);
}

TEST_CASE("fake-agentphone: /__fake/reset forgets requests but keeps the config") {
  FakeUpstream fake({"--token", kToken});
  fake.SetConfig({{"fail_first", 1}});
  CHECK(PostSend(fake, ValidSend(), Auth("k")).status == 503);
  CHECK(PostSend(fake, ValidSend(), Auth("k")).status == 200);
  CHECK(fake.Received()["count"] == 2);
  fake.Reset();
  CHECK(fake.Sent()["count"] == 0);
  CHECK(fake.Received()["count"] == 0);
  // Config kept (token and fail_first); per-key counts start again.
  CHECK(PostSend(fake, ValidSend(), {}).status == 401);
  CHECK(PostSend(fake, ValidSend(), Auth("k")).status == 503);
}

TEST_CASE("fake-agentphone: /__fake/sent long-poll returns once the send arrives") {
  FakeUpstream fake({"--latency-ms", "500"});
  // Nothing arrives: the long-poll gives up after wait_ms with what there is.
  CHECK(fake.Sent(1, 50)["count"] == 0);

  HttpResult answer;
  std::thread sender([&] { answer = PostSend(fake, ValidSend(), Auth("poll")); });
  json sent = fake.Sent(1, kWaitMs);
  sender.join();
  REQUIRE(sent["count"] == 1);
  REQUIRE(answer.status == 200);
  CHECK(sent["sends"][0]["id"] == answer.json["id"]);

  HttpResult bad = Request("GET", "127.0.0.1", fake.port(), "/__fake/sent?min_count=x");
  CHECK(bad.status == 400);
}

TEST_CASE("fake-agentphone: a slow request is visible in /__fake/received before its answer") {
  FakeUpstream fake({"--latency-ms", "1500"});
  std::atomic<bool> answered{false};
  HttpResult answer;
  std::thread sender([&] {
    answer = PostSend(fake, ValidSend(), Auth("slow"));
    answered = true;
  });
  json received = fake.Received(1, kWaitMs);
  bool answered_when_seen = answered.load();
  REQUIRE(received["count"] == 1);
  sender.join();
  CHECK_FALSE(answered_when_seen);
  CHECK(received["sends"][0]["status"].is_null());  // in flight
  CHECK(received["sends"][0]["idempotency_key"] == "slow");
  REQUIRE(answer.status == 200);
  json after = fake.Received();
  CHECK(after["sends"][0]["status"] == 200);
  CHECK(after["sends"][0]["id"] == answer.json["id"]);
}

TEST_CASE("fake-agentphone: --log appends one line per accepted send") {
  TempDir dir;
  std::string log_path = dir.File("sends.jsonl");
  {
    FakeUpstream fake({"--log", log_path, "--fail-first", "1"});
    CHECK(PostSend(fake, ValidSend(), Auth("logged")).status == 503);
    CHECK(PostSend(fake, ValidSend(), Auth("logged")).status == 200);
    fake.process().Signal(SIGTERM);
    CHECK(fake.process().Wait(kWaitMs) == 0);
  }
  std::ifstream in(log_path);
  std::vector<json> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(json::parse(line));
  REQUIRE(lines.size() == 1);
  CHECK(lines[0]["idempotency_key"] == "logged");
  CHECK(lines[0]["body"] == ValidSend());
}

TEST_CASE("fake-agentphone: logs requests to stderr without the bearer token") {
  FakeUpstream fake({"--token", kToken});
  CHECK(PostSend(fake, ValidSend(), Auth("logged-key")).status == 200);
  fake.process().Signal(SIGTERM);
  CHECK(fake.process().Wait(kWaitMs) == 0);
  CHECK(fake.process().WaitForLine(Stream::kStderr, "logged-key", kWaitMs).has_value());
  CHECK(fake.process().AllStderr().find(kToken) == std::string::npos);
}

TEST_CASE("fake-agentphone: a fixed port can be chosen in advance") {
  int port = FreeLoopbackPort();
  // Nothing listens yet: the harness reports the failure instead of throwing.
  HttpResult refused = Request("GET", "127.0.0.1", port, "/__fake/sent");
  CHECK(refused.status == 0);
  CHECK(!refused.error.empty());
  FakeUpstream fake({}, "", port);
  CHECK(fake.port() == port);
  CHECK(Request("GET", "127.0.0.1", port, "/__fake/sent").status == 200);
}

TEST_CASE("fake-agentphone: harness ChildProcess reports exit codes, signals and output") {
  ChildProcess exits({"/bin/sh", "-c", "echo out-line; echo err-line >&2; exit 3"});
  CHECK(exits.WaitForLine(Stream::kStdout, "out-line", kWaitMs).has_value());
  CHECK(exits.WaitForLine(Stream::kStderr, "err-line", kWaitMs).has_value());
  CHECK(exits.Wait(kWaitMs) == 3);
  // The stream has ended: waiting for a line that never comes returns at once.
  CHECK_FALSE(exits.WaitForLine(Stream::kStdout, "never", kWaitMs).has_value());

  ChildProcess env({"/bin/sh", "-c", "echo \"value=$SENDQ_HARNESS_TEST\""},
                   {{"SENDQ_HARNESS_TEST", "42"}});
  CHECK(env.WaitForLine(Stream::kStdout, "value=42", kWaitMs).has_value());

  // cat blocks on stdin, which is /dev/null, so it ends by itself.
  ChildProcess cat({"/bin/cat"});
  CHECK(cat.Wait(kWaitMs) == 0);

  ChildProcess sleeper({"/bin/sh", "-c", "echo ready; exec sleep 600"});
  REQUIRE(sleeper.WaitForLine(Stream::kStdout, "ready", kWaitMs).has_value());
  CHECK_FALSE(sleeper.Wait(0).has_value());
  sleeper.Signal(SIGTERM);
  CHECK(sleeper.Wait(kWaitMs) == 128 + SIGTERM);

  ChildProcess killed({"/bin/sh", "-c", "exec sleep 600"});
  CHECK(killed.Kill() == 128 + SIGKILL);
  CHECK(killed.Exited());

  CHECK_THROWS(ChildProcess({"/nonexistent/binary"}));
}

TEST_CASE("fake-agentphone: SIGTERM stops the fake cleanly") {
  FakeUpstream fake({"--latency-ms", "60000"});
  // A request held in its latency wait must not delay the stop.
  std::thread sender([&] { PostSend(fake, ValidSend(), Auth()); });
  REQUIRE(fake.Received(1, kWaitMs)["count"] == 1);
  fake.process().Signal(SIGTERM);
  std::optional<int> status = fake.process().Wait(kWaitMs);
  INFO("fake-agentphone stderr:\n" << fake.process().AllStderr());
  CHECK(status == 0);
  sender.join();
}

}  // namespace
}  // namespace sendq::test
