// Percent-encoding (RFC 3986) of one URL path segment or query value.
//
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>

namespace sendq {

// Every byte but the unreserved ones (A-Z a-z 0-9 - _ . ~) as %XX.
std::string PercentEncode(std::string_view text);

// %XX escapes decoded; anything else, a malformed escape included, kept as it is.
std::string PercentDecode(std::string_view text);

}  // namespace sendq
