// bench-null-server: the HTTP half of sendq's enqueue, without the queue.
//
// It serves POST /v1/messages with the same HTTP stack and settings as sendq's API (see
// src/http/http_server.h: the same http::Server with its growing ConnectionPool, TCP_NODELAY,
// payload limit, timeouts, keep-alive count and listen backlog, the body read through a
// ContentReader). Each request has its
// bearer token checked and its body parsed with nlohmann::json, and gets a 202 with a record of
// the same fields and about the same size as sendq's. Nothing is validated, stored or sent, so
// its rate is the ceiling that sendq's durable enqueue is compared with.
//
// On start it prints {"event":"listening","port":N} on stderr, as sendq does. SIGINT or
// SIGTERM stop it.

#include <httplib.h>
#include <pthread.h>
#include <signal.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <thread>

#include "api/server.h"
#include "http/http_server.h"
#include "util/clock.h"
#include "util/process.h"
#include "util/time_format.h"

namespace {

constexpr char kJson[] = "application/json";

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

void SendError(httplib::Response& res, int status, std::string_view code, std::string_view msg) {
  res.status = status;
  res.set_content(nlohmann::json{{"detail", msg}, {"code", code}}.dump(), kJson);
}

// A record with sendq's fields for a queued message, so that the response costs about what
// sendq's does to build and write.
nlohmann::ordered_json NullRecord(uint64_t n, const nlohmann::json& request) {
  auto field = [&](const char* key) {
    auto it = request.find(key);
    return it == request.end() ? nlohmann::json(nullptr) : *it;
  };
  const std::string now = sendq::FormatRfc3339(sendq::SystemClock::Default()->NowMs());
  char id[32];
  std::snprintf(id, sizeof(id), "sq_null%022llu", static_cast<unsigned long long>(n));
  nlohmann::ordered_json r = nlohmann::ordered_json::object();
  r["id"] = id;
  r["status"] = "queued";
  r["channel"] = nullptr;
  r["from_number"] = nullptr;
  r["to_number"] = field("to_number");
  r["recipients"] = field("recipients");
  r["media_urls"] = nlohmann::json::array();
  r["reply_to_message_id"] = field("reply_to_message_id");
  r["reply_parent_unresolved"] = nullptr;
  r["conversation_id"] = nullptr;
  r["provider_message_id"] = nullptr;
  r["agent_id"] = field("agent_id");
  r["number_id"] = field("number_id");
  r["idempotency_key"] = nullptr;
  r["attempts"] = 0;
  r["last_error"] = nullptr;
  r["next_attempt_at"] = now;
  r["expires_at"] = now;
  r["sent_at"] = nullptr;
  r["created_at"] = now;
  r["updated_at"] = now;
  r["version"] = 1;
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"bench-null-server: sendq's HTTP settings answering 202 without queuing"};
  std::string listen = "127.0.0.1:0";
  std::string token;
  int http_threads = 64;
  app.add_option("--listen", listen, "HOST:PORT; port 0 picks a free port")->capture_default_str();
  app.add_option("--token", token, "The producer token expected after 'Bearer '")->required();
  app.add_option("--http-threads", http_threads, "HTTP threads kept ready")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  std::string host;
  int port = 0;
  if (sendq::Status st = sendq::ParseHostPort(listen, &host, &port); !st.ok()) {
    std::fprintf(stderr, "--listen: %s\n", st.message().c_str());
    return 2;
  }

  // The same signal handling as sendq: every thread inherits the blocked stop signals and one
  // sigwait() receives them.
  const sigset_t stop_signals = sendq::BlockStopSignals();

  // The settings of sendq::api::ApiServer's constructor.
  sendq::http::Settings settings;
  settings.ready_threads = http_threads;
  settings.payload_max_length = sendq::api::kMaxBatchRequestBytes;
  sendq::http::Server http(settings);

  std::atomic<uint64_t> accepted{0};
  http.Post("/v1/messages", [&](const httplib::Request& req, httplib::Response& res,
                                const httplib::ContentReader& reader) {
    std::string body;
    const sendq::http::BodyRead read =
        sendq::http::ReadBody(req, reader, sendq::api::kMaxRequestBytes, &body);
    if (read != sendq::http::BodyRead::kComplete) {
      res.set_header("Connection", "close");
      return SendError(res, read == sendq::http::BodyRead::kTooLarge ? 413 : 400, "bad_request",
                       "body refused");
    }
    const std::string header = req.get_header_value("Authorization");
    constexpr std::string_view kBearer = "Bearer ";
    if (header.size() <= kBearer.size() || header.compare(0, kBearer.size(), kBearer) != 0 ||
        !ConstantTimeEquals(std::string_view(header).substr(kBearer.size()), token)) {
      res.set_header("WWW-Authenticate", "Bearer");
      return SendError(res, 401, "unauthorized", "missing or invalid producer token");
    }
    nlohmann::json request = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
    if (!request.is_object()) return SendError(res, 422, "invalid_json", "body is not an object");
    const uint64_t n = accepted.fetch_add(1) + 1;
    nlohmann::ordered_json record = NullRecord(n, request);
    res.set_header("Location", "/v1/messages/" + record["id"].get<std::string>());
    res.status = 202;
    res.set_content(record.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), kJson);
  });

  if (port == 0) {
    port = http.bind_to_any_port(host);
  } else if (!http.bind_to_port(host, port)) {
    port = -1;
  }
  if (port < 0 || !http.RaiseListenBacklog().ok()) {
    std::fprintf(stderr, "{\"event\":\"start_failed\",\"listen\":\"%s\"}\n", listen.c_str());
    return 1;
  }
  std::thread server([&] { http.listen_after_bind(); });
  std::fprintf(stderr, "%s\n",
               nlohmann::json({{"event", "listening"}, {"port", port}}).dump().c_str());
  std::fflush(stderr);

  sendq::AwaitStopSignal(stop_signals);
  // stop() is a no-op until the accept loop runs; wait (boundedly) for it so that a stop
  // right after the start is not lost.
  for (int i = 0; i < 5000 && !http.is_running(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  http.stop();
  server.join();
  std::fprintf(
      stderr, "%s\n",
      nlohmann::json({{"event", "stopped"}, {"accepted", accepted.load()}}).dump().c_str());
  return 0;
}
