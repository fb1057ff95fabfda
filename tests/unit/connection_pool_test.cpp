#include <doctest/doctest.h>

#include <future>
#include <latch>

#include "http/http_server.h"

namespace sendq {
namespace {

TEST_CASE("connection pool: busy threads do not hold up a new job while below the cap") {
  http::ConnectionPool pool(/*ready_threads=*/2, /*max_threads=*/8);
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::latch busy(4);
  for (int i = 0; i < 4; ++i) {
    pool.enqueue([&] {
      busy.count_down();
      released.wait();
    });
  }
  busy.wait();  // four jobs hold four threads: the pool grew past its two ready threads
  std::promise<void> ran;
  pool.enqueue([&] { ran.set_value(); });
  ran.get_future().wait();  // served while the four are still held
  CHECK(pool.TEST_Threads() == 5);
  release.set_value();
  pool.shutdown();
}

TEST_CASE("connection pool: at the cap, a job waits for a free thread") {
  http::ConnectionPool pool(/*ready_threads=*/1, /*max_threads=*/2);
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::latch busy(2);
  for (int i = 0; i < 2; ++i) {
    pool.enqueue([&] {
      busy.count_down();
      released.wait();
    });
  }
  busy.wait();
  std::atomic<bool> ran{false};
  pool.enqueue([&] { ran = true; });
  CHECK(pool.TEST_Threads() == 2);
  CHECK_FALSE(ran.load());  // both threads are held, and no third may start
  release.set_value();
  pool.shutdown();  // serves what is queued before joining
  CHECK(ran.load());
}

}  // namespace
}  // namespace sendq
