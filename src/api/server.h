// The HTTP API: routes, authentication, JSON in and out, and the one place where errors become
// status codes and bodies.
//
// Thread-safety: Serve() runs on one thread and handles requests on its own pool; BeginDrain()
// and Stop() may be called from any other thread.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "delivery/dispatcher.h"
#include "delivery/metrics.h"
#include "queue/upstream_circuit.h"
#include "store/store.h"
#include "util/change_feed.h"
#include "util/clock.h"
#include "util/ids.h"
#include "util/status.h"

namespace httplib {
class ContentReader;
struct Request;
struct Response;
}  // namespace httplib

namespace sendq::http {
class Server;
}  // namespace sendq::http

namespace sendq::api {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;             // 0: any free port
  int http_threads = 64;       // threads kept ready for connections
  int max_connections = 1024;  // connections served at once (the pool grows to this)
  DurationMs max_age = 24 * 3'600'000LL;
  std::map<std::string, std::string> producer_tokens;  // name -> token
};

// Bodies larger than this are refused with 413. A chunked body is cut off as soon as it
// passes the limit; one that declares a larger Content-Length is read and discarded by the
// HTTP library first (so the connection stays usable), within the read timeout.
inline constexpr size_t kMaxRequestBytes = 1 << 20;
// The same for POST /v1/messages/batch (up to kMaxBatchItems messages).
inline constexpr size_t kMaxBatchRequestBytes = 8 << 20;
// The longest a GET may wait for a message to change (?wait=).
inline constexpr DurationMs kMaxLongPoll = 60'000;

struct ServerDeps {
  store::Store* store;
  delivery::Dispatcher* dispatcher;
  UpstreamCircuit* circuit;
  delivery::Metrics* metrics;
  ChangeFeed* changes;
  Clock* clock;
  IdGenerator* ids;
};

class ApiServer {
 public:
  ApiServer(ServerDeps deps, ServerOptions options);
  ~ApiServer();
  ApiServer(const ApiServer&) = delete;
  ApiServer& operator=(const ApiServer&) = delete;

  // Binds the listening socket; returns the port.
  Result<int> Bind();
  // Serves until Stop(). REQUIRES: Bind() succeeded.
  void Serve();
  // From now on, requests that would queue work get 503; reads keep working.
  void BeginDrain();
  void Stop();

 private:
  void Route();
  // The producer name for the request's bearer token, or empty (the response is then set).
  std::string Authenticate(const httplib::Request& req, httplib::Response& res) const;

  void HandleEnqueue(const httplib::Request& req, httplib::Response& res, const std::string& body);
  void HandleEnqueueBatch(const httplib::Request& req, httplib::Response& res,
                          const std::string& body);
  // A new message with a fresh id, ready for the store. `request` is validated and normalised.
  store::NewMessage NewMessageFor(const std::string& producer,
                                  const std::optional<std::string>& idempotency_key,
                                  const nlohmann::json& request);
  void HandleGet(const httplib::Request& req, httplib::Response& res);
  void HandleAttempts(const httplib::Request& req, httplib::Response& res);
  void HandleList(const httplib::Request& req, httplib::Response& res);
  void HandleCancel(const httplib::Request& req, httplib::Response& res);
  void HandleRetry(const httplib::Request& req, httplib::Response& res);
  void HandleReady(const httplib::Request& req, httplib::Response& res);
  // While stopping, answers 503 to requests that would queue work, and returns true.
  bool RefuseWhileDraining(httplib::Response& res) const;
  // The answer to cancel or retry: the record, or 409 with the current state (`rule` says
  // which state was needed), or the error.
  void SendTransition(httplib::Response& res, const std::string& producer, const std::string& id,
                      const Result<Message>& result, std::string_view rule);
  void HandleMetrics(const httplib::Request& req, httplib::Response& res);

  const ServerDeps deps_;
  const ServerOptions options_;
  std::unique_ptr<http::Server> http_;
  std::atomic<bool> draining_{false};
};

}  // namespace sendq::api
