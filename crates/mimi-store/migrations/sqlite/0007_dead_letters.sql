-- Dead letters: outbox rows a follower refused permanently (a 4xx other
-- than 408, 425, 429 to a /notify carrying that event alone, -06 §5.5).
-- They are kept aside so the rest of their lane is delivered, until an
-- operator retries (back into the outbox at `seq`) or drops them. `id` is
-- the outbox row's id; `status` is the peer's HTTP status, NULL when the
-- hub refused the row itself (undecodable, bad room id); `answer` a
-- bounded prefix of the peer's answer or the hub's reason.
CREATE TABLE dead_letters (
    id           INTEGER PRIMARY KEY,
    destination  TEXT NOT NULL,
    room_id      TEXT NOT NULL,
    seq          INTEGER NOT NULL,
    payload      BLOB NOT NULL,
    attempts     INTEGER NOT NULL,
    enqueued_at  INTEGER NOT NULL,
    status       INTEGER,
    answer       TEXT NOT NULL,
    dead_at      INTEGER NOT NULL
);
