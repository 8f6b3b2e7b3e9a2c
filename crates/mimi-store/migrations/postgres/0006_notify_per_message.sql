-- Follower inbox dedup per FanoutMessage (-06 §5.5) instead of per /notify
-- body: a message the hub resends in a differently split batch is still
-- recognised. The key is the SHA-256 of the message's exact encoding,
-- scoped by hub and room. Per-body hashes cannot be converted into it, so
-- they are dropped.
DROP TABLE notify_seen;
CREATE TABLE notify_seen (
    hub_domain     TEXT NOT NULL,
    room_id        TEXT NOT NULL,
    message_sha256 BYTEA NOT NULL,
    seen_at        BIGINT NOT NULL,
    PRIMARY KEY (hub_domain, room_id, message_sha256)
);
CREATE INDEX notify_seen_at ON notify_seen (seen_at);
