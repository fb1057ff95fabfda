#include "delivery/maintenance.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>

#include "util/hmac.h"
#include "util/log.h"
#include "util/process.h"

namespace sendq::delivery {

BatchSizer::BatchSizer(int min_batch, int max_batch, int64_t budget_us)
    : min_batch_(min_batch),
      max_batch_(max_batch),
      budget_us_(budget_us),
      size_(std::clamp(50, min_batch, max_batch)) {}

void BatchSizer::Record(int64_t taken, int64_t elapsed_us) {
  elapsed_us = std::max<int64_t>(elapsed_us, 1);
  const bool full = taken >= size_;
  if (!full && elapsed_us <= budget_us_) return;
  const int64_t ideal = static_cast<int64_t>(size_) * budget_us_ / elapsed_us;
  int64_t next = std::clamp<int64_t>(ideal, std::max(size_ / 2, 1), int64_t{size_} * 2);
  if (!full) next = std::min<int64_t>(next, size_);
  size_ = static_cast<int>(std::clamp<int64_t>(next, min_batch_, max_batch_));
}

DurationMs PauseAfterBatch(int64_t elapsed_us, DurationMs min_pause) {
  return std::max<DurationMs>(min_pause, 3 * elapsed_us / 1000);
}

Maintenance::Maintenance(store::Store* store, Clock* clock, MaintenanceOptions options)
    : store_(store),
      clock_(clock),
      options_(std::move(options)),
      delete_batches_(options_.min_batch, options_.max_batch, options_.batch_budget_us),
      redact_batches_(options_.min_batch, options_.max_batch, options_.batch_budget_us) {}

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

Status Maintenance::RunBatches(BatchSizer& batches, std::atomic<int64_t>& total, int64_t* done,
                               const Step& step) {
  for (;;) {
    const auto started = std::chrono::steady_clock::now();
    Result<store::MaintenanceStep> result = step(batches.size());
    if (!result.ok()) return result.status();
    // The whole round trip: the step, the commit it joined, and the wait for the writer. Under
    // load the wait grows, and so maintenance gives way to producers until it is quieter.
    const int64_t elapsed_us = std::chrono::duration_cast<std::chrono::microseconds>(
                                   std::chrono::steady_clock::now() - started)
                                   .count();
    batches.Record(result->looked_at, elapsed_us);
    *done += result->messages;
    total += result->messages;
    if (!result->more) return Status::Ok();
    std::unique_lock<std::mutex> lock(mu_);
    clock_->WaitUntil(cv_, lock, clock_->NowMs() + PauseAfterBatch(elapsed_us, options_.min_pause),
                      [&] { return stopping_; });
    if (stopping_) return Status::Ok();
  }
}

bool Maintenance::Stopping() {
  std::lock_guard<std::mutex> lock(mu_);
  return stopping_;
}

Status Maintenance::RunPass() {
  // One time for the whole pass: cutoffs that moved on with the clock could keep a pass going
  // for as long as new messages come of age.
  const TimeMs now = clock_->NowMs();
  int64_t deleted = 0;
  int64_t redacted = 0;
  Status st;
  if (options_.retain > 0) {
    st = RunBatches(delete_batches_, deleted_, &deleted, [&](int limit) {
      return store_->DeleteFinalBefore(now - options_.retain, limit);
    });
  }
  if (st.ok() && options_.redact_after > 0 && !Stopping()) {
    const std::string& key = options_.recipient_key;
    const store::RecipientRedactor redactor = [&key](const std::string& number) {
      return RedactedRecipient(key, number);
    };
    std::string after;  // where the next step goes on
    st = RunBatches(redact_batches_, redacted_, &redacted, [&](int limit) {
      Result<store::MaintenanceStep> step =
          store_->RedactFinalBefore(now - options_.redact_after, limit, now, redactor, after);
      if (step.ok()) after = step->last_id;
      return step;
    });
  }
  ++passes_;
  if (deleted > 0 || redacted > 0) {
    log::Info("maintenance_pass", {{"deleted", deleted}, {"redacted", redacted}});
  }
  if (redacted > 0) log_holds_redacted_ = true;
  if (!st.ok()) return st;
  if (Stopping()) return Status::Ok();
  if (deleted > 0 || redacted > 0 || log_holds_redacted_) {
    st = store_->ReclaimSpace(options_.vacuum_pages);
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
