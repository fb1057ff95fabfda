#include "util/callback_url.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstring>

#include "util/ascii.h"

namespace sendq {
namespace {

bool IsInternalV4(uint32_t a) {
  auto in = [&](uint32_t net, int bits) { return (a >> (32 - bits)) == (net >> (32 - bits)); };
  return in(0x00000000, 8) || in(0x0A000000, 8) || in(0x64400000, 10) || in(0x7F000000, 8) ||
         in(0xA9FE0000, 16) || in(0xAC100000, 12) || in(0xC0000000, 24) || in(0xC0A80000, 16) ||
         in(0xC6120000, 15) || a >= 0xE0000000;
}

uint32_t V4At(const in6_addr& a, int offset) {
  uint32_t v = 0;
  std::memcpy(&v, &a.s6_addr[offset], 4);
  return ntohl(v);
}

bool IsInternalV6(const in6_addr& a) {
  static const uint8_t kNat64[12] = {0x00, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
  if (IN6_IS_ADDR_V4MAPPED(&a) || IN6_IS_ADDR_V4COMPAT(&a) ||
      std::memcmp(a.s6_addr, kNat64, sizeof kNat64) == 0) {
    return IsInternalV4(V4At(a, 12));
  }
  if (a.s6_addr[0] == 0x20 && a.s6_addr[1] == 0x02) return IsInternalV4(V4At(a, 2));  // 6to4
  return IN6_IS_ADDR_LOOPBACK(&a) || IN6_IS_ADDR_UNSPECIFIED(&a) || IN6_IS_ADDR_LINKLOCAL(&a) ||
         IN6_IS_ADDR_SITELOCAL(&a) || IN6_IS_ADDR_MULTICAST(&a) || (a.s6_addr[0] & 0xFE) == 0xFC;
}

bool IsInternal(const sockaddr* addr) {
  if (addr->sa_family == AF_INET) {
    return IsInternalV4(ntohl(reinterpret_cast<const sockaddr_in*>(addr)->sin_addr.s_addr));
  }
  if (addr->sa_family == AF_INET6) {
    return IsInternalV6(reinterpret_cast<const sockaddr_in6*>(addr)->sin6_addr);
  }
  return true;
}

// Whether `host` is literally internal: an internal address, or a localhost name.
bool LiterallyInternal(const std::string& host) {
  in_addr v4{};
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) return IsInternalV4(ntohl(v4.s_addr));
  in6_addr v6{};
  if (inet_pton(AF_INET6, host.c_str(), &v6) == 1) return IsInternalV6(v6);
  const std::string lower = AsciiLower(host);
  return lower == "localhost" || lower.ends_with(".localhost");
}

std::string AddressText(const sockaddr* addr) {
  char text[INET6_ADDRSTRLEN] = {};
  if (addr->sa_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(addr)->sin_addr, text, sizeof text);
  } else if (addr->sa_family == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(addr)->sin6_addr, text, sizeof text);
  }
  return text;
}

constexpr char kPrivateRefused[] =
    "its host is (or resolves to) a loopback or private address (sendq allows that only with "
    "--allow-private-callbacks)";

}  // namespace

std::optional<CallbackUrl> ParseCallbackUrl(const std::string& url) {
  for (unsigned char c : url) {
    if (c <= 0x20 || c == 0x7f) return std::nullopt;
  }
  CallbackUrl p;
  size_t rest = 0;
  if (url.starts_with("https://")) {
    p.https = true;
    rest = 8;
  } else if (url.starts_with("http://")) {
    rest = 7;
  } else {
    return std::nullopt;
  }
  const size_t path_start = url.find_first_of("/?#", rest);
  const std::string authority =
      url.substr(rest, path_start == std::string::npos ? std::string::npos : path_start - rest);
  if (authority.empty() || authority.find('@') != std::string::npos) return std::nullopt;
  p.origin = url.substr(0, rest) + authority;
  p.path = path_start == std::string::npos ? "/" : url.substr(path_start);
  if (const size_t hash = p.path.find('#'); hash != std::string::npos) p.path.resize(hash);
  if (p.path.empty() || p.path.front() != '/') p.path = "/" + p.path;
  if (authority.front() == '[') {
    const size_t close = authority.find(']');
    if (close == std::string::npos) return std::nullopt;
    p.host = authority.substr(1, close - 1);
  } else {
    p.host = authority.substr(0, authority.find(':'));
  }
  if (p.host.empty()) return std::nullopt;
  return p;
}

std::string VetCallbackUrl(const std::string& url, bool allow_http, bool allow_private,
                           bool resolve, std::string* address) {
  std::optional<CallbackUrl> p = ParseCallbackUrl(url);
  if (!p) return "not an http(s) URL with a host";
  if (!p->https && !allow_http) {
    return "must be https (sendq allows http only with --allow-http-callbacks)";
  }
  if (allow_private) return "";
  if (LiterallyInternal(p->host)) return kPrivateRefused;
  if (!resolve) return "";
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (int rc = getaddrinfo(p->host.c_str(), nullptr, &hints, &found); rc != 0) {
    return fmt::format("its host does not resolve ({})", gai_strerror(rc));
  }
  bool internal = false;
  for (addrinfo* ai = found; ai != nullptr; ai = ai->ai_next) internal |= IsInternal(ai->ai_addr);
  if (address != nullptr && found != nullptr) *address = AddressText(found->ai_addr);
  freeaddrinfo(found);
  return internal ? kPrivateRefused : "";
}

}  // namespace sendq
