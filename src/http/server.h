// The HTTP/1.1 front that sendq's API and the benchmark's null server share, on Boost.Beast
// over Asio.
//
// A few event-loop threads accept connections and parse requests with hard limits: nothing is
// buffered past the request-line, header, head and body limits, and each phase has a deadline.
// A request goes through two steps:
//   1. As soon as its head is complete, Handler::OnHead decides on the event-loop thread,
//      without blocking, whether the body may be read at all (route, token, type, size). A
//      refusal is answered at once and the connection closed, so an unauthenticated client
//      never makes sendq buffer a body. `Expect: 100-continue` is answered only after this.
//   2. With the whole body read, Handler::OnRequest runs on a WorkPool thread (fair between
//      producers) and answers through a Responder, at once or later: a long poll keeps its
//      Responder and holds no thread while it waits.
// Requests on one connection are answered in order, pipelined ones included. Header values are
// given as sent, never percent-decoded.
//
// Thread-safety: Bind() and Run() from one thread; BeginDrain() and Stop() from any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/clock.h"
#include "util/status.h"

namespace sendq::http {

struct Header {
  std::string name;
  std::string value;
};

struct Request {
  std::string method;
  std::string target;  // as sent
  std::string path;    // the target up to '?', as sent
  // The query string's parameters, decoded as a form: %XX escapes, and '+' as a space.
  std::multimap<std::string, std::string> query;
  std::vector<Header> headers;  // as sent, in order
  std::string body;
  std::string client;                    // the peer's address
  std::vector<std::string> path_params;  // what the route's {placeholders} matched
  std::string principal;                 // who sent it, as OnHead decided; keys fairness
  int route = -1;                        // which route OnHead matched, for OnRequest

  // The first header with this name (case-insensitive), or nullptr.
  const std::string* FindHeader(std::string_view name) const;
  // The first value of a query parameter, or nullptr.
  const std::string* FindParam(std::string_view name) const;
};

// A response body read from an open file (a spooled export, a backup), not held in memory.
// The descriptor is closed when the last copy of the response is gone.
class FileBody {
 public:
  // Takes ownership of `fd`, an open, readable file of `size` bytes, read from its start.
  FileBody(int fd, uint64_t size) : fd_(fd), size_(size) {}
  ~FileBody();
  FileBody(const FileBody&) = delete;
  FileBody& operator=(const FileBody&) = delete;
  // Hands the descriptor over (the caller closes it); -1 if taken already.
  int Release();
  uint64_t size() const { return size_; }

 private:
  int fd_;
  uint64_t size_;
};

struct Response {
  int status = 200;
  std::string content_type;
  std::string body;
  std::vector<Header> headers;
  bool close = false;  // close the connection after this answer
  // When set, the body is this file's content instead of `body`.
  std::shared_ptr<FileBody> file;

  void SetHeader(std::string name, std::string value);
};

// Answers one request. Copies share the answer: the first call wins, later ones are dropped.
// Thread-safety: may be called from any thread.
class Responder {
 public:
  using Deliver = std::function<void(std::function<Response()>)>;
  Responder() = default;
  explicit Responder(Deliver deliver);

  // Answers with `response`.
  void operator()(Response response) const;
  // Answers with what `make` returns, called on the connection's event-loop thread: for a
  // caller on a thread that must stay quick (the store's writer), so that building the answer
  // does not happen there.
  void Build(std::function<Response()> make) const;

 private:
  struct State;
  std::shared_ptr<State> state_;
};

// What becomes of a request whose head is complete.
struct HeadVerdict {
  std::optional<Response> refuse;  // answered at once, without reading the body; then closed
  uint64_t body_limit = 0;         // otherwise: the most body bytes this route reads
  // OnRequest runs on the event-loop thread instead of the pool: for a handler that never
  // blocks (it hands its work on and answers from a callback), which saves two thread hand-offs.
  bool run_inline = false;
};

class Handler {
 public:
  virtual ~Handler() = default;
  // On an event-loop thread, before any of the body is read. Must not block. May set
  // request.principal and request.path_params for OnRequest.
  virtual HeadVerdict OnHead(Request& request) = 0;
  // On a pool thread (or the event-loop thread, if OnHead said run_inline), with the whole
  // body. `respond` must be called exactly once, from any thread, now or later.
  virtual void OnRequest(std::shared_ptr<Request> request, Responder respond) = 0;
};

struct Limits {
  size_t max_line = 8 << 10;   // the request line, and each header line
  size_t max_head = 64 << 10;  // the whole head
  size_t max_headers = 100;
  DurationMs head_timeout = 10'000;  // from the first byte of a request to the end of its head
  DurationMs body_timeout = 30'000;  // to read the whole body
  DurationMs idle_timeout = 60'000;  // a kept-alive connection waiting for its next request
  DurationMs write_timeout = 30'000;
};

struct Options {
  std::string host = "127.0.0.1";
  int port = 0;  // 0: any free port
  int io_threads = 1;
  int worker_threads = 64;
  size_t max_connections = 10'000;
  size_t max_connections_per_client = 4'096;
  Limits limits;
};

// Whether HOST:PORT can be bound now: the same error as Server::Bind() ("cannot listen on
// 127.0.0.1:8080: address already in use"), without keeping the address. For a start-up that
// should fail on a taken port before it does anything else.
Status CheckListenAddress(const std::string& host, int port);

// The connection count that fits a descriptor limit, leaving room for the database, the
// upstream clients and the process's other files.
size_t ConnectionsForDescriptorLimit(uint64_t descriptor_limit);

class Server {
 public:
  Server(Options options, Handler* handler);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds and listens (never sharing the port with another process); returns the port.
  // IOError "cannot listen on HOST:PORT: address already in use" and the like.
  Result<int> Bind();
  // Serves until Stop(). REQUIRES: Bind() succeeded.
  void Run();
  // Closes idle and stalled connections now; requests in flight are still answered (then
  // their connections close), and new connections are still served.
  void BeginDrain();
  // Stops accepting, lets the pool finish what it runs, writes what is answered, and makes
  // Run() return.
  void Stop();

  // Runs `job` on the request pool, in `key`'s turn (a long poll that woke up).
  void Submit(const std::string& key, std::function<void()> job);

  class Impl;  // defined in server.cpp

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace sendq::http
