-- sendq schema, version 1. Times are milliseconds since the Unix epoch (UTC).
-- messages.status and attempts.outcome hold the numbers of MessageStatus and AttemptOutcome
-- in src/queue/message.h: they are stored on disk, never renumber them.

CREATE TABLE messages (
  id                      TEXT PRIMARY KEY,      -- sq_<ulid>: sorts by creation time
  producer                TEXT NOT NULL,         -- the producer token's name, never the token
  idempotency_key         TEXT,
  request                 TEXT NOT NULL,         -- normalised AgentPhone request (JSON)
  agent_id                TEXT,                  -- copied from request, for filtering
  to_number               TEXT,                  -- copied from request, for filtering
  status                  INTEGER NOT NULL,      -- 0 queued 1 sending 2 sent 3 failed 4 canceled
  attempts                INTEGER NOT NULL DEFAULT 0,  -- charged attempts
  attempt_count           INTEGER NOT NULL DEFAULT 0,  -- ledger rows, charged or not
  version                 INTEGER NOT NULL DEFAULT 1,  -- bumped on each change; fencing token
  created_at              INTEGER NOT NULL,
  updated_at              INTEGER NOT NULL,
  next_attempt_at         INTEGER NOT NULL,
  expires_at              INTEGER NOT NULL,
  lease_until             INTEGER,
  sent_at                 INTEGER,
  last_error              TEXT,
  provider_message_id     TEXT,
  channel                 TEXT,
  from_number             TEXT,
  sent_to_number          TEXT,
  conversation_id         TEXT,
  reply_parent_unresolved INTEGER,
  upstream_response       TEXT
) WITHOUT ROWID;

-- Idempotency keys are scoped to the producer.
CREATE UNIQUE INDEX messages_idempotency ON messages (producer, idempotency_key)
  WHERE idempotency_key IS NOT NULL;
-- The dispatcher's work queue: due messages, and the soonest due time.
CREATE INDEX messages_due ON messages (next_attempt_at) WHERE status = 0;
-- Validity sweeps over waiting messages.
CREATE INDEX messages_expiry ON messages (expires_at) WHERE status = 0;
-- Leases of in-flight messages, for recovery.
CREATE INDEX messages_leases ON messages (lease_until) WHERE status = 1;
-- Listing per producer, newest first, and the per-status counts and oldest queued message.
CREATE INDEX messages_producer ON messages (producer, id);
CREATE INDEX messages_status ON messages (status, id);
CREATE INDEX messages_provider_id ON messages (provider_message_id)
  WHERE provider_message_id IS NOT NULL;

CREATE TABLE attempts (
  message_id    TEXT NOT NULL REFERENCES messages (id),
  number        INTEGER NOT NULL,  -- 1, 2, ... per message
  started_at    INTEGER NOT NULL,
  finished_at   INTEGER,
  outcome       INTEGER,           -- NULL while in flight; 0 sent 1 retryable 2 permanent 3 unknown 4 upstream_paused
  http_status   INTEGER,
  error         TEXT,
  response_body TEXT,              -- truncated
  charged       INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (message_id, number)
) WITHOUT ROWID;
