#include "harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <stdexcept>

extern char** environ;

namespace sendq::test {

using nlohmann::json;

namespace {

// Writing to a connection or pipe whose other end is gone (a child killed mid-test) must be
// an error return in the test process, not a fatal signal.
void IgnoreSigpipe() {
  static std::once_flag once;
  std::call_once(once, [] { signal(SIGPIPE, SIG_IGN); });
}

std::string ErrnoText(const std::string& what) { return what + ": " + std::strerror(errno); }

std::string Lower(std::string text) {
  for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

std::string BaseName(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

int DecodeWaitStatus(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

// Owns the descriptors of the spawn's pipes until they are handed over.
struct Pipe {
  int read_fd = -1;
  int write_fd = -1;
  ~Pipe() {
    if (read_fd >= 0) close(read_fd);
    if (write_fd >= 0) close(write_fd);
  }
};

}  // namespace

std::string SendqBinary() { return SENDQ_BINARY; }
std::string FakeAgentPhoneBinary() { return FAKE_AGENTPHONE_BINARY; }
std::string SourceDir() { return SENDQ_SOURCE_DIR; }

// ---------------------------------------------------------------------------------------------
// ChildProcess

ChildProcess::ChildProcess(std::vector<std::string> argv,
                           std::map<std::string, std::string> extra_env, std::string log_dir) {
  if (argv.empty()) throw std::invalid_argument("ChildProcess: empty argv");
  IgnoreSigpipe();

  // Close-on-exec, so no other child started meanwhile inherits them; posix_spawn's dup2
  // clears the flag on the copies that become the child's stdout and stderr.
  Pipe pipes[2];
  for (Pipe& p : pipes) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error(ErrnoText("pipe2"));
    p.read_fd = fds[0];
    p.write_fd = fds[1];
  }

  // The current environment, with extra_env on top.
  std::map<std::string, std::string> env_map;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string entry = *e;
    size_t eq = entry.find('=');
    if (eq == std::string::npos) continue;
    env_map[entry.substr(0, eq)] = entry.substr(eq + 1);
  }
  for (auto& [key, value] : extra_env) env_map[key] = value;
  std::vector<std::string> env_strings;
  for (auto& [key, value] : env_map) env_strings.push_back(key + "=" + value);
  std::vector<char*> envp;
  for (std::string& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<char*> argvp;
  for (std::string& s : argv) argvp.push_back(s.data());
  argvp.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, pipes[0].write_fd, 1);
  posix_spawn_file_actions_adddup2(&actions, pipes[1].write_fd, 2);
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);

  // The test process ignores SIGPIPE and its threads may block signals; the child must start
  // with the defaults, as it would from a shell.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t empty_mask;
  sigemptyset(&empty_mask);
  sigset_t defaults;
  sigemptyset(&defaults);
  for (int sig : {SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGCHLD}) {
    sigaddset(&defaults, sig);
  }
  posix_spawnattr_setsigmask(&attr, &empty_mask);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

  pid_t pid = -1;
  int rc = posix_spawn(&pid, argvp[0], &actions, &attr, argvp.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    throw std::runtime_error("cannot start " + argv[0] + ": " + std::strerror(rc));
  }
  pid_ = pid;

  // Only the child writes now; our copies of the write ends would keep the pipes open forever.
  for (int i = 0; i < 2; ++i) {
    close(pipes[i].write_fd);
    pipes[i].write_fd = -1;
    outputs_[i].fd = pipes[i].read_fd;
    pipes[i].read_fd = -1;
  }
  if (!log_dir.empty()) {
    std::string base = log_dir + "/" + BaseName(argv[0]) + "-" + std::to_string(pid_);
    outputs_[0].log.open(base + ".stdout.log", std::ios::app);
    outputs_[1].log.open(base + ".stderr.log", std::ios::app);
  }
  reader_ = std::thread([this] { ReadLoop(); });
  waiter_ = std::thread([this] { WaitLoop(); });
}

ChildProcess::~ChildProcess() {
  Signal(SIGKILL);
  if (waiter_.joinable()) waiter_.join();
  // The pipes reach end-of-file once the child is gone.
  if (reader_.joinable()) reader_.join();
}

void ChildProcess::ReadLoop() {
  char buf[8192];
  for (;;) {
    pollfd fds[2];
    nfds_t n = 0;
    int which[2];
    for (int i = 0; i < 2; ++i) {
      if (outputs_[i].fd < 0) continue;
      fds[n] = {outputs_[i].fd, POLLIN, 0};
      which[n] = i;
      ++n;
    }
    if (n == 0) return;
    if (poll(fds, n, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    for (nfds_t k = 0; k < n; ++k) {
      if ((fds[k].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
      Output& out = outputs_[which[k]];
      ssize_t got = read(out.fd, buf, sizeof(buf));
      if (got < 0 && errno == EINTR) continue;
      std::vector<std::string> complete;
      bool ended = got <= 0;
      if (!ended) {
        out.partial.append(buf, static_cast<size_t>(got));
        size_t start = 0;
        for (size_t nl; (nl = out.partial.find('\n', start)) != std::string::npos; start = nl + 1) {
          complete.push_back(out.partial.substr(start, nl - start));
        }
        out.partial.erase(0, start);
      } else {
        if (!out.partial.empty()) complete.push_back(std::move(out.partial));
        out.partial.clear();
        close(out.fd);
        out.fd = -1;
      }
      if (out.log.is_open()) {
        for (const std::string& line : complete) out.log << line << '\n';
        out.log.flush();
      }
      {
        std::lock_guard<std::mutex> lock(mu_);
        for (std::string& line : complete) out.lines.push_back(std::move(line));
        if (ended) out.closed = true;
      }
      cv_.notify_all();
    }
  }
}

void ChildProcess::WaitLoop() {
  // Learn of the exit without reaping (WNOWAIT), then reap under mu_: Signal() checks
  // exit_status_ under the same mutex, so it can never signal a PID the kernel has reused.
  siginfo_t info;
  while (waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOWAIT) != 0 && errno == EINTR) {
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    int status = 0;
    pid_t got;
    do {
      got = waitpid(pid_, &status, 0);
    } while (got < 0 && errno == EINTR);
    exit_status_ = got == pid_ ? DecodeWaitStatus(status) : -1;
  }
  cv_.notify_all();
}

std::optional<std::string> ChildProcess::WaitForLine(Stream stream, std::string_view substring,
                                                     int timeout_ms, size_t start_line) {
  std::string needle(substring);
  return WaitForLine(
      stream, [&needle](const std::string& line) { return line.find(needle) != std::string::npos; },
      timeout_ms, start_line);
}

std::optional<std::string> ChildProcess::WaitForLine(Stream stream, const LineMatcher& matcher,
                                                     int timeout_ms, size_t start_line) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  const Output& out = outputs_[static_cast<int>(stream)];
  std::unique_lock<std::mutex> lock(mu_);
  size_t next = start_line;
  for (;;) {
    for (; next < out.lines.size(); ++next) {
      if (matcher(out.lines[next])) return out.lines[next];
    }
    if (out.closed) return std::nullopt;
    if (cv_.wait_until(lock, deadline) == std::cv_status::timeout) {
      for (; next < out.lines.size(); ++next) {
        if (matcher(out.lines[next])) return out.lines[next];
      }
      return std::nullopt;
    }
  }
}

std::vector<std::string> ChildProcess::Lines(Stream stream) const {
  std::lock_guard<std::mutex> lock(mu_);
  return outputs_[static_cast<int>(stream)].lines;
}

size_t ChildProcess::LineCount(Stream stream) const {
  std::lock_guard<std::mutex> lock(mu_);
  return outputs_[static_cast<int>(stream)].lines.size();
}

std::string ChildProcess::AllStderr() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string text;
  for (const std::string& line : outputs_[static_cast<int>(Stream::kStderr)].lines) {
    text += line;
    text += '\n';
  }
  return text;
}

void ChildProcess::Signal(int sig) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!exit_status_.has_value()) kill(pid_, sig);
}

std::optional<int> ChildProcess::Wait(int timeout_ms) {
  std::unique_lock<std::mutex> lock(mu_);
  auto exited = [&] { return exit_status_.has_value(); };
  if (timeout_ms < 0) {
    cv_.wait(lock, exited);
  } else if (!cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), exited)) {
    return std::nullopt;
  }
  return exit_status_;
}

int ChildProcess::Kill() {
  Signal(SIGKILL);
  return *Wait(-1);
}

bool ChildProcess::Exited() const {
  std::lock_guard<std::mutex> lock(mu_);
  return exit_status_.has_value();
}

// ---------------------------------------------------------------------------------------------
// HTTP

std::string HttpResult::Header(const std::string& name) const {
  auto it = headers.find(Lower(name));
  return it == headers.end() ? std::string() : it->second;
}

HttpResult Request(const std::string& method, const std::string& host, int port,
                   const std::string& path, const std::string& body,
                   const std::map<std::string, std::string>& headers, int timeout_ms) {
  IgnoreSigpipe();
  httplib::Client client(host, port);
  client.set_tcp_nodelay(true);
  client.set_keep_alive(false);
  const auto timeout = std::chrono::milliseconds(timeout_ms);
  client.set_connection_timeout(std::min(timeout, std::chrono::milliseconds(10'000)));
  client.set_read_timeout(timeout);
  client.set_write_timeout(timeout);

  httplib::Request req;
  req.method = method;
  req.path = path;
  bool has_content_type = false;
  for (const auto& [key, value] : headers) {
    req.headers.emplace(key, value);
    if (Lower(key) == "content-type") has_content_type = true;
  }
  if (!body.empty()) {
    req.body = body;
    if (!has_content_type) req.headers.emplace("Content-Type", "application/json");
  }

  HttpResult result;
  httplib::Result res = client.send(req);
  if (!res) {
    result.error = httplib::to_string(res.error());
    return result;
  }
  result.status = res->status;
  for (const auto& [key, value] : res->headers) result.headers.emplace(Lower(key), value);
  result.body = res->body;
  result.json = json::parse(result.body, nullptr, /*allow_exceptions=*/false);
  if (result.json.is_discarded()) result.json = nullptr;
  return result;
}

int FreeLoopbackPort() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error(ErrnoText("socket"));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    std::string error = ErrnoText("bind 127.0.0.1:0");
    close(fd);
    throw std::runtime_error(error);
  }
  close(fd);
  return ntohs(addr.sin_port);
}

// ---------------------------------------------------------------------------------------------
// FakeUpstream

namespace {

// A startup line such as {"event":"listening","port":N}: the port, or nullopt.
std::optional<int> ListeningPort(const std::string& line) {
  json parsed = json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (!parsed.is_object() || parsed.value("event", "") != "listening") return std::nullopt;
  auto port = parsed.find("port");
  if (port == parsed.end() || !port->is_number_integer()) return std::nullopt;
  return port->get<int>();
}

constexpr int kStartTimeoutMs = 30'000;

}  // namespace

FakeUpstream::FakeUpstream(std::vector<std::string> extra_flags, std::string log_dir, int port) {
  std::vector<std::string> argv = {FakeAgentPhoneBinary(), "--listen",
                                   "127.0.0.1:" + std::to_string(port)};
  argv.insert(argv.end(), extra_flags.begin(), extra_flags.end());
  process_ = std::make_unique<ChildProcess>(std::move(argv), std::map<std::string, std::string>{},
                                            std::move(log_dir));
  std::optional<std::string> line = process_->WaitForLine(
      Stream::kStdout, [](const std::string& l) { return ListeningPort(l).has_value(); },
      kStartTimeoutMs);
  if (!line) {
    throw std::runtime_error("fake-agentphone did not start; stderr:\n" + process_->AllStderr());
  }
  port_ = *ListeningPort(*line);
}

std::string FakeUpstream::url() const { return "http://127.0.0.1:" + std::to_string(port_); }

json FakeUpstream::SetConfig(const json& config) {
  HttpResult r = Request("POST", "127.0.0.1", port_, "/__fake/config", config.dump());
  if (r.status != 200) {
    throw std::runtime_error("POST /__fake/config failed: " + std::to_string(r.status) + " " +
                             r.error + r.body);
  }
  return r.json;
}

json FakeUpstream::List(const std::string& path, int min_count, int wait_ms) {
  std::string target =
      path + "?min_count=" + std::to_string(min_count) + "&wait_ms=" + std::to_string(wait_ms);
  HttpResult r = Request("GET", "127.0.0.1", port_, target, "", {}, wait_ms + 30'000);
  if (r.status != 200 || !r.json.is_object()) {
    throw std::runtime_error("GET " + path + " failed: " + std::to_string(r.status) + " " +
                             r.error + r.body);
  }
  return r.json;
}

json FakeUpstream::Sent(int min_count, int wait_ms) {
  return List("/__fake/sent", min_count, wait_ms);
}

json FakeUpstream::Received(int min_count, int wait_ms) {
  return List("/__fake/received", min_count, wait_ms);
}

void FakeUpstream::Reset() {
  HttpResult r = Request("POST", "127.0.0.1", port_, "/__fake/reset", "{}");
  if (r.status != 200) {
    throw std::runtime_error("POST /__fake/reset failed: " + std::to_string(r.status) + " " +
                             r.error + r.body);
  }
}

// ---------------------------------------------------------------------------------------------
// SendqProcess

SendqProcess::SendqProcess(SendqOptions options) : options_(std::move(options)) {
  if (options_.data_dir.empty()) throw std::invalid_argument("SendqOptions.data_dir is required");
  std::vector<std::string> argv = {
      SendqBinary(), "serve",   "--listen",   "127.0.0.1:" + std::to_string(options_.port),
      "--db",        db_path(), "--upstream", options_.upstream_url};
  argv.insert(argv.end(), options_.extra_args.begin(), options_.extra_args.end());
  std::map<std::string, std::string> env = options_.extra_env;
  if (!options_.api_tokens.empty()) env.emplace("SENDQ_API_TOKENS", options_.api_tokens);
  if (!options_.upstream_token.empty()) {
    env.emplace("SENDQ_UPSTREAM_TOKEN", options_.upstream_token);
  }
  process_ = std::make_unique<ChildProcess>(
      std::move(argv), std::move(env),
      options_.log_dir.empty() ? options_.data_dir : options_.log_dir);
  std::optional<std::string> line = process_->WaitForLine(
      Stream::kStderr, [](const std::string& l) { return ListeningPort(l).has_value(); },
      options_.start_timeout_ms);
  if (!line) {
    std::optional<int> status = process_->Wait(0);
    throw std::runtime_error(
        "sendq did not start" +
        (status ? " (exit status " + std::to_string(*status) + ")" : std::string()) +
        "; stderr:\n" + process_->AllStderr());
  }
  port_ = *ListeningPort(*line);
}

std::string SendqProcess::url() const { return "http://127.0.0.1:" + std::to_string(port_); }

HttpResult SendqProcess::Send(const std::string& method, const std::string& path,
                              const std::string& body,
                              const std::map<std::string, std::string>& headers, int timeout_ms) {
  std::map<std::string, std::string> all = headers;
  bool has_auth = false;
  for (const auto& [key, value] : headers) {
    if (Lower(key) == "authorization") has_auth = true;
  }
  if (!has_auth) all["Authorization"] = "Bearer " + options_.bearer;
  return Request(method, "127.0.0.1", port_, path, body, all, timeout_ms);
}

HttpResult SendqProcess::Post(const std::string& path, const json& body,
                              const std::map<std::string, std::string>& headers, int timeout_ms) {
  return Send("POST", path, body.dump(), headers, timeout_ms);
}

HttpResult SendqProcess::Get(const std::string& path,
                             const std::map<std::string, std::string>& headers, int timeout_ms) {
  return Send("GET", path, "", headers, timeout_ms);
}

}  // namespace sendq::test
