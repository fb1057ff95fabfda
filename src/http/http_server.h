// The HTTP server settings and body reading that sendq's API and the benchmark's null server
// share.
//
// cpp-httplib serves each connection on one pool thread for the connection's whole life, and
// its own ThreadPool has a fixed size: once that many connections are open (idle keep-alive
// clients, or slow senders dribbling a request head), every new connection waits in an
// unbounded queue behind them. ConnectionPool instead keeps `ready_threads` threads and adds
// one whenever a connection arrives and none is idle, up to `max_connections`; only beyond
// that do connections wait. The library also listens with a backlog of 5, so a burst of
// connects sees SYNs dropped and retried a second later; RaiseListenBacklog() fixes that after
// binding.
//
// Thread-safety: ConnectionPool is called by the library's accept thread and its own workers.
#pragma once

#include <httplib.h>

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "util/status.h"

namespace sendq::http {

class ConnectionPool final : public httplib::TaskQueue {
 public:
  ConnectionPool(int ready_threads, int max_threads);
  ~ConnectionPool() override;
  ConnectionPool(const ConnectionPool&) = delete;
  ConnectionPool& operator=(const ConnectionPool&) = delete;

  void enqueue(std::function<void()> fn) override;
  // Serves what is queued, then joins every thread.
  void shutdown() override;

  // Threads started so far (they are kept once started). For tests.
  size_t TEST_Threads();

 private:
  void Work();
  void StartThreadLocked();

  const size_t max_threads_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;  // GUARDED_BY(mu_)
  size_t idle_ = 0;        // GUARDED_BY(mu_): threads not running a job (starting or waiting)
  bool stopping_ = false;  // GUARDED_BY(mu_)
  std::vector<std::thread> threads_;  // GUARDED_BY(mu_)
};

// How reading a request body through a ContentReader ended.
enum class BodyRead { kComplete, kTooLarge, kIncomplete };

// Reads the body of `req` into `*body`, stopping as soon as it would pass `max_bytes`, so that
// a chunked body (which the library does not limit) is refused early instead of buffered. A
// body whose declared Content-Length is over the limit is kTooLarge even when the library
// refused it before reading.
BodyRead ReadBody(const httplib::Request& req, const httplib::ContentReader& reader,
                  size_t max_bytes, std::string* body);

struct Settings {
  int ready_threads = 64;      // threads kept for connections
  int max_connections = 1024;  // connections served at once
  size_t payload_max_length = 1 << 20;
};

class Server : public httplib::Server {
 public:
  explicit Server(const Settings& settings);
  // The library listens with a backlog of 5; after a successful bind, this raises it to the
  // system's maximum.
  Status RaiseListenBacklog();
};

}  // namespace sendq::http
