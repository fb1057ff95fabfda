// chaos-driver: the clients and checkers of tools/chaos/run. Each mode prints JSON on stdout
// (facts, not verdicts: the script compares them with its expectations) and progress on stderr.
//
//   produce   P producers POST the example request at a paced rate, each message with its own
//             Idempotency-Key, in four conversations per producer, until SIGTERM/SIGINT or
//             --max-seconds. A request that gets no answer (sendq was killed) is retried with the
//             same key and body until it is answered, because only then does the producer know
//             whether it was stored; a replay must return the same id. Writes "key id" per
//             acknowledged message to --out.
//   drain     Long-polls every id in --acked until it is final (bounded by --max-seconds),
//             then, with --replay, POSTs every key again and checks the replay's id.
//   check     After sendq has stopped: reads the database read-only and the fake AgentPhone's
//             records, and counts what the invariants of docs/reliability.md are about.
//   fill      POSTs unique messages until sendq answers 507 (or --max), and reports the answer.
//   abuse     A well-behaved producer at a steady rate while abusive clients run phase after
//             phase; one JSON line per phase with the good producer's figures and what the
//             abusive requests got back.
//
// Every loop is bounded in count and in time.

#include <arpa/inet.h>
#include <fcntl.h>
#include <httplib.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/socket.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "order_check.h"

namespace {

using Json = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Set by SIGTERM/SIGINT (see StopSignals); every loop checks it.
std::mutex g_stop_mu;
std::condition_variable g_stop_cv;
bool g_stop = false;

bool Stopping() {
  std::lock_guard<std::mutex> lock(g_stop_mu);
  return g_stop;
}

// Waits until `until` or a stop request, whichever comes first. Used for pacing and for the
// retry backoff of a producer whose request got no answer: neither waits for an event.
void PauseUntil(Clock::time_point until) {
  std::unique_lock<std::mutex> lock(g_stop_mu);
  g_stop_cv.wait_until(lock, until, [] { return g_stop; });
}

// SIGTERM and SIGINT request a stop; a thread receives them with sigwait, so no handler runs
// on an arbitrary thread. SIGPIPE is ignored: abusive clients write to connections the server
// has closed.
void StartStopSignalThread() {
  signal(SIGPIPE, SIG_IGN);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::thread([set] {
    int sig = 0;
    sigwait(&set, &sig);
    {
      std::lock_guard<std::mutex> lock(g_stop_mu);
      g_stop = true;
    }
    g_stop_cv.notify_all();
  }).detach();
}

double MsSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// Nearest-rank percentiles, in milliseconds with a tenth.
Json Percentiles(std::vector<double> samples) {
  if (samples.empty()) return Json({{"p50_ms", nullptr}, {"p99_ms", nullptr}, {"max_ms", nullptr}});
  std::sort(samples.begin(), samples.end());
  auto at = [&](double p) {
    size_t rank = static_cast<size_t>(std::ceil(p * static_cast<double>(samples.size())));
    double v = samples[std::min(samples.size(), std::max<size_t>(rank, 1)) - 1];
    return std::round(v * 10) / 10;
  };
  return Json({{"p50_ms", at(0.50)}, {"p99_ms", at(0.99)}, {"max_ms", at(1.0)}});
}

struct Url {
  std::string host = "127.0.0.1";
  int port = 0;
  std::string origin;  // "http://host:port"
};

Url ParseUrl(const std::string& url) {
  Url out;
  const std::string prefix = "http://";
  if (url.rfind(prefix, 0) != 0) throw std::runtime_error("not an http:// URL: " + url);
  std::string rest = url.substr(prefix.size());
  rest = rest.substr(0, rest.find('/'));
  const size_t colon = rest.rfind(':');
  if (colon == std::string::npos) throw std::runtime_error("URL without a port: " + url);
  out.host = rest.substr(0, colon);
  out.port = std::stoi(rest.substr(colon + 1));
  out.origin = prefix + rest;
  return out;
}

std::unique_ptr<httplib::Client> MakeClient(const Url& url, int read_timeout_s,
                                            bool keep_alive = true) {
  auto client = std::make_unique<httplib::Client>(url.origin);
  client->set_keep_alive(keep_alive);
  client->set_tcp_nodelay(true);
  client->set_connection_timeout(2, 0);
  client->set_read_timeout(read_timeout_s, 0);
  client->set_write_timeout(5, 0);
  return client;
}

httplib::Headers AuthHeaders(const std::string& token, const std::string& key = "") {
  httplib::Headers headers = {{"Authorization", "Bearer " + token}};
  if (!key.empty()) headers.emplace("Idempotency-Key", key);
  return headers;
}

// Each producer's messages go to this many recipients in turn: conversations of their own,
// whose order the checker compares with what the upstream saw.
constexpr int kConversationsPerProducer = 4;

// The README's example request, with a body unique to (producer, sequence), so that every
// message can be told apart at the upstream too, and the to_number of its conversation. Each
// producer sends as an agent of its own, as separate apps would: a 429 pauses only its sender.
std::string MessageBody(int producer, int seq, const std::string& key) {
  // +1 555 then 7 digits: a possible US number, as sendq's validation requires.
  const std::string to =
      "+1555" + std::to_string(1'000'000 + producer * 100 + seq % kConversationsPerProducer);
  return Json(
             {{"agent_id", "agent_chaos_p" + std::to_string(producer)},
              {"to_number", to},
              {"body", "Hello! Your appointment is confirmed for tomorrow at 3 PM. [" + key + "]"}})
      .dump();
}

// Keys look like "<prefix>-p<producer>-<seq>"; the body is derived from them.
bool ParseKey(const std::string& key, int* producer, int* seq) {
  const size_t p = key.rfind("-p");
  if (p == std::string::npos) return false;
  const size_t dash = key.find('-', p + 2);
  if (dash == std::string::npos) return false;
  try {
    *producer = std::stoi(key.substr(p + 2, dash - p - 2));
    *seq = std::stoi(key.substr(dash + 1));
  } catch (const std::exception&) {
    return false;
  }
  return true;
}

struct Acked {
  std::string key;
  std::string id;
};

std::vector<Acked> ReadAcked(const std::string& path) {
  std::vector<Acked> out;
  std::ifstream in(path);
  std::string key, id;
  while (in >> key >> id) out.push_back({key, id});
  return out;
}

bool IsFinal(const std::string& status) {
  return status == "sent" || status == "failed" || status == "canceled";
}

// ---------------------------------------------------------------------------------------------
// produce

struct ProduceOptions {
  std::string url;
  std::string token;
  std::string out;
  std::string prefix = "chaos";
  int producers = 16;
  double rate = 10;  // messages per second per producer
  int max_per_producer = 100'000;
  double max_seconds = 600;    // hard bound on the whole run
  double answer_seconds = 60;  // how long one message is retried without an answer
  int replay_every = 8;        // every Nth acknowledged message is POSTed again at once
};

struct ProduceStats {
  std::mutex mu;
  int64_t attempted = 0;              // messages (keys) begun
  int64_t acked_202 = 0;              // first answer for the key was 202
  int64_t acked_replayed = 0;         // 200 Idempotent-Replayed after a lost answer
  int64_t no_answer = 0;              // requests without an answer (kills), all retried
  int64_t keys_with_lost_answer = 0;  // keys that needed at least one retry
  int64_t status_503 = 0;             // retried
  int64_t gave_up = 0;                // never answered within answer_seconds
  int64_t unexpected = 0;             // any other status (not retried)
  std::map<std::string, int64_t> unexpected_statuses;
  int64_t replay_checks = 0;
  int64_t replay_mismatches = 0;
  std::vector<std::string> examples;  // a few unexpected answers, for the report
  std::vector<Acked> acked;
};

// A POST retried with the same key and body until answered or `deadline`. Returns the answer
// or nullopt.
std::optional<httplib::Result> PostUntilAnswered(httplib::Client& client, const ProduceOptions& o,
                                                 const std::string& key, const std::string& body,
                                                 Clock::time_point deadline, ProduceStats* stats,
                                                 bool* lost_answer) {
  auto backoff = milliseconds(20);
  for (;;) {
    httplib::Result res =
        client.Post("/v1/messages", AuthHeaders(o.token, key), body, "application/json");
    if (res && res->status != 503) return res;
    {
      std::lock_guard<std::mutex> lock(stats->mu);
      if (res) {
        ++stats->status_503;
      } else {
        ++stats->no_answer;
      }
    }
    *lost_answer = true;
    if (Clock::now() + backoff >= deadline) return std::nullopt;
    PauseUntil(Clock::now() + backoff);
    backoff = std::min(backoff * 2, milliseconds(250));
  }
}

int RunProduce(const ProduceOptions& o) {
  const Url url = ParseUrl(o.url);
  ProduceStats stats;
  const auto start = Clock::now();
  const auto hard_deadline = start + std::chrono::duration_cast<Clock::duration>(
                                         std::chrono::duration<double>(o.max_seconds));
  std::vector<std::thread> threads;
  for (int p = 0; p < o.producers; ++p) {
    threads.emplace_back([&, p] {
      auto client = MakeClient(url, 10);
      const auto interval =
          std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(1.0 / o.rate));
      // Spread the producers' first requests over one interval.
      auto next = start + interval * p / o.producers;
      for (int seq = 0; seq < o.max_per_producer; ++seq) {
        PauseUntil(next);
        next += interval;
        if (Stopping() || Clock::now() >= hard_deadline) break;
        char key_buf[96];
        std::snprintf(key_buf, sizeof(key_buf), "%s-p%02d-%06d", o.prefix.c_str(), p, seq);
        const std::string key = key_buf;
        const std::string body = MessageBody(p, seq, key);
        {
          std::lock_guard<std::mutex> lock(stats.mu);
          ++stats.attempted;
        }
        // A message begun is finished even after a stop request: its answer may have been
        // lost, and only an answer tells whether it was stored.
        const auto deadline =
            std::min(hard_deadline + std::chrono::seconds(30),
                     Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                        std::chrono::duration<double>(o.answer_seconds)));
        bool lost = false;
        std::optional<httplib::Result> res =
            PostUntilAnswered(*client, o, key, body, deadline, &stats, &lost);
        std::lock_guard<std::mutex> lock(stats.mu);
        if (lost) ++stats.keys_with_lost_answer;
        if (!res) {
          ++stats.gave_up;
          continue;
        }
        const httplib::Response& r = **res;
        const bool replayed = r.get_header_value("Idempotent-Replayed") == "true";
        if (r.status == 202 || (r.status == 200 && replayed)) {
          Json record = Json::parse(r.body, nullptr, false);
          if (!record.is_object() || !record.contains("id")) {
            ++stats.unexpected;
            ++stats.unexpected_statuses[std::to_string(r.status) + " without id"];
            continue;
          }
          (r.status == 202 ? stats.acked_202 : stats.acked_replayed)++;
          stats.acked.push_back({key, record["id"].get<std::string>()});
          if (o.replay_every > 0 && seq % o.replay_every == o.replay_every - 1) {
            // Check now that the key gives back the same message.
            const std::string id = record["id"];
            stats.mu.unlock();
            bool lost_again = false;
            std::optional<httplib::Result> again =
                PostUntilAnswered(*client, o, key, body, deadline, &stats, &lost_again);
            stats.mu.lock();
            ++stats.replay_checks;
            Json again_record = again ? Json::parse((*again)->body, nullptr, false) : Json(nullptr);
            if (!again || (*again)->status != 200 ||
                (*again)->get_header_value("Idempotent-Replayed") != "true" ||
                !again_record.is_object() || again_record.value("id", "") != id) {
              ++stats.replay_mismatches;
              if (stats.examples.size() < 5) {
                stats.examples.push_back(
                    "replay of " + key + ": " +
                    (again ? std::to_string((*again)->status) + " " + (*again)->body.substr(0, 200)
                           : std::string("no answer")));
              }
            }
          }
        } else {
          ++stats.unexpected;
          ++stats.unexpected_statuses[std::to_string(r.status)];
          if (stats.examples.size() < 5) {
            stats.examples.push_back(key + ": " + std::to_string(r.status) + " " +
                                     r.body.substr(0, 200));
          }
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  std::ofstream out(o.out);
  for (const Acked& a : stats.acked) out << a.key << ' ' << a.id << '\n';
  out.close();
  Json line = {{"mode", "produce"},
               {"seconds", std::round(MsSince(start) / 100) / 10},
               {"producers", o.producers},
               {"attempted", stats.attempted},
               {"acked", stats.acked.size()},
               {"acked_202", stats.acked_202},
               {"acked_replayed_after_lost_answer", stats.acked_replayed},
               {"requests_without_answer", stats.no_answer},
               {"keys_with_lost_answer", stats.keys_with_lost_answer},
               {"answers_503", stats.status_503},
               {"gave_up", stats.gave_up},
               {"unexpected", stats.unexpected},
               {"unexpected_statuses", stats.unexpected_statuses},
               {"replay_checks", stats.replay_checks},
               {"replay_mismatches", stats.replay_mismatches},
               {"examples", stats.examples}};
  std::printf("%s\n", line.dump().c_str());
  return 0;
}

// ---------------------------------------------------------------------------------------------
// drain

struct DrainOptions {
  std::string url;
  std::string token;
  std::string acked;
  int threads = 16;
  double max_seconds = 120;
  bool replay = false;
};

int RunDrain(const DrainOptions& o) {
  const Url url = ParseUrl(o.url);
  const std::vector<Acked> acked = ReadAcked(o.acked);
  const auto start = Clock::now();
  const auto deadline = start + std::chrono::duration_cast<Clock::duration>(
                                    std::chrono::duration<double>(o.max_seconds));
  std::mutex mu;
  std::map<std::string, int64_t> final_status;
  int64_t not_final = 0, errors = 0, replay_checks = 0, replay_mismatches = 0;
  std::vector<std::string> examples;
  std::atomic<size_t> next{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < o.threads; ++t) {
    threads.emplace_back([&] {
      auto client = MakeClient(url, 15);
      for (size_t i = next++; i < acked.size(); i = next++) {
        std::string status = "missing";
        // Long polls: each answers as soon as the message is final, or after 10 s.
        while (Clock::now() < deadline && !Stopping()) {
          auto res = client->Get("/v1/messages/" + acked[i].id + "?wait=10s", AuthHeaders(o.token));
          if (!res || res->status != 200) {
            std::lock_guard<std::mutex> lock(mu);
            ++errors;
            if (examples.size() < 5) {
              examples.push_back(acked[i].id + ": " +
                                 (res ? std::to_string(res->status) : std::string("no answer")));
            }
            break;
          }
          status = Json::parse(res->body, nullptr, false).value("status", "?");
          if (IsFinal(status)) break;
        }
        bool mismatch = false;
        if (o.replay) {
          int producer = 0, seq = 0;
          ParseKey(acked[i].key, &producer, &seq);
          auto res = client->Post("/v1/messages", AuthHeaders(o.token, acked[i].key),
                                  MessageBody(producer, seq, acked[i].key), "application/json");
          mismatch = !res || res->status != 200 ||
                     Json::parse(res->body, nullptr, false).value("id", "") != acked[i].id;
          if (mismatch) {
            std::lock_guard<std::mutex> lock(mu);
            if (examples.size() < 5) {
              examples.push_back("replay " + acked[i].key + ": " +
                                 (res ? std::to_string(res->status) + " " + res->body.substr(0, 200)
                                      : std::string("no answer")));
            }
          }
        }
        std::lock_guard<std::mutex> lock(mu);
        ++final_status[status];
        if (!IsFinal(status)) ++not_final;
        if (o.replay) {
          ++replay_checks;
          if (mismatch) ++replay_mismatches;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  Json line = {{"mode", "drain"},
               {"seconds", std::round(MsSince(start) / 100) / 10},
               {"messages", acked.size()},
               {"status", final_status},
               {"not_final", not_final},
               {"errors", errors},
               {"replay_checks", replay_checks},
               {"replay_mismatches", replay_mismatches},
               {"examples", examples}};
  std::printf("%s\n", line.dump().c_str());
  return 0;
}

// ---------------------------------------------------------------------------------------------
// check

struct CheckOptions {
  std::string db;
  std::string acked;
  std::string fake;
};

// A read-only view of a stopped sendq's database.
class ReadOnlyDb {
 public:
  explicit ReadOnlyDb(const std::string& path) {
    const std::string uri = "file:" + path + "?mode=ro";
    if (sqlite3_open_v2(uri.c_str(), &db_, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, nullptr) !=
        SQLITE_OK) {
      throw std::runtime_error("cannot open " + path + ": " + sqlite3_errmsg(db_));
    }
  }
  ~ReadOnlyDb() { sqlite3_close(db_); }

  // Every row of `sql`, each column as text ("" for NULL).
  std::vector<std::vector<std::string>> Query(const std::string& sql) {
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr) != SQLITE_OK) {
      throw std::runtime_error("query failed: " + sql + ": " + sqlite3_errmsg(db_));
    }
    std::vector<std::vector<std::string>> rows;
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
      std::vector<std::string> row;
      for (int c = 0; c < sqlite3_column_count(stmt); ++c) {
        const unsigned char* text = sqlite3_column_text(stmt, c);
        row.emplace_back(text ? reinterpret_cast<const char*>(text) : "");
      }
      rows.push_back(std::move(row));
    }
    sqlite3_finalize(stmt);
    if (rc != SQLITE_DONE) throw std::runtime_error("query failed: " + sql);
    return rows;
  }

 private:
  sqlite3* db_ = nullptr;
};

Json FakeList(const Url& fake, const std::string& path) {
  auto client = MakeClient(fake, 30);
  auto res = client->Get(path);
  if (!res || res->status != 200) throw std::runtime_error("GET " + path + " failed");
  return Json::parse(res->body);
}

int RunCheck(const CheckOptions& o) {
  const std::vector<Acked> acked = ReadAcked(o.acked);
  ReadOnlyDb db(o.db);
  static const char* kStatusNames[] = {"queued", "sending", "sent", "failed", "canceled"};

  Json out = {{"mode", "check"}};
  // Integrity first: the rest means little on a damaged file.
  auto integrity = db.Query("PRAGMA integrity_check");
  std::string integrity_text;
  for (auto& row : integrity) integrity_text += (integrity_text.empty() ? "" : "; ") + row[0];
  out["integrity_check"] = integrity_text;

  std::map<std::string, std::string> status_of;  // id -> status name
  Json by_status = Json::object();
  for (auto& row : db.Query("SELECT id, status FROM messages")) {
    const int s = std::stoi(row[1]);
    const std::string name = s >= 0 && s <= 4 ? kStatusNames[s] : "status_" + row[1];
    status_of[row[0]] = name;
    by_status[name] = by_status.value(name, 0) + 1;
  }
  out["db_messages"] = status_of.size();
  out["db_by_status"] = by_status;

  std::set<std::string> with_unknown;
  for (auto& row : db.Query("SELECT DISTINCT message_id FROM attempts WHERE outcome = 3")) {
    with_unknown.insert(row[0]);
  }
  auto open_attempts = db.Query("SELECT count(*) FROM attempts WHERE outcome IS NULL");
  out["open_attempts"] = std::stoll(open_attempts[0][0]);
  out["messages_with_unknown_attempt"] = with_unknown.size();

  int64_t acked_missing = 0, acked_not_sent = 0;
  std::set<std::string> acked_ids;
  Json not_sent_examples = Json::array();
  for (const Acked& a : acked) {
    acked_ids.insert(a.id);
    auto it = status_of.find(a.id);
    if (it == status_of.end()) {
      ++acked_missing;
      if (not_sent_examples.size() < 5) not_sent_examples.push_back(a.id + " missing");
    } else if (it->second != "sent") {
      ++acked_not_sent;
      if (not_sent_examples.size() < 5) not_sent_examples.push_back(a.id + " " + it->second);
    }
  }
  out["acked"] = acked.size();
  out["acked_distinct_ids"] = acked_ids.size();
  out["acked_missing"] = acked_missing;
  out["acked_not_sent"] = acked_not_sent;
  out["not_sent_examples"] = not_sent_examples;
  out["db_messages_not_acked"] =
      static_cast<int64_t>(status_of.size()) - static_cast<int64_t>(acked_ids.size());

  if (!o.fake.empty()) {
    const Url fake = ParseUrl(o.fake);
    // Accepted sends (the fake answered 200), by Idempotency-Key, which is the sendq id.
    std::map<std::string, int64_t> accepted;
    const Json sent = FakeList(fake, "/__fake/sent");
    for (const auto& send : sent.at("sends")) {
      if (send.at("idempotency_key").is_string()) ++accepted[send.at("idempotency_key")];
    }
    // Every arrival, whatever became of it: drops are status 0.
    std::map<std::string, int64_t> dropped;
    int64_t arrivals = 0, drops = 0, in_flight = 0;
    std::map<std::string, int64_t> arrival_status;
    const Json received = FakeList(fake, "/__fake/received");
    for (const auto& r : received.at("sends")) {
      ++arrivals;
      const std::string st = r.at("status").is_null() ? "in_flight" : r.at("status").dump();
      ++arrival_status[st];
      if (r.at("status").is_null()) ++in_flight;
      if (r.at("status") == 0) {
        ++drops;
        if (r.at("idempotency_key").is_string()) ++dropped[r.at("idempotency_key")];
      }
    }
    int64_t sent_once = 0, sent_never = 0, dup_explained = 0, dup_unexplained = 0, extra = 0;
    int64_t phantom = 0, drops_without_unknown = 0, dup_copies = 0;
    Json dup_examples = Json::array(), unexplained_examples = Json::array();
    for (const auto& [id, status] : status_of) {
      const int64_t n = accepted.count(id) ? accepted[id] : 0;
      if (status == "sent" && n == 0) {
        ++sent_never;
        if (unexplained_examples.size() < 5)
          unexplained_examples.push_back(id + " sent, 0 at upstream");
      }
      if (n == 1) ++sent_once;
      if (n > 1) {
        dup_copies += n - 1;
        if (with_unknown.count(id)) {
          ++dup_explained;
          if (dup_examples.size() < 5) dup_examples.push_back(id + " x" + std::to_string(n));
        } else {
          ++dup_unexplained;
          if (unexplained_examples.size() < 5) {
            unexplained_examples.push_back(id + " accepted " + std::to_string(n) +
                                           " times, no unknown attempt");
          }
        }
      }
      if (status != "sent" && n > 0) ++extra;
    }
    for (const auto& [key, n] : accepted) {
      if (!status_of.count(key)) phantom += n;
    }
    for (const auto& [key, n] : dropped) {
      if (!with_unknown.count(key)) ++drops_without_unknown;
    }
    out["upstream_arrivals"] = arrivals;
    out["upstream_arrival_status"] = arrival_status;
    out["upstream_accepted"] = [&] {
      int64_t total = 0;
      for (auto& [k, n] : accepted) total += n;
      return total;
    }();
    out["upstream_drops"] = drops;
    out["upstream_in_flight"] = in_flight;
    out["accepted_exactly_once"] = sent_once;
    out["sent_but_never_accepted"] = sent_never;
    out["duplicates_with_unknown_attempt"] = dup_explained;
    out["duplicate_copies"] = dup_copies;
    out["duplicates_without_unknown_attempt"] = dup_unexplained;
    out["accepted_but_not_sent_in_db"] = extra;
    out["accepted_unknown_to_db"] = phantom;
    out["dropped_keys_without_unknown_attempt"] = drops_without_unknown;
    out["duplicate_examples"] = dup_examples;
    out["unexplained_examples"] = unexplained_examples;

    // Conversation order: a producer waits for each answer before its next message, so its
    // sequence numbers are the enqueue order of each of its conversations.
    std::map<std::string, int64_t> place;
    for (const Acked& a : acked) {
      int producer = 0, seq = 0;
      if (ParseKey(a.key, &producer, &seq)) place[a.id] = seq;
    }
    std::vector<sendq::chaos::AcceptedSend> in_order;
    for (const auto& send : sent.at("sends")) {
      if (!send.at("idempotency_key").is_string()) continue;
      in_order.push_back({send.at("body").value("to_number", ""), send.at("idempotency_key")});
    }
    const sendq::chaos::OrderCheck order =
        sendq::chaos::CheckConversationOrder(in_order, place, with_unknown);
    out["order_conversations"] = order.conversations;
    out["order_checked_sends"] = order.checked_sends;
    out["order_violations"] = order.violations;
    out["order_violations_with_unknown_attempt"] = order.violations_with_unknown_attempt;
    out["order_examples"] = order.examples;
  }
  std::printf("%s\n", out.dump().c_str());
  return 0;
}

// ---------------------------------------------------------------------------------------------
// fill

struct FillOptions {
  std::string url;
  std::string token;
  std::string out;
  std::string prefix = "fill";
  int connections = 4;
  int max = 200'000;
  double max_seconds = 120;
};

int RunFill(const FillOptions& o) {
  const Url url = ParseUrl(o.url);
  const auto start = Clock::now();
  const auto deadline = start + std::chrono::duration_cast<Clock::duration>(
                                    std::chrono::duration<double>(o.max_seconds));
  std::mutex mu;
  std::atomic<bool> full{false};
  std::atomic<int> next{0};
  std::map<std::string, int64_t> statuses;
  std::vector<Acked> acked;
  std::string first_507_body, first_507_type, other_example;
  double ms_to_first_507 = -1;
  std::vector<std::thread> threads;
  for (int c = 0; c < o.connections; ++c) {
    threads.emplace_back([&, c] {
      auto client = MakeClient(url, 10);
      for (int seq = next++; seq < o.max && !full && Clock::now() < deadline && !Stopping();
           seq = next++) {
        char key[96];
        std::snprintf(key, sizeof(key), "%s-p%02d-%06d", o.prefix.c_str(), 90 + c, seq);
        auto res = client->Post("/v1/messages", AuthHeaders(o.token, key),
                                MessageBody(90 + c, seq, key), "application/json");
        std::lock_guard<std::mutex> lock(mu);
        const std::string status = res ? std::to_string(res->status) : "no answer";
        ++statuses[status];
        if (res && res->status == 202) {
          acked.push_back({key, Json::parse(res->body).at("id").get<std::string>()});
        } else if (res && res->status == 507) {
          if (!full.exchange(true)) {
            first_507_body = res->body;
            first_507_type = res->get_header_value("Content-Type");
            ms_to_first_507 = MsSince(start);
          }
        } else if (other_example.empty()) {
          other_example = status + (res ? " " + res->body.substr(0, 300) : "");
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  std::ofstream out(o.out);
  for (const Acked& a : acked) out << a.key << ' ' << a.id << '\n';
  Json body = Json::parse(first_507_body, nullptr, false);
  Json line = {{"mode", "fill"},
               {"seconds", std::round(MsSince(start) / 100) / 10},
               {"acked", acked.size()},
               {"statuses", statuses},
               {"got_507", full.load()},
               {"ms_to_first_507", std::round(ms_to_first_507)},
               {"body_507", body.is_discarded() ? Json(first_507_body) : body},
               {"content_type_507", first_507_type},
               {"other_example", other_example}};
  std::printf("%s\n", line.dump().c_str());
  return 0;
}

// ---------------------------------------------------------------------------------------------
// abuse

// A raw TCP connection, for requests no well-behaved client library would send.
class RawConn {
 public:
  // Connects within `timeout_ms`; ok() is false on failure.
  RawConn(const Url& url, int timeout_ms) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(url.port));
    inet_pton(AF_INET, url.host.c_str(), &addr.sin_addr);
    int rc = connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    if (rc != 0 && errno == EINPROGRESS) {
      pollfd p{fd_, POLLOUT, 0};
      int err = 0;
      socklen_t len = sizeof(err);
      if (poll(&p, 1, timeout_ms) == 1 && getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len) == 0 &&
          err == 0) {
        rc = 0;
      }
    }
    if (rc != 0) {
      close(fd_);
      fd_ = -1;
    }
  }
  ~RawConn() {
    if (fd_ >= 0) close(fd_);
  }
  RawConn(const RawConn&) = delete;
  RawConn& operator=(const RawConn&) = delete;

  bool ok() const { return fd_ >= 0; }

  // Sends all of `data` within `timeout_ms`; false if the peer closed or time ran out.
  bool Send(std::string_view data, int timeout_ms = 5000) {
    const auto deadline = Clock::now() + milliseconds(timeout_ms);
    while (!data.empty()) {
      ssize_t n = send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n > 0) {
        data.remove_prefix(static_cast<size_t>(n));
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        const int left = static_cast<int>(
            std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count());
        if (left <= 0) return false;
        pollfd p{fd_, POLLOUT, 0};
        poll(&p, 1, left);
        continue;
      }
      return false;
    }
    return true;
  }

  void ShutdownWrite() { shutdown(fd_, SHUT_WR); }

  // The status of the next response, 0 if the server closed without one, -1 if it did not
  // arrive within `timeout_ms`. The whole response is consumed (its Content-Length body too),
  // so that pipelined responses can be read one after another.
  int ReadStatus(int timeout_ms) {
    const auto deadline = Clock::now() + milliseconds(timeout_ms);
    char buf[16384];
    for (;;) {
      const size_t head_end = pending_.find("\r\n\r\n");
      if (head_end != std::string::npos) {
        if (pending_.size() < 12 || pending_.compare(0, 5, "HTTP/") != 0) return 0;
        size_t length = 0;
        const size_t cl = pending_.find("Content-Length: ");
        if (cl != std::string::npos && cl < head_end) length = std::stoul(pending_.substr(cl + 16));
        if (pending_.size() >= head_end + 4 + length) {
          const int status = std::atoi(pending_.c_str() + 9);
          pending_.erase(0, head_end + 4 + length);
          return status;
        }
      }
      const int left = static_cast<int>(
          std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count());
      if (left <= 0) return -1;
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, left) != 1) return -1;
      ssize_t n = recv(fd_, buf, sizeof(buf), 0);
      if (n <= 0) {
        // Closed: a status line that did arrive still counts.
        if (pending_.size() >= 12 && pending_.compare(0, 5, "HTTP/") == 0) {
          return std::atoi(pending_.c_str() + 9);
        }
        return 0;
      }
      pending_.append(buf, static_cast<size_t>(n));
    }
  }

  // True if the server has closed its end (without blocking).
  bool PeerClosed() {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, 0) != 1) return false;
    char c;
    return recv(fd_, &c, 1, MSG_PEEK) <= 0;
  }

 private:
  int fd_ = -1;
  std::string pending_;  // received, not yet read as a response
};

struct AbuseOptions {
  std::string url;
  std::string token;
  double good_rate = 20;  // requests per second, split over the two good producers
  double quiet_seconds = 5;
  int idle_connections = 300;
  double idle_seconds = 15;
  int big_header_requests = 200;
  int big_header_kb = 100;
  int bad_utf8_requests = 1000;
  int truncated_requests = 300;
  int flood_requests = 20'000;
  int flood_connections = 8;
  int header_flood_connections = 8;
  int header_flood_mb = 20;  // header lines each flood connection sends, at most
  int big_body_connections = 500;
  int big_body_mb = 8;
  std::string poll_token;  // a second producer's token, for the long-poll flood
  int long_polls = 1500;
  double long_poll_seconds = 15;
  int pipelined_connections = 50;
  int pipelined_requests = 20;  // per connection
  int sendq_pid = 0;            // to report sendq's memory after each phase
};

// VmRSS and VmHWM (the peak) of a process, in MB; empty when unknown.
Json MemoryOf(int pid) {
  Json out = Json::object();
  if (pid <= 0) return out;
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) out["sendq_rss_mb"] = std::stol(line.substr(6)) / 1024;
    if (line.rfind("VmHWM:", 0) == 0) out["sendq_peak_rss_mb"] = std::stol(line.substr(6)) / 1024;
  }
  return out;
}

// What the abusive requests of one phase got back. Status 0: the connection was closed
// without an answer; -1: no answer in time.
struct AbuseTally {
  std::mutex mu;
  std::map<int, int64_t> statuses;
  int64_t connect_failures = 0;
  void Add(int status) {
    std::lock_guard<std::mutex> lock(mu);
    ++statuses[status];
  }
  void CountConnectFailure() {
    std::lock_guard<std::mutex> lock(mu);
    ++connect_failures;
  }
};

// The good producers: one opens a new connection per request (as a shell script or a
// short-lived process would), one keeps its connection alive. Each sends at half the rate.
class GoodProducers {
 public:
  GoodProducers(const AbuseOptions& o, const Url& url) : o_(o), url_(url) {
    // Enough threads for the new-connection producer to keep its schedule while every
    // request hangs until its 5 s timeout.
    const int new_connection_threads = static_cast<int>(std::ceil(o.good_rate / 2 * 6));
    for (int t = 0; t < new_connection_threads; ++t) {
      threads_.emplace_back([this] { Loop(false); });
    }
    threads_.emplace_back([this] { Loop(true); });
  }
  ~GoodProducers() { Stop(); }

  void SetPhase(int phase) { phase_ = phase; }

  void Stop() {
    stop_ = true;
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
  }

  // The figures of `phase` for one kind of producer.
  Json Figures(int phase, bool keep_alive) {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<double> latencies;
    int64_t ok = 0, failed = 0;
    std::map<std::string, int64_t> failures;
    for (const Sample& s : samples_) {
      if (s.phase != phase || s.keep_alive != keep_alive) continue;
      latencies.push_back(s.ms);
      if (s.status == 202) {
        ++ok;
      } else {
        ++failed;
        ++failures[s.status == 0 ? "no answer" : std::to_string(s.status)];
      }
    }
    Json out = {{"requests", ok + failed}, {"ok", ok}, {"failed", failed}};
    out.update(Percentiles(latencies));
    out["failures"] = failures;
    return out;
  }

 private:
  struct Sample {
    int phase;
    bool keep_alive;
    int status;
    double ms;  // until the answer, or until the failure
  };

  // The new-connection producer is open loop: request k starts at start + k * interval on
  // whichever of its threads is free, so a hung request does not hide the ones due after it.
  // The keep-alive producer has one connection, so it is closed loop by nature.
  void Loop(bool keep_alive) {
    std::unique_ptr<httplib::Client> client;
    const auto interval = std::chrono::duration_cast<Clock::duration>(
        std::chrono::duration<double>(2.0 / o_.good_rate));
    const std::string body =
        R"({"agent_id":"agent_12345abcde","to_number":"+14155552671",)"
        R"("body":"Hello! Your appointment is confirmed for tomorrow at 3 PM."})";
    auto next = start_ + interval / 2;
    // Bounded: at most an hour of requests at the configured rate.
    const int64_t max_requests = static_cast<int64_t>(o_.good_rate * 1800);
    for (int64_t i = 0; i < max_requests && !stop_; ++i) {
      if (!keep_alive) {
        const int64_t slot = next_slot_++;
        if (slot >= max_requests) break;
        next = start_ + interval * slot;
      }
      std::this_thread::sleep_until(next);  // pacing, not waiting for an event
      if (stop_) break;
      const int phase = phase_;
      if (!client || !keep_alive) client = MakeClient(url_, 5, keep_alive);
      const auto start = Clock::now();
      auto res = client->Post("/v1/messages", AuthHeaders(o_.token), body, "application/json");
      const double ms = MsSince(start);
      std::lock_guard<std::mutex> lock(mu_);
      samples_.push_back({phase, keep_alive, res ? res->status : 0, ms});
      if (keep_alive) {
        next += interval;
        // A request slower than the interval delays the next, rather than bunching them.
        if (next < Clock::now()) next = Clock::now();
      }
    }
  }

  const AbuseOptions& o_;
  const Url url_;
  const Clock::time_point start_ = Clock::now();
  std::atomic<int64_t> next_slot_{0};
  std::atomic<int> phase_{0};
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::vector<Sample> samples_;
  std::vector<std::thread> threads_;
};

int HealthStatus(const Url& url) {
  auto client = MakeClient(url, 5, false);
  auto res = client->Get("/healthz");
  return res ? res->status : 0;
}

// Runs `per_request` on `threads` threads, handing out indexes: at least `count` of them and for
// at least `min_seconds` (so that the good producer sees the phase), but never more than
// 100 * `count` nor for more than `max_seconds`.
void Parallel(int threads, int count, double min_seconds, double max_seconds,
              const std::function<void(int index, httplib::Client*)>& per_request, const Url& url) {
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                           std::chrono::duration<double>(max_seconds));
  const auto min_end = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                          std::chrono::duration<double>(min_seconds));
  std::atomic<int> next{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      auto client = MakeClient(url, 10);
      for (int i = next++; (i < count || Clock::now() < min_end) && i < 100 * count &&
                           Clock::now() < deadline && !Stopping();
           i = next++) {
        per_request(i, client.get());
      }
    });
  }
  for (auto& t : pool) t.join();
}

int RunAbuse(const AbuseOptions& o) {
  const Url url = ParseUrl(o.url);
  GoodProducers good(o, url);
  int phase = 0;
  auto report = [&](const std::string& name, double seconds, AbuseTally* tally, Json extra) {
    Json line = {{"mode", "abuse"}, {"phase", name}, {"seconds", std::round(seconds * 10) / 10}};
    line["good_new_connection"] = good.Figures(phase, false);
    line["good_keep_alive"] = good.Figures(phase, true);
    if (tally != nullptr) {
      Json statuses = Json::object();
      int64_t bad = 0, total = 0;
      for (auto& [status, n] : tally->statuses) {
        const std::string name_of = status == 0    ? "closed"
                                    : status == -1 ? "no answer in time"
                                                   : std::to_string(status);
        statuses[name_of] = n;
        total += n;
        // Abusive requests must get a 4xx or a closed connection.
        if (!(status == 0 || (status >= 400 && status < 500))) bad += n;
      }
      line["abusive_requests"] = total;
      line["abusive_answers"] = statuses;
      line["abusive_not_4xx_or_closed"] = bad;
      line["connect_failures"] = tally->connect_failures;
    }
    line["healthz_after"] = HealthStatus(url);
    line.update(MemoryOf(o.sendq_pid));
    line.update(extra);
    std::printf("%s\n", line.dump().c_str());
    std::fflush(stdout);
    std::fprintf(stderr, "phase %s done\n", name.c_str());
    ++phase;
    good.SetPhase(phase);
  };
  auto seconds_since = [](Clock::time_point t) { return MsSince(t) / 1000; };

  // Quiet: the reference figures.
  auto t0 = Clock::now();
  PauseUntil(t0 + milliseconds(static_cast<int64_t>(o.quiet_seconds * 1000)));
  report("quiet", seconds_since(t0), nullptr, Json::object());

  // (a) Idle connections: each sends the start of a request, then one more header line every
  // 2 s (well inside sendq's 10 s read timeout), and never finishes.
  {
    AbuseTally tally;
    double slowest_connect_ms = 0;
    int64_t slow_connects = 0;
    auto start = Clock::now();
    std::vector<std::unique_ptr<RawConn>> conns;
    for (int i = 0; i < o.idle_connections && !Stopping(); ++i) {
      const auto connect_start = Clock::now();
      auto c = std::make_unique<RawConn>(url, 3000);
      const double connect_ms = MsSince(connect_start);
      slowest_connect_ms = std::max(slowest_connect_ms, connect_ms);
      // A connect that takes a second or more had its SYN dropped and retransmitted: the
      // listen queue was full.
      if (connect_ms >= 900) ++slow_connects;
      if (!c->ok() || !c->Send("POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\n", 1000)) {
        ++tally.connect_failures;
        continue;
      }
      conns.push_back(std::move(c));
    }
    const double open_ms = MsSince(start);
    const auto end = start + milliseconds(static_cast<int64_t>(o.idle_seconds * 1000));
    int line_no = 0;
    while (Clock::now() < end && !Stopping()) {
      PauseUntil(std::min(end, Clock::now() + milliseconds(2000)));
      ++line_no;
      for (auto& c : conns) {
        if (c) c->Send("X-Slow-" + std::to_string(line_no) + ": 1\r\n", 100);
      }
    }
    int64_t closed_by_server = 0;
    for (auto& c : conns) {
      if (c->PeerClosed()) ++closed_by_server;
    }
    const int held = static_cast<int>(conns.size());
    conns.clear();
    report("a. " + std::to_string(o.idle_connections) + " idle connections (slowloris)",
           seconds_since(start), nullptr,
           {{"idle_connections_opened", held},
            {"ms_to_open", std::round(open_ms)},
            {"slowest_connect_ms", std::round(slowest_connect_ms)},
            {"connects_over_900_ms", slow_connects},
            {"connect_failures", tally.connect_failures},
            {"closed_by_server_while_held", closed_by_server}});
  }

  // (b) Oversized headers.
  {
    AbuseTally tally;
    auto start = Clock::now();
    const std::string big(static_cast<size_t>(o.big_header_kb) * 1024, 'a');
    Parallel(
        4, o.big_header_requests, 5, 60,
        [&](int, httplib::Client*) {
          RawConn c(url, 3000);
          if (!c.ok()) return tally.CountConnectFailure();
          const std::string body = R"({"agent_id":"a","to_number":"+14155552671","body":"x"})";
          std::string req =
              "POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + o.token +
              "\r\nX-Big: " + big + "\r\nContent-Type: application/json\r\nContent-Length: " +
              std::to_string(body.size()) + "\r\n\r\n" + body;
          // A server that refuses early closes while we still write: that counts as closed.
          c.Send(req, 5000);
          tally.Add(c.ReadStatus(15000));
        },
        url);
    report("b. " + std::to_string(o.big_header_kb) + " KB header", seconds_since(start), &tally,
           Json::object());
  }

  // (c) Invalid UTF-8 in JSON bodies (and in the Idempotency-Key header).
  {
    AbuseTally tally;
    auto start = Clock::now();
    const std::vector<std::string> bodies = {
        "{\"agent_id\":\"agent_1\",\"to_number\":\"+14155552671\",\"body\":\"\xff\xfe bad\"}",
        "{\"agent_id\":\"agent_1\",\"to_number\":\"+14155552671\",\"body\":\"\xc0\xaf overlong\"}",
        "{\"agent_id\":\"agent_1\",\"to_number\":\"+14155552671\",\"body\":\"\x80 lone\"}",
        "{\"agent_id\":\"agent_1\",\"to_number\":\"+14155552671\",\"body\":\"\xed\xa0\x80 surr\"}",
        "{\"agent_id\":\"agent_1\",\"to_number\":\"+14155552671\",\"body\":\"trunc \xe2\x82\"}",
        "{\"\xff\":1,\"agent_id\":\"agent_1\",\"to_number\":\"+14155552671\",\"body\":\"k\"}",
        "{\"agent_id\":\"agent_1\",\"to_number\":\"+14155552671\",\"body\":\"ok\"}\xff",
    };
    const std::string valid = R"({"agent_id":"a","to_number":"+14155552671","body":"x"})";
    Parallel(
        4, o.bad_utf8_requests, 5, 60,
        [&](int i, httplib::Client* client) {
          httplib::Headers headers = AuthHeaders(o.token);
          const bool bad_key = i % 8 == 7;
          if (bad_key) headers.emplace("Idempotency-Key", "key-\xff\xfe");
          const std::string& body =
              bad_key ? valid : bodies[static_cast<size_t>(i) % bodies.size()];
          auto res = client->Post("/v1/messages", headers, body, "application/json");
          tally.Add(res ? res->status : 0);
        },
        url);
    report("c. invalid UTF-8 in JSON bodies", seconds_since(start), &tally, Json::object());
  }

  // (d) Truncated bodies: Content-Length larger than what is sent, then the client stops
  // sending (shutdown of its write side) and waits for an answer or a close.
  {
    AbuseTally tally;
    auto start = Clock::now();
    Parallel(
        4, o.truncated_requests, 5, 60,
        [&](int, httplib::Client*) {
          RawConn c(url, 3000);
          if (!c.ok()) return tally.CountConnectFailure();
          const std::string part = R"({"agent_id":"agent_1","to_number":"+14155552671","bo)";
          c.Send("POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " +
                 o.token + "\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n" +
                 part);
          c.ShutdownWrite();
          tally.Add(c.ReadStatus(15000));
        },
        url);
    report("d. truncated bodies", seconds_since(start), &tally, Json::object());
  }

  // (e) A flood of invalid JSON from several keep-alive connections.
  {
    AbuseTally tally;
    auto start = Clock::now();
    Parallel(
        o.flood_connections, o.flood_requests, 0, 120,
        [&](int i, httplib::Client* client) {
          const std::string body = i % 2 == 0 ? std::string("{\"agent_id\": \"a\", \"to_number\":")
                                              : std::string("not json at all ") + std::to_string(i);
          auto res = client->Post("/v1/messages", AuthHeaders(o.token), body, "application/json");
          tally.Add(res ? res->status : 0);
        },
        url);
    const double secs = seconds_since(start);
    report("e. flood of " + std::to_string(o.flood_requests) + " invalid JSON posts, " +
               std::to_string(o.flood_connections) + " connections",
           secs, &tally, {{"flood_per_s", std::round(o.flood_requests / secs)}});
  }

  // (f) Header floods without a token: line after line of headers that never end, each
  // connection up to header_flood_mb, until sendq refuses and closes.
  {
    AbuseTally tally;
    auto start = Clock::now();
    std::string slice;
    for (int i = 0; i < 10'000; ++i) slice += "X-Flood: " + std::string(89, 'a') + "\r\n";
    Parallel(
        o.header_flood_connections, o.header_flood_connections, 5, 60,
        [&](int, httplib::Client*) {
          RawConn c(url, 3000);
          if (!c.ok()) return tally.CountConnectFailure();
          bool open = c.Send("POST /v1/messages/batch HTTP/1.1\r\nHost: 127.0.0.1\r\n");
          for (int mb = 0; open && mb < o.header_flood_mb && !Stopping(); ++mb) {
            open = c.Send(slice, 5000);
          }
          tally.Add(c.ReadStatus(15000));
        },
        url);
    report("f. header flood without a token, " + std::to_string(o.header_flood_connections) +
               " connections of up to " + std::to_string(o.header_flood_mb) + " MB",
           seconds_since(start), &tally, Json::object());
  }

  // (g) Big bodies without a token: every connection declares big_body_mb and sends it.
  {
    AbuseTally tally;
    auto start = Clock::now();
    const std::string mb(1 << 20, 'x');
    Parallel(
        32, o.big_body_connections, 5, 120,
        [&](int, httplib::Client*) {
          RawConn c(url, 3000);
          if (!c.ok()) return tally.CountConnectFailure();
          bool open = c.Send(
              "POST /v1/messages/batch HTTP/1.1\r\nHost: 127.0.0.1\r\n"
              "Content-Type: application/json\r\nContent-Length: " +
              std::to_string(static_cast<int64_t>(o.big_body_mb) << 20) + "\r\n\r\n");
          for (int i = 0; open && i < o.big_body_mb && !Stopping(); ++i) open = c.Send(mb, 5000);
          tally.Add(c.ReadStatus(15000));
        },
        url);
    report("g. " + std::to_string(o.big_body_connections) + " unauthenticated " +
               std::to_string(o.big_body_mb) + " MB bodies",
           seconds_since(start), &tally, Json::object());
  }

  // (h) Long polls from another producer, all open at once, beside the good producer.
  if (!o.poll_token.empty()) {
    auto start = Clock::now();
    auto client = MakeClient(url, 10);
    auto res = client->Post("/v1/messages", AuthHeaders(o.poll_token),
                            R"({"agent_id":"agent_1","to_number":"+14155552671","body":"p"})",
                            "application/json");
    const std::string id =
        res && res->status == 202 ? Json::parse(res->body).value("id", "") : std::string();
    // A version it will never reach: each poll waits its full minute.
    const std::string request = "GET /v1/messages/" + id +
                                "?wait=60s&after_version=999999999 HTTP/1.1\r\nHost: "
                                "127.0.0.1\r\nAuthorization: Bearer " +
                                o.poll_token + "\r\n\r\n";
    std::vector<std::unique_ptr<RawConn>> polls;
    int64_t failures = 0;
    for (int i = 0; i < o.long_polls && !Stopping(); ++i) {
      auto c = std::make_unique<RawConn>(url, 3000);
      if (!c->ok() || !c->Send(request, 1000)) {
        ++failures;
        continue;
      }
      polls.push_back(std::move(c));
    }
    PauseUntil(start + milliseconds(static_cast<int64_t>(o.long_poll_seconds * 1000)));
    int64_t answered_early = 0;
    for (auto& c : polls) {
      if (c->PeerClosed()) ++answered_early;
    }
    const int64_t held = static_cast<int64_t>(polls.size());
    Json memory = MemoryOf(o.sendq_pid);  // while they are all open
    polls.clear();
    Json extra = {{"long_polls_open", held},
                  {"long_poll_failures", failures},
                  {"long_polls_closed_early", answered_early}};
    if (memory.contains("sendq_rss_mb")) extra["sendq_rss_mb_while_open"] = memory["sendq_rss_mb"];
    report("h. " + std::to_string(o.long_polls) + " long polls from another producer",
           seconds_since(start), nullptr, extra);
  }

  // (i) Pipelining: each connection sends its requests in one write and reads every answer.
  {
    AbuseTally tally;
    auto start = Clock::now();
    const std::string body = R"({"agent_id":"agent_1","to_number":"+14155552671","body":"pipe"})";
    std::string one =
        "POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + o.token +
        "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
        "\r\n\r\n" + body;
    std::string all;
    for (int i = 0; i < o.pipelined_requests; ++i) all += one;
    std::atomic<int64_t> answered{0};
    Parallel(
        8, o.pipelined_connections, 0, 60,
        [&](int, httplib::Client*) {
          RawConn c(url, 3000);
          if (!c.ok() || !c.Send(all, 5000)) return tally.CountConnectFailure();
          for (int i = 0; i < o.pipelined_requests; ++i) {
            const int status = c.ReadStatus(15000);
            tally.Add(status);
            if (status == 202) ++answered;
            if (status <= 0) break;
          }
        },
        url);
    report("i. " + std::to_string(o.pipelined_connections) + " connections of " +
               std::to_string(o.pipelined_requests) + " pipelined enqueues",
           seconds_since(start), nullptr,
           {{"pipelined_sent", o.pipelined_connections * o.pipelined_requests},
            {"pipelined_answered_202", answered.load()}});
  }

  // Quiet again: does everything come back?
  t0 = Clock::now();
  PauseUntil(t0 + milliseconds(static_cast<int64_t>(o.quiet_seconds * 1000)));
  report("quiet after", seconds_since(t0), nullptr, Json::object());
  good.Stop();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"chaos-driver: clients and checkers for tools/chaos/run"};
  app.require_subcommand(1);

  ProduceOptions produce;
  CLI::App* p = app.add_subcommand("produce", "paced producers that survive sendq restarts");
  p->add_option("--url", produce.url)->required();
  p->add_option("--token", produce.token)->required();
  p->add_option("--out", produce.out)->required();
  p->add_option("--prefix", produce.prefix);
  p->add_option("--producers", produce.producers)->check(CLI::Range(1, 256));
  p->add_option("--rate", produce.rate, "messages/s per producer")->check(CLI::Range(0.1, 1e5));
  p->add_option("--max-per-producer", produce.max_per_producer);
  p->add_option("--max-seconds", produce.max_seconds);
  p->add_option("--answer-seconds", produce.answer_seconds);
  p->add_option("--replay-every", produce.replay_every);

  DrainOptions drain;
  CLI::App* d = app.add_subcommand("drain", "long-poll every acknowledged id until final");
  d->add_option("--url", drain.url)->required();
  d->add_option("--token", drain.token)->required();
  d->add_option("--acked", drain.acked)->required();
  d->add_option("--threads", drain.threads)->check(CLI::Range(1, 256));
  d->add_option("--max-seconds", drain.max_seconds);
  d->add_flag("--replay", drain.replay, "POST every key again and compare the ids");

  CheckOptions check;
  CLI::App* c = app.add_subcommand("check", "count the invariants on a stopped database");
  c->add_option("--db", check.db)->required();
  c->add_option("--acked", check.acked)->required();
  c->add_option("--fake", check.fake, "the fake AgentPhone's URL");

  FillOptions fill;
  CLI::App* f = app.add_subcommand("fill", "enqueue until 507");
  f->add_option("--url", fill.url)->required();
  f->add_option("--token", fill.token)->required();
  f->add_option("--out", fill.out)->required();
  f->add_option("--prefix", fill.prefix);
  f->add_option("--connections", fill.connections)->check(CLI::Range(1, 64));
  f->add_option("--max", fill.max);
  f->add_option("--max-seconds", fill.max_seconds);

  AbuseOptions abuse;
  CLI::App* a = app.add_subcommand("abuse", "abusive clients beside a good producer");
  a->add_option("--url", abuse.url)->required();
  a->add_option("--token", abuse.token)->required();
  a->add_option("--good-rate", abuse.good_rate)->check(CLI::Range(1.0, 1000.0));
  a->add_option("--quiet-seconds", abuse.quiet_seconds);
  a->add_option("--idle-connections", abuse.idle_connections)->check(CLI::Range(0, 5000));
  a->add_option("--idle-seconds", abuse.idle_seconds);
  a->add_option("--big-header-requests", abuse.big_header_requests);
  a->add_option("--big-header-kb", abuse.big_header_kb);
  a->add_option("--bad-utf8-requests", abuse.bad_utf8_requests);
  a->add_option("--truncated-requests", abuse.truncated_requests);
  a->add_option("--flood-requests", abuse.flood_requests);
  a->add_option("--flood-connections", abuse.flood_connections)->check(CLI::Range(1, 256));
  a->add_option("--header-flood-connections", abuse.header_flood_connections)
      ->check(CLI::Range(1, 256));
  a->add_option("--header-flood-mb", abuse.header_flood_mb)->check(CLI::Range(1, 1024));
  a->add_option("--big-body-connections", abuse.big_body_connections)->check(CLI::Range(0, 5000));
  a->add_option("--big-body-mb", abuse.big_body_mb)->check(CLI::Range(1, 64));
  a->add_option("--poll-token", abuse.poll_token, "a second producer's token (long-poll flood)");
  a->add_option("--long-polls", abuse.long_polls)->check(CLI::Range(0, 20000));
  a->add_option("--long-poll-seconds", abuse.long_poll_seconds);
  a->add_option("--pipelined-connections", abuse.pipelined_connections)->check(CLI::Range(1, 1000));
  a->add_option("--pipelined-requests", abuse.pipelined_requests)->check(CLI::Range(1, 1000));
  a->add_option("--sendq-pid", abuse.sendq_pid, "report this process's memory per phase");

  CLI11_PARSE(app, argc, argv);
  StartStopSignalThread();
  try {
    if (*p) return RunProduce(produce);
    if (*d) return RunDrain(drain);
    if (*c) return RunCheck(check);
    if (*f) return RunFill(fill);
    if (*a) return RunAbuse(abuse);
  } catch (const std::exception& e) {
    std::printf("%s\n", Json({{"error", e.what()}}).dump().c_str());
    return 1;
  }
  return 2;
}
