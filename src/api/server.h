// The HTTP API: routes, authentication, JSON in and out, and the one place where errors become
// status codes and bodies. It runs on the http::Server front (src/http/server.h).
//
// Thread-safety: Serve() runs on one thread; BeginDrain() and Stop() may be called from any
// other thread. Handlers run on the front's threads.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "api/callbacks.h"
#include "api/inbound_webhook.h"
#include "api/long_polls.h"
#include "api/responses.h"
#include "delivery/intake.h"
#include "delivery/metrics.h"
#include "http/server.h"
#include "queue/controls.h"
#include "queue/pauses.h"
#include "queue/upstream_circuit.h"
#include "queue/validation.h"
#include "store/store.h"
#include "util/clock.h"
#include "util/ids.h"
#include "util/status.h"
#include "util/thread_annotations.h"

namespace sendq::api {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;  // 0: any free port
  int io_threads = 1;
  int http_threads = 64;  // threads that run requests (fair between producers)
  size_t max_connections = 10'000;
  size_t max_connections_per_client = 4'096;
  int max_waits_per_producer = 100;  // open long polls of one producer
  http::Limits limits;
  size_t max_body_bytes = 1 << 20;                     // POST /v1/messages
  size_t max_batch_body_bytes = 8 << 20;               // POST /v1/messages/batch
  ValidationOptions validation;                        // --default-region
  std::map<std::string, std::string> producer_tokens;  // name -> token
  std::map<std::string, std::string> admin_tokens;     // name -> token: /v1/admin/ and all reads
  InboundWebhookOptions inbound;                       // POST /v1/agentphone/webhook
  CallbackOptions callbacks;                           // /v1/webhooks: the key and URL rules
  // Exports and backups are written here (a file with no name) before they are sent: the
  // database's directory, where there is room for a copy of it.
  std::string spool_dir = ".";
  // Set when redaction is on: the key of redacted recipients, so that a to_number filter also
  // finds the messages redacted since.
  std::string recipient_key;
  // Messages per writer transaction of an admin's bulk operation: an enqueue waits for at
  // most one such transaction.
  int bulk_batch = 50;
  std::string openapi;                           // GET /openapi.json
  DurationMs retry_validity = 24 * 3'600'000LL;  // a retried message's new validity (--max-age)
};

// Bodies over a route's limit (ServerOptions) are refused with 413 before they are read, a
// chunked one as soon as it passes the limit. Routes that take no body (cancel, retry) still
// read a small one, and ignore it.
inline constexpr size_t kMaxIgnoredBodyBytes = 64 << 10;
// POST /v1/messages with a declared body up to this size is handled on the event loop.
inline constexpr size_t kMaxInlineBodyBytes = 64 << 10;
// The longest a GET may wait for a message to change (?wait=).
inline constexpr DurationMs kMaxLongPoll = 60'000;

struct ServerDeps {
  store::Store* store;
  delivery::Intake* intake;
  UpstreamCircuit* circuit;
  delivery::Metrics* metrics;
  LongPolls* long_polls;
  Clock* clock;
  // The admin's pauses, read by the dispatcher; `pauses_changed` is told after each change.
  Pauses* pauses = nullptr;
  std::function<void()> pauses_changed;
  // Extra lines for /metrics (retention and redaction), if any.
  std::function<std::string()> more_metrics;
};

// Principals of admin tokens are this prefix and the admin's name (producer names cannot hold
// a colon: the token lists are name:token).
inline constexpr std::string_view kAdminPrincipalPrefix = "admin:";

class ApiServer final : public http::Handler {
 public:
  ApiServer(ServerDeps deps, ServerOptions options);
  ~ApiServer() override;
  ApiServer(const ApiServer&) = delete;
  ApiServer& operator=(const ApiServer&) = delete;

  // Binds the listening socket; returns the port.
  Result<int> Bind();
  // Serves until Stop(). REQUIRES: Bind() succeeded.
  void Serve();
  // From now on, requests that would queue work get 503; reads keep working; idle
  // connections close. Returns once the enqueues already accepted are committed and answered.
  void BeginDrain();
  // Answers the waiting long polls and stops serving.
  void Stop();

  http::HeadVerdict OnHead(http::Request& request) override;
  void OnRequest(std::shared_ptr<http::Request> request, http::Responder respond) override;

 private:
  struct LongPoll;

  // Counts an enqueue from before its draining check until its answer is made (RAII).
  class EnqueueCount {
   public:
    explicit EnqueueCount(ApiServer* server);
    EnqueueCount(EnqueueCount&& other) noexcept;
    EnqueueCount& operator=(EnqueueCount&&) = delete;
    ~EnqueueCount();
    void Release();

   private:
    ApiServer* server_;
  };

  // The producer name for the request's bearer token, or empty.
  std::string Authenticate(const http::Request& req) const;

  // Never blocks: runs on the event loop, answers once the store's commit is done.
  void HandleEnqueue(const http::Request& req, http::Responder respond);
  http::Response HandleEnqueueBatch(const http::Request& req);
  // POST /v1/messages/{id}/reactions: queued like a message (never blocks, as HandleEnqueue).
  void HandleReaction(const http::Request& req, http::Responder respond);
  void HandleGet(const http::Request& req, http::Responder respond);
  // One look at a long-polled message: answers, or arms a wake-up to look again.
  void Poll(const std::shared_ptr<LongPoll>& poll);
  http::Response HandleAttempts(const http::Request& req);
  http::Response HandleList(const http::Request& req);
  http::Response HandleCancel(const http::Request& req);
  http::Response HandleRetry(const http::Request& req);
  // A held message (a runaway guard's) back to the queue; by filter, release or cancel.
  http::Response HandleRelease(const http::Request& req);
  http::Response HandleResolveHeld(const http::Request& req);
  http::Response HandleReady(const http::Request& req);
  // The suppression list (opt-outs) of the request's producer, by number.
  http::Response HandleSuppression(const http::Request& req);
  http::Response HandleSuppressionList(const http::Request& req);
  http::Response HandleAgentPhoneWebhook(const http::Request& req);
  // Producer callbacks: /v1/webhooks, /v1/webhooks/{id}, its deliveries, /v1/callback-secret.
  http::Response HandleWebhooks(const http::Request& req);
  http::Response HandleWebhook(const http::Request& req);
  http::Response HandleWebhookDeliveries(const http::Request& req);
  http::Response HandleMetrics(const http::Request& req);

  // --- operators (operator_routes.cpp) ---
  static bool IsAdmin(const http::Request& req);
  // The producer whose messages a read covers: the caller's own, or for an admin the
  // `producer` parameter ("" for every producer). A producer naming another gets 403.
  std::optional<http::Response> ReadScope(const http::Request& req, std::string* producer) const;
  // The producer message `id` belongs to, as the caller may see it: its own name, or for an
  // admin the message's owner ("" when there is none, which then reads as not found).
  std::string OwnerFor(const http::Request& req, const std::string& id) const;
  // A list filter's to_number also finds the redacted messages to that number.
  void AddRedactedRecipient(ListFilter* filter) const;
  // The record, with `sendq.paused` when an admin's pause holds it.
  Json Record(const Message& m) const;
  http::Response HandleAdminBulk(const http::Request& req);
  http::Response HandlePause(const http::Request& req);
  http::Response HandlePauses(const http::Request& req);
  http::Response HandleAudit(const http::Request& req);
  http::Response HandleBackup(const http::Request& req);
  http::Response HandleExport(const http::Request& req);
  http::Response HandleStats(const http::Request& req);
  void HandleChanges(const http::Request& req, http::Responder respond);
  struct ChangesPoll;
  void PollChanges(const std::shared_ptr<ChangesPoll>& poll);
  // Keeps an admin action in the audit table and the log.
  void Audit(const http::Request& req, std::string action, const nlohmann::json& details,
             std::optional<int64_t> matched, std::optional<int64_t> changed);
  // While stopping, the 503 for requests that would queue work.
  std::optional<http::Response> RefuseWhileDraining() const;
  // The answer to cancel or retry: the record, or 409 with the current state (`rule` says
  // which state was needed), or the error.
  http::Response TransitionAnswer(const std::string& producer, const std::string& id,
                                  const Result<Message>& result, std::string_view rule);

  const ServerDeps deps_;
  const ServerOptions options_;
  std::unique_ptr<http::Server> http_;
  std::atomic<bool> draining_{false};
  Mutex enqueues_mu_;
  std::condition_variable enqueues_done_;
  int enqueues_in_flight_ GUARDED_BY(enqueues_mu_) = 0;
};

}  // namespace sendq::api
