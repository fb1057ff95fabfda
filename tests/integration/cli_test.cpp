// The operator commands (sendq send, get, list, ...) run as real processes against a real
// sendq and the fake AgentPhone, checked by what they print and how they exit.
#include <doctest/doctest.h>

#include <chrono>
#include <fstream>
#include <set>

#include "cli_run.h"
#include "scenario.h"

namespace sendq::test {
namespace {

using nlohmann::json;

constexpr char kUnknownId[] = "sq_01ARZ3NDEKTSV4RRFFQ69G5FAV";

CliOptions Against(SendqProcess& sendq) {
  CliOptions options;
  options.url = sendq.url();
  options.token = kTestApiToken;
  return options;
}

// What a failing check shows about a run.
std::string Describe(const CliResult& r) {
  return "exit " + std::to_string(r.exit_code) + "\nstdout: " + r.out + "\nstderr: " + r.err;
}

// Runs the command, checks that its output has no terminal codes (it goes to pipes), and
// returns the result.
CliResult Run(const std::vector<std::string>& args, const CliOptions& options = {}) {
  CliResult r = RunCli(args, options);
  INFO(Describe(r));
  CHECK(IsPlainText(r.out));
  CHECK(IsPlainText(r.err));
  return r;
}

// A request that stays queued for an hour (send_at ahead), so it can be canceled.
json Scheduled(int n) {
  json request = ExampleRequestTo(n, "Later");
  const auto later = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count() +
                     3'600'000;
  request["sendq"] = {{"send_at", FormatRfc3339(later)}};
  return request;
}

// The text AgentPhone received for sendq message `id`.
std::string SentText(FakeUpstream& upstream, const std::string& id) {
  const json sent = upstream.Sent();  // kept: a range-for over a temporary's member dangles
  for (const auto& s : sent.at("sends")) {
    if (s.at("idempotency_key") == id) return s.at("body").value("body", "");
  }
  return "<not sent>";
}

TEST_CASE("cli: help, --help, help COMMAND, and a mistyped command") {
  const CliResult help = Run({"help"});
  CHECK(help.exit_code == 0);
  for (const char* command :
       {"serve", "send", "get", "attempts", "list", "cancel", "retry", "tail", "stats", "export",
        "backup", "admin", "help", "pause", "resume", "pauses", "audit"}) {
    CHECK_MESSAGE(help.out.find("\n  " + std::string(command) + " ") != std::string::npos, command);
  }
  CHECK(help.out.find("Exit codes:") != std::string::npos);
  for (int code = 0; code <= 7; ++code) {
    CHECK(help.out.find("\n  " + std::to_string(code) + "  ") != std::string::npos);
  }
  for (const char* option :
       {"--url", "--token", "--token-file", "--json", "SENDQ_URL", "SENDQ_TOKEN"}) {
    CHECK(help.out.find(option) != std::string::npos);
  }
  CHECK(Run({"--help"}).out == help.out);
  CHECK(Run({"-h"}).out == help.out);

  const CliResult send_help = Run({"send", "--help"});
  CHECK(send_help.exit_code == 0);
  for (const char* option :
       {"--to", "--agent-id", "--from", "--number-id", "--body-file", "--media-url",
        "--idempotency-key", "--wait", "--url", "--token", "--token-file", "--json"}) {
    CHECK_MESSAGE(send_help.out.find(option) != std::string::npos, option);
  }
  CHECK(send_help.out.find("--wait-until-final") == std::string::npos);
  CHECK(Run({"help", "send"}).out == send_help.out);

  const CliResult pause_help = Run({"admin", "pause", "--help"});
  CHECK(pause_help.exit_code == 0);
  CHECK(pause_help.out.find("--sender") != std::string::npos);
  CHECK(Run({"help", "admin", "pause"}).out == pause_help.out);

  // Every command's help works.
  for (const char* command : {"get", "attempts", "list", "cancel", "retry", "tail", "stats",
                              "export", "backup", "admin"}) {
    const CliResult r = Run({command, "--help"});
    CHECK_MESSAGE(r.exit_code == 0, command);
    CHECK_MESSAGE(r.out.find("Usage: sendq " + std::string(command)) != std::string::npos, command);
  }
  for (const char* sub : {"retry", "cancel", "pause", "resume", "pauses", "audit"}) {
    CHECK_MESSAGE(Run({"admin", sub, "--help"}).exit_code == 0, sub);
  }

  // serve's own help, as config.cpp makes it.
  const CliResult serve_help = Run({"serve", "--help"});
  CHECK(serve_help.exit_code == 0);
  CHECK(serve_help.out.find("--listen") != std::string::npos);
  CHECK(serve_help.out.find("SENDQ_LISTEN") != std::string::npos);
  CHECK(Run({"help", "serve"}).out == serve_help.out);

  const CliResult typo = Run({"stat"});
  CHECK(typo.exit_code == 2);
  CHECK(typo.err.find("unknown command 'stat'; did you mean 'stats'?") != std::string::npos);
  CHECK(typo.out.empty());
  const CliResult admin_typo = Run({"admin", "paus"});
  CHECK(admin_typo.exit_code == 2);
  CHECK(admin_typo.err.find("did you mean 'pause'?") != std::string::npos);
  CHECK(Run({"help", "lsit"}).err.find("did you mean 'list'?") != std::string::npos);
  CHECK(Run({"frobnicate"}).exit_code == 2);
  CHECK(Run({}).exit_code == 2);
  CHECK(Run({"admin"}).exit_code == 2);

  const CliResult bad_option = Run({"list", "--stauts", "failed"});
  CHECK(bad_option.exit_code == 2);
  CHECK(bad_option.err.find("'--status'") != std::string::npos);
  CHECK(Run({"get"}).exit_code == 2);                           // the id is missing
  CHECK(Run({"list", "--priority", "urgent"}).exit_code == 2);  // not a priority
  CHECK(Run({"export", "--format", "xml"}).exit_code == 2);
  CHECK(Run({"get", "sq_x", "--wait", "5x"}).exit_code == 2);
}

TEST_CASE("cli: send takes the text as an argument, from stdin or from a file; get shows it") {
  Scenario s;
  const CliOptions options = Against(*s.sendq);

  const CliResult by_argument =
      Run({"send", "--to", "+14155552671", "--agent-id", "agent_12345abcde", "From an argument"},
          options);
  REQUIRE(by_argument.exit_code == 0);
  const std::string argument_id = by_argument.FirstWord();
  CHECK(argument_id.rfind("sq_", 0) == 0);
  CHECK(by_argument.out == argument_id + " queued\n");

  CliOptions piped = options;
  piped.stdin_text = "From stdin\n";
  const CliResult by_stdin =
      Run({"send", "--to", "(415) 555-2672", "--number-id", "num_cli"}, piped);
  REQUIRE(by_stdin.exit_code == 0);
  const std::string stdin_id = by_stdin.FirstWord();

  piped.stdin_text = "From stdin, by name";
  const CliResult dash = Run({"send", "--to", "+14155552674", "--agent-id", "a1", "-"}, piped);
  REQUIRE(dash.exit_code == 0);
  const std::string dash_id = dash.FirstWord();

  TempDir files;
  {
    std::ofstream file(files.File("body.txt"));
    file << "From a file\nwith two lines\n\n";
  }
  const CliResult by_file = Run({"send", "--to", "+14155552673", "--from", "+14155550001",
                                 "--body-file", files.File("body.txt"), "--json"},
                                options);
  REQUIRE(by_file.exit_code == 0);
  const json file_record = by_file.Json();
  REQUIRE(file_record.is_object());
  const std::string file_id = file_record.at("id");
  CHECK(file_record.at("status") == "queued");
  CHECK(file_record.at("to_number") == "+14155552673");

  const CliResult get = Run({"get", stdin_id, "--json"}, options);
  REQUIRE(get.exit_code == 0);
  const json record = get.Json();
  CHECK(record.at("id") == stdin_id);
  CHECK(record.at("to_number") == "+14155552672");  // normalised by sendq
  CHECK(record.at("number_id") == "num_cli");
  CHECK(get.out.find('\n') == get.out.size() - 1);  // one JSON object on one line

  for (const std::string& id : {argument_id, stdin_id, dash_id, file_id}) {
    CHECK(WaitFinal(*s.sendq, id).at("status") == "sent");
  }
  CHECK(SentText(*s.upstream, argument_id) == "From an argument");
  CHECK(SentText(*s.upstream, stdin_id) == "From stdin");  // the trailing newline dropped
  CHECK(SentText(*s.upstream, dash_id) == "From stdin, by name");
  CHECK(SentText(*s.upstream, file_id) == "From a file\nwith two lines");

  // The human view: key/value lines, local times.
  const CliResult human = Run({"get", argument_id}, options);
  CHECK(human.exit_code == 0);
  CHECK(human.out.find("status          sent") != std::string::npos);
  CHECK(human.out.find("agent_id        agent_12345abcde") != std::string::npos);
  CHECK(human.out.find("provider id     msg_") != std::string::npos);

  // An Idempotency-Key makes a repeated send the same message.
  const std::vector<std::string> keyed = {
      "send", "--to", "+14155552675", "--agent-id", "a1", "--idempotency-key", "order-7", "Once"};
  const CliResult first = Run(keyed, options);
  const CliResult again = Run(keyed, options);
  CHECK(first.exit_code == 0);
  CHECK(again.exit_code == 0);
  CHECK(again.FirstWord() == first.FirstWord());
  CHECK(again.err.find("order-7") != std::string::npos);

  // Two sources of text is a usage error; a body file that cannot be read is an error.
  CHECK(Run({"send", "--to", "+14155552671", "--agent-id", "a1", "--body-file",
             files.File("body.txt"), "text"},
            options)
            .exit_code == 2);
  CHECK(Run({"send", "--to", "+14155552671", "--agent-id", "a1", "--body-file",
             files.File("missing.txt")},
            options)
            .exit_code == 1);
}

TEST_CASE("cli: send --wait ends sent (0), or failed (7); get --wait on a canceled message is 7") {
  Scenario s;
  const CliOptions options = Against(*s.sendq);

  const CliResult sent =
      Run({"send", "--to", "+14155552671", "--agent-id", "agent_1", "--wait", "30", "Hi"}, options);
  CHECK(sent.exit_code == 0);
  CHECK(sent.out.find(" sent as msg_") != std::string::npos);

  // A bare --wait (until final) before the text: the text is not taken for seconds.
  const CliResult bare =
      Run({"send", "--to", "+14155552672", "--agent-id", "agent_1", "--wait", "Hello", "--json"},
          options);
  REQUIRE(bare.exit_code == 0);
  CHECK(bare.Json().at("status") == "sent");
  CHECK(SentText(*s.upstream, bare.Json().at("id")) == "Hello");

  s.upstream->SetConfig({{"force_status", 422}});
  const CliResult failed = Run(
      {"send", "--to", "+14155552673", "--agent-id", "agent_1", "--wait", "30", "Doomed"}, options);
  CHECK(failed.exit_code == 7);
  CHECK(failed.out.find(" failed: ") != std::string::npos);
  const std::string failed_id = failed.FirstWord();
  s.upstream->SetConfig({{"force_status", 0}});

  // retry: the failed message is queued again and then sent.
  const CliResult retried = Run({"retry", failed_id}, options);
  CHECK(retried.exit_code == 0);
  CHECK(retried.out == failed_id + " queued\n");
  const CliResult after_retry = Run({"get", failed_id, "--wait", "30", "--json"}, options);
  CHECK(after_retry.exit_code == 0);
  CHECK(after_retry.Json().at("status") == "sent");
  // Retrying a sent message is refused (409 invalid_state).
  const CliResult refused = Run({"retry", failed_id}, options);
  CHECK(refused.exit_code == 6);
  CHECK(refused.err.find("invalid_state") != std::string::npos);

  // cancel: a scheduled message is canceled once; the second time is a 409.
  const std::string scheduled = Enqueue(*s.sendq, Scheduled(9));
  const CliResult still_queued = Run({"get", scheduled, "--wait", "1"}, options);
  CHECK(still_queued.exit_code == 1);  // the wait ran out, the message is not final
  CHECK(still_queued.err.find("still queued") != std::string::npos);
  const CliResult canceled = Run({"cancel", scheduled}, options);
  CHECK(canceled.exit_code == 0);
  CHECK(canceled.out == scheduled + " canceled\n");
  CHECK(Run({"cancel", scheduled}, options).exit_code == 6);
  const CliResult waited = Run({"get", scheduled, "--wait", "5"}, options);
  CHECK(waited.exit_code == 7);
  CHECK(waited.out.find("status          canceled") != std::string::npos);
}

TEST_CASE("cli: list --json --all reads every page; attempts shows the ledger") {
  Scenario s;
  const CliOptions options = Against(*s.sendq);
  std::set<std::string> ids;
  for (int i = 0; i < 5; ++i) ids.insert(Enqueue(*s.sendq, ExampleRequestTo(i)));
  for (const std::string& id : ids) REQUIRE(WaitFinal(*s.sendq, id).at("status") == "sent");

  const CliResult all = Run({"list", "--json", "--all", "--limit", "2"}, options);
  REQUIRE(all.exit_code == 0);
  std::set<std::string> listed;
  std::vector<std::string> order;
  for (const json& record : all.JsonLines()) {
    REQUIRE(record.is_object());
    listed.insert(record.at("id").get<std::string>());
    order.push_back(record.at("id").get<std::string>());
  }
  CHECK(listed == ids);
  CHECK(order.size() == 5);
  CHECK(std::is_sorted(order.rbegin(), order.rend()));  // newest first
  CHECK(all.err.empty());

  const CliResult page = Run({"list", "--json", "--limit", "2"}, options);
  CHECK(page.JsonLines().size() == 2);
  CHECK(page.err.find("--cursor ") != std::string::npos);

  const CliResult filtered =
      Run({"list", "--json", "--to", "+14155550003", "--status", "sent", "--status", "failed"},
          options);
  REQUIRE(filtered.JsonLines().size() == 1);
  CHECK(filtered.JsonLines()[0].at("to_number") == "+14155550003");
  CHECK(Run({"list", "--json", "--status", "failed"}, options).out.empty());

  const CliResult table = Run({"list"}, options);
  CHECK(table.exit_code == 0);
  CHECK(table.out.rfind("ID", 0) == 0);
  CHECK(table.out.find("STATUS") != std::string::npos);
  CHECK(table.out.find("msg_") != std::string::npos);
  for (const std::string& id : ids) CHECK(table.out.find(id) != std::string::npos);

  const std::string id = *ids.begin();
  const CliResult attempts = Run({"attempts", id, "--json"}, options);
  REQUIRE(attempts.exit_code == 0);
  const std::vector<json> lines = attempts.JsonLines();
  REQUIRE(lines.size() == 1);
  CHECK(lines[0].at("number") == 1);
  CHECK(lines[0].at("outcome") == "sent");
  CHECK(lines[0].at("http_status") == 200);
  const CliResult ledger = Run({"attempts", id}, options);
  CHECK(ledger.exit_code == 0);
  CHECK(ledger.out.find("OUTCOME") != std::string::npos);
  CHECK(ledger.out.find("sent") != std::string::npos);
}

TEST_CASE("cli: exit codes for a bad token (4), an unknown id (5), no sendq (3), a 422 (6)") {
  Scenario s;
  const CliOptions options = Against(*s.sendq);

  CliOptions bad_token = options;
  bad_token.token = "not-the-token-1234";
  const CliResult refused = Run({"list"}, bad_token);
  CHECK(refused.exit_code == 4);
  CHECK(refused.err.find("unauthorized") != std::string::npos);
  CHECK(refused.err.find("not-the-token-1234") == std::string::npos);
  CHECK(refused.out.find("not-the-token-1234") == std::string::npos);

  const CliResult missing = Run({"get", kUnknownId}, options);
  CHECK(missing.exit_code == 5);
  CHECK(missing.err.find("not_found") != std::string::npos);
  CHECK(Run({"attempts", kUnknownId}, options).exit_code == 5);
  CHECK(Run({"cancel", kUnknownId}, options).exit_code == 5);

  CliOptions nowhere = options;
  nowhere.url = UnreachableUrl();
  const CliResult unreachable = Run({"get", kUnknownId}, nowhere);
  CHECK(unreachable.exit_code == 3);
  CHECK(unreachable.err.find("cannot reach sendq at " + nowhere.url) != std::string::npos);

  const CliResult invalid =
      Run({"send", "--to", "not a number", "--agent-id", "agent_1", "Hi"}, options);
  CHECK(invalid.exit_code == 6);
  CHECK(invalid.err.find("body.to_number: ") != std::string::npos);
  CHECK(Run({"list", "--limit", "500"}, options).exit_code == 6);

  // The token from a file (first line, trimmed), and the flag beats the environment.
  TempDir files;
  {
    std::ofstream file(files.File("token"));
    file << "  " << kTestApiToken << "  \nignored second line\n";
  }
  CHECK(Run({"list", "--token-file", files.File("token")}, bad_token).exit_code == 0);
  CHECK(Run({"list", "--token", kTestApiToken}, bad_token).exit_code == 0);
  CHECK(Run({"list", "--url", s.sendq->url()}, nowhere).exit_code == 0);

  // No token, two tokens, an unreadable file or a bad URL are usage errors.
  CliOptions no_token = options;
  no_token.token.clear();
  const CliResult without = Run({"list"}, no_token);
  CHECK(without.exit_code == 2);
  CHECK(without.err.find("SENDQ_TOKEN") != std::string::npos);
  CHECK(Run({"list", "--token", "a-token-123", "--token-file", files.File("token")}, no_token)
            .exit_code == 2);
  CHECK(Run({"list", "--token-file", files.File("missing")}, no_token).exit_code == 2);
  CHECK(Run({"list", "--url", "ftp://127.0.0.1:1"}, options).exit_code == 2);
}

}  // namespace
}  // namespace sendq::test
