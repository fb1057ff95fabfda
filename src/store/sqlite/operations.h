// The SQLite store's operations, one function per transaction body, grouped by concern (one
// .cpp each). SqliteStore (sqlite_store.cpp) runs the writes on its Writer and the reads on a
// pooled reader connection; these functions only fetch and apply: what becomes of a message
// is decided by queue/ (delivery_policy.h, controls.h).
//
// Tables (schema/*.sql): `messages` holds each message's small, hot state (status, times,
// lane, priority, lease) with the partial indexes the claim reads; `requests` and `answers`
// hold the large, cold text, each written once.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "queue/controls.h"
#include "store/sqlite/db.h"
#include "store/store.h"

namespace sendq::store {

// --- rows.cpp: reading messages ------------------------------------------------------------

// The columns ReadMessage() expects, with the request and the answer given as expressions: a
// SELECT over MessagesFrom() names them, an UPDATE's RETURNING (which cannot join) gives NULL.
#define SENDQ_MESSAGE_COLUMNS_WITH(REQUEST, ANSWER)                                           \
  "id, producer, idempotency_key, " REQUEST                                                   \
  ", status, attempts, version, created_at, updated_at, next_attempt_at, expires_at, "        \
  "lease_until, sent_at, last_error, provider_message_id, channel, from_number, "             \
  "sent_to_number, conversation_id, reply_parent_unresolved, " ANSWER                         \
  ", attempt_count, "                                                                         \
  "ordering_key, priority, send_at, send_window, window_zones, sender, held, unknown_since, " \
  "status_reason, reaction_to, parent_id, callback_url"
#define SENDQ_MESSAGE_COLUMNS SENDQ_MESSAGE_COLUMNS_WITH("request", "upstream_response")
// How many columns ReadMessage() reads: a query may add its own after them.
inline constexpr int kMessageColumnCount = 34;
#define SENDQ_STATE_COLUMNS SENDQ_MESSAGE_COLUMNS_WITH("NULL", "NULL")
// A message with its request and answer.
#define SENDQ_MESSAGES_FROM " FROM messages JOIN requests USING (id) LEFT JOIN answers USING (id)"

Message ReadMessage(const Stmt& s);
int AttemptCount(const Stmt& s);  // the attempt_count column of a ReadMessage() row
Result<std::vector<Message>> CollectMessages(Stmt* stmt);
Result<std::optional<Message>> FindMessage(Db& db, const std::string& producer,
                                           const std::string& id);
// Fills in the request of messages read without it (SENDQ_STATE_COLUMNS).
Status AddRequests(Db& db, std::vector<ClaimedMessage>* claimed);
Status NotFound(const std::string& id);

// --- lanes.cpp: conversation order ---------------------------------------------------------

// Where a message joins its lane: after every message there that is not final. `held` when
// there is one (it is not the lane's head).
struct LanePlace {
  int64_t seq = 0;
  bool held = false;
};
Result<LanePlace> LaneTail(Db& db, const std::string& producer, const std::string& key);
// A message of this lane became final: its first message that is not final may go now. That
// is work added (Db::NoteWorkAdded), unless `released` is given: then the released message's
// id goes there and noting it is the caller's.
Status ReleaseLane(Db& db, const std::string& producer, const std::optional<std::string>& key,
                   std::vector<std::string>* released = nullptr);
// Message `id` (of lane `key`) became final: releases what waits for it: the next of its lane,
// and the first reaction or reply waiting in the lane "after:<id>" (for a message that had no
// lane, or was held when they came).
Status ReleaseAfterFinal(Db& db, const std::string& producer, const std::string& id,
                         const std::optional<std::string>& key,
                         std::vector<std::string>* released = nullptr);
// The lane of the messages that wait for `parent_id`, a message without a lane of its own.
std::string AfterLane(const std::string& parent_id);

// --- suppressions.cpp: opt-outs -----------------------------------------------------------

Result<bool> IsSuppressed(Db& db, const std::string& producer, const std::string& number);
Result<Suppression> Suppress(Db& db, const Suppression& suppression);
Result<bool> Unsuppress(Db& db, const std::string& producer, const std::string& number);
Result<std::optional<Suppression>> GetSuppression(Db& db, const std::string& producer,
                                                  const std::string& number);
Result<std::vector<Suppression>> ListSuppressions(Db& db, const std::string& producer,
                                                  const std::string& after_number, int limit);
Result<bool> ApplyInboundWebhook(Db& db, const std::string& webhook_id, TimeMs now,
                                 const std::vector<Suppression>& suppress,
                                 const std::vector<std::pair<std::string, std::string>>& lift);
// Fails the producer's queued and held messages to `number` (or only message `only_id`) as
// suppressed.
Status FailSuppressed(Db& db, const std::string& producer, const std::string& number, TimeMs now,
                      const std::optional<std::string>& only_id);

// --- callbacks.cpp: producer callbacks ------------------------------------------------------

// Writes `event` for message `message_id` to the outbox, once for each of the producer's
// webhooks that wants it and once for the message's own callback_url.
Status EmitEvent(Db& db, const std::string& message_id, const std::string& producer,
                 const std::optional<std::string>& callback_url, const char* event, TimeMs now);
Result<Webhook> AddWebhook(Db& db, const Webhook& webhook);
Result<std::vector<Webhook>> ListWebhooks(Db& db, const std::string& producer);
Result<std::optional<Webhook>> GetWebhook(Db& db, const std::string& producer,
                                          const std::string& id);
Result<bool> DeleteWebhook(Db& db, const std::string& producer, const std::string& id);
Result<std::vector<CallbackDeliveryRecord>> ListCallbackDeliveries(Db& db,
                                                                   const std::string& producer,
                                                                   const std::string& webhook_id,
                                                                   int limit);
Result<std::vector<CallbackDelivery>> ClaimCallbacks(Db& db, TimeMs now, int limit,
                                                     DurationMs lease,
                                                     const std::vector<std::string>& busy);
Status RecordCallback(Db& db, const CallbackDelivery& delivery, const CallbackTry& attempt,
                      bool delivered, std::optional<TimeMs> next_attempt_at);
Result<std::optional<TimeMs>> NextCallbackAt(Db& db);

// --- enqueue.cpp ---------------------------------------------------------------------------

// Inserts a new message, or finds the earlier one with the same idempotency key: the same
// request with the same controls is a replay, anything else is Conflict. The caller notes the
// work it adds (Db::NoteWorkAdded), unless it claims the message at once.
Result<EnqueueResult> InsertOrReplay(Db& db, const NewMessage& message);
// InsertOrReplay, noting a new message that is not held as work added.
Result<EnqueueResult> Enqueue(Db& db, const NewMessage& message);

// --- claim.cpp -----------------------------------------------------------------------------

// Claims due messages. Keeps the bulk share across claims, so one instance serves one store.
class Claimer {
 public:
  Result<std::vector<ClaimedMessage>> Claim(Db& db, const ClaimOptions& options);
  // InsertOrReplay, and if the new message may go now, its claim.
  Result<EnqueueResult> InsertAndClaim(Db& db, const NewMessage& message,
                                       const ClaimOptions& options);

 private:
  struct Candidate;
  Result<std::vector<Candidate>> DueCandidates(Db& db, Priority priority, TimeMs now, int limit);
  Result<std::vector<ClaimedMessage>> AdmitAndLease(Db& db,
                                                    const std::vector<Candidate>& candidates,
                                                    const ClaimOptions& options);

  PriorityShare share_;
};

// Fails queued messages whose validity ran out, and recovers `sending` messages whose lease
// did (their open attempt becomes `unknown`).
Status ExpireQueued(Db& db, TimeMs now);
Status RecoverExpiredLeases(Db& db, const ClaimOptions& options);

// --- complete.cpp --------------------------------------------------------------------------

// Complete(): false when the lease was taken over (the version moved on). `released` as for
// ReleaseLane.
Result<bool> RecordResult(Db& db, const AttemptResult& result,
                          std::vector<std::string>* released = nullptr);
Status Unclaim(Db& db, const std::string& id, int64_t version, int attempt_number);

// --- transitions.cpp: producers' changes ---------------------------------------------------

Result<Message> CancelQueued(Db& db, const std::string& producer, const std::string& id,
                             TimeMs now);
Result<Message> RetryFailed(Db& db, const std::string& producer, const std::string& id, TimeMs now,
                            TimeMs expires_at);
// An admin's retry: failed or canceled -> queued.
Result<Message> RetryFinal(Db& db, const std::string& producer, const std::string& id, TimeMs now,
                           TimeMs expires_at);
Result<Message> ReleaseHeld(Db& db, const std::string& producer, const std::string& id, TimeMs now);
Result<std::pair<int64_t, int64_t>> ResolveHeld(Db& db, const std::string& producer,
                                                const std::optional<std::string>& to_number,
                                                const std::optional<std::string>& reason,
                                                bool cancel, TimeMs now);
// Every `sending` message's lease, and every callback delivery's, ends now: at open, when no other
// process can hold one.
Status VoidLeases(Db& db, TimeMs now);

// --- queries.cpp: reads --------------------------------------------------------------------

Result<std::vector<Attempt>> ListAttempts(Db& db, const std::string& producer,
                                          const std::string& id);
Result<ListPage> ListMessages(Db& db, const std::string& producer, const ListFilter& filter);
Result<std::vector<Attempt>> ReadAttempts(Db& db, const Message& message);
Status ExportMessages(
    Db& db, const std::string& producer, const ListFilter& filter, bool with_attempts,
    const std::function<Status(const Message&, const std::vector<Attempt>&)>& sink);
Result<std::optional<TimeMs>> NextWakeAt(Db& db);
Result<std::optional<std::string>> FindByProviderId(Db& db, const std::string& provider_message_id,
                                                    const std::string& except_id);
Result<Stats> ReadStats(Db& db, TimeMs now);

// --- admin.cpp: operators ------------------------------------------------------------------

Result<std::optional<std::string>> OwnerOf(Db& db, const std::string& id);
// Up to `limit` (id, producer) pairs that `filter` matches, with ids above `after_id`.
Result<std::vector<std::pair<std::string, std::string>>> SelectForAdmin(Db& db,
                                                                        const AdminFilter& filter,
                                                                        const std::string& after_id,
                                                                        int limit);
// How many of `messages` it changed (those no longer in a state it applies to are left).
Result<int64_t> ApplyBulk(Db& db, BulkAction action,
                          const std::vector<std::pair<std::string, std::string>>& messages,
                          TimeMs now, TimeMs expires_at);
Result<PauseState> LoadPauses(Db& db);
Result<PauseState> SetPause(Db& db, const std::string& sender, bool paused,
                            const std::string& actor, TimeMs now);
Status AppendAudit(Db& db, const AuditEntry& entry);
Result<std::vector<AuditEntry>> ListAudit(Db& db, int64_t before_id, int limit);
Result<std::vector<Message>> ListChanges(Db& db, const std::string& producer,
                                         const ChangeCursor& after, int limit);
Result<Stats> ReadProducerStats(Db& db, const std::string& producer);

// --- maintenance.cpp: retention, redaction, space, backup -------------------------------------

Result<MaintenanceStep> DeleteFinalBefore(Db& db, TimeMs cutoff, int limit);
Result<MaintenanceStep> RedactFinalBefore(Db& db, TimeMs cutoff, int limit, TimeMs now,
                                          const RecipientRedactor& recipient,
                                          const std::string& after);
Status IncrementalVacuum(Db& db, int pages);
Result<SpaceUsage> ReadSpaceUsage(Db& db);
Status BackupInto(Db& db, const std::string& path);

}  // namespace sendq::store
