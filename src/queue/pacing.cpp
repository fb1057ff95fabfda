#include "queue/pacing.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <fstream>

namespace sendq {
namespace {

// Senders remembered at most; beyond it, idle ones are forgotten (a full bucket is the same as
// a fresh one).
constexpr size_t kMaxTrackedSenders = 100'000;

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

Result<double> ParsePositive(std::string_view text, std::string_view what) {
  std::string s(Trim(text));
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (s.empty() || end != s.c_str() + s.size() || !(v > 0) || !std::isfinite(v) || v > 1e9) {
    return Status::InvalidArgument(
        fmt::format("{} must be a positive number, not \"{}\"", what, s));
  }
  return v;
}

}  // namespace

Result<Rate> ParseRate(std::string_view text) {
  text = Trim(text);
  const std::string_view rate_text = text.substr(0, text.find(':'));
  const size_t slash = rate_text.find('/');
  if (slash == std::string_view::npos) {
    return Status::InvalidArgument(
        fmt::format("a rate is COUNT/s, COUNT/m or COUNT/h (optionally :BURST), not \"{}\"", text));
  }
  Result<double> count = ParsePositive(rate_text.substr(0, slash), "a rate's count");
  if (!count.ok()) return count.status();
  const std::string_view unit = Trim(rate_text.substr(slash + 1));
  double seconds = 0;
  if (unit == "s") {
    seconds = 1;
  } else if (unit == "m") {
    seconds = 60;
  } else if (unit == "h") {
    seconds = 3600;
  } else {
    return Status::InvalidArgument(
        fmt::format("a rate's unit is s, m or h, not \"{}\" (in \"{}\")", unit, text));
  }
  Rate rate;
  rate.per_second = *count / seconds;
  rate.burst = std::max(1.0, std::floor(rate.per_second));
  if (const size_t colon = text.find(':'); colon != std::string_view::npos) {
    Result<double> burst = ParsePositive(text.substr(colon + 1), "a burst");
    if (!burst.ok()) return burst.status();
    rate.burst = std::max(1.0, std::floor(*burst));
  }
  return rate;
}

Result<std::map<std::string, Rate>> ParseSenderLimits(const std::string& text) {
  std::string entries = text;
  if (!text.empty() && text[0] == '@') {
    std::ifstream in(text.substr(1));
    if (!in) return Status::InvalidArgument(fmt::format("cannot read {}", text.substr(1)));
    entries.clear();
    std::string line;
    while (std::getline(in, line)) {
      const std::string_view trimmed = Trim(line);
      if (trimmed.empty() || trimmed[0] == '#') continue;
      entries += std::string(trimmed) + ",";
    }
  }
  std::map<std::string, Rate> out;
  size_t start = 0;
  while (start <= entries.size()) {
    size_t comma = entries.find(',', start);
    if (comma == std::string::npos) comma = entries.size();
    const std::string_view entry = Trim(std::string_view(entries).substr(start, comma - start));
    start = comma + 1;
    if (entry.empty()) continue;
    const size_t eq = entry.find('=');
    if (eq == std::string_view::npos || eq == 0) {
      return Status::InvalidArgument(
          fmt::format("a sender limit is SENDER=RATE[:BURST], not \"{}\"", entry));
    }
    Result<Rate> rate = ParseRate(entry.substr(eq + 1));
    if (!rate.ok()) return rate.status();
    out[std::string(Trim(entry.substr(0, eq)))] = *rate;
  }
  return out;
}

namespace {

// GCRA: a send at `t` is allowed when t >= next_free - tolerance, where tolerance lets a full
// bucket of `burst` sends through at once.
double Interval(const Rate& rate) { return 1000.0 / rate.per_second; }
double Tolerance(const Rate& rate) { return (rate.burst - 1.0) * Interval(rate); }

TimeMs EarliestSlot(double next_free, const Rate& rate, TimeMs now) {
  return std::max<TimeMs>(now, static_cast<TimeMs>(std::ceil(next_free - Tolerance(rate))));
}

void Spend(double& next_free, const Rate& rate, TimeMs slot) {
  next_free = std::max(next_free, static_cast<double>(slot)) + Interval(rate);
}

}  // namespace

Pacer::Pacer(Options options) : options_(std::move(options)) {}

std::optional<Rate> Pacer::RateFor(const std::string& sender) const {
  if (auto it = options_.sender_limits.find(sender); it != options_.sender_limits.end()) {
    return it->second;
  }
  return options_.sender_rate;
}

TimeMs Pacer::Book(const std::string& sender, TimeMs now) {
  const std::optional<Rate> rate = RateFor(sender);
  MutexLock guard(&mu_);
  auto it = senders_.find(sender);
  if (it == senders_.end() && rate) {
    if (senders_.size() >= kMaxTrackedSenders) ForgetIdleLocked(now);
    it = senders_.emplace(sender, SenderState{}).first;
  }
  TimeMs slot = now;
  if (it != senders_.end()) {
    slot = std::max(slot, it->second.paused_until);
    if (rate) slot = std::max(slot, EarliestSlot(it->second.next_free, *rate, now));
  }
  if (options_.upstream_rate) {
    slot = std::max(slot, EarliestSlot(account_next_free_, *options_.upstream_rate, now));
    Spend(account_next_free_, *options_.upstream_rate, slot);
  }
  if (it != senders_.end() && rate) Spend(it->second.next_free, *rate, slot);
  return slot;
}

TimeMs Pacer::PausedUntil(const std::string& sender, TimeMs now) {
  MutexLock guard(&mu_);
  auto it = senders_.find(sender);
  return it == senders_.end() ? now : std::max(now, it->second.paused_until);
}

void Pacer::PauseSender(const std::string& sender, TimeMs until) {
  MutexLock guard(&mu_);
  SenderState& state = senders_[sender];
  state.paused_until = std::max(state.paused_until, until);
}

void Pacer::ForgetIdleLocked(TimeMs now) {
  for (auto it = senders_.begin(); it != senders_.end();) {
    const bool idle = it->second.next_free <= now && it->second.paused_until <= now;
    it = idle ? senders_.erase(it) : std::next(it);
  }
}

}  // namespace sendq
