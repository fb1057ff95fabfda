#include "http/work_pool.h"

#include <doctest/doctest.h>

#include <future>
#include <mutex>
#include <string>
#include <vector>

#include "http/server.h"

namespace sendq {
namespace {

TEST_CASE("work pool: keys take turns, so a key with a long queue does not hold up another") {
  http::WorkPool pool(1);
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::promise<void> started;
  // The one thread is held, so everything below queues up.
  pool.Submit("busy", [&] {
    started.set_value();
    released.wait();
  });
  started.get_future().wait();
  std::mutex mu;
  std::vector<std::string> order;
  for (int i = 0; i < 5; ++i) {
    pool.Submit("busy", [&, i] {
      std::lock_guard<std::mutex> guard(mu);
      order.push_back("busy" + std::to_string(i));
    });
  }
  pool.Submit("other", [&] {
    std::lock_guard<std::mutex> guard(mu);
    order.push_back("other");
  });
  release.set_value();
  pool.Shutdown();
  // One job of the busy key, then the other key's turn, then the rest in their order.
  CHECK(order == std::vector<std::string>{"busy0", "other", "busy1", "busy2", "busy3", "busy4"});
}

TEST_CASE("work pool: after Shutdown a job runs on the caller's thread") {
  http::WorkPool pool(2);
  pool.Shutdown();
  bool ran = false;
  pool.Submit("k", [&] { ran = true; });
  CHECK(ran);
}

TEST_CASE("front: the connection limit leaves descriptors for the database and upstream") {
  CHECK(http::ConnectionsForDescriptorLimit(1024) == 1024 - 256);
  CHECK(http::ConnectionsForDescriptorLimit(400) == 200);
  CHECK(http::ConnectionsForDescriptorLimit(20'000) == 20'000 - 256);
  CHECK(http::ConnectionsForDescriptorLimit(1'048'576) == 1'048'576 - 256);
  CHECK(http::ConnectionsForDescriptorLimit(100) == 50);
}

}  // namespace
}  // namespace sendq
