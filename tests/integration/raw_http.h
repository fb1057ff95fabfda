// Raw HTTP/1.1 over a loopback socket, byte for byte, for framings and abuse that an HTTP
// client library does not produce: pipelining, stalled heads, floods, conflicting lengths.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace sendq::test {

class RawConnection {
 public:
  // Connects to 127.0.0.1:`port`, from `source` (another loopback address such as
  // 127.0.0.2, to be another client) when given. Every receive waits at most `timeout_ms`.
  explicit RawConnection(int port, const std::string& source = "", int timeout_ms = 30'000);
  ~RawConnection();
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;

  bool connected() const { return fd_ >= 0; }
  // Sends all of `bytes`; false when the server closed the connection first.
  bool Send(const std::string& bytes);
  // Reads one response (head and a Content-Length body); nullopt when the connection closed
  // or the wait ran out before a whole one arrived.
  std::optional<std::string> ReadResponse();
  // Reads until the server closes the connection; everything that arrived.
  std::string ReadUntilClosed();
  // True when the server closed the connection (EOF or reset) within the receive timeout.
  bool WaitClosed();

 private:
  int fd_ = -1;
  std::string pending_;  // received but not yet returned
};

// `request` on a fresh connection, then everything the server sends until it closes.
std::string RawExchange(int port, const std::string& request);

// The status code of a raw HTTP/1.1 response, or 0.
int RawStatus(const std::string& response);

// The value of header `name` (any case) in a raw response, or "".
std::string RawHeader(const std::string& response, const std::string& name);

// The body of a raw response parsed as JSON, or null.
nlohmann::json RawJson(const std::string& response);

}  // namespace sendq::test
