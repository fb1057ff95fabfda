#include "fake_server.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <set>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

#include "queue/validation.h"
#include "util/json_fields.h"
#include "util/log.h"
#include "util/time_format.h"

namespace sendq::fake {

using nlohmann::json;

namespace {

constexpr char kFromNumber[] = "+14155550001";
constexpr int64_t kMaxWaitMs = 60'000;

// Bodies are recorded as sent, and a body that is not JSON is recorded as a string, which may
// hold invalid UTF-8: replace it rather than throw.
std::string Dump(const json& value) {
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

void SetJson(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(Dump(body), "application/json");
}

json ErrorEnvelope(std::string_view message, std::string_view code, std::string_view type) {
  return {{"error", {{"message", message}, {"code", code}, {"type", type}}}};
}

// The body AgentPhone gives with each error status, in its documented envelope.
json CannedError(int status) {
  switch (status) {
    case 400:
      return ErrorEnvelope("Bad request", "BAD_REQUEST", "invalid_request_error");
    case 401:
      return ErrorEnvelope("Invalid API key", "UNAUTHORIZED", "authentication_error");
    case 402:
      return ErrorEnvelope("Insufficient balance", "INSUFFICIENT_BALANCE", "billing_error");
    case 403:
      return ErrorEnvelope("Forbidden", "FORBIDDEN", "permission_error");
    case 404:
      return ErrorEnvelope("Phone number not found", "PHONE_NUMBER_NOT_FOUND",
                           "invalid_request_error");
    case 409:
      return ErrorEnvelope("Conflict", "CONFLICT", "invalid_request_error");
    case 429:
      return ErrorEnvelope("Rate limit exceeded", "RATE_LIMIT_EXCEEDED", "rate_limit_error");
    case 500:
      return ErrorEnvelope("Internal server error", "INTERNAL_ERROR", "api_error");
    case 502:
      return ErrorEnvelope("Carrier error", "CARRIER_ERROR", "api_error");
    case 503:
      return ErrorEnvelope("Service temporarily unavailable", "SERVICE_UNAVAILABLE", "api_error");
    case 504:
      return ErrorEnvelope("Gateway timeout", "GATEWAY_TIMEOUT", "api_error");
  }
  if (status >= 500) return ErrorEnvelope("Server error", "INTERNAL_ERROR", "api_error");
  return ErrorEnvelope("Request failed", "ERROR", "invalid_request_error");
}

// A validation failure in FastAPI's shape, for --reject-rate: the kind of 422 AgentPhone
// gives for a request that is well-formed but refused.
json RejectionBody() {
  return ValidationErrorBody(
      {FieldError{json::array({"body", "to_number"}), "Value error, number cannot receive messages",
                  "value_error"}});
}

// True when `request` is sent as `sender`: its number_id, from_number or agent_id.
bool SentFrom(const json& request, const std::string& sender) {
  if (!request.is_object()) return false;
  for (const char* name : {"number_id", "from_number", "agent_id"}) {
    auto it = request.find(name);
    if (it != request.end() && it->is_string() && it->get<std::string>() == sender) return true;
  }
  return false;
}

// The bearer token, or nullopt if the header is missing or not a bearer credential.
std::optional<std::string> BearerToken(const httplib::Request& req) {
  if (!req.has_header("Authorization")) return std::nullopt;
  std::string value = req.get_header_value("Authorization");
  constexpr std::string_view kScheme = "bearer ";
  if (value.size() <= kScheme.size()) return std::nullopt;
  for (size_t i = 0; i < kScheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(value[i])) != kScheme[i]) return std::nullopt;
  }
  std::string token = value.substr(kScheme.size());
  if (token.empty()) return std::nullopt;
  return token;
}

json KeyOrNull(const std::string& key) { return key.empty() ? json(nullptr) : json(key); }

// The number a send goes out from, as the fake's lists know it: the request's number_id, the
// id of its from_number ("num_" and its digits), or its agent's number ("num_agent_<id>").
std::string NumberIdOf(const json& request) {
  if (std::string id = StringMember(request, "number_id").value_or(""); !id.empty()) return id;
  if (std::string from = StringMember(request, "from_number").value_or(""); !from.empty()) {
    std::string digits;
    for (char c : from) {
      if (std::isdigit(static_cast<unsigned char>(c))) digits += c;
    }
    return "num_" + digits;
  }
  return "num_agent_" + StringMember(request, "agent_id").value_or("");
}

// Reads an integer query parameter. Absent: `fallback`. Malformed or negative: nullopt.
std::optional<int64_t> QueryInt(const httplib::Request& req, const char* name, int64_t fallback) {
  if (!req.has_param(name)) return fallback;
  std::string text = req.get_param_value(name);
  if (text.empty() || text.size() > 18) return std::nullopt;
  int64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + (c - '0');
  }
  return value;
}

int PortOf(const sockaddr_storage& addr) {
  if (addr.ss_family == AF_INET) {
    return ntohs(reinterpret_cast<const sockaddr_in&>(addr).sin_port);
  }
  if (addr.ss_family == AF_INET6) {
    return ntohs(reinterpret_cast<const sockaddr_in6&>(addr).sin6_port);
  }
  return -1;
}

// Ends the connection a request arrived on without answering it, as a crashing upstream or a
// broken network path would: the client has sent its request and then sees the connection
// close with no response.
//
// cpp-httplib 0.11.4 gives a handler no way to reach its connection, so find the socket in
// the process's descriptor table (/proc/self/fd). The connection's socket is the one whose
// local port is the port the request arrived on and whose peer port is the client's. (The
// listening socket has no peer; a client socket in this same process has the two ports the
// other way round.) shutdown() rather than close(): the server still owns the descriptor and
// closes it when the handler returns; closing it here would let the number be reused under
// the server. Returns false if no such socket was found.
bool ShutdownConnection(int local_port, int remote_port) {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return false;
  bool found = false;
  while (dirent* entry = readdir(dir)) {
    char* end = nullptr;
    long fd = std::strtol(entry->d_name, &end, 10);
    if (end == entry->d_name || *end != '\0' || fd == dirfd(dir)) continue;
    struct stat st;
    if (fstat(static_cast<int>(fd), &st) != 0 || !S_ISSOCK(st.st_mode)) continue;
    sockaddr_storage local{};
    sockaddr_storage peer{};
    socklen_t local_len = sizeof(local);
    socklen_t peer_len = sizeof(peer);
    if (getsockname(static_cast<int>(fd), reinterpret_cast<sockaddr*>(&local), &local_len) != 0 ||
        getpeername(static_cast<int>(fd), reinterpret_cast<sockaddr*>(&peer), &peer_len) != 0) {
      continue;
    }
    if (PortOf(local) == local_port && PortOf(peer) == remote_port) {
      found = shutdown(static_cast<int>(fd), SHUT_RDWR) == 0;
      break;
    }
  }
  closedir(dir);
  return found;
}

}  // namespace

json FaultConfigToJson(const FaultConfig& config) {
  return {
      {"latency_ms", config.latency_ms},
      {"latency_jitter_ms", config.latency_jitter_ms},
      {"fail_first", config.fail_first},
      {"error_rate", config.error_rate},
      {"rate_429", config.rate_429},
      {"drop_rate", config.drop_rate},
      {"reject_rate", config.reject_rate},
      {"accept_then_drop_rate", config.accept_then_drop_rate},
      {"list_status", config.list_status},
      {"token", config.token.empty() ? json(nullptr) : json(config.token)},
      {"force_status", config.force_status},
      {"force_retry_after", config.force_retry_after},
      {"force_body", config.force_body},
      {"force_sender", config.force_sender},
  };
}

Status ApplyFaultConfigJson(const json& patch, FaultConfig* config) {
  if (!patch.is_object()) return Status::InvalidArgument("config must be a JSON object");
  FaultConfig next = *config;
  for (const auto& [name, value] : patch.items()) {
    auto non_negative_int = [&](int* out) {
      if (!value.is_number_integer() || value.get<int64_t>() < 0 ||
          value.get<int64_t>() > 100'000'000) {
        return Status::InvalidArgument(name + " must be a non-negative integer");
      }
      *out = value.get<int>();
      return Status::Ok();
    };
    auto probability = [&](double* out) {
      if (!value.is_number() || value.get<double>() < 0 || value.get<double>() > 1) {
        return Status::InvalidArgument(name + " must be a number in [0, 1]");
      }
      *out = value.get<double>();
      return Status::Ok();
    };
    Status status;
    if (name == "latency_ms") {
      status = non_negative_int(&next.latency_ms);
    } else if (name == "latency_jitter_ms") {
      status = non_negative_int(&next.latency_jitter_ms);
    } else if (name == "fail_first") {
      status = non_negative_int(&next.fail_first);
    } else if (name == "error_rate") {
      status = probability(&next.error_rate);
    } else if (name == "rate_429") {
      status = probability(&next.rate_429);
    } else if (name == "drop_rate") {
      status = probability(&next.drop_rate);
    } else if (name == "reject_rate") {
      status = probability(&next.reject_rate);
    } else if (name == "accept_then_drop_rate") {
      status = probability(&next.accept_then_drop_rate);
    } else if (name == "list_status") {
      status = non_negative_int(&next.list_status);
      if (status.ok() && next.list_status != 0 &&
          (next.list_status < 200 || next.list_status > 599)) {
        status = Status::InvalidArgument("list_status must be 0 or an HTTP status in 200..599");
      }
    } else if (name == "token") {
      if (value.is_null()) {
        next.token.clear();
      } else if (value.is_string()) {
        next.token = value.get<std::string>();
      } else {
        status = Status::InvalidArgument("token must be a string or null");
      }
    } else if (name == "force_status") {
      if (!value.is_number_integer() ||
          (value.get<int64_t>() != 0 &&
           (value.get<int64_t>() < 200 || value.get<int64_t>() > 599))) {
        status = Status::InvalidArgument("force_status must be 0 or an HTTP status in 200..599");
      } else {
        next.force_status = value.get<int>();
      }
    } else if (name == "force_sender") {
      if (value.is_null()) {
        next.force_sender.clear();
      } else if (value.is_string()) {
        next.force_sender = value.get<std::string>();
      } else {
        status = Status::InvalidArgument("force_sender must be a string or null");
      }
    } else if (name == "force_body") {
      if (value.is_null()) {
        next.force_body.clear();
      } else if (value.is_string()) {
        next.force_body = value.get<std::string>();
      } else {
        status = Status::InvalidArgument("force_body must be a string or null");
      }
    } else if (name == "force_retry_after") {
      if (value.is_null()) {
        next.force_retry_after.clear();
      } else if (value.is_string()) {
        next.force_retry_after = value.get<std::string>();
      } else {
        status = Status::InvalidArgument("force_retry_after must be a string or null");
      }
    } else {
      status = Status::InvalidArgument("unknown config field: " + name);
    }
    if (!status.ok()) return status;
  }
  *config = std::move(next);
  return Status::Ok();
}

// httplib::Server::stop() does nothing until listen_after_bind() has marked the server as
// running, so a Stop() that races with the start of Run() would be lost and Run() would block
// forever. Shutting the listening socket down ourselves works at any moment: a blocked
// accept() fails at once, and an accept loop that has not started yet finds no socket and
// returns. The descriptor is closed only after the loop has ended (Run), so the loop can never
// call accept() on a number that was closed and reused.
class FakeAgentPhone::Server : public httplib::Server {
 public:
  // The library listens with a backlog of 5: a burst of connects would see SYNs dropped and
  // retried a second later, a delay no real AgentPhone adds.
  bool RaiseListenBacklog() { return ::listen(svr_sock_, SOMAXCONN) == 0; }

  void StopListening() {
    socket_t sock = svr_sock_.exchange(INVALID_SOCKET);
    if (sock != INVALID_SOCKET) {
      shutdown(sock, SHUT_RDWR);
      stopped_sock_.store(sock);
    }
  }

  // REQUIRES: the accept loop is not running.
  void CloseStoppedSocket() {
    socket_t sock = stopped_sock_.exchange(INVALID_SOCKET);
    if (sock != INVALID_SOCKET) close(sock);
  }

 private:
  std::atomic<socket_t> stopped_sock_{INVALID_SOCKET};
};

FakeAgentPhone::FakeAgentPhone(Options options)
    : options_(std::move(options)),
      clock_(SystemClock::Default()),
      server_(std::make_unique<Server>()),
      config_(options_.faults) {
  if (options_.seed.has_value()) {
    rng_.seed(*options_.seed);
  } else {
    std::random_device device;
    rng_.seed((static_cast<uint64_t>(device()) << 32) ^ device());
  }
}

FakeAgentPhone::~FakeAgentPhone() {
  Stop();
  server_->CloseStoppedSocket();
}

Result<int> FakeAgentPhone::Start() {
  if (!options_.log_path.empty()) {
    send_log_.open(options_.log_path, std::ios::out | std::ios::app);
    if (!send_log_) return Status::IOError("cannot open send log " + options_.log_path);
  }

  Server& server = *server_;
  // Latency is what the fake is for; Nagle's algorithm would add its own.
  server.set_tcp_nodelay(true);
  // The library's default closes a connection after 5 requests; a real API keeps it far
  // longer, and reconnecting every few sends would make the fake the bottleneck it is not.
  server.set_keep_alive_max_count(10'000);
  const size_t threads = static_cast<size_t>(std::max(1, options_.threads));
  server.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };

  server.Post("/v1/messages", [this](const httplib::Request& req, httplib::Response& res) {
    HandleSend(req, res);
  });
  server.Post(
      R"(/v1/messages/([^/]+)/reactions)",
      [this](const httplib::Request& req, httplib::Response& res) { HandleReaction(req, res); });
  server.Get("/__fake/reactions", [this](const httplib::Request&, httplib::Response& res) {
    std::lock_guard<std::mutex> lock(mu_);
    json list = json::array();
    for (const json& r : reactions_) list.push_back(r);
    SetJson(res, 200, {{"count", list.size()}, {"reactions", std::move(list)}});
  });
  server.Get("/v1/numbers", [this](const httplib::Request& req, httplib::Response& res) {
    HandleNumbers(req, res);
  });
  server.Get(R"(/v1/numbers/([^/]+)/messages)",
             [this](const httplib::Request& req, httplib::Response& res) {
               HandleNumberMessages(req, res);
             });
  server.Get(R"(/v1/agents/([^/]+))", [this](const httplib::Request& req, httplib::Response& res) {
    HandleAgent(req, res);
  });
  server.Get("/__fake/sent", [this](const httplib::Request& req, httplib::Response& res) {
    HandleList(req, res, /*accepted_only=*/true);
  });
  server.Get("/__fake/received", [this](const httplib::Request& req, httplib::Response& res) {
    HandleList(req, res, /*accepted_only=*/false);
  });
  server.Post("/__fake/config", [this](const httplib::Request& req, httplib::Response& res) {
    HandleConfig(req, res);
  });
  server.Post("/__fake/reset", [this](const httplib::Request& req, httplib::Response& res) {
    HandleReset(req, res);
  });
  server.set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "unknown exception";
        try {
          if (ep) std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        log::Error("handler_exception", {{"error", what}});
        SetJson(res, 500, CannedError(500));
      });
  // One line per request. Never the Authorization header.
  server.set_logger([](const httplib::Request& req, const httplib::Response& res) {
    log::Info("request", {{"method", req.method},
                          {"path", req.path},
                          {"status", res.status},
                          {"idempotency_key", KeyOrNull(req.get_header_value("Idempotency-Key"))}});
  });

  int port = options_.port;
  if (port == 0) {
    port = server.bind_to_any_port(options_.host);
    if (port < 0) return Status::IOError("cannot bind " + options_.host + ":0");
  } else if (!server.bind_to_port(options_.host, port)) {
    return Status::IOError("cannot bind " + options_.host + ":" + std::to_string(port));
  }
  if (!server.RaiseListenBacklog())
    return Status::IOError("listen: " + std::string(strerror(errno)));
  port_ = port;
  return port;
}

bool FakeAgentPhone::Run() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return true;
  }
  bool ok = server_->listen_after_bind();
  server_->CloseStoppedSocket();
  std::lock_guard<std::mutex> lock(mu_);
  return ok || stopping_;
}

void FakeAgentPhone::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  server_->StopListening();
}

void FakeAgentPhone::HandleSend(const httplib::Request& req, httplib::Response& res) {
  // Counts this request as in flight until it is answered, whichever way.
  struct InFlight {
    explicit InFlight(FakeAgentPhone* fake) : fake_(fake) {
      std::lock_guard<std::mutex> lock(fake_->mu_);
      fake_->max_in_flight_ = std::max(fake_->max_in_flight_, ++fake_->in_flight_);
    }
    ~InFlight() {
      std::lock_guard<std::mutex> lock(fake_->mu_);
      --fake_->in_flight_;
    }
    FakeAgentPhone* fake_;
  } in_flight(this);
  const std::string key = req.get_header_value("Idempotency-Key");
  json parsed = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
  json recorded_body = parsed.is_discarded() ? json(req.body) : parsed;
  const TimeMs arrived_at = clock_->NowMs();
  const uint64_t seq = RecordArrival(key, recorded_body, arrived_at);

  // Authentication is answered at once: it happens before any work upstream.
  std::optional<std::string> bearer = BearerToken(req);
  bool authorized = false;
  int latency_ms = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    authorized = bearer.has_value() && (config_.token.empty() || *bearer == config_.token);
    latency_ms = config_.latency_ms;
    if (authorized && config_.latency_jitter_ms > 0) {
      latency_ms += std::uniform_int_distribution<int>(0, config_.latency_jitter_ms)(rng_);
    }
  }
  if (!authorized) {
    SetJson(res, 401, CannedError(401));
    RecordOutcome(seq, 401, nullptr);
    return;
  }
  WaitLatency(latency_ms);

  // The faults, decided with the config as it is now, after the wait.
  enum class Outcome { kForced, kFailFirst, kDrop, kError, kRateLimit, kReject, kProceed };
  Outcome outcome = Outcome::kProceed;
  FaultConfig config;
  int error_status = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    config = config_;
    if (config.force_status != 0 &&
        (config.force_sender.empty() || SentFrom(parsed, config.force_sender))) {
      outcome = Outcome::kForced;
    } else if (!key.empty() && config.fail_first > 0 &&
               ++attempts_by_key_[key] <= config.fail_first) {
      outcome = Outcome::kFailFirst;
    } else if (config.drop_rate > 0 && Draw() < config.drop_rate) {
      outcome = Outcome::kDrop;
    } else if (config.error_rate > 0 && Draw() < config.error_rate) {
      static constexpr int kStatuses[] = {500, 502, 503, 504};
      error_status = kStatuses[std::uniform_int_distribution<int>(0, 3)(rng_)];
      outcome = Outcome::kError;
    } else if (config.rate_429 > 0 && Draw() < config.rate_429) {
      outcome = Outcome::kRateLimit;
    } else if (config.reject_rate > 0 && Draw() < config.reject_rate) {
      outcome = Outcome::kReject;
    }
  }

  switch (outcome) {
    case Outcome::kForced: {
      int status = config.force_status;
      if (!config.force_body.empty()) {
        res.status = status;
        res.set_content(config.force_body, "text/html");
      } else {
        SetJson(res, status, status == 422 ? RejectionBody() : CannedError(status));
      }
      if (!config.force_retry_after.empty()) {
        res.set_header("Retry-After", config.force_retry_after);
      } else if (status == 429) {
        res.set_header("Retry-After", "1");
      }
      RecordOutcome(seq, status, nullptr);
      return;
    }
    case Outcome::kFailFirst:
      SetJson(res, 503, CannedError(503));
      RecordOutcome(seq, 503, nullptr);
      return;
    case Outcome::kDrop:
      RecordOutcome(seq, 0, nullptr);
      if (!ShutdownConnection(req.local_port, req.remote_port)) {
        log::Warn("drop_failed", {{"reason", "connection socket not found"}});
      }
      // Nothing reaches the client; status 0 shows in the request log.
      res.status = 0;
      return;
    case Outcome::kError:
      SetJson(res, error_status, CannedError(error_status));
      RecordOutcome(seq, error_status, nullptr);
      return;
    case Outcome::kRateLimit:
      SetJson(res, 429, CannedError(429));
      res.set_header("Retry-After", "1");
      RecordOutcome(seq, 429, nullptr);
      return;
    case Outcome::kReject:
      SetJson(res, 422, RejectionBody());
      RecordOutcome(seq, 422, nullptr);
      return;
    case Outcome::kProceed:
      break;
  }

  ValidatedRequest validated = ParseAndValidateSendRequest(req.body);
  if (!validated.ok()) {
    SetJson(res, 422, ValidationErrorBody(validated.errors));
    RecordOutcome(seq, 422, nullptr);
    return;
  }
  const json& request = validated.request;

  auto has = [&](const char* field) {
    return request.contains(field) && !request[field].is_null();
  };
  json media_urls = has("media_urls") ? request["media_urls"] : json::array();
  std::string channel = "sms";
  if (has("send_style") || has("recipients")) {
    channel = "imessage";
  } else if (!media_urls.empty()) {
    channel = "mms";
  }
  json reply_to = has("reply_to_message_id") ? request["reply_to_message_id"] : json(nullptr);

  json answer;
  {
    std::lock_guard<std::mutex> lock(mu_);
    std::string id = "msg_" + RandomHex(20);
    json to_number = has("recipients") ? json("grp_" + RandomHex(16))
                                       : (has("to_number") ? request["to_number"] : json(nullptr));
    answer = {
        {"id", id},
        {"status", "sent"},
        {"channel", channel},
        {"from_number", has("from_number") ? request["from_number"] : json(kFromNumber)},
        {"to_number", to_number},
        {"conversation_id", "conv_" + RandomHex(16)},
        {"media_urls", media_urls},
        {"reply_to_message_id", reply_to},
        {"reply_parent_unresolved", reply_to.is_null() ? json(nullptr) : json(false)},
    };
  }
  // Recorded before the answer is written, so a client that has seen the 200 finds the send
  // in /__fake/sent.
  RecordOutcome(seq, 200, answer["id"]);
  RecordSend({{"idempotency_key", KeyOrNull(key)},
              {"id", answer["id"]},
              {"body", std::move(recorded_body)},
              {"received_at_ms", arrived_at},
              {"number_id", NumberIdOf(request)},
              {"from", answer["from_number"]},
              {"to", answer["to_number"]},
              {"channel", channel}});
  bool drop_answer = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    drop_answer = config.accept_then_drop_rate > 0 && Draw() < config.accept_then_drop_rate;
  }
  if (drop_answer) {
    // Sent, and listed, but the client never learns it: its outcome is unknown.
    if (!ShutdownConnection(req.local_port, req.remote_port)) {
      log::Warn("drop_failed", {{"reason", "connection socket not found"}});
    }
    res.status = 0;
    return;
  }
  SetJson(res, 200, answer);
}

void FakeAgentPhone::HandleList(const httplib::Request& req, httplib::Response& res,
                                bool accepted_only) {
  std::optional<int64_t> min_count = QueryInt(req, "min_count", 0);
  std::optional<int64_t> wait_ms = QueryInt(req, "wait_ms", 0);
  if (!min_count || !wait_ms) {
    SetJson(res, 400, {{"error", "min_count and wait_ms must be non-negative integers"}});
    return;
  }
  const TimeMs deadline = clock_->NowMs() + std::min(*wait_ms, kMaxWaitMs);
  // ?idempotency_key=K: only the entries of that key count and are listed.
  const std::string only_key = req.get_param_value("idempotency_key");
  std::unique_lock<std::mutex> lock(mu_);
  const std::deque<json>& all = accepted_only ? sends_ : received_;
  auto matching = [&] {
    if (only_key.empty()) return static_cast<int64_t>(all.size());
    int64_t n = 0;
    for (const json& entry : all) n += entry["idempotency_key"] == only_key ? 1 : 0;
    return n;
  };
  clock_->WaitUntil(cv_, lock, deadline, [&] { return stopping_ || matching() >= *min_count; });
  std::deque<json> filtered;
  if (!only_key.empty()) {
    for (const json& entry : all) {
      if (entry["idempotency_key"] == only_key) filtered.push_back(entry);
    }
  }
  const std::deque<json>& entries = only_key.empty() ? all : filtered;
  json body;
  if (req.get_param_value("summary") == "1") {
    // For backlogs too large to list: the count, the arrival span and the repeated keys.
    std::unordered_set<std::string> keys;
    int64_t repeated_keys = 0;
    TimeMs first = 0, last = 0;
    for (const json& entry : entries) {
      const TimeMs at = entry["received_at_ms"].get<TimeMs>();
      first = first == 0 ? at : std::min(first, at);
      last = std::max(last, at);
      const json& key = entry["idempotency_key"];
      if (key.is_string() && !keys.insert(key.get<std::string>()).second) ++repeated_keys;
    }
    body = {{"count", entries.size()},
            {"first_received_at_ms", first},
            {"last_received_at_ms", last},
            {"repeated_keys", repeated_keys}};
  } else {
    json list = json::array();
    for (const json& entry : entries) list.push_back(entry);
    body = {{"count", list.size()}, {"sends", std::move(list)}};
  }
  body["max_in_flight"] = max_in_flight_;
  lock.unlock();
  SetJson(res, 200, body);
}

bool FakeAgentPhone::Authorized(const httplib::Request& req, httplib::Response& res) {
  std::optional<std::string> bearer = BearerToken(req);
  std::lock_guard<std::mutex> lock(mu_);
  if (bearer && (config_.token.empty() || *bearer == config_.token)) return true;
  SetJson(res, 401, CannedError(401));
  return false;
}

void FakeAgentPhone::HandleReaction(const httplib::Request& req, httplib::Response& res) {
  if (!Authorized(req, res)) return;
  const std::string message_id = req.matches[1];
  json body = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
  std::string reaction;
  std::vector<FieldError> errors = ValidateReaction(body, &reaction);
  if (!errors.empty()) {
    SetJson(res, 422, ValidationErrorBody(errors));
    return;
  }
  std::lock_guard<std::mutex> lock(mu_);
  const json* sent = nullptr;
  for (const json& send : sends_) {
    if (send["id"] == message_id) sent = &send;
  }
  if (sent == nullptr) {
    SetJson(res, 404, ErrorEnvelope("Message not found", "MESSAGE_NOT_FOUND", "not_found_error"));
    return;
  }
  json answer = {{"id", "rxn_" + RandomHex(16)},
                 {"reaction_type", reaction},
                 {"message_id", message_id},
                 {"channel", (*sent)["channel"]}};
  reactions_.push_back({{"id", answer["id"]},
                        {"message_id", message_id},
                        {"reaction", reaction},
                        {"idempotency_key", KeyOrNull(req.get_header_value("Idempotency-Key"))},
                        {"received_at_ms", clock_->NowMs()}});
  SetJson(res, 200, answer);
}

void FakeAgentPhone::HandleNumbers(const httplib::Request& req, httplib::Response& res) {
  if (!Authorized(req, res)) return;
  std::optional<int64_t> limit = QueryInt(req, "limit", 20);
  std::optional<int64_t> offset = QueryInt(req, "offset", 0);
  if (!limit || !offset || *limit < 1 || *limit > 200) {
    SetJson(res, 422, RejectionBody());
    return;
  }
  // Every from_number that sent, oldest first.
  std::vector<json> numbers;
  {
    std::lock_guard<std::mutex> lock(mu_);
    std::set<std::string> seen;
    for (const json& send : sends_) {
      const std::string id = send.value("number_id", "");
      if (id.rfind("num_agent_", 0) == 0 || !send["from"].is_string() || !seen.insert(id).second) {
        continue;
      }
      numbers.push_back({{"id", id},
                         {"phoneNumber", send["from"]},
                         {"country", "US"},
                         {"status", "active"},
                         {"agentId", nullptr},
                         {"createdAt", FormatRfc3339(send["received_at_ms"].get<TimeMs>())}});
    }
  }
  json data = json::array();
  for (size_t i = static_cast<size_t>(*offset);
       i < numbers.size() && data.size() < static_cast<size_t>(*limit); ++i) {
    data.push_back(numbers[i]);
  }
  const bool has_more = static_cast<size_t>(*offset) + data.size() < numbers.size();
  SetJson(res, 200, {{"data", data}, {"hasMore", has_more}, {"total", numbers.size()}});
}

void FakeAgentPhone::HandleAgent(const httplib::Request& req, httplib::Response& res) {
  if (!Authorized(req, res)) return;
  const std::string agent_id = req.matches[1];
  SetJson(res, 200,
          {{"id", agent_id},
           {"name", "fake agent"},
           {"numbers", json::array({{{"id", "num_agent_" + agent_id},
                                     {"phoneNumber", kFromNumber},
                                     {"status", "active"}}})}});
}

void FakeAgentPhone::HandleNumberMessages(const httplib::Request& req, httplib::Response& res) {
  if (!Authorized(req, res)) return;
  const std::string number_id = req.matches[1];
  std::optional<int64_t> limit = QueryInt(req, "limit", 50);
  std::optional<TimeMs> after;
  std::optional<TimeMs> before;
  bool valid = limit && *limit >= 1 && *limit <= 200;
  if (req.has_param("after"))
    valid &= (after = ParseRfc3339(req.get_param_value("after"))) != std::nullopt;
  if (req.has_param("before"))
    valid &= (before = ParseRfc3339(req.get_param_value("before"))) != std::nullopt;
  if (!valid) {
    SetJson(res, 422, RejectionBody());
    return;
  }
  int list_status = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    list_status = config_.list_status;
  }
  if (list_status != 0) {
    SetJson(res, list_status, CannedError(list_status));
    return;
  }
  // Newest first, strictly between `after` and `before`.
  json data = json::array();
  bool has_more = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = sends_.rbegin(); it != sends_.rend(); ++it) {
      const json& send = *it;
      if (send.value("number_id", "") != number_id) continue;
      const TimeMs at = send["received_at_ms"].get<TimeMs>();
      if ((after && at <= *after) || (before && at >= *before)) continue;
      if (data.size() == static_cast<size_t>(*limit)) {
        has_more = true;
        break;
      }
      const json& body = send["body"];
      data.push_back(
          {{"id", send["id"]},
           {"from_", send["from"]},
           {"to", send["to"]},
           {"body", body.is_object() && body.contains("body") ? body["body"] : json(nullptr)},
           {"direction", "outbound"},
           {"channel", send["channel"]},
           {"receivedAt", FormatRfc3339(at)}});
    }
  }
  SetJson(res, 200, {{"data", data}, {"hasMore", has_more}});
}

void FakeAgentPhone::HandleConfig(const httplib::Request& req, httplib::Response& res) {
  json patch = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
  if (patch.is_discarded()) {
    SetJson(res, 400, {{"error", "body is not JSON"}});
    return;
  }
  json current;
  {
    std::lock_guard<std::mutex> lock(mu_);
    Status status = ApplyFaultConfigJson(patch, &config_);
    if (!status.ok()) {
      SetJson(res, 400, {{"error", status.message()}});
      return;
    }
    current = FaultConfigToJson(config_);
  }
  SetJson(res, 200, current);
}

void FakeAgentPhone::HandleReset(const httplib::Request&, httplib::Response& res) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    received_base_ += received_.size();
    received_.clear();
    sends_.clear();
    reactions_.clear();
    max_in_flight_ = in_flight_;
    attempts_by_key_.clear();
  }
  SetJson(res, 200, {{"reset", true}});
}

uint64_t FakeAgentPhone::RecordArrival(const std::string& idempotency_key, json body,
                                       TimeMs arrived_at) {
  uint64_t seq;
  {
    std::lock_guard<std::mutex> lock(mu_);
    seq = received_base_ + received_.size();
    received_.push_back({{"idempotency_key", KeyOrNull(idempotency_key)},
                         {"id", nullptr},
                         {"status", nullptr},
                         {"body", std::move(body)},
                         {"received_at_ms", arrived_at}});
  }
  cv_.notify_all();
  return seq;
}

void FakeAgentPhone::RecordOutcome(uint64_t seq, int status, const json& id) {
  std::lock_guard<std::mutex> lock(mu_);
  if (seq < received_base_) return;  // forgotten by a reset while in flight
  json& entry = received_[seq - received_base_];
  entry["status"] = status;
  entry["id"] = id;
}

void FakeAgentPhone::RecordSend(json entry) {
  if (send_log_.is_open()) {
    std::lock_guard<std::mutex> lock(log_mu_);
    send_log_ << Dump(entry) << '\n';
    send_log_.flush();
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    sends_.push_back(std::move(entry));
  }
  cv_.notify_all();
}

void FakeAgentPhone::WaitLatency(int latency_ms) {
  if (latency_ms <= 0) return;
  // A condition-variable wait rather than a sleep, so Stop() cuts it short.
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, std::chrono::milliseconds(latency_ms), [&] { return stopping_; });
}

double FakeAgentPhone::Draw() { return std::uniform_real_distribution<double>(0.0, 1.0)(rng_); }

std::string FakeAgentPhone::RandomHex(int n) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(static_cast<size_t>(n), '0');
  std::uniform_int_distribution<int> digit(0, 15);
  for (char& c : out) c = kHex[digit(rng_)];
  return out;
}

}  // namespace sendq::fake
