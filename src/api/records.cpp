#include "api/records.h"

#include "util/time_format.h"

namespace sendq::api {
namespace {

nlohmann::json OptTime(const std::optional<TimeMs>& t) {
  return t ? nlohmann::json(FormatRfc3339(*t)) : nlohmann::json(nullptr);
}

template <typename T>
nlohmann::json Opt(const std::optional<T>& v) {
  return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
}

nlohmann::json RequestField(const nlohmann::json& request, const char* key) {
  auto it = request.find(key);
  return it == request.end() ? nlohmann::json(nullptr) : *it;
}

}  // namespace

nlohmann::ordered_json MessageRecord(const Message& m, const Pauses* pauses) {
  // The stored request was validated and normalised before it was stored, so it parses.
  nlohmann::json request = nlohmann::json::parse(m.request_json, nullptr, false);
  if (!request.is_object()) request = nlohmann::json::object();
  return MessageRecord(m, request, pauses);
}

nlohmann::ordered_json MessageRecord(const Message& m, const nlohmann::json& request,
                                     const Pauses* pauses) {
  nlohmann::json media = RequestField(request, "media_urls");
  nlohmann::json to_number =
      m.sent_to_number ? nlohmann::json(*m.sent_to_number) : RequestField(request, "to_number");
  nlohmann::ordered_json r = nlohmann::ordered_json::object();
  r["id"] = m.id;
  r["status"] = StatusName(m.status);
  r["channel"] = Opt(m.channel);
  r["from_number"] = Opt(m.from_number);
  r["to_number"] = to_number;
  r["recipients"] = RequestField(request, "recipients");
  r["media_urls"] = media.is_array() ? media : nlohmann::json::array();
  r["reply_to_message_id"] = RequestField(request, "reply_to_message_id");
  r["reply_parent_unresolved"] = Opt(m.reply_parent_unresolved);
  r["conversation_id"] = Opt(m.conversation_id);
  r["provider_message_id"] = Opt(m.provider_message_id);
  r["agent_id"] = RequestField(request, "agent_id");
  r["number_id"] = RequestField(request, "number_id");
  r["idempotency_key"] = Opt(m.idempotency_key);
  r["attempts"] = m.attempts;
  r["last_error"] = Opt(m.last_error);
  r["reason"] = Opt(m.status_reason);
  if (m.reaction_to) {
    // As AgentPhone's Send Reaction answers, for clients that read those fields.
    r["message_id"] = *m.reaction_to;
    r["reaction_type"] = RequestField(request, "reaction");
  }
  r["next_attempt_at"] =
      m.status == MessageStatus::kQueued ? OptTime(m.next_attempt_at) : nlohmann::json(nullptr);
  r["expires_at"] = FormatRfc3339(m.expires_at);
  r["sent_at"] = OptTime(m.sent_at);
  r["created_at"] = FormatRfc3339(m.created_at);
  r["updated_at"] = FormatRfc3339(m.updated_at);
  r["version"] = m.version;
  nlohmann::json window = nullptr;
  if (m.send_window) window = nlohmann::json::parse(*m.send_window, nullptr, false);
  r["sendq"] = {{"ordering_key", Opt(m.ordering_key)},
                {"priority", PriorityName(m.priority)},
                {"send_at", OptTime(m.send_at)},
                {"expires_at", FormatRfc3339(m.expires_at)},
                {"send_window", window.is_discarded() ? nlohmann::json(nullptr) : window},
                {"held_by_order", m.status == MessageStatus::kQueued && m.held},
                {"paused", m.status == MessageStatus::kQueued && pauses != nullptr &&
                               pauses->Covers(m.sender.value_or(""))}};
  return r;
}

nlohmann::ordered_json AttemptRecord(const Attempt& a) {
  nlohmann::ordered_json r = nlohmann::ordered_json::object();
  r["number"] = a.number;
  r["started_at"] = FormatRfc3339(a.started_at);
  r["finished_at"] = OptTime(a.finished_at);
  r["outcome"] = a.outcome ? nlohmann::json(OutcomeName(*a.outcome)) : nlohmann::json(nullptr);
  r["http_status"] = Opt(a.http_status);
  r["error"] = Opt(a.error);
  r["response_body"] = Opt(a.response_body);
  r["charged"] = a.charged;
  return r;
}

}  // namespace sendq::api
