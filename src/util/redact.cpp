#include "util/redact.h"

#include <algorithm>

namespace sendq {
namespace {

constexpr std::string_view kMask = "***";
constexpr std::string_view kBearer = "bearer";
constexpr std::string_view kRedactedBearer = "Bearer ***";

bool IsTokenChar(char c) {
  unsigned char u = static_cast<unsigned char>(c);
  if (u <= 0x20 || u >= 0x7f) return false;
  return std::string_view("\"'\\,;<>()[]{}`").find(c) == std::string_view::npos;
}

class Redactor {
 public:
  Redactor(std::string_view text, const std::vector<std::string>& secrets) : text_(text) {
    for (const std::string& secret : secrets) {
      if (!secret.empty()) secrets_.push_back(secret);
    }
    // Longest first, so that a secret containing another one is replaced whole.
    std::sort(secrets_.begin(), secrets_.end(),
              [](std::string_view a, std::string_view b) { return a.size() > b.size(); });
  }

  std::string Run() const {
    std::string out;
    out.reserve(text_.size());
    size_t i = 0;
    while (i < text_.size()) {
      if (size_t n = SecretAt(i); n > 0) {
        out += kMask;
        i += n;
      } else if (size_t m = BearerAt(i); m > 0) {
        out += kRedactedBearer;
        i += m;
      } else {
        out += text_[i++];
      }
    }
    return out;
  }

 private:
  // The length of the secret that starts at `pos`, or 0.
  size_t SecretAt(size_t pos) const {
    for (std::string_view secret : secrets_) {
      if (text_.substr(pos, secret.size()) == secret) return secret.size();
    }
    return 0;
  }

  // The length of the bearer credential ("Bearer", blanks, token) that starts at `pos`, or 0.
  size_t BearerAt(size_t pos) const {
    if (text_.size() - pos < kBearer.size()) return 0;
    for (size_t k = 0; k < kBearer.size(); ++k) {
      char c = text_[pos + k];
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
      if (c != kBearer[k]) return 0;
    }
    size_t token_start = pos + kBearer.size();
    while (token_start < text_.size() &&
           (text_[token_start] == ' ' || text_[token_start] == '\t')) {
      ++token_start;
    }
    if (token_start == pos + kBearer.size()) return 0;
    size_t end = token_start;
    while (end < text_.size()) {
      // A known secret is part of the token even where it has characters a token cannot.
      if (size_t n = SecretAt(end); n > 0) {
        end += n;
      } else if (IsTokenChar(text_[end])) {
        ++end;
      } else {
        break;
      }
    }
    return end == token_start ? 0 : end - pos;
  }

  std::string_view text_;
  std::vector<std::string_view> secrets_;
};

}  // namespace

std::string RedactSecrets(std::string_view text, const std::vector<std::string>& secrets) {
  return Redactor(text, secrets).Run();
}

}  // namespace sendq
