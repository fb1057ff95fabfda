#include "delivery/agentphone_client.h"

#include <httplib.h>

#include <algorithm>

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

class AgentPhoneClient final : public UpstreamClient {
 public:
  explicit AgentPhoneClient(const AgentPhoneOptions& options) {
    auto [origin, prefix] = SplitBaseUrl(options.base_url);
    path_ = prefix + "/v1/messages";
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
    httplib::Headers headers = {{"Idempotency-Key", idempotency_key}};
    httplib::Result result = client_->Post(path_, headers, request_json, "application/json");
    UpstreamResponse out;
    if (result) {
      out.transport = UpstreamResponse::Transport::kResponded;
      out.http_status = result->status;
      out.body = result->body;
      if (result->has_header("Retry-After")) {
        out.retry_after = result->get_header_value("Retry-After");
      }
      return out;
    }
    httplib::Error error = result.error();
    out.transport_error = httplib::to_string(error);
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

 private:
  std::string path_;
  std::unique_ptr<httplib::Client> client_;
};

}  // namespace

UpstreamClientFactory AgentPhoneClientFactory(AgentPhoneOptions options) {
  return [options] { return std::make_unique<AgentPhoneClient>(options); };
}

}  // namespace sendq::delivery
