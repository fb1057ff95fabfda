// UpstreamCircuit: when sends may go, when the circuit opens and closes, and what is charged.
#include "queue/upstream_circuit.h"

#include <doctest/doctest.h>

#include <iterator>
#include <string>

#include "util/clock.h"

namespace sendq {
namespace {

UpstreamCircuit::Options TestOptions() {
  UpstreamCircuit::Options options;
  options.probe_base = 1000;
  options.probe_max = 60'000;
  options.trip_after = 3;
  return options;
}

// TryAcquire for a regular (non-probe) send; fails the test if it turns out to be a probe.
bool AcquireSend(UpstreamCircuit& circuit) {
  bool is_probe = true;
  bool ok = circuit.TryAcquire(&is_probe);
  CHECK_FALSE(is_probe);
  return ok;
}

// TryAcquire that must hand out a probe.
void AcquireProbe(UpstreamCircuit& circuit) {
  bool is_probe = false;
  REQUIRE(circuit.TryAcquire(&is_probe));
  REQUIRE(is_probe);
}

bool CannotAcquire(UpstreamCircuit& circuit) {
  bool is_probe = true;
  bool ok = circuit.TryAcquire(&is_probe);
  CHECK_FALSE(is_probe);
  return !ok;
}

// Opens a closed circuit with a 401 and returns the time it opened.
TimeMs OpenWith401(UpstreamCircuit& circuit, FakeClock& clock) {
  REQUIRE(AcquireSend(circuit));
  CHECK_FALSE(circuit.OnResult(OutcomeClass::kUpstreamPaused, false, "upstream returned 401"));
  REQUIRE(circuit.paused());
  return clock.NowMs();
}

TEST_CASE("UpstreamCircuit: closed sends freely") {
  FakeClock clock;
  UpstreamCircuit circuit(&clock, TestOptions());
  CHECK_FALSE(circuit.paused());
  CHECK(circuit.pause_reason().empty());
  for (int i = 0; i < 100; ++i) CHECK(AcquireSend(circuit));
  for (int i = 0; i < 100; ++i) CHECK(circuit.OnResult(OutcomeClass::kSent, false, ""));
  CHECK_FALSE(circuit.paused());
}

TEST_CASE("UpstreamCircuit: permanent results are charged and keep it closed") {
  FakeClock clock;
  UpstreamCircuit circuit(&clock, TestOptions());
  for (int i = 0; i < 10; ++i) {
    REQUIRE(AcquireSend(circuit));
    CHECK(circuit.OnResult(OutcomeClass::kPermanent, false, "upstream returned 422"));
  }
  CHECK_FALSE(circuit.paused());
}

TEST_CASE("UpstreamCircuit: trips after trip_after retryable failures, not before") {
  FakeClock clock;
  UpstreamCircuit circuit(&clock, TestOptions());
  REQUIRE(AcquireSend(circuit));
  CHECK(circuit.OnResult(OutcomeClass::kRetryable, false, "upstream returned 503"));
  CHECK_FALSE(circuit.paused());
  REQUIRE(AcquireSend(circuit));
  CHECK(circuit.OnResult(OutcomeClass::kUnknown, false, "read timeout"));
  CHECK_FALSE(circuit.paused());
  REQUIRE(AcquireSend(circuit));
  // The failure that trips the circuit happened while it was closed, so it is charged.
  CHECK(circuit.OnResult(OutcomeClass::kRetryable, false, "upstream returned 502"));
  CHECK(circuit.paused());
  CHECK(circuit.pause_reason() == "upstream returned 502");
  CHECK(circuit.next_probe_at() == clock.NowMs() + 1000);
  CHECK(CannotAcquire(circuit));
}

TEST_CASE("UpstreamCircuit: a success in between resets the count") {
  FakeClock clock;
  UpstreamCircuit circuit(&clock, TestOptions());
  for (int round = 0; round < 5; ++round) {
    for (int i = 0; i < 2; ++i) {
      REQUIRE(AcquireSend(circuit));
      CHECK(circuit.OnResult(OutcomeClass::kRetryable, false, "upstream returned 503"));
    }
    REQUIRE(AcquireSend(circuit));
    CHECK(circuit.OnResult(round % 2 == 0 ? OutcomeClass::kSent : OutcomeClass::kPermanent, false,
                           ""));
    CHECK_FALSE(circuit.paused());
  }
}

TEST_CASE("UpstreamCircuit: 401 opens at once and is not charged") {
  FakeClock clock;
  UpstreamCircuit circuit(&clock, TestOptions());
  REQUIRE(AcquireSend(circuit));
  CHECK_FALSE(
      circuit.OnResult(OutcomeClass::kUpstreamPaused, false, "upstream returned 401: invalid key"));
  CHECK(circuit.paused());
  CHECK(circuit.pause_reason() == "upstream returned 401: invalid key");
  CHECK(circuit.next_probe_at() == clock.NowMs() + 1000);
}

TEST_CASE("UpstreamCircuit: unreachable opens at once and is not charged") {
  FakeClock clock;
  UpstreamCircuit circuit(&clock, TestOptions());
  REQUIRE(AcquireSend(circuit));
  CHECK_FALSE(circuit.OnResult(OutcomeClass::kUnreachable, false, "connection refused"));
  CHECK(circuit.paused());
  CHECK(circuit.pause_reason() == "connection refused");
}

TEST_CASE("UpstreamCircuit: an empty detail still gives a pause reason") {
  FakeClock clock;
  UpstreamCircuit circuit(&clock, TestOptions());
  REQUIRE(AcquireSend(circuit));
  circuit.OnResult(OutcomeClass::kUnreachable, false, "");
  CHECK(circuit.paused());
  CHECK_FALSE(circuit.pause_reason().empty());
}

TEST_CASE("UpstreamCircuit: while open, one probe at a time once the probe time comes") {
  FakeClock clock;
  UpstreamCircuit circuit(&clock, TestOptions());
  const TimeMs opened = OpenWith401(circuit, clock);
  CHECK(circuit.next_probe_at() == opened + 1000);

  CHECK(CannotAcquire(circuit));
  clock.Advance(999);
  CHECK(CannotAcquire(circuit));
  clock.Advance(1);
  AcquireProbe(circuit);
  // The probe is in flight: nothing else goes, however long it takes.
  CHECK(CannotAcquire(circuit));
  clock.Advance(3'600'000);
  CHECK(CannotAcquire(circuit));
  CHECK(circuit.paused());
}

TEST_CASE("UpstreamCircuit: failed probes double the interval up to probe_max") {
  FakeClock clock;
  UpstreamCircuit circuit(&clock, TestOptions());
  OpenWith401(circuit, clock);

  const DurationMs expected[] = {1000,   2000,   4000,   8000,   16'000,
                                 32'000, 60'000, 60'000, 60'000, 60'000};
  for (size_t i = 0; i < std::size(expected); ++i) {
    CAPTURE(i);
    // The probe time is exactly one interval after the previous probe failed.
    CHECK(circuit.next_probe_at() - clock.NowMs() == expected[i]);
    clock.Advance(expected[i] - 1);
    CHECK(CannotAcquire(circuit));
    clock.Advance(1);
    AcquireProbe(circuit);
    // Alternate the kinds of failure; none of them is charged.
    const OutcomeClass failure = i % 3 == 0   ? OutcomeClass::kRetryable
                                 : i % 3 == 1 ? OutcomeClass::kUpstreamPaused
                                              : OutcomeClass::kUnreachable;
    CHECK_FALSE(circuit.OnResult(failure, true, "probe failed " + std::to_string(i)));
    CHECK(circuit.paused());
    CHECK(circuit.pause_reason() == "probe failed " + std::to_string(i));
  }
}

TEST_CASE("UpstreamCircuit: the probe interval is measured from when the probe failed") {
  FakeClock clock;
  UpstreamCircuit circuit(&clock, TestOptions());
  OpenWith401(circuit, clock);
  clock.Advance(5000);  // nothing was due for a while
  AcquireProbe(circuit);
  clock.Advance(700);  // the probe took 700 ms
  CHECK_FALSE(circuit.OnResult(OutcomeClass::kUnknown, true, "read timeout"));
  CHECK(circuit.next_probe_at() == clock.NowMs() + 2000);
}

TEST_CASE("UpstreamCircuit: a successful probe closes it") {
  FakeClock clock;
  UpstreamCircuit circuit(&clock, TestOptions());
  OpenWith401(circuit, clock);
  clock.Advance(1000);
  AcquireProbe(circuit);
  CHECK(circuit.OnResult(OutcomeClass::kSent, true, ""));
  CHECK_FALSE(circuit.paused());
  CHECK(circuit.pause_reason().empty());
  for (int i = 0; i < 10; ++i) CHECK(AcquireSend(circuit));
}

TEST_CASE("UpstreamCircuit: a permanent answer to a probe closes it and is charged") {
  FakeClock clock;
  UpstreamCircuit circuit(&clock, TestOptions());
  OpenWith401(circuit, clock);
  clock.Advance(1000);
  AcquireProbe(circuit);
  CHECK(circuit.OnResult(OutcomeClass::kPermanent, true, "upstream returned 422"));
  CHECK_FALSE(circuit.paused());
  CHECK(AcquireSend(circuit));
}

TEST_CASE("UpstreamCircuit: after closing, the failure count and interval start afresh") {
  FakeClock clock;
  UpstreamCircuit circuit(&clock, TestOptions());
  // Trip with retryable failures, fail two probes (interval now 4s), then close.
  for (int i = 0; i < 3; ++i) {
    REQUIRE(AcquireSend(circuit));
    circuit.OnResult(OutcomeClass::kRetryable, false, "503");
  }
  REQUIRE(circuit.paused());
  for (DurationMs wait : {1000, 2000}) {
    clock.Advance(wait);
    AcquireProbe(circuit);
    circuit.OnResult(OutcomeClass::kRetryable, true, "503");
  }
  clock.Advance(4000);
  AcquireProbe(circuit);
  REQUIRE(circuit.OnResult(OutcomeClass::kSent, true, ""));
  REQUIRE_FALSE(circuit.paused());

  // Two failures do not trip it again; the third does, with the base interval.
  for (int i = 0; i < 2; ++i) {
    REQUIRE(AcquireSend(circuit));
    circuit.OnResult(OutcomeClass::kRetryable, false, "503");
    CHECK_FALSE(circuit.paused());
  }
  REQUIRE(AcquireSend(circuit));
  circuit.OnResult(OutcomeClass::kRetryable, false, "503");
  CHECK(circuit.paused());
  CHECK(circuit.next_probe_at() == clock.NowMs() + 1000);
}

TEST_CASE("UpstreamCircuit: Release frees the probe slot and keeps the probe time") {
  FakeClock clock;
  UpstreamCircuit circuit(&clock, TestOptions());
  const TimeMs opened = OpenWith401(circuit, clock);
  clock.Advance(1000);
  AcquireProbe(circuit);
  CHECK(CannotAcquire(circuit));
  circuit.Release(true);
  CHECK(circuit.paused());
  CHECK(circuit.next_probe_at() == opened + 1000);
  AcquireProbe(circuit);  // at once: the probe time had already come
}

TEST_CASE("UpstreamCircuit: releasing a regular send changes nothing") {
  FakeClock clock;
  UpstreamCircuit circuit(&clock, TestOptions());
  REQUIRE(AcquireSend(circuit));
  circuit.Release(false);
  CHECK_FALSE(circuit.paused());
  CHECK(AcquireSend(circuit));
}

TEST_CASE("UpstreamCircuit: in-flight sends that finish while open") {
  FakeClock clock;
  UpstreamCircuit circuit(&clock, TestOptions());
  // Four sends go out while closed.
  for (int i = 0; i < 4; ++i) REQUIRE(AcquireSend(circuit));
  // The first answer opens the circuit.
  CHECK_FALSE(circuit.OnResult(OutcomeClass::kUpstreamPaused, false, "upstream returned 402"));
  REQUIRE(circuit.paused());
  const TimeMs probe_at = circuit.next_probe_at();

  clock.Advance(500);
  SUBCASE("a retryable or unknown result is not charged and the schedule is kept") {
    CHECK_FALSE(circuit.OnResult(OutcomeClass::kRetryable, false, "upstream returned 503"));
    CHECK_FALSE(circuit.OnResult(OutcomeClass::kUnknown, false, "read timeout"));
    CHECK(circuit.paused());
    CHECK(circuit.next_probe_at() == probe_at);
  }
  SUBCASE("a paused or unreachable result is not charged and the schedule is kept") {
    CHECK_FALSE(circuit.OnResult(OutcomeClass::kUpstreamPaused, false, "upstream returned 403"));
    CHECK_FALSE(circuit.OnResult(OutcomeClass::kUnreachable, false, "connection reset"));
    CHECK(circuit.paused());
    CHECK(circuit.next_probe_at() == probe_at);
    CHECK(circuit.pause_reason() == "connection reset");
  }
  SUBCASE("a definite answer is charged but does not close the circuit") {
    CHECK(circuit.OnResult(OutcomeClass::kSent, false, ""));
    CHECK(circuit.OnResult(OutcomeClass::kPermanent, false, "upstream returned 422"));
    CHECK(circuit.paused());
    CHECK(circuit.next_probe_at() == probe_at);
  }
}

TEST_CASE("UpstreamCircuit: a re-open while a probe is in flight keeps the schedule") {
  FakeClock clock;
  UpstreamCircuit circuit(&clock, TestOptions());
  REQUIRE(AcquireSend(circuit));  // in flight across the whole test
  OpenWith401(circuit, clock);
  clock.Advance(1000);
  AcquireProbe(circuit);
  // The old send comes back unreachable while the probe is out.
  CHECK_FALSE(circuit.OnResult(OutcomeClass::kUnreachable, false, "connection refused"));
  CHECK(CannotAcquire(circuit));  // still one probe at a time
  CHECK_FALSE(circuit.OnResult(OutcomeClass::kRetryable, true, "upstream returned 503"));
  CHECK(circuit.next_probe_at() == clock.NowMs() + 2000);
}

TEST_CASE("UpstreamCircuit: probe_max below probe_base caps the first interval too") {
  FakeClock clock;
  UpstreamCircuit::Options options = TestOptions();
  options.probe_base = 10'000;
  options.probe_max = 3000;
  UpstreamCircuit circuit(&clock, options);
  OpenWith401(circuit, clock);
  CHECK(circuit.next_probe_at() == clock.NowMs() + 3000);
}

TEST_CASE("UpstreamCircuit: trip_after of 1 trips on the first failure") {
  FakeClock clock;
  UpstreamCircuit::Options options = TestOptions();
  options.trip_after = 1;
  UpstreamCircuit circuit(&clock, options);
  REQUIRE(AcquireSend(circuit));
  CHECK(circuit.OnResult(OutcomeClass::kRetryable, false, "upstream returned 500"));
  CHECK(circuit.paused());
}

TEST_CASE("UpstreamCircuit: default options") {
  FakeClock clock;
  UpstreamCircuit circuit(&clock, UpstreamCircuit::Options{});
  for (int i = 0; i < 4; ++i) {
    REQUIRE(AcquireSend(circuit));
    circuit.OnResult(OutcomeClass::kRetryable, false, "503");
  }
  CHECK_FALSE(circuit.paused());
  REQUIRE(AcquireSend(circuit));
  circuit.OnResult(OutcomeClass::kRetryable, false, "503");
  CHECK(circuit.paused());
  CHECK(circuit.next_probe_at() == clock.NowMs() + 1000);
}

}  // namespace
}  // namespace sendq
