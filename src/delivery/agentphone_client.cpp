#include "delivery/agentphone_client.h"

#include <fmt/format.h>
#include <httplib.h>
#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <optional>

#include "util/percent.h"
#include "util/redact.h"

namespace sendq::delivery {
namespace {

constexpr char kUserAgent[] = "sendq/1.0";
// Connecting is quick or hopeless; waiting the full request timeout for it only delays
// noticing that AgentPhone is unreachable.
constexpr DurationMs kMaxConnectTimeout = 5000;

// "https://host:port/prefix" -> ("https://host:port", "/prefix").
std::pair<std::string, std::string> SplitBaseUrl(const std::string& url) {
  size_t scheme_end = url.find("://");
  size_t host_start = scheme_end == std::string::npos ? 0 : scheme_end + 3;
  size_t path_start = url.find('/', host_start);
  if (path_start == std::string::npos) return {url, ""};
  std::string prefix = url.substr(path_start);
  while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
  return {url.substr(0, path_start), prefix};
}

// "https://host:port" -> "host"; "http://[::1]:80" -> "::1".
std::string HostOf(const std::string& origin) {
  size_t scheme_end = origin.find("://");
  std::string authority = origin.substr(scheme_end == std::string::npos ? 0 : scheme_end + 3);
  if (!authority.empty() && authority[0] == '[') {
    size_t close = authority.find(']');
    return authority.substr(1, close == std::string::npos ? std::string::npos : close - 1);
  }
  return authority.substr(0, authority.find(':'));
}

// Why `host` does not resolve, or "" if it does. httplib reports a name that does not resolve
// and a refused connection alike, so on that error the client asks the resolver itself.
std::string ResolveError(const std::string& host) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* result = nullptr;
  int rc = getaddrinfo(host.c_str(), nullptr, &hints, &result);
  if (rc == 0) {
    freeaddrinfo(result);
    return "";
  }
  return rc == EAI_SYSTEM ? std::strerror(errno) : gai_strerror(rc);
}

// `text` cut to at most `max` bytes, not inside a UTF-8 sequence.
std::string_view CutUtf8(std::string_view text, size_t max) {
  if (text.size() <= max) return text;
  size_t cut = max;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  return text.substr(0, cut);
}

// A secret that runs past the end of what was kept was not redacted: drops its beginning from
// the end of `text`.
void DropTrailingSecretStart(std::string& text, const std::vector<std::string>& secrets) {
  for (bool dropped = true; dropped;) {
    dropped = false;
    for (const std::string& secret : secrets) {
      if (secret.size() < 2) continue;
      for (size_t n = std::min(secret.size() - 1, text.size()); n > 0 && !dropped; --n) {
        if (text.compare(text.size() - n, n, secret, 0, n) == 0) {
          text.resize(text.size() - n);
          dropped = true;
        }
      }
    }
  }
}

// Keeps the first kMaxUpstreamBodyBytes of a body (plus the rest of the chunk that crosses
// that mark) and counts the rest; stops the read past kMaxUpstreamBodyReadBytes.
class BodyReader {
 public:
  bool Add(const char* data, size_t length) {
    total_ += length;
    if (kept_.size() < kMaxUpstreamBodyBytes) kept_.append(data, length);
    if (total_ > kMaxUpstreamBodyReadBytes) {
      stopped_ = true;
      return false;
    }
    return true;
  }

  std::string Text(const std::vector<std::string>& secrets) const {
    return CappedResponseBody(kept_, total_, !stopped_, kMaxUpstreamBodyBytes, secrets);
  }

  bool stopped() const { return stopped_; }

 private:
  std::string kept_;
  uint64_t total_ = 0;
  bool stopped_ = false;
};

class AgentPhoneClient final : public UpstreamClient {
 public:
  explicit AgentPhoneClient(const AgentPhoneOptions& options)
      : timeout_(options.timeout), secrets_{options.token} {
    auto [origin, prefix] = SplitBaseUrl(options.base_url);
    prefix_ = prefix;
    host_ = HostOf(origin);
    client_ = std::make_unique<httplib::Client>(origin);
    client_->set_tcp_nodelay(true);
    client_->set_keep_alive(true);
    DurationMs connect = std::min(options.timeout, kMaxConnectTimeout);
    client_->set_connection_timeout(connect / 1000, (connect % 1000) * 1000);
    client_->set_read_timeout(options.timeout / 1000, (options.timeout % 1000) * 1000);
    client_->set_write_timeout(options.timeout / 1000, (options.timeout % 1000) * 1000);
    client_->set_bearer_token_auth(options.token);
    client_->set_default_headers({{"User-Agent", kUserAgent}, {"Accept", "application/json"}});
  }

  UpstreamResponse Send(const std::string& idempotency_key,
                        const std::string& request_json) override {
    httplib::Request request;
    request.method = "POST";
    request.path = prefix_ + "/v1/messages";
    request.headers = {{"Idempotency-Key", idempotency_key}, {"Content-Type", "application/json"}};
    request.body = request_json;
    return Perform(request);
  }

  UpstreamResponse SendReaction(const std::string& idempotency_key, const std::string& message_id,
                                const std::string& body) override {
    httplib::Request request;
    request.method = "POST";
    request.path = prefix_ + "/v1/messages/" + PercentEncode(message_id) + "/reactions";
    request.headers = {{"Idempotency-Key", idempotency_key}, {"Content-Type", "application/json"}};
    request.body = body;
    return Perform(request);
  }

  UpstreamResponse Get(const std::string& path_and_query) override {
    httplib::Request request;
    request.method = "GET";
    request.path = prefix_ + path_and_query;
    return Perform(request);
  }

  bool CanLookUp() const override { return true; }

 private:
  UpstreamResponse Perform(httplib::Request& request) {
    // The status and headers, kept in case the client stops reading the body.
    std::optional<int> status;
    std::optional<std::string> retry_after;
    request.response_handler = [&](const httplib::Response& response) {
      status = response.status;
      if (response.has_header("Retry-After")) {
        retry_after = response.get_header_value("Retry-After");
      }
      return true;
    };
    BodyReader body;
    request.content_receiver = [&](const char* data, size_t length, uint64_t, uint64_t) {
      return body.Add(data, length);
    };

    const auto started = std::chrono::steady_clock::now();
    httplib::Result result = client_->send(request);
    const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::steady_clock::now() - started)
                             .count();

    UpstreamResponse out;
    if (result) {
      out.transport = UpstreamResponse::Transport::kResponded;
      out.http_status = result->status;
      out.body = body.Text(secrets_);
      if (result->has_header("Retry-After")) {
        out.retry_after = result->get_header_value("Retry-After");
      }
      return out;
    }
    httplib::Error error = result.error();
    if (error == httplib::Error::Canceled && body.stopped() && status) {
      // The answer came; only its body was too long to read to the end.
      out.transport = UpstreamResponse::Transport::kResponded;
      out.http_status = *status;
      out.body = body.Text(secrets_);
      out.retry_after = retry_after;
      return out;
    }
    const std::string resolve_error =
        error == httplib::Error::Connection ? ResolveError(host_) : std::string();
    const bool timed_out = elapsed * 10 >= timeout_ * 9;
    out.transport_error =
        RedactSecrets(DescribeTransportError(error, host_, resolve_error, timed_out), secrets_);
    switch (error) {
      // The request never left: nothing can have been sent.
      case httplib::Error::Connection:
      case httplib::Error::ConnectionTimeout:
      case httplib::Error::BindIPAddress:
      case httplib::Error::SSLConnection:
      case httplib::Error::SSLLoadingCerts:
      case httplib::Error::SSLServerVerification:
        out.transport = UpstreamResponse::Transport::kNotSent;
        break;
      // Anything later (a read timeout, a reset, a failed write of a request that may have
      // reached the server in part or whole) leaves the outcome unknown.
      default:
        out.transport = UpstreamResponse::Transport::kNoResponse;
        break;
    }
    return out;
  }

  DurationMs timeout_;
  std::vector<std::string> secrets_;
  std::string prefix_;  // the base URL's path, before every route
  std::string host_;
  std::unique_ptr<httplib::Client> client_;
};

}  // namespace

namespace {

UpstreamResponse NotSupported(const char* what) {
  UpstreamResponse out;
  out.transport = UpstreamResponse::Transport::kNotSent;
  out.transport_error = what;
  return out;
}

}  // namespace

UpstreamResponse UpstreamClient::SendReaction(const std::string&, const std::string&,
                                              const std::string&) {
  return NotSupported("this upstream takes no reactions");
}

UpstreamResponse UpstreamClient::Get(const std::string&) {
  return NotSupported("this upstream cannot list what it accepted");
}

UpstreamClientFactory AgentPhoneClientFactory(AgentPhoneOptions options) {
  return [options] { return std::make_unique<AgentPhoneClient>(options); };
}

std::string CappedResponseBody(std::string_view received, uint64_t total_bytes, bool complete,
                               size_t cap, const std::vector<std::string>& secrets) {
  // Redacted before the cut, so that a secret across the cut goes whole.
  std::string text = RedactSecrets(received, secrets);
  if (complete && total_bytes == received.size() && received.size() <= cap) return text;
  text = std::string(CutUtf8(text, cap));
  DropTrailingSecretStart(text, secrets);
  text += complete ? fmt::format("…[truncated: {} bytes total]", total_bytes)
                   : fmt::format("…[truncated: more than {} bytes]", total_bytes);
  return text;
}

std::string DescribeTransportError(httplib::Error error, const std::string& host,
                                   const std::string& resolve_error, bool timed_out) {
  switch (error) {
    case httplib::Error::Connection:
      if (!resolve_error.empty()) {
        return fmt::format("name not resolved: {} ({})", host, resolve_error);
      }
      return "connection refused or host unreachable";
    case httplib::Error::ConnectionTimeout:
      return "timed out connecting";
    case httplib::Error::SSLConnection:
      return "TLS handshake failed";
    case httplib::Error::SSLServerVerification:
      return "TLS certificate verification failed";
    case httplib::Error::SSLLoadingCerts:
      return "could not load the CA certificates";
    case httplib::Error::BindIPAddress:
      return "could not bind the local address";
    case httplib::Error::Read:
      return timed_out ? "timed out waiting for the answer"
                       : "connection reset or closed before the answer";
    case httplib::Error::Write:
      return timed_out ? "timed out sending the request"
                       : "connection reset or closed while sending the request";
    case httplib::Error::Canceled:
      return "request canceled";
    case httplib::Error::ExceedRedirectCount:
      return "too many redirects";
    case httplib::Error::Compression:
      return "could not decompress the answer";
    case httplib::Error::Unknown:
      return "unknown transport error";
    default:
      return fmt::format("transport error ({})", httplib::to_string(error));
  }
}

}  // namespace sendq::delivery
