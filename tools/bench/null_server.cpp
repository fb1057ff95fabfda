// bench-null-server: the HTTP half of sendq's enqueue, without the queue.
//
// It serves POST /v1/messages on the same HTTP front as sendq's API (src/http/server.h: the
// same event loop, limits and request pool, the token checked at the head, the body handed to
// a pool thread). Each request has its body parsed with nlohmann::json and gets a 202 with a
// record of the same fields and about the same size as sendq's. Nothing is validated, stored
// or sent, so its rate is the ceiling that sendq's durable enqueue is compared with.
//
// On start it prints {"event":"listening","port":N} on stderr, as sendq does. SIGINT or
// SIGTERM stop it.

#include <pthread.h>
#include <signal.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <thread>

#include "http/server.h"
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

sendq::http::Response Error(int status, std::string_view code, std::string_view msg) {
  sendq::http::Response res;
  res.status = status;
  res.content_type = kJson;
  res.body = nlohmann::json{{"detail", msg}, {"code", code}}.dump();
  res.close = status == 401;
  return res;
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

// POST /v1/messages, with sendq's steps but none of its work.
class NullHandler final : public sendq::http::Handler {
 public:
  explicit NullHandler(std::string token) : token_(std::move(token)) {}

  sendq::http::HeadVerdict OnHead(sendq::http::Request& req) override {
    sendq::http::HeadVerdict verdict;
    if (req.method != "POST" || req.path != "/v1/messages") {
      verdict.refuse = Error(404, "not_found", "no such endpoint");
      return verdict;
    }
    const std::string* header = req.FindHeader("Authorization");
    constexpr std::string_view kBearer = "Bearer ";
    if (header == nullptr || header->size() <= kBearer.size() ||
        header->compare(0, kBearer.size(), kBearer) != 0 ||
        !ConstantTimeEquals(std::string_view(*header).substr(kBearer.size()), token_)) {
      verdict.refuse = Error(401, "unauthorized", "missing or invalid producer token");
      return verdict;
    }
    req.principal = "null";
    verdict.body_limit = 1 << 20;
    verdict.run_inline = true;  // as sendq's enqueue
    return verdict;
  }

  void OnRequest(std::shared_ptr<sendq::http::Request> req,
                 sendq::http::Responder respond) override {
    nlohmann::json request = nlohmann::json::parse(req->body, nullptr, /*allow_exceptions=*/false);
    if (!request.is_object()) return respond(Error(422, "invalid_json", "body is not an object"));
    const uint64_t n = accepted_.fetch_add(1) + 1;
    nlohmann::ordered_json record = NullRecord(n, request);
    sendq::http::Response res;
    res.status = 202;
    res.content_type = kJson;
    res.SetHeader("Location", "/v1/messages/" + record["id"].get<std::string>());
    res.body = record.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    respond(std::move(res));
  }

  uint64_t accepted() const { return accepted_.load(); }

 private:
  const std::string token_;
  std::atomic<uint64_t> accepted_{0};
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"bench-null-server: sendq's HTTP settings answering 202 without queuing"};
  std::string listen = "127.0.0.1:0";
  std::string token;
  int http_threads = 64;
  app.add_option("--listen", listen, "HOST:PORT; port 0 picks a free port")->capture_default_str();
  app.add_option("--token", token, "The producer token expected after 'Bearer '")->required();
  app.add_option("--http-threads", http_threads, "threads that run requests")
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

  // The defaults of sendq::api::ApiServer.
  sendq::http::Options options;
  options.host = host;
  options.port = port;
  options.worker_threads = http_threads;
  NullHandler handler(token);
  sendq::http::Server http(options, &handler);
  sendq::Result<int> bound = http.Bind();
  if (!bound.ok()) {
    std::fprintf(stderr, "{\"event\":\"start_failed\",\"listen\":\"%s\"}\n", listen.c_str());
    return 1;
  }
  std::thread server([&] { http.Run(); });
  std::fprintf(stderr, "%s\n",
               nlohmann::json({{"event", "listening"}, {"port", *bound}}).dump().c_str());
  std::fflush(stderr);

  sendq::AwaitStopSignal(stop_signals);
  http.Stop();
  server.join();
  std::fprintf(
      stderr, "%s\n",
      nlohmann::json({{"event", "stopped"}, {"accepted", handler.accepted()}}).dump().c_str());
  return 0;
}
