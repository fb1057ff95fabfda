#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <vector>

#include "store_fixture.h"

namespace sendq {
namespace {

using test::StoreFixture;

store::AttemptResult Sent(const store::ClaimedMessage& c, TimeMs now) {
  store::AttemptResult r;
  r.message_id = c.message.id;
  r.version = c.message.version;
  r.attempt_number = c.attempt_number;
  r.finished_at = now;
  r.outcome = AttemptOutcome::kSent;
  r.http_status = 200;
  r.charged = true;
  r.new_status = MessageStatus::kSent;
  r.response.provider_message_id = "msg_abc";
  r.response.channel = "sms";
  return r;
}

TEST_CASE_TEMPLATE("lease: a claim leases the message and writes the attempt row first", Backend,
                   SENDQ_STORE_BACKENDS) {
  test::StoreFixtureFor<Backend> f;
  Message m = f.Enqueue();
  auto claimed = f.store().Claim(f.ClaimAt());
  REQUIRE(claimed.ok());
  REQUIRE(claimed->size() == 1);
  const auto& c = claimed->front();
  CHECK(c.message.status == MessageStatus::kSending);
  CHECK(c.message.version > m.version);
  CHECK(c.attempt_number == 1);
  REQUIRE(c.message.lease_until.has_value());
  CHECK(*c.message.lease_until == f.clock().NowMs() + 60'000);
  auto attempts = f.store().ListAttempts("alice", m.id);
  REQUIRE(attempts.ok());
  REQUIRE(attempts->size() == 1);
  CHECK_FALSE((*attempts)[0].outcome.has_value());  // in flight
  // A leased message is not claimed twice.
  auto again = f.store().Claim(f.ClaimAt());
  REQUIRE(again.ok());
  CHECK(again->empty());
}

TEST_CASE_TEMPLATE("lease: the holder records the result", Backend, SENDQ_STORE_BACKENDS) {
  test::StoreFixtureFor<Backend> f;
  Message m = f.Enqueue();
  auto claimed = f.store().Claim(f.ClaimAt());
  REQUIRE(claimed.ok());
  auto recorded = f.store().Complete(Sent(claimed->front(), f.clock().NowMs()));
  REQUIRE(recorded.ok());
  CHECK(*recorded);
  auto got = f.store().Get("alice", m.id);
  CHECK(got->status == MessageStatus::kSent);
  CHECK(got->provider_message_id == "msg_abc");
  CHECK(got->attempts == 1);
  CHECK(got->sent_at.has_value());
  CHECK_FALSE(got->lease_until.has_value());
  auto attempts = f.store().ListAttempts("alice", m.id);
  CHECK((*attempts)[0].outcome == AttemptOutcome::kSent);
  CHECK((*attempts)[0].http_status == 200);
}

TEST_CASE_TEMPLATE("lease: an expired lease is recovered as an unknown outcome and retried",
                   Backend, SENDQ_STORE_BACKENDS) {
  test::StoreFixtureFor<Backend> f;
  Message m = f.Enqueue();
  auto claimed = f.store().Claim(f.ClaimAt());
  REQUIRE(claimed.ok());
  const store::ClaimedMessage stale = claimed->front();
  f.clock().Advance(60'000);
  auto reclaimed = f.store().Claim(f.ClaimAt());
  REQUIRE(reclaimed.ok());
  REQUIRE(reclaimed->size() == 1);
  CHECK(reclaimed->front().attempt_number == 2);
  CHECK(reclaimed->front().message.attempts == 1);  // the unknown attempt was charged
  auto attempts = f.store().ListAttempts("alice", m.id);
  REQUIRE(attempts->size() == 2);
  CHECK((*attempts)[0].outcome == AttemptOutcome::kUnknown);
  CHECK((*attempts)[0].charged);

  SUBCASE("the worker whose lease was taken over cannot overwrite the newer state") {
    auto late = f.store().Complete(Sent(stale, f.clock().NowMs()));
    REQUIRE(late.ok());
    CHECK_FALSE(*late);
    auto got = f.store().Get("alice", m.id);
    CHECK(got->status == MessageStatus::kSending);
    CHECK_FALSE(got->provider_message_id.has_value());
    CHECK((*f.store().ListAttempts("alice", m.id))[0].outcome == AttemptOutcome::kUnknown);
  }
  SUBCASE("the new holder's result is recorded") {
    auto ok = f.store().Complete(Sent(reclaimed->front(), f.clock().NowMs()));
    REQUIRE(ok.ok());
    CHECK(*ok);
    CHECK(f.store().Get("alice", m.id)->status == MessageStatus::kSent);
  }
}

TEST_CASE_TEMPLATE("lease: an expired lease leaves the message queued to be looked up", Backend,
                   SENDQ_STORE_BACKENDS) {
  test::StoreFixtureFor<Backend> f;
  Message m = f.Enqueue();
  store::ClaimOptions o = f.ClaimAt();
  o.max_attempts = 1;  // even on its last allowed attempt: it may have been sent
  auto first = f.store().Claim(o);
  REQUIRE(first->size() == 1);
  const TimeMs started = f.clock().NowMs();
  f.clock().Advance(60'000);
  o.now = f.clock().NowMs();
  auto claimed = f.store().Claim(o);
  REQUIRE(claimed.ok());
  REQUIRE(claimed->size() == 1);
  CHECK(claimed->front().message.unknown_since == started);
  CHECK(claimed->front().message.attempts == 1);
  auto attempts = f.store().ListAttempts("alice", m.id);
  CHECK((*attempts)[0].outcome == AttemptOutcome::kUnknown);
  CHECK((*attempts)[0].charged);
}

TEST_CASE_TEMPLATE("lease: a message to look up does not expire, and a result clears the mark",
                   Backend, SENDQ_STORE_BACKENDS) {
  test::StoreFixtureFor<Backend> f;
  Message m = f.Enqueue();
  auto first = f.store().Claim(f.ClaimAt());
  REQUIRE(first->size() == 1);
  store::AttemptResult unknown;
  unknown.message_id = m.id;
  unknown.version = first->front().message.version;
  unknown.attempt_number = first->front().attempt_number;
  unknown.finished_at = f.clock().NowMs();
  unknown.outcome = AttemptOutcome::kUnknown;
  unknown.charged = true;
  unknown.new_status = MessageStatus::kQueued;
  unknown.next_attempt_at = f.clock().NowMs();
  unknown.unknown_since = f.clock().NowMs();
  REQUIRE(*f.store().Complete(unknown));
  // Far past its validity: still claimed, to be looked up, not expired.
  f.clock().Advance(10 * 86'400'000LL);
  auto wake = f.store().NextWakeAt();
  REQUIRE(wake.ok());
  CHECK(*wake <= f.clock().NowMs());
  auto claimed = f.store().Claim(f.ClaimAt());
  REQUIRE(claimed->size() == 1);
  CHECK(claimed->front().message.unknown_since == unknown.unknown_since);
  store::AttemptResult found = unknown;
  found.version = claimed->front().message.version;
  found.attempt_number = claimed->front().attempt_number;
  found.outcome = AttemptOutcome::kReconciled;
  found.charged = false;
  found.new_status = MessageStatus::kSent;
  found.unknown_since.reset();
  found.response.provider_message_id = "msg_listed";
  found.upstream_response = R"({"id":"msg_listed"})";
  REQUIRE(*f.store().Complete(found));
  auto got = f.store().Get("alice", m.id);
  CHECK(got->status == MessageStatus::kSent);
  CHECK_FALSE(got->unknown_since.has_value());
  CHECK(got->provider_message_id == "msg_listed");
  auto holder = f.store().FindByProviderId("msg_listed", "sq_other");
  REQUIRE(holder.ok());
  CHECK(*holder == m.id);
  CHECK_FALSE(f.store().FindByProviderId("msg_listed", m.id)->has_value());
  auto attempts = f.store().ListAttempts("alice", m.id);
  CHECK((*attempts)[1].outcome == AttemptOutcome::kReconciled);
  CHECK((*attempts)[1].response_body == R"({"id":"msg_listed"})");

  // Another look-up that found the same listed send (it read before this commit) is not
  // settled with it: that message is looked up again, still unknown since its own attempt.
  Message other = f.Enqueue();
  auto claimed_other = f.store().Claim(f.ClaimAt());
  REQUIRE(claimed_other->size() == 1);
  store::AttemptResult same = found;
  same.message_id = other.id;
  same.version = claimed_other->front().message.version;
  same.attempt_number = claimed_other->front().attempt_number;
  same.unknown_since = f.clock().NowMs() - 1000;
  REQUIRE(*f.store().Complete(same));
  auto again = f.store().Get("alice", other.id);
  CHECK(again->status == MessageStatus::kQueued);
  CHECK(again->unknown_since == same.unknown_since);
  CHECK_FALSE(again->provider_message_id.has_value());
  CHECK((*f.store().ListAttempts("alice", other.id)).back().outcome == AttemptOutcome::kLookup);
}

TEST_CASE_TEMPLATE("lease: reopening the database voids leases left by a stopped process", Backend,
                   SENDQ_STORE_BACKENDS) {
  test::StoreFixtureFor<Backend> f;
  Message m = f.Enqueue();
  REQUIRE(f.store().Claim(f.ClaimAt())->size() == 1);
  f.Reopen();  // as after a crash: the new process is the only one that can hold leases
  auto claimed = f.store().Claim(f.ClaimAt());
  REQUIRE(claimed.ok());
  REQUIRE(claimed->size() == 1);
  CHECK(claimed->front().message.id == m.id);
  CHECK(claimed->front().attempt_number == 2);
  CHECK((*f.store().ListAttempts("alice", m.id))[0].outcome == AttemptOutcome::kUnknown);
}

TEST_CASE_TEMPLATE("lease: an unused claim is handed back without a trace", Backend,
                   SENDQ_STORE_BACKENDS) {
  test::StoreFixtureFor<Backend> f;
  Message m = f.Enqueue();
  auto claimed = f.store().Claim(f.ClaimAt());
  REQUIRE(claimed->size() == 1);
  const auto& c = claimed->front();
  REQUIRE(f.store().Unclaim(c.message.id, c.message.version, c.attempt_number).ok());
  auto got = f.store().Get("alice", m.id);
  CHECK(got->status == MessageStatus::kQueued);
  CHECK(f.store().ListAttempts("alice", m.id)->empty());
  auto again = f.store().Claim(f.ClaimAt());
  REQUIRE(again->size() == 1);
  CHECK(again->front().attempt_number == 1);
}

TEST_CASE_TEMPLATE("lease: a result and the next claim share one transaction", Backend,
                   SENDQ_STORE_BACKENDS) {
  test::StoreFixtureFor<Backend> f;
  Message first = f.Enqueue();
  Message second = f.Enqueue();
  auto claimed = f.store().Claim(f.ClaimAt(1));
  REQUIRE(claimed.ok());
  REQUIRE(claimed->size() == 1);
  CHECK(claimed->front().message.id == first.id);
  auto both = f.store()
                  .CompleteAndClaimAsync(Sent(claimed->front(), f.clock().NowMs()), f.ClaimAt(1))
                  .get();
  REQUIRE(both.ok());
  CHECK(both->recorded);
  REQUIRE(both->claimed.size() == 1);
  CHECK(both->claimed.front().message.id == second.id);
  CHECK(f.store().Get("alice", first.id)->status == MessageStatus::kSent);
  CHECK(f.store().Get("alice", second.id)->status == MessageStatus::kSending);
  REQUIRE(f.store().ListAttempts("alice", second.id)->size() == 1);

  // Nothing left: the result is recorded and the claim comes back empty.
  auto last =
      f.store()
          .CompleteAndClaimAsync(Sent(both->claimed.front(), f.clock().NowMs()), f.ClaimAt(1))
          .get();
  REQUIRE(last.ok());
  CHECK(last->recorded);
  CHECK(last->claimed.empty());
  CHECK(f.store().Get("alice", second.id)->status == MessageStatus::kSent);
}

TEST_CASE_TEMPLATE("lease: a fenced result still lets the worker claim its next message", Backend,
                   SENDQ_STORE_BACKENDS) {
  test::StoreFixtureFor<Backend> f;
  f.Enqueue();
  auto claimed = f.store().Claim(f.ClaimAt(1));
  REQUIRE(claimed.ok());
  store::AttemptResult stale = Sent(claimed->front(), f.clock().NowMs());
  stale.version -= 1;  // as if the lease had been taken over
  Message other = f.Enqueue();
  auto both = f.store().CompleteAndClaimAsync(stale, f.ClaimAt(1)).get();
  REQUIRE(both.ok());
  CHECK_FALSE(both->recorded);
  REQUIRE(both->claimed.size() == 1);
  CHECK(both->claimed.front().message.id == other.id);
}

TEST_CASE_TEMPLATE("lease: an enqueue can claim its own message in the same transaction", Backend,
                   SENDQ_STORE_BACKENDS) {
  test::StoreFixtureFor<Backend> f;
  store::NewMessage nm = f.NewMessage("alice", "key-1");
  auto stored = f.store().EnqueueAndClaim(nm, f.ClaimAt(1));
  REQUIRE(stored.ok());
  CHECK_FALSE(stored->replayed);
  CHECK(stored->message.status == MessageStatus::kQueued);  // as stored, before the claim
  REQUIRE(stored->claimed.has_value());
  CHECK(stored->claimed->message.id == nm.id);
  CHECK(stored->claimed->message.status == MessageStatus::kSending);
  CHECK(stored->claimed->attempt_number == 1);
  CHECK(f.store().Get("alice", nm.id)->status == MessageStatus::kSending);
  CHECK(f.store().ListAttempts("alice", nm.id)->size() == 1);
  CHECK(f.store().Claim(f.ClaimAt())->empty());  // nobody else gets it

  // A replay claims nothing: the message is already someone's.
  auto again = f.store().EnqueueAndClaim(f.NewMessage("alice", "key-1"), f.ClaimAt(1));
  REQUIRE(again.ok());
  CHECK(again->replayed);
  CHECK_FALSE(again->claimed.has_value());
}

TEST_CASE_TEMPLATE("lease: a claim without housekeeping still never takes an expired message",
                   Backend, SENDQ_STORE_BACKENDS) {
  test::StoreFixtureFor<Backend> f;
  store::NewMessage nm = f.NewMessage();
  nm.expires_at = f.clock().NowMs() + 1000;
  REQUIRE(f.store().Enqueue(nm).ok());
  f.clock().Advance(1000);
  store::ClaimOptions quick = f.ClaimAt();
  quick.housekeeping = false;
  auto claimed = f.store().Claim(quick);
  REQUIRE(claimed.ok());
  CHECK(claimed->empty());
  CHECK(f.store().Get("alice", nm.id)->status == MessageStatus::kQueued);  // not failed yet
  REQUIRE(f.store().Claim(f.ClaimAt()).ok());                              // with housekeeping
  CHECK(f.store().Get("alice", nm.id)->status == MessageStatus::kFailed);
}

// Collects the store's notices of its commits.
class ChangeLog {
 public:
  explicit ChangeLog(store::Store& s)
      : subscription_(s.Subscribe([this](const store::Changes& changes) {
          std::lock_guard<std::mutex> lock(mu_);
          notices_.push_back(changes);
          cv_.notify_all();
        })) {}

  // The next notice not taken yet (waits, bounded in real time, for it to come).
  std::optional<store::Changes> Next() {
    std::unique_lock<std::mutex> lock(mu_);
    if (!cv_.wait_for(lock, std::chrono::seconds(10), [&] { return notices_.size() > taken_; })) {
      return std::nullopt;
    }
    return notices_[taken_++];
  }
  bool subscribed() const { return subscription_ != nullptr; }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<store::Changes> notices_;  // GUARDED_BY(mu_)
  size_t taken_ = 0;                     // GUARDED_BY(mu_)
  std::unique_ptr<store::Subscription> subscription_;
};

bool Names(const store::Changes& changes, const std::string& id) {
  return std::find(changes.message_ids.begin(), changes.message_ids.end(), id) !=
         changes.message_ids.end();
}

TEST_CASE_TEMPLATE("store: subscribers hear which messages changed and when work was added",
                   Backend, SENDQ_STORE_BACKENDS) {
  test::StoreFixtureFor<Backend> f;
  ChangeLog log(f.store());
  REQUIRE(log.subscribed());

  // An enqueue the dispatcher must take: work added.
  REQUIRE(f.store().Enqueue(f.NewMessage()).ok());
  auto enqueued = log.Next();
  REQUIRE(enqueued);
  CHECK(enqueued->work_added);

  // Enqueued and claimed in one commit: changed, but nothing left for the dispatcher.
  store::NewMessage head = f.NewMessage();
  head.ordering_key = "conversation";
  auto claimed_head = f.store().EnqueueAndClaim(head, f.ClaimAt(1));
  REQUIRE(claimed_head.ok());
  REQUIRE(claimed_head->claimed);
  auto claimed = log.Next();
  REQUIRE(claimed);
  CHECK_FALSE(claimed->work_added);
  CHECK(Names(*claimed, head.id));

  // The head's result releases the next of its lane, which the claim in the same commit takes.
  store::NewMessage second = f.NewMessage();
  second.ordering_key = "conversation";
  REQUIRE(f.store().Enqueue(second).ok());  // held: no work added, nothing to tell
  auto both =
      f.store()
          .CompleteAndClaimAsync(Sent(*claimed_head->claimed, f.clock().NowMs()), f.ClaimAt(5))
          .get();
  REQUIRE(both.ok());
  auto completed = log.Next();
  REQUIRE(completed);
  CHECK(Names(*completed, head.id));
  CHECK(Names(*completed, second.id));  // claimed along with the result
  CHECK_FALSE(completed->work_added);

  // A result with no claim beside it: the released message is work added.
  store::NewMessage third = f.NewMessage();
  third.ordering_key = "conversation";
  REQUIRE(f.store().Enqueue(third).ok());
  const store::ClaimedMessage* leased_second = nullptr;
  for (const store::ClaimedMessage& c : both->claimed) {
    if (c.message.id == second.id) leased_second = &c;
  }
  REQUIRE(leased_second != nullptr);
  REQUIRE(f.store().Complete(Sent(*leased_second, f.clock().NowMs())).ok());
  auto released = log.Next();
  REQUIRE(released);
  CHECK(Names(*released, second.id));
  CHECK(released->work_added);
}

}  // namespace
}  // namespace sendq
