-- sendq schema, version 4: settling unknown outcomes, reactions and replies to queued messages,
-- runaway guards, opt-outs, and producer callbacks.
--
-- A send that went out without an answer leaves its message queued with `unknown_since` set
-- to the start of that attempt: before anything else happens to it, a worker looks for it in
-- AgentPhone's list of the number's messages. Such a message does not expire while it waits
-- for that look-up (it may well have been sent), so the expiry index leaves it out.

ALTER TABLE messages ADD COLUMN unknown_since INTEGER;  -- start of the attempt to settle

DROP INDEX messages_expiry;
CREATE INDEX messages_expiry ON messages (expires_at) WHERE status = 0 AND unknown_since IS NULL;

-- A reaction (POST /v1/messages/{id}/reactions) is queued like a message: reaction_to is the
-- message it is for (AgentPhone's msg_ id or a sendq sq_ id). A reaction or a reply to a sendq
-- message waits for that message (parent_id) to be final: it joins the parent's lane, or the
-- lane "after:<parent_id>" when the parent has none.
ALTER TABLE messages ADD COLUMN reaction_to TEXT;
ALTER TABLE messages ADD COLUMN parent_id   TEXT;

-- The runaway guards count a producer's recent messages to one recipient (and those with the
-- same body) from this index; body_hash is a 64-bit FNV-1a of the request's body.
ALTER TABLE messages ADD COLUMN body_hash INTEGER;
ALTER TABLE messages ADD COLUMN status_reason TEXT;  -- why a rule held or failed it:
                                                      -- recipient_cap, duplicate_body, suppressed
CREATE INDEX messages_recipient ON messages (producer, to_number, created_at)
  WHERE to_number IS NOT NULL;

-- Opt-outs: a producer's messages to `number` (E.164) are not sent.
CREATE TABLE suppressions (
  producer   TEXT NOT NULL,
  number     TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  source     TEXT NOT NULL,  -- 'api' (PUT /v1/suppressions) or 'inbound' (an inbound STOP)
  reason     TEXT,
  PRIMARY KEY (producer, number)
) WITHOUT ROWID;

-- AgentPhone's webhook deliveries already applied (X-Webhook-ID), so a repeat is not applied
-- twice. Entries older than a day are removed.
CREATE TABLE inbound_webhooks (
  id          TEXT PRIMARY KEY,
  received_at INTEGER NOT NULL
) WITHOUT ROWID;

-- Producer callbacks. A producer registers endpoints for the events it wants; a message may
-- name its own (callback_url, from its `sendq` member). Each event is written to `outbox` in
-- the transaction of the change that causes it, then delivered (signed) at least once, with
-- every try in `callback_attempts`. No secret is stored: each endpoint's signing secret is
-- derived from the server's callback key and the endpoint's id.
ALTER TABLE messages ADD COLUMN callback_url TEXT;

CREATE TABLE webhooks (
  id         TEXT PRIMARY KEY,  -- wh_<random>
  producer   TEXT NOT NULL,
  url        TEXT NOT NULL,
  events     TEXT NOT NULL,     -- comma-separated: message.sent, message.failed, ...
  created_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX webhooks_producer ON webhooks (producer);

CREATE TABLE outbox (
  id              INTEGER PRIMARY KEY,
  event_id        TEXT NOT NULL,     -- evt_<random>: X-Sendq-Event-Id, the same on every try
  webhook_id      TEXT,              -- NULL: the message's own callback_url
  producer        TEXT NOT NULL,
  url             TEXT NOT NULL,
  event           TEXT NOT NULL,     -- message.sent, ...
  message_id      TEXT NOT NULL,
  created_at      INTEGER NOT NULL,
  next_attempt_at INTEGER NOT NULL,
  lease_until     INTEGER,           -- while a delivery is in flight
  attempts        INTEGER NOT NULL DEFAULT 0,
  state           INTEGER NOT NULL DEFAULT 0,  -- 0 pending, 1 delivered, 2 given up
  last_error      TEXT
);
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE state = 0;
CREATE INDEX outbox_webhook ON outbox (webhook_id, id) WHERE webhook_id IS NOT NULL;

CREATE TABLE callback_attempts (
  outbox_id   INTEGER NOT NULL,
  number      INTEGER NOT NULL,
  started_at  INTEGER NOT NULL,
  finished_at INTEGER NOT NULL,
  http_status INTEGER,
  error       TEXT,
  PRIMARY KEY (outbox_id, number)
) WITHOUT ROWID;
