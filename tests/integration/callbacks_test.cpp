// Producer callbacks: signed events to the producers' endpoints, retried, never lost.
#include <doctest/doctest.h>
#include <httplib.h>

#include <condition_variable>
#include <mutex>
#include <thread>

#include "scenario.h"
#include "util/hmac.h"

namespace sendq::test {
namespace {

using Flags = std::vector<std::string>;
const Flags kLocalCallbacks = {"--allow-http-callbacks", "--allow-private-callbacks"};

// A callback endpoint on loopback that records what it receives and fails the first
// `fail_first` requests with 500.
class Receiver {
 public:
  struct Got {
    std::string body;
    std::string signature;
    std::string timestamp;
    std::string event_id;
    std::string event;
    int answered = 0;
  };

  explicit Receiver(int fail_first = 0, int port = 0) : fail_first_(fail_first) {
    server_.set_tcp_nodelay(true);
    server_.Post("/hook", [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard<std::mutex> lock(mu_);
      Got got{req.body,
              req.get_header_value("X-Sendq-Signature"),
              req.get_header_value("X-Sendq-Timestamp"),
              req.get_header_value("X-Sendq-Event-Id"),
              req.get_header_value("X-Sendq-Event"),
              static_cast<int>(got_.size()) < fail_first_ ? 500 : 200};
      res.status = got.answered;
      res.set_content("{}", "application/json");
      got_.push_back(std::move(got));
      cv_.notify_all();
    });
    port_ = port == 0 ? server_.bind_to_any_port("127.0.0.1") : port;
    if (port != 0) REQUIRE(server_.bind_to_port("127.0.0.1", port));
    thread_ = std::thread([this] { server_.listen_after_bind(); });
  }
  ~Receiver() {
    server_.stop();
    thread_.join();
  }

  int port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/hook"; }

  // Waits (up to 30 s) until `n` requests were answered 2xx; returns everything received.
  std::vector<Got> WaitDelivered(int n) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, std::chrono::seconds(30), [&] { return Delivered() >= n; });
    return got_;
  }

 private:
  int Delivered() const {
    int n = 0;
    for (const Got& g : got_) n += g.answered == 200 ? 1 : 0;
    return n;
  }

  const int fail_first_;
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Got> got_;
};

bool SignedWith(const std::string& secret, const Receiver::Got& got) {
  return got.signature == "sha256=" + HmacSha256Hex(secret, got.timestamp + "." + got.body);
}

TEST_CASE("callbacks: a registered endpoint gets signed events, retried until it answers") {
  Scenario s(Flags{}, kLocalCallbacks);
  Receiver receiver(/*fail_first=*/2);
  HttpResult added =
      s.sendq->Post("/v1/webhooks", {{"url", receiver.url()}, {"events", {"message.sent"}}});
  REQUIRE(added.status == 201);
  const std::string webhook = added.json.at("id");
  const std::string secret = added.json.at("secret");
  CHECK(secret.rfind("whsec_", 0) == 0);
  // The secret is shown once: neither the list nor the endpoint's record repeats it.
  HttpResult listed = s.sendq->Get("/v1/webhooks");
  REQUIRE(listed.json.at("data").size() == 1);
  CHECK_FALSE(listed.json["data"][0].contains("secret"));
  CHECK_FALSE(s.sendq->Get("/v1/webhooks/" + webhook).json.contains("secret"));

  const std::string id = Enqueue(*s.sendq);
  std::vector<Receiver::Got> got = receiver.WaitDelivered(1);
  REQUIRE(got.size() == 3);
  for (const Receiver::Got& g : got) {
    CHECK(SignedWith(secret, g));
    CHECK(g.event == "message.sent");
    CHECK(g.event_id == got[0].event_id);  // stable across retries
  }
  nlohmann::json record = nlohmann::json::parse(got[2].body);
  CHECK(record.at("id") == id);
  CHECK(record.at("status") == "sent");

  // The receiver has answered; sendq records the try right after. Asks until it has (bounded).
  HttpResult deliveries;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  do {
    deliveries = s.sendq->Get("/v1/webhooks/" + webhook + "/deliveries");
    REQUIRE(deliveries.status == 200);
  } while (deliveries.json.at("data").size() == 1 &&
           deliveries.json["data"][0].at("state") != "delivered" &&
           std::chrono::steady_clock::now() < deadline);
  REQUIRE(deliveries.json.at("data").size() == 1);
  const nlohmann::json& d = deliveries.json["data"][0];
  CHECK(d.at("state") == "delivered");
  CHECK(d.at("event_id") == got[0].event_id);
  REQUIRE(d.at("tries").size() == 3);
  CHECK(d["tries"][0].at("http_status") == 500);
  CHECK(d["tries"][2].at("http_status") == 200);

  CHECK(s.sendq->Send("DELETE", "/v1/webhooks/" + webhook, "").status == 200);
  CHECK(s.sendq->Get("/v1/webhooks/" + webhook).status == 404);
}

TEST_CASE("callbacks: a message's own callback_url gets its events, signed with the producer's") {
  Scenario s(Flags{}, kLocalCallbacks);
  Receiver receiver;
  s.upstream->SetConfig({{"force_status", 422}});
  nlohmann::json request = ExampleRequest();
  request["sendq"] = {{"callback_url", receiver.url()}};
  const std::string id = Enqueue(*s.sendq, request);
  std::vector<Receiver::Got> got = receiver.WaitDelivered(1);
  REQUIRE(got.size() == 1);
  CHECK(got[0].event == "message.failed");
  const std::string secret = s.sendq->Get("/v1/callback-secret").json.at("secret");
  CHECK(SignedWith(secret, got[0]));
  CHECK(nlohmann::json::parse(got[0].body).at("id") == id);
}

TEST_CASE("callbacks: http and private endpoints are refused unless allowed") {
  Scenario s;
  Receiver receiver;
  HttpResult http = s.sendq->Post("/v1/webhooks", {{"url", receiver.url()}});
  CHECK(http.status == 422);
  CHECK(http.json.at("detail")[0].at("msg").get<std::string>().find("https") != std::string::npos);
  HttpResult loopback = s.sendq->Post("/v1/webhooks", {{"url", "https://127.0.0.1/hook"}});
  CHECK(loopback.status == 422);
  CHECK(loopback.json.at("detail")[0].at("msg").get<std::string>().find("private") !=
        std::string::npos);
  HttpResult bad_event = s.sendq->Post(
      "/v1/webhooks", {{"url", "https://example.invalid/h"}, {"events", {"message.maybe"}}});
  CHECK(bad_event.status == 422);
  nlohmann::json request = ExampleRequest();
  request["sendq"] = {{"callback_url", receiver.url()}};
  HttpResult message = s.sendq->Post("/v1/messages", request);
  CHECK(message.status == 422);
  CHECK(message.json.at("detail")[0].at("loc") ==
        nlohmann::json({"body", "sendq", "callback_url"}));
  request["sendq"] = {{"callback_url", "https://127.0.0.1:9/hook"}};
  HttpResult internal = s.sendq->Post("/v1/messages", request);
  CHECK(internal.status == 422);
  CHECK(internal.json.at("detail")[0].at("msg").get<std::string>().find("private") !=
        std::string::npos);
}

TEST_CASE("callbacks: events are not lost when sendq is killed before delivering them") {
  const int port = FreeLoopbackPort();
  Scenario s(Flags{}, kLocalCallbacks);
  const std::string url = "http://127.0.0.1:" + std::to_string(port) + "/hook";
  REQUIRE(s.sendq->Post("/v1/webhooks", {{"url", url}, {"events", {"message.sent"}}}).status ==
          201);
  // Nobody listens yet: the event waits in the outbox.
  const std::string id = Enqueue(*s.sendq);
  CHECK(WaitFinal(*s.sendq, id).at("status") == "sent");
  CHECK(s.sendq->process().Kill() == 128 + SIGKILL);
  Receiver receiver(/*fail_first=*/0, port);
  s.RestartSendq();
  std::vector<Receiver::Got> got = receiver.WaitDelivered(1);
  REQUIRE(got.size() == 1);
  CHECK(nlohmann::json::parse(got[0].body).at("id") == id);
}

}  // namespace
}  // namespace sendq::test
