-- mimi-store schema, SQLite dialect (embedded, single process).
-- Keep in step with migrations/postgres/0001_init.sql.

-- KeyPackages (draft-ietf-mimi-protocol-06 §4.3), provider-local.
CREATE TABLE clients (
    client_uri TEXT PRIMARY KEY,
    user_uri   TEXT NOT NULL
);
CREATE INDEX clients_user ON clients (user_uri, client_uri);

CREATE TABLE key_packages (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    client_uri      TEXT NOT NULL REFERENCES clients (client_uri) ON DELETE CASCADE,
    key_package_ref BLOB NOT NULL UNIQUE,
    key_package     BLOB NOT NULL,
    not_after       INTEGER NOT NULL,
    last_resort     INTEGER NOT NULL
);
CREATE INDEX key_packages_claim ON key_packages (client_uri, last_resort, id);
CREATE INDEX key_packages_expiry ON key_packages (not_after);

-- Target side: which local client a claimed KeyPackageRef belongs to (Welcome routing).
CREATE TABLE key_package_claims (
    key_package_ref BLOB PRIMARY KEY,
    client_uri      TEXT NOT NULL,
    claimed_at      INTEGER NOT NULL
);

-- Hub side: which provider a KeyPackageRef in a Welcome must go to.
CREATE TABLE key_package_routes (
    key_package_ref BLOB PRIMARY KEY,
    room_id         TEXT NOT NULL,
    provider_domain TEXT NOT NULL
);

-- Rooms hosted by this hub. `epoch` is the compare-and-set target (DESIGN.md
-- "Scaling past one machine"); `state_version` guards same-epoch state writes.
CREATE TABLE rooms (
    room_id       TEXT PRIMARY KEY,
    epoch         INTEGER NOT NULL,
    state_version INTEGER NOT NULL,
    group_state   BLOB NOT NULL,
    last_seq      INTEGER NOT NULL,
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL
);

-- Per-room totally ordered event log.
CREATE TABLE room_events (
    room_id        TEXT NOT NULL REFERENCES rooms (room_id) ON DELETE CASCADE,
    seq            INTEGER NOT NULL,
    epoch          INTEGER NOT NULL,
    new_epoch      INTEGER NOT NULL,
    payload        BLOB NOT NULL,
    accepted_at_ms INTEGER NOT NULL,
    PRIMARY KEY (room_id, seq)
);

-- Durable outbox. A lane is (destination, room_id); lanes are the unit of
-- leasing so one lane is only ever delivered by one worker, in order.
CREATE TABLE outbox_lanes (
    destination     TEXT NOT NULL,
    room_id         TEXT NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    leased_until    INTEGER,
    PRIMARY KEY (destination, room_id)
);
CREATE INDEX outbox_lanes_due ON outbox_lanes (next_attempt_at);

CREATE TABLE outbox (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    destination   TEXT NOT NULL,
    room_id       TEXT NOT NULL,
    seq           INTEGER NOT NULL,
    payload       BLOB NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    last_error    TEXT,
    enqueued_at   INTEGER NOT NULL,
    leased_until  INTEGER
);
CREATE INDEX outbox_lane ON outbox (destination, room_id, seq, id);

-- Follower inbox dedup of /notify requests (-06 §4.6).
CREATE TABLE notify_seen (
    hub_domain  TEXT NOT NULL,
    body_sha256 BLOB NOT NULL,
    seen_at     INTEGER NOT NULL,
    PRIMARY KEY (hub_domain, body_sha256)
);
CREATE INDEX notify_seen_at ON notify_seen (seen_at);

-- Per-client delivery queues (provider-internal).
CREATE TABLE client_queue_heads (
    client_id TEXT PRIMARY KEY,
    last_seq  INTEGER NOT NULL
);

CREATE TABLE client_events (
    client_id     TEXT NOT NULL,
    seq           INTEGER NOT NULL,
    room_id       TEXT NOT NULL,
    payload       BLOB NOT NULL,
    enqueued_at   INTEGER NOT NULL,
    PRIMARY KEY (client_id, seq)
);
