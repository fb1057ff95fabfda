#include "store/store_wrapper.h"

namespace sendq::store {

Result<EnqueueResult> StoreWrapper::Enqueue(const NewMessage& message) {
  return inner_->Enqueue(message);
}
Result<EnqueueResult> StoreWrapper::EnqueueAndClaim(const NewMessage& message,
                                                    const ClaimOptions& claim) {
  return inner_->EnqueueAndClaim(message, claim);
}
void StoreWrapper::EnqueueAsync(NewMessage message, std::optional<ClaimOptions> claim,
                                std::function<void(Result<EnqueueResult>)> done) {
  inner_->EnqueueAsync(std::move(message), std::move(claim), std::move(done));
}
Result<std::vector<Result<EnqueueResult>>> StoreWrapper::EnqueueBatch(
    const std::vector<NewMessage>& batch) {
  return inner_->EnqueueBatch(batch);
}
Result<Message> StoreWrapper::Get(const std::string& producer, const std::string& id) {
  return inner_->Get(producer, id);
}
Result<std::vector<Attempt>> StoreWrapper::ListAttempts(const std::string& producer,
                                                        const std::string& id) {
  return inner_->ListAttempts(producer, id);
}
Result<ListPage> StoreWrapper::List(const std::string& producer, const ListFilter& filter) {
  return inner_->List(producer, filter);
}
Result<Message> StoreWrapper::Cancel(const std::string& producer, const std::string& id,
                                     TimeMs now) {
  return inner_->Cancel(producer, id, now);
}
Result<Message> StoreWrapper::Retry(const std::string& producer, const std::string& id, TimeMs now,
                                    TimeMs expires_at) {
  return inner_->Retry(producer, id, now, expires_at);
}
Result<std::vector<ClaimedMessage>> StoreWrapper::Claim(const ClaimOptions& options) {
  return inner_->Claim(options);
}
Result<bool> StoreWrapper::Complete(const AttemptResult& result) {
  return inner_->Complete(result);
}
std::future<Result<CompleteAndClaimResult>> StoreWrapper::CompleteAndClaimAsync(
    AttemptResult result, ClaimOptions next) {
  return inner_->CompleteAndClaimAsync(std::move(result), next);
}
Status StoreWrapper::Unclaim(const std::string& id, int64_t version, int attempt_number) {
  return inner_->Unclaim(id, version, attempt_number);
}
Result<Message> StoreWrapper::Release(const std::string& producer, const std::string& id,
                                      TimeMs now) {
  return inner_->Release(producer, id, now);
}
Result<std::pair<int64_t, int64_t>> StoreWrapper::ResolveHeld(
    const std::string& producer, const std::optional<std::string>& to_number,
    const std::optional<std::string>& reason, bool cancel, TimeMs now) {
  return inner_->ResolveHeld(producer, to_number, reason, cancel, now);
}
Result<Webhook> StoreWrapper::AddWebhook(const Webhook& webhook) {
  return inner_->AddWebhook(webhook);
}
Result<std::vector<Webhook>> StoreWrapper::ListWebhooks(const std::string& producer) {
  return inner_->ListWebhooks(producer);
}
Result<std::optional<Webhook>> StoreWrapper::GetWebhook(const std::string& producer,
                                                        const std::string& id) {
  return inner_->GetWebhook(producer, id);
}
Result<bool> StoreWrapper::DeleteWebhook(const std::string& producer, const std::string& id) {
  return inner_->DeleteWebhook(producer, id);
}
Result<std::vector<CallbackDeliveryRecord>> StoreWrapper::ListCallbackDeliveries(
    const std::string& producer, const std::string& webhook_id, int limit) {
  return inner_->ListCallbackDeliveries(producer, webhook_id, limit);
}
Result<std::vector<CallbackDelivery>> StoreWrapper::ClaimCallbacks(
    TimeMs now, int limit, DurationMs lease, const std::vector<std::string>& busy) {
  return inner_->ClaimCallbacks(now, limit, lease, busy);
}
Status StoreWrapper::RecordCallback(const CallbackDelivery& delivery, const CallbackTry& attempt,
                                    bool delivered, std::optional<TimeMs> next_attempt_at) {
  return inner_->RecordCallback(delivery, attempt, delivered, next_attempt_at);
}
Result<std::optional<TimeMs>> StoreWrapper::NextCallbackAt() { return inner_->NextCallbackAt(); }
Result<Suppression> StoreWrapper::Suppress(const Suppression& suppression) {
  return inner_->Suppress(suppression);
}
Result<bool> StoreWrapper::Unsuppress(const std::string& producer, const std::string& number) {
  return inner_->Unsuppress(producer, number);
}
Result<std::optional<Suppression>> StoreWrapper::GetSuppression(const std::string& producer,
                                                                const std::string& number) {
  return inner_->GetSuppression(producer, number);
}
Result<std::vector<Suppression>> StoreWrapper::ListSuppressions(const std::string& producer,
                                                                const std::string& after_number,
                                                                int limit) {
  return inner_->ListSuppressions(producer, after_number, limit);
}
Result<bool> StoreWrapper::ApplyInboundWebhook(
    const std::string& webhook_id, TimeMs now, const std::vector<Suppression>& suppress,
    const std::vector<std::pair<std::string, std::string>>& lift) {
  return inner_->ApplyInboundWebhook(webhook_id, now, suppress, lift);
}
Result<std::optional<std::string>> StoreWrapper::FindByProviderId(
    const std::string& provider_message_id, const std::string& except_id) {
  return inner_->FindByProviderId(provider_message_id, except_id);
}
Result<std::optional<TimeMs>> StoreWrapper::NextWakeAt() { return inner_->NextWakeAt(); }
Result<Stats> StoreWrapper::GetStats(TimeMs now) { return inner_->GetStats(now); }

Result<Stats> StoreWrapper::GetProducerStats(const std::string& producer) {
  return inner_->GetProducerStats(producer);
}

Result<std::optional<std::string>> StoreWrapper::OwnerOf(const std::string& id) {
  return inner_->OwnerOf(id);
}

Result<BulkResult> StoreWrapper::Bulk(BulkAction action, const AdminFilter& filter, bool dry_run,
                                      TimeMs now, TimeMs expires_at, int batch, int64_t limit) {
  return inner_->Bulk(action, filter, dry_run, now, expires_at, batch, limit);
}

Result<PauseState> StoreWrapper::LoadPauses() { return inner_->LoadPauses(); }

Result<PauseState> StoreWrapper::SetPause(const std::string& sender, bool paused,
                                          const std::string& actor, TimeMs now) {
  return inner_->SetPause(sender, paused, actor, now);
}

Status StoreWrapper::AppendAudit(const AuditEntry& entry) { return inner_->AppendAudit(entry); }

Result<std::vector<AuditEntry>> StoreWrapper::ListAudit(int64_t before_id, int limit) {
  return inner_->ListAudit(before_id, limit);
}

Result<std::vector<Message>> StoreWrapper::ListChanges(const std::string& producer,
                                                       const ChangeCursor& after, int limit) {
  return inner_->ListChanges(producer, after, limit);
}

Status StoreWrapper::Export(
    const std::string& producer, const ListFilter& filter, bool with_attempts,
    const std::function<Status(const Message&, const std::vector<Attempt>&)>& sink) {
  return inner_->Export(producer, filter, with_attempts, sink);
}

Status StoreWrapper::Backup(const std::string& path) { return inner_->Backup(path); }

Result<MaintenanceStep> StoreWrapper::DeleteFinalBefore(TimeMs cutoff, int limit) {
  return inner_->DeleteFinalBefore(cutoff, limit);
}

Result<MaintenanceStep> StoreWrapper::RedactFinalBefore(TimeMs cutoff, int limit, TimeMs now,
                                                        const RecipientRedactor& recipient,
                                                        const std::string& after) {
  return inner_->RedactFinalBefore(cutoff, limit, now, recipient, after);
}

Status StoreWrapper::ReclaimSpace(int pages) { return inner_->ReclaimSpace(pages); }

Result<SpaceUsage> StoreWrapper::GetSpaceUsage() { return inner_->GetSpaceUsage(); }
Status StoreWrapper::CheckWritable() { return inner_->CheckWritable(); }
std::unique_ptr<Subscription> StoreWrapper::Subscribe(ChangeListener listener) {
  return inner_->Subscribe(std::move(listener));
}

// --- FaultyStore ---------------------------------------------------------------------------

Status FaultyStore::DiskFull() { return Status::NoSpace("database or disk is full"); }
Status FaultyStore::ClaimFailed() { return Status::IOError("claim failed (injected)"); }

std::future<Result<CompleteAndClaimResult>> FaultyStore::AnswerNow(Status failure) {
  std::promise<Result<CompleteAndClaimResult>> answer;
  answer.set_value(std::move(failure));
  return answer.get_future();
}

Result<EnqueueResult> FaultyStore::Enqueue(const NewMessage& message) {
  if (disk_full_) return DiskFull();
  return StoreWrapper::Enqueue(message);
}
Result<EnqueueResult> FaultyStore::EnqueueAndClaim(const NewMessage& message,
                                                   const ClaimOptions& claim) {
  if (disk_full_) return DiskFull();
  if (claims_fail_) return StoreWrapper::Enqueue(message);
  return StoreWrapper::EnqueueAndClaim(message, claim);
}
void FaultyStore::EnqueueAsync(NewMessage message, std::optional<ClaimOptions> claim,
                               std::function<void(Result<EnqueueResult>)> done) {
  if (disk_full_) {
    done(DiskFull());
    return;
  }
  if (claims_fail_) claim.reset();
  StoreWrapper::EnqueueAsync(std::move(message), std::move(claim), std::move(done));
}
Result<std::vector<Result<EnqueueResult>>> FaultyStore::EnqueueBatch(
    const std::vector<NewMessage>& batch) {
  if (disk_full_) return DiskFull();
  return StoreWrapper::EnqueueBatch(batch);
}
Result<Message> FaultyStore::Cancel(const std::string& producer, const std::string& id,
                                    TimeMs now) {
  if (disk_full_) return DiskFull();
  return StoreWrapper::Cancel(producer, id, now);
}
Result<Message> FaultyStore::Retry(const std::string& producer, const std::string& id, TimeMs now,
                                   TimeMs expires_at) {
  if (disk_full_) return DiskFull();
  return StoreWrapper::Retry(producer, id, now, expires_at);
}
Result<std::vector<ClaimedMessage>> FaultyStore::Claim(const ClaimOptions& options) {
  if (disk_full_) return DiskFull();
  if (claims_fail_) return ClaimFailed();
  return StoreWrapper::Claim(options);
}
Result<bool> FaultyStore::Complete(const AttemptResult& result) {
  if (disk_full_) return DiskFull();
  return StoreWrapper::Complete(result);
}
std::future<Result<CompleteAndClaimResult>> FaultyStore::CompleteAndClaimAsync(AttemptResult result,
                                                                               ClaimOptions next) {
  if (disk_full_) {
    return AnswerNow(DiskFull());
  }
  if (claims_fail_ && next.limit > 0) {
    return AnswerNow(ClaimFailed());
  }
  return StoreWrapper::CompleteAndClaimAsync(std::move(result), next);
}
Status FaultyStore::Unclaim(const std::string& id, int64_t version, int attempt_number) {
  if (disk_full_) return DiskFull();
  return StoreWrapper::Unclaim(id, version, attempt_number);
}
Status FaultyStore::CheckWritable() {
  if (disk_full_) return DiskFull();
  return StoreWrapper::CheckWritable();
}
std::unique_ptr<Subscription> FaultyStore::Subscribe(ChangeListener listener) {
  if (cannot_notify_) return nullptr;
  return StoreWrapper::Subscribe(std::move(listener));
}

}  // namespace sendq::store
