//! Row conversions, argument checks and SQL text of the shared implementation.

use std::time::Duration;

use crate::error::{Result, StoreError, to_i64, to_u64};
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

pub(crate) type RoomRow = (String, i64, i64, Vec<u8>, i64, i64, i64, Option<String>);

pub(crate) fn room_record(row: RoomRow) -> Result<RoomRecord> {
    let (
        room_id,
        epoch,
        state_version,
        group_state,
        last_seq,
        created_at_ms,
        updated_at_ms,
        parent_room,
    ) = row;
    Ok(RoomRecord {
        room_id,
        epoch: to_u64(epoch, "epoch")?,
        state_version: to_u64(state_version, "state version")?,
        group_state,
        last_seq: to_u64(last_seq, "seq")?,
        created_at_ms,
        updated_at_ms,
        parent_room,
    })
}

pub(crate) type OutboxRow = (i64, String, String, i64, Vec<u8>, i64);

pub(crate) fn outbox_item(
    (id, destination, room_id, seq, payload, attempts): OutboxRow,
) -> Result<OutboxItem> {
    Ok(OutboxItem {
        id: OutboxId(to_u64(id, "outbox id")?),
        destination,
        room_id,
        seq: to_u64(seq, "seq")?,
        payload,
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
    })
}

pub(crate) type DeadLetterRow = (
    i64,
    String,
    String,
    i64,
    Vec<u8>,
    i64,
    i64,
    Option<i64>,
    String,
    i64,
);

pub(crate) fn dead_letter(
    (id, destination, room_id, seq, payload, attempts, enqueued_at_ms, status, answer, dead_at_ms): DeadLetterRow,
) -> Result<DeadLetter> {
    Ok(DeadLetter {
        id: OutboxId(to_u64(id, "dead letter id")?),
        destination,
        room_id,
        seq: to_u64(seq, "seq")?,
        payload,
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        enqueued_at_ms,
        status: status
            .map(|s| {
                u16::try_from(s)
                    .map_err(|_| StoreError::Invalid(format!("stored status {s} is out of range")))
            })
            .transpose()?,
        answer,
        dead_at_ms,
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

/// Dedup keys inserted by one statement: 4 parameters each, well under
/// SQLite's limit of 32,766 parameters.
pub(crate) const NOTIFY_KEYS_PER_STATEMENT: usize = 1000;

/// Inserts `n` `/notify` dedup keys (parameters: hub domain, room, key,
/// time, for each) and returns the keys that were not there yet.
pub(crate) fn insert_notify_keys_sql(n: usize) -> String {
    multi_row_sql(
        "INSERT INTO notify_seen (hub_domain, room_id, message_sha256, seen_at) VALUES ",
        4,
        n,
        " ON CONFLICT (hub_domain, room_id, message_sha256) DO NOTHING RETURNING message_sha256",
    )
}

/// Room subscriptions inserted by one statement: 3 parameters each.
pub(crate) const SUBSCRIPTIONS_PER_STATEMENT: usize = 1000;

/// Subscribes `n` devices (parameters: room, device, first position, for
/// each); a device already subscribed keeps its place.
pub(crate) fn insert_subscriptions_sql(n: usize) -> String {
    multi_row_sql(
        "INSERT INTO room_subscriptions (room_id, client_id, from_seq) VALUES ",
        3,
        n,
        " ON CONFLICT DO NOTHING",
    )
}

/// `head`, then `rows` groups of `columns` numbered placeholders (`($1, $2),
/// ($3, $4)`), then `tail`: a multi-row statement both backends accept.
/// Only placeholders are generated; every value is bound.
fn multi_row_sql(head: &str, columns: usize, rows: usize, tail: &str) -> String {
    use std::fmt::Write as _;
    let mut sql = String::from(head);
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        for column in 0..columns {
            let sep = if column == 0 { "" } else { ", " };
            let _ = write!(sql, "{sep}${}", row * columns + column + 1);
        }
        sql.push(')');
    }
    sql.push_str(tail);
    sql
}

/// Lease length in milliseconds, at least 1 so a lease is always in the future.
pub(crate) fn lease_millis(lease_for: Duration) -> i64 {
    i64::try_from(lease_for.as_millis())
        .unwrap_or(i64::MAX)
        .max(1)
}

/// [`AcceptedEvent`] numbers converted for storage, after the argument rules
/// of its docs are checked.
pub(crate) struct CheckedAccept {
    pub(crate) expected_epoch: i64,
    pub(crate) new_epoch: i64,
    pub(crate) expected_state_version: Option<i64>,
}

pub(crate) fn check_accept(event: &AcceptedEvent) -> Result<CheckedAccept> {
    if event.new_epoch < event.expected_epoch {
        return Err(StoreError::Invalid(format!(
            "new epoch {} is before expected epoch {}",
            event.new_epoch, event.expected_epoch
        )));
    }
    let commit = event.new_epoch > event.expected_epoch;
    if commit && event.new_group_state.is_none() {
        return Err(StoreError::Invalid(
            "an epoch change must carry the new group state".into(),
        ));
    }
    if !commit && event.new_group_state.is_some() && event.expected_state_version.is_none() {
        return Err(StoreError::Invalid(
            "a same-epoch group state write needs expected_state_version".into(),
        ));
    }
    Ok(CheckedAccept {
        expected_epoch: to_i64(event.expected_epoch, "epoch")?,
        new_epoch: to_i64(event.new_epoch, "epoch")?,
        expected_state_version: event
            .expected_state_version
            .map(|v| to_i64(v, "state version"))
            .transpose()?,
    })
}

/// The error for a failed room compare-and-set, given the room's current
/// `(epoch, state_version)` if it exists.
pub(crate) fn conflict(event: &AcceptedEvent, current: Option<(i64, i64)>) -> Result<StoreError> {
    let Some((epoch, state_version)) = current else {
        return Ok(StoreError::RoomNotFound(event.room_id.clone()));
    };
    let current_epoch = to_u64(epoch, "epoch")?;
    tracing::debug!(
        room_id = %event.room_id,
        expected_epoch = event.expected_epoch,
        current_epoch,
        "room compare-and-set lost"
    );
    if current_epoch != event.expected_epoch {
        Ok(StoreError::EpochConflict { current_epoch })
    } else {
        Ok(StoreError::StateVersionConflict {
            current_epoch,
            current_state_version: to_u64(state_version, "state version")?,
        })
    }
}

pub(crate) fn room_event(
    (room_id, seq, epoch, new_epoch, payload, accepted_at_ms): (
        String,
        i64,
        i64,
        i64,
        Vec<u8>,
        i64,
    ),
) -> Result<RoomEvent> {
    Ok(RoomEvent {
        room_id,
        seq: to_u64(seq, "seq")?,
        epoch: to_u64(epoch, "epoch")?,
        new_epoch: to_u64(new_epoch, "epoch")?,
        payload,
        accepted_at_ms,
    })
}

pub(crate) fn client_event(
    (seq, room_id, payload, enqueued_at_ms): (i64, String, Vec<u8>, i64),
) -> Result<ClientEvent> {
    Ok(ClientEvent {
        seq: to_u64(seq, "client seq")?,
        room_id,
        payload,
        enqueued_at_ms,
    })
}

pub(crate) type UserSettingsRow = (
    String,
    bool,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
);

pub(crate) fn user_settings_from_row(row: UserSettingsRow) -> crate::Result<crate::UserSettings> {
    let (
        user_uri,
        consent_required,
        handle,
        nick,
        email,
        phone,
        given_name,
        family_name,
        discoverability,
    ) = row;
    Ok(crate::UserSettings {
        user_uri,
        consent_required,
        handle,
        nick,
        email,
        phone,
        given_name,
        family_name,
        discoverability: crate::stored_name(
            crate::Discoverability::from_name(&discoverability),
            "discoverability",
            &discoverability,
        )?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_row_statements_number_every_placeholder_once() {
        assert_eq!(
            insert_subscriptions_sql(2),
            "INSERT INTO room_subscriptions (room_id, client_id, from_seq) VALUES \
             ($1, $2, $3), ($4, $5, $6) ON CONFLICT DO NOTHING"
        );
        assert!(insert_notify_keys_sql(1).contains("VALUES ($1, $2, $3, $4) ON CONFLICT"));
        let big = insert_notify_keys_sql(NOTIFY_KEYS_PER_STATEMENT);
        assert!(big.contains(&format!("${})", 4 * NOTIFY_KEYS_PER_STATEMENT)));
        assert!(!big.contains(&format!("${}", 4 * NOTIFY_KEYS_PER_STATEMENT + 1)));
    }
}
