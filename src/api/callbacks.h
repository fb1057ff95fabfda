// Producer callbacks: delivering the outbox's events to the producers' endpoints.
//
// Each change that raises an event (sent, failed, canceled, expired, unknown) writes it to the
// store's outbox in its own transaction; the deliverer's threads take due deliveries, POST the
// message's record to the endpoint, signed as AgentPhone signs its webhooks, and record every
// try. A delivery is retried with backoff (1 s doubling, at most 1 h between tries) until a 2xx
// or until 24 hours after its event; a crash mid-delivery makes it due again when its lease
// ends. The deliverer has its own threads and connections: a slow or dead endpoint delays
// only its own deliveries, never a message.
//
// Headers: X-Sendq-Signature: sha256=<hex HMAC-SHA256 of "{timestamp}.{body}">,
// X-Sendq-Timestamp (Unix seconds), X-Sendq-Event-Id (the same on every try), X-Sendq-Event.
// The secret of a registered endpoint is derived from the server's callback key and its id (so
// none is stored); a message's own callback_url is signed with its producer's callback secret.
//
// Thread-safety: Start once, Stop once; everything else is internal.
#pragma once

#include <condition_variable>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "store/store.h"
#include "util/clock.h"
#include "util/thread_annotations.h"

namespace sendq::api {

struct CallbackOptions {
  std::string key;             // the server's callback key (secret); signing secrets derive
  bool allow_http = false;     // --allow-http-callbacks
  bool allow_private = false;  // --allow-private-callbacks
  int threads = 4;
  DurationMs timeout = 10'000;                  // one try
  DurationMs give_up_after = 24 * 3'600'000LL;  // from the event
  DurationMs max_backoff = 3'600'000;
};

// "whsec_..." for a registered endpoint, and for a producer's own callback_urls.
std::string WebhookSecret(const std::string& key, const std::string& webhook_id);
std::string ProducerCallbackSecret(const std::string& key, const std::string& producer);

class CallbackDeliverer {
 public:
  CallbackDeliverer(store::Store* store, Clock* clock, CallbackOptions options);
  ~CallbackDeliverer();  // Stops if running.
  CallbackDeliverer(const CallbackDeliverer&) = delete;
  CallbackDeliverer& operator=(const CallbackDeliverer&) = delete;

  void Start();
  // Deliveries in flight finish (each is bounded by the timeout); the rest wait for the next
  // start.
  void Stop();

 private:
  void Loop();
  // Leases a due delivery to an endpoint no other thread is trying, and marks it busy.
  Result<std::vector<store::CallbackDelivery>> Claim(TimeMs now);
  // One try of `d`; records it.
  void Deliver(const store::CallbackDelivery& d);

  store::Store* const store_;
  Clock* const clock_;
  const CallbackOptions options_;
  std::unique_ptr<store::Subscription> subscription_;

  Mutex claim_mu_;  // the threads' claims take turns (never held with mu_ around a store call)
  Mutex mu_;
  std::condition_variable cv_;
  bool stopping_ GUARDED_BY(mu_) = false;
  uint64_t added_ GUARDED_BY(mu_) = 0;               // bumped when the store tells of new events
  std::set<std::string> busy_urls_ GUARDED_BY(mu_);  // endpoints with a try in flight
  std::vector<std::thread> threads_;
};

}  // namespace sendq::api
