// fake-agentphone: runs FakeAgentPhone until SIGINT or SIGTERM.
//
// On start it prints one line to stdout, {"event":"listening","host":...,"port":N}, which is
// how callers that asked for port 0 learn the port.

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <cstdio>
#include <string>
#include <thread>

#include "fake_server.h"
#include "util/log.h"

namespace {

// "HOST:PORT", with an optional [bracketed] IPv6 host.
bool ParseListen(const std::string& text, std::string* host, int* port) {
  size_t colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == text.size()) return false;
  std::string h = text.substr(0, colon);
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  int p = 0;
  for (char c : text.substr(colon + 1)) {
    if (c < '0' || c > '9') return false;
    p = p * 10 + (c - '0');
    if (p > 65535) return false;
  }
  *host = h;
  *port = p;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  using sendq::fake::FakeAgentPhone;

  CLI::App app{"fake-agentphone: a stand-in for AgentPhone's Send Message API, for tests"};
  std::string listen = "127.0.0.1:0";
  std::string log_path;
  uint64_t seed = 0;
  FakeAgentPhone::Options options;
  sendq::fake::FaultConfig& faults = options.faults;
  app.add_option("--listen", listen, "HOST:PORT to listen on; port 0 picks a free port")
      ->capture_default_str();
  app.add_option("--token", faults.token,
                 "Expected bearer token (default: any bearer is accepted)");
  app.add_option("--latency-ms", faults.latency_ms, "Delay before every answer")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--latency-jitter-ms", faults.latency_jitter_ms, "Extra delay, uniform in [0, N]")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--fail-first", faults.fail_first,
                 "The first N requests carrying each Idempotency-Key get 503")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--error-rate", faults.error_rate, "Probability of a random 500/502/503/504")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--rate-429", faults.rate_429, "Probability of 429 with Retry-After: 1")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--drop-rate", faults.drop_rate,
                 "Probability of closing the connection without an answer")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--reject-rate", faults.reject_rate, "Probability of a 422")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--log", log_path, "Append one JSON line per accepted send to this file");
  CLI::Option* seed_option = app.add_option("--seed", seed, "Seed for the random faults");
  app.add_option("--threads", options.threads, "Requests served at once")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  if (!ParseListen(listen, &options.host, &options.port)) {
    std::fprintf(stderr, "--listen: expected HOST:PORT, got \"%s\"\n", listen.c_str());
    return 2;
  }
  options.log_path = log_path;
  if (seed_option->count() > 0) options.seed = seed;

  // A dropped connection leaves the server writing to a shut-down socket; that must be an
  // error return, not a fatal signal.
  signal(SIGPIPE, SIG_IGN);
  // Block the stop signals before any thread exists, so every thread inherits the mask and
  // only the sigwait() below receives them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  FakeAgentPhone server(options);
  sendq::Result<int> port = server.Start();
  if (!port.ok()) {
    sendq::log::Error("start_failed", {{"error", port.status().message()}});
    return 1;
  }
  // Keys in this order (nlohmann::json sorts them): event, host, port.
  nlohmann::json listening = {
      {"event", "listening"}, {"host", options.host}, {"port", port.value()}};
  std::printf("%s\n", listening.dump().c_str());
  std::fflush(stdout);
  sendq::log::Info("listening", {{"host", options.host}, {"port", port.value()}});

  std::atomic<bool> run_ok{true};
  std::thread runner([&] {
    if (!server.Run()) {
      run_ok = false;
      kill(getpid(), SIGTERM);  // wake the sigwait() below
    }
  });
  int sig = 0;
  sigwait(&stop_signals, &sig);
  sendq::log::Info("stopping", {{"signal", sig}});
  server.Stop();
  runner.join();
  if (!run_ok) {
    sendq::log::Error("server_failed");
    return 1;
  }
  sendq::log::Info("stopped");
  return 0;
}
