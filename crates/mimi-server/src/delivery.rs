//! Delivery of fanned-out room events to this provider's own devices
//! (-06 §5.5 "Fanout Messages and Room Events", docs/client-api.md
//! "Delivery to clients").
//!
//! Used by the follower's `/notify` endpoint and by the hub when it fans
//! out to its own domain (in-process, no HTTP). A batch ([`crate::batch`])
//! is one `/notify` body: one or more concatenated `FanoutMessage`s of one
//! room.
//!
//! Each new `FanoutMessage` is logged once, in its exact TLS encoding,
//! however many local devices are in the room (the store's delivery
//! log, read by each device through its subscriptions and cursor):
//! - a Welcome is for the local devices whose claimed KeyPackageRefs appear
//!   in the Welcome's `secrets` (-06 §5.2, §5.5 NOTE), and those devices
//!   are subscribed to the room from it on;
//! - every other event is for every device subscribed to the room.

use mimi_store::{NotifiedMessage, Recipients, StoreError};
use sha2::{Digest, Sha256};

pub use crate::batch::{FanoutItem, split_batch};
use crate::state::{AppState, now_ms};

/// What happened to a delivered batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// Every message of the batch was processed before (-06 §5.5: a
    /// duplicate is acknowledged but not processed again).
    Duplicate,
    /// The batch's new messages were logged: `delivery_log` entries were
    /// written (one per message, one per device for a Welcome).
    Logged { log_entries: usize },
}

/// SHA-256 of one `FanoutMessage`'s exact encoding: with the hub domain
/// and room, the follower's duplicate key (-06 §5.5).
pub fn message_hash(encoded: &[u8]) -> [u8; 32] {
    Sha256::digest(encoded).into()
}

/// Delivers one batch of `FanoutMessage`s of `room_id`, received from the
/// room's hub `hub_domain`, to this provider's devices: records each
/// message's hash and logs the messages not seen before, in one
/// transaction (-06 §5.5 duplicate detection). Deduplicating per message
/// rather than per body means a message the hub resends in a differently
/// split batch is logged once.
///
/// The devices a Welcome is for are subscribed in the same transaction,
/// so a crash cannot leave a joined device unsubscribed.
pub async fn deliver_batch(
    state: &AppState,
    hub_domain: &str,
    room_id: &str,
    items: &[FanoutItem],
) -> Result<DeliveryOutcome, StoreError> {
    let mut messages = Vec::with_capacity(items.len());
    for item in items {
        let recipients = match item.message.welcome_key_package_refs() {
            Some(refs) => Recipients::Welcomed(welcome_recipients(state, room_id, &refs).await?),
            None => Recipients::Room,
        };
        messages.push(NotifiedMessage {
            message_sha256: message_hash(&item.encoded),
            payload: item.encoded.clone(),
            recipients,
        });
    }
    let outcome = state
        .store
        .record_notify_and_log(hub_domain, room_id, messages, now_ms())
        .await?;
    if outcome.all_duplicates() {
        return Ok(DeliveryOutcome::Duplicate);
    }
    let count = outcome.logged_seqs.len();
    state.runtime.record(|| {
        metrics::counter!("mimi_delivery_log_events_total", "provider" => state.domain().to_owned())
            .increment(count as u64);
    });
    // The observer sees only the messages logged now; copied only when
    // some were duplicates.
    if outcome.new_messages.iter().all(|new| *new) {
        state
            .runtime
            .observe_delivery(state.domain(), room_id, items);
    } else {
        let fresh: Vec<FanoutItem> = items
            .iter()
            .zip(&outcome.new_messages)
            .filter(|(_, new)| **new)
            .map(|(item, _)| item.clone())
            .collect();
        state
            .runtime
            .observe_delivery(state.domain(), room_id, &fresh);
    }
    Ok(DeliveryOutcome::Logged { log_entries: count })
}

/// The local devices a Welcome is for. A Welcome naming no local device
/// is logged and skipped (the hub may over-deliver; it is not an error).
async fn welcome_recipients(
    state: &AppState,
    room_id: &str,
    refs: &[Vec<u8>],
) -> Result<Vec<String>, StoreError> {
    let mut clients = Vec::new();
    for key_package_ref in refs {
        if let Some(client) = state
            .store
            .client_for_key_package_ref(key_package_ref)
            .await?
            && !clients.contains(&client)
        {
            clients.push(client);
        }
    }
    if clients.is_empty() {
        tracing::warn!(
            room = room_id,
            "Welcome names no KeyPackageRef claimed from this provider; skipped"
        );
    }
    Ok(clients)
}
