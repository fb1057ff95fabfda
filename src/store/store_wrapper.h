// StoreWrapper: a Store that forwards every call to another. Derive from it to change a few
// calls and keep the rest (FaultyStore below; a metrics or tracing layer).
//
// FaultyStore: a StoreWrapper that fails chosen calls, so that the paths taken when the disk
// is full or a claim fails run in the ordinary test suite.
//
// Thread-safety: as the wrapped store; FaultyStore's switches may be set from any thread.
#pragma once

#include <atomic>
#include <memory>

#include "store/store.h"

namespace sendq::store {

class StoreWrapper : public Store {
 public:
  explicit StoreWrapper(std::unique_ptr<Store> inner)
      : owned_(std::move(inner)), inner_(owned_.get()) {}
  // Wraps a store owned elsewhere, which must outlive the wrapper.
  explicit StoreWrapper(Store* inner) : inner_(inner) {}

  Result<EnqueueResult> Enqueue(const NewMessage& message) override;
  Result<EnqueueResult> EnqueueAndClaim(const NewMessage& message,
                                        const ClaimOptions& claim) override;
  void EnqueueAsync(NewMessage message, std::optional<ClaimOptions> claim,
                    std::function<void(Result<EnqueueResult>)> done) override;
  Result<std::vector<Result<EnqueueResult>>> EnqueueBatch(
      const std::vector<NewMessage>& batch) override;
  Result<Message> Get(const std::string& producer, const std::string& id) override;
  Result<std::vector<Attempt>> ListAttempts(const std::string& producer,
                                            const std::string& id) override;
  Result<ListPage> List(const std::string& producer, const ListFilter& filter) override;
  Result<Message> Cancel(const std::string& producer, const std::string& id, TimeMs now) override;
  Result<Message> Retry(const std::string& producer, const std::string& id, TimeMs now,
                        TimeMs expires_at) override;
  Result<std::vector<ClaimedMessage>> Claim(const ClaimOptions& options) override;
  Result<bool> Complete(const AttemptResult& result) override;
  std::future<Result<CompleteAndClaimResult>> CompleteAndClaimAsync(AttemptResult result,
                                                                    ClaimOptions next) override;
  Status Unclaim(const std::string& id, int64_t version, int attempt_number) override;
  Result<Message> Release(const std::string& producer, const std::string& id, TimeMs now) override;
  Result<std::pair<int64_t, int64_t>> ResolveHeld(const std::string& producer,
                                                  const std::optional<std::string>& to_number,
                                                  const std::optional<std::string>& reason,
                                                  bool cancel, TimeMs now) override;
  Result<Webhook> AddWebhook(const Webhook& webhook) override;
  Result<std::vector<Webhook>> ListWebhooks(const std::string& producer) override;
  Result<std::optional<Webhook>> GetWebhook(const std::string& producer,
                                            const std::string& id) override;
  Result<bool> DeleteWebhook(const std::string& producer, const std::string& id) override;
  Result<std::vector<CallbackDeliveryRecord>> ListCallbackDeliveries(const std::string& producer,
                                                                     const std::string& webhook_id,
                                                                     int limit) override;
  Result<std::vector<CallbackDelivery>> ClaimCallbacks(
      TimeMs now, int limit, DurationMs lease, const std::vector<std::string>& busy) override;
  Status RecordCallback(const CallbackDelivery& delivery, const CallbackTry& attempt,
                        bool delivered, std::optional<TimeMs> next_attempt_at) override;
  Result<std::optional<TimeMs>> NextCallbackAt() override;
  Result<Suppression> Suppress(const Suppression& suppression) override;
  Result<bool> Unsuppress(const std::string& producer, const std::string& number) override;
  Result<std::optional<Suppression>> GetSuppression(const std::string& producer,
                                                    const std::string& number) override;
  Result<std::vector<Suppression>> ListSuppressions(const std::string& producer,
                                                    const std::string& after_number,
                                                    int limit) override;
  Result<bool> ApplyInboundWebhook(
      const std::string& webhook_id, TimeMs now, const std::vector<Suppression>& suppress,
      const std::vector<std::pair<std::string, std::string>>& lift) override;
  Result<std::optional<std::string>> FindByProviderId(const std::string& provider_message_id,
                                                      const std::string& except_id) override;
  Result<std::optional<TimeMs>> NextWakeAt() override;
  Result<Stats> GetStats(TimeMs now) override;
  Result<Stats> GetProducerStats(const std::string& producer) override;
  Result<std::optional<std::string>> OwnerOf(const std::string& id) override;
  Result<BulkResult> Bulk(BulkAction action, const AdminFilter& filter, bool dry_run, TimeMs now,
                          TimeMs expires_at, int batch, int64_t limit) override;
  Result<PauseState> LoadPauses() override;
  Result<PauseState> SetPause(const std::string& sender, bool paused, const std::string& actor,
                              TimeMs now) override;
  Status AppendAudit(const AuditEntry& entry) override;
  Result<std::vector<AuditEntry>> ListAudit(int64_t before_id, int limit) override;
  Result<std::vector<Message>> ListChanges(const std::string& producer, const ChangeCursor& after,
                                           int limit) override;
  Status Export(
      const std::string& producer, const ListFilter& filter, bool with_attempts,
      const std::function<Status(const Message&, const std::vector<Attempt>&)>& sink) override;
  Status Backup(const std::string& path) override;
  Result<MaintenanceStep> DeleteFinalBefore(TimeMs cutoff, int limit) override;
  Result<MaintenanceStep> RedactFinalBefore(TimeMs cutoff, int limit, TimeMs now,
                                            const RecipientRedactor& recipient,
                                            const std::string& after) override;
  Status ReclaimSpace(int pages) override;
  Result<SpaceUsage> GetSpaceUsage() override;
  Status CheckWritable() override;
  std::unique_ptr<Subscription> Subscribe(ChangeListener listener) override;

 private:
  std::unique_ptr<Store> owned_;
  Store* const inner_;
};

class FaultyStore final : public StoreWrapper {
 public:
  using StoreWrapper::StoreWrapper;

  // Every write fails as on a full disk (NoSpace, as SQLITE_FULL gives): enqueues,
  // claims, results, unclaims, cancels, retries and the readiness check.
  void set_disk_full(bool full) { disk_full_ = full; }
  // Claims fail: Claim, and CompleteAndClaimAsync whenever it would claim (its transaction
  // fails whole, so the result is not recorded either). Enqueues are stored without the claim
  // they asked for, as when no worker is idle.
  void set_claims_fail(bool fail) { claims_fail_ = fail; }
  // Subscribe answers nullptr, as a backend that cannot tell of changes.
  void set_cannot_notify(bool cannot) { cannot_notify_ = cannot; }

  Result<EnqueueResult> Enqueue(const NewMessage& message) override;
  Result<EnqueueResult> EnqueueAndClaim(const NewMessage& message,
                                        const ClaimOptions& claim) override;
  void EnqueueAsync(NewMessage message, std::optional<ClaimOptions> claim,
                    std::function<void(Result<EnqueueResult>)> done) override;
  Result<std::vector<Result<EnqueueResult>>> EnqueueBatch(
      const std::vector<NewMessage>& batch) override;
  Result<Message> Cancel(const std::string& producer, const std::string& id, TimeMs now) override;
  Result<Message> Retry(const std::string& producer, const std::string& id, TimeMs now,
                        TimeMs expires_at) override;
  Result<std::vector<ClaimedMessage>> Claim(const ClaimOptions& options) override;
  Result<bool> Complete(const AttemptResult& result) override;
  std::future<Result<CompleteAndClaimResult>> CompleteAndClaimAsync(AttemptResult result,
                                                                    ClaimOptions next) override;
  Status Unclaim(const std::string& id, int64_t version, int attempt_number) override;
  Status CheckWritable() override;
  std::unique_ptr<Subscription> Subscribe(ChangeListener listener) override;

 private:
  static Status DiskFull();
  static Status ClaimFailed();
  // An answer for CompleteAndClaimAsync that is ready at once.
  static std::future<Result<CompleteAndClaimResult>> AnswerNow(Status failure);

  std::atomic<bool> disk_full_{false};
  std::atomic<bool> claims_fail_{false};
  std::atomic<bool> cannot_notify_{false};
};

}  // namespace sendq::store
