// The operator commands themselves, once their options are parsed (commands.cpp parses them):
// message commands in message_commands.cpp, operations and admin in operator_commands.cpp.
// Each prints its result to stdout (a table or key/value lines, or JSON with --json), its
// errors to stderr, and returns the process exit code (ExitCode in output.h).
//
// Thread-safety: each Run* belongs to the main thread; a StopOnSignal adds one thread of its own.
#pragma once

#include <signal.h>

#include <atomic>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "cli/client.h"
#include "util/thread_annotations.h"

namespace sendq::cli {

// A member of an answer as text: a string as it is, null or absent as "", anything else as
// JSON.
std::string Str(const nlohmann::ordered_json& record, const char* key);
// Appends name=value (percent-encoded) to a query string; nothing when `value` is empty.
void AddParam(std::string& query, const std::string& name, const std::string& value);

// The filters of GET /v1/messages (and of the export), as given on the command line.
struct ListFilters {
  std::vector<std::string> status;
  std::string agent_id;
  std::string to;
  std::string provider_message_id;
  std::string ordering_key;
  std::string priority;
  std::string scheduled;  // "true" or "false"
  std::string created_after;
  std::string created_before;
  std::string producer;  // admin tokens only
};

// "status=queued&status=failed&to_number=%2B1415..." (no leading '?'; empty when no filter).
// Local times in created_after/created_before become UTC (TimeArgumentForApi).
std::string FilterQuery(const ListFilters& filters);

// --wait [SECONDS] of send and get.
struct WaitOption {
  bool given = false;
  std::optional<int64_t> ms;  // nullopt: until the message is final, however long that takes
};

struct SendOptions {
  std::string to;
  std::string agent_id;
  std::string from;
  std::string number_id;
  std::optional<std::string> body;  // the positional argument; "-" reads stdin
  std::string body_file;
  std::vector<std::string> media_urls;
  std::string idempotency_key;
  WaitOption wait;
};

struct GetOptions {
  std::string id;
  WaitOption wait;
};

struct ListOptions {
  ListFilters filters;
  int limit = -1;  // -1: the server's default
  std::string cursor;
  bool all = false;
};

struct TailOptions {
  std::string producer;
  std::string after;  // a cursor from /v1/messages/changes; empty: from now
};

struct ExportOptions {
  ListFilters filters;
  std::string format = "jsonl";
  bool attempts = false;
  std::string output;  // empty or "-": stdout
};

struct BackupOptions {
  std::string to;
  bool force = false;
};

// The filters of POST /v1/admin/messages/retry and /cancel.
struct AdminFilterOptions {
  std::vector<std::string> status;
  std::string producer;
  std::string sender;
  std::string to;
  std::string error_contains;
  std::string created_after;
  std::string created_before;
  bool dry_run = false;
};

struct AuditOptions {
  int limit = -1;  // -1: the server's default
  std::string cursor;
};

int RunSend(ApiClient& client, bool json, const SendOptions& options);
int RunGet(ApiClient& client, bool json, const GetOptions& options);
int RunAttempts(ApiClient& client, bool json, const std::string& id);
int RunList(ApiClient& client, bool json, const ListOptions& options);
// `action` is "cancel" or "retry".
int RunMessageAction(ApiClient& client, bool json, const std::string& action,
                     const std::string& id);
int RunTail(ApiClient& client, bool json, const TailOptions& options);

int RunStats(ApiClient& client, bool json, const std::string& producer);
int RunExport(ApiClient& client, bool json, const ExportOptions& options);
int RunBackup(ApiClient& client, bool json, const BackupOptions& options);
// `action` is "retry" or "cancel".
int RunAdminMessages(ApiClient& client, bool json, const std::string& action,
                     const AdminFilterOptions& options);
// `action` is "pause" or "resume"; an empty sender means everything.
int RunAdminPause(ApiClient& client, bool json, const std::string& action,
                  const std::string& sender);
int RunAdminPauses(ApiClient& client, bool json);
int RunAdminAudit(ApiClient& client, bool json, const AuditOptions& options);

// While it lives, SIGINT and SIGTERM stop `client` (ApiClient::Stop) instead of ending the
// process, so that a command can end cleanly: tail exits 0, a download removes its partial
// file. A second signal ends the process at once, as the signal does by default. The signals
// are blocked in every thread and taken by one watcher thread (sigwait), so create it before
// any other thread starts.
class StopOnSignal {
 public:
  explicit StopOnSignal(ApiClient* client);
  ~StopOnSignal();
  StopOnSignal(const StopOnSignal&) = delete;
  StopOnSignal& operator=(const StopOnSignal&) = delete;

  bool signaled() const { return signaled_.load(); }
  // SIGINT or SIGTERM once signaled(), else 0.
  int signal_number() const { return signal_.load(); }

 private:
  void Watch();

  ApiClient* const client_;
  sigset_t watched_{};
  sigset_t previous_mask_{};
  std::atomic<bool> signaled_{false};
  std::atomic<int> signal_{0};
  Mutex mu_;
  bool done_ GUARDED_BY(mu_) = false;  // the owner is going away
  std::thread watcher_;
};

}  // namespace sendq::cli
