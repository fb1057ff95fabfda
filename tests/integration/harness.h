// Integration-test harness: runs sendq and fake-agentphone as real child processes on
// ephemeral loopback ports, and talks to them over HTTP.
//
// Nothing here sleeps to wait for an event. Waiting is a blocking read, a long-poll request or
// a condition variable, always with a timeout, so a test is as fast as the processes allow and
// fails (rather than hangs) when an event never comes.
//
// Thread-safety: ChildProcess methods may be called from any thread. FakeUpstream and
// SendqProcess are safe to use from several threads once constructed (each request uses its
// own connection). The free functions are thread-safe.
#pragma once

#include <sys/types.h>

#include <condition_variable>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace sendq::test {

// Paths from the build (compile definitions of the integration_tests target).
std::string SendqBinary();
std::string FakeAgentPhoneBinary();
std::string SourceDir();

enum class Stream { kStdout = 0, kStderr = 1 };

// A child process with its stdout and stderr captured line by line.
class ChildProcess {
 public:
  using LineMatcher = std::function<bool(const std::string& line)>;

  // Starts argv[0] (a path) with `argv`, the current environment with `extra_env` on top,
  // stdin from /dev/null and no other inherited descriptors. Signal dispositions and the
  // signal mask are reset to defaults in the child. If `log_dir` is not empty, every output
  // line is also appended to <log_dir>/<program>-<pid>.stdout.log / .stderr.log.
  // Throws std::runtime_error if the process cannot be started.
  explicit ChildProcess(std::vector<std::string> argv,
                        std::map<std::string, std::string> extra_env = {},
                        std::string log_dir = "");
  // Kills (SIGKILL) the child if it is still running, and reaps it.
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  int pid() const { return pid_; }

  // The first line of `stream`, from line number `start_line` on, that contains `substring`
  // (or satisfies `matcher`). Blocks until such a line arrives, the stream ends (the child
  // closed it or exited), or `timeout_ms` passes; nullopt in the last two cases.
  std::optional<std::string> WaitForLine(Stream stream, std::string_view substring, int timeout_ms,
                                         size_t start_line = 0);
  std::optional<std::string> WaitForLine(Stream stream, const LineMatcher& matcher, int timeout_ms,
                                         size_t start_line = 0);

  // Complete lines captured so far.
  std::vector<std::string> Lines(Stream stream) const;
  size_t LineCount(Stream stream) const;
  // All of stderr so far, lines joined with '\n' (for failure messages).
  std::string AllStderr() const;

  // Sends `sig` to the child, unless it has already been reaped (so never to a reused PID).
  void Signal(int sig);
  // Waits for the child to exit: its exit code, or 128 + signal number if a signal ended it;
  // nullopt if it is still running after `timeout_ms` (negative: wait without limit).
  std::optional<int> Wait(int timeout_ms);
  // SIGKILL, then reap. Returns the exit status as Wait() does (137 when the kill ended it).
  int Kill();
  bool Exited() const;

 private:
  struct Output {
    int fd = -1;                     // read end of the pipe; owned by the reader thread
    std::vector<std::string> lines;  // GUARDED_BY(mu_)
    std::string partial;             // reader thread only
    bool closed = false;             // GUARDED_BY(mu_)
    std::ofstream log;               // reader thread only
  };

  void ReadLoop();
  void WaitLoop();

  pid_t pid_ = -1;  // constant after construction
  mutable std::mutex mu_;
  std::condition_variable cv_;  // signalled on every new line, stream end and exit
  Output outputs_[2];           // indexed by Stream
  // Set by the waiter thread, under mu_, in the same critical section that reaps the child.
  std::optional<int> exit_status_;  // GUARDED_BY(mu_)
  std::thread reader_;
  std::thread waiter_;
};

// The answer to one HTTP request.
struct HttpResult {
  int status = 0;     // 0: no response at all (see error)
  std::string error;  // why there was no response (connection refused, read error, ...)
  std::multimap<std::string, std::string> headers;  // names in lower case
  std::string body;
  nlohmann::json json;  // body parsed as JSON, or null when it is not JSON

  // The first value of header `name` (any case), or "".
  std::string Header(const std::string& name) const;
};

// One request on a fresh connection, with TCP_NODELAY. Never throws for network errors:
// status is 0 and error says what happened. A non-empty body is sent as application/json
// unless `headers` has a Content-Type. `timeout_ms` bounds connecting, writing and reading.
HttpResult Request(const std::string& method, const std::string& host, int port,
                   const std::string& path, const std::string& body = "",
                   const std::map<std::string, std::string>& headers = {}, int timeout_ms = 30'000);

// A loopback port that was free a moment ago (bound to 127.0.0.1:0, read, closed). For tests
// that must start a server later on a port chosen now.
int FreeLoopbackPort();

// fake-agentphone as a child process on 127.0.0.1.
class FakeUpstream {
 public:
  // Starts fake-agentphone with `extra_flags` (e.g. {"--token", "t", "--fail-first", "2"}) on
  // `port` (0: ephemeral) and waits for its listening line. Throws std::runtime_error if it
  // does not start.
  explicit FakeUpstream(std::vector<std::string> extra_flags = {}, std::string log_dir = "",
                        int port = 0);

  int port() const { return port_; }
  std::string url() const;  // "http://127.0.0.1:<port>"
  ChildProcess& process() { return *process_; }

  // POST /__fake/config; returns the resulting config. Throws if the fake refuses it.
  nlohmann::json SetConfig(const nlohmann::json& config);
  // GET /__fake/sent: {"count": N, "sends": [...]}, waiting up to `wait_ms` for at least
  // `min_count` accepted sends. Throws on an HTTP failure.
  nlohmann::json Sent(int min_count = 0, int wait_ms = 0);
  // GET /__fake/received: the same shape, over every POST /v1/messages that arrived; each
  // entry also has "status" (null while in flight, 0 when the connection was dropped).
  nlohmann::json Received(int min_count = 0, int wait_ms = 0);
  // POST /__fake/reset: forgets recorded requests (not the config).
  void Reset();

 private:
  nlohmann::json List(const std::string& path, int min_count, int wait_ms);

  std::unique_ptr<ChildProcess> process_;
  int port_ = 0;
};

// Credentials the harness uses unless a test overrides them.
inline constexpr char kTestApiToken[] = "sendq-test-token";
inline constexpr char kTestUpstreamToken[] = "upstream-test-token";

struct SendqOptions {
  std::string upstream_url;  // required, e.g. FakeUpstream::url()
  std::string data_dir;      // required; the database is <data_dir>/sendq.db
  // SENDQ_API_TOKENS ("name:token,..."); empty leaves the variable unset.
  std::string api_tokens = std::string("test:") + kTestApiToken;
  // SENDQ_UPSTREAM_TOKEN; empty leaves the variable unset.
  std::string upstream_token = kTestUpstreamToken;
  // The bearer token Post/Get/Send add.
  std::string bearer = kTestApiToken;
  int port = 0;  // --listen 127.0.0.1:<port>; 0: ephemeral
  std::vector<std::string> extra_args;
  std::map<std::string, std::string> extra_env;
  std::string log_dir;  // empty: data_dir
  int start_timeout_ms = 30'000;
};

// `sendq serve` as a child process. It learns the port from the {"event":"listening",
// "port":N} line sendq logs to stderr.
class SendqProcess {
 public:
  // Starts sendq and waits for its listening line. Throws std::runtime_error (with the
  // captured stderr) if it exits or does not listen in time.
  explicit SendqProcess(SendqOptions options);

  int port() const { return port_; }
  std::string url() const;  // "http://127.0.0.1:<port>"
  std::string db_path() const { return options_.data_dir + "/sendq.db"; }
  const SendqOptions& options() const { return options_; }
  ChildProcess& process() { return *process_; }

  // Requests with "Authorization: Bearer <options.bearer>" added; entries in `headers` win,
  // so a test can send another token.
  HttpResult Send(const std::string& method, const std::string& path, const std::string& body,
                  const std::map<std::string, std::string>& headers = {}, int timeout_ms = 30'000);
  HttpResult Post(const std::string& path, const nlohmann::json& body,
                  const std::map<std::string, std::string>& headers = {}, int timeout_ms = 30'000);
  HttpResult Get(const std::string& path, const std::map<std::string, std::string>& headers = {},
                 int timeout_ms = 30'000);

 private:
  SendqOptions options_;
  std::unique_ptr<ChildProcess> process_;
  int port_ = 0;
};

}  // namespace sendq::test
