#include "queue/controls.h"

#include <fmt/format.h>

#include <algorithm>

#include "util/callback_url.h"
#include "util/duration.h"
#include "util/json_fields.h"
#include "util/time_format.h"

namespace sendq {

bool IsCallbackUrl(const std::string& url) { return ParseCallbackUrl(url).has_value(); }

namespace {

using nlohmann::json;

// The fields of the `sendq` object, and the header for each (empty: body only).
struct ControlField {
  const char* field;
  const char* header;
};
constexpr ControlField kFields[] = {
    {"ordering_key", "Sendq-Ordering-Key"},
    {"send_at", "Sendq-Send-At"},
    {"expires_at", "Sendq-Expires-At"},
    {"ttl", ""},
    {"priority", "Sendq-Priority"},
    {"send_window", "Sendq-Send-Window"},
    {"callback_url", ""},
};

constexpr size_t kMaxCallbackUrlLength = 2048;

json Loc(const json& prefix, std::initializer_list<json> path) {
  json loc = prefix.is_array() ? prefix : json::array({"body"});
  for (const json& part : path) loc.push_back(part);
  return loc;
}

// The longest ttl: a year.
constexpr DurationMs kMaxTtl = 365LL * 24 * 3600 * 1000;

// Parses one field's value into `out`; the problem, or empty when it is fine.
std::string ParseField(const std::string& field, const json& value, QueueControls* out) {
  if (field == "ordering_key") {
    out->ordering_key_given = true;
    if (value.is_null()) {
      out->ordering_key.reset();
      return "";
    }
    if (!value.is_string()) return "ordering_key must be a string, or null to opt out of ordering";
    const auto& key = value.get_ref<const std::string&>();
    if (key.empty() || key.size() > kMaxOrderingKeyLength) {
      return fmt::format("ordering_key must be 1 to {} characters", kMaxOrderingKeyLength);
    }
    // A header's bytes are not checked as UTF-8 on the way in; a key must be text.
    try {
      (void)value.dump();
    } catch (const json::type_error&) {
      return "ordering_key must be UTF-8 text";
    }
    out->ordering_key = key;
    return "";
  }
  if (field == "send_at" || field == "expires_at") {
    std::optional<TimeMs> t;
    if (value.is_string()) t = ParseRfc3339(value.get<std::string>());
    if (!t) {
      return fmt::format(
          "{} must be an RFC 3339 time with an offset, such as "
          "2026-12-01T09:30:00-06:00",
          field);
    }
    (field == "send_at" ? out->send_at : out->expires_at) = *t;
    return "";
  }
  if (field == "ttl") {
    std::optional<DurationMs> ttl;
    if (value.is_number_integer() && value.get<int64_t>() > 0 &&
        value.get<int64_t>() <= kMaxTtl / 1000) {
      ttl = value.get<int64_t>() * 1000;
    } else if (value.is_string()) {
      Result<DurationMs> parsed = ParseDuration(value.get<std::string>());
      if (parsed.ok() && *parsed > 0 && *parsed <= kMaxTtl) ttl = *parsed;
    }
    if (!ttl) {
      return "ttl must be a positive duration such as \"10m\" or \"24h\", or seconds, at most "
             "365 days";
    }
    out->ttl = *ttl;
    return "";
  }
  if (field == "callback_url") {
    if (!value.is_string() || value.get_ref<const std::string&>().size() > kMaxCallbackUrlLength ||
        !IsCallbackUrl(value.get<std::string>())) {
      return fmt::format("callback_url must be an http(s) URL with a host, at most {} characters",
                         kMaxCallbackUrlLength);
    }
    out->callback_url = value.get<std::string>();
    return "";
  }
  if (field == "priority") {
    std::optional<Priority> p;
    if (value.is_string()) p = ParsePriority(value.get<std::string>());
    if (!p) return "priority must be high, normal or bulk";
    out->priority = *p;
    return "";
  }
  // send_window
  std::string problem;
  out->send_window = ParseSendWindow(value, &problem);
  return problem;
}

// A header's text as the JSON value its field takes.
json HeaderValue(const std::string& field, const std::string& text) {
  if (field == "send_window" && !text.empty() && text.front() == '{') {
    json parsed = json::parse(text, nullptr, /*allow_exceptions=*/false);
    return parsed.is_discarded() ? json(text) : parsed;
  }
  return json(text);
}

// Where `field` of `controls` was written: its header, or the body's sendq member.
json FieldLoc(const QueueControls& controls, const json& prefix, const std::string& field) {
  if (auto it = controls.from_header.find(field); it != controls.from_header.end()) {
    return json::array({"header", it->second});
  }
  return Loc(prefix, {"sendq", field});
}

bool SameGiven(const QueueControls& a, const QueueControls& b, const std::string& field) {
  if (field == "ordering_key") return a.ordering_key == b.ordering_key;
  if (field == "send_at") return a.send_at == b.send_at;
  if (field == "expires_at") return a.expires_at == b.expires_at;
  if (field == "priority") return a.priority == b.priority;
  return a.send_window == b.send_window;
}

}  // namespace

json QueueControls::ToJson() const {
  json out = json::object();
  if (ordering_key_given) out["ordering_key"] = ordering_key ? json(*ordering_key) : json(nullptr);
  if (send_at) out["send_at"] = FormatRfc3339(*send_at);
  if (expires_at) out["expires_at"] = FormatRfc3339(*expires_at);
  if (callback_url) out["callback_url"] = *callback_url;
  if (ttl) out["ttl"] = FormatDuration(*ttl);
  if (priority) out["priority"] = PriorityName(*priority);
  if (send_window) out["send_window"] = SendWindowJson(*send_window);
  return out;
}

const std::vector<std::string>& QueueControlHeaderNames() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for (const ControlField& f : kFields) {
      if (*f.header != '\0') out.emplace_back(f.header);
    }
    return out;
  }();
  return names;
}

QueueControls ParseQueueControls(const json* body_controls,
                                 const std::vector<ControlHeader>& headers, const json& loc_prefix,
                                 std::vector<FieldError>* errors) {
  QueueControls from_body;
  if (body_controls != nullptr && !body_controls->is_null()) {
    if (!body_controls->is_object()) {
      errors->push_back({Loc(loc_prefix, {"sendq"}),
                         "Input should be a valid dictionary or object to extract fields from",
                         "model_attributes_type"});
      return from_body;
    }
    for (auto it = body_controls->begin(); it != body_controls->end(); ++it) {
      const bool known = std::any_of(std::begin(kFields), std::end(kFields),
                                     [&](const ControlField& f) { return it.key() == f.field; });
      if (!known) {
        errors->push_back({Loc(loc_prefix, {"sendq", it.key()}),
                           "Extra inputs are not permitted: sendq takes ordering_key, send_at, "
                           "expires_at, ttl, priority, send_window and callback_url",
                           "extra_forbidden"});
        continue;
      }
      if (std::string problem = ParseField(it.key(), it.value(), &from_body); !problem.empty()) {
        errors->push_back(
            {Loc(loc_prefix, {"sendq", it.key()}), "Value error, " + problem, "value_error"});
      }
    }
  }
  QueueControls merged = from_body;
  for (const ControlHeader& header : headers) {
    const ControlField* field = nullptr;
    for (const ControlField& f : kFields) {
      if (*f.header != '\0' && header.name == f.header) field = &f;
    }
    if (field == nullptr) continue;
    QueueControls from_header;
    const json loc = json::array({"header", header.name});
    if (std::string problem =
            ParseField(field->field, HeaderValue(field->field, header.value), &from_header);
        !problem.empty()) {
      errors->push_back({loc, "Value error, " + problem, "value_error"});
      continue;
    }
    const bool in_body = body_controls != nullptr && body_controls->is_object() &&
                         body_controls->contains(field->field);
    if (in_body && !SameGiven(from_body, from_header, field->field)) {
      errors->push_back({loc,
                         fmt::format("Value error, {} disagrees with sendq.{} in the body; give "
                                     "one, or the same value in both",
                                     header.name, field->field),
                         "value_error"});
      continue;
    }
    ParseField(field->field, HeaderValue(field->field, header.value), &merged);
    if (!in_body) merged.from_header[field->field] = header.name;
  }
  if (merged.ttl && merged.expires_at) {
    errors->push_back({FieldLoc(merged, loc_prefix, "ttl"),
                       "Value error, give expires_at or ttl, not both", "value_error"});
  }
  if (merged.send_at && merged.expires_at && *merged.send_at > *merged.expires_at) {
    errors->push_back({FieldLoc(merged, loc_prefix, "send_at"),
                       "Value error, send_at is after expires_at: the message would expire "
                       "before it may be sent",
                       "value_error"});
  }
  return merged;
}

json EffectiveControls::ToJson() const {
  return {{"ordering_key", ordering_key ? json(*ordering_key) : json(nullptr)},
          {"priority", PriorityName(priority)},
          {"send_at", send_at ? json(FormatRfc3339(*send_at)) : json(nullptr)},
          {"expires_at", FormatRfc3339(expires_at)},
          {"send_window", send_window ? SendWindowJson(*send_window) : json(nullptr)}};
}

std::string SenderOf(const json& request) {
  for (const char* name : {"number_id", "from_number", "agent_id"}) {
    if (std::optional<std::string> v = StringMember(request, name)) return *v;
  }
  return "";
}

std::string ConversationKey(const json& request) {
  std::string recipient;
  if (std::optional<std::string> to = StringMember(request, "to_number")) {
    recipient = *to;
  } else if (auto it = request.find("recipients"); it != request.end() && it->is_array()) {
    std::vector<std::string> all;
    for (const json& r : *it) {
      if (r.is_string()) all.push_back(r.get<std::string>());
    }
    std::sort(all.begin(), all.end());
    for (const std::string& r : all) recipient += (recipient.empty() ? "" : ",") + r;
  }
  return SenderOf(request) + "|" + recipient;
}

std::vector<std::string> RecipientNumbers(const json& request) {
  std::vector<std::string> out;
  if (std::optional<std::string> to = StringMember(request, "to_number")) {
    out.push_back(*to);
  } else if (auto it = request.find("recipients"); it != request.end() && it->is_array()) {
    for (const json& r : *it) {
      if (r.is_string()) out.push_back(r.get<std::string>());
    }
  }
  out.erase(std::remove_if(out.begin(), out.end(),
                           [](const std::string& r) { return r.empty() || r[0] != '+'; }),
            out.end());
  return out;
}

EffectiveControls ResolveControls(const QueueControls& given, const json& request,
                                  TimeMs created_at, const ControlDefaults& defaults,
                                  const json& loc_prefix, std::vector<FieldError>* errors) {
  EffectiveControls out;
  out.sender = SenderOf(request);
  if (given.ordering_key_given) {
    out.ordering_key = given.ordering_key;
  } else if (defaults.order_conversations) {
    out.ordering_key = ConversationKey(request);
  }
  out.priority = given.priority.value_or(Priority::kNormal);
  out.send_at = given.send_at;
  out.first_due = std::max(created_at, given.send_at.value_or(created_at));
  if (given.expires_at) {
    out.expires_at = *given.expires_at;
  } else if (given.ttl) {
    out.expires_at = created_at + *given.ttl;
  } else {
    // The queue's validity counts from when the message is first due: one scheduled for next
    // month gets --max-age to be delivered once its time comes.
    out.expires_at = out.first_due + defaults.max_age;
  }
  if (out.first_due > out.expires_at) {
    errors->push_back({FieldLoc(given, loc_prefix, given.ttl ? "ttl" : "send_at"),
                       "Value error, the message would expire before send_at", "value_error"});
    return out;
  }
  const std::optional<SendWindow>& window =
      given.send_window ? given.send_window : defaults.send_window;
  if (!window) return out;
  const std::vector<std::string> zones = WindowZones(*window, RecipientNumbers(request));
  if (zones.empty()) {
    // A default window applies where it can; one the producer asked for must.
    if (given.send_window) {
      errors->push_back({FieldLoc(given, loc_prefix, "send_window"),
                         "Value error, the recipient's time zone is not known (not a phone "
                         "number, or its country has no zone); give send_window.tz",
                         "value_error"});
    }
    return out;
  }
  std::optional<TimeMs> opens = WindowOpenAt(*window, zones, out.first_due);
  if (!opens) {
    errors->push_back({FieldLoc(given, loc_prefix, "send_window"),
                       "Value error, the window is never open in all of the recipient's time "
                       "zones at once; give send_window.tz or a wider window",
                       "value_error"});
    return out;
  }
  out.send_window = window;
  out.window_zones = zones;
  out.first_due = *opens;
  if (out.first_due >= out.expires_at) {
    errors->push_back({FieldLoc(given, loc_prefix, "send_window"),
                       "Value error, the message would expire before its send window opens",
                       "value_error"});
  }
  return out;
}

std::array<Priority, kPriorityCount> PriorityShare::Order() const {
  if (UntilBulkOwed() <= 0) return {Priority::kBulk, Priority::kHigh, Priority::kNormal};
  return {Priority::kHigh, Priority::kNormal, Priority::kBulk};
}

void PriorityShare::Took(Priority priority) {
  since_bulk_ = priority == Priority::kBulk ? 0 : std::min(since_bulk_ + 1, kBulkShareEvery - 1);
}

}  // namespace sendq
