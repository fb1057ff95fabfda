// The operator commands that need the server's operations endpoints (GET /v1/stats,
// /v1/messages/changes, /v1/messages/export, /v1/admin/*): tail, stats, export, backup and
// admin, run as real processes against a real sendq with an admin token and the fake
// AgentPhone.
#include <doctest/doctest.h>
#include <signal.h>

#include <chrono>
#include <fstream>
#include <set>
#include <sstream>

#include "cli_run.h"
#include "scenario.h"

namespace sendq::test {
namespace {

using nlohmann::json;

constexpr char kCliAdminToken[] = "sendq-admin-test-token";

std::string Describe(const CliResult& r) {
  return "exit " + std::to_string(r.exit_code) + "\nstdout: " + r.out + "\nstderr: " + r.err;
}

// Runs the command and checks that what it wrote to pipes has no terminal codes.
CliResult Run(const std::vector<std::string>& args, const CliOptions& options) {
  CliResult r = RunCli(args, options);
  INFO(Describe(r));
  if (!options.stderr_tty) CHECK(IsPlainText(r.err));
  CHECK(IsPlainText(r.out));
  return r;
}

std::string ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

bool FileExists(const std::string& path) { return std::ifstream(path).good(); }

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// A request that stays queued for an hour (send_at ahead).
json Scheduled(int n) {
  json request = ExampleRequestTo(n, "Later");
  const auto later = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count() +
                     3'600'000;
  request["sendq"] = {{"send_at", FormatRfc3339(later)}};
  return request;
}

// sendq with the producer "test" and the admin "ops", and the fake AgentPhone.
struct AdminScenario {
  TempDir dir;
  std::unique_ptr<FakeUpstream> upstream;
  std::unique_ptr<SendqProcess> sendq;

  explicit AdminScenario(std::vector<std::string> sendq_args = {}) {
    upstream = std::make_unique<FakeUpstream>(
        std::vector<std::string>{"--token", kTestUpstreamToken}, dir.path());
    SendqOptions options;
    options.upstream_url = upstream->url();
    options.data_dir = dir.path();
    options.extra_args = FastRetryArgs();
    options.extra_args.insert(options.extra_args.end(), sendq_args.begin(), sendq_args.end());
    options.extra_env = {{"SENDQ_ADMIN_TOKENS", std::string("ops:") + kCliAdminToken}};
    sendq = std::make_unique<SendqProcess>(options);
  }

  CliOptions Producer() const {
    CliOptions o;
    o.url = sendq->url();
    o.token = kTestApiToken;
    return o;
  }
  CliOptions Admin() const {
    CliOptions o = Producer();
    o.token = kCliAdminToken;
    return o;
  }
};

TEST_CASE("cli admin: stats --json has the contract's shape") {
  AdminScenario s;
  const std::string sent = Enqueue(*s.sendq, ExampleRequestTo(1));
  REQUIRE(WaitFinal(*s.sendq, sent).at("status") == "sent");
  Enqueue(*s.sendq, Scheduled(2));

  const CliResult r = Run({"stats", "--json"}, s.Producer());
  REQUIRE(r.exit_code == 0);
  const json stats = r.Json();
  REQUIRE(stats.is_object());
  for (const char* status : {"queued", "sending", "sent", "failed", "canceled", "held"}) {
    CHECK_MESSAGE(stats.at("messages").at(status).is_number_integer(), status);
  }
  CHECK(stats["messages"]["sent"] == 1);
  CHECK(stats["messages"]["queued"] == 1);
  CHECK(stats.at("oldest_queued_age_seconds").is_number());
  CHECK(stats.at("upstream").at("state") == "ok");
  CHECK(stats.at("paused").at("global") == false);
  CHECK(stats.at("paused").at("senders").is_array());
  CHECK(r.out.find('\n') == r.out.size() - 1);  // one object on one line

  const CliResult admin = Run({"stats", "--json", "--producer", "test"}, s.Admin());
  REQUIRE(admin.exit_code == 0);
  CHECK(admin.Json().at("messages") == stats.at("messages"));

  const CliResult human = Run({"stats"}, s.Producer());
  CHECK(human.exit_code == 0);
  CHECK(human.out.find("queued") != std::string::npos);
  CHECK(human.out.find("oldest queued") != std::string::npos);
  CHECK(human.out.find("upstream        ok") != std::string::npos);
}

TEST_CASE("cli admin: tail prints each change as it happens and stops on SIGINT with 0") {
  AdminScenario s;
  // The cursor of "now", so that nothing queued after it can be missed.
  HttpResult now = s.sendq->Get("/v1/messages/changes");
  REQUIRE(now.status == 200);
  const std::string cursor = now.json.at("next_cursor");
  const std::map<std::string, std::string> env = {{"SENDQ_URL", s.sendq->url()},
                                                  {"SENDQ_TOKEN", kTestApiToken}};

  ChildProcess json_tail({SendqBinary(), "tail", "--json", "--after", cursor}, env);
  ChildProcess human_tail({SendqBinary(), "tail", "--after", cursor}, env);
  const std::string id = Enqueue(*s.sendq, ExampleRequestTo(1));

  auto sent_line = json_tail.WaitForLine(
      Stream::kStdout,
      [&](const std::string& line) {
        const json record = json::parse(line, nullptr, false);
        return record.is_object() && record.value("id", "") == id &&
               record.value("status", "") == "sent";
      },
      30'000);
  REQUIRE(sent_line.has_value());
  for (const std::string& line : json_tail.Lines(Stream::kStdout)) {
    CHECK(json::parse(line, nullptr, false).is_object());  // every line is one JSON record
  }
  auto human_line = human_tail.WaitForLine(
      Stream::kStdout,
      [&](const std::string& line) {
        return line.find(id) != std::string::npos && line.find(" sent ") != std::string::npos;
      },
      30'000);
  REQUIRE(human_line.has_value());
  CHECK(human_line->find("msg_") != std::string::npos);

  json_tail.Signal(SIGINT);
  human_tail.Signal(SIGINT);
  // -1: still running after 30 s (the value, not just "false", shows in a failure).
  CHECK(json_tail.Wait(30'000).value_or(-1) == 0);
  CHECK(human_tail.Wait(30'000).value_or(-1) == 0);
  CHECK(json_tail.AllStderr() == "");

  // An admin may follow one producer.
  ChildProcess admin_tail(
      {SendqBinary(), "tail", "--json", "--producer", "test", "--after", cursor},
      {{"SENDQ_URL", s.sendq->url()}, {"SENDQ_TOKEN", kCliAdminToken}});
  REQUIRE(admin_tail.WaitForLine(Stream::kStdout, id, 30'000).has_value());
  admin_tail.Signal(SIGTERM);
  CHECK(admin_tail.Wait(30'000).value_or(-1) == 0);
}

TEST_CASE("cli admin: export streams JSON lines or CSV to a file or stdout") {
  AdminScenario s;
  std::set<std::string> ids;
  for (int i = 0; i < 3; ++i) ids.insert(Enqueue(*s.sendq, ExampleRequestTo(i)));
  for (const std::string& id : ids) REQUIRE(WaitFinal(*s.sendq, id).at("status") == "sent");

  const std::string file = s.dir.File("export.jsonl");
  const CliResult to_file = Run({"export", "-o", file}, s.Producer());
  REQUIRE(to_file.exit_code == 0);
  CHECK(to_file.out.find("exported") != std::string::npos);
  CHECK(!FileExists(file + ".partial"));
  std::set<std::string> exported;
  for (const std::string& line : Lines(ReadBytes(file))) {
    const json record = json::parse(line, nullptr, false);
    REQUIRE(record.is_object());
    exported.insert(record.at("id").get<std::string>());
  }
  CHECK(exported == ids);

  const CliResult csv = Run({"export", "--format", "csv", "--attempts"}, s.Producer());
  REQUIRE(csv.exit_code == 0);
  const std::vector<std::string> rows = Lines(csv.out);
  REQUIRE(rows.size() == 4);
  CHECK(rows[0] ==
        "id,producer,status,to_number,from_number,agent_id,provider_message_id,created_at,"
        "sent_at,updated_at,attempts,last_error,ledger");
  CHECK(csv.err.empty());  // no progress line: stderr is not a terminal

  const std::string with_attempts = s.dir.File("attempts.jsonl");
  const CliResult summary =
      Run({"export", "--attempts", "--json", "--output", with_attempts}, s.Producer());
  REQUIRE(summary.exit_code == 0);
  CHECK(summary.Json().at("lines") == 3);
  CHECK(summary.Json().at("path") == with_attempts);
  for (const std::string& line : Lines(ReadBytes(with_attempts))) {
    const json record = json::parse(line);
    REQUIRE(record.at("ledger").size() == 1);
    CHECK(record["ledger"][0].at("outcome") == "sent");
  }

  // Filters, and a progress line when stderr is a terminal.
  CHECK(Run({"export", "--status", "failed"}, s.Producer()).out.empty());
  CliOptions tty = s.Producer();
  tty.stderr_tty = true;
  const CliResult progress = RunCli({"export", "-o", s.dir.File("tty.jsonl")}, tty);
  CHECK(progress.exit_code == 0);
  CHECK(progress.err.find("\r\033[K") != std::string::npos);
  CHECK(progress.err.find("3 lines") != std::string::npos);
}

TEST_CASE("cli admin: a bulk retry on a terminal goes in steps with a progress bar") {
  AdminScenario s({"--max-attempts", "1"});
  s.upstream->SetConfig({{"force_status", 400}});
  json items = json::array();
  for (int i = 0; i < 500; ++i) items.push_back(ExampleRequestTo(i, "bulk"));
  std::vector<std::string> ids;
  for (int batch = 0; batch < 3; ++batch) {
    HttpResult r = s.sendq->Post("/v1/messages/batch", {{"messages", items}});
    REQUIRE(r.status == 200);
    for (const json& item : r.json.at("results")) ids.push_back(item.at("message").at("id"));
  }
  for (const std::string& id : ids) REQUIRE(WaitFinal(*s.sendq, id).at("status") == "failed");
  CHECK(Run({"admin", "pause"}, s.Admin()).exit_code == 0);  // they stay queued once retried

  CliOptions tty = s.Admin();
  tty.stderr_tty = true;
  const CliResult retried = RunCli({"admin", "retry"}, tty);
  INFO(Describe(retried));
  CHECK(retried.exit_code == 0);
  CHECK(retried.out == "1500 messages match; queued again: 1500\n");
  CHECK(retried.err.find("\r\033[K") != std::string::npos);
  CHECK(retried.err.find("100%  1,500 / 1,500 messages") != std::string::npos);
  // A dry run to count, then three steps of 500.
  HttpResult audit =
      s.sendq->Get("/v1/admin/audit", {{"Authorization", std::string("Bearer ") + kCliAdminToken}});
  int steps = 0;
  for (const json& entry : audit.json.at("data")) {
    if (entry.at("action") == "messages.retry" && !entry.at("details").contains("dry_run")) ++steps;
  }
  CHECK(steps >= 3);
}

TEST_CASE("cli admin: backup writes the database, and overwrites only with --force") {
  AdminScenario s;
  const std::string id = Enqueue(*s.sendq, ExampleRequestTo(1));
  REQUIRE(WaitFinal(*s.sendq, id).at("status") == "sent");

  const std::string file = s.dir.File("backup.db");
  const CliResult backup = Run({"backup", "--to", file}, s.Admin());
  REQUIRE(backup.exit_code == 0);
  CHECK(backup.out.find("backup written to " + file) != std::string::npos);
  const std::string bytes = ReadBytes(file);
  REQUIRE(bytes.size() > 100);
  CHECK(bytes.compare(0, 16, std::string("SQLite format 3\0", 16)) == 0);
  CHECK(bytes.find(id) != std::string::npos);
  CHECK(!FileExists(file + ".partial"));

  const CliResult again = Run({"backup", "--to", file}, s.Admin());
  CHECK(again.exit_code == 1);
  CHECK(again.err.find("--force") != std::string::npos);
  CHECK(ReadBytes(file) == bytes);

  CliOptions tty = s.Admin();
  tty.stderr_tty = true;
  const CliResult forced = RunCli({"backup", "--to", file, "--force", "--json"}, tty);
  CHECK(forced.exit_code == 0);
  CHECK(forced.Json().at("path") == file);
  CHECK(forced.err.find("100%") != std::string::npos);  // the progress bar, on a terminal

  // A producer token may not take a backup; nothing is written.
  const CliResult producer = Run({"backup", "--to", s.dir.File("nope.db")}, s.Producer());
  CHECK(producer.exit_code == 4);
  CHECK(producer.err.find("forbidden") != std::string::npos);
  CHECK(!FileExists(s.dir.File("nope.db")));
  CHECK(!FileExists(s.dir.File("nope.db.partial")));
}

TEST_CASE("cli admin: pause, resume, retry and cancel by filter, and the audit") {
  AdminScenario s;
  const CliOptions admin = s.Admin();
  const CliOptions producer = s.Producer();

  // Pausing keeps messages queued (and marked); resuming sends them.
  const CliResult paused = Run({"admin", "pause", "--json"}, admin);
  REQUIRE(paused.exit_code == 0);
  CHECK(paused.Json().at("global") == true);
  CHECK(Run({"admin", "pauses", "--json"}, admin).Json().at("global") == true);
  const std::string held = Enqueue(*s.sendq, ExampleRequestTo(1));
  const CliResult while_paused = Run({"get", held, "--json"}, producer);
  CHECK(while_paused.Json().at("status") == "queued");
  CHECK(while_paused.Json().at("sendq").at("paused") == true);
  CHECK(Run({"admin", "pauses"}, admin).out.find("paused (everything)") != std::string::npos);
  const CliResult resumed = Run({"admin", "resume", "--json"}, admin);
  CHECK(resumed.Json().at("global") == false);
  CHECK(Run({"get", held, "--wait", "30"}, producer).exit_code == 0);

  const CliResult sender = Run({"admin", "pause", "--sender", "agent_other", "--json"}, admin);
  CHECK(sender.Json().at("senders") == json::array({"agent_other"}));
  CHECK(Run({"admin", "resume", "--sender", "agent_other", "--json"}, admin).Json().at("senders") ==
        json::array());

  // Two failures, retried by filter after a dry run.
  s.upstream->SetConfig({{"force_status", 422}});
  std::vector<std::string> failed;
  for (int i = 2; i < 4; ++i) {
    const std::string id = Enqueue(*s.sendq, ExampleRequestTo(i));
    REQUIRE(WaitFinal(*s.sendq, id).at("status") == "failed");
    failed.push_back(id);
  }
  s.upstream->SetConfig({{"force_status", 0}});
  const CliResult dry = Run({"admin", "retry", "--dry-run", "--json"}, admin);
  REQUIRE(dry.exit_code == 0);
  CHECK(dry.Json() == json({{"matched", 2}, {"changed", 0}}));
  const CliResult retried =
      Run({"admin", "retry", "--status", "failed", "--producer", "test", "--json"}, admin);
  CHECK(retried.Json() == json({{"matched", 2}, {"changed", 2}}));
  for (const std::string& id : failed) CHECK(WaitFinal(*s.sendq, id).at("status") == "sent");
  CHECK(Run({"admin", "retry", "--json"}, admin).Json().at("changed") == 0);

  // Two scheduled messages; one canceled by recipient.
  Enqueue(*s.sendq, Scheduled(5));
  const std::string keep = Enqueue(*s.sendq, Scheduled(6));
  const CliResult cancel_dry = Run({"admin", "cancel", "--dry-run"}, admin);
  CHECK(cancel_dry.exit_code == 0);
  CHECK(cancel_dry.out.find("2 messages match; dry run") != std::string::npos);
  const CliResult canceled = Run(
      {"admin", "cancel", "--to", ExampleRequestTo(5).at("to_number").get<std::string>(), "--json"},
      admin);
  CHECK(canceled.Json() == json({{"matched", 1}, {"changed", 1}}));
  CHECK(Run({"get", keep, "--json"}, producer).Json().at("status") == "queued");
  CHECK(Run({"admin", "cancel", "--status", "bogus"}, admin).exit_code == 6);  // a 422

  // The audit, newest first.
  const CliResult audit = Run({"admin", "audit", "--json"}, admin);
  REQUIRE(audit.exit_code == 0);
  std::set<std::string> actions;
  const json page = audit.Json();
  for (const json& entry : page.at("data")) {
    CHECK(entry.at("actor") == "ops");
    actions.insert(entry.at("action").get<std::string>());
  }
  for (const std::string action : {"pause", "resume", "messages.retry", "messages.cancel"}) {
    CHECK_MESSAGE(actions.count(action) == 1, action);
  }
  CHECK(Run({"admin", "audit", "--limit", "1", "--json"}, admin).Json().at("data").size() == 1);
  const CliResult table = Run({"admin", "audit"}, admin);
  CHECK(table.out.find("ACTOR") != std::string::npos);
  CHECK(table.out.find("messages.retry") != std::string::npos);

  // Producer tokens may not use admin routes, nor an admin token producer ones.
  const CliResult forbidden = Run({"admin", "pauses"}, producer);
  CHECK(forbidden.exit_code == 4);
  CHECK(forbidden.err.find("forbidden") != std::string::npos);
  CHECK(Run({"send", "--to", "+14155552671", "--agent-id", "a1", "Hi"}, admin).exit_code == 4);
}

TEST_CASE("cli admin: an admin lists every producer's messages, or one's with --producer") {
  AdminScenario s;
  std::set<std::string> ids;
  for (int i = 0; i < 3; ++i) ids.insert(Enqueue(*s.sendq, ExampleRequestTo(i)));
  const CliResult all = Run({"list", "--json", "--all", "--limit", "2"}, s.Admin());
  REQUIRE(all.exit_code == 0);
  CHECK(all.JsonLines().size() == 3);
  const CliResult one = Run({"list", "--json", "--producer", "test"}, s.Admin());
  REQUIRE(one.exit_code == 0);
  std::set<std::string> listed;
  for (const json& r : one.JsonLines()) listed.insert(r.at("id").get<std::string>());
  CHECK(listed == ids);
  CHECK(Run({"list", "--json", "--producer", "nobody"}, s.Admin()).out.empty());
}

}  // namespace
}  // namespace sendq::test
