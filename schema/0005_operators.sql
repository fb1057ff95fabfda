-- sendq schema, version 5: what operators need. Admin pauses, the audit of admin actions, a
-- feed of changes for followers (sendq tail), and the bookkeeping of retention and redaction.

-- Sending paused by an admin: sender '*' is everything, any other value one sender (a
-- number_id, from_number or agent_id, as messages.sender holds it). Kept across restarts.
CREATE TABLE pauses (
  sender     TEXT PRIMARY KEY,
  created_at INTEGER NOT NULL,
  actor      TEXT NOT NULL
) WITHOUT ROWID;

-- Every admin action: who, what, with which filters, and how many messages it matched and
-- changed.
CREATE TABLE audit_log (
  id      INTEGER PRIMARY KEY AUTOINCREMENT,
  at      INTEGER NOT NULL,
  actor   TEXT NOT NULL,
  action  TEXT NOT NULL,
  details TEXT NOT NULL,  -- JSON
  matched INTEGER,
  changed INTEGER
);

-- GET /v1/messages/changes reads messages in the order they last changed.
CREATE INDEX messages_updated ON messages (updated_at, id);

-- A message whose personal data was replaced (--redact-after): when.
-- (messages.paced = 2: the message was moved off the due order because its sender is paused;
-- a resume makes it due again.)
ALTER TABLE messages ADD COLUMN redacted_at INTEGER;

-- Progress of the background retention and redaction passes (a message id they have passed).
CREATE TABLE maintenance (
  name  TEXT PRIMARY KEY,
  value TEXT NOT NULL
) WITHOUT ROWID;
