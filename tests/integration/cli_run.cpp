#include "cli_run.h"

#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <stdexcept>

#include "harness.h"

extern char** environ;

namespace sendq::test {
namespace {

std::string CliErrnoText(const std::string& what) { return what + ": " + std::strerror(errno); }

// A descriptor closed when it goes out of scope.
struct Fd {
  int fd = -1;
  ~Fd() { Close(); }
  void Close() {
    if (fd >= 0) close(fd);
    fd = -1;
  }
};

}  // namespace

nlohmann::json CliResult::Json() const { return nlohmann::json::parse(out, nullptr, false); }

std::vector<nlohmann::json> CliResult::JsonLines() const {
  std::vector<nlohmann::json> lines;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) lines.push_back(nlohmann::json::parse(line, nullptr, false));
  }
  return lines;
}

std::string CliResult::FirstWord() const { return out.substr(0, out.find_first_of(" \n")); }

bool IsPlainText(const std::string& text) {
  return text.find('\x1b') == std::string::npos && text.find('\r') == std::string::npos;
}

CliResult RunCli(const std::vector<std::string>& args, const CliOptions& options) {
  std::map<std::string, std::string> env_map;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string entry = *e;
    size_t eq = entry.find('=');
    if (eq != std::string::npos) env_map[entry.substr(0, eq)] = entry.substr(eq + 1);
  }
  env_map.erase("SENDQ_URL");
  env_map.erase("SENDQ_TOKEN");
  if (!options.url.empty()) env_map["SENDQ_URL"] = options.url;
  if (!options.token.empty()) env_map["SENDQ_TOKEN"] = options.token;
  for (const auto& [key, value] : options.env) env_map[key] = value;
  std::vector<std::string> env_strings;
  for (const auto& [key, value] : env_map) env_strings.push_back(key + "=" + value);
  std::vector<char*> envp;
  for (std::string& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> argv = {SendqBinary()};
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<char*> argvp;
  for (std::string& s : argv) argvp.push_back(s.data());
  argvp.push_back(nullptr);

  // stdin: a file holding stdin_text (already unlinked once the child has it open), or
  // /dev/null.
  Fd stdin_fd;
  if (options.stdin_text) {
    char path[] = "/tmp/sendq-cli-stdin-XXXXXX";
    stdin_fd.fd = mkstemp(path);
    if (stdin_fd.fd < 0) throw std::runtime_error(CliErrnoText("mkstemp"));
    unlink(path);
    const std::string& text = *options.stdin_text;
    if (write(stdin_fd.fd, text.data(), text.size()) != static_cast<ssize_t>(text.size()) ||
        lseek(stdin_fd.fd, 0, SEEK_SET) != 0) {
      throw std::runtime_error(CliErrnoText("writing stdin"));
    }
  } else {
    stdin_fd.fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  }
  Fd out_read, out_write, err_read, err_write;
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error(CliErrnoText("pipe2"));
  out_read.fd = fds[0];
  out_write.fd = fds[1];
  if (options.stderr_tty) {
    if (openpty(&err_read.fd, &err_write.fd, nullptr, nullptr, nullptr) != 0) {
      throw std::runtime_error(CliErrnoText("openpty"));
    }
    termios raw{};
    tcgetattr(err_write.fd, &raw);
    cfmakeraw(&raw);
    tcsetattr(err_write.fd, TCSANOW, &raw);
    fcntl(err_read.fd, F_SETFD, FD_CLOEXEC);
    fcntl(err_write.fd, F_SETFD, FD_CLOEXEC);
  } else {
    if (pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error(CliErrnoText("pipe2"));
    err_read.fd = fds[0];
    err_write.fd = fds[1];
  }

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, stdin_fd.fd, 0);
  posix_spawn_file_actions_adddup2(&actions, out_write.fd, 1);
  posix_spawn_file_actions_adddup2(&actions, err_write.fd, 2);
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);
  // Default signal handling in the child, as from a shell (the test process ignores SIGPIPE).
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
  const int rc = posix_spawn(&pid, argvp[0], &actions, &attr, argvp.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) throw std::runtime_error("cannot start sendq: " + std::string(std::strerror(rc)));
  stdin_fd.Close();
  out_write.Close();
  err_write.Close();

  CliResult result;
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(options.timeout_ms);
  bool timed_out = false;
  Fd* readers[2] = {&out_read, &err_read};
  std::string* sinks[2] = {&result.out, &result.err};
  while (out_read.fd >= 0 || err_read.fd >= 0) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                          deadline - std::chrono::steady_clock::now())
                          .count();
    if (left <= 0) {
      timed_out = true;
      break;
    }
    pollfd pfds[2];
    int which[2];
    nfds_t n = 0;
    for (int i = 0; i < 2; ++i) {
      if (readers[i]->fd < 0) continue;
      pfds[n] = {readers[i]->fd, POLLIN, 0};
      which[n++] = i;
    }
    if (poll(pfds, n, static_cast<int>(left)) < 0 && errno != EINTR) break;
    for (nfds_t k = 0; k < n; ++k) {
      if ((pfds[k].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
      char buf[8192];
      const ssize_t got = read(pfds[k].fd, buf, sizeof(buf));
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) {  // end of file; EIO on a pseudo-terminal whose other side closed
        readers[which[k]]->Close();
        continue;
      }
      sinks[which[k]]->append(buf, static_cast<size_t>(got));
    }
  }
  if (timed_out) kill(pid, SIGKILL);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (timed_out) {
    result.exit_code = -1;
  } else if (WIFEXITED(status)) {
    result.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result.exit_code = 128 + WTERMSIG(status);
  }
  return result;
}

}  // namespace sendq::test
