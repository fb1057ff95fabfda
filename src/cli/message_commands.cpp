// sendq send, get, attempts, list, cancel, retry and tail.
#include <fmt/format.h>
#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>
#include <thread>

#include "cli/command_runs.h"
#include "cli/output.h"
#include "util/percent.h"
#include "util/time_format.h"

namespace sendq::cli {
namespace {

using nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

// The longest ?wait= sendq takes (kMaxLongPoll on the server).
constexpr int64_t kMaxWaitMs = 60'000;
// A long poll's read timeout is its wait plus this.
constexpr int64_t kWaitSlackMs = 15'000;
// How long tail asks each poll to wait for a change.
constexpr int kTailWaitSeconds = 30;
// --all stops after this many pages, whatever the server says: a loop that never ends is a bug.
constexpr int kMaxPages = 1'000'000;

bool IsFinal(const std::string& status) {
  return status == "sent" || status == "failed" || status == "canceled";
}

std::string MessagePath(const std::string& id) { return "/v1/messages/" + PercentEncode(id); }

// `to_number`, or the recipients joined.
std::string Recipient(const ordered_json& record) {
  std::string to = Str(record, "to_number");
  auto recipients = record.find("recipients");
  if (to.empty() && recipients != record.end() && recipients->is_array()) {
    for (const auto& r : *recipients) {
      if (!to.empty()) to += ",";
      to += r.is_string() ? r.get<std::string>() : r.dump();
    }
  }
  return to;
}

// What a table says about a message beyond its status.
std::string Detail(const ordered_json& record) {
  const std::string status = Str(record, "status");
  if (status == "sent") return Str(record, "provider_message_id");
  const std::string error = Str(record, "last_error");
  const std::string reason = Str(record, "reason");
  if (status == "held" || (status == "failed" && error.empty())) return reason;
  if (!error.empty()) return error;
  auto sendq = record.find("sendq");
  if (sendq != record.end() && sendq->is_object() && sendq->value("paused", false)) {
    return "paused";
  }
  const std::string next = Str(record, "next_attempt_at");
  if (status == "queued" && !next.empty()) return "next attempt " + FormatLocalTime(next);
  return "";
}

// Trailing newlines of a body read from a file or stdin, as a shell's $(...) drops them.
std::string DropTrailingNewlines(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  return text;
}

Result<std::string> ReadAll(std::istream& in, const std::string& what) {
  std::ostringstream out;
  out << in.rdbuf();
  if (in.bad()) return Status::IOError("cannot read " + what);
  return out.str();
}

// One line of key/value pairs for the detail view.
void Line(std::string& out, const char* key, const std::string& value) {
  if (value.empty()) return;
  out += fmt::format("{:<16}{}\n", key, value);
}

// The record as key/value lines, times in local time.
std::string DetailView(const ordered_json& r) {
  std::string out;
  Line(out, "id", Str(r, "id"));
  Line(out, "status", Str(r, "status"));
  Line(out, "reason", Str(r, "reason"));
  Line(out, "to", Recipient(r));
  Line(out, "agent_id", Str(r, "agent_id"));
  Line(out, "number_id", Str(r, "number_id"));
  Line(out, "from_number", Str(r, "from_number"));
  Line(out, "channel", Str(r, "channel"));
  if (r.contains("body")) Line(out, "body", CellText(Str(r, "body"), 200));
  if (r.contains("media_urls") && r["media_urls"].is_array()) {
    for (const auto& url : r["media_urls"]) {
      Line(out, "media", url.is_string() ? url.get<std::string>() : url.dump());
    }
  }
  Line(out, "reply_to", Str(r, "reply_to_message_id"));
  Line(out, "reaction", Str(r, "reaction_type"));
  Line(out, "reaction_to", Str(r, "message_id"));
  Line(out, "provider id", Str(r, "provider_message_id"));
  Line(out, "idempotency key", Str(r, "idempotency_key"));
  Line(out, "attempts", Str(r, "attempts"));
  Line(out, "last error", CellText(Str(r, "last_error"), 300));
  if (auto s = r.find("sendq"); s != r.end() && s->is_object()) {
    Line(out, "priority", Str(*s, "priority"));
    Line(out, "ordering key", Str(*s, "ordering_key"));
    Line(out, "send at", FormatLocalTime(Str(*s, "send_at"), true));
    if (s->value("held_by_order", false)) Line(out, "held by order", "yes");
    if (s->value("paused", false)) Line(out, "paused", "yes");
  }
  Line(out, "next attempt", FormatLocalTime(Str(r, "next_attempt_at"), true));
  Line(out, "expires", FormatLocalTime(Str(r, "expires_at"), true));
  Line(out, "sent", FormatLocalTime(Str(r, "sent_at"), true));
  Line(out, "created", FormatLocalTime(Str(r, "created_at"), true));
  Line(out, "updated", FormatLocalTime(Str(r, "updated_at"), true));
  Line(out, "version", Str(r, "version"));
  return out;
}

// "sq_... sent msg_... at 2026-11-27 10:30:00 CET" and the like: a message's outcome in a line.
std::string OutcomeLine(const ordered_json& r) {
  const std::string id = Str(r, "id");
  const std::string status = Str(r, "status");
  if (status == "sent") {
    std::string line = id + " sent";
    if (const std::string provider = Str(r, "provider_message_id"); !provider.empty()) {
      line += " as " + provider;
    }
    if (const std::string at = Str(r, "sent_at"); !at.empty()) {
      line += " at " + FormatLocalTime(at, true);
    }
    return line;
  }
  std::string line = id + " " + status;
  if (const std::string detail = Detail(r); !detail.empty()) line += ": " + detail;
  return line;
}

std::string FormatDurationMs(int64_t ms) {
  if (ms < 1000) return fmt::format("{}ms", ms);
  if (ms < 60'000) return fmt::format("{:.1f}s", static_cast<double>(ms) / 1000.0);
  return FormatAge(static_cast<double>(ms) / 1000.0);
}

// Long-polls `id` until it is final or `wait` runs out. Returns the last record, or the exit
// code of a failed request.
struct WaitResult {
  ordered_json record;
  int exit_code = kExitOk;
  bool final = false;
};

WaitResult WaitFinal(ApiClient& client, const std::string& id, const WaitOption& wait,
                     ordered_json last) {
  WaitResult result;
  result.record = std::move(last);
  const std::optional<Clock::time_point> deadline =
      wait.ms ? std::optional(Clock::now() + std::chrono::milliseconds(*wait.ms)) : std::nullopt;
  for (;;) {
    if (result.record.is_object() && IsFinal(Str(result.record, "status"))) {
      result.final = true;
      return result;
    }
    int64_t wait_ms = kMaxWaitMs;
    if (deadline) {
      wait_ms =
          std::chrono::duration_cast<std::chrono::milliseconds>(*deadline - Clock::now()).count();
      wait_ms = std::clamp<int64_t>(wait_ms, 0, kMaxWaitMs);
    }
    HttpAnswer answer =
        client.Get(fmt::format("{}?wait={}ms", MessagePath(id), wait_ms), wait_ms + kWaitSlackMs);
    if (answer.status == 429 && !client.stopped()) {
      // Too many long polls open for this producer: try again shortly, as Retry-After says.
      std::this_thread::sleep_for(std::chrono::seconds(1));
    } else if (!answer.ok()) {
      result.exit_code = ReportFailure(client, answer);
      return result;
    } else {
      result.record = answer.Json();
    }
    if (deadline && Clock::now() >= *deadline) {
      result.final = result.record.is_object() && IsFinal(Str(result.record, "status"));
      return result;
    }
  }
}

// The exit code of a wait that ended with `result`, after printing what it found.
int ReportWait(const WaitResult& result, const WaitOption& wait, bool json, bool detail_view) {
  if (result.exit_code != kExitOk) return result.exit_code;
  if (json) {
    PrintJsonLine(result.record);
  } else {
    std::fputs(
        (detail_view ? DetailView(result.record) : OutcomeLine(result.record) + "\n").c_str(),
        stdout);
  }
  if (!result.final) {
    PrintError(fmt::format("{} is still {} after waiting {}", Str(result.record, "id"),
                           Str(result.record, "status"), FormatDurationMs(wait.ms.value_or(0))));
    return kExitError;
  }
  return Str(result.record, "status") == "sent" ? kExitOk : kExitMessageFailed;
}

}  // namespace

std::string Str(const ordered_json& record, const char* key) {
  auto it = record.find(key);
  if (it == record.end() || it->is_null()) return "";
  if (it->is_string()) return it->get<std::string>();
  return it->dump();
}

void AddParam(std::string& query, const std::string& name, const std::string& value) {
  if (value.empty()) return;
  if (!query.empty()) query += '&';
  query += name + "=" + PercentEncode(value);
}

std::string FilterQuery(const ListFilters& f) {
  std::string query;
  for (const std::string& status : f.status) AddParam(query, "status", status);
  AddParam(query, "agent_id", f.agent_id);
  AddParam(query, "to_number", f.to);
  AddParam(query, "provider_message_id", f.provider_message_id);
  AddParam(query, "ordering_key", f.ordering_key);
  AddParam(query, "priority", f.priority);
  AddParam(query, "scheduled", f.scheduled);
  if (!f.created_after.empty()) {
    AddParam(query, "created_after", TimeArgumentForApi(f.created_after));
  }
  if (!f.created_before.empty()) {
    AddParam(query, "created_before", TimeArgumentForApi(f.created_before));
  }
  AddParam(query, "producer", f.producer);
  return query;
}

int RunSend(ApiClient& client, bool json, const SendOptions& o) {
  if (o.body && !o.body_file.empty()) {
    PrintError("give the body as an argument or with --body-file, not both");
    return kExitUsage;
  }
  std::optional<std::string> body;
  if (!o.body_file.empty()) {
    std::ifstream in(o.body_file, std::ios::binary);
    if (!in) {
      PrintError(
          fmt::format("--body-file: cannot read '{}': {}", o.body_file, std::strerror(errno)));
      return kExitError;
    }
    Result<std::string> text = ReadAll(in, "'" + o.body_file + "'");
    if (!text.ok()) {
      PrintError("--body-file: " + text.status().message());
      return kExitError;
    }
    body = DropTrailingNewlines(*text);
  } else if (o.body && *o.body != "-") {
    body = *o.body;
  } else if ((o.body && *o.body == "-") || (o.media_urls.empty() && !isatty(STDIN_FILENO))) {
    // Without a media URL the text is all there is, so a pipe or file on stdin is read; with
    // one, only "-" reads stdin, so that a script without input never blocks here.
    Result<std::string> text = ReadAll(std::cin, "stdin");
    if (!text.ok()) {
      PrintError(text.status().message());
      return kExitError;
    }
    body = DropTrailingNewlines(*text);
  } else if (o.media_urls.empty()) {
    PrintError("no message text: give it as an argument, with --body-file, or on stdin");
    return kExitUsage;
  }

  ordered_json request = ordered_json::object();
  if (!o.agent_id.empty()) request["agent_id"] = o.agent_id;
  if (!o.number_id.empty()) request["number_id"] = o.number_id;
  if (!o.from.empty()) request["from_number"] = o.from;
  request["to_number"] = o.to;
  if (body) request["body"] = *body;
  if (!o.media_urls.empty()) request["media_urls"] = o.media_urls;
  std::map<std::string, std::string> headers;
  if (!o.idempotency_key.empty()) headers["Idempotency-Key"] = o.idempotency_key;

  HttpAnswer answer =
      client.Post("/v1/messages",
                  request.dump(-1, ' ', false, ordered_json::error_handler_t::replace), headers);
  if (!answer.ok()) return ReportFailure(client, answer);
  ordered_json record = answer.Json();
  const std::string id = Str(record, "id");
  if (!record.is_object() || id.empty()) {
    PrintError("sendq's answer has no message id: " + CellText(answer.body, 200));
    return kExitError;
  }
  if (answer.Header("idempotent-replayed") == "true" && !json) {
    std::fprintf(stderr, "sendq: Idempotency-Key '%s' was used before: this is that message\n",
                 o.idempotency_key.c_str());
  }
  if (!o.wait.given) {
    if (json) {
      PrintJsonLine(record);
    } else {
      std::printf("%s %s\n", id.c_str(), Str(record, "status").c_str());
    }
    return kExitOk;
  }
  return ReportWait(WaitFinal(client, id, o.wait, std::move(record)), o.wait, json, false);
}

int RunGet(ApiClient& client, bool json, const GetOptions& o) {
  HttpAnswer answer = client.Get(MessagePath(o.id));
  if (!answer.ok()) return ReportFailure(client, answer);
  ordered_json record = answer.Json();
  if (o.wait.given) {
    return ReportWait(WaitFinal(client, o.id, o.wait, std::move(record)), o.wait, json, true);
  }
  if (json) {
    PrintJsonLine(record);
  } else {
    std::fputs(DetailView(record).c_str(), stdout);
  }
  return kExitOk;
}

int RunAttempts(ApiClient& client, bool json, const std::string& id) {
  HttpAnswer answer = client.Get(MessagePath(id) + "/attempts");
  if (!answer.ok()) return ReportFailure(client, answer);
  const ordered_json page = answer.Json();
  const ordered_json data =
      page.is_object() && page.contains("data") ? page["data"] : ordered_json::array();
  if (json) {
    for (const auto& attempt : data) PrintJsonLine(attempt);
    return kExitOk;
  }
  if (data.empty()) {
    std::printf("no attempts yet\n");
    return kExitOk;
  }
  Table table({{"#", 4, true},
               {"STARTED", 19},
               {"TOOK", 8, true},
               {"OUTCOME", 16},
               {"HTTP", 4, true},
               {"CHARGED", 7},
               {"ERROR", 60}});
  for (const auto& a : data) {
    std::string took;
    const auto started = ParseRfc3339(Str(a, "started_at"));
    const auto finished = ParseRfc3339(Str(a, "finished_at"));
    if (started && finished) took = FormatDurationMs(*finished - *started);
    std::string outcome = Str(a, "outcome");
    if (outcome.empty()) outcome = "in flight";
    table.AddRow({Str(a, "number"), FormatLocalTime(Str(a, "started_at")), took, outcome,
                  Str(a, "http_status"), a.value("charged", false) ? "yes" : "no",
                  Str(a, "error")});
  }
  std::fputs(table.Render().c_str(), stdout);
  return kExitOk;
}

int RunList(ApiClient& client, bool json, const ListOptions& o) {
  std::string base_query = FilterQuery(o.filters);
  if (o.limit >= 0) AddParam(base_query, "limit", std::to_string(o.limit));
  std::vector<ordered_json> records;  // human output only: the table needs every row
  bool any_body = false;
  std::string cursor = o.cursor;
  std::set<std::string> seen_cursors;
  std::string more;
  for (int page = 0; page < kMaxPages; ++page) {
    std::string query = base_query;
    AddParam(query, "cursor", cursor);
    HttpAnswer answer = client.Get("/v1/messages" + (query.empty() ? "" : "?" + query));
    if (!answer.ok()) return ReportFailure(client, answer);
    const ordered_json body = answer.Json();
    if (!body.is_object() || !body.contains("data") || !body["data"].is_array()) {
      PrintError("unexpected answer from sendq: " + CellText(answer.body, 200));
      return kExitError;
    }
    for (const auto& record : body["data"]) {
      if (json) {
        PrintJsonLine(record);
      } else {
        any_body = any_body || (record.contains("body") && record["body"].is_string());
        records.push_back(record);
      }
    }
    if (json) std::fflush(stdout);
    const bool has_more = body.value("has_more", false);
    const std::string next = Str(body, "next_cursor");
    if (!has_more || next.empty()) break;
    if (!o.all) {
      more = next;
      break;
    }
    if (!seen_cursors.insert(next).second) {
      PrintError("sendq returned the same cursor twice; stopping");
      return kExitError;
    }
    cursor = next;
  }
  if (!json) {
    if (records.empty()) {
      std::printf("no messages\n");
    } else {
      std::vector<Table::Column> columns = {{"ID", 29},      {"STATUS", 8},    {"TO", 20},
                                            {"CREATED", 19}, {"ATT", 3, true}, {"DETAIL", 50}};
      if (any_body) columns.push_back({"BODY", 40});
      Table table(columns);
      for (const auto& r : records) {
        std::vector<std::string> row = {Str(r, "id"),       Str(r, "status"),
                                        Recipient(r),       FormatLocalTime(Str(r, "created_at")),
                                        Str(r, "attempts"), Detail(r)};
        if (any_body) row.push_back(Str(r, "body"));
        table.AddRow(std::move(row));
      }
      std::fputs(table.Render().c_str(), stdout);
    }
  }
  if (!more.empty()) {
    std::fflush(stdout);
    std::fprintf(stderr, "sendq: more messages: --cursor %s (or --all)\n", more.c_str());
  }
  return kExitOk;
}

int RunMessageAction(ApiClient& client, bool json, const std::string& action,
                     const std::string& id) {
  HttpAnswer answer = client.Post(MessagePath(id) + "/" + action, "");
  if (!answer.ok()) return ReportFailure(client, answer);
  const ordered_json record = answer.Json();
  if (json) {
    PrintJsonLine(record);
  } else {
    std::printf("%s %s\n", Str(record, "id").c_str(), Str(record, "status").c_str());
  }
  return kExitOk;
}

int RunTail(ApiClient& client, bool json, const TailOptions& o) {
  StopOnSignal stop(&client);
  std::string producer_param;
  AddParam(producer_param, "producer", o.producer);
  std::string cursor = o.after;
  if (cursor.empty()) {
    // Without `after` the answer is empty and its cursor marks "now".
    HttpAnswer answer =
        client.Get("/v1/messages/changes" + (producer_param.empty() ? "" : "?" + producer_param));
    if (stop.signaled()) return kExitOk;
    if (!answer.ok()) return ReportFailure(client, answer);
    cursor = Str(answer.Json(), "next_cursor");
    if (cursor.empty()) {
      PrintError("sendq's answer has no next_cursor: " + CellText(answer.body, 200));
      return kExitError;
    }
  }
  while (!stop.signaled()) {
    std::string query =
        "after=" + PercentEncode(cursor) + fmt::format("&wait={}", kTailWaitSeconds);
    if (!producer_param.empty()) query += "&" + producer_param;
    HttpAnswer answer =
        client.Get("/v1/messages/changes?" + query, kTailWaitSeconds * 1000 + kWaitSlackMs);
    if (stop.signaled()) break;
    if (answer.status == 429) {
      std::this_thread::sleep_for(std::chrono::seconds(1));
      continue;
    }
    if (!answer.ok()) return ReportFailure(client, answer);
    const ordered_json page = answer.Json();
    if (!page.is_object()) {
      PrintError("unexpected answer from sendq: " + CellText(answer.body, 200));
      return kExitError;
    }
    if (page.contains("data") && page["data"].is_array()) {
      for (const auto& r : page["data"]) {
        if (json) {
          PrintJsonLine(r);
          continue;
        }
        std::string when = FormatLocalTime(Str(r, "updated_at"));
        std::string line =
            fmt::format("{:<19}  {:<29}  {:<8}  {:<16}  {}", when, Str(r, "id"), Str(r, "status"),
                        CellText(Recipient(r), 16), CellText(Detail(r), 80));
        while (!line.empty() && line.back() == ' ') line.pop_back();
        std::puts(line.c_str());
      }
      std::fflush(stdout);
    }
    if (const std::string next = Str(page, "next_cursor"); !next.empty()) cursor = next;
  }
  return kExitOk;
}

StopOnSignal::StopOnSignal(ApiClient* client) : client_(client) {
  sigemptyset(&watched_);
  sigaddset(&watched_, SIGINT);
  sigaddset(&watched_, SIGTERM);
  sigaddset(&watched_, SIGUSR1);  // the owner's "stop watching"
  pthread_sigmask(SIG_BLOCK, &watched_, &previous_mask_);
  watcher_ = std::thread([this] { Watch(); });
}

StopOnSignal::~StopOnSignal() {
  {
    MutexLock lock(&mu_);
    done_ = true;
  }
  // The watcher waits for SIGUSR1 too: it wakes it to see done_ (or finds it gone already).
  pthread_kill(watcher_.native_handle(), SIGUSR1);
  watcher_.join();
  // A signal that came since is the same request to stop, and the command has stopped: take it
  // before the mask goes back, or it would end the process now.
  const timespec no_wait{};
  while (sigtimedwait(&watched_, nullptr, &no_wait) > 0) {
  }
  pthread_sigmask(SIG_SETMASK, &previous_mask_, nullptr);
}

void StopOnSignal::Watch() {
  for (;;) {
    // Until the first signal, wait for it. After it, stop the client again every 100 ms (a
    // request may start just after a Stop()) until the owner is done; a second one ends the
    // process at once. No thread ever unblocks the signals, so none is delivered elsewhere.
    const bool stopping = signaled_.load();
    if (stopping) client_->Stop();
    const timespec tick{0, 100'000'000};
    const int sig =
        stopping ? sigtimedwait(&watched_, nullptr, &tick) : sigwaitinfo(&watched_, nullptr);
    {
      MutexLock lock(&mu_);
      if (done_) return;
    }
    if (sig != SIGINT && sig != SIGTERM) continue;  // the tick, an interruption, or SIGUSR1
    if (stopping) {
      // End as the signal would (a shell then stops its script too): its default action, let
      // through in this thread only. No stdio here: the main thread may hold stdout's lock.
      std::signal(sig, SIG_DFL);
      sigset_t just_this;
      sigemptyset(&just_this);
      sigaddset(&just_this, sig);
      pthread_sigmask(SIG_UNBLOCK, &just_this, nullptr);
      raise(sig);
      _exit(128 + sig);
    }
    signal_.store(sig);
    signaled_.store(true);
  }
}

}  // namespace sendq::cli
