// ASCII case folding for protocol text: header names, schemes, hosts, command names. Bytes
// outside A-Z are left as they are, whatever the locale.
//
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>

namespace sendq {

inline std::string AsciiLower(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

}  // namespace sendq
