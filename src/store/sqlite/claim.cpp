// What a claim may take, and the housekeeping that runs before it.
//
// Each priority's due messages come from messages_due, (priority, next_attempt_at) over the
// queued messages that nothing holds, so one claim reads O(limit + log n) entries per priority:
// a lane's later messages are not in it (held), a scheduled message's next_attempt_at is its
// send_at, and a message outside its window or without a pacing token is moved to the time it
// may go instead of being passed over again and again.
#include <nlohmann/json.hpp>

#include "queue/delivery_policy.h"
#include "queue/send_window.h"
#include "store/sqlite/operations.h"
#include "store/sqlite/sql.h"
#include "util/log.h"

namespace sendq::store {
namespace {

// Claims look at this many rounds of priorities at most, so one claim stays short.
constexpr int kMaxClaimRounds = 16;

std::vector<std::string> SplitZones(const std::string& zones) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < zones.size()) {
    size_t comma = zones.find(',', start);
    if (comma == std::string::npos) comma = zones.size();
    out.push_back(zones.substr(start, comma - start));
    start = comma + 1;
  }
  return out;
}

// Why a message was postponed: messages.paced.
enum class PostponedFor : int64_t {
  kWindowOrPause = 0,  // its window, or a 429 pause: it books a pacing slot when due
  kPacingSlot = 1,     // `at` is the pacing slot booked for it
  kAdminPause = 2,     // its sender is paused: a resume makes it due at once
};

// An admin-paused sender's due message is looked at again this long after (a resume makes it
// due at once; this only bounds how long a missed resume could keep it).
constexpr DurationMs kAdminPauseRecheck = 3'600'000;

// Not now: due at `at` instead, without an attempt.
Status Postpone(Db& db, const std::string& id, TimeMs at, PostponedFor why) {
  Result<Stmt*> stmt =
      db.Prepare("UPDATE messages SET next_attempt_at = ?2, paced = ?3 WHERE id = ?1");
  if (!stmt.ok()) return stmt.status();
  (*stmt)->Bind(1, id).Bind(2, at).Bind(3, static_cast<int64_t>(why));
  return (*stmt)->Run();
}

// Leases the queued message `id` until o.now + o.lease and writes its open attempt row.
Result<std::optional<ClaimedMessage>> Lease(Db& db, const std::string& id, const ClaimOptions& o) {
  static const std::string lease_sql =
      Sql("UPDATE messages SET status = {sending}, lease_until = ?2, version = version + 1, "
          "attempt_count = attempt_count + 1, updated_at = ?1, paced = 0 "
          "WHERE id = ?3 AND status = {queued} RETURNING " SENDQ_STATE_COLUMNS);
  Result<Stmt*> lease = db.Prepare(lease_sql.c_str());
  if (!lease.ok()) return lease.status();
  (*lease)->Bind(1, o.now).Bind(2, o.now + o.lease).Bind(3, id);
  Result<bool> row = (*lease)->Step();
  if (!row.ok()) return row.status();
  if (!*row) return std::optional<ClaimedMessage>();
  ClaimedMessage claimed{ReadMessage(**lease), AttemptCount(**lease)};
  (*lease)->Reset();
  Result<Stmt*> attempt =
      db.Prepare("INSERT INTO attempts (message_id, number, started_at) VALUES (?1, ?2, ?3)");
  if (!attempt.ok()) return attempt.status();
  (*attempt)->Bind(1, id).Bind(2, static_cast<int64_t>(claimed.attempt_number)).Bind(3, o.now);
  if (Status st = (*attempt)->Run(); !st.ok()) return st;
  db.NoteChanged(id);
  return std::optional<ClaimedMessage>(std::move(claimed));
}

}  // namespace

// A due message the claim looked at.
struct Claimer::Candidate {
  std::string id;
  std::string producer;
  std::optional<std::string> to_number;
  std::string sender;
  std::optional<std::string> send_window;
  std::optional<std::string> window_zones;
  bool paced = false;  // its due time is a pacing slot booked for it
};

Result<std::vector<ClaimedMessage>> Claimer::Claim(Db& db, const ClaimOptions& o) {
  if (o.housekeeping) {
    Status st = ExpireQueued(db, o.now);
    if (st.ok()) st = RecoverExpiredLeases(db, o);
    if (!st.ok()) return st;
  }
  std::vector<ClaimedMessage> out;
  if (o.pauses != nullptr && o.pauses->global()) return out;  // an admin paused everything
  // Each round claims from the first priority that has an admissible due message, as many as
  // the bulk share allows, then looks at the order again.
  for (int round = 0; static_cast<int>(out.size()) < o.limit && round < kMaxClaimRounds; ++round) {
    bool took_any = false;
    for (Priority p : share_.Order()) {
      int want = o.limit - static_cast<int>(out.size());
      if (p != Priority::kBulk) {
        want = std::min(want, std::max(1, share_.UntilBulkOwed()));
      } else if (share_.UntilBulkOwed() <= 0) {
        want = 1;  // owed one claim, not all of them
      }
      Result<std::vector<Candidate>> due = DueCandidates(db, p, o.now, want);
      if (!due.ok()) return due.status();
      if (due->empty()) continue;
      Result<std::vector<ClaimedMessage>> claimed = AdmitAndLease(db, *due, o);
      if (!claimed.ok()) return claimed.status();
      for (ClaimedMessage& c : *claimed) {
        share_.Took(p);
        out.push_back(std::move(c));
      }
      if (!claimed->empty()) {
        took_any = true;
        break;
      }
    }
    if (!took_any) break;
  }
  if (Status st = AddRequests(db, &out); !st.ok()) return st;
  return out;
}

Result<EnqueueResult> Claimer::InsertAndClaim(Db& db, const NewMessage& nm, const ClaimOptions& o) {
  Result<EnqueueResult> stored = InsertOrReplay(db, nm);
  if (!stored.ok() || !stored->added()) return stored;
  const Message& m = stored->message;
  if (m.held || m.status != MessageStatus::kQueued) return stored;
  if (m.next_attempt_at <= o.now) {
    Candidate candidate{m.id,          nm.producer,    nm.to_number, m.sender.value_or(""),
                        m.send_window, m.window_zones, false};
    Result<std::vector<ClaimedMessage>> claimed = AdmitAndLease(db, {candidate}, o);
    if (!claimed.ok()) return claimed.status();
    if (!claimed->empty()) {
      share_.Took(m.priority);
      claimed->front().message.request_json = m.request_json;
      stored->claimed = std::move(claimed->front());
      return stored;
    }
  }
  db.NoteWorkAdded();  // not claimed now: the dispatcher takes it when it may go
  return stored;
}

Result<std::vector<Claimer::Candidate>> Claimer::DueCandidates(Db& db, Priority p, TimeMs now,
                                                               int limit) {
  static const std::string sql =
      Sql("SELECT id, producer, to_number, sender, send_window, window_zones, paced FROM "
          "messages INDEXED BY "
          "messages_due WHERE status = {queued} AND held = 0 AND priority = ?1 AND "
          "next_attempt_at <= ?2 AND (expires_at > ?2 OR unknown_since IS NOT NULL) "
          "ORDER BY next_attempt_at LIMIT ?3");
  Result<Stmt*> stmt = db.Prepare(sql.c_str());
  if (!stmt.ok()) return stmt.status();
  (*stmt)->Bind(1, static_cast<int64_t>(p)).Bind(2, now).Bind(3, static_cast<int64_t>(limit));
  std::vector<Candidate> out;
  for (;;) {
    Result<bool> row = (*stmt)->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    Stmt& r = **stmt;
    out.push_back(Candidate{r.Text(0), r.Text(1), r.OptText(2), r.OptText(3).value_or(""),
                            r.OptText(4), r.OptText(5),
                            r.Int(6) == static_cast<int64_t>(PostponedFor::kPacingSlot)});
  }
  return out;
}

// Leases the candidates that may go now; moves each of the others to the time it may (outside
// its send window: when the window opens; without a pacing token: to the slot booked for it).
Result<std::vector<ClaimedMessage>> Claimer::AdmitAndLease(Db& db,
                                                           const std::vector<Candidate>& candidates,
                                                           const ClaimOptions& o) {
  std::vector<ClaimedMessage> out;
  for (const Candidate& c : candidates) {
    // Its recipient opted out since it was queued (or retried): it fails instead.
    if (c.to_number) {
      Result<bool> suppressed = IsSuppressed(db, c.producer, *c.to_number);
      if (!suppressed.ok()) return suppressed.status();
      if (*suppressed) {
        if (Status st = FailSuppressed(db, c.producer, *c.to_number, o.now, c.id); !st.ok()) {
          return st;
        }
        continue;
      }
    }
    if (o.pauses != nullptr && o.pauses->Covers(c.sender)) {
      // Everything paused: it stays due. Its sender paused: off the due order until resumed.
      if (o.pauses->global()) continue;
      if (Status st = Postpone(db, c.id, o.now + kAdminPauseRecheck, PostponedFor::kAdminPause);
          !st.ok()) {
        return st;
      }
      continue;
    }
    TimeMs allowed = o.now;
    bool booked = false;  // `allowed` is a pacing slot booked for this message
    if (c.send_window && c.window_zones) {
      std::string problem;
      std::optional<SendWindow> window =
          ParseSendWindow(nlohmann::json::parse(*c.send_window, nullptr, false), &problem);
      if (window) {
        std::optional<TimeMs> opens = WindowOpenAt(*window, SplitZones(*c.window_zones), o.now);
        // A window that never opens again (the zone rules changed) no longer applies.
        if (opens) allowed = *opens;
      }
    }
    // A slot booked earlier is used only now, at its time; a message moved for its window or
    // a 429 pause books again when it comes due.
    if (allowed == o.now && o.pacer != nullptr) {
      allowed = std::max(allowed, o.pacer->PausedUntil(c.sender, o.now));
      if (allowed == o.now && !c.paced) {
        allowed = o.pacer->Book(c.sender, o.now);
        booked = allowed > o.now;
      }
    }
    if (allowed > o.now) {
      const PostponedFor why = booked ? PostponedFor::kPacingSlot : PostponedFor::kWindowOrPause;
      if (Status st = Postpone(db, c.id, allowed, why); !st.ok()) return st;
      continue;
    }
    Result<std::optional<ClaimedMessage>> leased = Lease(db, c.id, o);
    if (!leased.ok()) return leased.status();
    if (*leased) out.push_back(std::move(**leased));
  }
  return out;
}

Status ExpireQueued(Db& db, TimeMs now) {
  const ValidityEndDecision decision = DecideAfterValidityEnded();
  static const std::string sql =
      Sql("UPDATE messages INDEXED BY messages_expiry SET status = ?2, version = version + 1, "
          "updated_at = ?1, last_error = ?3 WHERE status = {queued} AND expires_at <= ?1 "
          "AND unknown_since IS NULL RETURNING id, producer, ordering_key, callback_url");
  Result<Stmt*> stmt = db.Prepare(sql.c_str());
  if (!stmt.ok()) return stmt.status();
  (*stmt)
      ->Bind(1, now)
      .Bind(2, static_cast<int64_t>(decision.new_status))
      .Bind(3, decision.last_error);
  struct Expired {
    std::string id;
    std::string producer;
    std::optional<std::string> key;
    std::optional<std::string> callback_url;
  };
  std::vector<Expired> expired;
  for (;;) {
    Result<bool> row = (*stmt)->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    db.NoteChanged((*stmt)->Text(0));
    log::Info("message_expired", {{"message_id", (*stmt)->Text(0)}});
    expired.push_back(
        Expired{(*stmt)->Text(0), (*stmt)->Text(1), (*stmt)->OptText(2), (*stmt)->OptText(3)});
  }
  (*stmt)->Reset();
  if (!IsTerminal(decision.new_status)) return Status::Ok();
  for (const Expired& e : expired) {
    if (Status st = ReleaseAfterFinal(db, e.producer, e.id, e.key); !st.ok()) return st;
    if (Status st = EmitEvent(db, e.id, e.producer, e.callback_url, "message.expired", now);
        !st.ok()) {
      return st;
    }
  }
  return Status::Ok();
}

// A `sending` message whose lease ran out: its worker died or hung, so the attempt's outcome
// is unknown. It is charged and queued to be looked up at AgentPhone first, once the request
// cannot be in flight any more (o.lost_send_settles_after past its start).
Status RecoverExpiredLeases(Db& db, const ClaimOptions& o) {
  static const std::string select_sql = Sql("SELECT " SENDQ_STATE_COLUMNS
                                            " FROM messages INDEXED BY messages_leases "
                                            "WHERE status = {sending} AND lease_until <= ?1");
  Result<Stmt*> select = db.Prepare(select_sql.c_str());
  if (!select.ok()) return select.status();
  (*select)->Bind(1, o.now);
  std::vector<std::pair<Message, int>> expired;
  for (;;) {
    Result<bool> row = (*select)->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    expired.emplace_back(ReadMessage(**select), AttemptCount(**select));
  }
  (*select)->Reset();
  // A look-up (the message already has an unknown send) that was cut short is not charged,
  // and the send it was looking for stays the one to find.
  static const std::string close_sql =
      Sql("UPDATE attempts SET finished_at = ?3, outcome = {outcome_unknown}, error = ?4, "
          "charged = ?5 WHERE message_id = ?1 AND number = ?2 AND outcome IS NULL");
  static const std::string update_sql =
      Sql("UPDATE messages SET status = {queued}, attempts = attempts + ?6, "
          "version = version + 1, updated_at = ?4, next_attempt_at = max(?4, ?7 + (SELECT "
          "started_at FROM attempts WHERE message_id = ?1 AND number = ?3)), lease_until = NULL, "
          "last_error = ?5, unknown_since = coalesce(unknown_since, (SELECT started_at FROM "
          "attempts WHERE message_id = ?1 AND number = ?3)) WHERE id = ?1 AND version = ?2");
  for (auto& [m, attempt_number] : expired) {
    const LostLeaseDecision decision = DecideAfterLostLease(attempt_number);
    const int64_t charged = m.unknown_since ? 0 : 1;
    Result<Stmt*> close_attempt = db.Prepare(close_sql.c_str());
    if (!close_attempt.ok()) return close_attempt.status();
    (*close_attempt)
        ->Bind(1, m.id)
        .Bind(2, static_cast<int64_t>(attempt_number))
        .Bind(3, o.now)
        .Bind(4, decision.attempt_error)
        .Bind(5, charged);
    if (Status st = (*close_attempt)->Run(); !st.ok()) return st;
    Result<Stmt*> update = db.Prepare(update_sql.c_str());
    if (!update.ok()) return update.status();
    (*update)
        ->Bind(1, m.id)
        .Bind(2, m.version)
        .Bind(3, static_cast<int64_t>(attempt_number))
        .Bind(4, o.now)
        .Bind(5, decision.last_error)
        .Bind(6, charged)
        .Bind(7, o.lost_send_settles_after);
    if (Status st = (*update)->Run(); !st.ok()) return st;
    db.NoteChanged(m.id);
    db.NoteWorkAdded();  // it still holds its lane
    if (Status st = EmitEvent(db, m.id, m.producer, m.callback_url, "message.unknown", o.now);
        !st.ok()) {
      return st;
    }
    log::Warn("lease_expired", {{"message_id", m.id}, {"attempt", attempt_number}});
  }
  return Status::Ok();
}

}  // namespace sendq::store
