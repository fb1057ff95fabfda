-- sendq schema, version 4: settling unknown outcomes, and opt-outs.
--
-- A send that went out without an answer leaves its message queued with `unknown_since` set
-- to the start of that attempt: before anything else happens to it, a worker looks for it in
-- AgentPhone's list of the number's messages. Such a message does not expire while it waits
-- for that look-up (it may well have been sent), so the expiry index leaves it out.

ALTER TABLE messages ADD COLUMN unknown_since INTEGER;  -- start of the attempt to settle

DROP INDEX messages_expiry;
CREATE INDEX messages_expiry ON messages (expires_at) WHERE status = 0 AND unknown_since IS NULL;

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
