#include "http/server.h"

// clang-format off
// Boost 1.74's Asio uses std::exchange without including <utility>, so it comes first.
#include <utility>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
// clang-format on

#include <fmt/format.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>

#include "http/work_pool.h"
#include "util/log.h"

namespace sendq::http {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = net::ip::tcp;
using boost::system::error_code;

namespace {

// After an answer that closes the connection, unread request bytes are read and dropped for
// at most this long (or this many bytes) before the socket closes: closing with unread data
// makes the kernel send a reset, which can destroy the answer before the client reads it.
constexpr DurationMs kLingerTime = 2'000;
constexpr size_t kLingerBytes = 64 << 20;

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Form decoding of one query component: %XX escapes and '+' as a space. A malformed escape is
// kept as it was.
std::string DecodeQueryComponent(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '+') {
      out += ' ';
    } else if (in[i] == '%' && i + 2 < in.size() && HexValue(in[i + 1]) >= 0 &&
               HexValue(in[i + 2]) >= 0) {
      out += static_cast<char>(HexValue(in[i + 1]) * 16 + HexValue(in[i + 2]));
      i += 2;
    } else {
      out += in[i];
    }
  }
  return out;
}

std::multimap<std::string, std::string> DecodeQuery(std::string_view query) {
  std::multimap<std::string, std::string> out;
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (pair.empty()) continue;
    size_t eq = pair.find('=');
    std::string_view key = pair.substr(0, eq);
    std::string_view value =
        eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
    out.emplace(DecodeQueryComponent(key), DecodeQueryComponent(value));
  }
  return out;
}

std::string ErrorBody(std::string_view code, std::string_view detail) {
  // Hand-built: both strings are fixed ASCII chosen here, never request data.
  return fmt::format(R"({{"detail":"{}","code":"{}"}})", detail, code);
}

Response ErrorResponse(int status, std::string_view code, std::string_view detail) {
  Response r;
  r.status = status;
  r.content_type = "application/json";
  r.body = ErrorBody(code, detail);
  r.close = true;
  return r;
}

// An error of the HTTP parser (a malformed request), as opposed to one of the socket.
bool IsParseError(const error_code& ec) {
  return ec.category() == bhttp::make_error_code(bhttp::error::bad_target).category();
}

bool IsClosedByPeer(const error_code& ec) {
  return ec == bhttp::error::end_of_stream || ec == net::error::eof ||
         ec == net::error::connection_reset || ec == net::error::broken_pipe ||
         ec == bhttp::error::partial_message;
}

}  // namespace

struct Responder::State {
  Deliver deliver;
  std::atomic<bool> answered{false};
};

Responder::Responder(Deliver deliver) : state_(std::make_shared<State>()) {
  state_->deliver = std::move(deliver);
}

void Responder::operator()(Response response) const {
  Build([response = std::move(response)]() mutable { return std::move(response); });
}

void Responder::Build(std::function<Response()> make) const {
  if (!state_ || state_->answered.exchange(true)) return;
  state_->deliver(std::move(make));
}

const std::string* Request::FindHeader(std::string_view name) const {
  for (const Header& h : headers) {
    if (EqualsIgnoreCase(h.name, name)) return &h.value;
  }
  return nullptr;
}

const std::string* Request::FindParam(std::string_view name) const {
  auto it = query.find(std::string(name));
  return it == query.end() ? nullptr : &it->second;
}

FileBody::~FileBody() {
  if (fd_ >= 0) ::close(fd_);
}

int FileBody::Release() { return std::exchange(fd_, -1); }

void Response::SetHeader(std::string name, std::string value) {
  for (Header& h : headers) {
    if (EqualsIgnoreCase(h.name, name)) {
      h.value = std::move(value);
      return;
    }
  }
  headers.push_back(Header{std::move(name), std::move(value)});
}

size_t ConnectionsForDescriptorLimit(uint64_t descriptor_limit) {
  // The database and its WAL, the readers, the upstream clients, logs and the listener.
  constexpr uint64_t kReserved = 256;
  if (descriptor_limit <= 2 * kReserved) return static_cast<size_t>(descriptor_limit / 2);
  return static_cast<size_t>(descriptor_limit - kReserved);
}

class Session;

class Server::Impl {
 public:
  Impl(Options options, Handler* handler)
      : options_(std::move(options)),
        handler_(handler),
        acceptor_(net::make_strand(ioc_)),
        retry_accept_(acceptor_.get_executor()),
        pool_(options_.worker_threads) {}

  Result<int> Bind();
  void Run();
  void BeginDrain();
  void Stop();

  const Options& options() const { return options_; }
  Handler* handler() const { return handler_; }
  WorkPool& pool() { return pool_; }
  bool draining() const { return draining_.load(std::memory_order_acquire); }
  bool stopping() const { return stopping_.load(std::memory_order_acquire); }
  void Forget(Session* session, const std::string& client);

 private:
  void Accept();
  void OnAccept(const error_code& ec, tcp::socket socket);
  // Posts `what` to every open session's strand.
  void ForEachSession(void (Session::*what)());

  const Options options_;
  Handler* const handler_;
  // Declared before the event loop: sessions that the loop's destructor releases still
  // unregister here.
  Mutex mu_;
  std::unordered_map<Session*, std::weak_ptr<Session>> sessions_ GUARDED_BY(mu_);
  std::unordered_map<std::string, size_t> per_client_ GUARDED_BY(mu_);
  std::atomic<int64_t> refused_since_log_{0};
  std::atomic<int64_t> last_refusal_log_ms_{0};

  net::io_context ioc_;
  tcp::acceptor acceptor_;  // on its own strand, with retry_accept_
  net::steady_timer retry_accept_;
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work_;
  WorkPool pool_;
  std::atomic<bool> draining_{false};
  std::atomic<bool> stopping_{false};
};

// One connection. Everything runs on the connection's strand, except Responder calls, which
// post to it.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(Server::Impl* server, tcp::socket socket, std::string client)
      : server_(server),
        limits_(server->options().limits),
        socket_(std::move(socket)),
        timer_(socket_.get_executor()),
        buffer_(limits_.max_head + 16 * 1024),
        client_(std::move(client)) {}

  ~Session() { server_->Forget(this, client_); }

  void Start() { ReadNext(); }
  tcp::socket::executor_type executor() { return socket_.get_executor(); }

  // BeginDrain: a connection that is not handling a request closes now.
  // (A body being received is a request in flight: it is answered, then the connection
  // closes.)
  void Drain() {
    if (phase_ == Phase::kIdle || phase_ == Phase::kHead) Close();
  }
  // Stop: everything closes but an answer being written.
  void Shut() {
    if (phase_ != Phase::kWriting) Close();
  }

 private:
  enum class Phase { kIdle, kHead, kBody, kHandling, kWriting, kLingering, kClosed };

  // Deadlines: one timer, re-armed for each phase. Its expiry cancels the pending operation,
  // whose handler then sees timed_out_.
  void Arm(DurationMs timeout) {
    timed_out_ = false;
    const uint64_t epoch = ++timer_epoch_;
    timer_.expires_after(std::chrono::milliseconds(timeout));
    timer_.async_wait([self = shared_from_this(), epoch](const error_code& ec) {
      if (ec || epoch != self->timer_epoch_) return;
      self->timed_out_ = true;
      error_code ignored;
      self->socket_.cancel(ignored);
    });
  }
  void Disarm() {
    ++timer_epoch_;
    timer_.cancel();
  }

  void ReadNext() {
    // While draining, a kept-alive connection closes between requests; a new one is served.
    if (server_->stopping() || (server_->draining() && served_ > 0 && buffer_.size() == 0)) {
      return Close();
    }
    request_ = std::make_shared<Request>();
    request_->client = client_;
    head_parser_.emplace();
    head_parser_->header_limit(static_cast<uint32_t>(limits_.max_head));
    // The route's limit applies once the head is read. (Not boost::none: Beast 1.74 compares
    // the length with the optional itself, and an empty optional is less than any length.)
    head_parser_->body_limit(std::numeric_limits<uint64_t>::max());
    if (buffer_.size() > 0) return ReadHead();  // pipelined: the next request is here already
    phase_ = Phase::kIdle;
    buffer_.shrink_to_fit();  // an idle connection keeps no buffer from its last request
    Arm(limits_.idle_timeout);
    socket_.async_wait(tcp::socket::wait_read, [self = shared_from_this()](const error_code& ec) {
      if (ec) return self->Close();
      self->ReadHead();
    });
  }

  void ReadHead() {
    phase_ = Phase::kHead;
    Arm(limits_.head_timeout);
    bhttp::async_read_header(
        socket_, buffer_, *head_parser_,
        [self = shared_from_this()](const error_code& ec, size_t) { self->OnHead(ec); });
  }

  void OnHead(const error_code& ec) {
    Disarm();
    if (phase_ == Phase::kClosed) return;
    if (ec) {
      if (timed_out_) {
        return Refuse(
            ErrorResponse(408, "request_timeout", "the request head did not arrive in time"));
      }
      if (ec == bhttp::error::header_limit || ec == bhttp::error::buffer_overflow) {
        return Refuse(
            ErrorResponse(431, "request_header_fields_too_large", "the request head is too large"));
      }
      if (IsClosedByPeer(ec) || !IsParseError(ec)) {
        return Close();
      }
      log::Debug("bad_request", {{"error", ec.message()}});
      return Refuse(ErrorResponse(400, "bad_request", "malformed HTTP request"));
    }
    const auto& head = head_parser_->get();
    request_->method = std::string(head.method_string());
    request_->target = std::string(head.target());
    if (request_->method.size() + request_->target.size() + 10 > limits_.max_line) {
      return Refuse(
          ErrorResponse(431, "request_header_fields_too_large", "the request line is too long"));
    }
    size_t count = 0;
    for (const auto& field : head) {
      if (++count > limits_.max_headers) {
        return Refuse(
            ErrorResponse(431, "request_header_fields_too_large", "too many header fields"));
      }
      if (field.name_string().size() + field.value().size() + 4 > limits_.max_line) {
        return Refuse(
            ErrorResponse(431, "request_header_fields_too_large", "a header field is too long"));
      }
      request_->headers.push_back(
          Header{std::string(field.name_string()), std::string(field.value())});
    }
    // A transfer coding other than a final "chunked" leaves the body's length unknown.
    if (head.count(bhttp::field::transfer_encoding) > 0 && !head_parser_->chunked()) {
      return Refuse(ErrorResponse(400, "bad_request", "unsupported Transfer-Encoding"));
    }
    const size_t question = request_->target.find('?');
    request_->path = request_->target.substr(0, question);
    if (question != std::string::npos) {
      request_->query = DecodeQuery(std::string_view(request_->target).substr(question + 1));
    }
    keep_alive_ = head_parser_->keep_alive();

    HeadVerdict verdict = server_->handler()->OnHead(*request_);
    run_inline_ = verdict.run_inline;
    if (verdict.refuse) {
      // Without a body to skip, the connection can go on (unless the answer says otherwise).
      if (head_parser_->is_done()) return Write(std::move(*verdict.refuse));
      return Refuse(std::move(*verdict.refuse));
    }
    if (head_parser_->is_done()) return Dispatch();  // no body
    if (head_parser_->content_length() && *head_parser_->content_length() > verdict.body_limit) {
      return Refuse(ErrorResponse(413, "payload_too_large", "the request body is too large"));
    }
    body_parser_.emplace(std::move(*head_parser_));
    head_parser_.reset();
    body_parser_->body_limit(verdict.body_limit);
    const std::string* expect = request_->FindHeader("Expect");
    if (expect != nullptr && EqualsIgnoreCase(*expect, "100-continue") &&
        body_parser_->get().version() >= 11) {
      static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      phase_ = Phase::kBody;
      Arm(limits_.write_timeout);
      net::async_write(socket_, net::buffer(kContinue.data(), kContinue.size()),
                       [self = shared_from_this()](const error_code& write_ec, size_t) {
                         self->Disarm();
                         if (write_ec) return self->Close();
                         self->ReadBody();
                       });
      return;
    }
    ReadBody();
  }

  void ReadBody() {
    phase_ = Phase::kBody;
    Arm(limits_.body_timeout);
    bhttp::async_read(
        socket_, buffer_, *body_parser_,
        [self = shared_from_this()](const error_code& ec, size_t) { self->OnBody(ec); });
  }

  void OnBody(const error_code& ec) {
    Disarm();
    if (phase_ == Phase::kClosed) return;
    if (ec) {
      if (timed_out_) {
        return Refuse(
            ErrorResponse(408, "request_timeout", "the request body did not arrive in time"));
      }
      if (ec == bhttp::error::body_limit) {
        return Refuse(ErrorResponse(413, "payload_too_large", "the request body is too large"));
      }
      if (IsClosedByPeer(ec) || !IsParseError(ec)) {
        return Close();
      }
      return Refuse(ErrorResponse(400, "bad_request", "malformed request body"));
    }
    request_->body = std::move(body_parser_->get().body());
    body_parser_.reset();
    Dispatch();
  }

  void Dispatch() {
    phase_ = Phase::kHandling;
    ++served_;
    head_parser_.reset();
    auto self = shared_from_this();
    Responder respond([self](std::function<Response()> make) {
      net::post(self->socket_.get_executor(),
                [self, make = std::move(make)] { self->Write(make()); });
    });
    Handler* handler = server_->handler();
    auto run = [handler, request = request_, respond] {
      try {
        handler->OnRequest(request, respond);
      } catch (const std::exception& e) {
        log::Error("request_failed", {{"path", request->path}, {"error", e.what()}});
        respond(ErrorResponse(500, "internal", "internal error; see the sendq log"));
      }
    };
    if (run_inline_) return run();
    server_->pool().Submit(request_->principal, std::move(run));
  }

  // Answers a request whose body will not be read, then closes.
  void Refuse(Response response) {
    response.close = true;
    keep_alive_ = false;
    Write(std::move(response));
  }

  void Write(Response r) {
    if (phase_ == Phase::kClosed) return;
    phase_ = Phase::kWriting;
    const bool close = r.close || !keep_alive_ || server_->draining() || server_->stopping();
    if (log::Enabled(log::Level::kDebug)) {
      log::Debug("http_request", {{"method", request_ ? request_->method : ""},
                                  {"path", request_ ? request_->path : ""},
                                  {"status", r.status}});
    }
    if (r.file) return WriteFile(std::move(r), close);
    response_ = {};
    FillHead(r, close, &response_);
    response_.body() = std::move(r.body);
    response_.prepare_payload();
    Arm(limits_.write_timeout);
    bhttp::async_write(socket_, response_,
                       [self = shared_from_this(), close](const error_code& ec, size_t) {
                         self->AfterWrite(ec, close);
                       });
  }

  template <class Body>
  static void FillHead(Response& r, bool close, bhttp::response<Body>* out) {
    out->version(11);
    out->result(static_cast<unsigned>(r.status));
    if (!r.content_type.empty()) out->set(bhttp::field::content_type, r.content_type);
    for (Header& h : r.headers) out->insert(h.name, h.value);
    out->keep_alive(!close);
  }

  // A body from a file, written as it is read: a large export or backup is never in memory.
  void WriteFile(Response r, bool close) {
    file_response_.emplace();
    FillHead(r, close, &*file_response_);
    beast::file file;
    error_code ec;
    file.native_handle(r.file->Release());
    file_response_->body().reset(std::move(file), ec);
    if (ec) {
      log::Error("response_file_failed", {{"error", ec.message()}});
      return Close();
    }
    file_response_->prepare_payload();
    // The write deadline grows with the size: at least 1 MB/s.
    Arm(limits_.write_timeout + static_cast<DurationMs>(r.file->size() / 1000));
    bhttp::async_write(socket_, *file_response_,
                       [self = shared_from_this(), close](const error_code& write_ec, size_t) {
                         self->file_response_.reset();
                         self->AfterWrite(write_ec, close);
                       });
  }

  void AfterWrite(const error_code& ec, bool close) {
    Disarm();
    if (ec) return Close();
    if (close) return Linger();
    ReadNext();
  }

  // Half-closes, then drops what the client still sends until it closes too (bounded).
  void Linger() {
    phase_ = Phase::kLingering;
    error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_send, ignored);
    buffer_.consume(buffer_.size());
    scratch_ = std::make_unique<char[]>(kScratchBytes);
    Arm(kLingerTime);
    LingerRead();
  }
  void LingerRead() {
    socket_.async_read_some(
        net::buffer(scratch_.get(), kScratchBytes),
        [self = shared_from_this()](const error_code& ec, size_t n) {
          self->lingered_ += n;
          if (ec || self->lingered_ > kLingerBytes || self->phase_ == Phase::kClosed) {
            return self->Close();
          }
          self->LingerRead();
        });
  }

  void Close() {
    if (phase_ == Phase::kClosed) return;
    phase_ = Phase::kClosed;
    Disarm();
    error_code ignored;
    socket_.close(ignored);
  }

  Server::Impl* const server_;
  const Limits limits_;
  tcp::socket socket_;
  net::steady_timer timer_;
  beast::flat_buffer buffer_;
  const std::string client_;
  std::optional<bhttp::request_parser<bhttp::empty_body>> head_parser_;
  std::optional<bhttp::request_parser<bhttp::string_body>> body_parser_;
  std::shared_ptr<Request> request_;
  bhttp::response<bhttp::string_body> response_;
  std::optional<bhttp::response<bhttp::file_body>> file_response_;
  bool keep_alive_ = true;
  bool timed_out_ = false;
  uint64_t timer_epoch_ = 0;
  Phase phase_ = Phase::kIdle;
  size_t lingered_ = 0;
  uint64_t served_ = 0;      // requests handed to the handler
  bool run_inline_ = false;  // the current request's handler runs on this thread
  static constexpr size_t kScratchBytes = 16 * 1024;
  std::unique_ptr<char[]> scratch_;  // only while lingering
};

void Server::Impl::Forget(Session* session, const std::string& client) {
  MutexLock guard(&mu_);
  sessions_.erase(session);
  auto it = per_client_.find(client);
  if (it != per_client_.end() && --it->second == 0) per_client_.erase(it);
}

namespace {

// Opens `acceptor` on host:port and binds it (never sharing the port with another process);
// then listens, if `listen`. Errors say "cannot listen on HOST:PORT: <why>".
Status BindAcceptor(net::io_context& ioc, tcp::acceptor& acceptor, const std::string& host,
                    int port, bool listen) {
  error_code ec;
  net::ip::address address = net::ip::make_address(host, ec);
  if (ec) {
    tcp::resolver resolver(ioc);
    auto results = resolver.resolve(host, "", ec);
    if (ec || results.empty()) {
      return Status::IOError(
          fmt::format("cannot listen on {}:{}: cannot resolve the host", host, port));
    }
    address = results.begin()->endpoint().address();
  }
  const tcp::endpoint endpoint(address, static_cast<unsigned short>(port));
  const std::string name =
      address.is_v6() ? fmt::format("[{}]:{}", host, port) : fmt::format("{}:{}", host, port);
  auto fail = [&](const error_code& e) {
    std::string why = e.message();
    if (!why.empty()) why[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(why[0])));
    return Status::IOError(fmt::format("cannot listen on {}: {}", name, why));
  };
  acceptor.open(endpoint.protocol(), ec);
  if (ec) return fail(ec);
  // SO_REUSEADDR only lets a restart bind past connections in TIME_WAIT; unlike SO_REUSEPORT
  // it never lets a second process listen on the same port.
  acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (ec) return fail(ec);
  acceptor.bind(endpoint, ec);
  if (ec) return fail(ec);
  if (listen) {
    acceptor.listen(net::socket_base::max_listen_connections, ec);
    if (ec) return fail(ec);
  }
  return Status::Ok();
}

}  // namespace

Status CheckListenAddress(const std::string& host, int port) {
  net::io_context ioc;
  tcp::acceptor acceptor(ioc);
  return BindAcceptor(ioc, acceptor, host, port, /*listen=*/false);
}

Result<int> Server::Impl::Bind() {
  if (Status st = BindAcceptor(ioc_, acceptor_, options_.host, options_.port, /*listen=*/true);
      !st.ok()) {
    return st;
  }
  return static_cast<int>(acceptor_.local_endpoint().port());
}

void Server::Impl::Run() {
  work_.emplace(net::make_work_guard(ioc_));
  Accept();
  std::vector<std::thread> threads;
  for (int i = 1; i < options_.io_threads; ++i) threads.emplace_back([this] { ioc_.run(); });
  ioc_.run();
  for (std::thread& t : threads) t.join();
}

void Server::Impl::Accept() {
  acceptor_.async_accept(net::make_strand(ioc_), [this](const error_code& ec, tcp::socket socket) {
    OnAccept(ec, std::move(socket));
  });
}

void Server::Impl::OnAccept(const error_code& ec, tcp::socket socket) {
  if (stopping() || !acceptor_.is_open()) return;
  if (ec) {
    // Out of descriptors (or another passing failure): try again shortly rather than spin.
    log::Warn("accept_failed", {{"error", ec.message()}});
    retry_accept_.expires_after(std::chrono::milliseconds(100));
    retry_accept_.async_wait([this](const error_code& wait_ec) {
      if (!wait_ec) Accept();
    });
    return;
  }
  error_code ignored;
  socket.set_option(tcp::no_delay(true), ignored);
  const tcp::endpoint peer = socket.remote_endpoint(ignored);
  std::string client = peer.address().to_string();
  std::shared_ptr<Session> session;
  const char* refusal = nullptr;
  {
    MutexLock guard(&mu_);
    if (sessions_.size() >= options_.max_connections) {
      refusal = "too many connections";
    } else if (per_client_[client] >= options_.max_connections_per_client) {
      refusal = "too many connections from this address";
    } else {
      ++per_client_[client];
      session = std::make_shared<Session>(this, std::move(socket), client);
      sessions_.emplace(session.get(), session);
    }
    if (per_client_[client] == 0) per_client_.erase(client);
  }
  if (session) {
    net::post(session->executor(), [session] { session->Start(); });
  } else {
    // Told why, without reading anything: the answer fits the socket's send buffer.
    static const std::string kAnswer = [] {
      const std::string body = ErrorBody("too_many_connections", "too many connections; retry");
      return fmt::format(
          "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
          "Retry-After: 1\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{}",
          body.size(), body);
    }();
    // One line a second at most, with the count since the last: a client that keeps
    // connecting must not flood the log.
    ++refused_since_log_;
    const int64_t now_ms = SystemClock::Default()->NowMs();
    int64_t last = last_refusal_log_ms_.load();
    if (now_ms - last >= 1000 && last_refusal_log_ms_.compare_exchange_strong(last, now_ms)) {
      log::Warn("connections_refused",
                {{"reason", refusal}, {"refused", refused_since_log_.exchange(0)}});
    }
    socket.non_blocking(true, ignored);
    socket.write_some(net::buffer(kAnswer), ignored);
    socket.shutdown(tcp::socket::shutdown_both, ignored);
    socket.close(ignored);
  }
  Accept();
}

void Server::Impl::ForEachSession(void (Session::*what)()) {
  std::vector<std::shared_ptr<Session>> open;
  {
    MutexLock guard(&mu_);
    for (auto& [raw, weak] : sessions_) {
      if (std::shared_ptr<Session> s = weak.lock()) open.push_back(std::move(s));
    }
  }
  for (std::shared_ptr<Session>& s : open) {
    net::post(s->executor(), [s, what] { ((*s).*what)(); });
  }
}

void Server::Impl::BeginDrain() {
  draining_.store(true, std::memory_order_release);
  ForEachSession(&Session::Drain);
}

void Server::Impl::Stop() {
  if (stopping_.exchange(true)) return;
  net::post(acceptor_.get_executor(), [this] {
    error_code ignored;
    acceptor_.close(ignored);
    retry_accept_.cancel();
  });
  // What the pool runs now still answers: those writes go out before the loop ends.
  pool_.Shutdown();
  ForEachSession(&Session::Shut);
  net::post(ioc_, [this] { work_.reset(); });
}

Server::Server(Options options, Handler* handler)
    : impl_(std::make_unique<Impl>(std::move(options), handler)) {}
Server::~Server() = default;
Result<int> Server::Bind() { return impl_->Bind(); }
void Server::Run() { impl_->Run(); }
void Server::BeginDrain() { impl_->BeginDrain(); }
void Server::Stop() { impl_->Stop(); }
void Server::Submit(const std::string& key, std::function<void()> job) {
  impl_->pool().Submit(key, std::move(job));
}

}  // namespace sendq::http
