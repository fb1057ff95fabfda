// What operators use: admin reads across producers, bulk retry and cancel by filter, pauses,
// the audit, the feed of changes, stats, export and backup.
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "api/list_query.h"
#include "api/records.h"
#include "api/server.h"
#include "queue/phone.h"
#include "util/duration.h"
#include "util/hmac.h"
#include "util/log.h"
#include "util/time_format.h"

namespace sendq::api {

using http::Request;
using http::Response;

namespace {

constexpr int kMaxChangesLimit = 200;
constexpr int kDefaultChangesLimit = 100;
constexpr int kDefaultAuditLimit = 50;
constexpr int kMaxAuditLimit = 500;
constexpr std::string_view kChangesCursorVersion = "c1:";

Response Forbidden(std::string_view why) { return ErrorResponse(403, "forbidden", why); }

// An unnamed file in `dir`, open for reading and writing; it is gone when closed.
Result<int> OpenSpoolFile(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd >= 0) return fd;
  // A file system without O_TMPFILE: a named file, unlinked at once.
  std::string path = dir + "/.sendq-spool-XXXXXX";
  fd = ::mkostemp(path.data(), O_CLOEXEC);
  if (fd < 0) {
    return Status::IOError(
        fmt::format("cannot create a file in {}: {}", dir, std::strerror(errno)));
  }
  ::unlink(path.c_str());
  return fd;
}

// Writes to a file descriptor through a buffer.
class SpoolWriter {
 public:
  explicit SpoolWriter(int fd) : fd_(fd) {}
  Status Add(std::string_view text) {
    buffer_.append(text);
    return buffer_.size() >= (64 << 10) ? Flush() : Status::Ok();
  }
  Status Flush() {
    size_t done = 0;
    while (done < buffer_.size()) {
      const ssize_t n = ::write(fd_, buffer_.data() + done, buffer_.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        return errno == ENOSPC ? Status::NoSpace("no room to write the export")
                               : Status::IOError(std::strerror(errno));
      }
      done += static_cast<size_t>(n);
    }
    written_ += buffer_.size();
    buffer_.clear();
    return Status::Ok();
  }
  uint64_t written() const { return written_; }

 private:
  int fd_;
  std::string buffer_;
  uint64_t written_ = 0;
};

// A field of a CSV row (RFC 4180): quoted when it holds a comma, a quote or a line break.
std::string CsvField(std::string_view value) {
  if (value.find_first_of(",\"\r\n") == std::string_view::npos) return std::string(value);
  std::string out = "\"";
  for (char c : value) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
  return out;
}

std::string CsvText(const Json& value) {
  if (value.is_null()) return "";
  if (value.is_string()) return CsvField(value.get<std::string>());
  return CsvField(value.dump());
}

constexpr const char* kCsvColumns[] = {"id",
                                       "producer",
                                       "status",
                                       "to_number",
                                       "from_number",
                                       "agent_id",
                                       "provider_message_id",
                                       "created_at",
                                       "sent_at",
                                       "updated_at",
                                       "attempts",
                                       "last_error"};

std::string EncodeChangesCursor(const store::ChangeCursor& c) {
  return EncodeOpaque(fmt::format("{}{}:{}", kChangesCursorVersion, c.updated_at, c.id));
}

std::optional<store::ChangeCursor> DecodeChangesCursor(const std::string& text) {
  // The list's cursor codec carries message ids; this one carries "c1:<ms>:<id>".
  if (text.size() > 256) return std::nullopt;
  std::optional<std::string> raw = DecodeOpaque(text);
  if (!raw || !raw->starts_with(kChangesCursorVersion)) return std::nullopt;
  const std::string rest = raw->substr(kChangesCursorVersion.size());
  const size_t colon = rest.find(':');
  if (colon == std::string::npos || colon == 0 || colon > 15) return std::nullopt;
  const std::string ms = rest.substr(0, colon);
  if (ms.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
  return store::ChangeCursor{std::stoll(ms), rest.substr(colon + 1)};
}

FieldError BodyError(const std::string& member, std::string msg, std::string type) {
  return FieldError{Json::array({"body", member}), std::move(msg), std::move(type)};
}

std::optional<TimeMs> ParseTimeValue(const nlohmann::json& value) {
  if (value.is_number_integer()) return value.get<int64_t>();
  if (value.is_string()) return ParseRfc3339(value.get<std::string>());
  return std::nullopt;
}

}  // namespace

// A GET /v1/messages/changes that waits for a change.
struct ApiServer::ChangesPoll {
  http::Responder respond;
  std::string principal;  // counted against its long polls
  std::string producer;   // whose changes ("" every producer's)
  store::ChangeCursor after;
  int limit = kDefaultChangesLimit;
  TimeMs deadline = 0;
  bool counted = false;
  std::atomic<bool> answered{false};
  std::atomic<uint64_t> ticket{0};
};

bool ApiServer::IsAdmin(const Request& req) {
  return req.principal.starts_with(kAdminPrincipalPrefix);
}

std::optional<Response> ApiServer::ReadScope(const Request& req, std::string* producer) const {
  const std::string* asked = req.FindParam("producer");
  if (IsAdmin(req)) {
    *producer = asked == nullptr ? std::string() : *asked;
    return std::nullopt;
  }
  if (asked != nullptr && *asked != req.principal) {
    return Forbidden("only an admin token reads another producer's messages");
  }
  *producer = req.principal;
  return std::nullopt;
}

std::string ApiServer::OwnerFor(const Request& req, const std::string& id) const {
  if (!IsAdmin(req)) return req.principal;
  Result<std::optional<std::string>> owner = deps_.store->OwnerOf(id);
  return owner.ok() && *owner ? **owner : std::string();
}

void ApiServer::AddRedactedRecipient(ListFilter* filter) const {
  if (filter->to_number && !options_.recipient_key.empty()) {
    filter->to_number_redacted = RedactedRecipient(options_.recipient_key, *filter->to_number);
  }
}

Json ApiServer::Record(const Message& m) const { return MessageRecord(m, deps_.pauses); }

void ApiServer::Audit(const Request& req, std::string action, const nlohmann::json& details,
                      std::optional<int64_t> matched, std::optional<int64_t> changed) {
  const std::string actor = req.principal.substr(kAdminPrincipalPrefix.size());
  log::Info("admin_action", {{"actor", actor},
                             {"action", action},
                             {"details", details},
                             {"matched", matched ? nlohmann::json(*matched) : nullptr},
                             {"changed", changed ? nlohmann::json(*changed) : nullptr}});
  store::AuditEntry entry{
      0, deps_.clock->NowMs(), actor, std::move(action), details.dump(), matched, changed};
  if (Status st = deps_.store->AppendAudit(entry); !st.ok()) {
    log::Error("audit_failed", {{"error", st.ToString()}});
  }
}

Response ApiServer::HandleAdminBulk(const Request& req) {
  const bool retry = req.path.ends_with("/retry");
  if (retry) {
    if (auto refused = RefuseWhileDraining()) return std::move(*refused);
  }
  nlohmann::json body;
  if (auto refused = ParseObjectBody(req.body, &body)) return std::move(*refused);
  // Which states each operation applies to; a status outside them could never change.
  const std::vector<MessageStatus> allowed =
      retry ? std::vector<MessageStatus>{MessageStatus::kFailed, MessageStatus::kCanceled}
            : std::vector<MessageStatus>{MessageStatus::kQueued, MessageStatus::kHeld};
  store::AdminFilter filter;
  bool dry_run = false;
  int64_t limit = 0;
  std::vector<FieldError> errors;
  auto text = [&](const std::string& name,
                  const nlohmann::json& value) -> std::optional<std::string> {
    if (!value.is_string() || value.get<std::string>().empty()) {
      errors.push_back(BodyError(name, "Input should be a non-empty string", "string_type"));
      return std::nullopt;
    }
    return value.get<std::string>();
  };
  for (const auto& [name, value] : body.items()) {
    if (name == "status") {
      std::vector<nlohmann::json> given;
      if (value.is_array()) {
        given.assign(value.begin(), value.end());
      } else {
        given.push_back(value);
      }
      for (const nlohmann::json& one : given) {
        std::optional<MessageStatus> status =
            one.is_string() ? ParseStatus(one.get<std::string>()) : std::nullopt;
        if (!status || std::find(allowed.begin(), allowed.end(), *status) == allowed.end()) {
          errors.push_back(
              BodyError(name,
                        retry ? "Input should be 'failed' or 'canceled' (what a retry applies to)"
                              : "Input should be 'queued' or 'held' (what a cancel applies to)",
                        "enum"));
          break;
        }
        filter.statuses.push_back(*status);
      }
    } else if (name == "producer") {
      filter.producer = text(name, value);
    } else if (name == "sender") {
      filter.sender = text(name, value);
      // A from_number as it is stored: E.164.
      if (filter.sender &&
          filter.sender->find_first_not_of("+0123456789 ()-.") == std::string::npos) {
        if (auto e164 = NormalisePhone(*filter.sender, options_.validation.default_region)) {
          filter.sender = e164;
        }
      }
    } else if (name == "to_number") {
      if (std::optional<std::string> given = text(name, value)) {
        filter.to_number = NormalisePhone(*given, options_.validation.default_region);
        if (!filter.to_number) {
          errors.push_back(BodyError(name, "Value error, not a phone number", "value_error"));
        }
      }
    } else if (name == "error_contains") {
      filter.error_contains = text(name, value);
    } else if (name == "created_after" || name == "created_before") {
      std::optional<TimeMs> t = ParseTimeValue(value);
      if (!t) {
        errors.push_back(BodyError(name,
                                   "Input should be a valid datetime: RFC 3339 or milliseconds "
                                   "since the Unix epoch",
                                   "datetime_parsing"));
      }
      (name == "created_after" ? filter.created_after : filter.created_before) = t;
    } else if (name == "limit") {
      if (!value.is_number_integer() || value.get<int64_t>() < 1) {
        errors.push_back(BodyError(name, "Input should be an integer of at least 1", "int_type"));
      } else {
        limit = value.get<int64_t>();
      }
    } else if (name == "dry_run") {
      if (!value.is_boolean()) {
        errors.push_back(BodyError(name, "Input should be a valid boolean", "bool_type"));
      } else {
        dry_run = value.get<bool>();
      }
    } else {
      errors.push_back(BodyError(name,
                                 "Extra inputs are not permitted (filters: status, producer, "
                                 "sender, to_number, error_contains, created_after, "
                                 "created_before; and dry_run, limit)",
                                 "extra_forbidden"));
    }
  }
  if (!errors.empty()) return ValidationErrors(errors);
  if (filter.statuses.empty()) {
    filter.statuses = retry ? std::vector<MessageStatus>{MessageStatus::kFailed} : allowed;
  }
  const TimeMs now = deps_.clock->NowMs();
  Result<store::BulkResult> done =
      deps_.store->Bulk(retry ? store::BulkAction::kRetry : store::BulkAction::kCancel, filter,
                        dry_run, now, now + options_.retry_validity, options_.bulk_batch, limit);
  if (!done.ok()) return StatusResponse(done.status());
  Audit(req, retry ? "messages.retry" : "messages.cancel", body, done->matched, done->changed);
  return JsonResponse(200, {{"matched", done->matched}, {"changed", done->changed}});
}

namespace {

Json PauseStateJson(const PauseState& state) {
  Json senders = Json::array();
  for (const std::string& s : state.senders) senders.push_back(s);
  return {{"global", state.global}, {"senders", std::move(senders)}};
}

}  // namespace

Response ApiServer::HandlePause(const Request& req) {
  const bool pause = req.path.ends_with("/pause");
  nlohmann::json body;
  if (auto refused = ParseObjectBody(req.body, &body)) return std::move(*refused);
  std::string sender = kPauseEverything;
  for (const auto& [name, value] : body.items()) {
    if (name != "sender") {
      return ValidationErrors(
          {BodyError(name, "Extra inputs are not permitted (only sender, or {} for everything)",
                     "extra_forbidden")});
    }
    if (!value.is_string() || value.get<std::string>().empty() ||
        value.get<std::string>() == kPauseEverything) {
      return ValidationErrors(
          {BodyError(name, "Input should be a number_id, from_number or agent_id", "string_type")});
    }
    sender = value.get<std::string>();
    if (sender.find_first_not_of("+0123456789 ()-.") == std::string::npos) {
      if (auto e164 = NormalisePhone(sender, options_.validation.default_region)) sender = *e164;
    }
  }
  // The copy the dispatcher reads changes first: a resume's newly due messages must not meet
  // the old pause; a pause holds from now on.
  PauseState next = deps_.pauses->Get();
  if (sender == kPauseEverything) {
    if (pause) {
      next.global = true;
    } else {
      next = PauseState{};
    }
  } else if (pause) {
    next.senders.insert(sender);
  } else {
    next.senders.erase(sender);
  }
  deps_.pauses->Set(next);
  const std::string actor = req.principal.substr(kAdminPrincipalPrefix.size());
  Result<PauseState> stored = deps_.store->SetPause(sender, pause, actor, deps_.clock->NowMs());
  if (stored.ok()) deps_.pauses->Set(*stored);
  if (!stored.ok()) {
    // Back to what the database holds.
    if (Result<PauseState> held = deps_.store->LoadPauses(); held.ok()) deps_.pauses->Set(*held);
    return StatusResponse(stored.status());
  }
  if (deps_.pauses_changed) deps_.pauses_changed();
  Audit(req, pause ? "pause" : "resume",
        {{"sender", sender == kPauseEverything ? nlohmann::json(nullptr) : nlohmann::json(sender)}},
        std::nullopt, std::nullopt);
  return JsonResponse(200, PauseStateJson(*stored));
}

Response ApiServer::HandlePauses(const Request&) {
  return JsonResponse(200, PauseStateJson(deps_.pauses->Get()));
}

Response ApiServer::HandleAudit(const Request& req) {
  int limit = kDefaultAuditLimit;
  int64_t before = 0;
  std::vector<FieldError> errors;
  if (const std::string* text = req.FindParam("limit")) {
    if (text->empty() || text->size() > 4 ||
        text->find_first_not_of("0123456789") != std::string::npos || std::stoi(*text) < 1 ||
        std::stoi(*text) > kMaxAuditLimit) {
      errors.push_back({{"query", "limit"},
                        fmt::format("Input should be an integer from 1 to {}", kMaxAuditLimit),
                        "int_parsing"});
    } else {
      limit = std::stoi(*text);
    }
  }
  if (const std::string* text = req.FindParam("cursor")) {
    if (text->empty() || text->size() > 18 ||
        text->find_first_not_of("0123456789") != std::string::npos) {
      errors.push_back({{"query", "cursor"},
                        "Value error, not a cursor from this service: pass next_cursor unchanged",
                        "value_error"});
    } else {
      before = std::stoll(*text);
    }
  }
  if (!errors.empty()) return ValidationErrors(errors);
  Result<std::vector<store::AuditEntry>> entries = deps_.store->ListAudit(before, limit + 1);
  if (!entries.ok()) return StatusResponse(entries.status());
  const bool has_more = entries->size() > static_cast<size_t>(limit);
  if (has_more) entries->resize(limit);
  Json data = Json::array();
  for (const store::AuditEntry& e : *entries) {
    Json details = Json::parse(e.details, nullptr, false);
    data.push_back({{"id", e.id},
                    {"at", FormatRfc3339(e.at)},
                    {"actor", e.actor},
                    {"action", e.action},
                    {"details", details.is_discarded() ? Json::object() : details},
                    {"matched", e.matched ? Json(*e.matched) : Json(nullptr)},
                    {"changed", e.changed ? Json(*e.changed) : Json(nullptr)}});
  }
  Json next = has_more && !entries->empty() ? Json(std::to_string(entries->back().id)) : Json();
  return JsonResponse(200,
                      {{"data", std::move(data)}, {"has_more", has_more}, {"next_cursor", next}});
}

Response ApiServer::HandleBackup(const Request& req) {
  // VACUUM INTO writes a new file: a name in the spool directory, opened, then unlinked, so
  // that the copy is gone once sent whatever happens.
  const std::string path = fmt::format("{}/.sendq-backup-{}.db", options_.spool_dir, RandomHex(8));
  Status st = deps_.store->Backup(path);
  const int fd = st.ok() ? ::open(path.c_str(), O_RDONLY | O_CLOEXEC) : -1;
  ::unlink(path.c_str());
  if (!st.ok()) return StatusResponse(st);
  struct stat info {};
  if (fd < 0 || ::fstat(fd, &info) != 0) {
    if (fd >= 0) ::close(fd);
    return StatusResponse(Status::IOError("cannot read the backup copy"));
  }
  Audit(req, "backup", {{"bytes", static_cast<int64_t>(info.st_size)}}, std::nullopt, std::nullopt);
  Response res;
  res.content_type = "application/vnd.sqlite3";
  res.SetHeader("Content-Disposition", "attachment; filename=\"sendq-backup.db\"");
  res.file = std::make_shared<http::FileBody>(fd, static_cast<uint64_t>(info.st_size));
  return res;
}

Response ApiServer::HandleExport(const Request& req) {
  std::string producer;
  if (auto refused = ReadScope(req, &producer)) return std::move(*refused);
  ParsedListQuery query = ParseListQuery(req.query, options_.validation.default_region);
  std::string format = "jsonl";
  if (const std::string* f = req.FindParam("format")) format = *f;
  if (format != "jsonl" && format != "csv") {
    query.errors.push_back({{"query", "format"}, "Input should be 'jsonl' or 'csv'", "enum"});
  }
  bool with_attempts = false;
  if (const std::string* a = req.FindParam("attempts")) {
    if (*a != "true" && *a != "false") {
      query.errors.push_back({{"query", "attempts"},
                              "Input should be a valid boolean: true or false",
                              "bool_parsing"});
    }
    with_attempts = *a == "true";
  }
  if (req.FindParam("limit") != nullptr || req.FindParam("cursor") != nullptr) {
    query.errors.push_back({{"query", req.FindParam("limit") != nullptr ? "limit" : "cursor"},
                            "Value error, an export has every matching message: no limit or "
                            "cursor",
                            "value_error"});
  }
  if (!query.ok()) return ValidationErrors(query.errors);
  query.filter.now = deps_.clock->NowMs();
  AddRedactedRecipient(&query.filter);

  Result<int> fd = OpenSpoolFile(options_.spool_dir);
  if (!fd.ok()) return StatusResponse(fd.status());
  auto file = std::make_shared<http::FileBody>(*fd, 0);
  SpoolWriter out(*fd);
  const bool csv = format == "csv";
  if (csv) {
    std::string header;
    for (const char* column : kCsvColumns)
      header += std::string(header.empty() ? "" : ",") + column;
    if (with_attempts) header += ",ledger";
    if (Status st = out.Add(header + "\n"); !st.ok()) return StatusResponse(st);
  }
  int64_t count = 0;
  Status st = deps_.store->Export(
      producer, query.filter, with_attempts,
      [&](const Message& m, const std::vector<Attempt>& attempts) -> Status {
        ++count;
        Json record = Record(m);
        Json ledger = Json::array();
        for (const Attempt& a : attempts) ledger.push_back(AttemptRecord(a));
        if (!csv) {
          record["sendq"]["producer"] = m.producer;
          if (with_attempts) record["ledger"] = std::move(ledger);
          return out.Add(record.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) +
                         "\n");
        }
        std::string row = CsvField(m.id) + "," + CsvField(m.producer) + "," +
                          CsvField(StatusName(m.status)) + "," + CsvText(record["to_number"]) +
                          "," + CsvText(record["from_number"]) + "," + CsvText(record["agent_id"]) +
                          "," + CsvText(record["provider_message_id"]) + "," +
                          CsvText(record["created_at"]) + "," + CsvText(record["sent_at"]) + "," +
                          CsvText(record["updated_at"]) + "," + std::to_string(m.attempts) + "," +
                          CsvText(record["last_error"]);
        if (with_attempts) row += "," + CsvField(ledger.dump());
        return out.Add(row + "\n");
      });
  if (st.ok()) st = out.Flush();
  if (!st.ok()) return StatusResponse(st);
  if (::lseek(*fd, 0, SEEK_SET) != 0) return StatusResponse(Status::IOError("cannot rewind"));
  const int owned = file->Release();
  if (IsAdmin(req)) {
    nlohmann::json details = {{"format", format}, {"attempts", with_attempts}};
    details["producer"] = producer.empty() ? nlohmann::json(nullptr) : nlohmann::json(producer);
    Audit(req, "export", details, count, std::nullopt);
  }
  log::Info("export_written", {{"principal", req.principal},
                               {"messages", count},
                               {"bytes", out.written()},
                               {"format", format}});
  Response res;
  res.content_type = csv ? "text/csv; charset=utf-8" : "application/x-ndjson";
  res.SetHeader("Content-Disposition",
                fmt::format("attachment; filename=\"sendq-export.{}\"", format));
  res.SetHeader("X-Sendq-Export-Count", std::to_string(count));
  res.file = std::make_shared<http::FileBody>(owned, out.written());
  return res;
}

Response ApiServer::HandleStats(const Request& req) {
  std::string producer;
  if (auto refused = ReadScope(req, &producer)) return std::move(*refused);
  const TimeMs now = deps_.clock->NowMs();
  Result<store::Stats> stats =
      producer.empty() ? deps_.store->GetStats(now) : deps_.store->GetProducerStats(producer);
  if (!stats.ok()) return StatusResponse(stats.status());
  Json counts = Json::object();
  for (MessageStatus s : {MessageStatus::kQueued, MessageStatus::kSending, MessageStatus::kSent,
                          MessageStatus::kFailed, MessageStatus::kCanceled, MessageStatus::kHeld}) {
    auto it = stats->by_status.find(s);
    counts[StatusName(s)] = it == stats->by_status.end() ? 0 : it->second;
  }
  Json oldest = nullptr;
  if (stats->oldest_queued_created_at) {
    oldest =
        static_cast<double>(std::max<TimeMs>(0, now - *stats->oldest_queued_created_at)) / 1000.0;
  }
  const bool upstream_paused = deps_.circuit->paused();
  Json upstream = {{"state", upstream_paused ? "paused" : "ok"}};
  if (upstream_paused) upstream["reason"] = deps_.circuit->pause_reason();
  return JsonResponse(200, {{"messages", std::move(counts)},
                            {"oldest_queued_age_seconds", oldest},
                            {"upstream", std::move(upstream)},
                            {"paused", PauseStateJson(deps_.pauses->Get())}});
}

void ApiServer::HandleChanges(const Request& req, http::Responder respond) {
  auto poll = std::make_shared<ChangesPoll>();
  if (auto refused = ReadScope(req, &poll->producer)) return respond(std::move(*refused));
  std::vector<FieldError> errors;
  DurationMs wait = 0;
  if (const std::string* text = req.FindParam("wait")) {
    Result<DurationMs> parsed = ParseDurationOrSeconds(*text);
    if (!parsed.ok() || *parsed > kMaxLongPoll) {
      errors.push_back({{"query", "wait"},
                        fmt::format("must be a number of seconds or a duration such as 10s, at "
                                    "most {}",
                                    FormatDuration(kMaxLongPoll)),
                        "value_error"});
    } else {
      wait = *parsed;
    }
  }
  if (const std::string* text = req.FindParam("limit")) {
    if (text->empty() || text->size() > 4 ||
        text->find_first_not_of("0123456789") != std::string::npos || std::stoi(*text) < 1 ||
        std::stoi(*text) > kMaxChangesLimit) {
      errors.push_back({{"query", "limit"},
                        fmt::format("Input should be an integer from 1 to {}", kMaxChangesLimit),
                        "int_parsing"});
    } else {
      poll->limit = std::stoi(*text);
    }
  }
  const std::string* after = req.FindParam("after");
  if (after != nullptr) {
    std::optional<store::ChangeCursor> cursor = DecodeChangesCursor(*after);
    if (!cursor) {
      errors.push_back({{"query", "after"},
                        "Value error, not a cursor from this service: pass next_cursor unchanged",
                        "value_error"});
    } else {
      poll->after = *cursor;
    }
  }
  if (!errors.empty()) return respond(ValidationErrors(errors));
  if (after == nullptr) {
    // A follower starts from now.
    const store::ChangeCursor now{deps_.clock->NowMs(), ""};
    return respond(
        JsonResponse(200, {{"data", Json::array()}, {"next_cursor", EncodeChangesCursor(now)}}));
  }
  poll->principal = req.principal;
  poll->deadline = deps_.clock->NowMs() + wait;
  poll->respond = std::move(respond);
  if (wait > 0) {
    if (!deps_.long_polls->Begin(poll->principal)) {
      Response res = ErrorResponse(429, "too_many_waits",
                                   "too many long polls open for this token; wait for one to "
                                   "answer");
      res.SetHeader("Retry-After", "1");
      return poll->respond(std::move(res));
    }
    poll->counted = true;
  }
  PollChanges(poll);
}

void ApiServer::PollChanges(const std::shared_ptr<ChangesPoll>& poll) {
  if (poll->answered) return;
  auto answer = [&](Response res) {
    if (poll->answered.exchange(true)) return;
    if (const uint64_t armed = poll->ticket.exchange(0); armed != 0) {
      deps_.long_polls->Cancel(armed);
    }
    if (poll->counted) deps_.long_polls->End(poll->principal);
    poll->respond(std::move(res));
  };
  const TimeMs now = deps_.clock->NowMs();
  const bool may_wait = now < poll->deadline && !deps_.long_polls->closed();
  if (may_wait) {
    // Armed before the read, so that a commit between the two is not missed.
    poll->ticket = deps_.long_polls->Arm(kAnyMessage, poll->deadline, [this, poll] {
      poll->ticket = 0;
      http_->Submit(poll->principal, [this, poll] { PollChanges(poll); });
    });
    // Answered by another look while this one armed: nothing more to wait for.
    if (poll->answered) {
      if (const uint64_t armed = poll->ticket.exchange(0); armed != 0) {
        deps_.long_polls->Cancel(armed);
      }
      return;
    }
  }
  Result<std::vector<Message>> changed =
      deps_.store->ListChanges(poll->producer, poll->after, poll->limit);
  if (!changed.ok()) return answer(StatusResponse(changed.status()));
  if (changed->empty() && may_wait) return;  // the armed wake-up looks again
  Json data = Json::array();
  store::ChangeCursor next = poll->after;
  for (const Message& m : *changed) {
    data.push_back(Record(m));
    next = store::ChangeCursor{m.updated_at, m.id};
  }
  answer(
      JsonResponse(200, {{"data", std::move(data)}, {"next_cursor", EncodeChangesCursor(next)}}));
}

}  // namespace sendq::api
