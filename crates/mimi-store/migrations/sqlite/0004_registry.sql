-- Consent entries (-06 §4.8, §7), user settings and profiles (-06 §4.9),
-- abuse reports (-06 §4.10).

-- The latest operation per ConsentScope; room_id '' means "any room".
CREATE TABLE consent_entries (
    requester_uri TEXT NOT NULL,
    target_uri    TEXT NOT NULL,
    room_id       TEXT NOT NULL,
    operation     TEXT NOT NULL,
    updated_at    BIGINT NOT NULL,
    PRIMARY KEY (requester_uri, target_uri, room_id)
);

CREATE TABLE user_settings (
    user_uri         TEXT PRIMARY KEY,
    consent_required INTEGER NOT NULL,
    handle           TEXT,
    nick             TEXT,
    email            TEXT,
    phone            TEXT,
    given_name       TEXT,
    family_name      TEXT,
    discoverability  TEXT NOT NULL
);

CREATE TABLE abuse_reports (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    room_id         TEXT NOT NULL,
    source_provider TEXT NOT NULL,
    reporting_user  TEXT NOT NULL,
    alleged_abuser  TEXT NOT NULL,
    report          BLOB NOT NULL,
    received_at     BIGINT NOT NULL
);
