#include "queue/raw_json.h"

#include <algorithm>
#include <set>

namespace sendq {
namespace {

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

size_t SkipSpace(std::string_view text, size_t pos) {
  while (pos < text.size() && IsSpace(text[pos])) ++pos;
  return pos;
}

// The end of the string token starting at `pos` (a '"'), one past its closing quote.
size_t SkipString(std::string_view text, size_t pos) {
  for (++pos; pos < text.size(); ++pos) {
    if (text[pos] == '\\') {
      ++pos;
    } else if (text[pos] == '"') {
      return pos + 1;
    }
  }
  return text.size();
}

// The end of the value starting at `pos`.
size_t SkipValue(std::string_view text, size_t pos) {
  if (pos >= text.size()) return pos;
  if (text[pos] == '"') return SkipString(text, pos);
  if (text[pos] == '{' || text[pos] == '[') {
    int depth = 0;
    while (pos < text.size()) {
      const char c = text[pos];
      if (c == '"') {
        pos = SkipString(text, pos);
        continue;
      }
      if (c == '{' || c == '[') ++depth;
      if (c == '}' || c == ']') {
        if (--depth == 0) return pos + 1;
      }
      ++pos;
    }
    return pos;
  }
  // A number or a literal: up to the next delimiter.
  while (pos < text.size() && text[pos] != ',' && text[pos] != '}' && text[pos] != ']' &&
         !IsSpace(text[pos])) {
    ++pos;
  }
  return pos;
}

std::string_view Trimmed(std::string_view text) {
  size_t begin = SkipSpace(text, 0);
  size_t end = text.size();
  while (end > begin && IsSpace(text[end - 1])) --end;
  return text.substr(begin, end - begin);
}

}  // namespace

std::optional<std::vector<RawMember>> RawObjectMembers(std::string_view text) {
  text = Trimmed(text);
  if (text.empty() || text.front() != '{') return std::nullopt;
  std::vector<RawMember> out;
  size_t pos = SkipSpace(text, 1);
  while (pos < text.size() && text[pos] != '}') {
    const size_t key_begin = pos;
    const size_t key_end = SkipString(text, pos);
    pos = SkipSpace(text, key_end);
    pos = SkipSpace(text, pos + 1);  // the ':'
    const size_t value_begin = pos;
    const size_t value_end = SkipValue(text, pos);
    RawMember member;
    member.key =
        nlohmann::json::parse(text.substr(key_begin, key_end - key_begin)).get<std::string>();
    member.raw_member = text.substr(key_begin, value_end - key_begin);
    member.raw_value = text.substr(value_begin, value_end - value_begin);
    out.push_back(std::move(member));
    pos = SkipSpace(text, value_end);
    if (pos < text.size() && text[pos] == ',') pos = SkipSpace(text, pos + 1);
  }
  return out;
}

std::optional<std::vector<std::string_view>> RawArrayElements(std::string_view text) {
  text = Trimmed(text);
  if (text.empty() || text.front() != '[') return std::nullopt;
  std::vector<std::string_view> out;
  size_t pos = SkipSpace(text, 1);
  while (pos < text.size() && text[pos] != ']') {
    const size_t end = SkipValue(text, pos);
    out.push_back(text.substr(pos, end - pos));
    pos = SkipSpace(text, end);
    if (pos < text.size() && text[pos] == ',') pos = SkipSpace(text, pos + 1);
  }
  return out;
}

std::string ForwardedRequest(std::string_view raw_object, const nlohmann::json& request) {
  std::optional<std::vector<RawMember>> members = RawObjectMembers(raw_object);
  if (!members) return request.dump();
  std::set<std::string> seen;
  std::set<std::string> written;
  std::string out = "{";
  auto append = [&](const std::string& key, std::string_view member) {
    if (out.size() > 1) out += ',';
    out += member;
    written.insert(key);
  };
  for (const RawMember& m : *members) {
    if (!seen.insert(m.key).second) return request.dump();  // a repeated key: the last wins
    auto it = request.find(m.key);
    // What validation left out, rewrote or filled in comes from `request` below.
    // Phone numbers are rewritten in E.164, in their place.
    if (it != request.end() && (m.key == "to_number" || m.key == "recipients")) {
      append(m.key, nlohmann::json(m.key).dump() + ":" + it->dump());
      continue;
    }
    if (it == request.end() || m.key == "media_url" || m.key == "media_urls" ||
        (m.raw_value == "null" && !it->is_null())) {
      continue;
    }
    append(m.key, m.raw_member);
  }
  for (auto it = request.begin(); it != request.end(); ++it) {
    if (written.count(it.key()) == 0) {
      append(it.key(), nlohmann::json(it.key()).dump() + ":" + it->dump());
    }
  }
  out += '}';
  return out;
}

}  // namespace sendq
