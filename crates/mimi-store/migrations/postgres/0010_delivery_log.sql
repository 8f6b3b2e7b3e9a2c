-- One copy of each fanned-out event per provider (docs/architecture.md
-- "Delivery to devices"). A follower logs each FanoutMessage once in
-- `delivery_log`; a device reads the events of the rooms it subscribes to
-- past its cursor. This replaces the per-device queues (`client_events`),
-- which held one row per event and member device.
--
-- `seq` is the device-facing position. On PostgreSQL it is the writing
-- transaction's id shifted left by 20 bits plus the event's place in that
-- transaction, and readers only see events of transactions older than
-- every transaction still running (the snapshot's xmin): so what a device
-- has read never gains an event below its cursor, without numbering every
-- event under one lock. `recipient` is NULL for an event of every
-- subscriber of the room, or the one device a Welcome is for.
CREATE TABLE delivery_log (
    seq         BIGINT PRIMARY KEY,
    room_id     TEXT NOT NULL,
    recipient   TEXT,
    payload     BYTEA NOT NULL,
    enqueued_at BIGINT NOT NULL
);
CREATE INDEX delivery_log_room ON delivery_log (room_id, seq) WHERE recipient IS NULL;
CREATE INDEX delivery_log_recipient ON delivery_log (recipient, seq) WHERE recipient IS NOT NULL;
CREATE INDEX delivery_log_enqueued ON delivery_log (enqueued_at);

-- How far each device has acknowledged.
CREATE TABLE client_cursors (
    client_id TEXT PRIMARY KEY,
    acked_seq BIGINT NOT NULL
);

-- A subscriber sees the room's events after `from_seq`.
ALTER TABLE room_subscriptions ADD COLUMN from_seq BIGINT NOT NULL DEFAULT 0;

-- Events still queued for a device become events addressed to it, numbered
-- in this transaction (above every old per-device number).
INSERT INTO delivery_log (seq, room_id, recipient, payload, enqueued_at)
SELECT (pg_current_xact_id()::text::bigint << 20)
         + ROW_NUMBER() OVER (ORDER BY client_id, seq),
       room_id, client_id, payload, enqueued_at
FROM client_events;

DROP TABLE client_events;
DROP TABLE client_queue_heads;
