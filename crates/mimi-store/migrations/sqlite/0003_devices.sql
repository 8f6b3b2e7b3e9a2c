-- Devices registered through the client API (docs/client-api.md) and the
-- SHA-256 of their bearer tokens.
CREATE TABLE devices (
    device_uri    TEXT PRIMARY KEY,
    user_uri      TEXT NOT NULL,
    token_sha256  BLOB NOT NULL UNIQUE,
    registered_at BIGINT NOT NULL
);
CREATE INDEX devices_user ON devices (user_uri);
