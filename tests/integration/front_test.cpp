// The HTTP front under hostile and unusual input: limits before authentication, strict
// framing, pipelining, long polls that hold no thread, connection bounds, draining.
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/stat.h>

#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "raw_http.h"
#include "scenario.h"

namespace sendq::test {
namespace {

using nlohmann::json;

std::string Bearer(const std::string& token = kTestApiToken) {
  return "Authorization: Bearer " + token + "\r\n";
}

std::string ExampleBody() { return ExampleRequest().dump(); }

// A complete POST /v1/messages in raw HTTP.
std::string RawEnqueue(const std::string& auth = Bearer()) {
  const std::string body = ExampleBody();
  return "POST /v1/messages HTTP/1.1\r\nHost: sendq\r\n" + auth +
         "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\n\r\n" + body;
}

// The resident memory of a process, in KiB.
long RssKib(int pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

TEST_CASE("front: a flood of header lines without a token is cut off at the head limit") {
  Scenario s(UnreachableUrl(), NoProbeArgs());
  const long before = RssKib(s.sendq->process().pid());
  RawConnection flood(s.sendq->port());
  REQUIRE(flood.connected());
  // 200,000 header lines of 100 bytes: 20 MB, sent in 1 MB slices until sendq stops reading.
  std::string slice;
  for (int i = 0; i < 10'000; ++i) slice += "X-Flood: " + std::string(89, 'a') + "\r\n";
  bool accepted_all = flood.Send("POST /v1/messages/batch HTTP/1.1\r\nHost: sendq\r\n");
  for (int i = 0; i < 20 && accepted_all; ++i) accepted_all = flood.Send(slice);
  std::optional<std::string> answer = flood.ReadResponse();
  REQUIRE(answer.has_value());
  CHECK(RawStatus(*answer) == 431);
  CHECK(RawJson(*answer).at("code") == "request_header_fields_too_large");
  CHECK(RawHeader(*answer, "Connection") == "close");
  // Nothing past the 64 KiB head limit was kept.
  const long after = RssKib(s.sendq->process().pid());
  INFO("RSS before " << before << " KiB, after " << after << " KiB");
  CHECK(after - before < 16 * 1024);
  CHECK(s.sendq->Get("/healthz").status == 200);
}

TEST_CASE("front: a long request line, a long header line or too many headers is 431") {
  Scenario s(UnreachableUrl(), NoProbeArgs());
  const int port = s.sendq->port();
  SUBCASE("request line over 8 KiB") {
    const std::string answer = RawExchange(
        port, "GET /v1/messages?x=" + std::string(9000, 'a') + " HTTP/1.1\r\nHost: s\r\n\r\n");
    CHECK(RawStatus(answer) == 431);
  }
  SUBCASE("one header line over 8 KiB") {
    const std::string answer = RawExchange(
        port, "GET /healthz HTTP/1.1\r\nHost: s\r\nX-Big: " + std::string(9000, 'a') + "\r\n\r\n");
    CHECK(RawStatus(answer) == 431);
  }
  SUBCASE("a whole head over 64 KiB") {
    std::string head = "GET /healthz HTTP/1.1\r\nHost: s\r\n";
    for (int i = 0; i < 20; ++i) head += "X-Part: " + std::string(4000, 'a') + "\r\n";
    CHECK(RawStatus(RawExchange(port, head + "\r\n")) == 431);
  }
  SUBCASE("101 header fields") {
    std::string head = "GET /healthz HTTP/1.1\r\nHost: s\r\n";
    for (int i = 0; i < 100; ++i) head += "X-H" + std::to_string(i) + ": v\r\n";
    CHECK(RawStatus(RawExchange(port, head + "\r\n")) == 431);
  }
  SUBCASE("100 header fields are fine") {
    std::string head = "GET /healthz HTTP/1.1\r\nConnection: close\r\n";
    for (int i = 0; i < 98; ++i) head += "X-H" + std::to_string(i) + ": v\r\n";
    CHECK(RawStatus(RawExchange(port, head + "\r\n")) == 200);
  }
}

TEST_CASE("front: the token is checked before the body is read; 100-continue only after it") {
  Scenario s(UnreachableUrl(), NoProbeArgs());
  SUBCASE("no token: 401 and close, without waiting for the declared 8 MB") {
    RawConnection c(s.sendq->port());
    REQUIRE(
        c.Send("POST /v1/messages/batch HTTP/1.1\r\nHost: s\r\nContent-Type: application/json\r\n"
               "Content-Length: 8000000\r\nExpect: 100-continue\r\n\r\n"));
    std::optional<std::string> answer = c.ReadResponse();
    REQUIRE(answer.has_value());
    CHECK(RawStatus(*answer) == 401);  // not "100 Continue"
    CHECK(RawHeader(*answer, "Connection") == "close");
    CHECK(RawHeader(*answer, "WWW-Authenticate") == "Bearer");
    CHECK(c.WaitClosed());
  }
  SUBCASE("a wrong token on multipart/form-data is a 401 too, not a 500") {
    const std::string answer = RawExchange(
        s.sendq->port(),
        "POST /v1/messages HTTP/1.1\r\nHost: s\r\nAuthorization: Bearer wrong-token\r\n"
        "Content-Type: multipart/form-data; boundary=x\r\nContent-Length: 100000\r\n\r\n--x");
    CHECK(RawStatus(answer) == 401);
  }
  SUBCASE("a good token: 100 Continue, then the answer") {
    RawConnection c(s.sendq->port());
    const std::string body = ExampleBody();
    REQUIRE(c.Send("POST /v1/messages HTTP/1.1\r\nHost: s\r\n" + Bearer() +
                   "Content-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: " +
                   std::to_string(body.size()) + "\r\n\r\n"));
    std::optional<std::string> go_on = c.ReadResponse();
    REQUIRE(go_on.has_value());
    CHECK(RawStatus(*go_on) == 100);
    REQUIRE(c.Send(body));
    std::optional<std::string> answer = c.ReadResponse();
    REQUIRE(answer.has_value());
    CHECK(RawStatus(*answer) == 202);
  }
}

TEST_CASE("front: framing is strict, and a POST without a length has an empty body") {
  Scenario s(UnreachableUrl(), NoProbeArgs());
  const int port = s.sendq->port();
  SUBCASE("cancel and retry with neither Content-Length nor Transfer-Encoding answer at once") {
    RawConnection c(port, "", 5'000);
    REQUIRE(
        c.Send("POST /v1/messages/sq_01jdx4n7m3f2k8q9r5t6v7w8x9/cancel HTTP/1.1\r\nHost: s\r\n" +
               Bearer() + "\r\n"));
    std::optional<std::string> answer = c.ReadResponse();
    REQUIRE(answer.has_value());
    CHECK(RawStatus(*answer) == 404);
    CHECK(RawJson(*answer).at("code") == "not_found");
  }
  SUBCASE("Content-Length with Transfer-Encoding is 400") {
    const std::string answer =
        RawExchange(port, "POST /v1/messages HTTP/1.1\r\nHost: s\r\n" + Bearer() +
                              "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
    CHECK(RawStatus(answer) == 400);
  }
  SUBCASE("two differing Content-Lengths are 400") {
    const std::string answer =
        RawExchange(port, "POST /v1/messages HTTP/1.1\r\nHost: s\r\n" + Bearer() +
                              "Content-Length: 5\r\nContent-Length: 6\r\n\r\n"
                              "{}{}{}");
    CHECK(RawStatus(answer) == 400);
  }
  SUBCASE("a percent-encoded Content-Length is not decoded") {
    const std::string answer = RawExchange(port, "POST /v1/messages HTTP/1.1\r\nHost: s\r\n" +
                                                     Bearer() + "Content-Length: %36%36\r\n\r\n");
    CHECK(RawStatus(answer) == 400);
  }
  SUBCASE("a body that is not JSON is 415") {
    const std::string answer =
        RawExchange(port, "POST /v1/messages HTTP/1.1\r\nHost: s\r\n" + Bearer() +
                              "Content-Type: application/x-www-form-urlencoded\r\n"
                              "Content-Length: 3\r\n\r\na=b");
    CHECK(RawStatus(answer) == 415);
    CHECK(RawJson(answer).at("code") == "unsupported_media_type");
  }
  SUBCASE("the auth scheme is case-insensitive") {
    RawConnection c(port);
    REQUIRE(c.Send(RawEnqueue("Authorization: bearer " + std::string(kTestApiToken) + "\r\n")));
    std::optional<std::string> answer = c.ReadResponse();
    REQUIRE(answer.has_value());
    CHECK(RawStatus(*answer) == 202);
  }
}

TEST_CASE("front: pipelined requests are all answered, in order") {
  Scenario s(UnreachableUrl(), NoProbeArgs());
  RawConnection c(s.sendq->port());
  REQUIRE(c.Send("GET /healthz HTTP/1.1\r\nHost: s\r\n\r\n" + RawEnqueue() +
                 "GET /v1/messages/sq_01jdx4n7m3f2k8q9r5t6v7w8x9 HTTP/1.1\r\nHost: s\r\n" +
                 Bearer() + "\r\n"));
  std::vector<int> statuses;
  for (int i = 0; i < 3; ++i) {
    std::optional<std::string> answer = c.ReadResponse();
    REQUIRE(answer.has_value());
    statuses.push_back(RawStatus(*answer));
  }
  CHECK(statuses == std::vector<int>{200, 202, 404});
}

TEST_CASE("front: body limits are per route and configurable") {
  Scenario s(UnreachableUrl(),
             {"--max-body-bytes", "2048", "--backoff-base", "10m", "--backoff-max", "10m"});
  HttpResult big = s.sendq->Post("/v1/messages", ExampleRequest(std::string(3000, 'x')));
  CHECK(big.status == 413);
  CHECK(big.json.at("code") == "payload_too_large");
  CHECK(s.sendq->Post("/v1/messages", ExampleRequest()).status == 202);
  // The batch route keeps its own, larger limit.
  HttpResult batch = s.sendq->Post(
      "/v1/messages/batch", {{"messages", json::array({ExampleRequest(std::string(3000, 'x'))})}});
  CHECK(batch.status == 200);
}

TEST_CASE("front: a head or a body that does not arrive in time is 408") {
  Scenario s(UnreachableUrl(), {"--head-timeout", "300ms", "--body-timeout", "300ms",
                                "--backoff-base", "10m", "--backoff-max", "10m"});
  SUBCASE("head") {
    RawConnection c(s.sendq->port());
    REQUIRE(c.Send("GET /healthz HTTP/1.1\r\nHo"));
    const std::string answer = c.ReadUntilClosed();
    CHECK(RawStatus(answer) == 408);
  }
  SUBCASE("body") {
    RawConnection c(s.sendq->port());
    REQUIRE(c.Send("POST /v1/messages HTTP/1.1\r\nHost: s\r\n" + Bearer() +
                   "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"to_"));
    const std::string answer = c.ReadUntilClosed();
    CHECK(RawStatus(answer) == 408);
  }
  CHECK(s.sendq->Get("/healthz").status == 200);
}

TEST_CASE("front: long polls hold no thread, and a producer's open long polls are capped") {
  TempDir dir;
  SendqOptions options;
  options.upstream_url = UnreachableUrl();
  options.data_dir = dir.path();
  options.api_tokens = "a:token-of-a-1,b:token-of-b-1";
  options.bearer = "token-of-a-1";
  options.extra_args = {"--http-threads", "2", "--max-waits-per-producer", "20"};
  for (const std::string& arg : NoProbeArgs()) options.extra_args.push_back(arg);
  SendqProcess sendq(options);
  const std::string id = Enqueue(sendq);

  // Twenty long polls: with a thread each, they would hold the two request threads ten times.
  std::vector<std::unique_ptr<RawConnection>> waiting;
  const std::string poll = "GET /v1/messages/" + id + "?wait=60s HTTP/1.1\r\nHost: s\r\n" +
                           Bearer("token-of-a-1") + "\r\n";
  for (int i = 0; i < 20; ++i) {
    waiting.push_back(std::make_unique<RawConnection>(sendq.port()));
    REQUIRE(waiting.back()->Send(poll));
  }
  // Every one of them is waiting (they arrive on twenty connections, in any order).
  REQUIRE(WaitMetricLine(sendq, "sendq_long_polls_waiting 20"));
  // The 21st is refused at once.
  RawConnection extra(sendq.port());
  REQUIRE(extra.Send(poll));
  std::optional<std::string> refused = extra.ReadResponse();
  REQUIRE(refused.has_value());
  CHECK(RawStatus(*refused) == 429);
  CHECK(RawJson(*refused).at("code") == "too_many_waits");
  CHECK(RawHeader(*refused, "Retry-After") == "1");

  // Another producer is served meanwhile (within 10 s, where the waits last a minute).
  HttpResult other = sendq.Send("POST", "/v1/messages", ExampleBody(),
                                {{"Authorization", "Bearer token-of-b-1"}}, 10'000);
  CHECK(other.status == 202);

  // A change to the message answers every one of its long polls.
  REQUIRE(sendq.Send("POST", "/v1/messages/" + id + "/cancel", "").status == 200);
  for (auto& c : waiting) {
    std::optional<std::string> answer = c->ReadResponse();
    REQUIRE(answer.has_value());
    CHECK(RawStatus(*answer) == 200);
    CHECK(RawJson(*answer).at("status") == "canceled");
  }
  // Answered long polls no longer count against the cap.
  HttpResult again = sendq.Get("/v1/messages/" + id + "?wait=1s");
  CHECK(again.status == 200);
}

TEST_CASE("front: a second sendq on the same address fails: address already in use") {
  Scenario s(UnreachableUrl(), NoProbeArgs());
  // The same configuration again, database included: the port is what it reports.
  SendqOptions options = s.last_options;
  options.port = s.sendq->port();
  options.start_timeout_ms = 10'000;
  std::string error;
  try {
    SendqProcess second(options);
  } catch (const std::runtime_error& e) {
    error = e.what();
  }
  CHECK(error.find("address already in use") != std::string::npos);
  CHECK(error.find("127.0.0.1:" + std::to_string(s.sendq->port())) != std::string::npos);
  // The first one still has the port to itself.
  CHECK(s.sendq->Get("/healthz").status == 200);
}

TEST_CASE("front: the database, its WAL and its shared memory are readable by the owner only") {
  Scenario s(UnreachableUrl(), NoProbeArgs());
  Enqueue(*s.sendq);
  for (const char* suffix : {"", "-wal", "-shm"}) {
    struct stat st {};
    const std::string path = s.sendq->db_path() + suffix;
    REQUIRE(stat(path.c_str(), &st) == 0);
    INFO(path);
    CHECK((st.st_mode & 0777) == 0600);
  }
}

TEST_CASE("front: connections from one client address are bounded; others are still served") {
  Scenario s(UnreachableUrl(), {"--max-connections-per-client", "3", "--backoff-base", "10m",
                                "--backoff-max", "10m"});
  std::vector<std::unique_ptr<RawConnection>> idle;
  for (int i = 0; i < 3; ++i) {
    idle.push_back(std::make_unique<RawConnection>(s.sendq->port(), "127.0.0.3"));
    REQUIRE(idle.back()->connected());
  }
  // An answer on one of them proves that sendq has accepted all three.
  REQUIRE(idle.back()->Send("GET /healthz HTTP/1.1\r\nHost: s\r\n\r\n"));
  REQUIRE(idle.back()->ReadResponse().has_value());
  RawConnection fourth(s.sendq->port(), "127.0.0.3");
  const std::string refused = fourth.ReadUntilClosed();
  CHECK(RawStatus(refused) == 503);
  CHECK(RawJson(refused).at("code") == "too_many_connections");
  // Another address is not affected.
  CHECK(s.sendq->Get("/healthz").status == 200);
}

TEST_CASE("front: SIGTERM closes idle and stalled connections at once and answers in flight") {
  Scenario s({"--latency-ms", "3000"});
  const std::string id = Enqueue(*s.sendq);
  s.upstream->Received(1, 10'000);  // the send is in flight for three seconds
  RawConnection idle(s.sendq->port());
  RawConnection stalled(s.sendq->port());
  REQUIRE(stalled.Send("GET /healthz HTTP/1.1\r\nHo"));
  RawConnection poll(s.sendq->port());
  REQUIRE(poll.Send("GET /v1/messages/" + id + "?wait=60s HTTP/1.1\r\nHost: s\r\n" + Bearer() +
                    "\r\n"));
  // The long poll is waiting (and the event loop, having answered this, has read the others).
  REQUIRE(WaitMetricLine(*s.sendq, "sendq_long_polls_waiting 1"));

  s.sendq->process().Signal(SIGTERM);
  CHECK(idle.WaitClosed());
  CHECK(stalled.WaitClosed());
  CHECK_FALSE(s.sendq->process().Exited());  // still finishing the send in flight
  std::optional<std::string> answer = poll.ReadResponse();
  REQUIRE(answer.has_value());
  CHECK(RawStatus(*answer) == 200);
  CHECK(RawJson(*answer).at("status") == "sent");  // the send finished while draining
  CHECK(s.sendq->process().Wait(30'000) == 0);
}

}  // namespace
}  // namespace sendq::test
