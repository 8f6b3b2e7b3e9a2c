-- Parent-dependent rooms (room-policy §Base Room policy): a child lives on
-- its parent's hub and follows its participants, so the hub finds a
-- parent's children when the parent's membership changes. NULL for rooms
-- without a parent.
ALTER TABLE rooms ADD COLUMN parent_room TEXT;
CREATE INDEX rooms_parent_room ON rooms (parent_room);
