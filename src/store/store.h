// Store: durable messages and their attempt ledger. This header is the contract and its value
// types, all that api/ and delivery/ see. store/sqlite/ implements it (OpenSqliteStore); a
// second backend stands behind the same contract and passes the same store tests.
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <functional>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "queue/delivery_policy.h"
#include "queue/guards.h"
#include "queue/message.h"
#include "queue/pacing.h"
#include "queue/pauses.h"
#include "util/clock.h"
#include "util/status.h"

namespace sendq::store {

struct NewMessage {
  std::string id;  // REQUIRES: IsMessageId(id); its time is the creation time
  std::string producer;
  std::optional<std::string> idempotency_key;
  std::string request_json;  // normalised request
  std::optional<std::string> agent_id;
  std::optional<std::string> to_number;
  TimeMs expires_at = 0;
  // Queue controls (see queue/controls.h).
  std::optional<std::string> ordering_key;  // nullopt: not ordered
  std::string sender;
  Priority priority = Priority::kNormal;
  std::optional<TimeMs> send_at;
  TimeMs first_due = 0;                     // 0: at creation
  std::optional<std::string> send_window;   // JSON, when a window applies
  std::optional<std::string> window_zones;  // comma-separated
  std::string controls;                     // as given, canonical JSON: the fingerprint's part
  // Runaway guards: when enabled, a message over a cap is stored `held` instead (not a replay:
  // replays are found first and never count).
  RunawayGuards guards;
  std::optional<int64_t> body_hash;  // BodyHash of the request's body, when guards are on
  // A reaction: the message it is for (msg_ or sq_ id); request_json is the reaction body.
  std::optional<std::string> reaction_to;
  // The producer's sendq message this one waits for (a reaction's, or a reply's
  // reply_to_message_id): it joins that message's lane (or "after:<id>"), whatever the
  // controls say, and is not sent before it is final.
  std::optional<std::string> parent_id;
  // Where this message's own events go (its `sendq.callback_url`), besides the producer's
  // registered webhooks.
  std::optional<std::string> callback_url;
};

struct ClaimOptions {
  TimeMs now = 0;
  int limit = 1;
  DurationMs lease = 60'000;
  int max_attempts = 12;
  // A send whose lease ran out is looked up no sooner than this long after it started: its
  // request may still be reaching AgentPhone until the upstream timeout, and is listed a
  // moment after.
  DurationMs lost_send_settles_after = 0;
  // First fail queued messages whose validity ran out and recover expired leases. A claim
  // that follows another closely may skip it: both only look for deadlines that have passed.
  bool housekeeping = true;
  // Pacing: a message whose sender has no token is moved to when it will, not claimed.
  Pacer* pacer = nullptr;
  // An admin's pauses: a message of a paused sender is moved off the due order (until a
  // resume makes it due again), not claimed.
  const Pauses* pauses = nullptr;
};

// A message the caller now holds a lease on. message.version is the fencing token.
struct ClaimedMessage {
  Message message;
  int attempt_number = 0;  // the ledger row written for this attempt
};

struct EnqueueResult {
  Message message;        // as stored (for EnqueueAndClaim: before the claim)
  bool replayed = false;  // an earlier message with the same idempotency key and body
  std::optional<ClaimedMessage> claimed;  // EnqueueAndClaim: the new message, leased
  // Not stored: the producer's suppression list has the recipient (an opt-out).
  bool suppressed = false;
  // Not stored: parent_id names no message of this producer.
  bool parent_missing = false;

  // A new message was stored (not a replay, not refused).
  bool added() const { return !replayed && !suppressed && !parent_missing; }
};

// How an attempt ended, and what becomes of the message.
struct AttemptResult {
  std::string message_id;
  int64_t version = 0;  // the claim's fencing token
  int attempt_number = 0;
  TimeMs finished_at = 0;
  AttemptOutcome outcome = AttemptOutcome::kRetryable;
  std::optional<int> http_status;
  std::optional<std::string> error;
  std::optional<std::string> response_body;
  bool charged = false;
  MessageStatus new_status = MessageStatus::kQueued;  // queued, sent or failed
  TimeMs next_attempt_at = 0;                         // when queued again
  std::optional<std::string> last_error;
  bool expired = false;  // failed because its validity ran out (message.expired, not .failed)
  // When queued to be looked up at AgentPhone (its outcome is unknown): the start of the
  // attempt whose outcome that is. Unset, the message has nothing left to look up.
  std::optional<TimeMs> unknown_since;
  // When sent: AgentPhone's answer, read and raw.
  SendResponseFields response;
  std::optional<std::string> upstream_response;
};

struct CompleteAndClaimResult {
  bool recorded = false;  // as Complete() answers
  std::vector<ClaimedMessage> claimed;
};

struct ListPage {
  std::vector<Message> messages;
  bool has_more = false;
};

// Queued messages of one priority and sender, and why those that are not due wait.
struct QueueGroup {
  Priority priority = Priority::kNormal;
  std::string sender;
  int64_t queued = 0;
  int64_t held_by_order = 0;            // an earlier message of its lane is not final
  int64_t held_by_pacing = 0;           // moved to a booked pacing slot
  int64_t held_by_schedule = 0;         // send_at still ahead
  int64_t held_by_window = 0;           // outside its send window
  std::optional<TimeMs> oldest_due_at;  // the earliest next_attempt_at among due messages
};

// An opt-out: `producer`'s messages to `number` are not sent.
struct Suppression {
  std::string producer;
  std::string number;  // E.164
  TimeMs created_at = 0;
  std::string source;  // "api" or "inbound" (an inbound STOP)
  std::optional<std::string> reason;
};

// The failure reason of a message whose recipient opted out.
inline constexpr const char* kSuppressedReason = "suppressed";

// A producer's registered callback endpoint. Its signing secret is not stored: it is derived
// from the server's callback key and the id.
struct Webhook {
  std::string id;  // wh_<random>
  std::string producer;
  std::string url;
  std::vector<std::string> events;  // message.sent, message.failed, ...
  TimeMs created_at = 0;
};

// The events a message's changes raise (written with the change, in the same transaction).
inline constexpr const char* kCallbackEvents[] = {
    "message.sent", "message.failed", "message.canceled", "message.expired", "message.unknown"};

// One event on its way to one endpoint.
struct CallbackDelivery {
  int64_t outbox_id = 0;
  std::string event_id;                   // the same on every try (X-Sendq-Event-Id)
  std::optional<std::string> webhook_id;  // nullopt: the message's own callback_url
  std::string producer;
  std::string url;
  std::string event;
  std::string message_id;
  TimeMs created_at = 0;
  int attempts = 0;        // tries before this one
  TimeMs lease_until = 0;  // the claim's lease: a try is recorded only while it holds
};

struct CallbackTry {
  int number = 0;
  TimeMs started_at = 0;
  TimeMs finished_at = 0;
  std::optional<int> http_status;
  std::optional<std::string> error;
};

// A delivery as GET /v1/webhooks/{id}/deliveries shows it.
struct CallbackDeliveryRecord {
  CallbackDelivery delivery;
  std::string state;  // "pending", "delivered", "failed" (given up)
  std::optional<TimeMs> next_attempt_at;
  std::optional<std::string> last_error;
  std::vector<CallbackTry> tries;
};

// What one commit changed.
struct Changes {
  // Messages whose status, attempts or answer changed (what a long poll waits for): claims,
  // results, cancels, retries, expiries and recovered leases. Moves that change only when a
  // message may go (a lane's release, a window's or pacing slot's postponement) are not here.
  std::vector<std::string> message_ids;
  // A message became claimable: enqueued (and not claimed with it), released by the end of the
  // message before it in its lane, retried, or handed back unused.
  bool work_added = false;
  // A callback event was written to the outbox.
  bool callbacks_added = false;
};

// Told of every commit, after it is durable, on the store's own thread: it must be quick and
// must not call back into the store.
using ChangeListener = std::function<void(const Changes&)>;

// Listening ends when this is destroyed, which must be before the store is, and never from
// within the listener.
class Subscription {
 public:
  virtual ~Subscription() = default;
};

// Which messages an admin's bulk operation acts on. Every member narrows it.
struct AdminFilter {
  std::vector<MessageStatus> statuses;
  std::optional<std::string> producer;
  std::optional<std::string> sender;     // as messages.sender holds it
  std::optional<std::string> to_number;  // E.164
  std::optional<std::string> error_contains;
  std::optional<TimeMs> created_after;   // inclusive
  std::optional<TimeMs> created_before;  // exclusive
};

enum class BulkAction {
  kRetry,   // failed or canceled -> queued, due now, with a fresh validity
  kCancel,  // queued or held -> canceled
};

struct BulkResult {
  int64_t matched = 0;
  int64_t changed = 0;
};

// One admin action, as the audit keeps it.
struct AuditEntry {
  int64_t id = 0;
  TimeMs at = 0;
  std::string actor;
  std::string action;
  std::string details;  // JSON
  std::optional<int64_t> matched;
  std::optional<int64_t> changed;
};

// A position in the feed of changes: the message changed at `updated_at`, then `id`.
struct ChangeCursor {
  TimeMs updated_at = 0;
  std::string id;
};

// The rewrite of a message's personal data (--redact-after): its recipient becomes what
// `recipient` makes of it, everything else personal becomes kRedactedMarker.
inline constexpr const char* kRedactedMarker = "[redacted]";
using RecipientRedactor = std::function<std::string(const std::string& number)>;

// What one pass of retention or redaction did.
struct MaintenanceStep {
  int64_t messages = 0;   // deleted or redacted
  int64_t looked_at = 0;  // messages read to find those (at most the limit)
  bool more = false;      // it stopped at its limit: there is more to do now
  std::string last_id;    // redaction: the last message looked at, where the next step goes on
};

// The database file's size and the free part of it.
struct SpaceUsage {
  int64_t bytes = 0;
  int64_t free_bytes = 0;
};

struct Stats {
  std::map<MessageStatus, int64_t> by_status;
  std::optional<TimeMs> oldest_queued_created_at;
  std::vector<QueueGroup> queue;  // at `now` as GetStats was given
};

class Store {
 public:
  virtual ~Store() = default;

  // Durable when it returns OK. With an idempotency key already used by this producer: the
  // earlier message (replayed) when the request is the same, Conflict when it differs.
  virtual Result<EnqueueResult> Enqueue(const NewMessage& message) = 0;
  // Enqueue, and in the same transaction the claim of the new message (not of a replayed
  // one): for an idle worker, which can then send it without another commit.
  virtual Result<EnqueueResult> EnqueueAndClaim(const NewMessage& message,
                                                const ClaimOptions& claim) = 0;
  // Enqueue (or with `claim`, EnqueueAndClaim) without waiting: `done` gets the same answer,
  // on the writer thread, once the transaction has committed. `done` must be quick and must not
  // call back into the store.
  virtual void EnqueueAsync(NewMessage message, std::optional<ClaimOptions> claim,
                            std::function<void(Result<EnqueueResult>)> done) = 0;
  // Enqueue for many messages in one transaction: every item is durable when it returns OK,
  // and none before. Items are taken in order, so a key used twice in one batch is a replay
  // (or Conflict) of its first use. A Conflict is that item's answer; any other error fails
  // the whole batch and stores none of it.
  virtual Result<std::vector<Result<EnqueueResult>>> EnqueueBatch(
      const std::vector<NewMessage>& batch) = 0;

  // Another producer's message is NotFound, exactly like a missing one. List with producer ""
  // lists every producer's messages (for admins).
  virtual Result<Message> Get(const std::string& producer, const std::string& id) = 0;
  virtual Result<std::vector<Attempt>> ListAttempts(const std::string& producer,
                                                    const std::string& id) = 0;
  virtual Result<ListPage> List(const std::string& producer, const ListFilter& filter) = 0;

  // queued or held -> canceled. Conflict (the message unchanged) from any other state.
  virtual Result<Message> Cancel(const std::string& producer, const std::string& id,
                                 TimeMs now) = 0;
  // held -> queued, due now (a runaway guard's hold released by hand). Conflict otherwise.
  virtual Result<Message> Release(const std::string& producer, const std::string& id,
                                  TimeMs now) = 0;
  // Releases (or with `cancel`, cancels) the producer's held messages, optionally only those to
  // `to_number` or held for `reason`. Returns how many matched and how many changed.
  virtual Result<std::pair<int64_t, int64_t>> ResolveHeld(
      const std::string& producer, const std::optional<std::string>& to_number,
      const std::optional<std::string>& reason, bool cancel, TimeMs now) = 0;
  // failed -> queued, due now, valid until `expires_at`. Conflict from any other state.
  virtual Result<Message> Retry(const std::string& producer, const std::string& id, TimeMs now,
                                TimeMs expires_at) = 0;

  // In one transaction: fails queued messages whose validity ran out, recovers `sending`
  // messages whose lease expired (their open attempt becomes `unknown`) -- unless
  // options.housekeeping is false -- then leases up to `limit` due messages and writes an
  // attempt row for each.
  //
  // What a claim may take: a queued message that is due (next_attempt_at, which starts at
  // send_at), whose lane holds nothing earlier that is not final (conversation order), inside
  // its send window and with a pacing token; `high` before `normal` before `bulk`, except that
  // `bulk` gets at least one claim in ten while it has due work. A due message outside its
  // window or without a token is moved to when it will be allowed, without an attempt.
  virtual Result<std::vector<ClaimedMessage>> Claim(const ClaimOptions& options) = 0;
  // Records the attempt and the message's new state, unless the lease was taken over since
  // (the version moved on): then nothing is written and the answer is false.
  virtual Result<bool> Complete(const AttemptResult& result) = 0;
  // Complete() and then (unless next.limit is 0) Claim(), in one transaction, without
  // waiting: a worker records its result and takes its next message with a single commit, and
  // can send a message it already holds meanwhile. The future is ready after the commit.
  virtual std::future<Result<CompleteAndClaimResult>> CompleteAndClaimAsync(AttemptResult result,
                                                                            ClaimOptions next) = 0;
  // A fresh message back to queued without an attempt (a claim that was not used).
  virtual Status Unclaim(const std::string& id, int64_t version, int attempt_number) = 0;

  // Adds (or replaces) a suppression, and in the same transaction fails the producer's queued
  // and held messages to that number (status_reason "suppressed"). Returns it as stored.
  virtual Result<Suppression> Suppress(const Suppression& suppression) = 0;
  // Whether there was one to remove.
  virtual Result<bool> Unsuppress(const std::string& producer, const std::string& number) = 0;
  virtual Result<std::optional<Suppression>> GetSuppression(const std::string& producer,
                                                            const std::string& number) = 0;
  // The producer's suppressions by number, after `after_number` (exclusive; "" from the start).
  virtual Result<std::vector<Suppression>> ListSuppressions(const std::string& producer,
                                                            const std::string& after_number,
                                                            int limit) = 0;
  // AgentPhone's webhook delivery `webhook_id`: applies `suppress` and `lift` (producer,
  // number) in one transaction, unless that id was applied before (then false, nothing done).
  virtual Result<bool> ApplyInboundWebhook(
      const std::string& webhook_id, TimeMs now, const std::vector<Suppression>& suppress,
      const std::vector<std::pair<std::string, std::string>>& lift) = 0;

  // Producer callbacks: the registered endpoints, and the outbox of events.
  virtual Result<Webhook> AddWebhook(const Webhook& webhook) = 0;
  virtual Result<std::vector<Webhook>> ListWebhooks(const std::string& producer) = 0;
  virtual Result<std::optional<Webhook>> GetWebhook(const std::string& producer,
                                                    const std::string& id) = 0;
  // Its pending deliveries are dropped with it. Whether there was one.
  virtual Result<bool> DeleteWebhook(const std::string& producer, const std::string& id) = 0;
  // The latest `limit` deliveries to the endpoint, newest first, with their tries.
  virtual Result<std::vector<CallbackDeliveryRecord>> ListCallbackDeliveries(
      const std::string& producer, const std::string& webhook_id, int limit) = 0;
  // Leases up to `limit` deliveries that are due (lease_until = now + lease), leaving out those
  // to the URLs in `busy`.
  virtual Result<std::vector<CallbackDelivery>> ClaimCallbacks(
      TimeMs now, int limit, DurationMs lease, const std::vector<std::string>& busy) = 0;
  // Records a try of the claimed `delivery`: delivered, or due again at `next_attempt_at`, or
  // (neither) given up. Nothing is recorded if its lease ran out and it was claimed again.
  virtual Status RecordCallback(const CallbackDelivery& delivery, const CallbackTry& attempt,
                                bool delivered, std::optional<TimeMs> next_attempt_at) = 0;
  // The soonest due (or lease end) among pending deliveries.
  virtual Result<std::optional<TimeMs>> NextCallbackAt() = 0;

  // The id of the message, other than `except_id`, that holds AgentPhone's message id
  // `provider_message_id` (a look-up must not settle two messages with one listed send).
  virtual Result<std::optional<std::string>> FindByProviderId(
      const std::string& provider_message_id, const std::string& except_id) = 0;

  // The earliest time at which Claim could find work: a due retry, an expiry or a lease end.
  virtual Result<std::optional<TimeMs>> NextWakeAt() = 0;

  // Counts at `now`. Reads every queued message once (for /metrics, not for a hot path).
  virtual Result<Stats> GetStats(TimeMs now) = 0;
  // by_status and the oldest queued message of one producer.
  virtual Result<Stats> GetProducerStats(const std::string& producer) = 0;

  // --- Operators ---
  // The producer whose message `id` is; nullopt if there is none.
  virtual Result<std::optional<std::string>> OwnerOf(const std::string& id) = 0;
  // Applies `action` to every message `filter` matches (unless `dry_run`), oldest first, in
  // transactions of at most `batch` messages so that nothing else waits long; with `limit`
  // (> 0), to that many at most. `expires_at` is a retried message's new validity.
  virtual Result<BulkResult> Bulk(BulkAction action, const AdminFilter& filter, bool dry_run,
                                  TimeMs now, TimeMs expires_at, int batch, int64_t limit) = 0;
  virtual Result<PauseState> LoadPauses() = 0;
  // Pauses (or resumes) `sender` (kPauseEverything: everything; a resume of everything lifts
  // every pause). A resumed sender's messages that a pause moved are due now. Returns the
  // pauses now in force.
  virtual Result<PauseState> SetPause(const std::string& sender, bool paused,
                                      const std::string& actor, TimeMs now) = 0;
  virtual Status AppendAudit(const AuditEntry& entry) = 0;
  // Newest first, ids below `before_id` (0: from the newest).
  virtual Result<std::vector<AuditEntry>> ListAudit(int64_t before_id, int limit) = 0;
  // Messages of `producer` ("" every producer's) changed after `after`, oldest change first.
  virtual Result<std::vector<Message>> ListChanges(const std::string& producer,
                                                   const ChangeCursor& after, int limit) = 0;
  // Every message of `producer` ("" every producer's) that `filter` matches (its limit and
  // cursor aside), oldest first, from one snapshot, handed to `sink` one by one with its
  // attempts when `with_attempts`. A sink error stops it and is returned.
  virtual Status Export(
      const std::string& producer, const ListFilter& filter, bool with_attempts,
      const std::function<Status(const Message&, const std::vector<Attempt>&)>& sink) = 0;
  // A consistent copy of the whole database, written to the new file `path`.
  virtual Status Backup(const std::string& path) = 0;
  // Deletes up to `limit` final messages created before `cutoff`, with their ledgers.
  virtual Result<MaintenanceStep> DeleteFinalBefore(TimeMs cutoff, int limit) = 0;
  // Redacts the final messages among the next `limit` created before `cutoff`, from where the
  // redaction of earlier passes stopped (a message not final yet stops it, to be redacted once
  // it is), or from after `after` (a previous step's last_id) to go on past such a message.
  virtual Result<MaintenanceStep> RedactFinalBefore(TimeMs cutoff, int limit, TimeMs now,
                                                    const RecipientRedactor& recipient,
                                                    const std::string& after) = 0;
  // Gives up to `pages` free pages back to the file system, and empties the write-ahead log
  // when no reader needs it (so that what was deleted or redacted is gone from the files).
  virtual Status ReclaimSpace(int pages) = 0;
  virtual Result<SpaceUsage> GetSpaceUsage() = 0;
  // A write round trip, for readiness.
  virtual Status CheckWritable() = 0;

  // Tells `listener` of every commit from now until the subscription is destroyed. nullptr
  // when this backend cannot tell of changes: its users then look again at an interval.
  virtual std::unique_ptr<Subscription> Subscribe(ChangeListener listener) = 0;
};

}  // namespace sendq::store
