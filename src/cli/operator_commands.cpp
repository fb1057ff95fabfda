// sendq stats, export, backup and admin.
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>

#include "cli/command_runs.h"
#include "cli/output.h"
#include "util/percent.h"

namespace sendq::cli {
namespace {

using nlohmann::ordered_json;

// The server may take a while to start an export or make a backup (VACUUM INTO) before the
// first byte; this bounds that and every pause in the body.
constexpr int64_t kDownloadTimeoutMs = 10 * 60'000;
constexpr char kSqliteMagic[] = "SQLite format 3";  // and a NUL: the first 16 bytes

std::string Compact(const ordered_json& value) {
  return value.dump(-1, ' ', false, ordered_json::error_handler_t::replace);
}

// Writes all of `data` to `fd`; false with errno set if it cannot.
bool WriteAll(int fd, const char* data, size_t length) {
  while (length > 0) {
    const ssize_t n = ::write(fd, data, length);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data += n;
    length -= static_cast<size_t>(n);
  }
  return true;
}

// Makes a rename in `path`'s directory durable.
void SyncDirectoryOf(const std::string& path) {
  const size_t slash = path.rfind('/');
  const std::string dir =
      slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

bool Exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

// A download's destination: stdout, or PATH.partial that becomes PATH once it is complete, so
// that PATH never holds half a file.
class Destination {
 public:
  // `path` empty or "-": stdout.
  explicit Destination(std::string path) : path_(std::move(path)) {
    if (path_ == "-") path_.clear();
  }
  ~Destination() { Abandon(); }
  Destination(const Destination&) = delete;
  Destination& operator=(const Destination&) = delete;

  bool to_stdout() const { return path_.empty(); }
  const std::string& path() const { return path_; }
  std::string name() const { return to_stdout() ? "stdout" : "'" + path_ + "'"; }

  // Opens PATH.partial (mode 0600: messages and backups hold bodies and phone numbers).
  bool Open(std::string* error) {
    if (to_stdout()) {
      fd_ = STDOUT_FILENO;
      return true;
    }
    partial_ = path_ + ".partial";
    fd_ = ::open(partial_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd_ < 0) {
      *error = fmt::format("cannot create '{}': {}", partial_, std::strerror(errno));
      partial_.clear();
      return false;
    }
    return true;
  }

  bool Write(const char* data, size_t length) {
    if (!WriteAll(fd_, data, length)) {
      write_error_ = std::strerror(errno);
      return false;
    }
    return true;
  }
  const std::string& write_error() const { return write_error_; }

  // Syncs PATH.partial and renames it to PATH: replacing PATH when `replace`, else failing if
  // PATH appeared meanwhile.
  bool Commit(bool replace, std::string* error) {
    if (to_stdout()) return std::fflush(stdout) == 0;
    const bool synced = ::fsync(fd_) == 0;
    const int sync_errno = errno;
    ::close(fd_);
    fd_ = -1;
    if (!synced) {
      *error = fmt::format("cannot sync '{}': {}", partial_, std::strerror(sync_errno));
      return false;
    }
    if (replace) {
      if (::rename(partial_.c_str(), path_.c_str()) != 0) {
        *error =
            fmt::format("cannot rename '{}' to '{}': {}", partial_, path_, std::strerror(errno));
        return false;
      }
    } else if (::link(partial_.c_str(), path_.c_str()) == 0) {
      ::unlink(partial_.c_str());
    } else if (errno == EEXIST) {
      *error =
          fmt::format("'{}' exists (it appeared during the download); --force replaces it", path_);
      return false;
    } else if (Exists(path_) || ::rename(partial_.c_str(), path_.c_str()) != 0) {
      // No hard links on this file system: rename, having checked just before.
      *error = fmt::format("cannot rename '{}' to '{}': {}", partial_, path_, std::strerror(errno));
      return false;
    }
    partial_.clear();
    SyncDirectoryOf(path_);
    return true;
  }

  // Removes PATH.partial, if it is still there.
  void Abandon() {
    if (fd_ >= 0 && !to_stdout()) ::close(fd_);
    fd_ = -1;
    if (!partial_.empty()) ::unlink(partial_.c_str());
    partial_.clear();
  }

 private:
  std::string path_;
  std::string partial_;
  int fd_ = -1;
  std::string write_error_;
};

struct DownloadOutcome {
  HttpAnswer answer;
  uint64_t bytes = 0;
  uint64_t lines = 0;
  std::optional<uint64_t> content_length;
  std::string head;  // the first 16 bytes
  int signal = 0;    // the signal that interrupted it, or 0
};

// GETs `path` into `dest` with a progress line on stderr (a terminal only, and not while the
// data itself goes to the same terminal).
DownloadOutcome Download(ApiClient& client, const std::string& path, Destination& dest,
                         bool count_lines) {
  DownloadOutcome out;
  const bool progress_on = isatty(STDERR_FILENO) && !(dest.to_stdout() && isatty(STDOUT_FILENO));
  ProgressLine progress(stderr, progress_on);
  StopOnSignal stop(&client);
  out.answer = client.Download(
      path,
      [&](const HttpAnswer& head) {
        const std::string length = head.Header("content-length");
        if (!length.empty() && length.find_first_not_of("0123456789") == std::string::npos &&
            length.size() < 19) {
          out.content_length = std::stoull(length);
        }
        progress.Update(0, out.content_length,
                        count_lines ? std::optional<uint64_t>(0) : std::nullopt);
      },
      [&](const char* data, size_t length) {
        if (out.head.size() < 16) out.head.append(data, std::min(length, 16 - out.head.size()));
        if (!dest.Write(data, length)) return false;
        out.bytes += length;
        if (count_lines) out.lines += static_cast<uint64_t>(std::count(data, data + length, '\n'));
        progress.Update(out.bytes, out.content_length,
                        count_lines ? std::optional<uint64_t>(out.lines) : std::nullopt);
        return true;
      },
      kDownloadTimeoutMs);
  progress.Finish();
  if (stop.signaled()) out.signal = stop.signal_number();
  return out;
}

// After StopOnSignal is gone: ends the process by `sig`, as the signal would have, once the
// partial file is removed.
int ExitBySignal(int sig) {
  PrintError("interrupted");
  std::signal(sig, SIG_DFL);
  std::raise(sig);
  return 128 + sig;
}

// Checks a finished download: the transfer, the HTTP answer, the length.
int CheckDownload(ApiClient& client, const DownloadOutcome& out, const Destination& dest) {
  if (!dest.write_error().empty()) {
    PrintError(fmt::format("cannot write {}: {}", dest.name(), dest.write_error()));
    return kExitError;
  }
  if (out.answer.status != 0 && !out.answer.ok()) return ReportFailure(client, out.answer);
  if (out.answer.status == 0) {
    if (out.bytes > 0) {
      PrintError(fmt::format("the download from {} broke off after {}: {}", client.url(),
                             HumanBytes(out.bytes), out.answer.error));
      return kExitUnreachable;
    }
    return ReportFailure(client, out.answer);
  }
  if (out.content_length && *out.content_length != out.bytes) {
    PrintError(
        fmt::format("the download ended after {} of {} bytes", out.bytes, *out.content_length));
    return kExitUnreachable;
  }
  return kExitOk;
}

void PrintPauseState(const ordered_json& state) {
  const bool global = state.value("global", false);
  std::printf("sending         %s\n", global ? "paused (everything)" : "running");
  std::string senders;
  if (auto it = state.find("senders"); it != state.end() && it->is_array()) {
    for (const auto& s : *it) {
      if (!senders.empty()) senders += ", ";
      senders += s.is_string() ? s.get<std::string>() : s.dump();
    }
  }
  std::printf("paused senders  %s\n", senders.empty() ? "none" : senders.c_str());
}

}  // namespace

int RunStats(ApiClient& client, bool json, const std::string& producer) {
  std::string query;
  AddParam(query, "producer", producer);
  HttpAnswer answer = client.Get("/v1/stats" + (query.empty() ? "" : "?" + query));
  if (!answer.ok()) return ReportFailure(client, answer);
  const ordered_json stats = answer.Json();
  if (!stats.is_object()) {
    PrintError("unexpected answer from sendq: " + CellText(answer.body, 200));
    return kExitError;
  }
  if (json) {
    PrintJsonLine(stats);
    return kExitOk;
  }
  if (auto messages = stats.find("messages"); messages != stats.end() && messages->is_object()) {
    Table table({{"STATUS", 16}, {"MESSAGES", 12, true}});
    for (const auto& [status, count] : messages->items()) {
      table.AddRow({status, count.is_number() ? count.dump() : Str(*messages, status.c_str())});
    }
    std::fputs(table.Render().c_str(), stdout);
    std::printf("\n");
  }
  const auto oldest = stats.find("oldest_queued_age_seconds");
  std::printf("oldest queued   %s\n", oldest != stats.end() && oldest->is_number()
                                          ? FormatAge(oldest->get<double>()).c_str()
                                          : "-");
  if (auto upstream = stats.find("upstream"); upstream != stats.end() && upstream->is_object()) {
    std::printf("upstream        %s\n", Str(*upstream, "state").c_str());
  }
  if (auto paused = stats.find("paused"); paused != stats.end() && paused->is_object()) {
    PrintPauseState(*paused);
  }
  return kExitOk;
}

int RunExport(ApiClient& client, bool json, const ExportOptions& o) {
  std::string query;
  AddParam(query, "format", o.format);
  if (o.attempts) AddParam(query, "attempts", "true");
  const std::string filters = FilterQuery(o.filters);
  if (!filters.empty()) query += "&" + filters;

  Destination dest(o.output);
  std::string error;
  if (!dest.Open(&error)) {
    PrintError(error);
    return kExitError;
  }
  DownloadOutcome out = Download(client, "/v1/messages/export?" + query, dest, true);
  if (out.signal != 0) {
    dest.Abandon();
    return ExitBySignal(out.signal);
  }
  if (int code = CheckDownload(client, out, dest); code != kExitOk) return code;
  if (!dest.Commit(true, &error)) {
    PrintError(error);
    return kExitError;
  }
  if (!dest.to_stdout()) {
    if (json) {
      PrintJsonLine({{"path", dest.path()}, {"bytes", out.bytes}, {"lines", out.lines}});
    } else {
      std::printf("exported %s (%s) to %s\n",
                  FormatProgress(out.bytes, std::nullopt, out.lines).c_str(), o.format.c_str(),
                  dest.path().c_str());
    }
  }
  return kExitOk;
}

int RunBackup(ApiClient& client, bool json, const BackupOptions& o) {
  if (o.to.empty() || o.to == "-") {
    PrintError("backup needs --to FILE");
    return kExitUsage;
  }
  if (!o.force && Exists(o.to)) {
    PrintError(fmt::format("'{}' exists; --force replaces it", o.to));
    return kExitError;
  }
  Destination dest(o.to);
  std::string error;
  if (!dest.Open(&error)) {
    PrintError(error);
    return kExitError;
  }
  DownloadOutcome out = Download(client, "/v1/admin/backup", dest, false);
  if (out.signal != 0) {
    dest.Abandon();
    return ExitBySignal(out.signal);
  }
  if (int code = CheckDownload(client, out, dest); code != kExitOk) return code;
  if (out.head.size() < 16 || std::memcmp(out.head.data(), kSqliteMagic, 16) != 0) {
    PrintError("the backup sendq sent is not an SQLite database; nothing was written");
    return kExitError;
  }
  if (!dest.Commit(o.force, &error)) {
    PrintError(error);
    return kExitError;
  }
  if (json) {
    PrintJsonLine({{"path", o.to}, {"bytes", out.bytes}});
  } else {
    std::printf("backup written to %s (%s)\n", o.to.c_str(), HumanBytes(out.bytes).c_str());
  }
  return kExitOk;
}

int RunAdminMessages(ApiClient& client, bool json, const std::string& action,
                     const AdminFilterOptions& o) {
  ordered_json body = ordered_json::object();
  if (o.status.size() == 1) body["status"] = o.status[0];
  if (o.status.size() > 1) body["status"] = o.status;
  if (!o.producer.empty()) body["producer"] = o.producer;
  if (!o.sender.empty()) body["sender"] = o.sender;
  if (!o.to.empty()) body["to_number"] = o.to;
  if (!o.error_contains.empty()) body["error_contains"] = o.error_contains;
  if (!o.created_after.empty()) body["created_after"] = TimeArgumentForApi(o.created_after);
  if (!o.created_before.empty()) body["created_before"] = TimeArgumentForApi(o.created_before);
  const std::string path = "/v1/admin/messages/" + action;
  if (o.dry_run) body["dry_run"] = true;
  ordered_json result;
  if (o.dry_run || json || !isatty(STDERR_FILENO)) {
    HttpAnswer answer = client.Post(path, Compact(body));
    if (!answer.ok()) return ReportFailure(client, answer);
    result = answer.Json();
  } else {
    // On a terminal: how many match, then the operation in steps of a few percent, each a
    // call with a limit (what one call changed no longer matches the next), with a progress
    // bar. The server's own transactions are small either way.
    ordered_json count = body;
    count["dry_run"] = true;
    HttpAnswer counted = client.Post(path, Compact(count));
    if (!counted.ok()) return ReportFailure(client, counted);
    const int64_t total = counted.Json().value("matched", int64_t{0});
    ordered_json step = body;
    step["limit"] = std::max<int64_t>(500, total / 50);
    int64_t matched = 0;
    int64_t changed = 0;
    ProgressLine progress(stderr, true);
    for (;;) {
      HttpAnswer answer = client.Post(path, Compact(step));
      if (!answer.ok()) return ReportFailure(client, answer);
      const int64_t step_matched = answer.Json().value("matched", int64_t{0});
      const int64_t step_changed = answer.Json().value("changed", int64_t{0});
      matched += step_matched;
      changed += step_changed;
      progress.UpdateCount(static_cast<uint64_t>(changed),
                           static_cast<uint64_t>(std::max(total, changed)), "messages");
      if (step_matched < step["limit"].get<int64_t>() || step_changed == 0) break;
    }
    progress.Finish();
    result = {{"matched", matched}, {"changed", changed}};
  }
  if (json) {
    PrintJsonLine(result);
    return kExitOk;
  }
  const std::string matched = Str(result, "matched");
  const std::string changed = Str(result, "changed");
  if (o.dry_run) {
    std::printf("%s messages match; dry run: nothing changed\n", matched.c_str());
  } else {
    std::printf("%s messages match; %s %s\n", matched.c_str(),
                action == "retry" ? "queued again:" : "canceled:", changed.c_str());
  }
  return kExitOk;
}

int RunAdminPause(ApiClient& client, bool json, const std::string& action,
                  const std::string& sender) {
  ordered_json body = ordered_json::object();
  if (!sender.empty()) body["sender"] = sender;
  HttpAnswer answer = client.Post("/v1/admin/" + action, Compact(body));
  if (!answer.ok()) return ReportFailure(client, answer);
  if (json) {
    PrintJsonLine(answer.Json());
  } else {
    PrintPauseState(answer.Json());
  }
  return kExitOk;
}

int RunAdminPauses(ApiClient& client, bool json) {
  HttpAnswer answer = client.Get("/v1/admin/pauses");
  if (!answer.ok()) return ReportFailure(client, answer);
  if (json) {
    PrintJsonLine(answer.Json());
  } else {
    PrintPauseState(answer.Json());
  }
  return kExitOk;
}

int RunAdminAudit(ApiClient& client, bool json, const AuditOptions& o) {
  std::string query;
  if (o.limit >= 0) AddParam(query, "limit", std::to_string(o.limit));
  AddParam(query, "cursor", o.cursor);
  HttpAnswer answer = client.Get("/v1/admin/audit" + (query.empty() ? "" : "?" + query));
  if (!answer.ok()) return ReportFailure(client, answer);
  const ordered_json page = answer.Json();
  if (json) {
    PrintJsonLine(page);
    return kExitOk;
  }
  if (!page.is_object() || !page.contains("data") || !page["data"].is_array()) {
    PrintError("unexpected answer from sendq: " + CellText(answer.body, 200));
    return kExitError;
  }
  if (page["data"].empty()) {
    std::printf("no audit entries\n");
  } else {
    Table table({{"AT", 19},
                 {"ACTOR", 16},
                 {"ACTION", 16},
                 {"MATCHED", 7, true},
                 {"CHANGED", 7, true},
                 {"DETAILS", 60}});
    for (const auto& e : page["data"]) {
      const auto details = e.find("details");
      table.AddRow({FormatLocalTime(Str(e, "at")), Str(e, "actor"), Str(e, "action"),
                    Str(e, "matched"), Str(e, "changed"),
                    details == e.end() || details->is_null() ? "" : Compact(*details)});
    }
    std::fputs(table.Render().c_str(), stdout);
  }
  if (page.value("has_more", false) && !Str(page, "next_cursor").empty()) {
    std::fflush(stdout);
    std::fprintf(stderr, "sendq: more entries: --cursor %s\n", Str(page, "next_cursor").c_str());
  }
  return kExitOk;
}

}  // namespace sendq::cli
