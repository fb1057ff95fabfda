// The operator commands' side of the API: one HTTP client for a sendq, found by --url /
// SENDQ_URL and authenticated by --token, --token-file or SENDQ_TOKEN. It speaks to sendq
// over HTTP like any producer, so it links only util/ (and cpp-httplib), never the server.
//
// Thread-safety: an ApiClient is used by one thread at a time, except Stop(), which any
// thread may call to end the request in flight (a Ctrl-C during a long poll or a download).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "util/status.h"

namespace httplib {
class Client;
}

namespace sendq::cli {

// --url split for the client: "http://host:8080/base" -> origin "http://host:8080", prefix
// "/base" (no trailing slash).
struct BaseUrl {
  std::string origin;
  std::string prefix;
};

// http:// or https://, a host, an optional port and an optional path prefix; no user
// information, query or fragment. The error says what was expected.
Result<BaseUrl> ParseBaseUrl(const std::string& url);

// One HTTP answer, or why there was none.
struct HttpAnswer {
  int status = 0;                                   // 0: no answer at all (see error)
  std::string error;                                // why there was no answer
  std::multimap<std::string, std::string> headers;  // names in lower case
  std::string body;  // for Download, only the body of an answer that is not 2xx

  bool ok() const { return status >= 200 && status < 300; }
  // The first value of header `name` (lower case), or "".
  std::string Header(const std::string& name) const;
  // The body as JSON (member order kept), or null when it is not JSON.
  nlohmann::ordered_json Json() const;
};

class ApiClient {
 public:
  // `token` may be empty (then no Authorization header is sent, and sendq answers 401).
  ApiClient(const BaseUrl& base, std::string url_text, std::string token);
  ~ApiClient();
  ApiClient(const ApiClient&) = delete;
  ApiClient& operator=(const ApiClient&) = delete;

  // `read_timeout_ms` must exceed any ?wait= the request carries.
  HttpAnswer Get(const std::string& path_and_query, int64_t read_timeout_ms = kDefaultTimeoutMs);
  // A JSON body (Content-Type: application/json), with `headers` added.
  HttpAnswer Post(const std::string& path, const std::string& json_body,
                  const std::map<std::string, std::string>& headers = {});

  // GET whose 2xx body goes to `sink` chunk by chunk as it arrives, never held in memory;
  // `sink` returning false ends the transfer (the answer then has status 0 and error set).
  // `on_head` sees the status and headers first (Content-Length, for a progress bar). The
  // body of any other answer is collected in HttpAnswer::body. `read_timeout_ms` bounds the
  // wait for the head (the server may prepare the body first) and for each chunk.
  HttpAnswer Download(const std::string& path_and_query,
                      const std::function<void(const HttpAnswer& head)>& on_head,
                      const std::function<bool(const char* data, size_t length)>& sink,
                      int64_t read_timeout_ms = kDefaultTimeoutMs);

  // Ends the request in flight, and every later one, with an error. Any thread.
  void Stop();
  bool stopped() const { return stopped_.load(); }

  // The URL as given, for messages ("cannot reach http://...").
  const std::string& url() const { return url_text_; }

  static constexpr int64_t kDefaultTimeoutMs = 30'000;

 private:
  HttpAnswer Finish(bool got_answer, int error_code, HttpAnswer answer);

  std::string prefix_;
  std::string url_text_;
  std::unique_ptr<httplib::Client> client_;
  std::atomic<bool> stopped_{false};
};

// --url, --token, --token-file and --json, which every command but serve takes.
struct CommonOptions {
  std::string url;         // empty: SENDQ_URL, else http://127.0.0.1:8080
  std::string token;       // empty: --token-file, else SENDQ_TOKEN
  std::string token_file;  // the token is its first line, trimmed
  bool json = false;
};

inline constexpr char kDefaultUrl[] = "http://127.0.0.1:8080";

// The client for `options` with `env` as the environment. A bad URL, an unreadable or empty
// token file, --token with --token-file, or no token at all is an InvalidArgument (a usage
// error) whose message never contains a token.
Result<std::unique_ptr<ApiClient>> ConnectClient(const CommonOptions& options,
                                                 const std::map<std::string, std::string>& env);

// Prints why `answer` is not a success to stderr ("sendq: ..."), readably, and returns the
// exit code for it.
int ReportFailure(const ApiClient& client, const HttpAnswer& answer);

// Prints an error line "sendq: <text>" to stderr.
void PrintError(const std::string& text);

// One JSON value on one line of stdout.
void PrintJsonLine(const nlohmann::ordered_json& value);

}  // namespace sendq::cli
