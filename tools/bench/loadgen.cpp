// bench-loadgen: the load generator of tools/bench/run. Each mode prints one JSON line.
//
//   post             C connections (one thread each, keep-alive, TCP_NODELAY) POST a fixed body
//                    with a bearer token, closed loop, for --duration seconds or --requests
//                    requests, after an optional --warmup that is not counted. Reports
//                    requests/s, status counts and latency percentiles.
//                    With --batch N the body is POST /v1/messages/batch's, N example requests,
//                    and messages/s counts N per 2xx answer; --save-ids FILE writes every
//                    --save-every'th accepted id, one per line, for `lookup`.
//                    --distinct-recipients sends each message (of a batch too) to a recipient
//                    of its own, so each message is its own conversation (none waits behind
//                    another).
//   lookup           GET /v1/messages/{id} for ids read from a file, in random order, closed
//                    loop on C connections, for --requests requests. Reports latency.
//   direct-upstream  The drain baseline: C clients POST the example request straight to a (fake)
//                    AgentPhone's /v1/messages, each with a unique Idempotency-Key, until
//                    --requests have been sent. Reports messages/s (2xx answers per second).
//   latency          Enqueue-to-receipt time when idle: at --rate messages/s, POST a message to
//                    sendq, then long-poll the fake AgentPhone until it has received it. See
//                    kLatencyMethod for what exactly is measured. With --priority P each message
//                    carries sendq.priority P and the poll waits for that message's own id
//                    (figure 2d, where a bulk backlog drains meanwhile).
//   post-conversations  Figure 2c's backlog: batches where batch N holds message N of each of
//                    --conversations conversations, body "C:N".
//   wait-sent        The drain figure: optionally POSTs --config to the fake's /__fake/config
//                    (which releases a paused backlog), then waits until the fake has accepted
//                    --count sends and reports the rate between the first and the last arrival.
//                    --check-order counts sends of "C:N" bodies that overtook an earlier N.
//
// Every mode is bounded both in count and in time (--max-seconds).

#include <fmt/format.h>
#include <httplib.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <latch>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace {

using Json = nlohmann::ordered_json;
using SteadyTime = std::chrono::steady_clock::time_point;

// The example request of AgentPhone's Send Message page (the body of tools/bench/enqueue.lua).
constexpr char kExampleBody[] =
    R"({"agent_id":"agent_12345abcde","to_number":"+14155552671",)"
    R"("body":"Hello! Your appointment is confirmed for tomorrow at 3 PM."})";

constexpr char kLatencyMethod[] =
    "client side, per message: t0 just before POST /v1/messages to sendq; as soon as the 202 "
    "arrives, GET /__fake/sent?min_count=1 (a long poll on a separate keep-alive connection, "
    "after a POST /__fake/reset made before t0); t1 when that long poll returns. t1 - t0 is "
    "enqueue-to-upstream-receipt plus at most one loopback round trip of the long poll";

SteadyTime Now() { return std::chrono::steady_clock::now(); }

double Seconds(SteadyTime from, SteadyTime to) {
  return std::chrono::duration<double>(to - from).count();
}

int64_t Micros(SteadyTime from, SteadyTime to) {
  return std::chrono::duration_cast<std::chrono::microseconds>(to - from).count();
}

int64_t WallMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

[[noreturn]] void Fail(const std::string& mode, const std::string& what) {
  std::printf("%s\n", Json({{"mode", mode}, {"error", what}}).dump().c_str());
  std::exit(1);
}

// "http://host:port/path" -> {"http://host:port", "/path"}.
struct Url {
  std::string origin;
  std::string path;
};

Url SplitUrl(const std::string& mode, const std::string& url) {
  const size_t scheme = url.find("://");
  if (scheme == std::string::npos) Fail(mode, "not a URL: " + url);
  const size_t slash = url.find('/', scheme + 3);
  if (slash == std::string::npos) return {url, "/"};
  return {url.substr(0, slash), url.substr(slash)};
}

std::unique_ptr<httplib::Client> MakeClient(const std::string& origin, int read_timeout_s) {
  auto client = std::make_unique<httplib::Client>(origin);
  client->set_keep_alive(true);
  client->set_tcp_nodelay(true);
  client->set_connection_timeout(5, 0);
  client->set_read_timeout(read_timeout_s, 0);
  client->set_write_timeout(10, 0);
  return client;
}

// The example's recipient, replaced by a fresh number per request with --distinct-recipients.
constexpr std::string_view kExampleRecipient = "+14155552671";

// A number of its own for request `n`: +1 212 then seven digits (10 million distinct).
std::string DistinctRecipient(int64_t n) { return fmt::format("+1212{:07}", n % 10'000'000); }

// `body` with every occurrence of the example recipient (one per message of a batch) replaced
// by a fresh recipient, numbered from `next`.
std::string WithDistinctRecipients(const std::string& body, std::atomic<int64_t>& next) {
  std::string out;
  size_t from = 0;
  for (size_t at = body.find(kExampleRecipient); at != std::string::npos;
       at = body.find(kExampleRecipient, from)) {
    out.append(body, from, at - from);
    out += DistinctRecipient(next.fetch_add(1));
    from = at + kExampleRecipient.size();
  }
  out.append(body, from, std::string::npos);
  return out;
}

// Nearest-rank percentiles of `samples` (sorted in place), in the samples' unit.
Json Percentiles(std::vector<int64_t>& samples) {
  if (samples.empty()) return Json({{"p50", nullptr}, {"p90", nullptr}, {"p99", nullptr}});
  std::sort(samples.begin(), samples.end());
  auto at = [&](double p) {
    size_t rank = static_cast<size_t>(std::ceil(p * static_cast<double>(samples.size())));
    return samples[std::min(samples.size(), std::max<size_t>(rank, 1)) - 1];
  };
  return Json({{"p50", at(0.50)}, {"p90", at(0.90)}, {"p99", at(0.99)}, {"max", samples.back()}});
}

struct LoadOptions {
  std::string url;
  std::string token;
  std::string body = kExampleBody;
  int connections = 64;
  double duration_s = 10;  // measuring time; 0: bounded by requests (and max_seconds) only
  int64_t requests = 0;    // measured requests; 0: bounded by duration only
  double warmup_s = 0;
  double max_seconds = 300;
  bool unique_keys = false;  // a fresh Idempotency-Key on every request
  // Every request to a recipient of its own: each message its own conversation.
  bool distinct_recipients = false;
  int batch = 0;         // >0: POST batches of this many example requests
  std::string save_ids;  // with batch: a file for a sample of the accepted ids
  int64_t save_every = 1000;
  // If set, every connection first GETs this path (uncounted, any status) and the clock starts
  // only once all are connected, so connection set-up is not part of the measurement.
  std::string preconnect;
};

// What one connection saw.
struct ConnectionStats {
  std::vector<int64_t> latency_us;
  std::map<int, int64_t> statuses;
  std::map<std::string, int64_t> errors;
  SteadyTime last_done{};
  std::vector<std::string> sampled_ids;
  int64_t ids_seen = 0;
};

// Keeps every `every`'th accepted id of a batch answer.
void SampleIds(const std::string& body, int64_t every, ConnectionStats& s) {
  nlohmann::json answer = nlohmann::json::parse(body, nullptr, false);
  if (!answer.is_object() || !answer.contains("results")) return;
  for (const nlohmann::json& item : answer["results"]) {
    if (item.value("status", 0) != 202) continue;
    if (s.ids_seen++ % every == 0) s.sampled_ids.push_back(item["message"]["id"]);
  }
}

// Every connection's counts together.
struct Totals {
  std::vector<int64_t> latency_us;
  int64_t answered = 0;               // requests with an HTTP answer
  int64_t ok = 0;                     // of those, 2xx
  int64_t failed = 0;                 // requests without an answer
  Json status_json = Json::object();  // answers by status
  Json error_json = Json::object();   // failures by error
  SteadyTime last_done{};
};

Totals Combine(const std::vector<ConnectionStats>& stats) {
  Totals t;
  std::map<int, int64_t> statuses;
  std::map<std::string, int64_t> errors;
  for (const ConnectionStats& s : stats) {
    t.latency_us.insert(t.latency_us.end(), s.latency_us.begin(), s.latency_us.end());
    for (const auto& [status, count] : s.statuses) statuses[status] += count;
    for (const auto& [error, count] : s.errors) errors[error] += count;
    t.last_done = std::max(t.last_done, s.last_done);
  }
  for (const auto& [status, count] : statuses) {
    t.answered += count;
    if (status >= 200 && status < 300) t.ok += count;
    t.status_json[std::to_string(status)] = count;
  }
  for (const auto& [error, count] : errors) {
    t.failed += count;
    t.error_json[error] = count;
  }
  return t;
}

// Closed-loop load: `connections` threads each send a request, wait for the answer, repeat.
// Requests that start during the warm-up are not counted. With a duration, a request counts if
// it starts and is answered inside the measuring window; with a count, the first `requests`
// count and the rate is taken until the last of them is answered.
Json RunLoad(const std::string& mode, const LoadOptions& o) {
  if (o.duration_s <= 0 && o.requests <= 0) Fail(mode, "give --duration or --requests");
  const Url url = SplitUrl(mode, o.url);
  const std::string key_prefix =
      "bench-" + std::to_string(getpid()) + "-" + std::to_string(WallMs()) + "-";
  std::atomic<int64_t> issued{0};
  std::atomic<int64_t> keys{0};
  std::atomic<int64_t> recipients{0};
  std::atomic<bool> hard_stop{false};
  std::vector<ConnectionStats> stats(static_cast<size_t>(o.connections));
  const double window = o.duration_s > 0 ? std::min(o.duration_s, o.max_seconds) : o.max_seconds;
  // Set by this thread once every connection is ready, before `go` releases them.
  SteadyTime measure_start;
  SteadyTime measure_end;
  std::latch connected(o.connections);
  std::latch go(1);
  std::atomic<int64_t> preconnect_failures{0};
  std::mutex preconnect_mu;

  std::vector<std::thread> threads;
  for (int c = 0; c < o.connections; ++c) {
    threads.emplace_back([&, c] {
      ConnectionStats& s = stats[static_cast<size_t>(c)];
      s.latency_us.reserve(65536);
      // An answer slower than this is an error; the bound also keeps the end of a run prompt.
      std::unique_ptr<httplib::Client> client = MakeClient(url.origin, 10);
      client->set_bearer_token_auth(o.token);
      if (!o.preconnect.empty()) {
        // One connection at a time: the HTTP library listens with a backlog of 5, and 64
        // simultaneous connects would see SYNs dropped and retried a second later.
        std::lock_guard<std::mutex> one_at_a_time(preconnect_mu);
        if (!client->Get(o.preconnect)) ++preconnect_failures;
      }
      connected.count_down();
      go.wait();
      for (;;) {
        const SteadyTime t0 = Now();
        if (t0 >= measure_end || hard_stop.load(std::memory_order_relaxed)) return;
        const bool measured = t0 >= measure_start;
        int64_t n = 0;
        if (measured) {
          n = issued.fetch_add(1, std::memory_order_relaxed);
          if (o.requests > 0 && n >= o.requests) return;
        }
        httplib::Headers headers;
        if (o.unique_keys) {
          headers.emplace("Idempotency-Key", key_prefix + std::to_string(keys.fetch_add(1)));
        }
        httplib::Result res =
            o.distinct_recipients
                ? client->Post(url.path, headers, WithDistinctRecipients(o.body, recipients),
                               "application/json")
                : client->Post(url.path, headers, o.body, "application/json");
        const SteadyTime t1 = Now();
        if (!measured) continue;
        // With a duration, only answers inside the window count, so one slow straggler cannot
        // stretch the window (as wrk counts).
        if (o.duration_s > 0 && t1 > measure_end) return;
        s.last_done = std::max(s.last_done, t1);
        if (res) {
          ++s.statuses[res->status];
          s.latency_us.push_back(Micros(t0, t1));
          if (!o.save_ids.empty() && res->status == 200) SampleIds(res->body, o.save_every, s);
        } else {
          ++s.errors[httplib::to_string(res.error())];
          // A refused or broken connection would otherwise spin; pause briefly.
          std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
      }
    });
  }
  connected.wait();
  measure_start = Now() + std::chrono::duration_cast<SteadyTime::duration>(
                              std::chrono::duration<double>(o.warmup_s));
  measure_end = measure_start + std::chrono::duration_cast<SteadyTime::duration>(
                                    std::chrono::duration<double>(window));
  go.count_down();
  // The hard bound: whatever happens, stop issuing after warm-up + max_seconds.
  std::thread watchdog([&] {
    const SteadyTime deadline = measure_start + std::chrono::duration_cast<SteadyTime::duration>(
                                                    std::chrono::duration<double>(o.max_seconds));
    while (!hard_stop.load() && Now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    hard_stop = true;
  });
  for (std::thread& t : threads) t.join();
  hard_stop = true;
  watchdog.join();

  Totals totals = Combine(stats);
  const int64_t answered = totals.answered;
  const int64_t ok = totals.ok;
  const int64_t failed = totals.failed;
  const SteadyTime last_done = std::max(measure_start, totals.last_done);
  // Bounded by duration: the window. Bounded by count: until the last answer.
  const bool count_reached = o.requests > 0 && answered + failed >= o.requests;
  const double seconds =
      o.duration_s > 0 && !count_reached ? window : Seconds(measure_start, last_done);
  Json line = Json::object();
  line["mode"] = mode;
  line["url"] = o.url;
  line["connections"] = o.connections;
  line["warmup_s"] = o.warmup_s;
  line["preconnect"] = o.preconnect.empty() ? Json(nullptr) : Json(o.preconnect);
  line["preconnect_failures"] = preconnect_failures.load();
  line["requests"] = answered + failed;
  line["seconds"] = seconds;
  line["requests_per_s"] = seconds > 0 ? static_cast<double>(answered + failed) / seconds : 0.0;
  line["ok_per_s"] = seconds > 0 ? static_cast<double>(ok) / seconds : 0.0;
  line["status"] = totals.status_json;
  line["errors"] = totals.error_json;
  line["latency_us"] = Percentiles(totals.latency_us);
  line["stopped_by_time_bound"] = o.requests > 0 && answered + failed < o.requests;
  if (o.batch > 0) {
    line["batch"] = o.batch;
    line["messages_per_s"] = line["ok_per_s"].get<double>() * o.batch;
  }
  if (!o.save_ids.empty()) {
    FILE* out = std::fopen(o.save_ids.c_str(), "w");
    if (out == nullptr) Fail(mode, "cannot write " + o.save_ids);
    int64_t saved = 0;
    for (const ConnectionStats& s : stats) {
      for (const std::string& id : s.sampled_ids) {
        std::fprintf(out, "%s\n", id.c_str());
        ++saved;
      }
    }
    std::fclose(out);
    line["ids_saved"] = saved;
  }
  return line;
}

struct LatencyOptions {
  std::string url;
  std::string token;
  std::string fake;
  double rate = 50;
  int64_t requests = 500;
  int64_t warmup_requests = 10;  // sent and waited for first, not counted
  double max_seconds = 60;
  int wait_ms = 5000;
  std::string priority;  // when set, sent as sendq.priority, each to a recipient of its own
};

Json RunLatency(const LatencyOptions& o) {
  const std::string mode = "latency";
  if (o.rate <= 0) Fail(mode, "--rate must be positive");
  const Url url = SplitUrl(mode, o.url);
  std::unique_ptr<httplib::Client> sendq = MakeClient(url.origin, 30);
  sendq->set_bearer_token_auth(o.token);
  std::unique_ptr<httplib::Client> fake = MakeClient(o.fake, o.wait_ms / 1000 + 10);
  const std::string poll = "/__fake/sent?min_count=1&wait_ms=" + std::to_string(o.wait_ms);

  std::vector<int64_t> receipt_us;
  std::vector<int64_t> enqueue_us;
  int64_t missed = 0;
  std::map<std::string, int64_t> problems;
  const SteadyTime start = Now();
  const double interval_s = 1.0 / o.rate;
  for (int64_t i = 0; i < o.warmup_requests + o.requests; ++i) {
    if (Seconds(start, Now()) >= o.max_seconds) break;
    const bool counted = i >= o.warmup_requests;
    // Forget earlier sends, so that the long poll's answer holds one entry (its size, and so the
    // time to write it, does not grow with i).
    httplib::Result reset = fake->Post("/__fake/reset");
    if (!reset || reset->status != 200) Fail(mode, "POST /__fake/reset failed");
    const SteadyTime due =
        start + std::chrono::duration_cast<SteadyTime::duration>(
                    std::chrono::duration<double>(static_cast<double>(i) * interval_s));
    std::this_thread::sleep_until(due);
    const SteadyTime t0 = Now();
    std::string body = kExampleBody;
    if (!o.priority.empty()) {
      nlohmann::json request = nlohmann::json::parse(kExampleBody);
      request["to_number"] = fmt::format("+1646{:07}", i);
      request["sendq"] = {{"priority", o.priority}};
      body = request.dump();
    }
    httplib::Result posted = sendq->Post(url.path, body, "application/json");
    const SteadyTime t_posted = Now();
    if (!counted) {
      if (posted && posted->status == 202) fake->Get(poll);
      continue;
    }
    if (!posted || posted->status != 202) {
      ++problems[posted ? "status " + std::to_string(posted->status)
                        : httplib::to_string(posted.error())];
      continue;
    }
    std::string own_poll = poll;
    if (!o.priority.empty()) {
      nlohmann::json accepted = nlohmann::json::parse(posted->body, nullptr, false);
      if (accepted.is_object() && accepted.contains("id")) {
        own_poll += "&idempotency_key=" + accepted["id"].get<std::string>();
      }
    }
    httplib::Result received = fake->Get(own_poll);
    const SteadyTime t1 = Now();
    if (!received || received->status != 200) {
      ++problems["long poll failed"];
      continue;
    }
    nlohmann::json answer = nlohmann::json::parse(received->body, nullptr, false);
    if (!answer.is_object() || answer.value("count", 0) < 1) {
      ++missed;  // not received within wait_ms
      continue;
    }
    enqueue_us.push_back(Micros(t0, t_posted));
    receipt_us.push_back(Micros(t0, t1));
  }
  Json problem_json = Json::object();
  for (const auto& [what, count] : problems) problem_json[what] = count;
  Json line = Json::object();
  line["mode"] = mode;
  line["url"] = o.url;
  line["rate_per_s"] = o.rate;
  line["requests"] = o.requests;
  line["warmup_requests"] = o.warmup_requests;
  line["measured"] = receipt_us.size();
  line["not_received_within_wait"] = missed;
  line["problems"] = problem_json;
  line["receipt_us"] = Percentiles(receipt_us);
  line["enqueue_202_us"] = Percentiles(enqueue_us);
  line["method"] = kLatencyMethod;
  return line;
}

struct LookupOptions {
  std::string url;  // sendq's http://HOST:PORT
  std::string token;
  std::string ids_file;
  int connections = 8;
  int64_t requests = 20'000;
  double max_seconds = 60;
};

Json RunLookup(const LookupOptions& o) {
  const std::string mode = "lookup";
  std::vector<std::string> ids;
  if (FILE* in = std::fopen(o.ids_file.c_str(), "r")) {
    char line[128];
    while (std::fgets(line, sizeof line, in) != nullptr) {
      std::string id(line);
      while (!id.empty() && (id.back() == '\n' || id.back() == '\r')) id.pop_back();
      if (!id.empty()) ids.push_back(id);
    }
    std::fclose(in);
  }
  if (ids.empty()) Fail(mode, "no ids in " + o.ids_file);
  std::atomic<int64_t> issued{0};
  std::vector<ConnectionStats> stats(static_cast<size_t>(o.connections));
  const SteadyTime start = Now();
  const SteadyTime deadline = start + std::chrono::duration_cast<SteadyTime::duration>(
                                          std::chrono::duration<double>(o.max_seconds));
  std::vector<std::thread> threads;
  for (int c = 0; c < o.connections; ++c) {
    threads.emplace_back([&, c] {
      ConnectionStats& s = stats[static_cast<size_t>(c)];
      std::unique_ptr<httplib::Client> client = MakeClient(o.url, 10);
      client->set_bearer_token_auth(o.token);
      std::mt19937_64 rng(static_cast<uint64_t>(c) * 7919 + 1);
      std::uniform_int_distribution<size_t> pick(0, ids.size() - 1);
      while (issued.fetch_add(1) < o.requests && Now() < deadline) {
        const std::string& id = ids[pick(rng)];
        const SteadyTime t0 = Now();
        httplib::Result res = client->Get("/v1/messages/" + id);
        const SteadyTime t1 = Now();
        if (res) {
          ++s.statuses[res->status];
          s.latency_us.push_back(Micros(t0, t1));
        } else {
          ++s.errors[httplib::to_string(res.error())];
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  Totals totals = Combine(stats);
  Json line = Json::object();
  line["mode"] = mode;
  line["url"] = o.url;
  line["connections"] = o.connections;
  line["distinct_ids"] = ids.size();
  line["requests"] = totals.answered + totals.failed;
  line["seconds"] = Seconds(start, Now());
  line["status"] = totals.status_json;
  line["errors"] = totals.failed;
  line["latency_us"] = Percentiles(totals.latency_us);
  return line;
}

struct ConversationsOptions {
  std::string url;  // sendq's http://HOST:PORT/v1/messages/batch
  std::string token;
  int conversations = 500;
  int per_conversation = 100;
  double max_seconds = 300;
};

// Enqueues per_conversation batches, batch N holding message N of every conversation (body
// "C:N", each conversation its own recipient), so that commit order within a conversation is
// N. One connection, one batch at a time.
Json RunConversations(const ConversationsOptions& o) {
  const std::string mode = "post-conversations";
  const Url url = SplitUrl(mode, o.url);
  std::unique_ptr<httplib::Client> client = MakeClient(url.origin, 60);
  client->set_bearer_token_auth(o.token);
  const nlohmann::json example = nlohmann::json::parse(kExampleBody);
  const SteadyTime start = Now();
  int64_t accepted = 0;
  for (int n = 0; n < o.per_conversation; ++n) {
    if (Seconds(start, Now()) >= o.max_seconds) break;
    nlohmann::json messages = nlohmann::json::array();
    for (int c = 0; c < o.conversations; ++c) {
      nlohmann::json request = example;
      request["to_number"] = fmt::format("+1718{:07}", c);
      request["body"] = fmt::format("{}:{}", c, n);
      messages.push_back(std::move(request));
    }
    httplib::Result res =
        client->Post(url.path, nlohmann::json({{"messages", messages}}).dump(), "application/json");
    if (!res || res->status != 200) Fail(mode, "POST batch failed");
    accepted += nlohmann::json::parse(res->body, nullptr, false).value("accepted", int64_t{0});
  }
  Json line = Json::object();
  line["mode"] = mode;
  line["accepted"] = accepted;
  line["seconds"] = Seconds(start, Now());
  return line;
}

struct WaitSentOptions {
  std::string fake;
  std::string config;  // POSTed to /__fake/config first, if not empty
  int64_t count = 0;
  double max_seconds = 600;
  // Bodies are "CONVERSATION:N" (post-conversations): count sends that came before an earlier
  // message of their conversation.
  bool check_order = false;
};

Json RunWaitSent(const WaitSentOptions& o) {
  const std::string mode = "wait-sent";
  if (o.count < 1) Fail(mode, "--count must be at least 1");
  std::unique_ptr<httplib::Client> fake = MakeClient(o.fake, 90);
  const SteadyTime start = Now();
  const int64_t start_ms = WallMs();
  if (!o.config.empty()) {
    httplib::Result res = fake->Post("/__fake/config", o.config, "application/json");
    if (!res || res->status != 200) Fail(mode, "POST /__fake/config failed");
  }
  nlohmann::json answer;
  int64_t count = 0;
  while (count < o.count) {
    const double left = o.max_seconds - Seconds(start, Now());
    if (left <= 0) break;
    const int64_t wait_ms = std::min<int64_t>(60'000, static_cast<int64_t>(left * 1000) + 1);
    httplib::Result res = fake->Get("/__fake/sent?summary=1&min_count=" + std::to_string(o.count) +
                                    "&wait_ms=" + std::to_string(wait_ms));
    if (!res || res->status != 200) Fail(mode, "GET /__fake/sent failed");
    answer = nlohmann::json::parse(res->body, nullptr, false);
    if (!answer.is_object()) Fail(mode, "GET /__fake/sent: not JSON");
    count = answer.value("count", 0);
  }
  const int64_t first_ms = answer.value("first_received_at_ms", int64_t{0});
  const int64_t last_ms = answer.value("last_received_at_ms", int64_t{0});
  const double span_s = count > 1 ? static_cast<double>(last_ms - first_ms) / 1000.0 : 0.0;
  const double since_start_s = count > 0 ? static_cast<double>(last_ms - start_ms) / 1000.0 : 0.0;
  Json line = Json::object();
  line["mode"] = mode;
  line["count"] = count;
  line["expected"] = o.count;
  line["duplicates"] = answer.value("repeated_keys", int64_t{0});
  line["first_to_last_s"] = span_s;
  line["messages_per_s"] = span_s > 0 ? static_cast<double>(count - 1) / span_s : 0.0;
  line["release_to_last_s"] = since_start_s;
  line["first_after_release_ms"] = count > 0 ? first_ms - start_ms : 0;
  line["stopped_by_time_bound"] = count < o.count;
  if (o.check_order) {
    httplib::Result res = fake->Get("/__fake/sent");
    if (!res || res->status != 200) Fail(mode, "GET /__fake/sent failed");
    nlohmann::json sends = nlohmann::json::parse(res->body, nullptr, false);
    if (!sends.is_object()) Fail(mode, "GET /__fake/sent: not JSON");
    std::map<std::string, int64_t> last;  // conversation -> the highest N sent so far
    int64_t violations = 0;
    for (const nlohmann::json& send : sends["sends"]) {
      const std::string text = send["body"].value("body", "");
      const size_t colon = text.find(':');
      if (colon == std::string::npos) continue;
      const std::string conversation = text.substr(0, colon);
      const int64_t n = std::stoll(text.substr(colon + 1));
      auto it = last.find(conversation);
      if (it != last.end() && n < it->second) ++violations;
      last[conversation] = it == last.end() ? n : std::max(it->second, n);
    }
    line["order_violations"] = violations;
    line["conversations"] = last.size();
  }
  line["method"] =
      "received_at_ms of the fake's accepted sends (ms resolution): (count - 1) / "
      "(last arrival - first arrival)";
  return line;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"bench-loadgen: HTTP load for sendq's benchmarks; one JSON line per run"};
  app.require_subcommand(1);

  LoadOptions post;
  CLI::App* post_cmd = app.add_subcommand("post", "closed-loop POSTs of a fixed body");
  post_cmd->add_option("--url", post.url, "e.g. http://127.0.0.1:8080/v1/messages")->required();
  post_cmd->add_option("--token", post.token, "bearer token")->required();
  post_cmd->add_option("--body", post.body, "request body (default: the example request)");
  post_cmd->add_option("--connections", post.connections)
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  post_cmd->add_option("--duration", post.duration_s, "measured seconds; 0: --requests only")
      ->check(CLI::Range(0.0, 3600.0))
      ->capture_default_str();
  post_cmd->add_option("--requests", post.requests, "measured requests; 0: --duration only")
      ->check(CLI::Range(0LL, 100'000'000LL))
      ->capture_default_str();
  post_cmd->add_option("--warmup", post.warmup_s, "uncounted seconds first")
      ->check(CLI::Range(0.0, 600.0))
      ->capture_default_str();
  post_cmd->add_option("--max-seconds", post.max_seconds, "hard bound on the measured part")
      ->check(CLI::Range(0.1, 3600.0))
      ->capture_default_str();
  post_cmd->add_flag("--unique-keys", post.unique_keys, "a fresh Idempotency-Key per request");
  post_cmd->add_flag("--distinct-recipients", post.distinct_recipients,
                     "every request to a recipient of its own (its own conversation)");
  post_cmd->add_option("--batch", post.batch, "POST batches of this many example requests")
      ->check(CLI::Range(1, 500));
  post_cmd->add_option("--save-ids", post.save_ids, "with --batch: file for sampled accepted ids");
  post_cmd->add_option("--save-every", post.save_every, "keep every N'th accepted id")
      ->check(CLI::Range(1LL, 1'000'000LL))
      ->capture_default_str();
  post_cmd->add_option("--preconnect", post.preconnect,
                       "GET this path on every connection before the clock starts");

  LoadOptions direct;
  direct.connections = 16;
  direct.duration_s = 0;
  direct.requests = 50'000;
  direct.unique_keys = true;
  CLI::App* direct_cmd = app.add_subcommand(
      "direct-upstream", "POST the example request straight to the fake AgentPhone");
  direct_cmd->add_option("--url", direct.url, "the fake's http://HOST:PORT/v1/messages")
      ->required();
  direct_cmd->add_option("--token", direct.token, "the fake's upstream token")->required();
  direct_cmd->add_option("--connections", direct.connections)
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  direct_cmd->add_option("--requests", direct.requests)
      ->check(CLI::Range(1LL, 100'000'000LL))
      ->capture_default_str();
  direct_cmd->add_option("--preconnect", direct.preconnect,
                         "GET this path on every connection before the clock starts");
  direct_cmd->add_option("--max-seconds", direct.max_seconds)
      ->check(CLI::Range(0.1, 3600.0))
      ->capture_default_str();

  LatencyOptions latency;
  CLI::App* latency_cmd =
      app.add_subcommand("latency", "enqueue-to-upstream-receipt time at a fixed rate");
  latency_cmd->add_option("--url", latency.url, "sendq's http://HOST:PORT/v1/messages")->required();
  latency_cmd->add_option("--token", latency.token, "producer token")->required();
  latency_cmd->add_option("--fake", latency.fake, "the fake AgentPhone's http://HOST:PORT")
      ->required();
  latency_cmd->add_option("--rate", latency.rate, "messages per second")
      ->check(CLI::Range(0.1, 10'000.0))
      ->capture_default_str();
  latency_cmd->add_option("--requests", latency.requests)
      ->check(CLI::Range(1LL, 1'000'000LL))
      ->capture_default_str();
  latency_cmd->add_option("--warmup-requests", latency.warmup_requests, "sent first, not counted")
      ->check(CLI::Range(0LL, 10'000LL))
      ->capture_default_str();
  latency_cmd->add_option("--max-seconds", latency.max_seconds)
      ->check(CLI::Range(0.1, 3600.0))
      ->capture_default_str();
  latency_cmd
      ->add_option("--priority", latency.priority,
                   "send as sendq.priority (high, normal, bulk), each to its own recipient")
      ->check(CLI::IsMember({"high", "normal", "bulk"}));

  ConversationsOptions conversations;
  CLI::App* conversations_cmd = app.add_subcommand(
      "post-conversations", "enqueue conversations in batches, message N of each per batch");
  conversations_cmd->add_option("--url", conversations.url, "sendq's .../v1/messages/batch")
      ->required();
  conversations_cmd->add_option("--token", conversations.token, "producer token")->required();
  conversations_cmd->add_option("--conversations", conversations.conversations)
      ->check(CLI::Range(1, 500))
      ->capture_default_str();
  conversations_cmd->add_option("--per-conversation", conversations.per_conversation)
      ->check(CLI::Range(1, 100'000))
      ->capture_default_str();
  conversations_cmd->add_option("--max-seconds", conversations.max_seconds)
      ->check(CLI::Range(0.1, 3600.0))
      ->capture_default_str();

  LookupOptions lookup;
  CLI::App* lookup_cmd = app.add_subcommand("lookup", "GET messages by id, in random order");
  lookup_cmd->add_option("--url", lookup.url, "sendq's http://HOST:PORT")->required();
  lookup_cmd->add_option("--token", lookup.token, "producer token")->required();
  lookup_cmd->add_option("--ids", lookup.ids_file, "file with one id per line")->required();
  lookup_cmd->add_option("--connections", lookup.connections)
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  lookup_cmd->add_option("--requests", lookup.requests)
      ->check(CLI::Range(1LL, 10'000'000LL))
      ->capture_default_str();
  lookup_cmd->add_option("--max-seconds", lookup.max_seconds)
      ->check(CLI::Range(0.1, 3600.0))
      ->capture_default_str();

  WaitSentOptions wait;
  CLI::App* wait_cmd =
      app.add_subcommand("wait-sent", "release the fake (optional) and time a backlog's drain");
  wait_cmd->add_option("--fake", wait.fake, "the fake AgentPhone's http://HOST:PORT")->required();
  wait_cmd->add_option("--config", wait.config, "JSON to POST to /__fake/config first");
  wait_cmd->add_option("--count", wait.count, "accepted sends to wait for")->required();
  wait_cmd->add_flag("--check-order", wait.check_order,
                     "count sends that overtook an earlier one of their conversation");
  wait_cmd->add_option("--max-seconds", wait.max_seconds)
      ->check(CLI::Range(0.1, 3600.0))
      ->capture_default_str();

  CLI11_PARSE(app, argc, argv);

  Json line;
  if (post_cmd->parsed()) {
    if (post.batch > 0) {
      nlohmann::json messages = nlohmann::json::array();
      const nlohmann::json example = nlohmann::json::parse(kExampleBody);
      for (int i = 0; i < post.batch; ++i) messages.push_back(example);
      post.body = nlohmann::json({{"messages", messages}}).dump();
    }
    line = RunLoad("post", post);
  } else if (direct_cmd->parsed()) {
    line = RunLoad("direct-upstream", direct);
    line["messages_per_s"] = line["ok_per_s"];
  } else if (lookup_cmd->parsed()) {
    line = RunLookup(lookup);
  } else if (latency_cmd->parsed()) {
    line = RunLatency(latency);
  } else if (conversations_cmd->parsed()) {
    line = RunConversations(conversations);
  } else {
    line = RunWaitSent(wait);
  }
  std::printf("%s\n", line.dump().c_str());
  return 0;
}
