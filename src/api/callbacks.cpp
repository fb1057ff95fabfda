#include "api/callbacks.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <httplib.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <random>

#include "api/records.h"
#include "util/hmac.h"
#include "util/log.h"
#include "util/process.h"

namespace sendq::api {
namespace {

// How long a try holds its delivery beyond its timeout: past it (a hung thread), the delivery
// is due again. A restart voids the leases of the process before it at once.
constexpr DurationMs kLeaseBeyondTimeout = 5'000;
// Without news from the store, the deliverer looks again this often.
constexpr DurationMs kIdleWait = 5'000;

struct ParsedUrl {
  std::string origin;  // scheme://host[:port]
  std::string host;
  std::string path;  // "/..." with the query
  bool https = false;
};

std::optional<ParsedUrl> ParseUrl(const std::string& url) {
  ParsedUrl p;
  size_t rest = 0;
  if (url.starts_with("https://")) {
    p.https = true;
    rest = 8;
  } else if (url.starts_with("http://")) {
    rest = 7;
  } else {
    return std::nullopt;
  }
  const size_t path_start = url.find_first_of("/?#", rest);
  const std::string authority =
      url.substr(rest, path_start == std::string::npos ? std::string::npos : path_start - rest);
  if (authority.empty()) return std::nullopt;
  p.origin = url.substr(0, rest) + authority;
  p.path = path_start == std::string::npos ? "/" : url.substr(path_start);
  if (p.path.front() != '/') p.path = "/" + p.path;
  if (const size_t hash = p.path.find('#'); hash != std::string::npos) p.path.resize(hash);
  if (authority.front() == '[') {
    const size_t close = authority.find(']');
    if (close == std::string::npos) return std::nullopt;
    p.host = authority.substr(1, close - 1);
  } else {
    p.host = authority.substr(0, authority.find(':'));
  }
  if (p.host.empty()) return std::nullopt;
  return p;
}

bool IsInternal(const sockaddr* addr) {
  if (addr->sa_family == AF_INET) {
    const uint32_t a = ntohl(reinterpret_cast<const sockaddr_in*>(addr)->sin_addr.s_addr);
    auto in = [&](uint32_t net, int bits) {
      return bits == 0 || (a >> (32 - bits)) == (net >> (32 - bits));
    };
    return in(0x00000000, 8) || in(0x0A000000, 8) || in(0x64400000, 10) || in(0x7F000000, 8) ||
           in(0xA9FE0000, 16) || in(0xAC100000, 12) || in(0xC0A80000, 16) || in(0xC6120000, 15) ||
           a >= 0xE0000000;
  }
  if (addr->sa_family == AF_INET6) {
    const in6_addr& a = reinterpret_cast<const sockaddr_in6*>(addr)->sin6_addr;
    if (IN6_IS_ADDR_V4MAPPED(&a)) {
      sockaddr_in v4{};
      v4.sin_family = AF_INET;
      std::memcpy(&v4.sin_addr, &a.s6_addr[12], 4);
      return IsInternal(reinterpret_cast<const sockaddr*>(&v4));
    }
    return IN6_IS_ADDR_LOOPBACK(&a) || IN6_IS_ADDR_UNSPECIFIED(&a) || IN6_IS_ADDR_LINKLOCAL(&a) ||
           IN6_IS_ADDR_SITELOCAL(&a) || IN6_IS_ADDR_MULTICAST(&a) || (a.s6_addr[0] & 0xFE) == 0xFC;
  }
  return true;
}

}  // namespace

std::string CallbackUrlProblem(const std::string& url, bool allow_http, bool allow_private) {
  std::optional<ParsedUrl> p = ParseUrl(url);
  if (!p) return "not an http(s) URL with a host";
  if (!p->https && !allow_http) {
    return "must be https (sendq allows http only with --allow-http-callbacks)";
  }
  if (allow_private) return "";
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (int rc = getaddrinfo(p->host.c_str(), nullptr, &hints, &found); rc != 0) {
    return fmt::format("its host does not resolve ({})", gai_strerror(rc));
  }
  bool internal = false;
  for (addrinfo* ai = found; ai != nullptr; ai = ai->ai_next) internal |= IsInternal(ai->ai_addr);
  freeaddrinfo(found);
  if (internal) {
    return "its host resolves to a loopback or private address (sendq allows that only with "
           "--allow-private-callbacks)";
  }
  return "";
}

std::string WebhookSecret(const std::string& key, const std::string& webhook_id) {
  return "whsec_" + HmacSha256Hex(key, "webhook:" + webhook_id);
}

std::string ProducerCallbackSecret(const std::string& key, const std::string& producer) {
  return "whsec_" + HmacSha256Hex(key, "producer:" + producer);
}

std::string CallbackSignature(const std::string& secret, const std::string& timestamp,
                              const std::string& body) {
  return "sha256=" + HmacSha256Hex(secret, timestamp + "." + body);
}

CallbackDeliverer::CallbackDeliverer(store::Store* store, Clock* clock, CallbackOptions options)
    : store_(store), clock_(clock), options_(std::move(options)) {}

CallbackDeliverer::~CallbackDeliverer() { Stop(); }

void CallbackDeliverer::Start() {
  subscription_ = store_->Subscribe([this](const store::Changes& changes) {
    if (!changes.callbacks_added) return;
    {
      MutexLock guard(&mu_);
      ++added_;
    }
    cv_.notify_all();
  });
  for (int i = 0; i < options_.threads; ++i) {
    threads_.emplace_back([this] {
      NameThisThread("sendq-callback");
      Loop();
    });
  }
}

void CallbackDeliverer::Stop() {
  subscription_.reset();
  {
    MutexLock guard(&mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (std::thread& t : threads_) t.join();
  threads_.clear();
}

void CallbackDeliverer::Loop() {
  for (;;) {
    uint64_t seen = 0;
    {
      MutexLock guard(&mu_);
      if (stopping_) return;
      seen = added_;
    }
    const TimeMs now = clock_->NowMs();
    Result<std::vector<store::CallbackDelivery>> claimed =
        store_->ClaimCallbacks(now, 1, options_.timeout + kLeaseBeyondTimeout);
    if (claimed.ok() && !claimed->empty()) {
      for (const store::CallbackDelivery& d : *claimed) Deliver(d);
      continue;
    }
    TimeMs until = now + kIdleWait;
    if (!claimed.ok()) {
      log::Error("callback_claim_failed", {{"error", claimed.status().ToString()}});
    } else if (Result<std::optional<TimeMs>> next = store_->NextCallbackAt(); next.ok() && *next) {
      until = std::clamp(**next, now, until);
    }
    MutexLock lock(&mu_);
    clock_->WaitUntil(cv_, lock.native(), until,
                      [&]() REQUIRES(mu_) { return stopping_ || added_ != seen; });
  }
}

void CallbackDeliverer::Deliver(const store::CallbackDelivery& d) {
  store::CallbackTry attempt;
  attempt.number = d.attempts + 1;
  attempt.started_at = clock_->NowMs();
  bool delivered = false;
  std::string problem = CallbackUrlProblem(d.url, options_.allow_http, options_.allow_private);
  Result<Message> message = store_->Get(d.producer, d.message_id);
  std::optional<ParsedUrl> url = ParseUrl(d.url);
  if (problem.empty() && !message.ok())
    problem = "reading the message: " + message.status().ToString();
  if (problem.empty() && url) {
    const std::string body = MessageRecord(*message).dump();
    const std::string timestamp = std::to_string(attempt.started_at / 1000);
    const std::string secret = d.webhook_id ? WebhookSecret(options_.key, *d.webhook_id)
                                            : ProducerCallbackSecret(options_.key, d.producer);
    httplib::Client client(url->origin);
    client.set_tcp_nodelay(true);
    const DurationMs t = options_.timeout;
    client.set_connection_timeout(t / 1000, (t % 1000) * 1000);
    client.set_read_timeout(t / 1000, (t % 1000) * 1000);
    client.set_write_timeout(t / 1000, (t % 1000) * 1000);
    httplib::Headers headers = {{"User-Agent", "sendq/1.0"},
                                {"X-Sendq-Signature", CallbackSignature(secret, timestamp, body)},
                                {"X-Sendq-Timestamp", timestamp},
                                {"X-Sendq-Event-Id", d.event_id},
                                {"X-Sendq-Event", d.event}};
    httplib::Result result = client.Post(url->path, headers, body, "application/json");
    if (result) {
      attempt.http_status = result->status;
      delivered = result->status >= 200 && result->status < 300;
      if (!delivered) attempt.error = fmt::format("the endpoint answered {}", result->status);
    } else {
      attempt.error = "no answer: " + httplib::to_string(result.error());
    }
  } else {
    attempt.error = problem.empty() ? "not an http(s) URL" : problem;
  }
  attempt.finished_at = clock_->NowMs();
  std::optional<TimeMs> next;
  if (!delivered) {
    // Full jitter over a doubling step, from 1 s up to max_backoff.
    const DurationMs step =
        std::min<DurationMs>(options_.max_backoff, 1000LL << std::min(attempt.number - 1, 22));
    thread_local std::mt19937_64 rng(std::random_device{}());
    const DurationMs delay = std::uniform_int_distribution<DurationMs>(step / 2, step)(rng);
    if (attempt.finished_at + delay < d.created_at + options_.give_up_after) {
      next = attempt.finished_at + delay;
    }
  }
  if (Status st = store_->RecordCallback(d.outbox_id, attempt, delivered, next); !st.ok()) {
    log::Error("callback_record_failed", {{"event_id", d.event_id}, {"error", st.ToString()}});
  }
  log::Info(delivered ? "callback_delivered" : "callback_failed",
            {{"event_id", d.event_id},
             {"event", d.event},
             {"message_id", d.message_id},
             {"attempt", attempt.number},
             {"http_status",
              attempt.http_status ? nlohmann::json(*attempt.http_status) : nlohmann::json(nullptr)},
             {"given_up", !delivered && !next}});
}

}  // namespace sendq::api
