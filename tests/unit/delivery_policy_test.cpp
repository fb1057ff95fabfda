#include "queue/delivery_policy.h"

#include <doctest/doctest.h>

namespace sendq {
namespace {

constexpr TimeMs kNow = 1'700'000'000'000;

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
  auto d = DecideAfterAttempt(Policy(), Queued(), OutcomeClass::kSent, true, Http(200), kNow, 0.5);
  CHECK(d.new_status == MessageStatus::kSent);
  CHECK(d.outcome == AttemptOutcome::kSent);
  CHECK(d.error.empty());
}

TEST_CASE("delivery policy: a permanent rejection fails at once with AgentPhone's message") {
  auto d = DecideAfterAttempt(
      Policy(), Queued(), OutcomeClass::kPermanent, true,
      Http(422, R"({"detail":[{"loc":["body","to_number"],"msg":"bad number"}]})"), kNow, 0.5);
  CHECK(d.new_status == MessageStatus::kFailed);
  CHECK(d.outcome == AttemptOutcome::kPermanent);
  REQUIRE(d.last_error.has_value());
  CHECK(d.last_error->find("bad number") != std::string::npos);
}

TEST_CASE("delivery policy: a charged retryable failure backs off") {
  auto d =
      DecideAfterAttempt(Policy(), Queued(), OutcomeClass::kRetryable, true, Http(503), kNow, 0.0);
  CHECK(d.new_status == MessageStatus::kQueued);
  CHECK(d.outcome == AttemptOutcome::kRetryable);
  CHECK(d.next_attempt_at == kNow + 1000);
}

TEST_CASE("delivery policy: Retry-After wins when it is longer than the backoff") {
  UpstreamResponse r = Http(429);
  r.retry_after = "30";
  auto d = DecideAfterAttempt(Policy(), Queued(), OutcomeClass::kRetryable, true, r, kNow, 0.0);
  CHECK(d.next_attempt_at == kNow + 30'000);
  r.retry_after = "0";
  d = DecideAfterAttempt(Policy(), Queued(), OutcomeClass::kRetryable, true, r, kNow, 0.0);
  CHECK(d.next_attempt_at == kNow + 1000);
}

TEST_CASE("delivery policy: the last allowed attempt exhausts the message") {
  auto d =
      DecideAfterAttempt(Policy(), Queued(2), OutcomeClass::kRetryable, true, Http(500), kNow, 0.5);
  CHECK(d.new_status == MessageStatus::kFailed);
  REQUIRE(d.last_error.has_value());
  CHECK(d.last_error->find("exhausted (3 of 3)") != std::string::npos);
}

TEST_CASE("delivery policy: a retry that would fall after the validity fails now") {
  Message m = Queued();
  m.expires_at = kNow + 500;
  auto d = DecideAfterAttempt(Policy(), m, OutcomeClass::kRetryable, true, Http(503), kNow, 0.0);
  CHECK(d.new_status == MessageStatus::kFailed);
  CHECK(d.last_error->find("expired") != std::string::npos);
}

TEST_CASE("delivery policy: uncharged failures wait for the upstream, due at once") {
  for (OutcomeClass c :
       {OutcomeClass::kUpstreamPaused, OutcomeClass::kUnreachable, OutcomeClass::kRetryable}) {
    auto d = DecideAfterAttempt(Policy(), Queued(2), c, false, Http(401), kNow, 0.5);
    CHECK(d.new_status == MessageStatus::kQueued);
    CHECK(d.next_attempt_at == kNow);
  }
  auto paused = DecideAfterAttempt(Policy(), Queued(), OutcomeClass::kUpstreamPaused, false,
                                   Http(401), kNow, 0.5);
  CHECK(paused.outcome == AttemptOutcome::kUpstreamPaused);
}

TEST_CASE("delivery policy: unknown outcomes retry, or fail under --on-unknown=fail") {
  UpstreamResponse r;
  r.transport = UpstreamResponse::Transport::kNoResponse;
  r.transport_error = "Read";
  auto d = DecideAfterAttempt(Policy(), Queued(), OutcomeClass::kUnknown, true, r, kNow, 0.0);
  CHECK(d.outcome == AttemptOutcome::kUnknown);
  CHECK(d.new_status == MessageStatus::kQueued);
  CHECK(d.next_attempt_at == kNow + 1000);
  DeliveryPolicy at_most_once = Policy();
  at_most_once.fail_unknown = true;
  d = DecideAfterAttempt(at_most_once, Queued(), OutcomeClass::kUnknown, true, r, kNow, 0.0);
  CHECK(d.new_status == MessageStatus::kFailed);
  CHECK(d.last_error->find("--on-unknown=fail") != std::string::npos);
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

TEST_CASE("delivery policy: a lost lease is an unknown, charged attempt; retried unless told not") {
  DeliveryPolicy policy;
  policy.max_attempts = 3;
  Message m;
  m.attempts = 0;
  m.expires_at = 10'000;
  LostLeaseDecision retry = DecideAfterLostLease(policy, m, 1, 5'000);
  CHECK(retry.new_status == MessageStatus::kQueued);
  CHECK(retry.attempt_error.find("outcome unknown") != std::string::npos);
  policy.fail_unknown = true;
  CHECK(DecideAfterLostLease(policy, m, 1, 5'000).new_status == MessageStatus::kFailed);
  policy.fail_unknown = false;
  m.attempts = 2;  // this one is the third
  CHECK(DecideAfterLostLease(policy, m, 3, 5'000).last_error.rfind("attempts exhausted", 0) == 0);
  m.attempts = 0;
  LostLeaseDecision expired = DecideAfterLostLease(policy, m, 1, 10'000);
  CHECK(expired.new_status == MessageStatus::kFailed);
  CHECK(expired.last_error.rfind("expired", 0) == 0);
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
