#include "api/server.h"

#include <fmt/format.h>

#include <cstdlib>
#include <utility>

#include "api/enqueue_request.h"
#include "api/list_query.h"
#include "api/openapi.h"
#include "api/records.h"
#include "api/responses.h"
#include "queue/phone.h"
#include "queue/validation.h"
#include "util/ascii.h"
#include "util/callback_url.h"
#include "util/duration.h"
#include "util/hmac.h"
#include "util/log.h"
#include "util/percent.h"
#include "util/time_format.h"

namespace sendq::api {
namespace {

using http::Request;
using http::Response;

constexpr char kJson[] = "application/json";

std::string_view TrimSpaces(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// application/json, or a structured +json type, with any parameters (charset).
bool IsJsonMediaType(std::string_view content_type) {
  const std::string type = AsciiLower(TrimSpaces(content_type.substr(0, content_type.find(';'))));
  return type == "application/json" ||
         (type.starts_with("application/") && type.ends_with("+json"));
}

enum Route {
  kHealth,
  kReady,
  kMetrics,
  kOpenApi,
  kEnqueue,
  kBatch,
  kList,
  kExport,
  kChanges,
  kGet,
  kAttempts,
  kCancel,
  kRetry,
  kReaction,
  kRelease,
  kResolveHeld,
  kSuppression,
  kSuppressionList,
  kAgentPhoneWebhook,
  kWebhooks,
  kWebhook,
  kWebhookDeliveries,
  kCallbackSecret,
  kStats,
  kAdminBulk,
  kAdminPause,
  kAdminPauses,
  kAdminAudit,
  kAdminBackup,
};

// Who may use a route.
enum class Access {
  kAnyone,    // no token
  kProducer,  // a producer token: it acts as that producer
  kReader,    // a producer token (its own messages) or an admin token (any producer's)
  kAdmin,     // an admin token
};

struct RouteSpec {
  Route route;
  const char* method;
  // Path segments; "*" matches one segment (a message id).
  std::vector<std::string_view> segments;
  Access access;
  bool json_body;
};

// In the order they are matched: a literal segment before a "*" in the same place.
const std::vector<RouteSpec>& Routes() {
  using enum Access;
  static const std::vector<RouteSpec> routes = {
      {kHealth, "GET", {"healthz"}, kAnyone, false},
      {kReady, "GET", {"readyz"}, kAnyone, false},
      {kMetrics, "GET", {"metrics"}, kReader, false},
      {kOpenApi, "GET", {"openapi.json"}, kAnyone, false},
      {kEnqueue, "POST", {"v1", "messages"}, kProducer, true},
      {kBatch, "POST", {"v1", "messages", "batch"}, kProducer, true},
      {kList, "GET", {"v1", "messages"}, kReader, false},
      {kExport, "GET", {"v1", "messages", "export"}, kReader, false},
      {kChanges, "GET", {"v1", "messages", "changes"}, kReader, false},
      {kGet, "GET", {"v1", "messages", "*"}, kReader, false},
      {kAttempts, "GET", {"v1", "messages", "*", "attempts"}, kReader, false},
      {kCancel, "POST", {"v1", "messages", "*", "cancel"}, kReader, false},
      {kRetry, "POST", {"v1", "messages", "*", "retry"}, kReader, false},
      {kReaction, "POST", {"v1", "messages", "*", "reactions"}, kProducer, true},
      {kRelease, "POST", {"v1", "messages", "*", "release"}, kProducer, false},
      // Held messages by filter: POST /v1/messages/release and /v1/messages/cancel.
      {kResolveHeld, "POST", {"v1", "messages", "release"}, kProducer, false},
      {kResolveHeld, "POST", {"v1", "messages", "cancel"}, kProducer, false},
      {kSuppression, "PUT", {"v1", "suppressions", "*"}, kProducer, false},
      {kSuppression, "GET", {"v1", "suppressions", "*"}, kProducer, false},
      {kSuppression, "DELETE", {"v1", "suppressions", "*"}, kProducer, false},
      {kSuppressionList, "GET", {"v1", "suppressions"}, kProducer, false},
      // Authenticated by AgentPhone's signature, not a token.
      {kAgentPhoneWebhook, "POST", {"v1", "agentphone", "webhook"}, kAnyone, false},
      {kWebhooks, "POST", {"v1", "webhooks"}, kProducer, true},
      {kWebhooks, "GET", {"v1", "webhooks"}, kProducer, false},
      {kWebhook, "GET", {"v1", "webhooks", "*"}, kProducer, false},
      {kWebhook, "DELETE", {"v1", "webhooks", "*"}, kProducer, false},
      {kWebhookDeliveries, "GET", {"v1", "webhooks", "*", "deliveries"}, kProducer, false},
      {kCallbackSecret, "GET", {"v1", "callback-secret"}, kProducer, false},
      {kStats, "GET", {"v1", "stats"}, kReader, false},
      {kAdminBulk, "POST", {"v1", "admin", "messages", "retry"}, kAdmin, false},
      {kAdminBulk, "POST", {"v1", "admin", "messages", "cancel"}, kAdmin, false},
      {kAdminPause, "POST", {"v1", "admin", "pause"}, kAdmin, false},
      {kAdminPause, "POST", {"v1", "admin", "resume"}, kAdmin, false},
      {kAdminPauses, "GET", {"v1", "admin", "pauses"}, kAdmin, false},
      {kAdminAudit, "GET", {"v1", "admin", "audit"}, kAdmin, false},
      {kAdminBackup, "GET", {"v1", "admin", "backup"}, kAdmin, false},
  };
  return routes;
}

}  // namespace

std::vector<std::string> RegisteredRoutes() {
  std::vector<std::string> out;
  for (const RouteSpec& spec : Routes()) {
    std::string path;
    for (std::string_view segment : spec.segments) {
      path += "/";
      path += segment == "*" ? std::string_view("{id}") : segment;
    }
    out.push_back(fmt::format("{} {}", spec.method, path));
  }
  return out;
}

namespace {

std::vector<std::string_view> SplitPath(std::string_view path) {
  std::vector<std::string_view> out;
  if (path.empty() || path.front() != '/') return out;
  path.remove_prefix(1);
  while (true) {
    size_t slash = path.find('/');
    out.push_back(path.substr(0, slash));
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
  return out;
}

bool SegmentsMatch(const RouteSpec& spec, const std::vector<std::string_view>& segments,
                   std::vector<std::string>* params) {
  if (spec.segments.size() != segments.size()) return false;
  params->clear();
  for (size_t i = 0; i < segments.size(); ++i) {
    if (spec.segments[i] == "*") {
      if (segments[i].empty()) return false;
      params->emplace_back(segments[i]);
    } else if (spec.segments[i] != segments[i]) {
      return false;
    }
  }
  return true;
}

Response Unauthorized() {
  Response res =
      ErrorResponse(401, "unauthorized",
                    "missing or invalid producer token: send 'Authorization: Bearer <token>'");
  res.SetHeader("WWW-Authenticate", "Bearer");
  res.close = true;
  return res;
}

// A send to a number on the producer's suppression list.
FieldError SuppressedError(Json loc) {
  return FieldError{std::move(loc),
                    "Value error, the recipient opted out of this producer's messages "
                    "(suppressed): DELETE /v1/suppressions/{number} to send to it again",
                    "value_error"};
}

// A reply to a sq_ id that is not one of the producer's messages.
FieldError ParentMissingError(Json loc) {
  return FieldError{std::move(loc),
                    "Value error, names no message of this producer: a sq_ id must be one of "
                    "yours",
                    "value_error"};
}

Response SuppressedAnswer(Json loc) { return ValidationErrors({SuppressedError(std::move(loc))}); }

Json SuppressionRecord(const store::Suppression& s) {
  return {{"number", s.number},
          {"created_at", FormatRfc3339(s.created_at)},
          {"source", s.source},
          {"reason", s.reason ? Json(*s.reason) : Json(nullptr)}};
}

// The answer to POST /v1/messages once the store has answered.
Response EnqueueAnswer(const Result<store::EnqueueResult>& result, const std::string& producer,
                       const nlohmann::json& request, const Pauses* pauses) {
  if (!result.ok()) {
    if (result.status().IsConflict()) {
      return ErrorResponse(409, "idempotency_key_reused", result.status().message());
    }
    return StatusResponse(result.status());
  }
  if (result->suppressed) return SuppressedAnswer({"body", "to_number"});
  if (result->parent_missing) {
    return ValidationErrors({ParentMissingError({"body", "reply_to_message_id"})});
  }
  const Message& m = result->message;
  if (result->replayed) {
    log::Info("message_replayed", {{"message_id", m.id}, {"producer", producer}});
    Response res = JsonResponse(200, MessageRecord(m, pauses));
    res.SetHeader("Location", "/v1/messages/" + m.id);
    res.SetHeader("Idempotent-Replayed", "true");
    return res;
  }
  log::Info("message_enqueued", {{"message_id", m.id}, {"producer", producer}});
  if (log::Enabled(log::Level::kDebug)) {
    log::Debug("message_request", {{"message_id", m.id}, {"request", request}});
  }
  Response res = JsonResponse(202, MessageRecord(m, request, pauses));
  res.SetHeader("Location", "/v1/messages/" + m.id);
  return res;
}

}  // namespace

// A GET ?wait= that waits for its message.
struct ApiServer::LongPoll {
  http::Responder respond;
  std::string producer;
  std::string id;
  std::optional<int64_t> after_version;
  TimeMs deadline = 0;
  bool counted = false;  // Begin() counted it against the producer's limit
  std::atomic<bool> answered{false};
  std::atomic<uint64_t> ticket{0};  // the armed wake-up, if any
};

ApiServer::ApiServer(ServerDeps deps, ServerOptions options)
    : deps_(deps), options_(std::move(options)) {
  http::Options http_options;
  http_options.host = options_.host;
  http_options.port = options_.port;
  http_options.io_threads = options_.io_threads;
  http_options.worker_threads = options_.http_threads;
  http_options.max_connections = options_.max_connections;
  http_options.max_connections_per_client = options_.max_connections_per_client;
  http_options.limits = options_.limits;
  http_ = std::make_unique<http::Server>(http_options, this);
}

ApiServer::~ApiServer() = default;

Result<int> ApiServer::Bind() { return http_->Bind(); }

void ApiServer::Serve() { http_->Run(); }

void ApiServer::BeginDrain() {
  draining_ = true;
  http_->BeginDrain();
  // Enqueues that got past the check are committed and handed to the dispatcher before it
  // is told to stop, so that none holds a worker reservation it could no longer hand off.
  MutexLock lock(&enqueues_mu_);
  lock.Wait(enqueues_done_, [&]() REQUIRES(enqueues_mu_) { return enqueues_in_flight_ == 0; });
}

ApiServer::EnqueueCount::EnqueueCount(ApiServer* server) : server_(server) {
  MutexLock guard(&server_->enqueues_mu_);
  ++server_->enqueues_in_flight_;
}

ApiServer::EnqueueCount::EnqueueCount(EnqueueCount&& other) noexcept
    : server_(std::exchange(other.server_, nullptr)) {}

ApiServer::EnqueueCount::~EnqueueCount() { Release(); }

void ApiServer::EnqueueCount::Release() {
  if (server_ == nullptr) return;
  ApiServer* server = std::exchange(server_, nullptr);
  MutexLock guard(&server->enqueues_mu_);
  if (--server->enqueues_in_flight_ == 0) server->enqueues_done_.notify_all();
}

void ApiServer::Stop() {
  deps_.long_polls->Close();  // every waiting GET answers with what it has
  http_->Stop();
}

std::string ApiServer::Authenticate(const Request& req) const {
  const std::string* header = req.FindHeader("Authorization");
  if (header == nullptr) return std::string();
  std::string_view value = TrimSpaces(*header);
  constexpr std::string_view kBearer = "bearer";
  if (value.size() <= kBearer.size() || AsciiLower(value.substr(0, kBearer.size())) != kBearer ||
      (value[kBearer.size()] != ' ' && value[kBearer.size()] != '\t')) {
    return std::string();
  }
  std::string_view token = TrimSpaces(value.substr(kBearer.size()));
  std::string principal;
  // Compare against every token, so the time taken does not say which one nearly matched.
  for (const auto& [name, expected] : options_.producer_tokens) {
    if (ConstantTimeEquals(token, expected)) principal = name;
  }
  for (const auto& [name, expected] : options_.admin_tokens) {
    if (ConstantTimeEquals(token, expected)) principal = std::string(kAdminPrincipalPrefix) + name;
  }
  return principal;
}

http::HeadVerdict ApiServer::OnHead(Request& req) {
  http::HeadVerdict verdict;
  const std::vector<std::string_view> segments = SplitPath(req.path);
  const RouteSpec* found = nullptr;
  std::vector<std::string> allowed;
  for (const RouteSpec& spec : Routes()) {
    std::vector<std::string> params;
    if (!SegmentsMatch(spec, segments, &params)) continue;
    if (req.method != spec.method) {
      allowed.emplace_back(spec.method);
      continue;
    }
    found = &spec;
    req.path_params = std::move(params);
    break;
  }
  if (found == nullptr) {
    if (allowed.empty()) {
      verdict.refuse = ErrorResponse(404, "not_found", "no such endpoint");
    } else {
      verdict.refuse = ErrorResponse(405, "method_not_allowed",
                                     fmt::format("use {} for this endpoint", allowed.front()));
      verdict.refuse->SetHeader("Allow", allowed.front());
    }
    return verdict;
  }
  req.route = found->route;
  if (found->access != Access::kAnyone) {
    req.principal = Authenticate(req);
    if (req.principal.empty()) {
      verdict.refuse = Unauthorized();
      return verdict;
    }
    const bool admin = IsAdmin(req);
    if (found->access == Access::kAdmin && !admin) {
      verdict.refuse = ErrorResponse(403, "forbidden",
                                     "this is an admin route: use a token from SENDQ_ADMIN_TOKENS");
      return verdict;
    }
    if (found->access == Access::kProducer && admin) {
      verdict.refuse = ErrorResponse(
          403, "forbidden", "an admin token does not act as a producer: use a producer token");
      return verdict;
    }
  }
  if (found->json_body) {
    const std::string* type = req.FindHeader("Content-Type");
    if (type != nullptr && !IsJsonMediaType(*type)) {
      verdict.refuse = ErrorResponse(415, "unsupported_media_type",
                                     "send the body as JSON with 'Content-Type: application/json'");
      return verdict;
    }
  }
  switch (found->route) {
    case kEnqueue: {
      verdict.body_limit = options_.max_body_bytes;
      // It never blocks (the store's writer answers it), so a small one runs on the event loop
      // and saves two thread hand-offs; a large (or chunked) one is parsed on the pool, so
      // that it cannot hold up every other connection.
      const std::string* length = req.FindHeader("Content-Length");
      verdict.run_inline = length != nullptr && length->size() <= 6 &&
                           std::strtoul(length->c_str(), nullptr, 10) <= kMaxInlineBodyBytes;
      break;
    }
    case kBatch:
      verdict.body_limit = options_.max_batch_body_bytes;
      break;
    case kAgentPhoneWebhook:
    case kReaction:
    case kAdminBulk:
    case kAdminPause:
      verdict.body_limit = options_.max_body_bytes;
      break;
    default:
      verdict.body_limit = kMaxIgnoredBodyBytes;  // read and ignored
      break;
  }
  return verdict;
}

void ApiServer::OnRequest(std::shared_ptr<Request> request, http::Responder respond) {
  const Request& req = *request;
  switch (static_cast<Route>(req.route)) {
    case kHealth:
      return respond(JsonResponse(200, {{"status", "ok"}}));
    case kReady:
      return respond(HandleReady(req));
    case kMetrics:
      return respond(HandleMetrics(req));
    case kEnqueue:
      return HandleEnqueue(req, std::move(respond));
    case kBatch:
      return respond(HandleEnqueueBatch(req));
    case kList:
      return respond(HandleList(req));
    case kGet:
      return HandleGet(req, std::move(respond));
    case kAttempts:
      return respond(HandleAttempts(req));
    case kCancel:
      return respond(HandleCancel(req));
    case kRetry:
      return respond(HandleRetry(req));
    case kReaction:
      return HandleReaction(req, std::move(respond));
    case kRelease:
      return respond(HandleRelease(req));
    case kResolveHeld:
      return respond(HandleResolveHeld(req));
    case kSuppression:
      return respond(HandleSuppression(req));
    case kSuppressionList:
      return respond(HandleSuppressionList(req));
    case kAgentPhoneWebhook:
      return respond(HandleAgentPhoneWebhook(req));
    case kWebhooks:
      return respond(HandleWebhooks(req));
    case kWebhook:
      return respond(HandleWebhook(req));
    case kWebhookDeliveries:
      return respond(HandleWebhookDeliveries(req));
    case kCallbackSecret:
      return respond(JsonResponse(
          200, {{"secret", ProducerCallbackSecret(options_.callbacks.key, req.principal)},
                {"for", "deliveries to a message's own sendq.callback_url"}}));
    case kOpenApi: {
      Response res;
      res.content_type = kJson;
      res.body = options_.openapi;
      return respond(std::move(res));
    }
    case kExport:
      return respond(HandleExport(req));
    case kChanges:
      return HandleChanges(req, std::move(respond));
    case kStats:
      return respond(HandleStats(req));
    case kAdminBulk:
      return respond(HandleAdminBulk(req));
    case kAdminPause:
      return respond(HandlePause(req));
    case kAdminPauses:
      return respond(HandlePauses(req));
    case kAdminAudit:
      return respond(HandleAudit(req));
    case kAdminBackup:
      return respond(HandleBackup(req));
  }
  respond(ErrorResponse(404, "not_found", "no such endpoint"));
}

void ApiServer::HandleEnqueue(const Request& req, http::Responder respond) {
  const std::string& producer = req.principal;
  // Counted before the draining check, so that BeginDrain() either sees it or refuses it.
  EnqueueCount counted(this);
  if (auto refused = RefuseWhileDraining()) return respond(std::move(*refused));
  std::optional<std::string> idempotency_key;
  // An empty header is the same as none (some clients send one for an unset variable).
  if (const std::string* key = req.FindHeader("Idempotency-Key"); key != nullptr && !key->empty()) {
    if (std::optional<std::string> problem = IdempotencyKeyProblem(*key)) {
      return respond(
          ValidationErrors({FieldError{{"header", "Idempotency-Key"}, *problem, "value_error"}}));
    }
    idempotency_key = *key;
  }
  auto validated = std::make_shared<ValidatedRequest>(
      ParseAndValidateSendRequest(req.body, options_.validation));
  std::vector<ControlHeader> control_headers;
  for (const std::string& name : QueueControlHeaderNames()) {
    if (const std::string* value = req.FindHeader(name); value != nullptr && !value->empty()) {
      control_headers.push_back({name, *value});
    }
  }
  std::vector<FieldError> errors = validated->errors;
  store::NewMessage message = deps_.intake->Prepare(producer, idempotency_key, *validated,
                                                    control_headers, {"body"}, &errors);
  if (!errors.empty()) return respond(ValidationErrors(errors));

  // Nothing here waits for the commit: the answer is made once it is done.
  deps_.intake->Enqueue(std::move(message), [producer, validated, respond, pauses = deps_.pauses,
                                             counted = std::make_shared<EnqueueCount>(std::move(
                                                 counted))](Result<store::EnqueueResult> result) {
    // On the writer thread: build the answer on the connection's thread.
    auto stored = std::make_shared<Result<store::EnqueueResult>>(std::move(result));
    respond.Build([producer, validated, stored, pauses] {
      return EnqueueAnswer(*stored, producer, validated->request, pauses);
    });
    counted->Release();  // the last use of this ApiServer
  });
}

Response ApiServer::HandleSuppression(const Request& req) {
  const std::string& producer = req.principal;
  const std::string given = PercentDecode(req.path_params[0]);
  std::optional<std::string> number = NormalisePhone(given, options_.validation.default_region);
  if (!number) {
    return ValidationErrors({FieldError{{"path", "number"},
                                        "Value error, not a phone number (E.164, or national in "
                                        "the default region)",
                                        "value_error"}});
  }
  if (req.method == "GET") {
    Result<std::optional<store::Suppression>> found =
        deps_.store->GetSuppression(producer, *number);
    if (!found.ok()) return StatusResponse(found.status());
    if (!*found) return ErrorResponse(404, "not_found", *number + " is not suppressed");
    return JsonResponse(200, SuppressionRecord(**found));
  }
  if (req.method == "DELETE") {
    Result<bool> removed = deps_.store->Unsuppress(producer, *number);
    if (!removed.ok()) return StatusResponse(removed.status());
    if (!*removed) return ErrorResponse(404, "not_found", *number + " is not suppressed");
    log::Info("suppression_removed", {{"producer", producer}, {"source", "api"}});
    return JsonResponse(200, {{"number", *number}, {"deleted", true}});
  }
  // PUT, with an optional {"reason": "..."}.
  std::optional<std::string> reason;
  if (!req.body.empty()) {
    nlohmann::json body;
    if (std::optional<FieldError> problem = ParseJsonBody(req.body, &body)) {
      return ValidationErrors({*problem});
    }
    if (!body.is_object()) {
      return ValidationErrors(
          {FieldError{{"body"}, "Input should be a valid dictionary", "dict_type"}});
    }
    if (auto it = body.find("reason"); it != body.end() && !it->is_null()) {
      if (!it->is_string() || it->get<std::string>().size() > 500) {
        return ValidationErrors({FieldError{{"body", "reason"},
                                            "Input should be a string of at most 500 characters",
                                            "string_type"}});
      }
      reason = it->get<std::string>();
    }
  }
  Result<store::Suppression> stored = deps_.store->Suppress(
      store::Suppression{producer, *number, deps_.clock->NowMs(), "api", reason});
  if (!stored.ok()) return StatusResponse(stored.status());
  log::Info("suppression_added", {{"producer", producer}, {"source", "api"}});
  return JsonResponse(200, SuppressionRecord(*stored));
}

Response ApiServer::HandleSuppressionList(const Request& req) {
  int limit = kDefaultListLimit;
  if (const std::string* value = req.FindParam("limit")) {
    char* end = nullptr;
    const long parsed = std::strtol(value->c_str(), &end, 10);
    if (value->empty() || *end != '\0' || parsed < 1 || parsed > kMaxListLimit) {
      return ValidationErrors(
          {FieldError{{"query", "limit"},
                      fmt::format("Input should be an integer from 1 to {}", kMaxListLimit),
                      "int_parsing"}});
    }
    limit = static_cast<int>(parsed);
  }
  // The cursor is the last number of the previous page without its '+' (which a query string
  // would read as a space).
  std::string after;
  if (const std::string* cursor = req.FindParam("cursor"); cursor != nullptr && !cursor->empty()) {
    after = "+" + std::string(TrimSpaces(*cursor));
    if (after.size() > 1 && after[1] == '+') after.erase(0, 1);
  }
  Result<std::vector<store::Suppression>> page =
      deps_.store->ListSuppressions(req.principal, after, limit + 1);
  if (!page.ok()) return StatusResponse(page.status());
  const bool has_more = static_cast<int>(page->size()) > limit;
  if (has_more) page->resize(static_cast<size_t>(limit));
  Json data = Json::array();
  for (const store::Suppression& s : *page) data.push_back(SuppressionRecord(s));
  Json next_cursor = has_more ? Json(page->back().number.substr(1)) : Json(nullptr);
  return JsonResponse(
      200, {{"data", std::move(data)}, {"has_more", has_more}, {"next_cursor", next_cursor}});
}

Response ApiServer::HandleAgentPhoneWebhook(const Request& req) {
  const TimeMs now = deps_.clock->NowMs();
  InboundWebhook hook = ReadInboundWebhook(
      options_.inbound, [&](const char* name) { return req.FindHeader(name); }, req.body, now);
  if (hook.status != 200) {
    log::Warn("agentphone_webhook_refused", {{"status", hook.status}, {"error", hook.error}});
    return ErrorResponse(hook.status, hook.status == 401 ? "invalid_signature" : "invalid_body",
                         hook.error);
  }
  if (hook.action == "ignore") {
    log::Info("agentphone_webhook",
              {{"webhook_id", hook.id}, {"event", hook.event}, {"action", "ignore"}});
    return JsonResponse(200, {{"received", true}, {"action", "ignore"}});
  }
  Result<bool> applied = deps_.store->ApplyInboundWebhook(hook.id, now, hook.suppress, hook.lift);
  if (!applied.ok()) return StatusResponse(applied.status());
  log::Info("agentphone_webhook", {{"webhook_id", hook.id},
                                   {"event", hook.event},
                                   {"action", hook.action},
                                   {"duplicate", !*applied},
                                   {"producers", hook.suppress.size() + hook.lift.size()}});
  return JsonResponse(200, {{"received", true}, {"action", hook.action}, {"duplicate", !*applied}});
}

void ApiServer::HandleReaction(const Request& req, http::Responder respond) {
  const std::string& producer = req.principal;
  EnqueueCount counted(this);
  if (auto refused = RefuseWhileDraining()) return respond(std::move(*refused));
  const std::string reaction_to = PercentDecode(req.path_params.at(0));
  std::vector<FieldError> errors;
  if (!reaction_to.starts_with("msg_") && !IsMessageId(reaction_to)) {
    errors.push_back(FieldError{{"path", "message_id"},
                                "Value error, AgentPhone's msg_ id, or the sq_ id of one of your "
                                "messages",
                                "value_error"});
  }
  std::optional<std::string> idempotency_key;
  if (const std::string* key = req.FindHeader("Idempotency-Key"); key != nullptr && !key->empty()) {
    if (std::optional<std::string> problem = IdempotencyKeyProblem(*key)) {
      errors.push_back(FieldError{{"header", "Idempotency-Key"}, *problem, "value_error"});
    }
    idempotency_key = *key;
  }
  nlohmann::json body;
  std::string reaction;
  if (std::optional<FieldError> problem = ParseJsonBody(req.body, &body)) {
    errors.push_back(*problem);
  } else {
    for (FieldError& e : ValidateReaction(body, &reaction)) errors.push_back(std::move(e));
  }
  if (!errors.empty()) return respond(ValidationErrors(errors));
  store::NewMessage message =
      deps_.intake->PrepareReaction(producer, idempotency_key, reaction_to, reaction);
  deps_.intake->Enqueue(std::move(message), [producer, body, respond, pauses = deps_.pauses,
                                             counted = std::make_shared<EnqueueCount>(std::move(
                                                 counted))](Result<store::EnqueueResult> result) {
    auto stored = std::make_shared<Result<store::EnqueueResult>>(std::move(result));
    respond.Build([producer, body, stored, pauses]() -> Response {
      if (stored->ok() && (*stored)->parent_missing) {
        return ErrorResponse(404, "not_found", "no such message of this producer");
      }
      return EnqueueAnswer(*stored, producer, body, pauses);
    });
    counted->Release();
  });
}

namespace {

Json WebhookRecord(const store::Webhook& w) {
  return {{"id", w.id},
          {"url", w.url},
          {"events", w.events},
          {"created_at", FormatRfc3339(w.created_at)}};
}

Json DeliveryRecord(const store::CallbackDeliveryRecord& r) {
  Json tries = Json::array();
  for (const store::CallbackTry& t : r.tries) {
    tries.push_back({{"number", t.number},
                     {"started_at", FormatRfc3339(t.started_at)},
                     {"finished_at", FormatRfc3339(t.finished_at)},
                     {"http_status", t.http_status ? Json(*t.http_status) : Json(nullptr)},
                     {"error", t.error ? Json(*t.error) : Json(nullptr)}});
  }
  return {{"event_id", r.delivery.event_id},
          {"event", r.delivery.event},
          {"message_id", r.delivery.message_id},
          {"state", r.state},
          {"attempts", r.delivery.attempts},
          {"created_at", FormatRfc3339(r.delivery.created_at)},
          {"next_attempt_at",
           r.next_attempt_at ? Json(FormatRfc3339(*r.next_attempt_at)) : Json(nullptr)},
          {"last_error", r.last_error ? Json(*r.last_error) : Json(nullptr)},
          {"tries", std::move(tries)}};
}

}  // namespace

Response ApiServer::HandleWebhooks(const Request& req) {
  const std::string& producer = req.principal;
  if (req.method == "GET") {
    Result<std::vector<store::Webhook>> all = deps_.store->ListWebhooks(producer);
    if (!all.ok()) return StatusResponse(all.status());
    Json data = Json::array();
    for (const store::Webhook& w : *all) data.push_back(WebhookRecord(w));
    return JsonResponse(200, {{"data", std::move(data)}});
  }
  nlohmann::json body;
  if (std::optional<FieldError> problem = ParseJsonBody(req.body, &body)) {
    return ValidationErrors({*problem});
  }
  if (!body.is_object()) {
    return ValidationErrors(
        {FieldError{{"body"}, "Input should be a valid dictionary", "dict_type"}});
  }
  std::vector<FieldError> errors;
  std::string url;
  if (auto it = body.find("url"); it == body.end() || !it->is_string()) {
    errors.push_back(FieldError{{"body", "url"}, "Field required: a string", "missing"});
  } else {
    url = it->get<std::string>();
    std::string problem = url.size() > 2048
                              ? "at most 2048 characters"
                              : VetCallbackUrl(url, options_.callbacks.allow_http,
                                               options_.callbacks.allow_private, /*resolve=*/true);
    if (!problem.empty()) {
      errors.push_back(FieldError{{"body", "url"}, "Value error, " + problem, "value_error"});
    }
  }
  std::vector<std::string> events;
  if (auto it = body.find("events"); it == body.end() || it->is_null()) {
    events.assign(std::begin(store::kCallbackEvents), std::end(store::kCallbackEvents));
  } else if (!it->is_array() || it->empty()) {
    errors.push_back(
        FieldError{{"body", "events"}, "Input should be a non-empty list", "list_type"});
  } else {
    for (size_t i = 0; i < it->size(); ++i) {
      const Json& e = (*it)[i];
      const bool known = e.is_string() && std::any_of(std::begin(store::kCallbackEvents),
                                                      std::end(store::kCallbackEvents),
                                                      [&](const char* name) { return e == name; });
      if (!known) {
        errors.push_back(FieldError{{"body", "events", i},
                                    "Value error, one of message.sent, message.failed, "
                                    "message.canceled, message.expired, message.unknown",
                                    "value_error"});
      } else if (std::find(events.begin(), events.end(), e.get<std::string>()) == events.end()) {
        events.push_back(e.get<std::string>());
      }
    }
  }
  for (const auto& [name, value] : body.items()) {
    if (name != "url" && name != "events") {
      errors.push_back(
          FieldError{{"body", name}, "Extra inputs are not permitted", "extra_forbidden"});
    }
  }
  if (!errors.empty()) return ValidationErrors(errors);
  store::Webhook webhook{"wh_" + RandomHex(12), producer, url, events, deps_.clock->NowMs()};
  Result<store::Webhook> added = deps_.store->AddWebhook(webhook);
  if (!added.ok()) return StatusResponse(added.status());
  log::Info("webhook_added", {{"producer", producer}, {"webhook_id", added->id}});
  Json record = WebhookRecord(*added);
  // Shown here only: sendq keeps no copy (it derives it when signing).
  record["secret"] = WebhookSecret(options_.callbacks.key, added->id);
  Response res = JsonResponse(201, record);
  res.SetHeader("Location", "/v1/webhooks/" + added->id);
  return res;
}

Response ApiServer::HandleWebhook(const Request& req) {
  const std::string& producer = req.principal;
  const std::string& id = req.path_params.at(0);
  if (req.method == "DELETE") {
    Result<bool> removed = deps_.store->DeleteWebhook(producer, id);
    if (!removed.ok()) return StatusResponse(removed.status());
    if (!*removed) return ErrorResponse(404, "not_found", "no such webhook");
    log::Info("webhook_deleted", {{"producer", producer}, {"webhook_id", id}});
    return JsonResponse(200, {{"id", id}, {"deleted", true}});
  }
  Result<std::optional<store::Webhook>> found = deps_.store->GetWebhook(producer, id);
  if (!found.ok()) return StatusResponse(found.status());
  if (!*found) return ErrorResponse(404, "not_found", "no such webhook");
  return JsonResponse(200, WebhookRecord(**found));
}

Response ApiServer::HandleWebhookDeliveries(const Request& req) {
  const std::string& producer = req.principal;
  const std::string& id = req.path_params.at(0);
  Result<std::optional<store::Webhook>> found = deps_.store->GetWebhook(producer, id);
  if (!found.ok()) return StatusResponse(found.status());
  if (!*found) return ErrorResponse(404, "not_found", "no such webhook");
  Result<std::vector<store::CallbackDeliveryRecord>> deliveries =
      deps_.store->ListCallbackDeliveries(producer, id, kMaxListLimit);
  if (!deliveries.ok()) return StatusResponse(deliveries.status());
  Json data = Json::array();
  for (const store::CallbackDeliveryRecord& r : *deliveries) data.push_back(DeliveryRecord(r));
  return JsonResponse(200, {{"data", std::move(data)}});
}

Response ApiServer::HandleEnqueueBatch(const Request& req) {
  const std::string& producer = req.principal;
  if (auto refused = RefuseWhileDraining()) return std::move(*refused);
  if (req.FindHeader("Idempotency-Key") != nullptr) {
    return ValidationErrors({FieldError{{"header", "Idempotency-Key"},
                                        "a batch takes an idempotency_key field on each message "
                                        "instead",
                                        "value_error"}});
  }
  BatchRequest batch = ParseBatchRequest(req.body, options_.validation);
  if (!batch.errors.empty()) return ValidationErrors(batch.errors);

  // The valid items go to the store together; `stored_index[i]` is item i's place there.
  std::vector<store::NewMessage> to_store;
  std::vector<size_t> stored_index(batch.items.size(), SIZE_MAX);
  for (size_t i = 0; i < batch.items.size(); ++i) {
    BatchItem& item = batch.items[i];
    std::vector<FieldError> errors = item.validated.errors;
    store::NewMessage message = deps_.intake->Prepare(
        producer, item.idempotency_key, item.validated, {}, {"body", "messages", i}, &errors);
    if (!errors.empty()) {
      item.validated.errors = std::move(errors);
      continue;
    }
    stored_index[i] = to_store.size();
    to_store.push_back(std::move(message));
  }
  std::vector<Result<store::EnqueueResult>> stored;
  if (!to_store.empty()) {
    Result<std::vector<Result<store::EnqueueResult>>> outcome =
        deps_.intake->EnqueueBatch(to_store);
    if (!outcome.ok()) return StatusResponse(outcome.status());
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
    } else if (r->suppressed) {
      ++rejected;
      entry["status"] = 422;
      entry["detail"] =
          ValidationErrorBody({SuppressedError({"body", "messages", i, "to_number"})})["detail"];
    } else if (r->parent_missing) {
      ++rejected;
      entry["status"] = 422;
      entry["detail"] = ValidationErrorBody(
          {ParentMissingError({"body", "messages", i, "reply_to_message_id"})})["detail"];
    } else if (r->replayed) {
      ++replayed;
      entry["status"] = 200;
      entry["replayed"] = true;
      entry["message"] = MessageRecord(r->message, deps_.pauses);
    } else {
      ++accepted;
      entry["status"] = 202;
      entry["message"] = MessageRecord(r->message, item.validated.request, deps_.pauses);
      enqueued_ids.push_back(r->message.id);
    }
    results.push_back(std::move(entry));
  }
  if (accepted > 0) {
    // One line for the batch, with every new id in item order: as traceable as a line per
    // message, at a fraction of the cost.
    log::Info(
        "batch_enqueued",
        {{"producer", producer}, {"accepted", accepted}, {"message_ids", std::move(enqueued_ids)}});
  }
  return JsonResponse(200, {{"accepted", accepted},
                            {"replayed", replayed},
                            {"rejected", rejected},
                            {"results", std::move(results)}});
}

void ApiServer::HandleGet(const Request& req, http::Responder respond) {
  // Long poll: ?wait=<duration> waits until the message is final, or (with after_version)
  // until it changes, or until the wait runs out. The answer is the record either way.
  DurationMs wait = 0;
  auto poll = std::make_shared<LongPoll>();
  poll->id = req.path_params.at(0);
  poll->producer = OwnerFor(req, poll->id);
  std::vector<FieldError> errors;
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
  if (const std::string* text = req.FindParam("after_version")) {
    try {
      size_t used = 0;
      poll->after_version = std::stoll(*text, &used);
      if (used != text->size()) throw std::invalid_argument(*text);
    } catch (const std::exception&) {
      errors.push_back({{"query", "after_version"}, "must be an integer", "int_parsing"});
    }
  }
  if (!errors.empty()) return respond(ValidationErrors(errors));
  poll->deadline = deps_.clock->NowMs() + wait;
  poll->respond = std::move(respond);
  if (wait == 0) return Poll(poll);

  if (poll->producer.empty()) return Poll(poll);  // an admin asked for a message nobody has
  if (!deps_.long_polls->Begin(poll->producer)) {
    Response res = ErrorResponse(
        429, "too_many_waits",
        fmt::format("this producer already has {} long polls open (--max-waits-per-producer); "
                    "wait for one to answer, or poll without ?wait=",
                    options_.max_waits_per_producer));
    res.SetHeader("Retry-After", "1");
    return poll->respond(std::move(res));
  }
  poll->counted = true;
  Poll(poll);
}

void ApiServer::Poll(const std::shared_ptr<LongPoll>& poll) {
  if (poll->answered) return;
  auto answer = [&](Response res) {
    if (poll->answered.exchange(true)) return;
    // A wake-up that another look armed meanwhile is not needed any more.
    if (const uint64_t armed = poll->ticket.exchange(0); armed != 0) {
      deps_.long_polls->Cancel(armed);
    }
    if (poll->counted) deps_.long_polls->End(poll->producer);
    poll->respond(std::move(res));
  };
  // Armed before the read, so that a commit between the read and the arming is not missed.
  const TimeMs now = deps_.clock->NowMs();
  const bool may_wait = now < poll->deadline && !deps_.long_polls->closed();
  if (may_wait) {
    poll->ticket = deps_.long_polls->Arm(poll->id, poll->deadline, [this, poll] {
      poll->ticket = 0;
      http_->Submit(poll->producer, [this, poll] { Poll(poll); });
    });
    // Answered by another look while this one armed: nothing more to wait for.
    if (poll->answered) {
      if (const uint64_t armed = poll->ticket.exchange(0); armed != 0) {
        deps_.long_polls->Cancel(armed);
      }
      return;
    }
  }
  Result<Message> m = deps_.store->Get(poll->producer, poll->id);
  const bool changed =
      m.ok() && (poll->after_version ? m->version > *poll->after_version : IsTerminal(m->status));
  if (!m.ok() || changed || !may_wait) {
    return answer(m.ok() ? JsonResponse(200, Record(*m)) : StatusResponse(m.status()));
  }
}

Response ApiServer::HandleAttempts(const Request& req) {
  const std::string& id = req.path_params.at(0);
  Result<std::vector<Attempt>> attempts = deps_.store->ListAttempts(OwnerFor(req, id), id);
  if (!attempts.ok()) return StatusResponse(attempts.status());
  Json data = Json::array();
  for (const Attempt& a : *attempts) data.push_back(AttemptRecord(a));
  return JsonResponse(200, {{"message_id", id}, {"data", std::move(data)}});
}

Response ApiServer::HandleList(const Request& req) {
  std::string producer;
  if (auto refused = ReadScope(req, &producer)) return std::move(*refused);
  ParsedListQuery query = ParseListQuery(req.query, options_.validation.default_region);
  if (!query.ok()) return ValidationErrors(query.errors);
  query.filter.now = deps_.clock->NowMs();
  AddRedactedRecipient(&query.filter);
  Result<store::ListPage> page = deps_.store->List(producer, query.filter);
  if (!page.ok()) return StatusResponse(page.status());
  Json data = Json::array();
  for (const Message& m : page->messages) data.push_back(Record(m));
  Json next_cursor = nullptr;
  if (page->has_more && !page->messages.empty()) {
    next_cursor = EncodeCursor(page->messages.back().id);
  }
  return JsonResponse(
      200, {{"data", std::move(data)}, {"has_more", page->has_more}, {"next_cursor", next_cursor}});
}

Response ApiServer::HandleCancel(const Request& req) {
  const std::string& id = req.path_params.at(0);
  const std::string producer = OwnerFor(req, id);
  Result<Message> m = deps_.store->Cancel(producer, id, deps_.clock->NowMs());
  if (m.ok()) log::Info("message_canceled", {{"message_id", id}, {"producer", producer}});
  return TransitionAnswer(producer, id, m, "only a queued or held message can be canceled");
}

Response ApiServer::HandleRelease(const Request& req) {
  const std::string& producer = req.principal;
  if (auto refused = RefuseWhileDraining()) return std::move(*refused);
  const std::string& id = req.path_params.at(0);
  Result<Message> m = deps_.store->Release(producer, id, deps_.clock->NowMs());
  return TransitionAnswer(producer, id, m, "only a held message can be released");
}

Response ApiServer::HandleResolveHeld(const Request& req) {
  const bool cancel = req.path.ends_with("/cancel");
  if (!cancel) {
    if (auto refused = RefuseWhileDraining()) return std::move(*refused);
  }
  // {"status": "held", "to_number": ..., "reason": ...}: only held messages are taken by filter.
  nlohmann::json body;
  if (auto refused = ParseObjectBody(req.body, &body)) return std::move(*refused);
  std::vector<FieldError> errors;
  std::optional<std::string> to_number;
  std::optional<std::string> reason;
  for (const auto& [name, value] : body.items()) {
    if (name == "status") {
      if (value != "held") {
        errors.push_back(FieldError{{"body", "status"},
                                    "Value error, only held messages are released or canceled by "
                                    "filter",
                                    "value_error"});
      }
    } else if (name == "to_number" && value.is_string()) {
      to_number = NormalisePhone(value.get<std::string>(), options_.validation.default_region);
      if (!to_number) {
        errors.push_back(
            FieldError{{"body", "to_number"}, "Value error, not a phone number", "value_error"});
      }
    } else if (name == "reason" && value.is_string()) {
      reason = value.get<std::string>();
    } else {
      errors.push_back(FieldError{{"body", name},
                                  "Extra inputs are not permitted (filters: status, to_number, "
                                  "reason)",
                                  "extra_forbidden"});
    }
  }
  if (!errors.empty()) return ValidationErrors(errors);
  Result<std::pair<int64_t, int64_t>> done =
      deps_.store->ResolveHeld(req.principal, to_number, reason, cancel, deps_.clock->NowMs());
  if (!done.ok()) return StatusResponse(done.status());
  log::Info(cancel ? "held_canceled" : "held_released",
            {{"producer", req.principal}, {"matched", done->first}, {"changed", done->second}});
  return JsonResponse(200, {{"matched", done->first}, {"changed", done->second}});
}

Response ApiServer::HandleRetry(const Request& req) {
  if (auto refused = RefuseWhileDraining()) return std::move(*refused);
  const std::string& id = req.path_params.at(0);
  const std::string producer = OwnerFor(req, id);
  const TimeMs now = deps_.clock->NowMs();
  Result<Message> m = deps_.intake->Retry(producer, id, now);
  if (m.ok()) log::Info("message_retried", {{"message_id", id}, {"producer", producer}});
  return TransitionAnswer(producer, id, m, "only a failed message can be retried");
}

std::optional<Response> ApiServer::RefuseWhileDraining() const {
  if (!draining_) return std::nullopt;
  Response res = ErrorResponse(503, "shutting_down", "sendq is shutting down; retry shortly");
  res.SetHeader("Retry-After", "5");
  return res;
}

Response ApiServer::TransitionAnswer(const std::string& producer, const std::string& id,
                                     const Result<Message>& result, std::string_view rule) {
  if (result.ok()) return JsonResponse(200, Record(*result));
  if (!result.status().IsConflict()) return StatusResponse(result.status());
  Result<Message> current = deps_.store->Get(producer, id);
  if (!current.ok()) return StatusResponse(current.status());
  return JsonResponse(
      409, {{"detail", fmt::format("{}; this one is {}", rule, StatusName(current->status))},
            {"code", "invalid_state"},
            {"status", StatusName(current->status)},
            {"message", Record(*current)}});
}

Response ApiServer::HandleReady(const Request& req) {
  // Ready means "can accept and store work": a paused AgentPhone does not stop that (sendq
  // buffers), unless the caller asks for the upstream too.
  const bool upstream_required =
      req.FindParam("upstream") != nullptr && *req.FindParam("upstream") == "required";
  const bool upstream_paused = deps_.circuit->paused();
  Json reasons = Json::array();
  if (draining_) reasons.push_back("shutting_down");
  if (Status st = deps_.store->CheckWritable(); !st.ok()) {
    reasons.push_back(st.code() == Status::Code::kNoSpace ? "disk_full" : "db_not_writable");
  }
  // An admin's pause, like a paused upstream, holds sending back, not intake.
  const bool paused = deps_.pauses != nullptr && deps_.pauses->global();
  const bool ready = reasons.empty() && !(upstream_required && (upstream_paused || paused));
  if (upstream_paused) reasons.push_back("upstream_paused");
  if (paused) reasons.push_back("paused");
  Json body = {
      {"ready", ready}, {"upstream", upstream_paused ? "paused" : "ok"}, {"paused", paused}};
  body["reason"] = reasons.empty() ? Json(nullptr) : reasons.front();
  body["reasons"] = std::move(reasons);
  return JsonResponse(ready ? 200 : 503, body);
}

Response ApiServer::HandleMetrics(const Request&) {
  Result<store::Stats> stats = deps_.store->GetStats(deps_.clock->NowMs());
  if (!stats.ok()) return StatusResponse(stats.status());
  Response res;
  res.content_type = "text/plain; version=0.0.4";
  res.body = deps_.metrics->Render(*stats, deps_.circuit->paused(), deps_.clock->NowMs());
  res.body +=
      "# HELP sendq_long_polls_waiting GET requests waiting for their message to change.\n"
      "# TYPE sendq_long_polls_waiting gauge\n";
  res.body += fmt::format("sendq_long_polls_waiting {}\n", deps_.long_polls->armed());
  if (deps_.pauses != nullptr) {
    const PauseState pauses = deps_.pauses->Get();
    res.body +=
        "# HELP sendq_sending_paused 1 while an admin has paused all sending.\n"
        "# TYPE sendq_sending_paused gauge\n";
    res.body += fmt::format("sendq_sending_paused {}\n", pauses.global ? 1 : 0);
    res.body +=
        "# HELP sendq_sender_paused 1 for each sender an admin has paused.\n"
        "# TYPE sendq_sender_paused gauge\n";
    for (const std::string& sender : pauses.senders) {
      res.body +=
          fmt::format("sendq_sender_paused{{sender=\"{}\"}} 1\n", delivery::LabelValue(sender));
    }
  }
  if (deps_.more_metrics) res.body += deps_.more_metrics();
  return res;
}

}  // namespace sendq::api
