#include "cli/client.h"

#include <fmt/format.h>
#include <httplib.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "cli/output.h"
#include "util/ascii.h"

namespace sendq::cli {
namespace {

constexpr char kUserAgent[] = "sendq-cli/1.0";
constexpr int64_t kConnectTimeoutMs = 5'000;
// The body of an error answer to a download is kept up to this size, for its message.
constexpr size_t kMaxErrorBodyBytes = 64 << 10;

bool IsSpaceOrControl(char c) {
  const unsigned char u = static_cast<unsigned char>(c);
  return u <= 0x20 || u == 0x7f;
}

std::string Trim(const std::string& s) {
  size_t begin = 0;
  size_t end = s.size();
  while (begin < end && std::isspace(static_cast<unsigned char>(s[begin]))) ++begin;
  while (end > begin && std::isspace(static_cast<unsigned char>(s[end - 1]))) --end;
  return s.substr(begin, end - begin);
}

std::multimap<std::string, std::string> LowerCaseHeaders(const httplib::Headers& headers) {
  std::multimap<std::string, std::string> out;
  for (const auto& [name, value] : headers) out.emplace(AsciiLower(name), value);
  return out;
}

// The first line of the file at `path`, trimmed. Errors name the file, never its content.
Result<std::string> ReadTokenFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return Status::InvalidArgument(
        fmt::format("--token-file: cannot read '{}': {}", path, std::strerror(errno)));
  }
  std::string line;
  std::getline(in, line);
  line = Trim(line);
  if (line.empty()) {
    return Status::InvalidArgument(
        fmt::format("--token-file: '{}' has no token on its first line", path));
  }
  return line;
}

// Why a request got no answer, in words.
std::string ErrorText(httplib::Error error) {
  switch (error) {
    case httplib::Error::Connection:
      return "cannot connect (is sendq running there?)";
    case httplib::Error::ConnectionTimeout:
      return "connecting timed out";
    case httplib::Error::Read:
      return "no answer (the connection broke or the read timed out)";
    case httplib::Error::Write:
      return "the request could not be sent";
    case httplib::Error::SSLConnection:
      return "the TLS handshake failed";
    case httplib::Error::SSLServerVerification:
      return "the server's TLS certificate was not accepted";
    case httplib::Error::Canceled:
      return "interrupted";
    default:
      return httplib::to_string(error);
  }
}

}  // namespace

Result<BaseUrl> ParseBaseUrl(const std::string& url) {
  auto bad = [&](const std::string& why) {
    return Status::InvalidArgument(
        fmt::format("--url '{}': {} (expected http://HOST[:PORT] or https://HOST[:PORT], e.g. {})",
                    url, why, kDefaultUrl));
  };
  size_t scheme_end = url.find("://");
  if (scheme_end == std::string::npos) return bad("no scheme");
  const std::string scheme = url.substr(0, scheme_end);
  if (scheme != "http" && scheme != "https") return bad("the scheme must be http or https");
  const size_t authority_start = scheme_end + 3;
  size_t path_start = url.find('/', authority_start);
  const std::string authority =
      url.substr(authority_start, path_start == std::string::npos ? std::string::npos
                                                                  : path_start - authority_start);
  if (authority.empty()) return bad("no host");
  if (authority.find('@') != std::string::npos) return bad("user information is not allowed");
  if (url.find_first_of("?#") != std::string::npos) return bad("a query is not allowed");
  for (char c : url) {
    if (IsSpaceOrControl(c)) return bad("white space is not allowed");
  }
  std::string port;
  if (authority[0] == '[') {
    const size_t close = authority.find(']');
    if (close == std::string::npos || close == 1) return bad("unclosed IPv6 address");
    const std::string rest = authority.substr(close + 1);
    if (!rest.empty()) {
      if (rest[0] != ':') return bad("junk after the IPv6 address");
      port = rest.substr(1);
      if (port.empty()) return bad("empty port");
    }
  } else {
    const size_t colon = authority.find(':');
    if (colon == 0) return bad("no host");
    if (colon != std::string::npos) {
      port = authority.substr(colon + 1);
      if (port.empty()) return bad("empty port");
    }
  }
  if (!port.empty()) {
    if (port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
        std::stoi(port) < 1 || std::stoi(port) > 65535) {
      return bad("the port must be 1 to 65535");
    }
  }
  BaseUrl base;
  base.origin = url.substr(0, path_start == std::string::npos ? url.size() : path_start);
  if (path_start != std::string::npos) {
    base.prefix = url.substr(path_start);
    while (!base.prefix.empty() && base.prefix.back() == '/') base.prefix.pop_back();
  }
  return base;
}

std::string HttpAnswer::Header(const std::string& name) const {
  auto it = headers.find(AsciiLower(name));
  return it == headers.end() ? "" : it->second;
}

nlohmann::ordered_json HttpAnswer::Json() const {
  nlohmann::ordered_json parsed = nlohmann::ordered_json::parse(body, nullptr, false);
  return parsed.is_discarded() ? nlohmann::ordered_json(nullptr) : parsed;
}

ApiClient::ApiClient(const BaseUrl& base, std::string url_text, std::string token)
    : prefix_(base.prefix),
      url_text_(std::move(url_text)),
      client_(std::make_unique<httplib::Client>(base.origin)) {
  client_->set_tcp_nodelay(true);
  client_->set_keep_alive(true);
  // Paths and queries arrive percent-encoded already (PercentEncode).
  client_->set_url_encode(false);
  client_->set_connection_timeout(std::chrono::milliseconds(kConnectTimeoutMs));
  client_->set_read_timeout(std::chrono::milliseconds(kDefaultTimeoutMs));
  client_->set_write_timeout(std::chrono::milliseconds(kDefaultTimeoutMs));
  if (!token.empty()) client_->set_bearer_token_auth(token);
  client_->set_default_headers({{"User-Agent", kUserAgent}});
}

ApiClient::~ApiClient() = default;

void ApiClient::Stop() {
  stopped_.store(true);
  client_->stop();
}

HttpAnswer ApiClient::Finish(bool got_answer, int error_code, HttpAnswer answer) {
  if (got_answer && !stopped_.load()) return answer;
  answer.status = 0;
  answer.error =
      stopped_.load() ? "interrupted" : ErrorText(static_cast<httplib::Error>(error_code));
  return answer;
}

HttpAnswer ApiClient::Get(const std::string& path_and_query, int64_t read_timeout_ms) {
  HttpAnswer answer;
  if (stopped_.load()) return Finish(false, 0, std::move(answer));
  client_->set_read_timeout(std::chrono::milliseconds(read_timeout_ms));
  httplib::Result result = client_->Get(prefix_ + path_and_query, {{"Accept", "application/json"}});
  client_->set_read_timeout(std::chrono::milliseconds(kDefaultTimeoutMs));
  if (result) {
    answer.status = result->status;
    answer.headers = LowerCaseHeaders(result->headers);
    answer.body = std::move(result->body);
  }
  return Finish(static_cast<bool>(result), static_cast<int>(result.error()), std::move(answer));
}

HttpAnswer ApiClient::Post(const std::string& path, const std::string& json_body,
                           const std::map<std::string, std::string>& headers) {
  HttpAnswer answer;
  if (stopped_.load()) return Finish(false, 0, std::move(answer));
  httplib::Headers request_headers = {{"Accept", "application/json"}};
  for (const auto& [name, value] : headers) request_headers.emplace(name, value);
  httplib::Result result =
      client_->Post(prefix_ + path, request_headers, json_body, "application/json");
  if (result) {
    answer.status = result->status;
    answer.headers = LowerCaseHeaders(result->headers);
    answer.body = std::move(result->body);
  }
  return Finish(static_cast<bool>(result), static_cast<int>(result.error()), std::move(answer));
}

HttpAnswer ApiClient::Download(const std::string& path_and_query,
                               const std::function<void(const HttpAnswer& head)>& on_head,
                               const std::function<bool(const char* data, size_t length)>& sink,
                               int64_t read_timeout_ms) {
  HttpAnswer answer;
  if (stopped_.load()) return Finish(false, 0, std::move(answer));
  httplib::Request request;
  request.method = "GET";
  request.path = prefix_ + path_and_query;
  bool success = false;
  request.response_handler = [&](const httplib::Response& response) {
    answer.status = response.status;
    answer.headers = LowerCaseHeaders(response.headers);
    success = answer.ok();
    if (success) on_head(answer);
    return true;
  };
  request.content_receiver = [&](const char* data, size_t length, uint64_t, uint64_t) {
    if (success) return sink(data, length);
    if (answer.body.size() < kMaxErrorBodyBytes) answer.body.append(data, length);
    return true;
  };
  client_->set_read_timeout(std::chrono::milliseconds(read_timeout_ms));
  httplib::Result result = client_->send(request);
  client_->set_read_timeout(std::chrono::milliseconds(kDefaultTimeoutMs));
  return Finish(static_cast<bool>(result), static_cast<int>(result.error()), std::move(answer));
}

Result<std::unique_ptr<ApiClient>> ConnectClient(const CommonOptions& options,
                                                 const std::map<std::string, std::string>& env) {
  auto from_env = [&](const char* name) {
    auto it = env.find(name);
    return it == env.end() ? std::string() : Trim(it->second);
  };
  std::string url = options.url.empty() ? from_env("SENDQ_URL") : options.url;
  if (url.empty()) url = kDefaultUrl;
  Result<BaseUrl> base = ParseBaseUrl(url);
  if (!base.ok()) return base.status();

  if (!options.token.empty() && !options.token_file.empty()) {
    return Status::InvalidArgument("give --token or --token-file, not both");
  }
  std::string token;
  std::string origin;
  if (!options.token_file.empty()) {
    Result<std::string> read = ReadTokenFile(options.token_file);
    if (!read.ok()) return read.status();
    token = *read;
    origin = "--token-file";
  } else if (!options.token.empty()) {
    token = options.token;
    origin = "--token";
  } else {
    token = from_env("SENDQ_TOKEN");
    origin = "SENDQ_TOKEN";
  }
  if (token.empty()) {
    return Status::InvalidArgument(
        "no token: set SENDQ_TOKEN, or give --token-file PATH (or --token)");
  }
  for (char c : token) {
    if (IsSpaceOrControl(c)) {
      return Status::InvalidArgument(origin +
                                     ": the token contains white space or control "
                                     "characters");
    }
  }
  return std::make_unique<ApiClient>(*base, url, std::move(token));
}

void PrintError(const std::string& text) {
  std::fflush(stdout);
  std::fprintf(stderr, "sendq: %s\n", text.c_str());
}

int ReportFailure(const ApiClient& client, const HttpAnswer& answer) {
  if (answer.status == 0) {
    PrintError(fmt::format("cannot reach sendq at {}: {}", client.url(), answer.error));
    return kExitUnreachable;
  }
  std::string text = DescribeHttpError(answer.status, answer.body);
  if (answer.status == 401) text += "\n  check the token (--token-file, --token or SENDQ_TOKEN)";
  if (answer.status >= 500) text = "sendq could not serve the request: " + text;
  PrintError(text);
  return ExitCodeForHttpStatus(answer.status);
}

void PrintJsonLine(const nlohmann::ordered_json& value) {
  const std::string line =
      value.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
  std::fwrite(line.data(), 1, line.size(), stdout);
  std::fputc('\n', stdout);
}

}  // namespace sendq::cli
