// Callback URLs: which a producer may name, and where a delivery may connect.
//
// A callback URL is http(s)://host[:port][/path]. Unless allowed, it must be https, and its host
// must not be (or resolve to) a loopback, private, link-local, carrier-grade NAT, multicast or
// otherwise internal address, IPv4 forms inside IPv6 included (mapped, compatible, NAT64,
// 6to4): sendq must not be a way into the network it runs in. A delivery connects to the very
// address that was vetted (so a name that resolves again to something else, DNS rebinding,
// cannot redirect it).
//
// Thread-safety: pure functions (VetCallbackUrl resolves names, which blocks).
#pragma once

#include <optional>
#include <string>

namespace sendq {

struct CallbackUrl {
  std::string origin;  // scheme://authority
  std::string host;    // without brackets
  std::string path;    // "/...", with the query, without a fragment
  bool https = false;
};

// nullopt unless http(s) with a host and no whitespace or control characters.
std::optional<CallbackUrl> ParseCallbackUrl(const std::string& url);

// Why `url` may not receive callbacks, or "" when it may. With `resolve`, the host is looked up
// and every address must pass; the first goes to `*address` (when given) for the delivery to
// connect to. Without, only a literal address or a localhost name is judged (for checks that
// must not block).
std::string VetCallbackUrl(const std::string& url, bool allow_http, bool allow_private,
                           bool resolve, std::string* address = nullptr);

}  // namespace sendq
