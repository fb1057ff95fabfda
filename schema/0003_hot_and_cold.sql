-- sendq schema, version 3: the hot apart from the cold.
--
-- `messages` keeps each message's small state: what the claim, the lanes and the lists read
-- and what every status change rewrites. The request and AgentPhone's answer, the large text,
-- move to tables of their own, each row written once: a status change then rewrites a row of
-- a few hundred bytes instead of one of a kilobyte or more (which, in a WITHOUT ROWID table,
-- also spilled to an overflow page). They are keyed by the message id alone (WITHOUT ROWID:
-- one b-tree each, not a table and an index); a large request spills to overflow pages, but
-- it is written once and never rewritten.
--
-- AgentPhone's answer is kept once: the ledger row of the attempt that sent the message reads
-- it from `answers` instead of holding a copy in attempts.response_body.
--
-- `messages` is rebuilt once (SQLite's procedure for changing a table: new table, copy,
-- drop, rename, indexes again); sendq runs this with foreign keys off and checks them before
-- the commit.

CREATE TABLE requests (
  id       TEXT PRIMARY KEY,  -- messages.id
  request  TEXT NOT NULL,     -- normalised AgentPhone request (JSON)
  controls TEXT               -- the queue controls as given (canonical JSON), part of the
                              -- idempotency fingerprint
) WITHOUT ROWID;
INSERT INTO requests (id, request, controls) SELECT id, request, controls FROM messages ORDER BY id;

CREATE TABLE answers (
  id                TEXT PRIMARY KEY,  -- messages.id
  upstream_response TEXT NOT NULL      -- AgentPhone's 2xx answer, as it came
) WITHOUT ROWID;
INSERT INTO answers (id, upstream_response)
  SELECT id, upstream_response FROM messages WHERE upstream_response IS NOT NULL ORDER BY id;

UPDATE attempts SET response_body = NULL
  WHERE outcome = 0 AND message_id IN (SELECT id FROM answers);

CREATE TABLE messages_v3 (
  id                      TEXT PRIMARY KEY,      -- sq_<ulid>: sorts by creation time
  producer                TEXT NOT NULL,         -- the producer token's name, never the token
  idempotency_key         TEXT,
  agent_id                TEXT,                  -- copied from the request, for filtering
  to_number               TEXT,                  -- copied from the request, for filtering
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
  ordering_key            TEXT,                  -- the lane; NULL: unordered
  lane_seq                INTEGER NOT NULL DEFAULT 0,  -- commit order in it
  held                    INTEGER NOT NULL DEFAULT 0,  -- 1: an earlier one in its lane is not final
  priority                INTEGER NOT NULL DEFAULT 1,  -- 0 high 1 normal 2 bulk
  sender                  TEXT,                  -- number_id, from_number or agent_id
  send_at                 INTEGER,               -- as asked; next_attempt_at starts there
  send_window             TEXT,                  -- {"start","end","tz"} (JSON)
  window_zones            TEXT,                  -- the zones it is read in, comma-separated
  paced                   INTEGER NOT NULL DEFAULT 0   -- 1: next_attempt_at is a booked pacing slot
) WITHOUT ROWID;
INSERT INTO messages_v3 (id, producer, idempotency_key, agent_id, to_number, status, attempts,
    attempt_count, version, created_at, updated_at, next_attempt_at, expires_at, lease_until,
    sent_at, last_error, provider_message_id, channel, from_number, sent_to_number,
    conversation_id, reply_parent_unresolved, ordering_key, lane_seq, held, priority, sender,
    send_at, send_window, window_zones, paced)
  SELECT id, producer, idempotency_key, agent_id, to_number, status, attempts, attempt_count,
    version, created_at, updated_at, next_attempt_at, expires_at, lease_until, sent_at,
    last_error, provider_message_id, channel, from_number, sent_to_number, conversation_id,
    reply_parent_unresolved, ordering_key, lane_seq, held, priority, sender, send_at,
    send_window, window_zones, paced
  FROM messages ORDER BY id;
DROP TABLE messages;
ALTER TABLE messages_v3 RENAME TO messages;

-- The indexes of version 2, unchanged.
CREATE UNIQUE INDEX messages_idempotency ON messages (producer, idempotency_key)
  WHERE idempotency_key IS NOT NULL;
CREATE INDEX messages_due ON messages (priority, next_attempt_at) WHERE status = 0 AND held = 0;
CREATE INDEX messages_expiry ON messages (expires_at) WHERE status = 0;
CREATE INDEX messages_leases ON messages (lease_until) WHERE status = 1;
CREATE INDEX messages_producer ON messages (producer, id);
CREATE INDEX messages_status ON messages (status, id);
CREATE INDEX messages_provider_id ON messages (provider_message_id)
  WHERE provider_message_id IS NOT NULL;
CREATE INDEX messages_lanes ON messages (producer, ordering_key, lane_seq)
  WHERE status < 2 AND ordering_key IS NOT NULL;
