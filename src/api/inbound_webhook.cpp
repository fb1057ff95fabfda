#include "api/inbound_webhook.h"

#include <nlohmann/json.hpp>

#include "queue/phone.h"
#include "util/hmac.h"
#include "util/json_fields.h"
#include "util/time_format.h"

namespace sendq::api {
namespace {

using json = nlohmann::json;

std::string Upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

std::string TrimAll(const std::string& s) {
  const char* kSpace = " \t\r\n\f\v";
  const size_t first = s.find_first_not_of(kSpace);
  if (first == std::string::npos) return "";
  return s.substr(first, s.find_last_not_of(kSpace) - first + 1);
}

// Unix seconds (or milliseconds, when that large), or an RFC 3339 time.
std::optional<TimeMs> ParseWebhookTime(const std::string& text) {
  if (!text.empty() && text.size() <= 16 &&
      text.find_first_not_of("0123456789") == std::string::npos) {
    const int64_t value = std::stoll(text);
    return value >= 100'000'000'000LL ? value : value * 1000;
  }
  return ParseRfc3339(text);
}

InboundWebhook Refuse(int status, std::string error) {
  InboundWebhook w;
  w.status = status;
  w.error = std::move(error);
  return w;
}

}  // namespace

std::string OptOutKeyword(const std::string& message) {
  const std::string word = Upper(TrimAll(message));
  for (const char* stop : {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"}) {
    if (word == stop) return "stop";
  }
  if (word == "START" || word == "UNSTOP") return "start";
  return "";
}

InboundWebhook ReadInboundWebhook(const InboundWebhookOptions& options,
                                  const std::function<const std::string*(const char*)>& header,
                                  const std::string& body, TimeMs now) {
  if (options.secret.empty()) {
    return Refuse(401, "this sendq has no --agentphone-webhook-secret to check signatures with");
  }
  const std::string* signature = header("X-Webhook-Signature");
  const std::string* timestamp = header("X-Webhook-Timestamp");
  if (signature == nullptr || timestamp == nullptr) {
    return Refuse(401, "missing X-Webhook-Signature or X-Webhook-Timestamp");
  }
  const std::optional<TimeMs> at = ParseWebhookTime(*timestamp);
  if (!at || *at < now - kWebhookTolerance || *at > now + kWebhookTolerance) {
    return Refuse(401, "X-Webhook-Timestamp is missing, unreadable or more than 5 minutes away");
  }
  const std::string expected = WebhookSignature(options.secret, *timestamp, body);
  if (!ConstantTimeEquals(TrimAll(*signature), expected)) {
    return Refuse(401, "X-Webhook-Signature does not match the body");
  }
  const std::string* id = header("X-Webhook-ID");
  InboundWebhook w;
  // Without an id a repeat cannot be recognised; the signature stands in for one.
  w.id = id != nullptr && !id->empty() ? *id : "sig:" + expected;
  json payload = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!payload.is_object()) return Refuse(422, "the body is not a JSON object");
  w.event = StringMember(payload, "event").value_or("");
  w.action = "ignore";
  const json data =
      payload.contains("data") && payload["data"].is_object() ? payload["data"] : json::object();
  if (w.event != "agent.message") return w;
  const std::string keyword = OptOutKeyword(StringMember(data, "message").value_or(""));
  if (keyword.empty()) return w;
  const std::string from = StringMember(data, "from").value_or("");
  std::optional<std::string> number = NormalisePhone(from, options.default_region);
  if (!number) return w;
  std::vector<std::string> producers;
  for (const std::string& owner_key :
       {StringMember(data, "numberId").value_or(""), StringMember(payload, "agentId").value_or(""),
        StringMember(data, "agentId").value_or("")}) {
    if (owner_key.empty()) continue;
    if (auto it = options.owners.find(owner_key); it != options.owners.end()) {
      producers = {it->second};
      break;
    }
  }
  if (producers.empty()) producers = options.producers;
  w.action = keyword == "stop" ? "suppress" : "lift";
  for (const std::string& producer : producers) {
    if (keyword == "stop") {
      w.suppress.push_back(store::Suppression{
          producer, *number, now, "inbound",
          "opted out by replying " + Upper(TrimAll(StringMember(data, "message").value_or("")))});
    } else {
      w.lift.emplace_back(producer, *number);
    }
  }
  return w;
}

}  // namespace sendq::api
