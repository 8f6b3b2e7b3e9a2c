//! Row conversions and SQL text shared by both backends (both accept `$N` parameters).

use crate::error::{Result, to_u64};
use crate::types::*;

pub(crate) type KeyPackageRow = (Vec<u8>, Vec<u8>, i64, bool);

pub(crate) fn claimed(
    (key_package_ref, key_package, not_after, last_resort): KeyPackageRow,
) -> ClaimedKeyPackage {
    ClaimedKeyPackage {
        key_package_ref,
        key_package,
        not_after,
        last_resort,
    }
}

pub(crate) type RoomRow = (String, i64, i64, Vec<u8>, i64, i64, i64);

pub(crate) fn room_record(row: RoomRow) -> Result<RoomRecord> {
    let (room_id, epoch, state_version, group_state, last_seq, created_at_ms, updated_at_ms) = row;
    Ok(RoomRecord {
        room_id,
        epoch: to_u64(epoch, "epoch")?,
        state_version: to_u64(state_version, "state version")?,
        group_state,
        last_seq: to_u64(last_seq, "seq")?,
        created_at_ms,
        updated_at_ms,
    })
}

pub(crate) type OutboxRow = (i64, String, String, i64, Vec<u8>, i64);

pub(crate) fn outbox_item(
    (id, destination, room_id, seq, payload, attempts): OutboxRow,
) -> Result<OutboxItem> {
    Ok(OutboxItem {
        id: to_u64(id, "outbox id")?,
        destination,
        room_id,
        seq: to_u64(seq, "seq")?,
        payload,
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
    })
}

/// Releases a lane whose current lease has no rows left.
pub(crate) const RELEASE_FINISHED_LANE: &str = "UPDATE outbox_lanes SET leased_until = NULL
     WHERE destination = $1 AND room_id = $2 AND leased_until IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM outbox o
                       WHERE o.destination = outbox_lanes.destination
                         AND o.room_id = outbox_lanes.room_id
                         AND o.leased_until = outbox_lanes.leased_until)";

pub(crate) const DUE_DESTINATIONS: &str = "SELECT DISTINCT l.destination FROM outbox_lanes l
     WHERE l.next_attempt_at <= $1
       AND (l.leased_until IS NULL OR l.leased_until <= $1)
       AND EXISTS (SELECT 1 FROM outbox o
                   WHERE o.destination = l.destination AND o.room_id = l.room_id)
     ORDER BY l.destination";

pub(crate) const INSERT_NOTIFY: &str = "INSERT INTO notify_seen (hub_domain, body_sha256, seen_at)
     VALUES ($1, $2, $3) ON CONFLICT (hub_domain, body_sha256) DO NOTHING";
