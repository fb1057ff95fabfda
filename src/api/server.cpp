#include "api/server.h"

#include <fmt/format.h>
#include <httplib.h>

#include "api/enqueue_request.h"
#include "api/list_query.h"
#include "api/records.h"
#include "http/http_server.h"
#include "queue/validation.h"
#include "util/duration.h"
#include "util/log.h"

namespace sendq::api {
namespace {

constexpr char kJson[] = "application/json";

// Ordered, so records keep their natural field order (id, status, ...), as AgentPhone's do.
using Json = nlohmann::ordered_json;

void SendJson(httplib::Response& res, int status, const Json& body) {
  res.status = status;
  res.set_content(body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), kJson);
}

// Errors other than validation: FastAPI's {"detail": "..."} plus a stable machine code.
void SendError(httplib::Response& res, int status, std::string_view code, std::string_view msg) {
  SendJson(res, status, {{"detail", msg}, {"code", code}});
}

void SendValidationErrors(httplib::Response& res, const std::vector<FieldError>& errors) {
  SendJson(res, 422, Json(ValidationErrorBody(errors)));
}

// The one mapping from a core Status to an HTTP answer.
void SendStatus(httplib::Response& res, const Status& st) {
  switch (st.code()) {
    case Status::Code::kNotFound:
      return SendError(res, 404, "not_found", st.message());
    case Status::Code::kConflict:
      return SendError(res, 409, "conflict", st.message());
    case Status::Code::kNoSpace:
      return SendError(res, 507, "insufficient_storage",
                       "the queue's disk is full; nothing was stored, retry later");
    case Status::Code::kUnavailable:
      return SendError(res, 503, "unavailable", st.message());
    case Status::Code::kInvalidArgument:
      return SendError(res, 400, "bad_request", st.message());
    default:
      log::Error("internal_error", {{"error", st.ToString()}});
      return SendError(res, 500, "internal", "internal error; see the sendq log");
  }
}

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  // The length is not secret enough to hide; the contents are.
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

// Reads a POST body of at most `max_bytes` (see http::ReadBody). On failure the error answer
// is set and the result is nullopt.
std::optional<std::string> ReadBody(const httplib::Request& req, httplib::Response& res,
                                    const httplib::ContentReader& reader, size_t max_bytes) {
  std::string body;
  switch (http::ReadBody(req, reader, max_bytes, &body)) {
    case http::BodyRead::kComplete:
      return body;
    case http::BodyRead::kTooLarge:
      res.set_header("Connection", "close");
      SendError(res, 413, "payload_too_large",
                fmt::format("request body over {} bytes", max_bytes));
      return std::nullopt;
    case http::BodyRead::kIncomplete:
      break;
  }
  res.set_header("Connection", "close");
  SendError(res, 400, "bad_request", "the request body could not be read in full");
  return std::nullopt;
}

std::optional<std::string> StringField(const nlohmann::json& request, const char* key) {
  auto it = request.find(key);
  if (it == request.end() || !it->is_string()) return std::nullopt;
  return it->get<std::string>();
}

}  // namespace

ApiServer::ApiServer(ServerDeps deps, ServerOptions options)
    : deps_(deps), options_(std::move(options)) {
  http::Settings settings;
  settings.ready_threads = options_.http_threads;
  settings.max_connections = options_.max_connections;
  // The largest body any route takes; each route applies its own, smaller or equal, limit.
  settings.payload_max_length = kMaxBatchRequestBytes;
  http_ = std::make_unique<http::Server>(settings);
  Route();
}

ApiServer::~ApiServer() = default;

Result<int> ApiServer::Bind() {
  int port = options_.port;
  if (port == 0) {
    port = http_->bind_to_any_port(options_.host);
    if (port < 0) return Status::IOError(fmt::format("cannot listen on {}", options_.host));
  } else if (!http_->bind_to_port(options_.host, port)) {
    return Status::IOError(fmt::format("cannot listen on {}:{}", options_.host, port));
  }
  if (Status st = http_->RaiseListenBacklog(); !st.ok()) return st;
  return port;
}

void ApiServer::Serve() { http_->listen_after_bind(); }

void ApiServer::BeginDrain() { draining_ = true; }

void ApiServer::Stop() { http_->stop(); }

std::string ApiServer::Authenticate(const httplib::Request& req, httplib::Response& res) const {
  const std::string header = req.get_header_value("Authorization");
  constexpr std::string_view kBearer = "Bearer ";
  if (header.size() > kBearer.size() && header.compare(0, kBearer.size(), kBearer) == 0) {
    std::string_view token = std::string_view(header).substr(kBearer.size());
    std::string producer;
    // Compare against every token, so the time taken does not say which one nearly matched.
    for (const auto& [name, expected] : options_.producer_tokens) {
      if (ConstantTimeEquals(token, expected)) producer = name;
    }
    if (!producer.empty()) return producer;
  }
  res.set_header("WWW-Authenticate", "Bearer");
  SendError(res, 401, "unauthorized",
            "missing or invalid producer token: send 'Authorization: Bearer <token>'");
  return std::string();
}

void ApiServer::Route() {
  http_->set_exception_handler(
      [](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "unknown";
        try {
          if (ep) std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        log::Error("request_failed", {{"path", req.path}, {"error", what}});
        SendError(res, 500, "internal", "internal error; see the sendq log");
      });
  // Answers that the library makes itself (413, 400, 404 for unknown paths) get a JSON body.
  http_->set_error_handler([](const httplib::Request&, httplib::Response& res) {
    if (!res.body.empty()) return;
    switch (res.status) {
      case 413:
        return SendError(res, 413, "payload_too_large",
                         fmt::format("request body over {} bytes", kMaxBatchRequestBytes));
      case 404:
        return SendError(res, 404, "not_found", "no such endpoint");
      default:
        return SendError(res, res.status, "http_error", fmt::format("HTTP {}", res.status));
    }
  });
  http_->set_logger([](const httplib::Request& req, const httplib::Response& res) {
    if (log::Enabled(log::Level::kDebug)) {
      log::Debug("http_request",
                 {{"method", req.method}, {"path", req.path}, {"status", res.status}});
    }
  });

  http_->Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    SendJson(res, 200, {{"status", "ok"}});
  });
  http_->Get("/readyz", [this](const auto& req, auto& res) { HandleReady(req, res); });
  http_->Get("/metrics", [this](const auto& req, auto& res) { HandleMetrics(req, res); });
  http_->Post("/v1/messages", [this](const httplib::Request& req, httplib::Response& res,
                                     const httplib::ContentReader& reader) {
    if (std::optional<std::string> body = ReadBody(req, res, reader, kMaxRequestBytes)) {
      HandleEnqueue(req, res, *body);
    }
  });
  http_->Post("/v1/messages/batch", [this](const httplib::Request& req, httplib::Response& res,
                                           const httplib::ContentReader& reader) {
    if (std::optional<std::string> body = ReadBody(req, res, reader, kMaxBatchRequestBytes)) {
      HandleEnqueueBatch(req, res, *body);
    }
  });
  http_->Get("/v1/messages", [this](const auto& req, auto& res) { HandleList(req, res); });
  http_->Get(R"(/v1/messages/([^/]+))",
             [this](const auto& req, auto& res) { HandleGet(req, res); });
  http_->Get(R"(/v1/messages/([^/]+)/attempts)",
             [this](const auto& req, auto& res) { HandleAttempts(req, res); });
  http_->Post(R"(/v1/messages/([^/]+)/cancel)",
              [this](const auto& req, auto& res) { HandleCancel(req, res); });
  http_->Post(R"(/v1/messages/([^/]+)/retry)",
              [this](const auto& req, auto& res) { HandleRetry(req, res); });
}

void ApiServer::HandleEnqueue(const httplib::Request& req, httplib::Response& res,
                              const std::string& body) {
  const std::string producer = Authenticate(req, res);
  if (producer.empty() || RefuseWhileDraining(res)) return;
  std::optional<std::string> idempotency_key;
  if (req.has_header("Idempotency-Key")) {
    std::string key = req.get_header_value("Idempotency-Key");
    if (std::optional<std::string> problem = IdempotencyKeyProblem(key)) {
      return SendValidationErrors(
          res, {FieldError{{"header", "Idempotency-Key"}, *problem, "value_error"}});
    }
    idempotency_key = std::move(key);
  }
  ValidatedRequest validated = ParseAndValidateSendRequest(body);
  if (!validated.ok()) return SendValidationErrors(res, validated.errors);

  // With a worker idle, the claim shares the enqueue's commit and the worker starts at once.
  const store::NewMessage nm = NewMessageFor(producer, idempotency_key, validated.request);
  const std::optional<store::ClaimOptions> claim = deps_.dispatcher->ReserveIdleWorker();
  Result<store::EnqueueResult> result =
      claim ? deps_.store->EnqueueAndClaim(nm, *claim) : deps_.store->Enqueue(nm);
  const bool handed_off = claim && result.ok() && result->claimed.has_value();
  if (claim) deps_.dispatcher->HandOff(handed_off ? std::move(result->claimed) : std::nullopt);
  if (!result.ok()) {
    if (result.status().IsConflict()) {
      return SendError(res, 409, "idempotency_key_reused", result.status().message());
    }
    return SendStatus(res, result.status());
  }
  const Message& m = result->message;
  res.set_header("Location", "/v1/messages/" + m.id);
  if (result->replayed) {
    res.set_header("Idempotent-Replayed", "true");
    log::Info("message_replayed", {{"message_id", m.id}, {"producer", producer}});
    return SendJson(res, 200, MessageRecord(m));
  }
  deps_.metrics->CountEnqueued();
  if (!handed_off) deps_.dispatcher->WakeUp();
  log::Info("message_enqueued", {{"message_id", m.id}, {"producer", producer}});
  if (log::Enabled(log::Level::kDebug)) {
    log::Debug("message_request", {{"message_id", m.id}, {"request", validated.request}});
  }
  SendJson(res, 202, MessageRecord(m, validated.request));
}

store::NewMessage ApiServer::NewMessageFor(const std::string& producer,
                                           const std::optional<std::string>& idempotency_key,
                                           const nlohmann::json& request) {
  store::NewMessage nm;
  nm.id = deps_.ids->Next();
  nm.producer = producer;
  nm.idempotency_key = idempotency_key;
  nm.request_json = request.dump();
  nm.agent_id = StringField(request, "agent_id");
  nm.to_number = StringField(request, "to_number");
  nm.expires_at = MessageIdTime(nm.id) + options_.max_age;
  return nm;
}

void ApiServer::HandleEnqueueBatch(const httplib::Request& req, httplib::Response& res,
                                   const std::string& body) {
  const std::string producer = Authenticate(req, res);
  if (producer.empty() || RefuseWhileDraining(res)) return;
  if (req.has_header("Idempotency-Key")) {
    return SendValidationErrors(
        res, {FieldError{{"header", "Idempotency-Key"},
                         "a batch takes an idempotency_key field on each message instead",
                         "value_error"}});
  }
  BatchRequest batch = ParseBatchRequest(body);
  if (!batch.errors.empty()) return SendValidationErrors(res, batch.errors);

  // The valid items go to the store together; `stored_index[i]` is item i's place there.
  std::vector<store::NewMessage> to_store;
  std::vector<size_t> stored_index(batch.items.size(), SIZE_MAX);
  for (size_t i = 0; i < batch.items.size(); ++i) {
    const BatchItem& item = batch.items[i];
    if (!item.ok()) continue;
    stored_index[i] = to_store.size();
    to_store.push_back(NewMessageFor(producer, item.idempotency_key, item.validated.request));
  }
  std::vector<Result<store::EnqueueResult>> stored;
  if (!to_store.empty()) {
    Result<std::vector<Result<store::EnqueueResult>>> outcome = deps_.store->EnqueueBatch(to_store);
    if (!outcome.ok()) return SendStatus(res, outcome.status());
    stored = std::move(*outcome);
  }

  Json results = Json::array();
  std::vector<std::string> enqueued_ids;
  int accepted = 0, replayed = 0, rejected = 0;
  for (size_t i = 0; i < batch.items.size(); ++i) {
    const BatchItem& item = batch.items[i];
    Json entry = {{"index", i}};
    if (!item.ok()) {
      ++rejected;
      entry["status"] = 422;
      entry["detail"] = ValidationErrorBody(item.validated.errors)["detail"];
    } else if (const Result<store::EnqueueResult>& r = stored[stored_index[i]]; !r.ok()) {
      ++rejected;
      entry["status"] = 409;
      entry["code"] = "idempotency_key_reused";
      entry["detail"] = r.status().message();
    } else if (r->replayed) {
      ++replayed;
      entry["status"] = 200;
      entry["replayed"] = true;
      entry["message"] = MessageRecord(r->message);
    } else {
      ++accepted;
      entry["status"] = 202;
      entry["message"] = MessageRecord(r->message, item.validated.request);
      enqueued_ids.push_back(r->message.id);
    }
    results.push_back(std::move(entry));
  }
  if (accepted > 0) {
    deps_.metrics->CountEnqueued(accepted);
    deps_.dispatcher->WakeUp();
    // One line for the batch, with every new id in item order: as traceable as a line per
    // message, at a fraction of the cost.
    log::Info(
        "batch_enqueued",
        {{"producer", producer}, {"accepted", accepted}, {"message_ids", std::move(enqueued_ids)}});
  }
  SendJson(res, 200,
           {{"accepted", accepted},
            {"replayed", replayed},
            {"rejected", rejected},
            {"results", std::move(results)}});
}

void ApiServer::HandleGet(const httplib::Request& req, httplib::Response& res) {
  const std::string producer = Authenticate(req, res);
  if (producer.empty()) return;
  const std::string id = req.matches[1];
  // Long poll: ?wait=<duration> blocks until the message is final, or (with after_version)
  // until it changes, or until the wait runs out. The answer is the record either way.
  DurationMs wait = 0;
  std::optional<int64_t> after_version;
  std::vector<FieldError> errors;
  if (req.has_param("wait")) {
    Result<DurationMs> parsed = ParseDuration(req.get_param_value("wait"));
    if (!parsed.ok() || *parsed > kMaxLongPoll) {
      errors.push_back(
          {{"query", "wait"},
           fmt::format("must be a duration such as 10s, at most {}", FormatDuration(kMaxLongPoll)),
           "value_error"});
    } else {
      wait = *parsed;
    }
  }
  if (req.has_param("after_version")) {
    const std::string text = req.get_param_value("after_version");
    try {
      size_t used = 0;
      after_version = std::stoll(text, &used);
      if (used != text.size()) throw std::invalid_argument(text);
    } catch (const std::exception&) {
      errors.push_back({{"query", "after_version"}, "must be an integer", "int_parsing"});
    }
  }
  if (!errors.empty()) return SendValidationErrors(res, errors);

  const TimeMs deadline = deps_.clock->NowMs() + wait;
  for (;;) {
    const uint64_t generation = deps_.changes->Generation();
    Result<Message> m = deps_.store->Get(producer, id);
    if (!m.ok()) return SendStatus(res, m.status());
    const bool changed = after_version ? m->version > *after_version : IsTerminal(m->status);
    if (changed || wait == 0 || deps_.clock->NowMs() >= deadline || deps_.changes->closed()) {
      return SendJson(res, 200, MessageRecord(*m));
    }
    deps_.changes->WaitForChange(generation, deadline);
  }
}

void ApiServer::HandleAttempts(const httplib::Request& req, httplib::Response& res) {
  const std::string producer = Authenticate(req, res);
  if (producer.empty()) return;
  Result<std::vector<Attempt>> attempts = deps_.store->ListAttempts(producer, req.matches[1]);
  if (!attempts.ok()) return SendStatus(res, attempts.status());
  Json data = Json::array();
  for (const Attempt& a : *attempts) data.push_back(AttemptRecord(a));
  SendJson(res, 200, {{"message_id", std::string(req.matches[1])}, {"data", std::move(data)}});
}

void ApiServer::HandleList(const httplib::Request& req, httplib::Response& res) {
  const std::string producer = Authenticate(req, res);
  if (producer.empty()) return;
  std::multimap<std::string, std::string> params(req.params.begin(), req.params.end());
  ParsedListQuery query = ParseListQuery(params);
  if (!query.ok()) return SendValidationErrors(res, query.errors);
  Result<store::ListPage> page = deps_.store->List(producer, query.filter);
  if (!page.ok()) return SendStatus(res, page.status());
  Json data = Json::array();
  for (const Message& m : page->messages) data.push_back(MessageRecord(m));
  Json next_cursor = nullptr;
  if (page->has_more && !page->messages.empty()) {
    next_cursor = EncodeCursor(page->messages.back().id);
  }
  SendJson(res, 200,
           {{"data", std::move(data)}, {"has_more", page->has_more}, {"next_cursor", next_cursor}});
}

void ApiServer::HandleCancel(const httplib::Request& req, httplib::Response& res) {
  const std::string producer = Authenticate(req, res);
  if (producer.empty()) return;
  const std::string id = req.matches[1];
  Result<Message> m = deps_.store->Cancel(producer, id, deps_.clock->NowMs());
  if (m.ok()) log::Info("message_canceled", {{"message_id", id}, {"producer", producer}});
  SendTransition(res, producer, id, m, "only a queued message can be canceled");
}

void ApiServer::HandleRetry(const httplib::Request& req, httplib::Response& res) {
  const std::string producer = Authenticate(req, res);
  if (producer.empty() || RefuseWhileDraining(res)) return;
  const std::string id = req.matches[1];
  const TimeMs now = deps_.clock->NowMs();
  Result<Message> m = deps_.store->Retry(producer, id, now, now + options_.max_age);
  if (m.ok()) {
    deps_.dispatcher->WakeUp();
    log::Info("message_retried", {{"message_id", id}, {"producer", producer}});
  }
  SendTransition(res, producer, id, m, "only a failed message can be retried");
}

bool ApiServer::RefuseWhileDraining(httplib::Response& res) const {
  if (!draining_) return false;
  res.set_header("Retry-After", "5");
  SendError(res, 503, "shutting_down", "sendq is shutting down; retry shortly");
  return true;
}

void ApiServer::SendTransition(httplib::Response& res, const std::string& producer,
                               const std::string& id, const Result<Message>& result,
                               std::string_view rule) {
  if (result.ok()) return SendJson(res, 200, MessageRecord(*result));
  if (!result.status().IsConflict()) return SendStatus(res, result.status());
  Result<Message> current = deps_.store->Get(producer, id);
  if (!current.ok()) return SendStatus(res, current.status());
  SendJson(res, 409,
           {{"detail", fmt::format("{}; this one is {}", rule, StatusName(current->status))},
            {"code", "invalid_state"},
            {"status", StatusName(current->status)},
            {"message", MessageRecord(*current)}});
}

void ApiServer::HandleReady(const httplib::Request&, httplib::Response& res) {
  Json reasons = Json::array();
  if (draining_) reasons.push_back("shutting down");
  if (Status st = deps_.store->CheckWritable(); !st.ok()) {
    reasons.push_back("database not writable: " + st.ToString());
  }
  if (deps_.circuit->paused()) {
    reasons.push_back("upstream paused: " + deps_.circuit->pause_reason());
  }
  if (reasons.empty()) return SendJson(res, 200, {{"status", "ready"}});
  SendJson(res, 503, {{"status", "not_ready"}, {"reasons", std::move(reasons)}});
}

void ApiServer::HandleMetrics(const httplib::Request& req, httplib::Response& res) {
  if (Authenticate(req, res).empty()) return;
  Result<store::Stats> stats = deps_.store->GetStats();
  if (!stats.ok()) return SendStatus(res, stats.status());
  res.set_content(deps_.metrics->Render(*stats, deps_.circuit->paused(), deps_.clock->NowMs()),
                  "text/plain; version=0.0.4");
}

}  // namespace sendq::api
