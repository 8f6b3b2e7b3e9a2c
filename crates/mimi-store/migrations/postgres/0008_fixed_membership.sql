-- Fixed-membership rooms (room-policy §Base Room policy): "only a single
-- fixed-membership room can exist for any unique set of participants".
-- The key is the room's sorted participant list; NULL for other rooms,
-- which the unique index does not compare.
ALTER TABLE rooms ADD COLUMN fixed_membership_key TEXT;
CREATE UNIQUE INDEX rooms_fixed_membership_key ON rooms (fixed_membership_key);
