// What operators use, against the real processes: the admin role, bulk retry and cancel,
// pauses, the audit, the feed of changes, stats, export, backup and restore, retention,
// redaction, and the OpenAPI document (every route in it, answers valid against it).
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>
#include <thread>

#include "api/openapi.h"
#include "scenario.h"

namespace sendq::test {
namespace {

using json = nlohmann::json;
using Flags = std::vector<std::string>;
using Headers = std::map<std::string, std::string>;

constexpr char kAdminToken[] = "admin-test-token";
constexpr char kBobToken[] = "bob-test-token-1";

const Headers kAdmin = {{"Authorization", std::string("Bearer ") + kAdminToken}};
const Headers kBob = {{"Authorization", std::string("Bearer ") + kBobToken}};

// A fake AgentPhone and a sendq with two producers (test, bob) and an admin (ops).
struct Ops {
  TempDir dir;
  std::unique_ptr<FakeUpstream> upstream;
  std::unique_ptr<SendqProcess> sendq;
  SendqOptions options;
  // Every answer a test wants checked against docs/openapi.json, as JSON lines.
  std::vector<json> answers;

  explicit Ops(Flags sendq_args = {}, Flags fake_flags = {}) {
    fake_flags.insert(fake_flags.begin(), {"--token", kTestUpstreamToken});
    upstream = std::make_unique<FakeUpstream>(fake_flags, dir.path());
    options.upstream_url = upstream->url();
    options.data_dir = dir.path();
    options.api_tokens = std::string("test:") + kTestApiToken + ",bob:" + kBobToken;
    options.extra_env["SENDQ_ADMIN_TOKENS"] = std::string("ops:") + kAdminToken;
    options.extra_args = FastRetryArgs();
    options.extra_args.insert(options.extra_args.end(), sendq_args.begin(), sendq_args.end());
    sendq = std::make_unique<SendqProcess>(options);
  }

  void Restart() {
    sendq.reset();
    sendq = std::make_unique<SendqProcess>(options);
  }

  // A request whose JSON answer is kept for the schema check.
  HttpResult Checked(const std::string& method, const std::string& path, const json& body = {},
                     const Headers& headers = {}) {
    HttpResult r = sendq->Send(method, path, body.is_null() ? "" : body.dump(), headers);
    if (!r.json.is_null()) {
      answers.push_back(
          {{"method", method}, {"path", path}, {"status", r.status}, {"body", r.json}});
    }
    return r;
  }
};

// Blocks until `done()` holds, each time waiting on the feed of changes (which wakes at any
// commit) for at most a second. False if `timeout_ms` passes first.
template <typename Done>
bool WaitUntil(SendqProcess& sendq, Done done, int timeout_ms = 60'000) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  std::string cursor = sendq.Get("/v1/messages/changes", kAdmin).json.at("next_cursor");
  for (;;) {
    if (done()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    HttpResult r = sendq.Get("/v1/messages/changes?wait=1&limit=200&after=" + cursor, kAdmin);
    REQUIRE(r.status == 200);
    cursor = r.json.at("next_cursor");
  }
}

int64_t Stat(SendqProcess& sendq, const std::string& status) {
  HttpResult r = sendq.Get("/v1/stats", kAdmin);
  REQUIRE(r.status == 200);
  return r.json.at("messages").at(status).get<int64_t>();
}

int64_t Metric(SendqProcess& sendq, const std::string& line_start) {
  const std::string body = sendq.Get("/metrics", kAdmin).body;
  const size_t at = ("\n" + body).find("\n" + line_start + " ");
  if (at == std::string::npos) return -1;
  return std::stoll(body.substr(at + line_start.size()));
}

std::vector<std::string> EnqueueBatch(SendqProcess& sendq, int count, const std::string& body,
                                      int first_recipient = 0) {
  std::vector<std::string> ids;
  for (int start = 0; start < count; start += 500) {
    json items = json::array();
    for (int i = start; i < std::min(count, start + 500); ++i) {
      items.push_back(ExampleRequestTo((first_recipient + i) % 10'000, body));
    }
    HttpResult r = sendq.Post("/v1/messages/batch", {{"messages", items}});
    REQUIRE(r.status == 200);
    for (const json& item : r.json.at("results")) ids.push_back(item.at("message").at("id"));
  }
  return ids;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

int64_t Percentile(std::vector<int64_t> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  return values[std::min(values.size() - 1, static_cast<size_t>(p * values.size()))];
}

// Runs tools/openapi_check.py; its exit code.
int RunOpenApiCheck(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"/usr/bin/python3", SourceDir() + "/tools/openapi_check.py",
                                   SourceDir() + "/docs/openapi.json"};
  argv.insert(argv.end(), args.begin(), args.end());
  ChildProcess check(argv);
  std::optional<int> code = check.Wait(60'000);
  std::string output;
  for (const std::string& line : check.Lines(Stream::kStdout)) output += line + "\n";
  MESSAGE("openapi_check: " << output << check.AllStderr());
  REQUIRE(code.has_value());
  return *code;
}

void CheckAgainstDocument(const Ops& ops) {
  const std::string path = ops.dir.path() + "/answers.jsonl";
  std::ofstream out(path);
  for (const json& answer : ops.answers) out << answer.dump() << "\n";
  out.close();
  CHECK(RunOpenApiCheck({path}) == 0);
}

TEST_CASE("operators: the OpenAPI document covers every route, and is served as it is") {
  TempDir dir;
  const std::string routes = dir.path() + "/routes.txt";
  std::ofstream out(routes);
  for (const std::string& route : api::RegisteredRoutes()) out << route << "\n";
  out.close();
  CHECK(RunOpenApiCheck({"--routes", routes}) == 0);

  Ops ops;
  HttpResult doc = ops.sendq->Get("/openapi.json", {{"Authorization", ""}});
  REQUIRE(doc.status == 200);
  CHECK(doc.body == ReadFile(SourceDir() + "/docs/openapi.json"));
  CHECK(doc.json.at("openapi") == "3.1.0");
}

TEST_CASE("operators: producer tokens are refused on every admin route, admins read everyone") {
  Ops ops;
  for (const std::string& route : api::RegisteredRoutes()) {
    if (route.find(" /v1/admin/") == std::string::npos) continue;
    const std::string method = route.substr(0, route.find(' '));
    const std::string path = route.substr(route.find(' ') + 1);
    INFO(route);
    HttpResult r = ops.Checked(method, path, method == "POST" ? json::object() : json());
    CHECK(r.status == 403);
    CHECK(r.json.at("code") == "forbidden");
    CHECK(ops.sendq->Send(method, path, "", {{"Authorization", "Bearer nope-nope"}}).status == 401);
  }
  // An admin does not act as a producer.
  HttpResult as_producer = ops.Checked("POST", "/v1/messages", ExampleRequest(), kAdmin);
  CHECK(as_producer.status == 403);

  const std::string mine = Enqueue(*ops.sendq, ExampleRequestTo(1, "from test"));
  const std::string bobs = Enqueue(*ops.sendq, ExampleRequestTo(2, "from bob"), kBob);
  CHECK(WaitFinal(*ops.sendq, mine).at("status") == "sent");

  HttpResult all = ops.Checked("GET", "/v1/messages", {}, kAdmin);
  REQUIRE(all.status == 200);
  CHECK(all.json.at("data").size() == 2);
  HttpResult only_bob = ops.Checked("GET", "/v1/messages?producer=bob", {}, kAdmin);
  REQUIRE(only_bob.json.at("data").size() == 1);
  CHECK(only_bob.json.at("data")[0].at("id") == bobs);
  CHECK(ops.Checked("GET", "/v1/messages/" + bobs, {}, kAdmin).status == 200);
  CHECK(ops.Checked("GET", "/v1/messages/" + mine + "/attempts", {}, kAdmin).status == 200);
  // A producer still sees only its own.
  CHECK(ops.Checked("GET", "/v1/messages/" + bobs).status == 404);
  CHECK(ops.Checked("GET", "/v1/messages?producer=bob").status == 403);
  HttpResult stats = ops.Checked("GET", "/v1/stats", {}, kBob);
  REQUIRE(stats.status == 200);
  CHECK(stats.json.at("messages").at("queued").get<int>() +
            stats.json.at("messages").at("sending").get<int>() +
            stats.json.at("messages").at("sent").get<int>() ==
        1);
  CHECK(ops.Checked("GET", "/v1/stats", {}, kAdmin).status == 200);
  CheckAgainstDocument(ops);
}

TEST_CASE("operators: bulk cancel by filter, dry run first, idempotent when repeated") {
  // Sending paused: everything stays queued (none is in flight when the filters run).
  Ops ops;
  REQUIRE(ops.sendq->Post("/v1/admin/pause", json::object(), kAdmin).status == 200);
  EnqueueBatch(*ops.sendq, 30, "reminder");
  Enqueue(*ops.sendq, ExampleRequestTo(7000, "bob's"), kBob);
  const json filter = {{"producer", "test"}, {"created_after", "2020-01-01T00:00:00Z"}};

  json dry = filter;
  dry["dry_run"] = true;
  HttpResult preview = ops.Checked("POST", "/v1/admin/messages/cancel", dry, kAdmin);
  REQUIRE(preview.status == 200);
  CHECK(preview.json == json{{"matched", 30}, {"changed", 0}});
  CHECK(Stat(*ops.sendq, "canceled") == 0);

  HttpResult done = ops.Checked("POST", "/v1/admin/messages/cancel", filter, kAdmin);
  CHECK(done.json == json{{"matched", 30}, {"changed", 30}});
  CHECK(Stat(*ops.sendq, "canceled") == 30);
  CHECK(Stat(*ops.sendq, "queued") == 1);  // bob's
  HttpResult again = ops.Checked("POST", "/v1/admin/messages/cancel", filter, kAdmin);
  CHECK(again.json == json{{"matched", 0}, {"changed", 0}});

  // One recipient's, by number in any format.
  HttpResult one =
      ops.Checked("POST", "/v1/admin/messages/cancel", {{"to_number", "(415) 555-7000"}}, kAdmin);
  CHECK(one.json == json{{"matched", 1}, {"changed", 1}});

  HttpResult bad = ops.Checked("POST", "/v1/admin/messages/retry",
                               {{"status", "sent"}, {"colour", "red"}}, kAdmin);
  REQUIRE(bad.status == 422);
  CHECK(bad.json.at("detail").size() == 2);

  HttpResult audit = ops.Checked("GET", "/v1/admin/audit", {}, kAdmin);
  REQUIRE(audit.status == 200);
  const json& entries = audit.json.at("data");
  REQUIRE(entries.size() == 5);  // the pause, and not the refused one
  CHECK(entries[0].at("action") == "messages.cancel");
  CHECK(entries[0].at("actor") == "ops");
  CHECK(entries[0].at("changed") == 1);
  CHECK(entries[3].at("details").at("dry_run") == true);
  CHECK(entries[3].at("matched") == 30);
  CheckAgainstDocument(ops);
}

TEST_CASE("operators: a bulk retry of 10,000 failed messages does not stall enqueues") {
  // Every send is refused for good: with one attempt each, all 10,000 fail at once.
  Ops ops({"--max-attempts", "1", "--workers", "32"});
  ops.upstream->SetConfig({{"force_status", 400}});
  const int kCount = 10'000;
  EnqueueBatch(*ops.sendq, kCount, "bulk");
  REQUIRE(WaitUntil(
      *ops.sendq, [&] { return Stat(*ops.sendq, "failed") == kCount; }, 300'000));
  ops.upstream->SetConfig({{"force_status", 0}});

  // A producer enqueues one by one, before (the baseline) and during the bulk retry.
  auto enqueue_latencies = [&](std::atomic<bool>* stop, int at_most) {
    std::vector<int64_t> latencies;
    for (int i = 0; i < at_most && !stop->load(); ++i) {
      const auto start = std::chrono::steady_clock::now();
      HttpResult r = ops.sendq->Post("/v1/messages", ExampleRequestTo(9000 + i % 500, "live"));
      latencies.push_back(std::chrono::duration_cast<std::chrono::microseconds>(
                              std::chrono::steady_clock::now() - start)
                              .count());
      REQUIRE(r.status == 202);
    }
    return latencies;
  };
  std::atomic<bool> never{false};
  const std::vector<int64_t> baseline = enqueue_latencies(&never, 300);

  // Sending is paused meanwhile, so that what is measured is the bulk operation itself, not
  // the deliveries of 10,000 messages due at once.
  REQUIRE(ops.sendq->Post("/v1/admin/pause", json::object(), kAdmin).status == 200);
  std::atomic<bool> done{false};
  std::vector<int64_t> during;
  std::thread producer([&] { during = enqueue_latencies(&done, 100'000); });
  const auto start = std::chrono::steady_clock::now();
  HttpResult retried =
      ops.sendq->Post("/v1/admin/messages/retry", {{"status", "failed"}}, kAdmin, 300'000);
  const auto took = std::chrono::steady_clock::now() - start;
  done = true;
  producer.join();
  REQUIRE(retried.status == 200);
  CHECK(retried.json == json{{"matched", kCount}, {"changed", kCount}});
  CHECK(!during.empty());
  MESSAGE("bulk retry of " << kCount << " failed messages took "
                           << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
                           << " ms; enqueue latency p50/p99/max (us): baseline "
                           << Percentile(baseline, 0.5) << "/" << Percentile(baseline, 0.99) << "/"
                           << Percentile(baseline, 1.0) << ", during " << Percentile(during, 0.5)
                           << "/" << Percentile(during, 0.99) << "/" << Percentile(during, 1.0)
                           << " over " << during.size() << " enqueues");
  CHECK(Stat(*ops.sendq, "queued") >= kCount);
  REQUIRE(ops.sendq->Post("/v1/admin/resume", json::object(), kAdmin).status == 200);
  // Repeating it changes nothing more: they are queued (or sent) now.
  HttpResult again =
      ops.sendq->Post("/v1/admin/messages/retry", {{"status", "failed"}}, kAdmin, 300'000);
  CHECK(again.json.at("changed") == 0);
}

TEST_CASE("operators: a paused sender waits, others send, and pauses survive a restart") {
  Ops ops;
  HttpResult paused = ops.Checked("POST", "/v1/admin/pause", {{"sender", "agent_paused"}}, kAdmin);
  REQUIRE(paused.status == 200);
  CHECK(paused.json == json{{"global", false}, {"senders", {"agent_paused"}}});

  json held_request = ExampleRequestTo(11, "waits");
  held_request["agent_id"] = "agent_paused";
  const std::string held = Enqueue(*ops.sendq, held_request);
  const std::string other = Enqueue(*ops.sendq, ExampleRequestTo(12, "goes"));
  // The other sender's later message is sent; the paused one is still queued, uncharged.
  CHECK(WaitFinal(*ops.sendq, other).at("status") == "sent");
  HttpResult record = ops.Checked("GET", "/v1/messages/" + held);
  CHECK(record.json.at("status") == "queued");
  CHECK(record.json.at("attempts") == 0);
  CHECK(record.json.at("sendq").at("paused") == true);
  CHECK(Metric(*ops.sendq, "sendq_sender_paused{sender=\"agent_paused\"}") == 1);

  // Everything paused, then a restart: still paused.
  CHECK(ops.Checked("POST", "/v1/admin/pause", json::object(), kAdmin).json.at("global") == true);
  const std::string later = Enqueue(*ops.sendq, ExampleRequestTo(13, "later"));
  ops.Restart();
  HttpResult pauses = ops.Checked("GET", "/v1/admin/pauses", {}, kAdmin);
  CHECK(pauses.json == json{{"global", true}, {"senders", {"agent_paused"}}});
  HttpResult ready = ops.Checked("GET", "/readyz");
  CHECK(ready.json.at("paused") == true);
  CHECK(std::find(ready.json.at("reasons").begin(), ready.json.at("reasons").end(), "paused") !=
        ready.json.at("reasons").end());
  CHECK(Metric(*ops.sendq, "sendq_sending_paused") == 1);
  // Nothing is sent while it waits: the message does not change within a second.
  const json before = ops.sendq->Get("/v1/messages/" + later).json;
  const json after = ops.sendq
                         ->Get("/v1/messages/" + later + "?wait=1s&after_version=" +
                               std::to_string(before.at("version").get<int64_t>()))
                         .json;
  CHECK(after.at("status") == "queued");
  CHECK(after.at("sendq").at("paused") == true);

  // Resuming everything lifts every pause.
  HttpResult resumed = ops.Checked("POST", "/v1/admin/resume", json::object(), kAdmin);
  CHECK(resumed.json == json{{"global", false}, {"senders", json::array()}});
  CHECK(WaitFinal(*ops.sendq, later).at("status") == "sent");
  CHECK(WaitFinal(*ops.sendq, held).at("status") == "sent");
  CHECK(Metric(*ops.sendq, "sendq_sending_paused") == 0);
  HttpResult audit = ops.Checked("GET", "/v1/admin/audit?limit=2", {}, kAdmin);
  CHECK(audit.json.at("data")[0].at("action") == "resume");
  CHECK(audit.json.at("has_more") == true);
  CHECK(ops.Checked("GET",
                    "/v1/admin/audit?cursor=" + audit.json.at("next_cursor").get<std::string>(), {},
                    kAdmin)
            .json.at("data")
            .size() == 1);
  CheckAgainstDocument(ops);
}

TEST_CASE("operators: the feed of changes wakes a follower and pages in order") {
  Ops ops;
  HttpResult start = ops.Checked("GET", "/v1/messages/changes");
  REQUIRE(start.status == 200);
  CHECK(start.json.at("data").empty());
  std::string cursor = start.json.at("next_cursor");
  std::string id;
  std::thread producer([&] { id = Enqueue(*ops.sendq, ExampleRequestTo(21, "follow me")); });
  std::set<std::string> statuses;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (statuses.count("sent") == 0 && std::chrono::steady_clock::now() < deadline) {
    HttpResult page = ops.Checked("GET", "/v1/messages/changes?wait=10&after=" + cursor);
    REQUIRE(page.status == 200);
    for (const json& m : page.json.at("data")) statuses.insert(m.at("status").get<std::string>());
    cursor = page.json.at("next_cursor");
  }
  producer.join();
  CHECK(statuses.count("sent") == 1);
  // Bob does not see test's changes.
  HttpResult bobs = ops.Checked(
      "GET", "/v1/messages/changes?after=" + start.json.at("next_cursor").get<std::string>(), {},
      kBob);
  CHECK(bobs.json.at("data").empty());
  CHECK(ops.Checked("GET", "/v1/messages/changes?after=nonsense").status == 422);
  CheckAgainstDocument(ops);
}

TEST_CASE("operators: export streams every matching message as JSON lines or CSV") {
  Ops ops;
  std::vector<std::string> ids = EnqueueBatch(*ops.sendq, 40, "Hi, \"quoted\", and a comma");
  Enqueue(*ops.sendq, ExampleRequestTo(500, "bob's"), kBob);
  for (const std::string& id : ids) WaitFinal(*ops.sendq, id);

  HttpResult jsonl = ops.sendq->Get("/v1/messages/export?format=jsonl&attempts=true");
  REQUIRE(jsonl.status == 200);
  CHECK(jsonl.Header("content-type") == "application/x-ndjson");
  std::istringstream lines(jsonl.body);
  std::vector<std::string> seen;
  for (std::string line; std::getline(lines, line);) {
    json record = json::parse(line);
    seen.push_back(record.at("id"));
    CHECK(record.at("ledger").size() == 1);
    CHECK(record.at("ledger")[0].at("outcome") == "sent");
  }
  std::sort(ids.begin(), ids.end());
  CHECK(seen == ids);  // oldest first, only this producer's

  HttpResult csv = ops.sendq->Get("/v1/messages/export?format=csv&status=sent", kAdmin);
  REQUIRE(csv.status == 200);
  CHECK(csv.Header("content-type").starts_with("text/csv"));
  CHECK(csv.Header("x-sendq-export-count") == "41");
  CHECK(csv.body.starts_with("id,producer,status,to_number,"));
  CHECK(std::count(csv.body.begin(), csv.body.end(), '\n') == 42);
  CHECK(csv.body.find(",bob,sent,+14155550500,") != std::string::npos);

  CHECK(ops.sendq->Get("/v1/messages/export?format=xml").status == 422);
  CHECK(ops.sendq->Get("/v1/messages/export?limit=5").status == 422);
}

TEST_CASE("operators: a backup taken under load restores every message and ledger row") {
  Ops ops;
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::vector<std::string> acknowledged;
  std::thread producer([&] {
    for (int i = 0; i < 5'000 && !stop; ++i) {
      HttpResult r = ops.sendq->Post("/v1/messages", ExampleRequestTo(i % 1000, "under load"));
      REQUIRE(r.status == 202);
      std::lock_guard<std::mutex> lock(mu);
      acknowledged.push_back(r.json.at("id"));
    }
  });
  // Some history first: once 300 are acknowledged, the first 100 are final.
  REQUIRE(WaitUntil(*ops.sendq, [&] {
    std::lock_guard<std::mutex> lock(mu);
    return acknowledged.size() >= 300;
  }));
  std::vector<std::string> before;
  {
    std::lock_guard<std::mutex> lock(mu);
    before = acknowledged;
  }
  for (size_t i = 0; i < 100; ++i) WaitFinal(*ops.sendq, before[i]);
  std::map<std::string, json> ledgers;
  for (size_t i = 0; i < 100; ++i) {
    ledgers[before[i]] = ops.sendq->Get("/v1/messages/" + before[i] + "/attempts").json;
  }
  HttpResult backup = ops.Checked("GET", "/v1/admin/backup", {}, kAdmin);
  stop = true;
  producer.join();
  REQUIRE(backup.status == 200);
  CHECK(backup.Header("content-type") == "application/vnd.sqlite3");
  CHECK(backup.body.starts_with(std::string("SQLite format 3\0", 16)));

  TempDir restored;
  {
    std::ofstream out(restored.path() + "/sendq.db", std::ios::binary);
    out << backup.body;
  }
  SendqOptions options = ops.options;
  options.data_dir = restored.path();
  SendqProcess copy(options);
  // Every message acknowledged before the backup began is there, with its ledger.
  for (const std::string& id : before) {
    INFO(id);
    REQUIRE(copy.Get("/v1/messages/" + id).status == 200);
  }
  for (const auto& [id, ledger] : ledgers)
    CHECK(copy.Get("/v1/messages/" + id + "/attempts").json == ledger);
  // The backup is audited (after the copy was taken, so in the original only).
  CHECK(ops.sendq->Get("/v1/admin/audit", kAdmin).json.at("data")[0].at("action") == "backup");
}

TEST_CASE("operators: retention deletes final messages and the file stops growing") {
  Ops ops({"--retain", "1s"});
  std::vector<int64_t> sizes;
  int64_t deleted = 0;
  for (int round = 0; round < 4; ++round) {
    // Only final messages are deleted: once all 300 are, all were sent.
    std::vector<std::string> ids = EnqueueBatch(*ops.sendq, 300, std::string(400, 'x'));
    deleted += 300;
    REQUIRE(WaitUntil(*ops.sendq, [&] {
      return Metric(*ops.sendq, "sendq_retention_deleted_total") == deleted;
    }));
    CHECK(ops.sendq->Get("/v1/messages/" + ids[0]).status == 404);
    CHECK(ops.sendq->Get("/v1/messages/" + ids[0] + "/attempts").status == 404);
    sizes.push_back(Metric(*ops.sendq, "sendq_db_size_bytes"));
  }
  MESSAGE("database size after each round of 300 (bytes): " << sizes[0] << ", " << sizes[1] << ", "
                                                            << sizes[2] << ", " << sizes[3]);
  // The pages freed by one round are used again by the next.
  CHECK(sizes[3] <= sizes[0] + sizes[0] / 4);
  CHECK(Stat(*ops.sendq, "sent") == 0);
}

TEST_CASE("operators: redaction leaves no body or phone number in the files") {
  Ops ops({"--redact-after", "1s"});
  json request = ExampleRequest("zebra-secret-4242 is your code");
  request["to_number"] = "+14155550199";
  request["media_urls"] = {"https://example.com/private-photo-777.jpg"};
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) ids.push_back(Enqueue(*ops.sendq, request));
  for (const std::string& id : ids) REQUIRE(WaitFinal(*ops.sendq, id).at("status") == "sent");

  // Wait until passes have redacted all five, then for the write-ahead log emptied after that.
  ChildProcess& process = ops.sendq->process();
  size_t next_line = 0;
  int64_t redacted = 0;
  while (redacted < 5) {
    REQUIRE(process.WaitForLine(Stream::kStderr, "\"maintenance_pass\"", 30'000, next_line));
    const std::vector<std::string> lines = process.Lines(Stream::kStderr);
    for (; next_line < lines.size() && redacted < 5; ++next_line) {
      if (lines[next_line].find("\"maintenance_pass\"") == std::string::npos) continue;
      redacted += json::parse(lines[next_line]).at("redacted").get<int64_t>();
    }
  }
  REQUIRE(process.WaitForLine(Stream::kStderr, "write_ahead_log_emptied", 30'000, next_line));

  for (const char* suffix : {"", "-wal"}) {
    const std::string bytes = ReadFile(ops.sendq->db_path() + suffix);
    INFO("file sendq.db" << suffix << " (" << bytes.size() << " bytes)");
    CHECK(bytes.find("zebra-secret") == std::string::npos);
    CHECK(bytes.find("4155550199") == std::string::npos);
    CHECK(bytes.find("private-photo") == std::string::npos);
  }
  // The audit survives: ids, statuses, provider ids; an admin finds them by the number.
  HttpResult found = ops.Checked("GET", "/v1/messages?to_number=%2B14155550199", {}, kAdmin);
  REQUIRE(found.json.at("data").size() == 5);
  for (const json& m : found.json.at("data")) {
    CHECK(m.at("status") == "sent");
    CHECK(m.at("provider_message_id").is_string());
    CHECK(m.at("to_number").get<std::string>().starts_with("redacted:"));
    CHECK(m.at("media_urls") == json::array({"[redacted]"}));
  }
  CHECK(Metric(*ops.sendq, "sendq_redacted_total") == 5);
  CheckAgainstDocument(ops);
}

}  // namespace
}  // namespace sendq::test
