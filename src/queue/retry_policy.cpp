#include "queue/retry_policy.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <string_view>

#include "util/time_format.h"

namespace sendq {
namespace {

// A Retry-After further away than this is treated as this: a misbehaving or hostile upstream
// must not park a message for years, and the arithmetic must not overflow.
constexpr DurationMs kMaxRetryAfter = 24 * 3'600'000;

// How much of an unreadable error body goes into the message (the ledger keeps the raw body).
constexpr size_t kMaxBodyPrefixBytes = 200;

bool IsRetryAfterSpace(char c) { return c == ' ' || c == '\t'; }

std::string_view TrimRetryAfter(std::string_view s) {
  while (!s.empty() && IsRetryAfterSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsRetryAfterSpace(s.back())) s.remove_suffix(1);
  return s;
}

// The length of the well-formed UTF-8 sequence at the start of `s`, or 0 if the bytes there
// are not one (a stray continuation byte, an overlong form, a surrogate, a truncated tail).
size_t Utf8SequenceLength(std::string_view s) {
  auto byte = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
  auto is_cont = [&](size_t i) { return i < s.size() && (byte(i) & 0xC0) == 0x80; };
  unsigned char b0 = byte(0);
  if (b0 < 0x80) return 1;
  if (b0 >= 0xC2 && b0 <= 0xDF) return is_cont(1) ? 2 : 0;
  if (b0 >= 0xE0 && b0 <= 0xEF) {
    if (!is_cont(1) || !is_cont(2)) return 0;
    if (b0 == 0xE0 && byte(1) < 0xA0) return 0;   // overlong
    if (b0 == 0xED && byte(1) >= 0xA0) return 0;  // UTF-16 surrogate
    return 3;
  }
  if (b0 >= 0xF0 && b0 <= 0xF4) {
    if (!is_cont(1) || !is_cont(2) || !is_cont(3)) return 0;
    if (b0 == 0xF0 && byte(1) < 0x90) return 0;   // overlong
    if (b0 == 0xF4 && byte(1) >= 0x90) return 0;  // above U+10FFFF
    return 4;
  }
  return 0;
}

// At most `max_bytes` from the start of `body`, as valid single-line UTF-8: a character that
// would cross the limit is left out rather than cut, bytes that are not UTF-8 become U+FFFD,
// and control characters become spaces, because the result ends up in JSON and log lines.
std::string SafePrefix(std::string_view body, size_t max_bytes) {
  static constexpr std::string_view kReplacement = "\xEF\xBF\xBD";
  std::string out;
  size_t pos = 0;
  while (pos < body.size()) {
    std::string_view rest = body.substr(pos);
    size_t len = Utf8SequenceLength(rest);
    if (len == 0) {
      if (out.size() + kReplacement.size() > max_bytes) break;
      out.append(kReplacement);
      ++pos;
      continue;
    }
    if (out.size() + len > max_bytes) break;
    if (len == 1 && (static_cast<unsigned char>(rest[0]) < 0x20 || rest[0] == 0x7F)) {
      out.push_back(' ');
    } else {
      out.append(rest.substr(0, len));
    }
    pos += len;
  }
  size_t first = out.find_first_not_of(' ');
  if (first == std::string::npos) return "";
  size_t last = out.find_last_not_of(' ');
  return out.substr(first, last - first + 1);
}

// One FastAPI "loc" entry, joined with dots after the leading "body": ["body","recipients",0]
// becomes "recipients.0".
std::string JoinLoc(const nlohmann::json& loc) {
  std::string out;
  if (!loc.is_array()) return out;
  bool first = true;
  for (size_t i = 0; i < loc.size(); ++i) {
    const nlohmann::json& part = loc[i];
    std::string text;
    if (part.is_string()) {
      text = part.get_ref<const std::string&>();
      if (i == 0 && text == "body") continue;
    } else if (part.is_number_integer()) {
      text = std::to_string(part.get<int64_t>());
    } else if (part.is_number_unsigned()) {
      text = std::to_string(part.get<uint64_t>());
    } else {
      continue;
    }
    if (!first) out += '.';
    out += text;
    first = false;
  }
  return out;
}

// The message from a parsed body, or nullopt when it has none of AgentPhone's error shapes.
std::optional<std::string> MessageFromJson(const nlohmann::json& doc) {
  if (!doc.is_object()) return std::nullopt;

  // FastAPI: {"detail": "text"} or {"detail": [{"loc": [...], "msg": "..."}, ...]}.
  if (auto it = doc.find("detail"); it != doc.end()) {
    if (it->is_string() && !it->get_ref<const std::string&>().empty()) {
      return it->get<std::string>();
    }
    if (it->is_array()) {
      std::string out;
      for (const nlohmann::json& item : *it) {
        if (!item.is_object()) continue;
        auto msg = item.find("msg");
        if (msg == item.end() || !msg->is_string()) continue;
        std::string loc;
        if (auto l = item.find("loc"); l != item.end()) loc = JoinLoc(*l);
        if (!out.empty()) out += "; ";
        if (!loc.empty()) out += loc + ": ";
        out += msg->get_ref<const std::string&>();
      }
      if (!out.empty()) return out;
    }
  }

  // The documented envelope: {"error": {"message": "...", "code": "...", ...}}.
  if (auto it = doc.find("error"); it != doc.end() && it->is_object()) {
    auto message = it->find("message");
    if (message != it->end() && message->is_string() &&
        !message->get_ref<const std::string&>().empty()) {
      auto code = it->find("code");
      if (code != it->end() && code->is_string() && !code->get_ref<const std::string&>().empty()) {
        return code->get_ref<const std::string&>() + ": " + message->get_ref<const std::string&>();
      }
      return message->get<std::string>();
    }
  }
  return std::nullopt;
}

}  // namespace

OutcomeClass Classify(const UpstreamResponse& response) {
  switch (response.transport) {
    case UpstreamResponse::Transport::kNotSent:
      return OutcomeClass::kUnreachable;
    case UpstreamResponse::Transport::kNoResponse:
      return OutcomeClass::kUnknown;
    case UpstreamResponse::Transport::kResponded:
      break;
  }
  const int status = response.http_status;
  if (status >= 200 && status <= 299) return OutcomeClass::kSent;
  switch (status) {
    case 408:  // the upstream gave up waiting for the request; it did not act on it
    case 429:
    case 500:
    case 502:
    case 503:
    case 504:
      return OutcomeClass::kRetryable;
    case 401:
    case 402:
    case 403:
      return OutcomeClass::kUpstreamPaused;
    default:
      break;
  }
  // Any other 4xx is about the message itself: sending it again gets the same answer.
  if (status >= 400 && status <= 499) return OutcomeClass::kPermanent;
  // AgentPhone documents only 500/502/503/504, but any other 5xx (501, 505, ...) is still a
  // fault on the server's side, not the message's, so it is worth another try.
  if (status >= 500 && status <= 599) return OutcomeClass::kRetryable;
  // 1xx and 3xx are not answers AgentPhone gives to a send; repeating the same request would
  // get the same answer, so the message fails with the status recorded.
  if (status >= 100 && status <= 399) return OutcomeClass::kPermanent;
  // Not an HTTP status at all: something answered after the request went out, but nothing
  // says whether the message was accepted.
  return OutcomeClass::kUnknown;
}

DurationMs ComputeBackoff(const BackoffPolicy& policy, int retry, double unit_random) {
  const DurationMs max = std::max<DurationMs>(policy.max, 0);
  // A base above the cap is cut to the cap: `max` is the longest a message ever waits.
  const DurationMs low = std::clamp<DurationMs>(policy.base, 0, max);
  if (retry < 1) retry = 1;

  // high = min(max, base * 2^(retry-1)), doubling step by step so that no retry count can
  // overflow: the loop stops as soon as the cap is reached, and after 62 doublings at most.
  DurationMs high = low;
  for (int i = 1; i < retry && i < 63 && high < max; ++i) {
    high = high > max / 2 ? max : high * 2;
  }

  if (!(unit_random >= 0.0)) unit_random = 0.0;  // also catches NaN
  if (unit_random >= 1.0) unit_random = std::nextafter(1.0, 0.0);
  // Every whole millisecond in [low, high] is equally likely.
  const double span = static_cast<double>(high - low) + 1.0;
  // The product is below 2^63, so the conversion is defined; rounding of very wide spans can
  // still overshoot by a few units, hence the clamp before the addition.
  DurationMs offset = static_cast<DurationMs>(std::floor(unit_random * span));
  return low + std::min(offset, high - low);
}

std::optional<DurationMs> ParseRetryAfter(const std::string& value, TimeMs now) {
  std::string_view text = TrimRetryAfter(value);
  if (text.empty()) return std::nullopt;

  if (std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    // delta-seconds. Stop accumulating once past the cap, so any number of digits is safe.
    DurationMs seconds = 0;
    for (char c : text) {
      seconds = seconds * 10 + (c - '0');
      if (seconds * 1000 >= kMaxRetryAfter) return kMaxRetryAfter;
    }
    return seconds * 1000;
  }

  std::optional<TimeMs> date = ParseHttpDate(std::string(text));
  if (!date) return std::nullopt;
  if (*date <= now) return 0;
  // Both are well inside int64 for any date strptime accepts, but the cap keeps it sane.
  return std::min(*date - now, kMaxRetryAfter);
}

std::string ParseUpstreamErrorMessage(int http_status, const std::string& body) {
  if (body.empty()) return fmt::format("HTTP {}", http_status);

  // The parser does not throw with allow_exceptions = false, and MessageFromJson checks every
  // type before reading it; the catch is a last line of defence so that no upstream body can
  // turn into an exception in the delivery path.
  try {
    nlohmann::json doc = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
    if (!doc.is_discarded()) {
      if (std::optional<std::string> message = MessageFromJson(doc)) return *std::move(message);
    }
  } catch (const nlohmann::json::exception&) {
    // Fall through to the raw body.
  }

  std::string prefix = SafePrefix(body, kMaxBodyPrefixBytes);
  if (prefix.empty()) return fmt::format("HTTP {}", http_status);
  return fmt::format("HTTP {}: {}", http_status, prefix);
}

}  // namespace sendq
