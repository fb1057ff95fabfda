#include "delivery/dispatcher.h"

#include <doctest/doctest.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <future>
#include <mutex>

#include "delivery/intake.h"
#include "store/store_wrapper.h"
#include "store_fixture.h"

namespace sendq::delivery {
namespace {

// An upstream that answers from a script and counts its calls. The first call waits until
// ReleaseFirstCall(), so a test can hold a send in flight.
class ScriptedUpstream {
 public:
  explicit ScriptedUpstream(std::vector<int> statuses) : statuses_(std::move(statuses)) {}

  void ReleaseFirstCall() {
    std::lock_guard<std::mutex> lock(mu_);
    first_call_released_ = true;
    cv_.notify_all();
  }

  UpstreamClientFactory Factory() {
    return [this] { return std::make_unique<Client>(this); };
  }

  // Blocks (bounded, in real time) until at least `n` calls were made.
  bool WaitForCalls(int n, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return calls_ >= n; });
  }

 private:
  class Client : public UpstreamClient {
   public:
    explicit Client(ScriptedUpstream* script) : script_(script) {}
    UpstreamResponse Send(const std::string&, const std::string&) override {
      std::unique_lock<std::mutex> lock(script_->mu_);
      UpstreamResponse r;
      size_t i = static_cast<size_t>(script_->calls_++);
      script_->cv_.notify_all();
      if (i == 0) {
        script_->cv_.wait_for(lock, std::chrono::seconds(10),
                              [&] { return script_->first_call_released_; });
      }
      r.http_status = script_->statuses_[std::min(i, script_->statuses_.size() - 1)];
      r.body = r.http_status == 200 ? R"({"id":"msg_1","status":"sent"})" : "{}";
      return r;
    }

   private:
    ScriptedUpstream* script_;
  };

  std::mutex mu_;
  std::condition_variable cv_;
  int calls_ = 0;                     // GUARDED_BY(mu_)
  bool first_call_released_ = false;  // GUARDED_BY(mu_)
  std::vector<int> statuses_;
};

// Spins (bounded, in real time) until `dispatcher` has finished at least `n` jobs: the jobs run
// on its own threads, with nothing to wait on from outside.
void WaitForCompletions(Dispatcher& dispatcher, uint64_t n) {
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (dispatcher.TEST_Completions() < n && std::chrono::steady_clock::now() < give_up) {
    std::this_thread::yield();
  }
}

// The real store, with one-shot hooks: one runs after NextWakeAt has read the database and
// before it answers (a window in which the test can make other threads act), one after Claim.
class StoreWithHooks : public store::StoreWrapper {
 public:
  explicit StoreWithHooks(store::Store* inner) : StoreWrapper(inner) {}
  // The dispatcher's thread runs the hooks; the test sets them while it runs.
  void SetAfterNextWakeRead(std::function<void()> hook) { Set(after_next_wake_read_, hook); }
  void SetAfterClaim(std::function<void()> hook) { Set(after_claim_, hook); }

  Result<std::optional<TimeMs>> NextWakeAt() override {
    auto answer = StoreWrapper::NextWakeAt();
    if (auto hook = Take(after_next_wake_read_)) hook();
    return answer;
  }
  Result<std::vector<store::ClaimedMessage>> Claim(const store::ClaimOptions& o) override {
    auto answer = StoreWrapper::Claim(o);
    if (auto hook = Take(after_claim_)) hook();
    return answer;
  }

 private:
  void Set(std::function<void()>& slot, std::function<void()> hook) {
    std::lock_guard<std::mutex> guard(mu_);
    slot = std::move(hook);
  }
  // The hook in `slot`, once: it is cleared.
  std::function<void()> Take(std::function<void()>& slot) {
    std::lock_guard<std::mutex> guard(mu_);
    return std::exchange(slot, nullptr);
  }

  std::mutex mu_;
  std::function<void()> after_next_wake_read_;  // GUARDED_BY(mu_)
  std::function<void()> after_claim_;           // GUARDED_BY(mu_)
};

TEST_CASE("dispatcher: a retry rescheduled while the dispatcher reads the store is not lost") {
  test::StoreFixture f;
  StoreWithHooks store(&f.store());
  UpstreamCircuit circuit(&f.clock(), UpstreamCircuit::Options{});
  Metrics metrics;
  ScriptedUpstream upstream({503, 200});
  DispatcherOptions options;
  options.workers = 4;
  options.lease = 60'000;
  options.policy.backoff = {1000, 1000};  // the retry is due exactly 1 s later
  Dispatcher dispatcher(&store, &circuit, &metrics, &f.clock(), upstream.Factory(), options);

  Message m = f.Enqueue();
  dispatcher.Start();
  dispatcher.WakeUp();
  REQUIRE(upstream.WaitForCalls(1));  // the first send is in flight and held there

  // A second claim pass finds nothing due and asks the store for its next deadline: the
  // lease, 60 s away. Between that read and its answer, the first send gets 503 and the
  // worker reschedules the message for 1 s later. The stale answer must not hide that retry.
  store.SetAfterNextWakeRead([&] {
    upstream.ReleaseFirstCall();
    WaitForCompletions(dispatcher, 1);
  });
  dispatcher.WakeUp();
  REQUIRE(upstream.WaitForCalls(1));
  WaitForCompletions(dispatcher, 1);
  REQUIRE(dispatcher.TEST_Completions() == 1);
  f.clock().Advance(1000);
  CHECK(upstream.WaitForCalls(2));
  CHECK(dispatcher.Stop(f.clock().NowMs() + 10'000) == 0);
  auto got = f.store().Get("alice", m.id);
  REQUIRE(got.ok());
  CHECK(got->status == MessageStatus::kSent);
  CHECK(got->attempts == 2);
}

TEST_CASE("dispatcher: a claim whose lease could run out during the send goes back unsent") {
  test::StoreFixture f;
  StoreWithHooks store(&f.store());
  UpstreamCircuit circuit(&f.clock(), UpstreamCircuit::Options{});
  Metrics metrics;
  ScriptedUpstream upstream({200});
  upstream.ReleaseFirstCall();
  DispatcherOptions options;
  options.workers = 1;
  options.lease = 60'000;
  options.upstream_timeout = 30'000;
  // The claim is held 31 s before its send would start (as a message a worker holds behind
  // another send can be): only 29 s of its lease are left, less than a send may take.
  store.SetAfterClaim([&] { f.clock().Advance(31'000); });
  Dispatcher dispatcher(&store, &circuit, &metrics, &f.clock(), upstream.Factory(), options);
  Message m = f.Enqueue();
  dispatcher.Start();
  dispatcher.WakeUp();
  REQUIRE(upstream.WaitForCalls(1));
  WaitForCompletions(dispatcher, 2);
  CHECK(dispatcher.TEST_Completions() == 2);  // put back, then sent under a fresh lease
  CHECK(dispatcher.Stop(f.clock().NowMs() + 10'000) == 0);
  auto got = f.store().Get("alice", m.id);
  REQUIRE(got.ok());
  CHECK(got->status == MessageStatus::kSent);
  CHECK(got->attempts == 1);
  auto attempts = f.store().ListAttempts("alice", m.id);
  REQUIRE(attempts.ok());
  CHECK(attempts->size() == 1);  // the unused claim left no attempt behind
}

// Blocks (bounded, in real time) until `Set()` was called.
class Latch {
 public:
  void Set() {
    std::lock_guard<std::mutex> lock(mu_);
    set_ = true;
    cv_.notify_all();
  }
  bool Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(10), [&] { return set_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool set_ = false;  // GUARDED_BY(mu_)
};

TEST_CASE("dispatcher: a store that cannot tell of changes is polled at poll_interval") {
  test::StoreFixture f;
  StoreWithHooks hooks(&f.store());
  store::FaultyStore store(&hooks);
  store.set_cannot_notify(true);
  UpstreamCircuit circuit(&f.clock(), UpstreamCircuit::Options{});
  Metrics metrics;
  ScriptedUpstream upstream({200});
  upstream.ReleaseFirstCall();
  DispatcherOptions options;
  options.workers = 2;
  options.poll_interval = 1000;
  Dispatcher dispatcher(&store, &circuit, &metrics, &f.clock(), upstream.Factory(), options);
  Latch looked;  // the first claim pass found nothing and read the next deadline
  hooks.SetAfterNextWakeRead([&] { looked.Set(); });
  dispatcher.Start();
  REQUIRE(looked.Wait());
  // Enqueued behind the dispatcher's back (as by another process): only the poll finds it.
  Message m = f.Enqueue();
  // The dispatcher reads the clock for its next poll after `looked`: if it reads it only after
  // this Advance, its poll is one interval later still, so move on by intervals until it polls.
  bool sent = false;
  for (int interval = 0; interval < 20 && !sent; ++interval) {
    f.clock().Advance(1000);
    sent = upstream.WaitForCalls(1, std::chrono::milliseconds(500));
  }
  REQUIRE(sent);
  WaitForCompletions(dispatcher, 1);
  CHECK(dispatcher.Stop(f.clock().NowMs() + 10'000) == 0);
  auto got = f.store().Get("alice", m.id);
  REQUIRE(got.ok());
  CHECK(got->status == MessageStatus::kSent);
}

TEST_CASE("dispatcher: after a failed claim it claims again, and the message is delivered") {
  test::StoreFixture f;
  store::FaultyStore faulty(&f.store());
  faulty.set_claims_fail(true);
  StoreWithHooks store(&faulty);
  UpstreamCircuit circuit(&f.clock(), UpstreamCircuit::Options{});
  Metrics metrics;
  ScriptedUpstream upstream({200});
  upstream.ReleaseFirstCall();
  DispatcherOptions options;
  options.workers = 2;
  Dispatcher dispatcher(&store, &circuit, &metrics, &f.clock(), upstream.Factory(), options);
  Message m = f.Enqueue();
  Latch failed;
  store.SetAfterClaim([&] {
    faulty.set_claims_fail(false);  // the store recovers after this one failure
    failed.Set();
  });
  dispatcher.Start();
  REQUIRE(failed.Wait());
  auto queued = f.store().Get("alice", m.id);
  REQUIRE(queued.ok());
  CHECK(queued->status == MessageStatus::kQueued);  // nothing lost, nothing charged
  f.clock().Advance(1000);                          // the pause after a store error
  REQUIRE(upstream.WaitForCalls(1));
  WaitForCompletions(dispatcher, 1);
  CHECK(dispatcher.Stop(f.clock().NowMs() + 10'000) == 0);
  auto got = f.store().Get("alice", m.id);
  REQUIRE(got.ok());
  CHECK(got->status == MessageStatus::kSent);
  CHECK(got->attempts == 1);
}

TEST_CASE("intake: a full disk answers NoSpace, stores nothing and frees the reserved worker") {
  test::StoreFixture f;
  store::FaultyStore store(&f.store());
  UpstreamCircuit circuit(&f.clock(), UpstreamCircuit::Options{});
  Metrics metrics;
  ScriptedUpstream upstream({200});
  upstream.ReleaseFirstCall();
  DispatcherOptions options;
  options.workers = 1;
  Dispatcher dispatcher(&store, &circuit, &metrics, &f.clock(), upstream.Factory(), options);
  IdGenerator ids(&f.clock());
  Intake intake(&store, &dispatcher, &metrics, &ids, ControlDefaults{});
  dispatcher.Start();

  store.set_disk_full(true);
  std::promise<Result<store::EnqueueResult>> answer;
  intake.Enqueue(f.NewMessage(),
                 [&](Result<store::EnqueueResult> r) { answer.set_value(std::move(r)); });
  Result<store::EnqueueResult> full = answer.get_future().get();
  REQUIRE_FALSE(full.ok());
  CHECK(full.status().code() == Status::Code::kNoSpace);
  auto batch = intake.EnqueueBatch({f.NewMessage(), f.NewMessage()});
  REQUIRE_FALSE(batch.ok());
  CHECK(batch.status().code() == Status::Code::kNoSpace);
  ListFilter all;
  auto listed = f.store().List("alice", all);
  REQUIRE(listed.ok());
  CHECK(listed->messages.empty());
  // The one worker was held for the failed enqueue and is free again.
  WorkerReservation worker = dispatcher.ReserveIdleWorker();
  CHECK(static_cast<bool>(worker));
  worker.HandOff(std::nullopt);

  // Space again: the next enqueue is claimed in its own commit and sent.
  store.set_disk_full(false);
  std::promise<Result<store::EnqueueResult>> stored;
  intake.Enqueue(f.NewMessage(),
                 [&](Result<store::EnqueueResult> r) { stored.set_value(std::move(r)); });
  Result<store::EnqueueResult> ok = stored.get_future().get();
  REQUIRE(ok.ok());
  REQUIRE(upstream.WaitForCalls(1));
  WaitForCompletions(dispatcher, 1);
  CHECK(dispatcher.Stop(f.clock().NowMs() + 10'000) == 0);
  // Only the stored message counts as enqueued.
  CHECK(metrics.Render(store::Stats{}, false, f.clock().NowMs()).find("sendq_enqueued_total 1\n") !=
        std::string::npos);
}

}  // namespace
}  // namespace sendq::delivery
