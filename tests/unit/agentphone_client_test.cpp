// The AgentPhone client: the body cap, redaction of the key, and the text of transport errors,
// as pure functions and against an in-process HTTP server on loopback.
#include "delivery/agentphone_client.h"

#include <doctest/doctest.h>
#include <httplib.h>

#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace sendq::delivery {
namespace {

constexpr char kKey[] = "ap_live_k3y_0123456789";

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

TEST_CASE("CappedResponseBody: a body within the cap is kept whole, redacted") {
  CHECK(CappedResponseBody("{\"id\":\"msg_1\"}", 14, true, 64, {kKey}) == "{\"id\":\"msg_1\"}");
  CHECK(CappedResponseBody(std::string("key ") + kKey, 26, true, 64, {kKey}) == "key ***");
  CHECK(CappedResponseBody("Authorization: Bearer abc", 25, true, 64, {}) ==
        "Authorization: Bearer ***");
  CHECK(CappedResponseBody("", 0, true, 64, {kKey}).empty());
}

TEST_CASE("CappedResponseBody: a longer body is cut and marked with its size") {
  const std::string body(100, 'x');
  std::string kept = CappedResponseBody(body, 100, true, 64, {kKey});
  CHECK(kept == std::string(64, 'x') + "…[truncated: 100 bytes total]");
  // Only the start was received: the total still counts the whole body.
  kept = CappedResponseBody(body, 70'000, true, 64, {kKey});
  CHECK(kept == std::string(64, 'x') + "…[truncated: 70000 bytes total]");
}

TEST_CASE("CappedResponseBody: a read stopped early says so") {
  std::string kept = CappedResponseBody(std::string(100, 'x'), 2'000'000, false, 64, {});
  CHECK(kept == std::string(64, 'x') + "…[truncated: more than 2000000 bytes]");
  // Even when what was read fits the cap.
  kept = CappedResponseBody("abc", 3, false, 64, {});
  CHECK(kept == "abc…[truncated: more than 3 bytes]");
}

TEST_CASE("CappedResponseBody: the cut does not split a UTF-8 sequence") {
  const std::string body = std::string(63, 'x') + "\xC3\xA9" + "yyy";  // 'é' across byte 64
  std::string kept = CappedResponseBody(body, body.size(), true, 64, {});
  CHECK(kept == std::string(63, 'x') + "…[truncated: 68 bytes total]");
}

TEST_CASE("CappedResponseBody: a secret across the cut goes whole or not at all") {
  const std::string key = kKey;
  SUBCASE("received whole: redacted before the cut") {
    const std::string body = std::string(60, 'x') + key + std::string(100, 'y');
    std::string kept = CappedResponseBody(body, body.size(), true, 64, {key});
    CHECK_FALSE(Contains(kept, key.substr(0, 4)));
    CHECK(Contains(kept, std::string(60, 'x') + "***"));
  }
  SUBCASE("only its start received: the start is dropped") {
    const std::string body = std::string(60, 'x') + key.substr(0, 10);
    std::string kept = CappedResponseBody(body, 1000, true, 64, {key});
    CHECK(kept == std::string(60, 'x') + "…[truncated: 1000 bytes total]");
  }
  SUBCASE("the cut inside it after redaction shrank the text") {
    const std::string body = key + std::string(40, 'x') + key.substr(0, 12);
    std::string kept = CappedResponseBody(body, 5000, true, 64, {key});
    CHECK(kept == "***" + std::string(40, 'x') + "…[truncated: 5000 bytes total]");
  }
}

TEST_CASE("DescribeTransportError: human text, not the library's enum names") {
  using httplib::Error;
  CHECK(DescribeTransportError(Error::Connection, "api.example.com", "", false) ==
        "connection refused or host unreachable");
  CHECK(DescribeTransportError(Error::Connection, "api.exmaple.com", "Name or service not known",
                               false) ==
        "name not resolved: api.exmaple.com (Name or service not known)");
  CHECK(DescribeTransportError(Error::ConnectionTimeout, "h", "", true) == "timed out connecting");
  CHECK(DescribeTransportError(Error::SSLConnection, "h", "", false) == "TLS handshake failed");
  CHECK(DescribeTransportError(Error::SSLServerVerification, "h", "", false) ==
        "TLS certificate verification failed");
  CHECK(DescribeTransportError(Error::Read, "h", "", true) == "timed out waiting for the answer");
  CHECK(DescribeTransportError(Error::Read, "h", "", false) ==
        "connection reset or closed before the answer");
  CHECK(DescribeTransportError(Error::Write, "h", "", false) ==
        "connection reset or closed while sending the request");
  CHECK(DescribeTransportError(Error::Write, "h", "", true) == "timed out sending the request");
  for (Error e :
       {Error::Unknown, Error::Connection, Error::BindIPAddress, Error::Read, Error::Write,
        Error::ExceedRedirectCount, Error::Canceled, Error::SSLConnection, Error::SSLLoadingCerts,
        Error::SSLServerVerification, Error::UnsupportedMultipartBoundaryChars, Error::Compression,
        Error::ConnectionTimeout}) {
    CAPTURE(httplib::to_string(e));
    std::string text = DescribeTransportError(e, "h", "", false);
    CHECK_FALSE(text.empty());
    CHECK(text != httplib::to_string(e));
  }
}

// An HTTP server on a free loopback port, serving POST /v1/messages with `handler`.
class LocalServer {
 public:
  explicit LocalServer(httplib::Server::Handler handler) {
    server_.Post("/v1/messages", std::move(handler));
    // Bound and listening from here on: a connection waits until the thread accepts it.
    port_ = server_.bind_to_any_port("127.0.0.1");
    REQUIRE(port_ > 0);
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    // stop() before the loop runs would be lost, and the destructor would wait forever.
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~LocalServer() {
    server_.stop();
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

 private:
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
};

UpstreamResponse SendTo(const std::string& url, DurationMs timeout = 5000) {
  AgentPhoneOptions options;
  options.base_url = url;
  options.token = kKey;
  options.timeout = timeout;
  std::unique_ptr<UpstreamClient> client = AgentPhoneClientFactory(options)();
  return client->Send("sq_test_1", R"({"agent_id":"a","to_number":"+14155552671","body":"hi"})");
}

TEST_CASE("AgentPhone client: an answer arrives whole, with Retry-After") {
  // Handed over through a mutex: the answer's way back through the socket is a happens-before
  // that ThreadSanitizer cannot see (the library is not instrumented).
  std::mutex mu;
  std::string authorization;
  LocalServer server([&](const httplib::Request& req, httplib::Response& res) {
    std::lock_guard<std::mutex> guard(mu);
    authorization = req.get_header_value("Authorization");
    res.status = 429;
    res.set_header("Retry-After", "7");
    res.set_content(R"({"error":{"message":"Rate limit exceeded"}})", "application/json");
  });
  UpstreamResponse r = SendTo(server.url());
  {
    std::lock_guard<std::mutex> guard(mu);
    CHECK(authorization == std::string("Bearer ") + kKey);
  }
  CHECK(r.transport == UpstreamResponse::Transport::kResponded);
  CHECK(r.http_status == 429);
  CHECK(r.body == R"({"error":{"message":"Rate limit exceeded"}})");
  REQUIRE(r.retry_after.has_value());
  CHECK(*r.retry_after == "7");
}

TEST_CASE("AgentPhone client: an error page echoing the key is redacted") {
  LocalServer server([&](const httplib::Request& req, httplib::Response& res) {
    res.status = 502;
    res.set_content("<html><pre>Authorization: " + req.get_header_value("Authorization") +
                        "\nkey=" + kKey + "</pre></html>",
                    "text/html");
  });
  UpstreamResponse r = SendTo(server.url());
  CHECK(r.http_status == 502);
  CHECK_FALSE(Contains(r.body, kKey));
  CHECK(Contains(r.body, "Authorization: Bearer ***"));
  CHECK(Contains(r.body, "key=***"));
}

TEST_CASE("AgentPhone client: a long body is capped and marked") {
  LocalServer server([&](const httplib::Request&, httplib::Response& res) {
    res.status = 200;
    res.set_content(std::string(200'000, 'x'), "text/plain");
  });
  UpstreamResponse r = SendTo(server.url());
  CHECK(r.transport == UpstreamResponse::Transport::kResponded);
  CHECK(r.http_status == 200);
  CHECK(r.body == std::string(kMaxUpstreamBodyBytes, 'x') + "…[truncated: 200000 bytes total]");
}

TEST_CASE("AgentPhone client: an endless body is not read to its end") {
  LocalServer server([&](const httplib::Request&, httplib::Response& res) {
    res.status = 503;
    res.set_header("Retry-After", "30");
    res.set_chunked_content_provider("text/plain", [](size_t, httplib::DataSink& sink) {
      std::string chunk(16 * 1024, 'z');
      return sink.write(chunk.data(), chunk.size());
    });
  });
  UpstreamResponse r = SendTo(server.url());
  CHECK(r.transport == UpstreamResponse::Transport::kResponded);
  CHECK(r.http_status == 503);
  REQUIRE(r.retry_after.has_value());
  CHECK(*r.retry_after == "30");
  CHECK(r.body.size() < kMaxUpstreamBodyBytes + 100);
  CHECK(Contains(r.body, "[truncated: more than "));
}

TEST_CASE("AgentPhone client: a refused connection is described, and nothing was sent") {
  std::string url;
  {
    LocalServer gone([](const httplib::Request&, httplib::Response&) {});
    url = gone.url();
  }
  UpstreamResponse r = SendTo(url);
  CHECK(r.transport == UpstreamResponse::Transport::kNotSent);
  CHECK(r.transport_error == "connection refused or host unreachable");
}

TEST_CASE("AgentPhone client: a read timeout is described") {
  LocalServer server([&](const httplib::Request&, httplib::Response& res) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    res.set_content("{}", "application/json");
  });
  UpstreamResponse r = SendTo(server.url(), 1000);
  CHECK(r.transport == UpstreamResponse::Transport::kNoResponse);
  CHECK(r.transport_error == "timed out waiting for the answer");
}

}  // namespace
}  // namespace sendq::delivery
