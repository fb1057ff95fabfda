-- sendq schema, version 2: queue controls. Conversation order, priorities, schedules, send
-- windows and pacing are all rules about what a claim may take, so they live in the columns
-- the claim reads. messages.priority holds the numbers of Priority in src/queue/message.h.
--
-- Messages queued before this version keep no ordering key (they are not ordered), are
-- `normal`, and have no schedule or window.

ALTER TABLE messages ADD COLUMN ordering_key TEXT;                   -- the lane; NULL: unordered
ALTER TABLE messages ADD COLUMN lane_seq     INTEGER NOT NULL DEFAULT 0;  -- commit order in it
ALTER TABLE messages ADD COLUMN held         INTEGER NOT NULL DEFAULT 0;  -- 1: an earlier one
                                                                      -- in its lane is not final
ALTER TABLE messages ADD COLUMN priority     INTEGER NOT NULL DEFAULT 1;  -- 0 high 1 normal 2 bulk
ALTER TABLE messages ADD COLUMN sender       TEXT;     -- number_id, from_number or agent_id
ALTER TABLE messages ADD COLUMN send_at      INTEGER;  -- as asked; next_attempt_at starts there
ALTER TABLE messages ADD COLUMN send_window  TEXT;     -- {"start","end","tz"} (JSON)
ALTER TABLE messages ADD COLUMN window_zones TEXT;     -- the zones it is read in, comma-separated
ALTER TABLE messages ADD COLUMN paced        INTEGER NOT NULL DEFAULT 0;  -- 1: next_attempt_at
                                                                      -- is a booked pacing slot
ALTER TABLE messages ADD COLUMN controls     TEXT;     -- the controls as given (canonical JSON),
                                                       -- part of the idempotency fingerprint

UPDATE messages SET sender = coalesce(json_extract(request, '$.number_id'),
                                      json_extract(request, '$.from_number'),
                                      json_extract(request, '$.agent_id'))
  WHERE status < 2;

-- The claim takes due messages that nothing holds, one priority at a time, soonest first.
DROP INDEX messages_due;
CREATE INDEX messages_due ON messages (priority, next_attempt_at) WHERE status = 0 AND held = 0;
-- Each lane's messages that are not final (queued or sending), in commit order: its head is
-- the first. Enqueue appends, a final message releases the next.
CREATE INDEX messages_lanes ON messages (producer, ordering_key, lane_seq)
  WHERE status < 2 AND ordering_key IS NOT NULL;
