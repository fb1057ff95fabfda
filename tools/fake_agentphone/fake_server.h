// FakeAgentPhone: a real HTTP server that stands in for AgentPhone's POST /v1/messages in
// tests, benchmarks and local runs, with switches for the faults a real upstream can show
// (latency, 5xx, 429, dropped connections, rejections, auth and billing errors).
//
// It answers the way AgentPhone does (200 with a msg_ id, FastAPI 422s, the error envelope
// for everything else) and records every request, so tests can check what was actually sent.
// Like the real API it does NOT deduplicate by Idempotency-Key: a second accepted POST with
// the same key is recorded as a second send, which is how tests detect duplicate delivery.
//
// Routes:
//   POST /v1/messages       the fake Send Message endpoint (bearer auth).
//   GET  /v1/numbers        the numbers that sent (a from_number's id is "num_" and its
//                           digits), offset paging: {"data", "hasMore", "total"}.
//   GET  /v1/agents/{id}    any agent, with one number "num_agent_<id>".
//   GET  /v1/numbers/{id}/messages   the accepted sends from that number, newest first, with
//                           limit (at most 200) and the after/before time cursors (exclusive):
//                           {"data": [{"id","from_","to","body","direction","channel",
//                           "receivedAt"}], "hasMore"}. A number id is the request's number_id,
//                           its from_number's id, or its agent's number.
//   GET  /__fake/sent       {"count": N, "sends": [{"idempotency_key", "id", "body",
//                           "received_at_ms"}, ...]}: the accepted sends, oldest first.
//                           ?min_count=N&wait_ms=M waits (up to 60 s) for N of them.
//                           Both answers hold "max_in_flight": the most Send Message
//                           requests served at once since the start or the last reset.
//                           &summary=1 answers {"count", "first_received_at_ms",
//                           "last_received_at_ms", "repeated_keys"} instead of the list.
//   GET  /__fake/received   the same shape (the list is also under "sends"), over every
//                           POST /v1/messages that arrived, whatever its outcome. Each entry
//                           also has "status": null while in flight, 0 when dropped. An
//                           arrival is recorded before the latency wait.
//   POST /v1/messages/{id}/reactions   Send Reaction, for the id of an accepted send (404
//                           otherwise): {"id": "rxn_...", "reaction_type", "message_id",
//                           "channel"}.
//   GET  /__fake/reactions  {"count", "reactions": [{"id","message_id","reaction",
//                           "idempotency_key","received_at_ms"}]}: the accepted reactions.
//   POST /__fake/config     changes the fault switches (a JSON object of FaultConfig fields;
//                           unknown fields are a 400); answers the whole config.
//   POST /__fake/reset      forgets recorded requests and fail_first counts (not the config).
//
// Checks on POST /v1/messages run in this order: auth (401) -> latency -> force_status ->
// fail_first -> drop -> error_rate -> rate_429 -> reject_rate -> validation (422) -> accept.
// Auth failures are answered at once; every later answer, faults included, waits for the
// configured latency first, as a slow upstream would.
//
// Thread-safety: Start, Run and Stop may be called from different threads (Stop typically
// from a signal-handling thread while Run blocks). Start must be called once, before Run.
// Request handlers run on the server's own thread pool; all mutable state is guarded by one
// mutex. A dropped connection makes the server write to a shut-down socket, so the process
// must ignore SIGPIPE (the fake-agentphone binary does).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <string>

#include "util/clock.h"
#include "util/status.h"

namespace httplib {
struct Request;
struct Response;
}  // namespace httplib

namespace sendq::fake {

// The switches that POST /__fake/config may change at run time.
struct FaultConfig {
  int latency_ms = 0;
  int latency_jitter_ms = 0;  // extra latency, uniform in [0, latency_jitter_ms]
  // The first N requests carrying each Idempotency-Key get 503. Requests without the header
  // are not counted.
  int fail_first = 0;
  double error_rate = 0;   // probability of a random 500/502/503/504
  double rate_429 = 0;     // probability of 429 with Retry-After: 1
  double drop_rate = 0;    // probability of closing the connection without an answer
  double reject_rate = 0;  // probability of a FastAPI 422
  // Probability of accepting a send (recorded and listed, like any accepted send) and then
  // closing the connection without the answer: the sender cannot know it was sent.
  double accept_then_drop_rate = 0;
  // Answer the list of a number's messages with this status (e.g. 503); 0 = off.
  int list_status = 0;
  // The expected bearer token. Empty: any bearer is accepted, but one must be present.
  std::string token;
  int force_status = 0;           // answer every POST with this status (200..599); 0 = off
  std::string force_retry_after;  // Retry-After value sent with force_status, if non-empty
  std::string force_body;         // raw body (text/html) sent with force_status, if non-empty
  // When non-empty, force_status applies only to sends from this sender (the request's
  // number_id, from_number or agent_id).
  std::string force_sender;
};

// The config as POST /__fake/config answers it.
nlohmann::json FaultConfigToJson(const FaultConfig& config);

// Applies the fields present in `patch` to `*config`. Unknown fields and bad values give
// InvalidArgument and leave `*config` unchanged.
Status ApplyFaultConfigJson(const nlohmann::json& patch, FaultConfig* config);

class FakeAgentPhone {
 public:
  struct Options {
    std::string host = "127.0.0.1";
    int port = 0;  // 0: an ephemeral port, reported by Start()
    FaultConfig faults;
    std::string log_path;          // if set, one JSON line per accepted send is appended here
    std::optional<uint64_t> seed;  // for the random faults; unset: seeded from the OS
    int threads = 128;             // each request in its latency sleep holds one thread
  };

  explicit FakeAgentPhone(Options options);
  ~FakeAgentPhone();  // Stops the server; Run() must have returned before destruction.
  FakeAgentPhone(const FakeAgentPhone&) = delete;
  FakeAgentPhone& operator=(const FakeAgentPhone&) = delete;

  // Binds the listening socket and returns the bound port.
  // REQUIRES: called once, before Run().
  Result<int> Start();

  // Serves requests on the calling thread until Stop(). Returns false if the server failed
  // rather than being stopped.
  bool Run();

  // Makes Run() return, waking long-polls and latency sleeps so it returns promptly. Safe to
  // call before Run() starts (Run then returns at once) and more than once.
  void Stop();

  int port() const { return port_; }

 private:
  class Server;  // httplib::Server with a race-free stop; defined in the .cpp

  void HandleSend(const httplib::Request& req, httplib::Response& res);
  void HandleList(const httplib::Request& req, httplib::Response& res, bool accepted_only);
  void HandleConfig(const httplib::Request& req, httplib::Response& res);
  // GET /v1/numbers, GET /v1/agents/{id} and GET /v1/numbers/{id}/messages, over the
  // accepted sends. False (and a 401 written) when the bearer is missing or wrong.
  bool Authorized(const httplib::Request& req, httplib::Response& res);
  void HandleNumbers(const httplib::Request& req, httplib::Response& res);
  // POST /v1/messages/{id}/reactions, for an accepted send's id.
  void HandleReaction(const httplib::Request& req, httplib::Response& res);
  void HandleAgent(const httplib::Request& req, httplib::Response& res);
  void HandleNumberMessages(const httplib::Request& req, httplib::Response& res);
  void HandleReset(const httplib::Request& req, httplib::Response& res);

  // Records an arriving send and returns its sequence number.
  uint64_t RecordArrival(const std::string& idempotency_key, nlohmann::json body,
                         TimeMs arrived_at);
  // Sets the final status (and id, when accepted) of arrival `seq`, unless a reset forgot it.
  void RecordOutcome(uint64_t seq, int status, const nlohmann::json& id);
  // Records an accepted send and appends it to the send log.
  void RecordSend(nlohmann::json entry);

  // Waits for the configured latency, or until Stop().
  void WaitLatency(int latency_ms);

  // A uniform draw in [0, 1). REQUIRES: mu_ held.
  double Draw();
  // `n` random lower-case hex digits. REQUIRES: mu_ held.
  std::string RandomHex(int n);

  // Constant after construction.
  const Options options_;
  Clock* const clock_;
  std::unique_ptr<Server> server_;
  int port_ = 0;  // set by Start()

  mutable std::mutex mu_;
  std::condition_variable cv_;  // signalled on every new arrival, send and on Stop()
  FaultConfig config_;          // GUARDED_BY(mu_)
  std::mt19937_64 rng_;         // GUARDED_BY(mu_)
  bool stopping_ = false;       // GUARDED_BY(mu_)
  // Requests seen per Idempotency-Key, for fail_first. Cleared by reset.
  std::map<std::string, int> attempts_by_key_;  // GUARDED_BY(mu_)
  // received_[i] has sequence number received_base_ + i; a reset moves the base past every
  // number handed out, so in-flight requests cannot touch entries recorded after it.
  // Entries: {"idempotency_key","id","status","body","received_at_ms"}.
  std::deque<nlohmann::json> received_;  // GUARDED_BY(mu_)
  uint64_t received_base_ = 0;           // GUARDED_BY(mu_)
  int in_flight_ = 0;                    // GUARDED_BY(mu_): Send Message requests being served
  int max_in_flight_ = 0;                // GUARDED_BY(mu_): the most at once since the reset
  // Entries: {"idempotency_key","id","body","received_at_ms"}.
  std::deque<nlohmann::json> sends_;  // GUARDED_BY(mu_)
  // Entries: {"id","message_id","reaction","idempotency_key","received_at_ms"}.
  std::deque<nlohmann::json> reactions_;  // GUARDED_BY(mu_)

  std::mutex log_mu_;
  std::ofstream send_log_;  // GUARDED_BY(log_mu_)
};

}  // namespace sendq::fake
