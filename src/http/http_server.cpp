#include "http/http_server.h"

#include <sys/socket.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>

namespace sendq::http {

namespace {

// The Content-Length the client declared, or 0.
uint64_t DeclaredLength(const httplib::Request& req) {
  const std::string text = req.get_header_value("Content-Length");
  uint64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return 0;
    if (value > (UINT64_MAX - 9) / 10) return UINT64_MAX;
    value = value * 10 + static_cast<uint64_t>(c - '0');
  }
  return value;
}

}  // namespace

BodyRead ReadBody(const httplib::Request& req, const httplib::ContentReader& reader,
                  size_t max_bytes, std::string* body) {
  bool too_large = false;
  const bool complete = reader([&](const char* data, size_t length) {
    if (body->size() + length > max_bytes) {
      too_large = true;
      return false;
    }
    body->append(data, length);
    return true;
  });
  // The library refuses a declared Content-Length over its own limit without reading.
  if (too_large || (!complete && DeclaredLength(req) > max_bytes)) return BodyRead::kTooLarge;
  return complete ? BodyRead::kComplete : BodyRead::kIncomplete;
}

ConnectionPool::ConnectionPool(int ready_threads, int max_threads)
    : max_threads_(static_cast<size_t>(std::max(max_threads, std::max(ready_threads, 1)))) {
  std::lock_guard<std::mutex> guard(mu_);
  for (int i = 0; i < ready_threads; ++i) StartThreadLocked();
}

ConnectionPool::~ConnectionPool() { shutdown(); }

void ConnectionPool::StartThreadLocked() {
  ++idle_;  // from now on it can take a job, so the next enqueue does not start another
  threads_.emplace_back([this] { Work(); });
}

void ConnectionPool::enqueue(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> guard(mu_);
    jobs_.push_back(std::move(fn));
    if (jobs_.size() > idle_ && threads_.size() < max_threads_) StartThreadLocked();
  }
  cv_.notify_one();
}

void ConnectionPool::shutdown() {
  std::vector<std::thread> threads;
  {
    std::lock_guard<std::mutex> guard(mu_);
    stopping_ = true;
    threads.swap(threads_);
  }
  cv_.notify_all();
  for (std::thread& t : threads) t.join();
}

size_t ConnectionPool::TEST_Threads() {
  std::lock_guard<std::mutex> guard(mu_);
  return threads_.size();
}

void ConnectionPool::Work() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
    if (jobs_.empty()) return;  // stopping, and everything queued was served
    std::function<void()> job = std::move(jobs_.front());
    jobs_.pop_front();
    --idle_;
    lock.unlock();
    job();
    lock.lock();
    ++idle_;
  }
}

Server::Server(const Settings& settings) {
  const int ready = settings.ready_threads;
  const int max = settings.max_connections;
  new_task_queue = [ready, max] { return new ConnectionPool(ready, max); };
  set_tcp_nodelay(true);
  set_payload_max_length(settings.payload_max_length);
  set_read_timeout(10, 0);
  set_write_timeout(10, 0);
  set_keep_alive_max_count(10'000);
}

Status Server::RaiseListenBacklog() {
  if (::listen(svr_sock_, SOMAXCONN) != 0) {
    return Status::IOError(std::string("listen: ") + std::strerror(errno));
  }
  return Status::Ok();
}

}  // namespace sendq::http
