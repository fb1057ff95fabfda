#include "queue/delivery_policy.h"

#include <doctest/doctest.h>

namespace sendq {
namespace {

constexpr TimeMs kNow = 1'700'000'000'000;
// Why an unknown send could not be looked up, for the decisions that do not look.
const std::string kNoLookup = "it has no text body";

Message Queued(int attempts = 0) {
  Message m;
  m.id = "sq_x";
  m.status = MessageStatus::kSending;
  m.attempts = attempts;
  m.expires_at = kNow + 86'400'000;
  return m;
}

UpstreamResponse Http(int status, std::string body = "{}") {
  UpstreamResponse r;
  r.transport = UpstreamResponse::Transport::kResponded;
  r.http_status = status;
  r.body = std::move(body);
  return r;
}

DeliveryPolicy Policy() {
  DeliveryPolicy p;
  p.max_attempts = 3;
  p.backoff = {1000, 60'000};
  return p;
}

TEST_CASE("delivery policy: 2xx is sent") {
  auto d = DecideAfterAttempt(Policy(), Queued(), OutcomeClass::kSent, true, Http(200), kNow, 0.5,
                              kNoLookup);
  CHECK(d.new_status == MessageStatus::kSent);
  CHECK(d.outcome == AttemptOutcome::kSent);
  CHECK(d.error.empty());
}

TEST_CASE("delivery policy: a permanent rejection fails at once with AgentPhone's message") {
  auto d = DecideAfterAttempt(
      Policy(), Queued(), OutcomeClass::kPermanent, true,
      Http(422, R"({"detail":[{"loc":["body","to_number"],"msg":"bad number"}]})"), kNow, 0.5,
      kNoLookup);
  CHECK(d.new_status == MessageStatus::kFailed);
  CHECK(d.outcome == AttemptOutcome::kPermanent);
  REQUIRE(d.last_error.has_value());
  CHECK(d.last_error->find("bad number") != std::string::npos);
}

TEST_CASE("delivery policy: a charged retryable failure backs off") {
  auto d = DecideAfterAttempt(Policy(), Queued(), OutcomeClass::kRetryable, true, Http(503), kNow,
                              0.0, kNoLookup);
  CHECK(d.new_status == MessageStatus::kQueued);
  CHECK(d.outcome == AttemptOutcome::kRetryable);
  CHECK(d.next_attempt_at == kNow + 1000);
}

TEST_CASE("delivery policy: Retry-After wins when it is longer than the backoff") {
  UpstreamResponse r = Http(429);
  r.retry_after = "30";
  auto d = DecideAfterAttempt(Policy(), Queued(), OutcomeClass::kRetryable, true, r, kNow, 0.0,
                              kNoLookup);
  CHECK(d.next_attempt_at == kNow + 30'000);
  r.retry_after = "0";
  d = DecideAfterAttempt(Policy(), Queued(), OutcomeClass::kRetryable, true, r, kNow, 0.0,
                         kNoLookup);
  CHECK(d.next_attempt_at == kNow + 1000);
}

TEST_CASE("delivery policy: the last allowed attempt exhausts the message") {
  auto d = DecideAfterAttempt(Policy(), Queued(2), OutcomeClass::kRetryable, true, Http(500), kNow,
                              0.5, kNoLookup);
  CHECK(d.new_status == MessageStatus::kFailed);
  REQUIRE(d.last_error.has_value());
  CHECK(d.last_error->find("exhausted (3 of 3)") != std::string::npos);
}

TEST_CASE("delivery policy: a retry that would fall after the validity fails now") {
  Message m = Queued();
  m.expires_at = kNow + 500;
  auto d = DecideAfterAttempt(Policy(), m, OutcomeClass::kRetryable, true, Http(503), kNow, 0.0,
                              kNoLookup);
  CHECK(d.new_status == MessageStatus::kFailed);
  CHECK(d.last_error->find("expired") != std::string::npos);
  CHECK(d.expired);
}

TEST_CASE("delivery policy: uncharged failures wait for the upstream, due at once") {
  for (OutcomeClass c :
       {OutcomeClass::kUpstreamPaused, OutcomeClass::kUnreachable, OutcomeClass::kRetryable}) {
    auto d = DecideAfterAttempt(Policy(), Queued(2), c, false, Http(401), kNow, 0.5, kNoLookup);
    CHECK(d.new_status == MessageStatus::kQueued);
    CHECK(d.next_attempt_at == kNow);
  }
  auto paused = DecideAfterAttempt(Policy(), Queued(), OutcomeClass::kUpstreamPaused, false,
                                   Http(401), kNow, 0.5, kNoLookup);
  CHECK(paused.outcome == AttemptOutcome::kUpstreamPaused);
}

TEST_CASE("delivery policy: an unknown outcome is looked up first, when it can be") {
  UpstreamResponse r;
  r.transport = UpstreamResponse::Transport::kNoResponse;
  r.transport_error = "Read";
  for (OnUnknown mode : {OnUnknown::kRetry, OnUnknown::kFail, OnUnknown::kReconcileOrFail}) {
    DeliveryPolicy policy = Policy();
    policy.on_unknown = mode;
    auto d = DecideAfterAttempt(policy, Queued(), OutcomeClass::kUnknown, true, r, kNow, 0.0, "");
    CHECK(d.outcome == AttemptOutcome::kUnknown);
    CHECK(d.new_status == MessageStatus::kQueued);
    CHECK(d.look_up);
    CHECK(d.next_attempt_at == kNow + policy.lookup_grace);
  }
}

TEST_CASE("delivery policy: an unknown outcome that cannot be looked up follows --on-unknown") {
  UpstreamResponse r;
  r.transport = UpstreamResponse::Transport::kNoResponse;
  r.transport_error = "Read";
  auto d =
      DecideAfterAttempt(Policy(), Queued(), OutcomeClass::kUnknown, true, r, kNow, 0.0, kNoLookup);
  CHECK(d.new_status == MessageStatus::kQueued);
  CHECK_FALSE(d.look_up);
  CHECK(d.next_attempt_at == kNow + 1000);
  CHECK(d.error.find(kNoLookup) != std::string::npos);
  for (OnUnknown mode : {OnUnknown::kFail, OnUnknown::kReconcileOrFail}) {
    DeliveryPolicy at_most_once = Policy();
    at_most_once.on_unknown = mode;
    d = DecideAfterAttempt(at_most_once, Queued(), OutcomeClass::kUnknown, true, r, kNow, 0.0,
                           kNoLookup);
    CHECK(d.new_status == MessageStatus::kFailed);
    CHECK(d.last_error->find(std::string("--on-unknown=") + OnUnknownName(mode)) !=
          std::string::npos);
  }
}

LookupResult Verdict(LookupResult::Verdict verdict) {
  LookupResult l;
  l.verdict = verdict;
  l.detail = "why";
  return l;
}

TEST_CASE("delivery policy: a found send is sent; what is not found follows --on-unknown") {
  using V = LookupResult::Verdict;
  Message m = Queued();
  m.unknown_since = kNow - 5'000;
  auto decide = [&](OnUnknown mode, V verdict) {
    DeliveryPolicy policy = Policy();
    policy.on_unknown = mode;
    return DecideAfterLookup(policy, m, Verdict(verdict), kNow);
  };
  AttemptDecision found = decide(OnUnknown::kFail, V::kFound);
  CHECK(found.new_status == MessageStatus::kSent);
  CHECK(found.outcome == AttemptOutcome::kReconciled);
  // retry sends again unless found; fail never; reconcile-or-fail only when the complete
  // listing shows it was not sent.
  struct Case {
    OnUnknown mode;
    V verdict;
    MessageStatus expected;
  };
  for (const Case& c : {Case{OnUnknown::kRetry, V::kNotFound, MessageStatus::kQueued},
                        Case{OnUnknown::kRetry, V::kAmbiguous, MessageStatus::kQueued},
                        Case{OnUnknown::kRetry, V::kNoWay, MessageStatus::kQueued},
                        Case{OnUnknown::kFail, V::kNotFound, MessageStatus::kFailed},
                        Case{OnUnknown::kFail, V::kAmbiguous, MessageStatus::kFailed},
                        Case{OnUnknown::kReconcileOrFail, V::kNotFound, MessageStatus::kQueued},
                        Case{OnUnknown::kReconcileOrFail, V::kAmbiguous, MessageStatus::kFailed},
                        Case{OnUnknown::kReconcileOrFail, V::kNoWay, MessageStatus::kFailed}}) {
    CAPTURE(OnUnknownName(c.mode));
    CAPTURE(static_cast<int>(c.verdict));
    AttemptDecision d = decide(c.mode, c.verdict);
    CHECK(d.new_status == c.expected);
    CHECK(d.outcome == AttemptOutcome::kLookup);
    CHECK_FALSE(d.look_up);
    CHECK(d.next_attempt_at == kNow);
    CHECK(d.error.find("why") == 0);
  }
}

TEST_CASE("delivery policy: a look-up after the validity ended fails it as expired") {
  Message m = Queued();
  m.unknown_since = kNow - 5'000;
  m.expires_at = kNow - 1;
  AttemptDecision d =
      DecideAfterLookup(Policy(), m, Verdict(LookupResult::Verdict::kNotFound), kNow);
  CHECK(d.new_status == MessageStatus::kFailed);
  CHECK(d.expired);  // what raises message.expired
  CHECK(d.last_error->rfind("expired", 0) == 0);
}

TEST_CASE("delivery policy: a failed look-up is tried again, uncharged, then given up") {
  Message m = Queued();
  m.unknown_since = kNow - 60'000;
  DeliveryPolicy policy = Policy();
  policy.on_unknown = OnUnknown::kFail;
  AttemptDecision d = DecideAfterLookup(policy, m, Verdict(LookupResult::Verdict::kFailed), kNow);
  CHECK(d.new_status == MessageStatus::kQueued);
  CHECK(d.look_up);
  CHECK(d.next_attempt_at == kNow + 15'000);  // a quarter of the time spent looking
  m.unknown_since = kNow - policy.lookup_patience;
  d = DecideAfterLookup(policy, m, Verdict(LookupResult::Verdict::kFailed), kNow);
  CHECK(d.new_status == MessageStatus::kFailed);
  CHECK(d.error.find("kept failing") != std::string::npos);
}

TEST_CASE("delivery policy: AgentPhone's answer is read, and an unreadable one is flagged") {
  auto f = ParseSendResponse(
      R"({"id":"msg_1","status":"sent","channel":"imessage","from_number":"+14155550001",)"
      R"("to_number":"grp_9","conversation_id":"conv_2","reply_parent_unresolved":true})");
  CHECK(f.readable);
  CHECK(f.provider_message_id == "msg_1");
  CHECK(f.channel == "imessage");
  CHECK(f.from_number == "+14155550001");
  CHECK(f.to_number == "grp_9");
  CHECK(f.conversation_id == "conv_2");
  CHECK(f.reply_parent_unresolved == true);
  CHECK_FALSE(ParseSendResponse("<html>oops</html>").readable);
  CHECK_FALSE(ParseSendResponse("").readable);
  CHECK_FALSE(ParseSendResponse("[1,2]").readable);
}

}  // namespace
}  // namespace sendq

namespace sendq {
namespace {

TEST_CASE("delivery policy: a lost lease is an unknown attempt, to be looked up") {
  LostLeaseDecision d = DecideAfterLostLease(2);
  CHECK(d.attempt_error.find("attempt 2 outcome unknown") == 0);
  CHECK(d.last_error.find("looking for it at AgentPhone") != std::string::npos);
}

TEST_CASE("delivery policy: a 429 pauses the sender until Retry-After, or the first backoff") {
  DeliveryPolicy policy;
  policy.backoff = {2'000, 60'000};
  UpstreamResponse r;
  r.transport = UpstreamResponse::Transport::kResponded;
  r.http_status = 429;
  CHECK(SenderPauseAfter(policy, r, 1'000) == 3'000);
  r.retry_after = "5";
  CHECK(SenderPauseAfter(policy, r, 1'000) == 6'000);
  r.http_status = 503;
  CHECK_FALSE(SenderPauseAfter(policy, r, 1'000));
}

}  // namespace
}  // namespace sendq
