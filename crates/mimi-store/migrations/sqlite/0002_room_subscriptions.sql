-- Local devices that receive a room's fanned-out events (docs/client-api.md
-- "Delivery to clients").
CREATE TABLE room_subscriptions (
    room_id   TEXT NOT NULL,
    client_id TEXT NOT NULL,
    PRIMARY KEY (room_id, client_id)
);
CREATE INDEX room_subscriptions_client ON room_subscriptions (client_id);
