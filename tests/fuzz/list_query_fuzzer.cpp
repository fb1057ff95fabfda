// Fuzz target for the query string of GET /v1/messages.
//
// The input is read as a decoded query string: '&' separates parameters and the first '='
// separates a name from its value (a parameter without '=' has an empty value), which is what
// the HTTP layer hands ParseListQuery. The whole input is also tried as a cursor. Besides "no
// crash, no exception, no sanitizer report", it checks:
//   - an accepted query is within bounds: limit 1 to kMaxListLimit, an ordered time range
//     whose ends format and parse back to themselves, a cursor id that is a message id;
//   - errors are located at ["query", <known name>], at most one or two per parameter;
//   - a cursor decodes only from its one canonical spelling, and every message id survives
//     EncodeCursor and DecodeCursor;
//   - every 422 body serialises.
// A failed property aborts, so libFuzzer reports it with the input that caused it. Exceptions
// are not caught: the functions under test promise not to throw, and an uncaught exception
// ends the run at the throw site.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "api/list_query.h"
#include "util/ids.h"
#include "util/time_format.h"

namespace {

using nlohmann::json;

constexpr const char* kParameters[] = {
    "status",        "agent_id",       "to_number", "provider_message_id",
    "created_after", "created_before", "limit",     "cursor",
};

void Require(bool condition, const char* what) {
  if (condition) return;
  std::fprintf(stderr, "list_query_fuzzer: property violated: %s\n", what);
  std::abort();
}

std::multimap<std::string, std::string> SplitQuery(std::string_view text) {
  std::multimap<std::string, std::string> params;
  while (true) {
    size_t amp = text.find('&');
    std::string_view pair = text.substr(0, amp);
    size_t eq = pair.find('=');
    if (eq == std::string_view::npos) {
      params.emplace(std::string(pair), std::string());
    } else {
      params.emplace(std::string(pair.substr(0, eq)), std::string(pair.substr(eq + 1)));
    }
    if (amp == std::string_view::npos) break;
    text.remove_prefix(amp + 1);
  }
  return params;
}

bool IsKnownParameter(const json& name) {
  for (const char* known : kParameters) {
    if (name == known) return true;
  }
  return false;
}

// The value ParseListQuery reads for `name`: the last one given.
const std::string* LastValue(const std::multimap<std::string, std::string>& params,
                             const char* name) {
  auto [begin, end] = params.equal_range(name);
  if (begin == end) return nullptr;
  return &std::prev(end)->second;
}

void CheckTime(const std::optional<sendq::TimeMs>& t) {
  if (!t) return;
  Require(*t >= 0, "times are not before 1970");
  Require(sendq::ParseRfc3339(sendq::FormatRfc3339(*t)) == *t, "times round-trip RFC 3339");
}

void CheckCursor(const std::string& text) {
  std::optional<std::string> id = sendq::DecodeCursor(text);
  if (id) {
    Require(sendq::IsMessageId(*id), "a decoded cursor holds a message id");
    Require(sendq::EncodeCursor(*id) == text, "a cursor has one spelling");
  }
  std::optional<std::string> round_trip = sendq::DecodeCursor(sendq::EncodeCursor(text));
  if (sendq::IsMessageId(text)) {
    Require(round_trip == text, "every message id round-trips through a cursor");
  } else {
    Require(!round_trip, "only message ids make cursors");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  CheckCursor(text);

  const std::multimap<std::string, std::string> params = SplitQuery(text);
  sendq::ParsedListQuery parsed = sendq::ParseListQuery(params);
  Require(!sendq::ValidationErrorBody(parsed.errors).dump().empty(), "422 body dumps");
  // A range error needs both ends readable, so each parameter contributes at most one error.
  Require(parsed.errors.size() <= std::size(kParameters), "at most one error per parameter");
  for (const sendq::FieldError& error : parsed.errors) {
    Require(error.loc.is_array() && error.loc.size() == 2 && error.loc[0] == "query" &&
                IsKnownParameter(error.loc[1]),
            "errors are located at [\"query\", <parameter>]");
    Require(!error.msg.empty() && !error.type.empty(), "every error has a message and a type");
  }
  if (!parsed.ok()) return 0;

  const sendq::ListFilter& filter = parsed.filter;
  Require(filter.limit >= 1 && filter.limit <= sendq::kMaxListLimit, "limit is within bounds");
  CheckTime(filter.created_after);
  CheckTime(filter.created_before);
  if (filter.created_after && filter.created_before) {
    Require(*filter.created_after < *filter.created_before, "the time range is not empty");
  }
  if (filter.before_id) {
    Require(sendq::IsMessageId(*filter.before_id), "the cursor holds a message id");
    const std::string* cursor = LastValue(params, "cursor");
    Require(cursor != nullptr && sendq::EncodeCursor(*filter.before_id) == *cursor,
            "the cursor id comes from the last cursor given");
  }
  for (const char* name : {"agent_id", "to_number", "provider_message_id"}) {
    const std::string* value = LastValue(params, name);
    const std::optional<std::string>& got = std::string_view(name) == "agent_id" ? filter.agent_id
                                            : std::string_view(name) == "to_number"
                                                ? filter.to_number
                                                : filter.provider_message_id;
    Require(value == nullptr ? !got : got == *value, "string filters are taken as given");
  }
  return 0;
}
