#include "api/callbacks.h"

#include <fmt/format.h>
#include <httplib.h>

#include <algorithm>
#include <random>

#include "api/records.h"
#include "util/callback_url.h"
#include "util/hmac.h"
#include "util/log.h"
#include "util/process.h"

namespace sendq::api {
namespace {

// How long a try holds its delivery: its timeout applies to the connect, the write and each
// read, so a few of them, and a margin. Past it (a hung thread) the delivery is due again and
// the late try is not recorded; a restart voids the leases of the process before it at once.
constexpr int kLeaseTimeouts = 4;
constexpr DurationMs kLeaseMargin = 5'000;
// Without news from the store, the deliverer looks again this often.
constexpr DurationMs kIdleWait = 5'000;

}  // namespace

std::string WebhookSecret(const std::string& key, const std::string& webhook_id) {
  return "whsec_" + HmacSha256Hex(key, "webhook:" + webhook_id);
}

std::string ProducerCallbackSecret(const std::string& key, const std::string& producer) {
  return "whsec_" + HmacSha256Hex(key, "producer:" + producer);
}

CallbackDeliverer::CallbackDeliverer(store::Store* store, Clock* clock, CallbackOptions options)
    : store_(store), clock_(clock), options_(std::move(options)) {}

CallbackDeliverer::~CallbackDeliverer() { Stop(); }

void CallbackDeliverer::Start() {
  subscription_ = store_->Subscribe([this](const store::Changes& changes) {
    if (!changes.callbacks_added) return;
    {
      MutexLock guard(&mu_);
      ++added_;
    }
    cv_.notify_all();
  });
  for (int i = 0; i < options_.threads; ++i) {
    threads_.emplace_back([this] {
      NameThisThread("sendq-callback");
      Loop();
    });
  }
}

void CallbackDeliverer::Stop() {
  subscription_.reset();
  {
    MutexLock guard(&mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (std::thread& t : threads_) t.join();
  threads_.clear();
}

void CallbackDeliverer::Loop() {
  for (;;) {
    uint64_t seen = 0;
    {
      MutexLock guard(&mu_);
      if (stopping_) return;
      seen = added_;
    }
    const TimeMs now = clock_->NowMs();
    Result<std::vector<store::CallbackDelivery>> claimed = Claim(now);
    if (claimed.ok() && !claimed->empty()) {
      for (const store::CallbackDelivery& d : *claimed) {
        Deliver(d);
        MutexLock guard(&mu_);
        busy_urls_.erase(d.url);
      }
      continue;
    }
    TimeMs until = now + kIdleWait;
    if (!claimed.ok()) {
      log::Error("callback_claim_failed", {{"error", claimed.status().ToString()}});
    } else if (Result<std::optional<TimeMs>> next = store_->NextCallbackAt(); next.ok() && *next) {
      until = std::clamp(**next, now, until);
    }
    MutexLock lock(&mu_);
    clock_->WaitUntil(cv_, lock.native(), until,
                      [&]() REQUIRES(mu_) { return stopping_ || added_ != seen; });
  }
}

Result<std::vector<store::CallbackDelivery>> CallbackDeliverer::Claim(TimeMs now) {
  // One try at a time per endpoint, so a slow or dead one holds one thread, not all of them:
  // the claims of the threads take turns, each leaving out the endpoints in flight.
  MutexLock claiming(&claim_mu_);
  std::vector<std::string> busy;
  {
    MutexLock guard(&mu_);
    busy.assign(busy_urls_.begin(), busy_urls_.end());
  }
  Result<std::vector<store::CallbackDelivery>> claimed =
      store_->ClaimCallbacks(now, 1, kLeaseTimeouts * options_.timeout + kLeaseMargin, busy);
  if (claimed.ok()) {
    MutexLock guard(&mu_);
    for (const store::CallbackDelivery& d : *claimed) busy_urls_.insert(d.url);
  }
  return claimed;
}

void CallbackDeliverer::Deliver(const store::CallbackDelivery& d) {
  store::CallbackTry attempt;
  attempt.number = d.attempts + 1;
  attempt.started_at = clock_->NowMs();
  bool delivered = false;
  std::string address;  // what the check resolved the host to: the delivery connects there
  std::string problem = VetCallbackUrl(d.url, options_.allow_http, options_.allow_private,
                                       /*resolve=*/!options_.allow_private, &address);
  Result<Message> message = store_->Get(d.producer, d.message_id);
  std::optional<CallbackUrl> url = ParseCallbackUrl(d.url);
  if (problem.empty() && !message.ok())
    problem = "reading the message: " + message.status().ToString();
  if (problem.empty() && url) {
    const std::string body = MessageRecord(*message).dump();
    const std::string timestamp = std::to_string(attempt.started_at / 1000);
    const std::string secret = d.webhook_id ? WebhookSecret(options_.key, *d.webhook_id)
                                            : ProducerCallbackSecret(options_.key, d.producer);
    httplib::Client client(url->origin);
    client.set_tcp_nodelay(true);
    if (!address.empty()) client.set_hostname_addr_map({{url->host, address}});
    const DurationMs t = options_.timeout;
    client.set_connection_timeout(t / 1000, (t % 1000) * 1000);
    client.set_read_timeout(t / 1000, (t % 1000) * 1000);
    client.set_write_timeout(t / 1000, (t % 1000) * 1000);
    httplib::Headers headers = {{"User-Agent", "sendq/1.0"},
                                {"X-Sendq-Signature", WebhookSignature(secret, timestamp, body)},
                                {"X-Sendq-Timestamp", timestamp},
                                {"X-Sendq-Event-Id", d.event_id},
                                {"X-Sendq-Event", d.event}};
    httplib::Result result = client.Post(url->path, headers, body, "application/json");
    if (result) {
      attempt.http_status = result->status;
      delivered = result->status >= 200 && result->status < 300;
      if (!delivered) attempt.error = fmt::format("the endpoint answered {}", result->status);
    } else {
      attempt.error = "no answer: " + httplib::to_string(result.error());
    }
  } else {
    attempt.error = problem.empty() ? "not an http(s) URL" : problem;
  }
  attempt.finished_at = clock_->NowMs();
  std::optional<TimeMs> next;
  if (!delivered) {
    // Full jitter over a doubling step, from 1 s up to max_backoff.
    const DurationMs step =
        std::min<DurationMs>(options_.max_backoff, 1000LL << std::min(attempt.number - 1, 22));
    thread_local std::mt19937_64 rng(std::random_device{}());
    const DurationMs delay = std::uniform_int_distribution<DurationMs>(step / 2, step)(rng);
    if (attempt.finished_at + delay < d.created_at + options_.give_up_after) {
      next = attempt.finished_at + delay;
    }
  }
  if (Status st = store_->RecordCallback(d, attempt, delivered, next); !st.ok()) {
    log::Error("callback_record_failed", {{"event_id", d.event_id}, {"error", st.ToString()}});
  }
  log::Info(delivered ? "callback_delivered" : "callback_failed",
            {{"event_id", d.event_id},
             {"event", d.event},
             {"message_id", d.message_id},
             {"attempt", attempt.number},
             {"http_status",
              attempt.http_status ? nlohmann::json(*attempt.http_status) : nlohmann::json(nullptr)},
             {"given_up", !delivered && !next}});
}

}  // namespace sendq::api
