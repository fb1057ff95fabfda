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
#include "util/process.h"

namespace {

// "HOST:PORT", with an optional [bracketed] IPv6 host.
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
  app.add_option("--accept-then-drop-rate", faults.accept_then_drop_rate,
                 "Probability of accepting a send, then closing the connection unanswered")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--log", log_path, "Append one JSON line per accepted send to this file");
  CLI::Option* seed_option = app.add_option("--seed", seed, "Seed for the random faults");
  app.add_option("--threads", options.threads, "Requests served at once")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  if (sendq::Status st = sendq::ParseHostPort(listen, &options.host, &options.port); !st.ok()) {
    std::fprintf(stderr, "--listen: %s\n", st.message().c_str());
    return 2;
  }
  options.log_path = log_path;
  if (seed_option->count() > 0) options.seed = seed;

  // Before any thread exists, so only AwaitStopSignal below receives them. It also ignores
  // SIGPIPE: a dropped connection leaves the server writing to a shut-down socket.
  const sigset_t stop_signals = sendq::BlockStopSignals();

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
      kill(getpid(), SIGTERM);  // wake AwaitStopSignal below
    }
  });
  const char* signal_name = sendq::AwaitStopSignal(stop_signals);
  sendq::log::Info("stopping", {{"signal", signal_name}});
  server.Stop();
  runner.join();
  if (!run_ok) {
    sendq::log::Error("server_failed");
    return 1;
  }
  sendq::log::Info("stopped");
  return 0;
}
