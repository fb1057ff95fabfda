#include "http/http_server.h"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace sendq::http {

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
