-- One copy of each fanned-out event per provider (docs/architecture.md
-- "Delivery to devices"). A follower logs each FanoutMessage once in
-- `delivery_log`; a device reads the events of the rooms it subscribes to
-- past its cursor. This replaces the per-device queues (`client_events`),
-- which held one row per event and member device.
--
-- `seq` is the device-facing position: it grows in commit order over the
-- whole provider, so one number per device (`client_cursors`) says how far
-- it has read. `recipient` is NULL for an event of every subscriber of the
-- room, or the one device a Welcome is for.
CREATE TABLE delivery_log (
    seq         INTEGER PRIMARY KEY,
    room_id     TEXT NOT NULL,
    recipient   TEXT,
    payload     BLOB NOT NULL,
    enqueued_at INTEGER NOT NULL
);
CREATE INDEX delivery_log_room ON delivery_log (room_id, seq) WHERE recipient IS NULL;
CREATE INDEX delivery_log_recipient ON delivery_log (recipient, seq) WHERE recipient IS NOT NULL;
CREATE INDEX delivery_log_enqueued ON delivery_log (enqueued_at);

-- The last `seq` handed out. SQLite has one writer, so numbering under it
-- is commit order.
CREATE TABLE delivery_log_head (
    one      INTEGER PRIMARY KEY CHECK (one = 1),
    last_seq INTEGER NOT NULL
);
INSERT INTO delivery_log_head (one, last_seq)
SELECT 1, COALESCE(MAX(last_seq), 0) FROM client_queue_heads;

-- How far each device has acknowledged.
CREATE TABLE client_cursors (
    client_id TEXT PRIMARY KEY,
    acked_seq INTEGER NOT NULL
);

-- A subscriber sees the room's events after `from_seq`.
ALTER TABLE room_subscriptions ADD COLUMN from_seq INTEGER NOT NULL DEFAULT 0;

-- Events still queued for a device become events addressed to it, numbered
-- above every old per-device number: each device's position only grows.
INSERT INTO delivery_log (seq, room_id, recipient, payload, enqueued_at)
SELECT (SELECT last_seq FROM delivery_log_head)
         + ROW_NUMBER() OVER (ORDER BY client_id, seq),
       room_id, client_id, payload, enqueued_at
FROM client_events;
UPDATE delivery_log_head SET last_seq = last_seq + (SELECT COUNT(*) FROM client_events);

DROP TABLE client_events;
DROP TABLE client_queue_heads;
