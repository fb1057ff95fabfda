// A short version of tools/chaos/run's SIGKILL loop: sendq killed and restarted on the same
// database while producers enqueue and a faulty upstream answers, then the crash-safety
// invariants on the result. Kills are triggered by upstream arrivals (long polls), never by
// timers, so the test does not depend on the machine's speed.
#include <doctest/doctest.h>
#include <signal.h>
#include <sqlite3.h>

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <thread>

#include "chaos/order_check.h"
#include "scenario.h"

namespace sendq::test {
namespace {

// The running sendq, swapped on every restart. Producers take a reference to the current one
// for each request; a request to a killed one fails and waits here for the next.
class CurrentSendq {
 public:
  explicit CurrentSendq(SendqOptions options) : options_(std::move(options)) {
    current_ = std::make_shared<SendqProcess>(options_);
  }

  std::shared_ptr<SendqProcess> Get() {
    std::lock_guard<std::mutex> lock(mu_);
    return current_;
  }

  // Waits until a sendq other than `old` runs, or `timeout_ms` passes.
  std::shared_ptr<SendqProcess> WaitForNewer(const std::shared_ptr<SendqProcess>& old,
                                             int timeout_ms) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] { return current_ != old; });
    return current_;
  }

  // SIGKILL, then a new process on the same database. Returns the killed one's exit status.
  int KillAndRestart() {
    std::shared_ptr<SendqProcess> old = Get();
    const int status = old->process().Kill();
    auto fresh = std::make_shared<SendqProcess>(options_);
    {
      std::lock_guard<std::mutex> lock(mu_);
      current_ = std::move(fresh);
    }
    cv_.notify_all();
    return status;
  }

 private:
  const SendqOptions options_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::shared_ptr<SendqProcess> current_;
};

struct Acked {
  std::string key;
  std::string id;
};

// Reads one integer from the stopped sendq's database (read-only).
int64_t QueryInt(const std::string& db_path, const std::string& sql) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open_v2(("file:" + db_path + "?mode=ro").c_str(), &db,
                          SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, nullptr) == SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  REQUIRE(sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK);
  REQUIRE(sqlite3_step(stmt) == SQLITE_ROW);
  const int64_t value = sqlite3_column_int64(stmt, 0);
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return value;
}

std::string IntegrityCheck(const std::string& db_path) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open_v2(("file:" + db_path + "?mode=ro").c_str(), &db,
                          SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, nullptr) == SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  REQUIRE(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &stmt, nullptr) == SQLITE_OK);
  std::string result;
  while (sqlite3_step(stmt) == SQLITE_ROW) {
    result += reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
  }
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return result;
}

TEST_CASE("chaos: SIGKILL loop under producers and a faulty upstream keeps every promise") {
  constexpr int kProducers = 4;
  constexpr int kCycles = 3;
  constexpr int kMaxPerProducer = 60;  // the bound; producers normally stop before
  // The fake's faults as in tools/chaos/run. Its 429 carries Retry-After: 1, so a few
  // messages wait a second; the rest is fast retry settings.
  TempDir dir;
  FakeUpstream upstream(
      {"--token", kTestUpstreamToken, "--error-rate", "0.1", "--rate-429", "0.05", "--drop-rate",
       "0.05", "--accept-then-drop-rate", "0.05", "--latency-jitter-ms", "20"},
      dir.path());
  SendqOptions options;
  options.upstream_url = upstream.url();
  options.data_dir = dir.path();
  options.extra_args = FastRetryArgs();
  options.extra_args.insert(options.extra_args.end(), {"--workers", "4"});
  CurrentSendq sendq(options);

  std::mutex mu;
  std::vector<Acked> acked;
  int64_t replay_mismatches = 0;
  int64_t unanswered = 0;
  std::atomic<bool> stop{false};
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      for (int i = 0; i < kMaxPerProducer && !stop; ++i) {
        const std::string key = "chaos-p" + std::to_string(p) + "-" + std::to_string(i);
        const nlohmann::json request = {
            {"agent_id", "agent_12345abcde"},
            // Three conversations per producer, so that order is at stake.
            {"to_number", "+1555" + std::to_string(1'000'000 + p * 1000 + i % 3)},
            {"body", "chaos " + key}};
        // Retried with the same key until answered: a request without an answer may or may
        // not have been stored, and only the key makes asking again safe.
        std::shared_ptr<SendqProcess> target = sendq.Get();
        bool lost_answer = false;
        HttpResult r;
        for (int attempt = 0; attempt < 20; ++attempt) {
          r = target->Post("/v1/messages", request, {{"Idempotency-Key", key}}, 10'000);
          if (r.status != 0) break;
          lost_answer = true;
          target = sendq.WaitForNewer(target, 30'000);
        }
        std::lock_guard<std::mutex> lock(mu);
        if (r.status == 0) {
          ++unanswered;
          continue;
        }
        INFO("key " << key << ": " << r.status << " " << r.body);
        CHECK((r.status == 202 || (lost_answer && r.status == 200)));
        if (r.status == 200) CHECK(r.Header("Idempotent-Replayed") == "true");
        if (r.status != 202 && r.status != 200) continue;
        acked.push_back({key, r.json.at("id").get<std::string>()});
        // Every 5th: the same key again must name the same message.
        if (i % 5 == 4) {
          HttpResult again =
              target->Post("/v1/messages", request, {{"Idempotency-Key", key}}, 10'000);
          if (again.status != 0 &&
              (again.status != 200 || again.json.at("id") != acked.back().id)) {
            ++replay_mismatches;
          }
        }
      }
    });
  }

  // Each kill comes once the upstream has seen a few more sends: work is in flight.
  for (int cycle = 1; cycle <= kCycles; ++cycle) {
    upstream.Received(cycle * 12, 30'000);
    CHECK(sendq.KillAndRestart() == 128 + SIGKILL);
  }
  stop = true;
  for (auto& t : producers) t.join();
  CHECK(unanswered == 0);
  CHECK(replay_mismatches == 0);
  REQUIRE(acked.size() >= 12);

  // Every acknowledged message ends sent (long polls), and every key still names its message.
  std::shared_ptr<SendqProcess> last = sendq.Get();
  for (const Acked& a : acked) {
    nlohmann::json record = WaitFinal(*last, a.id, 60'000);
    INFO("message " << a.id << ": " << record.dump());
    CHECK(record.at("status") == "sent");
  }
  HttpResult sending = last->Get("/v1/messages?status=sending");
  CHECK(sending.json.at("data").empty());

  // The upstream accepted each message exactly once. Kills mid-send and answers dropped after
  // the fake accepted leave outcomes unknown; each is looked up before anything is resent.
  std::map<std::string, int> accepted;
  const nlohmann::json sends = upstream.Sent();
  for (const auto& send : sends.at("sends")) {
    ++accepted[send.at("idempotency_key").get<std::string>()];
  }
  std::set<std::string> ids;
  std::set<std::string> with_unknown;  // messages whose ledger has an unknown attempt
  for (const Acked& a : acked) {
    ids.insert(a.id);
    INFO("message " << a.id);
    CHECK(accepted[a.id] == 1);
    const HttpResult ledger = last->Get("/v1/messages/" + a.id + "/attempts");
    for (const auto& attempt : ledger.json.at("data")) {
      if (attempt.at("outcome") == "unknown") with_unknown.insert(a.id);
    }
  }
  for (const auto& [key, n] : accepted) {
    INFO("upstream accepted " << key);
    CHECK(ids.count(key) == 1);  // nothing sent that no producer was told about
  }
  // Every conversation arrived in the order its producer enqueued it (a producer waits for each
  // answer before the next), except where a message's unknown attempt was resent.
  std::map<std::string, int64_t> place;
  for (const Acked& a : acked) {
    place[a.id] = std::stoll(a.key.substr(a.key.rfind('-') + 1));
  }
  std::vector<chaos::AcceptedSend> in_order;
  for (const auto& send : sends.at("sends")) {
    in_order.push_back({send.at("body").at("to_number").get<std::string>(),
                        send.at("idempotency_key").get<std::string>()});
  }
  const chaos::OrderCheck order = chaos::CheckConversationOrder(in_order, place, with_unknown);
  INFO("order violations: " << nlohmann::json(order.examples).dump());
  CHECK(order.checked_sends == static_cast<int64_t>(ids.size()));
  CHECK(order.violations == order.violations_with_unknown_attempt);
  MESSAGE("acknowledged " << acked.size() << ", " << with_unknown.size()
                          << " with an unknown attempt, settled without a duplicate");

  // A clean stop, then the database itself.
  last->process().Signal(SIGTERM);
  auto exit_status = last->process().Wait(30'000);
  REQUIRE(exit_status.has_value());
  CHECK(*exit_status == 0);
  const std::string db = dir.path() + "/sendq.db";
  CHECK(IntegrityCheck(db) == "ok");
  CHECK(QueryInt(db, "SELECT count(*) FROM messages WHERE status <> 2") == 0);  // 2: sent
  CHECK(QueryInt(db, "SELECT count(*) FROM attempts WHERE outcome IS NULL") == 0);
  CHECK(QueryInt(db, "SELECT count(*) FROM messages") == static_cast<int64_t>(ids.size()));
}

}  // namespace
}  // namespace sendq::test
