#include "delivery/maintenance.h"

#include <fmt/format.h>

#include <algorithm>

#include "util/hmac.h"
#include "util/log.h"
#include "util/process.h"

namespace sendq::delivery {

Maintenance::Maintenance(store::Store* store, Clock* clock, MaintenanceOptions options)
    : store_(store), clock_(clock), options_(std::move(options)) {}

Maintenance::~Maintenance() { Stop(); }

DurationMs Maintenance::Interval() const {
  DurationMs shortest = 0;
  for (DurationMs d : {options_.retain, options_.redact_after}) {
    if (d > 0 && (shortest == 0 || d < shortest)) shortest = d;
  }
  return std::clamp<DurationMs>(shortest / 4, 100, 60'000);
}

void Maintenance::Start() {
  if (options_.retain <= 0 && options_.redact_after <= 0) return;
  thread_ = std::thread([this] {
    NameThisThread("sendq-maintain");
    Loop();
  });
}

void Maintenance::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Maintenance::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    lock.unlock();
    if (Status st = RunPass(); !st.ok()) {
      log::Error("maintenance_failed", {{"error", st.ToString()}});
    }
    lock.lock();
    clock_->WaitUntil(cv_, lock, clock_->NowMs() + Interval(), [&] { return stopping_; });
  }
}

Status Maintenance::RunPass() {
  const auto between_batches = [&] {
    std::unique_lock<std::mutex> lock(mu_);
    clock_->WaitUntil(cv_, lock, clock_->NowMs() + options_.pause_between_batches,
                      [&] { return stopping_; });
    return !stopping_;
  };
  int64_t deleted = 0;
  int64_t redacted = 0;
  if (options_.retain > 0) {
    for (;;) {
      const TimeMs now = clock_->NowMs();
      Result<store::MaintenanceStep> step =
          store_->DeleteFinalBefore(now - options_.retain, options_.batch);
      if (!step.ok()) return step.status();
      deleted += step->messages;
      deleted_ += step->messages;
      if (!step->more || !between_batches()) break;
    }
  }
  if (options_.redact_after > 0) {
    const std::string& key = options_.recipient_key;
    const store::RecipientRedactor redactor = [&key](const std::string& number) {
      return RedactedRecipient(key, number);
    };
    for (;;) {
      const TimeMs now = clock_->NowMs();
      Result<store::MaintenanceStep> step =
          store_->RedactFinalBefore(now - options_.redact_after, options_.batch, now, redactor);
      if (!step.ok()) return step.status();
      redacted += step->messages;
      redacted_ += step->messages;
      if (!step->more || !between_batches()) break;
    }
  }
  ++passes_;
  if (deleted > 0 || redacted > 0) {
    log::Info("maintenance_pass", {{"deleted", deleted}, {"redacted", redacted}});
  }
  if (redacted > 0) log_holds_redacted_ = true;
  if (deleted > 0 || redacted > 0 || log_holds_redacted_) {
    Status st = store_->ReclaimSpace(options_.vacuum_pages);
    if (st.ok() && log_holds_redacted_) {
      log_holds_redacted_ = false;
      log::Info("write_ahead_log_emptied", {{"reason", "redacted data is gone from the files"}});
    } else if (!st.ok() && !st.IsUnavailable()) {
      return st;
    }
  }
  return Status::Ok();
}

std::string Maintenance::RenderMetrics() const {
  std::string out;
  out +=
      "# HELP sendq_retention_deleted_total Final messages deleted by --retain since start.\n"
      "# TYPE sendq_retention_deleted_total counter\n";
  out += fmt::format("sendq_retention_deleted_total {}\n", deleted_.load());
  out +=
      "# HELP sendq_redacted_total Final messages redacted by --redact-after since start.\n"
      "# TYPE sendq_redacted_total counter\n";
  out += fmt::format("sendq_redacted_total {}\n", redacted_.load());
  out +=
      "# HELP sendq_maintenance_passes_total Retention and redaction passes since start.\n"
      "# TYPE sendq_maintenance_passes_total counter\n";
  out += fmt::format("sendq_maintenance_passes_total {}\n", passes_.load());
  if (Result<store::SpaceUsage> usage = store_->GetSpaceUsage(); usage.ok()) {
    out +=
        "# HELP sendq_db_size_bytes Size of the database file.\n"
        "# TYPE sendq_db_size_bytes gauge\n";
    out += fmt::format("sendq_db_size_bytes {}\n", usage->bytes);
    out +=
        "# HELP sendq_db_free_bytes Free pages inside the database file, reused before it grows.\n"
        "# TYPE sendq_db_free_bytes gauge\n";
    out += fmt::format("sendq_db_free_bytes {}\n", usage->free_bytes);
  }
  return out;
}

}  // namespace sendq::delivery
