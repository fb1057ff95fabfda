#include "queue/validation.h"

#include <fmt/format.h>

#include <array>
#include <utility>

#include "queue/phone.h"
#include "queue/raw_json.h"

namespace sendq {
namespace {

using nlohmann::json;

constexpr std::array<const char*, 12> kSendStyles = {
    "celebration", "fireworks", "lasers",    "love",   "confetti", "balloons",
    "spotlight",   "echo",      "invisible", "gentle", "loud",     "slam",
};

// The fields of AgentPhone's SendMessageRequest. Anything else is passed through untouched.
constexpr std::array<const char*, 10> kKnownFields = {
    "agent_id",   "to_number", "recipients",  "body",       "media_url",
    "media_urls", "number_id", "from_number", "send_style", "reply_to_message_id",
};

constexpr size_t kMinRecipients = 2;

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Whitespace and control characters never belong in an address or a URL; non-ASCII bytes
// (UTF-8 sequences) are left alone.
bool IsSpaceOrControl(char c) {
  unsigned char u = static_cast<unsigned char>(c);
  return u <= 0x20 || u == 0x7f;
}

bool AllDigits(std::string_view s) {
  for (char c : s) {
    if (!IsDigit(c)) return false;
  }
  return true;
}

char ToLowerAscii(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool StartsWithIgnoreCase(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    if (ToLowerAscii(s[i]) != ToLowerAscii(prefix[i])) return false;
  }
  return true;
}

// Deepest nesting of arrays and objects in `text`, counted without parsing so that it cannot
// recurse. Stops counting once `limit` is exceeded. Brackets inside strings do not count.
int ScanDepth(std::string_view text, int limit) {
  int depth = 0;
  int max_depth = 0;
  bool in_string = false;
  bool escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      ++depth;
      if (depth > max_depth) max_depth = depth;
      if (max_depth > limit) return max_depth;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return max_depth;
}

// The same measure for an already-parsed value, walked with an explicit stack: callers such as
// the batch endpoint parse a larger document themselves, and a stored request that is nested
// too deeply would later be serialised recursively.
bool DeeperThan(const json& value, int limit) {
  struct Frame {
    const json* value;
    int depth;
  };
  std::vector<Frame> stack;
  stack.push_back({&value, 1});
  while (!stack.empty()) {
    Frame frame = stack.back();
    stack.pop_back();
    if (!frame.value->is_structured()) continue;
    if (frame.depth > limit) return true;
    for (const auto& child : *frame.value) {
      if (child.is_structured()) stack.push_back({&child, frame.depth + 1});
    }
  }
  return false;
}

// Accumulates errors, each located under the caller's prefix.
class ErrorList {
 public:
  explicit ErrorList(json prefix) : prefix_(std::move(prefix)) {}

  void Add(std::initializer_list<json> path, std::string msg, std::string type) {
    json loc = prefix_;
    for (const auto& part : path) loc.push_back(part);
    errors_.push_back(FieldError{std::move(loc), std::move(msg), std::move(type)});
  }

  bool empty() const { return errors_.empty(); }
  std::vector<FieldError> Take() { return std::move(errors_); }

 private:
  json prefix_;
  std::vector<FieldError> errors_;
};

// The prefix as an array, whatever shape the caller passed.
json NormalisePrefix(const json& loc_prefix) {
  if (loc_prefix.is_array()) return loc_prefix;
  if (loc_prefix.is_null()) return json::array({"body"});
  return json::array({loc_prefix});
}

// A known field's value, or nullptr when it is absent or JSON null (both mean "omitted").
const json* Field(const json& body, const char* name) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) return nullptr;
  return &*it;
}

// Checks that an optional field is a string; returns it, or nullptr when absent or wrong.
const std::string* OptionalString(const json& body, const char* name, ErrorList& errors) {
  const json* value = Field(body, name);
  if (value == nullptr) return nullptr;
  if (!value->is_string()) {
    errors.Add({name}, "Input should be a valid string", "string_type");
    return nullptr;
  }
  return value->get_ptr<const std::string*>();
}

std::string SendStyleChoices() {
  std::string out;
  for (size_t i = 0; i < kSendStyles.size(); ++i) {
    if (i > 0) out += (i + 1 == kSendStyles.size()) ? " or " : ", ";
    out += fmt::format("'{}'", kSendStyles[i]);
  }
  return out;
}

bool IsSendStyle(const std::string& s) {
  for (const char* style : kSendStyles) {
    if (s == style) return true;
  }
  return false;
}

void CheckIdentifiers(const json& body, ErrorList& errors) {
  bool any_given = false;
  for (const char* name : {"agent_id", "number_id", "from_number"}) {
    if (Field(body, name) != nullptr) any_given = true;
    const std::string* value = OptionalString(body, name, errors);
    if (value != nullptr && value->empty()) {
      errors.Add({name}, fmt::format("Value error, {} must not be empty", name), "value_error");
    }
  }
  if (!any_given) {
    errors.Add({"agent_id"}, "One of agent_id, number_id or from_number is required", "missing");
  }
}

// The reserved member holding queue controls: validated elsewhere, never forwarded.
constexpr const char* kControlsMember = "sendq";

// The recipients as they are stored and sent: phone numbers in E.164, as AgentPhone normalises
// them; short codes, emails and group ids as they are.
struct Recipients {
  std::optional<std::string> to_number;
  std::optional<std::vector<std::string>> recipients;
};

Recipients CheckRecipients(const json& body, const ValidationOptions& options, ErrorList& errors) {
  Recipients out;
  const json* to_number = Field(body, "to_number");
  const json* recipients = Field(body, "recipients");
  if (to_number == nullptr && recipients == nullptr) {
    errors.Add({"to_number"}, "Value error, provide to_number, or recipients to start a new group",
               "value_error");
  } else if (to_number != nullptr && recipients != nullptr) {
    errors.Add({"to_number"}, "Value error, provide either to_number or recipients, not both",
               "value_error");
  }

  if (to_number != nullptr) {
    if (!to_number->is_string()) {
      errors.Add({"to_number"}, "Input should be a valid string", "string_type");
    } else {
      const auto& s = to_number->get_ref<const std::string&>();
      if (IsShortCode(s) || IsEmail(s) || IsGroupId(s)) {
        out.to_number = s;
      } else {
        out.to_number = NormalisePhone(s, options.default_region);
        if (!out.to_number) {
          errors.Add({"to_number"},
                     "Value error, to_number must be a phone number (+14155552671, or national "
                     "in the default region), a 5 or 6 digit short code, an email address or a "
                     "group id (grp_...)",
                     "value_error");
        }
      }
    }
  }

  if (recipients != nullptr) {
    if (!recipients->is_array()) {
      errors.Add({"recipients"}, "Input should be a valid list", "list_type");
      return out;
    }
    if (recipients->size() > kMaxRecipients) {
      errors.Add({"recipients"},
                 fmt::format("List should have at most {} items after validation, not {}: a "
                             "group message goes to at most {} recipients",
                             kMaxRecipients, recipients->size(), kMaxRecipients),
                 "too_long");
      return out;
    }
    out.recipients.emplace();
    for (size_t i = 0; i < recipients->size(); ++i) {
      const json& item = (*recipients)[i];
      if (!item.is_string()) {
        errors.Add({"recipients", i}, "Input should be a valid string", "string_type");
        continue;
      }
      const auto& s = item.get_ref<const std::string&>();
      std::optional<std::string> normalised =
          IsEmail(s) ? std::optional<std::string>(s) : NormalisePhone(s, options.default_region);
      if (!normalised) {
        errors.Add({"recipients", i},
                   "Value error, each recipient must be a phone number or an email address",
                   "value_error");
        continue;
      }
      out.recipients->push_back(std::move(*normalised));
    }
    if (recipients->size() < kMinRecipients) {
      errors.Add({"recipients"},
                 fmt::format("List should have at least {} items after validation, not {}",
                             kMinRecipients, recipients->size()),
                 "too_short");
    }
  }
  return out;
}

std::string TooManyMediaUrls(size_t count) {
  return fmt::format("List should have at most {} items after validation, not {}", kMaxMediaUrls,
                     count);
}

struct Media {
  // media_url first, then media_urls without any repeat of it.
  std::vector<std::string> folded;
  // How many URLs the message carries, for the checks on body: folded.size(), or at least
  // kMaxMediaUrls + 1 when media_urls was too long to look at.
  size_t count = 0;
};

// Validates media_url and media_urls and folds them into one list.
Media CheckMedia(const json& body, ErrorList& errors) {
  Media media;
  std::vector<std::string>& folded = media.folded;
  const std::string* single = OptionalString(body, "media_url", errors);
  if (single != nullptr) {
    if (!IsHttpsUrlWithHost(*single)) {
      errors.Add({"media_url"}, "Value error, media_url must be an absolute https:// URL",
                 "value_error");
    }
    folded.push_back(*single);
  }

  const json* list = Field(body, "media_urls");
  if (list != nullptr) {
    if (!list->is_array()) {
      errors.Add({"media_urls"}, "Input should be a valid list", "list_type");
    } else if (list->size() > kMaxMediaUrls) {
      // Too long whatever folding would drop: one error rather than one per item.
      errors.Add({"media_urls"}, TooManyMediaUrls(list->size()), "too_long");
      media.count = folded.size() + list->size();
      return media;
    } else {
      for (size_t i = 0; i < list->size(); ++i) {
        const json& item = (*list)[i];
        if (!item.is_string()) {
          errors.Add({"media_urls", i}, "Input should be a valid string", "string_type");
          continue;
        }
        const auto& url = item.get_ref<const std::string&>();
        if (!IsHttpsUrlWithHost(url)) {
          errors.Add({"media_urls", i},
                     "Value error, each media URL must be an absolute https:// URL", "value_error");
        }
        if (single == nullptr || url != *single) folded.push_back(url);
      }
    }
  }

  if (folded.size() > kMaxMediaUrls) {
    errors.Add({"media_urls"}, TooManyMediaUrls(folded.size()), "too_long");
  }
  media.count = folded.size();
  return media;
}

void CheckBody(const json& body, size_t media_count, ErrorList& errors) {
  const json* text = Field(body, "body");
  if (text != nullptr && !text->is_string()) {
    errors.Add({"body"}, "Input should be a valid string", "string_type");
    return;
  }
  bool has_text = text != nullptr && !text->get_ref<const std::string&>().empty();
  if (!has_text && media_count == 0) {
    errors.Add({"body"}, "Field required: give a body, media_urls, or both", "missing");
  }
  if (has_text && media_count >= 2) {
    errors.Add({"body"},
               "Value error, body must be omitted or empty when media_urls holds 2 or more URLs "
               "(a carousel cannot carry text)",
               "value_error");
  }
}

void CheckSendStyle(const json& body, ErrorList& errors) {
  const json* style = Field(body, "send_style");
  if (style == nullptr) return;
  if (!style->is_string() || !IsSendStyle(style->get_ref<const std::string&>())) {
    errors.Add({"send_style"}, "Input should be " + SendStyleChoices(), "enum");
  }
}

void CheckReplyTo(const json& body, ErrorList& errors) {
  const std::string* reply_to = OptionalString(body, "reply_to_message_id", errors);
  if (reply_to != nullptr && reply_to->empty()) {
    errors.Add({"reply_to_message_id"}, "Value error, reply_to_message_id must not be empty",
               "value_error");
  }
}

// The request as it will be stored and sent: known fields that are null dropped, media_url
// folded into media_urls, everything else as given.
json Normalise(const json& body, std::vector<std::string> media, Recipients recipients) {
  json out = json::object();
  for (auto it = body.begin(); it != body.end(); ++it) {
    if (it.key() == kControlsMember) continue;
    bool known = false;
    for (const char* name : kKnownFields) {
      if (it.key() == name) known = true;
    }
    if (known && it.value().is_null()) continue;
    if (it.key() == "media_url" || it.key() == "media_urls") continue;
    out[it.key()] = it.value();
  }
  if (!media.empty() || Field(body, "media_urls") != nullptr) out["media_urls"] = std::move(media);
  if (recipients.to_number) out["to_number"] = std::move(*recipients.to_number);
  if (recipients.recipients) out["recipients"] = std::move(*recipients.recipients);
  // AgentPhone's schema marks body as required; a media-only message carries an empty one.
  if (!out.contains("body")) out["body"] = "";
  return out;
}

}  // namespace

bool IsE164(std::string_view s) {
  if (s.size() < 3 || s.size() > 16 || s[0] != '+') return false;
  if (s[1] < '1' || s[1] > '9') return false;
  return AllDigits(s.substr(1));
}

bool IsShortCode(std::string_view s) { return (s.size() == 5 || s.size() == 6) && AllDigits(s); }

bool IsEmail(std::string_view s) {
  size_t at = s.find('@');
  if (at == std::string_view::npos || at == 0) return false;
  if (s.find('@', at + 1) != std::string_view::npos) return false;
  for (char c : s) {
    if (IsSpaceOrControl(c)) return false;
  }
  std::string_view domain = s.substr(at + 1);
  size_t dot = domain.find('.');
  return dot != std::string_view::npos && dot != 0 && domain.back() != '.';
}

bool IsGroupId(std::string_view s) {
  constexpr std::string_view kPrefix = "grp_";
  if (s.size() <= kPrefix.size() || s.substr(0, kPrefix.size()) != kPrefix) return false;
  for (char c : s.substr(kPrefix.size())) {
    bool ok =
        (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || IsDigit(c) || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

bool IsHttpsUrlWithHost(std::string_view s) {
  constexpr std::string_view kScheme = "https://";
  if (!StartsWithIgnoreCase(s, kScheme)) return false;
  for (char c : s) {
    if (IsSpaceOrControl(c)) return false;
  }
  std::string_view authority = s.substr(kScheme.size());
  size_t end = authority.find_first_of("/?#");
  if (end != std::string_view::npos) authority = authority.substr(0, end);
  size_t at = authority.rfind('@');
  if (at != std::string_view::npos) authority = authority.substr(at + 1);

  std::string_view host;
  std::string_view rest;
  if (!authority.empty() && authority[0] == '[') {  // IPv6 literal: [::1]:443
    size_t close = authority.find(']');
    if (close == std::string_view::npos) return false;
    host = authority.substr(1, close - 1);
    rest = authority.substr(close + 1);
    if (!rest.empty() && rest[0] != ':') return false;
  } else {
    size_t colon = authority.find(':');
    host = authority.substr(0, colon);
    rest = colon == std::string_view::npos ? std::string_view() : authority.substr(colon);
  }
  if (host.empty()) return false;
  if (!rest.empty()) {  // ":port"
    std::string_view port = rest.substr(1);
    if (port.empty() || !AllDigits(port)) return false;
  }
  return true;
}

std::optional<FieldError> ParseJsonBody(std::string_view text, nlohmann::json* out) {
  if (ScanDepth(text, kMaxJsonDepth) > kMaxJsonDepth) {
    return FieldError{
        json::array({"body"}),
        fmt::format("JSON decode error: nested too deeply (more than {} levels)", kMaxJsonDepth),
        "json_invalid"};
  }
  // Without exceptions: a parse error (including invalid UTF-8) yields a discarded value. The
  // parser takes a NUL byte for the end of the input and ignores whatever follows it, so
  // "{...}\0garbage" would pass; JSON text never holds a raw NUL (inside strings it must be
  // escaped), so one makes the body invalid.
  json body = json::value_t::discarded;
  if (text.find('\0') == std::string_view::npos) {
    try {
      body = json::parse(text.begin(), text.end(), /*cb=*/nullptr, /*allow_exceptions=*/false);
    } catch (const json::exception&) {
      body = json::value_t::discarded;
    }
  }
  if (body.is_discarded()) {
    return FieldError{json::array({"body"}),
                      "JSON decode error: the body is not valid JSON (UTF-8)", "json_invalid"};
  }
  *out = std::move(body);
  return std::nullopt;
}

ValidatedRequest ParseAndValidateSendRequest(std::string_view text,
                                             const ValidationOptions& options) {
  json body;
  if (std::optional<FieldError> error = ParseJsonBody(text, &body)) {
    ValidatedRequest result;
    result.errors.push_back(std::move(*error));
    return result;
  }
  ValidatedRequest result = ValidateSendRequest(body, {"body"}, options);
  if (result.ok()) result.forwarded = ForwardedRequest(text, result.request);
  return result;
}

ValidatedRequest ValidateSendRequest(const nlohmann::json& body, const nlohmann::json& loc_prefix,
                                     const ValidationOptions& options) {
  ValidatedRequest result;
  ErrorList errors(NormalisePrefix(loc_prefix));
  if (!body.is_object()) {
    errors.Add({}, "Input should be a valid dictionary or object to extract fields from",
               "model_attributes_type");
    result.errors = errors.Take();
    return result;
  }
  if (DeeperThan(body, kMaxJsonDepth)) {
    errors.Add({}, fmt::format("JSON nested too deeply (more than {} levels)", kMaxJsonDepth),
               "json_invalid");
    result.errors = errors.Take();
    return result;
  }

  if (auto controls = body.find(kControlsMember); controls != body.end()) {
    result.controls_member = *controls;
  }
  CheckIdentifiers(body, errors);
  Recipients recipients = CheckRecipients(body, options, errors);
  Media media = CheckMedia(body, errors);
  CheckBody(body, media.count, errors);
  CheckSendStyle(body, errors);
  CheckReplyTo(body, errors);

  if (!errors.empty()) {
    result.errors = errors.Take();
    return result;
  }
  result.request = Normalise(body, std::move(media.folded), std::move(recipients));
  result.forwarded = result.request.dump();
  return result;
}

nlohmann::json ValidationErrorBody(const std::vector<FieldError>& errors) {
  json detail = json::array();
  for (const auto& error : errors) {
    detail.push_back({{"loc", error.loc}, {"msg", error.msg}, {"type", error.type}});
  }
  return {{"detail", std::move(detail)}};
}

std::vector<FieldError> ValidateReaction(const nlohmann::json& body, std::string* reaction,
                                         const nlohmann::json& loc_prefix) {
  auto at = [&](const char* field) {
    nlohmann::json loc = loc_prefix;
    if (field != nullptr) loc.push_back(field);
    return loc;
  };
  if (!body.is_object())
    return {FieldError{at(nullptr), "Input should be a valid dictionary", "dict_type"}};
  auto it = body.find("reaction");
  if (it == body.end() || it->is_null())
    return {FieldError{at("reaction"), "Field required", "missing"}};
  if (!it->is_string()) {
    return {FieldError{at("reaction"), "Input should be a valid string", "string_type"}};
  }
  const std::string value = it->get<std::string>();
  for (const char* tapback : kTapbacks) {
    if (value == tapback) {
      *reaction = value;
      return {};
    }
  }
  // One custom emoji: no ASCII at all, and few code points (a ZWJ sequence has several).
  size_t code_points = 0;
  bool ascii = false;
  for (unsigned char c : value) {
    if (c < 0x80) ascii = true;
    if ((c & 0xC0) != 0x80) ++code_points;
  }
  if (value.empty() || ascii || code_points > 10) {
    return {FieldError{at("reaction"),
                       "Value error, a reaction is one of love, like, dislike, laugh, emphasize, "
                       "question, or a single custom emoji",
                       "value_error"}};
  }
  *reaction = value;
  return {};
}

}  // namespace sendq
