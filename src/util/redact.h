// Removing secrets from text that may echo them: an upstream's error page or a proxy's that
// quotes the request's headers, before it reaches logs, the database or API responses.
//
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace sendq {

// `text` with every occurrence of each non-empty secret in `secrets` replaced by "***", and
// every bearer credential ("Bearer", in any case, then spaces or tabs, then a token) replaced
// by "Bearer ***", whatever the token. A token runs up to the first character that cannot be
// part of one: whitespace, a control or non-ASCII byte, or one of "'\,;<>()[]{}` (so a token
// quoted in JSON or HTML ends at its quote); a secret of `secrets` right after "Bearer " is
// part of the token whatever its characters.
std::string RedactSecrets(std::string_view text, const std::vector<std::string>& secrets);

}  // namespace sendq
