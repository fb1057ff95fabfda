// sendq: a durable outbound message queue for AgentPhone.
//
//   sendq serve [flags]        run the service (see sendq serve --help)
//   sendq COMMAND [options]    talk to a running sendq: send, get, list, tail, stats, admin...
//                              (cli/commands.h; sendq help lists them)
//
// Signals: SIGTERM and SIGINT stop intake (503 to new enqueues), let in-flight sends finish
// within --drain-timeout, record them, and exit 0.
#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "api/long_polls.h"
#include "api/openapi.h"
#include "api/server.h"
#include "cli/commands.h"
#include "cli/config.h"
#include "delivery/agentphone_client.h"
#include "delivery/dispatcher.h"
#include "delivery/maintenance.h"
#include "delivery/metrics.h"
#include "queue/upstream_circuit.h"
#include "store/sqlite/sqlite_store.h"
#include "util/clock.h"
#include "util/duration.h"
#include "util/hmac.h"
#include "util/ids.h"
#include "util/log.h"
#include "util/process.h"

extern char** environ;

namespace sendq {
namespace {

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

// Raises the soft file-descriptor limit to the hard one; returns the limit now in force.
uint64_t RaiseDescriptorLimit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return 1024;
  if (limit.rlim_cur < limit.rlim_max) {
    rlimit raised = limit;
    raised.rlim_cur = limit.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) limit = raised;
  }
  return limit.rlim_cur == RLIM_INFINITY ? 1'000'000 : static_cast<uint64_t>(limit.rlim_cur);
}

// Warns when a file holding bodies, phone numbers or secrets can be read by other users.
// The callback key in `path`, made (random, mode 0600) when the file does not exist yet.
Result<std::string> LoadOrCreateCallbackKey(const std::string& path) {
  std::ifstream in(path);
  if (in) {
    std::string key;
    std::getline(in, key);
    while (!key.empty() && std::isspace(static_cast<unsigned char>(key.back()))) key.pop_back();
    if (key.size() < 32) return Status::InvalidArgument(path + " holds no key of 32+ characters");
    return key;
  }
  const std::string key = RandomHex(32);
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return Status::IOError("cannot create " + path + ": " + std::strerror(errno));
  const std::string line = key + "\n";
  const bool written = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()) &&
                       ::fsync(fd) == 0;
  ::close(fd);
  if (!written) return Status::IOError("cannot write " + path);
  log::Info("callback_key_created", {{"path", path}});
  return key;
}

void WarnIfOthersCanRead(const std::string& path, const char* what) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return;
  if ((st.st_mode & (S_IRGRP | S_IROTH)) != 0) {
    log::Warn("file_readable_by_others", {{"path", path},
                                          {"holds", what},
                                          {"mode", fmt::format("{:04o}", st.st_mode & 07777)},
                                          {"fix", fmt::format("chmod 600 {}", path)}});
  }
}

int Serve(const Config& config) {
  // Before any thread starts, so that only AwaitStopSignal below receives them.
  const sigset_t stop_signals = BlockStopSignals();

  for (const std::string& warning : config.warnings)
    log::Warn("config_warning", {{"warning", warning}});
  for (const char* suffix : {"", "-wal", "-shm"}) {
    WarnIfOthersCanRead(config.db_path + suffix, "messages: bodies and phone numbers");
  }
  for (const std::string& file : config.secret_files) WarnIfOthersCanRead(file, "secrets");

  // A taken port is the likelier mistake (a second sendq started by hand): say so before the
  // database lock does.
  if (config.listen_port != 0) {
    if (Status st = http::CheckListenAddress(config.listen_host, config.listen_port); !st.ok()) {
      log::Error("startup_failed", {{"error", st.message()}});
      return 1;
    }
  }

  // Connections are bounded by what the process may open, with room for everything else.
  const uint64_t descriptors = RaiseDescriptorLimit();
  const size_t max_connections = std::min<size_t>(static_cast<size_t>(config.max_connections),
                                                  http::ConnectionsForDescriptorLimit(descriptors));

  SystemClock* clock = SystemClock::Default();
  api::LongPolls long_polls(clock, config.max_waits_per_producer);
  store::StoreOptions store_options;
  store_options.synchronous_full = config.synchronous_full;
  // Every request thread, the dispatcher and a few more can read at once, and no more.
  store_options.max_readers = config.http_threads + 8;
  // Redacted data must not survive in freed pages.
  store_options.secure_delete = config.redact_after > 0;
  Result<std::unique_ptr<store::Store>> store =
      store::OpenSqliteStore(config.db_path, store_options, clock);
  if (!store.ok()) {
    log::Error("startup_failed", {{"error", store.status().ToString()}, {"db", config.db_path}});
    return 1;
  }
  // A commit wakes the long polls of the messages it changed.
  std::unique_ptr<store::Subscription> long_poll_changes =
      (*store)->Subscribe([&](const store::Changes& changes) {
        long_polls.Notify(changes.message_ids, changes.work_added);
      });

  // An admin's pauses survive restarts: they are read before anything is sent.
  Pauses pauses;
  if (Result<PauseState> held = (*store)->LoadPauses(); held.ok()) {
    pauses.Set(*held);
    if (held->global || !held->senders.empty()) {
      nlohmann::json senders(held->senders);
      log::Warn("sending_paused", {{"everything", held->global}, {"senders", senders}});
    }
  } else {
    log::Error("startup_failed", {{"error", held.status().ToString()}});
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
  dispatch.policy.on_unknown = config.on_unknown;
  dispatch.policy.lookup_grace = config.lookup_grace;
  dispatch.default_region = config.default_region;
  dispatch.pacing = config.pacing;
  dispatch.pauses = &pauses;
  delivery::Dispatcher dispatcher(store->get(), &circuit, &metrics, clock,
                                  delivery::AgentPhoneClientFactory(upstream), dispatch);

  IdGenerator ids(clock);
  delivery::Intake intake(
      store->get(), &dispatcher, &metrics, &ids,
      ControlDefaults{config.max_age, config.default_send_window, config.order_conversations,
                      config.allow_http_callbacks, config.allow_private_callbacks},
      config.guards);
  api::ServerOptions server_options;
  server_options.host = config.listen_host;
  server_options.port = config.listen_port;
  server_options.http_threads = config.http_threads;
  server_options.max_connections = max_connections;
  server_options.max_connections_per_client =
      std::min(max_connections, static_cast<size_t>(config.max_connections_per_client));
  server_options.max_waits_per_producer = config.max_waits_per_producer;
  server_options.limits.max_line = static_cast<size_t>(config.max_header_bytes);
  server_options.limits.max_head = static_cast<size_t>(config.max_head_bytes);
  server_options.limits.max_headers = static_cast<size_t>(config.max_headers);
  server_options.limits.head_timeout = config.head_timeout;
  server_options.limits.body_timeout = config.body_timeout;
  server_options.limits.idle_timeout = config.idle_timeout;
  server_options.max_body_bytes = static_cast<size_t>(config.max_body_bytes);
  server_options.max_batch_body_bytes = static_cast<size_t>(config.max_batch_body_bytes);
  server_options.validation.default_region = config.default_region;
  server_options.inbound.secret = config.agentphone_webhook_secret;
  server_options.inbound.owners = config.number_owners;
  server_options.inbound.default_region = config.default_region;
  for (const auto& [producer, token] : config.api_tokens) {
    server_options.inbound.producers.push_back(producer);
  }
  server_options.producer_tokens = config.api_tokens;
  server_options.admin_tokens = config.admin_tokens;
  server_options.openapi = api::OpenApiDocument();
  server_options.retry_validity = config.max_age;
  {
    const size_t slash = config.db_path.rfind('/');
    server_options.spool_dir = slash == std::string::npos ? "." : config.db_path.substr(0, slash);
    if (server_options.spool_dir.empty()) server_options.spool_dir = "/";
  }
  const std::string key_path = config.callback_key_file.empty() ? config.db_path + ".callback-key"
                                                                : config.callback_key_file;
  Result<std::string> callback_key = LoadOrCreateCallbackKey(key_path);
  if (!callback_key.ok()) {
    log::Error("startup_failed", {{"error", callback_key.status().ToString()}});
    return 1;
  }
  WarnIfOthersCanRead(key_path, "the callback key");
  server_options.callbacks.key = *callback_key;
  server_options.callbacks.allow_http = config.allow_http_callbacks;
  server_options.callbacks.allow_private = config.allow_private_callbacks;
  // Redacted recipients are keyed hashes: the key derives from the callback key, which is
  // kept beside the database and never in it.
  delivery::MaintenanceOptions maintenance_options;
  maintenance_options.retain = config.retain;
  maintenance_options.redact_after = config.redact_after;
  maintenance_options.recipient_key = HmacSha256Hex(*callback_key, "sendq recipient redaction");
  if (config.redact_after > 0) server_options.recipient_key = maintenance_options.recipient_key;
  delivery::Maintenance maintenance(store->get(), clock, maintenance_options);
  api::CallbackDeliverer callbacks(store->get(), clock, server_options.callbacks);
  api::ServerDeps deps{.store = store->get(),
                       .intake = &intake,
                       .circuit = &circuit,
                       .metrics = &metrics,
                       .long_polls = &long_polls,
                       .clock = clock,
                       .pauses = &pauses,
                       .pauses_changed = [&dispatcher] { dispatcher.OnPausesChanged(); },
                       .more_metrics = [&maintenance] { return maintenance.RenderMetrics(); }};
  api::ApiServer server(deps, server_options);
  Result<int> port = server.Bind();
  if (!port.ok()) {
    log::Error("startup_failed", {{"error", port.status().ToString()}});
    return 1;
  }

  dispatcher.Start();
  callbacks.Start();
  maintenance.Start();
  std::thread http_thread([&] { server.Serve(); });
  nlohmann::json producers = nlohmann::json::array();
  for (const auto& entry : config.api_tokens) producers.push_back(entry.first);
  nlohmann::json admins = nlohmann::json::array();
  for (const auto& entry : config.admin_tokens) admins.push_back(entry.first);
  log::Info("listening", {{"host", config.listen_host},
                          {"port", *port},
                          {"db", config.db_path},
                          {"upstream", RedactUrl(config.upstream_url)},
                          {"workers", config.workers},
                          {"max_connections", max_connections},
                          {"synchronous", config.synchronous_full ? "full" : "normal"},
                          {"producers", producers},
                          {"admins", admins},
                          {"retain", config.retain > 0 ? FormatDuration(config.retain) : "off"},
                          {"redact_after",
                           config.redact_after > 0 ? FormatDuration(config.redact_after) : "off"}});

  const char* signal_name = AwaitStopSignal(stop_signals);
  // Intake stops first: a request that arrives after the log line below gets 503.
  server.BeginDrain();
  log::Info("shutdown_started",
            {{"signal", signal_name}, {"drain_timeout", FormatDuration(config.drain_timeout)}});
  int unfinished = dispatcher.Stop(clock->NowMs() + config.drain_timeout);
  callbacks.Stop();
  maintenance.Stop();
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
  if (args.empty() || args[0] != "serve") {
    return sendq::cli::RunCommand(args, sendq::Environment(), [] {
      std::string help;
      sendq::ParseServeConfig({"--help"}, {}, &help).status().IgnoreError();
      return help;
    });
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
