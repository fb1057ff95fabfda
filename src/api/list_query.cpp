#include "api/list_query.h"

#include <fmt/format.h>

#include <algorithm>
#include <iterator>
#include <string_view>

#include "queue/phone.h"
#include "util/ids.h"
#include "util/time_format.h"

namespace sendq {
namespace {

constexpr std::string_view kCursorVersion = "v1:";
constexpr char kBase64UrlAlphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

// The latest instant RFC 3339 can spell (9999-12-31T23:59:59.999Z). Bounding integer times to
// the same range keeps them inside what message ids can encode (48 bits of milliseconds).
constexpr TimeMs kMaxTimeMs = 253'402'300'799'999;

int Base64UrlValue(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '-') return 62;
  if (c == '_') return 63;
  return -1;
}

std::string Base64UrlEncode(std::string_view data) {
  std::string out;
  out.reserve((data.size() * 4 + 2) / 3);
  size_t i = 0;
  for (; i + 3 <= data.size(); i += 3) {
    uint32_t n = (static_cast<uint8_t>(data[i]) << 16) | (static_cast<uint8_t>(data[i + 1]) << 8) |
                 static_cast<uint8_t>(data[i + 2]);
    out += kBase64UrlAlphabet[(n >> 18) & 63];
    out += kBase64UrlAlphabet[(n >> 12) & 63];
    out += kBase64UrlAlphabet[(n >> 6) & 63];
    out += kBase64UrlAlphabet[n & 63];
  }
  size_t rest = data.size() - i;
  if (rest == 1) {
    uint32_t n = static_cast<uint8_t>(data[i]) << 16;
    out += kBase64UrlAlphabet[(n >> 18) & 63];
    out += kBase64UrlAlphabet[(n >> 12) & 63];
  } else if (rest == 2) {
    uint32_t n = (static_cast<uint8_t>(data[i]) << 16) | (static_cast<uint8_t>(data[i + 1]) << 8);
    out += kBase64UrlAlphabet[(n >> 18) & 63];
    out += kBase64UrlAlphabet[(n >> 12) & 63];
    out += kBase64UrlAlphabet[(n >> 6) & 63];
  }
  return out;
}

// Strict: no padding, no foreign characters, and unused trailing bits must be zero, so that
// each id has exactly one cursor spelling.
std::optional<std::string> Base64UrlDecode(std::string_view text) {
  if (text.size() % 4 == 1) return std::nullopt;
  std::string out;
  out.reserve(text.size() * 3 / 4);
  uint32_t buffer = 0;
  int bits = 0;
  for (char c : text) {
    int value = Base64UrlValue(c);
    if (value < 0) return std::nullopt;
    buffer = (buffer << 6) | static_cast<uint32_t>(value);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((buffer >> bits) & 0xff);
    }
  }
  if ((buffer & ((1u << bits) - 1)) != 0) return std::nullopt;
  return out;
}

bool AllDigits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

class QueryParser {
 public:
  explicit QueryParser(const std::multimap<std::string, std::string>& params) : params_(params) {}

  // The value given for `name`, or nullptr when it is absent. An empty value, or one given
  // more than once, is reported here and also yields nullptr.
  const std::string* Value(const char* name) {
    auto [begin, end] = params_.equal_range(name);
    if (begin == end) return nullptr;
    if (std::next(begin) != end) {
      Error(name, "Value error, give this parameter once (only status may repeat)", "value_error");
      return nullptr;
    }
    const std::string& value = begin->second;
    if (value.empty()) {
      Error(name, "Value error, must not be empty", "value_error");
      return nullptr;
    }
    return &value;
  }

  void Error(const char* name, std::string msg, std::string type) {
    errors_.push_back(
        FieldError{nlohmann::json::array({"query", name}), std::move(msg), std::move(type)});
  }

  std::optional<std::string> String(const char* name) {
    const std::string* value = Value(name);
    if (value == nullptr) return std::nullopt;
    return *value;
  }

  std::optional<TimeMs> Time(const char* name) {
    const std::string* value = Value(name);
    if (value == nullptr) return std::nullopt;
    std::optional<TimeMs> t;
    if (AllDigits(*value)) {
      // Digits only: milliseconds since the epoch. Anything longer than the bound overflows it.
      if (value->size() <= 15) t = std::stoll(*value);
    } else {
      t = ParseRfc3339(*value);
    }
    if (!t || *t < 0 || *t > kMaxTimeMs) {
      Error(name,
            "Input should be a valid datetime: RFC 3339 (2026-01-31T09:30:00Z) or milliseconds "
            "since the Unix epoch, between 1970 and 9999",
            "datetime_parsing");
      return std::nullopt;
    }
    return t;
  }

  std::vector<FieldError> TakeErrors() { return std::move(errors_); }

 private:
  const std::multimap<std::string, std::string>& params_;
  std::vector<FieldError> errors_;
};

// Parses an integer the way pydantic's lax mode reads a query string: an optional sign and
// digits. Values too large for an int saturate, since they only ever fail a bound.
std::optional<int64_t> ParseInteger(std::string_view s) {
  bool negative = false;
  if (!s.empty() && (s[0] == '+' || s[0] == '-')) {
    negative = s[0] == '-';
    s.remove_prefix(1);
  }
  if (!AllDigits(s)) return std::nullopt;
  constexpr int64_t kSaturate = int64_t{1} << 40;
  int64_t n = 0;
  for (char c : s) {
    n = n * 10 + (c - '0');
    if (n > kSaturate) {
      n = kSaturate;
      break;
    }
  }
  return negative ? -n : n;
}

}  // namespace

ParsedListQuery ParseListQuery(const std::multimap<std::string, std::string>& params,
                               const std::string& default_region) {
  ParsedListQuery result;
  ListFilter& filter = result.filter;
  QueryParser parser(params);

  // status may repeat: any of the statuses given.
  auto [status_begin, status_end] = params.equal_range("status");
  for (auto it = status_begin; it != status_end; ++it) {
    std::optional<MessageStatus> status = ParseStatus(it->second);
    if (it->second.empty()) {
      parser.Error("status", "Value error, must not be empty", "value_error");
    } else if (!status) {
      parser.Error("status", "Input should be 'queued', 'sending', 'sent', 'failed' or 'canceled'",
                   "enum");
    } else if (std::find(filter.statuses.begin(), filter.statuses.end(), *status) ==
               filter.statuses.end()) {
      filter.statuses.push_back(*status);
    }
  }

  filter.agent_id = parser.String("agent_id");
  if (std::optional<std::string> to = parser.String("to_number")) {
    // A "+" sent without URL-encoding arrives as a space.
    if (to->front() == ' ') to->front() = '+';
    std::optional<std::string> e164 = NormalisePhone(*to, default_region);
    filter.to_number = e164 ? *e164 : *to;
  }
  filter.ordering_key = parser.String("ordering_key");
  if (const std::string* priority = parser.Value("priority")) {
    filter.priority = ParsePriority(*priority);
    if (!filter.priority)
      parser.Error("priority", "Input should be 'high', 'normal' or 'bulk'", "enum");
  }
  if (const std::string* scheduled = parser.Value("scheduled")) {
    if (*scheduled == "true") {
      filter.scheduled = true;
    } else if (*scheduled == "false") {
      filter.scheduled = false;
    } else {
      parser.Error("scheduled", "Input should be a valid boolean: true or false", "bool_parsing");
    }
  }
  filter.provider_message_id = parser.String("provider_message_id");

  filter.created_after = parser.Time("created_after");
  filter.created_before = parser.Time("created_before");
  if (filter.created_after && filter.created_before &&
      *filter.created_after >= *filter.created_before) {
    parser.Error("created_before",
                 "Value error, created_before must be later than created_after (the range is "
                 "created_after inclusive to created_before exclusive)",
                 "value_error");
  }

  filter.limit = kDefaultListLimit;
  if (const std::string* limit = parser.Value("limit")) {
    std::optional<int64_t> n = ParseInteger(*limit);
    if (!n) {
      parser.Error("limit", "Input should be a valid integer, unable to parse string as an integer",
                   "int_parsing");
    } else if (*n < 1) {
      parser.Error("limit", "Input should be greater than or equal to 1", "greater_than_equal");
    } else if (*n > kMaxListLimit) {
      parser.Error("limit", fmt::format("Input should be less than or equal to {}", kMaxListLimit),
                   "less_than_equal");
    } else {
      filter.limit = static_cast<int>(*n);
    }
  }

  if (const std::string* cursor = parser.Value("cursor")) {
    filter.before_id = DecodeCursor(*cursor);
    if (!filter.before_id) {
      parser.Error("cursor",
                   "Value error, not a cursor from this service: pass next_cursor from a "
                   "previous page unchanged",
                   "value_error");
    }
  }

  result.errors = parser.TakeErrors();
  return result;
}

std::string EncodeOpaque(std::string_view text) { return Base64UrlEncode(std::string(text)); }

std::optional<std::string> DecodeOpaque(std::string_view text) { return Base64UrlDecode(text); }

std::string EncodeCursor(const std::string& last_id) {
  return Base64UrlEncode(std::string(kCursorVersion) + last_id);
}

std::optional<std::string> DecodeCursor(const std::string& cursor) {
  // A real cursor is 40 characters; anything much longer is not worth decoding.
  if (cursor.size() > 256) return std::nullopt;
  std::optional<std::string> decoded = Base64UrlDecode(cursor);
  if (!decoded || decoded->compare(0, kCursorVersion.size(), kCursorVersion) != 0) {
    return std::nullopt;
  }
  std::string id = decoded->substr(kCursorVersion.size());
  if (!IsMessageId(id)) return std::nullopt;
  return id;
}

}  // namespace sendq
