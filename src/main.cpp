// sendq: a durable outbound message queue for AgentPhone.
//
//   sendq serve [flags]   run the service (see --help)
//
// Signals: SIGTERM and SIGINT stop intake (503 to new enqueues), let in-flight sends finish
// within --drain-timeout, record them, and exit 0.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "api/server.h"
#include "cli/config.h"
#include "delivery/agentphone_client.h"
#include "delivery/dispatcher.h"
#include "delivery/metrics.h"
#include "queue/upstream_circuit.h"
#include "store/store.h"
#include "util/change_feed.h"
#include "util/clock.h"
#include "util/duration.h"
#include "util/ids.h"
#include "util/log.h"
#include "util/process.h"

extern char** environ;

namespace sendq {
namespace {

constexpr char kUsage[] =
    "usage: sendq serve [flags]\n"
    "       sendq serve --help   all flags and their environment variables\n";

// The probe interval of a paused upstream never grows past this, so a recovered AgentPhone
// is noticed within about a minute.
constexpr DurationMs kMaxProbeInterval = 60'000;

std::map<std::string, std::string> Environment() {
  std::map<std::string, std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string entry(*e);
    size_t eq = entry.find('=');
    if (eq != std::string::npos) env[entry.substr(0, eq)] = entry.substr(eq + 1);
  }
  return env;
}

// The URL without anything secret (userinfo), for logs.
std::string RedactUrl(const std::string& url) {
  size_t scheme = url.find("://");
  size_t at = url.find('@');
  size_t slash = url.find('/', scheme == std::string::npos ? 0 : scheme + 3);
  if (scheme != std::string::npos && at != std::string::npos &&
      (slash == std::string::npos || at < slash)) {
    return url.substr(0, scheme + 3) + "***@" + url.substr(at + 1);
  }
  return url;
}

int Serve(const Config& config) {
  // Before any thread starts, so that only AwaitStopSignal below receives them.
  const sigset_t stop_signals = BlockStopSignals();

  SystemClock* clock = SystemClock::Default();
  ChangeFeed changes(clock);
  store::StoreOptions store_options;
  store_options.synchronous_full = config.synchronous_full;
  Result<std::unique_ptr<store::Store>> store =
      store::OpenSqliteStore(config.db_path, store_options, clock, [&] { changes.Publish(); });
  if (!store.ok()) {
    log::Error("startup_failed", {{"error", store.status().ToString()}, {"db", config.db_path}});
    return 1;
  }

  UpstreamCircuit::Options circuit_options;
  circuit_options.probe_base = config.backoff_base;
  circuit_options.probe_max = std::min(config.backoff_max, kMaxProbeInterval);
  UpstreamCircuit circuit(clock, circuit_options);
  delivery::Metrics metrics;

  delivery::AgentPhoneOptions upstream;
  upstream.base_url = config.upstream_url;
  upstream.token = config.upstream_token;
  upstream.timeout = config.upstream_timeout;
  delivery::DispatcherOptions dispatch;
  dispatch.workers = config.workers;
  dispatch.lease = config.lease;
  dispatch.upstream_timeout = config.upstream_timeout;
  dispatch.policy.max_attempts = config.max_attempts;
  dispatch.policy.backoff = {config.backoff_base, config.backoff_max};
  dispatch.policy.fail_unknown = config.on_unknown == OnUnknown::kFail;
  delivery::Dispatcher dispatcher(store->get(), &circuit, &metrics, clock,
                                  delivery::AgentPhoneClientFactory(upstream), dispatch);

  IdGenerator ids(clock);
  api::ServerOptions server_options;
  server_options.host = config.listen_host;
  server_options.port = config.listen_port;
  server_options.http_threads = config.http_threads;
  server_options.max_connections = config.max_connections;
  server_options.max_age = config.max_age;
  server_options.producer_tokens = config.api_tokens;
  api::ApiServer server(
      api::ServerDeps{store->get(), &dispatcher, &circuit, &metrics, &changes, clock, &ids},
      server_options);
  Result<int> port = server.Bind();
  if (!port.ok()) {
    log::Error("startup_failed", {{"error", port.status().ToString()}});
    return 1;
  }

  dispatcher.Start();
  std::thread http_thread([&] { server.Serve(); });
  nlohmann::json producers = nlohmann::json::array();
  for (const auto& entry : config.api_tokens) producers.push_back(entry.first);
  log::Info("listening", {{"host", config.listen_host},
                          {"port", *port},
                          {"db", config.db_path},
                          {"upstream", RedactUrl(config.upstream_url)},
                          {"workers", config.workers},
                          {"synchronous", config.synchronous_full ? "full" : "normal"},
                          {"producers", producers}});

  const char* signal_name = AwaitStopSignal(stop_signals);
  log::Info("shutdown_started",
            {{"signal", signal_name}, {"drain_timeout", FormatDuration(config.drain_timeout)}});
  server.BeginDrain();
  int unfinished = dispatcher.Stop(clock->NowMs() + config.drain_timeout);
  changes.Close();  // wake long-polling readers so the HTTP server can stop promptly
  server.Stop();
  http_thread.join();
  if (unfinished > 0) {
    // Their leases recover them at the next start, as attempts with an unknown outcome.
    log::Warn("shutdown_complete", {{"unfinished_sends", unfinished}});
    std::fflush(stderr);
    _exit(0);
  }
  log::Info("shutdown_complete");
  return 0;
}

}  // namespace
}  // namespace sendq

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
    std::fputs(sendq::kUsage, args.empty() ? stderr : stdout);
    return args.empty() ? 2 : 0;
  }
  if (args[0] != "serve") {
    std::fprintf(stderr, "sendq: unknown command '%s'\n%s", args[0].c_str(), sendq::kUsage);
    return 2;
  }
  args.erase(args.begin());
  std::string help;
  sendq::Result<sendq::Config> config = sendq::ParseServeConfig(args, sendq::Environment(), &help);
  if (!help.empty()) {
    std::fputs(help.c_str(), stdout);
    return 0;
  }
  if (!config.ok()) {
    std::fprintf(stderr, "sendq: %s\n", config.status().message().c_str());
    return 2;
  }
  sendq::log::Level level;
  if (sendq::log::ParseLevel(config->log_level, &level)) sendq::log::SetLevel(level);
  return sendq::Serve(*config);
}
