// Reading members of untrusted JSON objects.
//
// Thread-safety: pure functions.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace sendq {

// The string member `key` of `j`; nullopt when `j` is not an object, lacks it, or it is not a
// string.
template <typename Json>
std::optional<std::string> StringMember(const Json& j, const char* key) {
  if (!j.is_object()) return std::nullopt;
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) return std::nullopt;
  return it->template get<std::string>();
}

}  // namespace sendq
