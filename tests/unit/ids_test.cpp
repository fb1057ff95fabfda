// Message ids: shape, ordering within and across milliseconds, and the time they carry.
#include "util/ids.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <cctype>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "util/clock.h"

namespace sendq {
namespace {

constexpr TimeMs kMaxIdTime = (TimeMs{1} << 48) - 1;

TEST_CASE("ids: prefix, length and alphabet") {
  FakeClock clock;
  IdGenerator ids(&clock);
  for (int i = 0; i < 100; ++i) {
    const std::string id = ids.Next();
    CAPTURE(id);
    CHECK(id.size() == 29);
    CHECK(id.rfind("sq_", 0) == 0);
    CHECK(id.find_first_not_of("0123456789abcdefghjkmnpqrstvwxyz", 3) == std::string::npos);
    CHECK(IsMessageId(id));
    clock.Advance(i % 3);
  }
}

TEST_CASE("IsMessageId: rejects what is not an id") {
  FakeClock clock;
  IdGenerator ids(&clock);
  const std::string good = ids.Next();
  REQUIRE(IsMessageId(good));

  CHECK_FALSE(IsMessageId(""));
  CHECK_FALSE(IsMessageId("sq_"));
  CHECK_FALSE(IsMessageId(good.substr(0, 28)));           // too short
  CHECK_FALSE(IsMessageId(good + "0"));                   // too long
  CHECK_FALSE(IsMessageId("sx_" + good.substr(3)));       // wrong prefix
  CHECK_FALSE(IsMessageId("SQ_" + good.substr(3)));       // prefix is lower case
  CHECK_FALSE(IsMessageId("msg_" + good.substr(4)));      // AgentPhone's id
  CHECK_FALSE(IsMessageId("sq" + good.substr(3) + "0"));  // no underscore
  for (char bad : {'i', 'l', 'o', 'u', 'I', 'L', 'O', 'U', 'A', 'Z', '-', '_', ' ', '\0'}) {
    std::string id = good;
    id[10] = bad;
    CAPTURE(bad);
    CHECK_FALSE(IsMessageId(id));
  }
  // Upper case is not how ids are written.
  std::string upper = good;
  std::transform(upper.begin() + 3, upper.end(), upper.begin() + 3, [](char c) {
    return static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  });
  if (upper != good) CHECK_FALSE(IsMessageId(upper));
  // The first character carries only 3 bits, so it is at most '7'.
  for (char first : {'8', '9', 'a', 'z'}) {
    std::string id = good;
    id[3] = first;
    CAPTURE(first);
    CHECK_FALSE(IsMessageId(id));
  }
  std::string seven = good;
  seven[3] = '7';
  CHECK(IsMessageId(seven));
}

TEST_CASE("ids: strictly increasing within one millisecond") {
  FakeClock clock;
  IdGenerator ids(&clock);
  std::string previous = ids.Next();
  for (int i = 0; i < 10'000; ++i) {
    const std::string id = ids.Next();
    if (!(previous < id)) {
      CAPTURE(i);
      CAPTURE(previous);
      CAPTURE(id);
      FAIL("ids out of order");
    }
    CHECK_EQ(MessageIdTime(id), clock.NowMs());
    previous = id;
  }
}

TEST_CASE("ids: increasing across milliseconds, and when the clock steps back") {
  FakeClock clock;
  IdGenerator ids(&clock);
  std::string previous = ids.Next();
  for (int i = 0; i < 1000; ++i) {
    clock.Advance(i % 2 == 0 ? 1 : 37);
    const std::string id = ids.Next();
    CHECK(previous < id);
    CHECK(MessageIdTime(id) == clock.NowMs());
    previous = id;
  }
  const TimeMs latest = clock.NowMs();
  clock.Advance(-5000);
  for (int i = 0; i < 100; ++i) {
    const std::string id = ids.Next();
    CHECK(previous < id);
    // The id keeps the latest time seen rather than go back.
    CHECK(MessageIdTime(id) == latest);
    previous = id;
  }
}

TEST_CASE("ids: unique across threads") {
  FakeClock clock;
  IdGenerator ids(&clock);
  constexpr int kThreads = 4;
  constexpr int kPerThread = 2000;
  std::vector<std::vector<std::string>> out(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) out[t].push_back(ids.Next());
    });
  }
  for (std::thread& thread : threads) thread.join();
  std::set<std::string> all;
  for (const auto& v : out) {
    CHECK(std::is_sorted(v.begin(), v.end()));
    all.insert(v.begin(), v.end());
  }
  CHECK(all.size() == kThreads * kPerThread);
}

TEST_CASE("MessageIdTime returns the clock time") {
  for (TimeMs t : {TimeMs{0}, TimeMs{1}, TimeMs{1'700'000'000'000}, TimeMs{1'700'000'000'123},
                   TimeMs{4'102'444'800'000}, kMaxIdTime}) {
    CAPTURE(t);
    FakeClock clock(t);
    IdGenerator ids(&clock);
    const std::string id = ids.Next();
    CHECK(IsMessageId(id));
    CHECK(MessageIdTime(id) == t);
    CHECK(MessageIdTime(MinMessageIdAt(t)) == t);
  }
}

TEST_CASE("MinMessageIdAt bounds the ids of a millisecond") {
  for (TimeMs t : {TimeMs{1}, TimeMs{1'700'000'000'000}, TimeMs{1'700'000'000'001},
                   TimeMs{1'999'999'999'999}, kMaxIdTime}) {
    CAPTURE(t);
    const std::string min_at_t = MinMessageIdAt(t);
    CHECK(IsMessageId(min_at_t));

    FakeClock now(t);
    IdGenerator at_t(&now);
    FakeClock before(t - 1);
    IdGenerator at_t_minus_1(&before);
    for (int i = 0; i < 1000; ++i) {
      const std::string id_now = at_t.Next();
      const std::string id_before = at_t_minus_1.Next();
      CHECK(min_at_t <= id_now);
      CHECK(min_at_t > id_before);
    }
    // And every id of this millisecond is below the next millisecond's bound.
    if (t < kMaxIdTime) CHECK(MinMessageIdAt(t + 1) > at_t.Next());
  }
  CHECK(MinMessageIdAt(0) == "sq_00000000000000000000000000");
  CHECK(MinMessageIdAt(-5) == MinMessageIdAt(0));
}

}  // namespace
}  // namespace sendq
