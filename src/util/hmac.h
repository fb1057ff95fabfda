// Message authentication for webhooks: HMAC-SHA256 (OpenSSL), and comparing secrets without
// saying through the time taken where they differ.
//
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>

namespace sendq {

// The lower-case hex HMAC-SHA256 of `data` under `key`.
std::string HmacSha256Hex(std::string_view key, std::string_view data);

// A webhook signature as AgentPhone makes it (and sendq makes its own callbacks'):
// "sha256=" and the hex HMAC-SHA256 of "{timestamp}.{body}" under `secret`.
std::string WebhookSignature(std::string_view secret, std::string_view timestamp,
                             std::string_view body);

// Whether `a` equals `b`, in a time that depends on their length only.
bool ConstantTimeEquals(std::string_view a, std::string_view b);

// `n` random bytes from the OS's generator, as lower-case hex (2n characters).
std::string RandomHex(size_t n);

// A recipient as redaction keeps it: "redacted:" and a keyed hash of the E.164 number, so that
// whoever holds the key and the number finds its messages, and nobody reads the number back.
std::string RedactedRecipient(std::string_view key, std::string_view number);

}  // namespace sendq
