-- sendq schema, version 3: the hot apart from the cold.
--
-- `messages` keeps each message's small state: what the claim, the lanes and the lists read
-- and what every status change rewrites. The request and AgentPhone's answer, the large text,
-- move to tables of their own, each row written once: a status change then rewrites a row of
-- a few hundred bytes instead of one of a kilobyte or more (which, in a WITHOUT ROWID table,
-- also spilled to an overflow page). They are rowid tables, as SQLite advises for large rows.
--
-- AgentPhone's answer is kept once: the ledger row of the attempt that sent the message reads
-- it from `answers` instead of holding a copy in attempts.response_body.

CREATE TABLE requests (
  id       TEXT PRIMARY KEY,  -- messages.id
  request  TEXT NOT NULL,     -- normalised AgentPhone request (JSON)
  controls TEXT               -- the queue controls as given (canonical JSON), part of the
                              -- idempotency fingerprint
);
INSERT INTO requests (id, request, controls) SELECT id, request, controls FROM messages ORDER BY id;

CREATE TABLE answers (
  id                TEXT PRIMARY KEY,  -- messages.id
  upstream_response TEXT NOT NULL      -- AgentPhone's 2xx answer, as it came
);
INSERT INTO answers (id, upstream_response)
  SELECT id, upstream_response FROM messages WHERE upstream_response IS NOT NULL ORDER BY id;

UPDATE attempts SET response_body = NULL
  WHERE outcome = 0 AND message_id IN (SELECT id FROM answers);

ALTER TABLE messages DROP COLUMN request;
ALTER TABLE messages DROP COLUMN upstream_response;
ALTER TABLE messages DROP COLUMN controls;
