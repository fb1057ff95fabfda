// The message state machine and the names and numbers of its persisted enums.
#include <doctest/doctest.h>

#include <set>
#include <string>
#include <utility>

#include "queue/message.h"

namespace sendq {
namespace {

using S = MessageStatus;

constexpr S kAllStatuses[] = {S::kQueued, S::kSending, S::kSent, S::kFailed, S::kCanceled};

constexpr AttemptOutcome kAllOutcomes[] = {AttemptOutcome::kSent, AttemptOutcome::kRetryable,
                                           AttemptOutcome::kPermanent, AttemptOutcome::kUnknown,
                                           AttemptOutcome::kUpstreamPaused};

TEST_CASE("CanTransition: exactly the edges of the lifecycle") {
  // From the comment at the top of queue/message.h.
  const std::set<std::pair<S, S>> allowed = {
      {S::kQueued, S::kSending},   // picked up for delivery
      {S::kSending, S::kSent},     // AgentPhone accepted it
      {S::kSending, S::kQueued},   // retry later, or upstream paused
      {S::kSending, S::kFailed},   // permanent, exhausted or expired
      {S::kQueued, S::kCanceled},  // by the producer
      {S::kQueued, S::kFailed},    // validity ran out while waiting
      {S::kFailed, S::kQueued},    // retried by hand
  };
  int allowed_count = 0;
  for (S from : kAllStatuses) {
    for (S to : kAllStatuses) {
      CAPTURE(StatusName(from));
      CAPTURE(StatusName(to));
      const bool expected = allowed.count({from, to}) > 0;
      CHECK(CanTransition(from, to) == expected);
      if (CanTransition(from, to)) ++allowed_count;
    }
  }
  CHECK(allowed_count == 7);
}

TEST_CASE("CanTransition: no self-loops and nothing leaves sent or canceled") {
  for (S s : kAllStatuses) {
    CAPTURE(StatusName(s));
    CHECK_FALSE(CanTransition(s, s));
    CHECK_FALSE(CanTransition(S::kSent, s));
    CHECK_FALSE(CanTransition(S::kCanceled, s));
  }
}

TEST_CASE("IsTerminal") {
  CHECK_FALSE(IsTerminal(S::kQueued));
  CHECK_FALSE(IsTerminal(S::kSending));
  CHECK(IsTerminal(S::kSent));
  CHECK(IsTerminal(S::kFailed));
  CHECK(IsTerminal(S::kCanceled));
}

TEST_CASE("MessageStatus: persisted numbers are 0..4") {
  // These are stored on disk: a failure here means a renumbering, which breaks databases.
  CHECK(static_cast<int>(S::kQueued) == 0);
  CHECK(static_cast<int>(S::kSending) == 1);
  CHECK(static_cast<int>(S::kSent) == 2);
  CHECK(static_cast<int>(S::kFailed) == 3);
  CHECK(static_cast<int>(S::kCanceled) == 4);
}

TEST_CASE("AttemptOutcome: persisted numbers are 0..4") {
  CHECK(static_cast<int>(AttemptOutcome::kSent) == 0);
  CHECK(static_cast<int>(AttemptOutcome::kRetryable) == 1);
  CHECK(static_cast<int>(AttemptOutcome::kPermanent) == 2);
  CHECK(static_cast<int>(AttemptOutcome::kUnknown) == 3);
  CHECK(static_cast<int>(AttemptOutcome::kUpstreamPaused) == 4);
}

TEST_CASE("StatusName and ParseStatus") {
  CHECK(std::string(StatusName(S::kQueued)) == "queued");
  CHECK(std::string(StatusName(S::kSending)) == "sending");
  CHECK(std::string(StatusName(S::kSent)) == "sent");
  CHECK(std::string(StatusName(S::kFailed)) == "failed");
  CHECK(std::string(StatusName(S::kCanceled)) == "canceled");
  for (S s : kAllStatuses) {
    CAPTURE(StatusName(s));
    CHECK(ParseStatus(StatusName(s)) == s);
  }
  for (const char* bad : {"", "Queued", "QUEUED", "queued ", " sent", "cancelled", "unknown",
                          "pending", "0", "delivered"}) {
    CAPTURE(bad);
    CHECK(ParseStatus(bad) == std::nullopt);
  }
}

TEST_CASE("OutcomeName") {
  CHECK(std::string(OutcomeName(AttemptOutcome::kSent)) == "sent");
  CHECK(std::string(OutcomeName(AttemptOutcome::kRetryable)) == "retryable");
  CHECK(std::string(OutcomeName(AttemptOutcome::kPermanent)) == "permanent");
  CHECK(std::string(OutcomeName(AttemptOutcome::kUnknown)) == "unknown");
  CHECK(std::string(OutcomeName(AttemptOutcome::kUpstreamPaused)) == "upstream_paused");
  std::set<std::string> names;
  for (AttemptOutcome o : kAllOutcomes) names.insert(OutcomeName(o));
  CHECK(names.size() == 5);
}

}  // namespace
}  // namespace sendq
