//! Delivery of fanned-out room events to this provider's own devices
//! (-06 §5.5 "Fanout Messages and Room Events", docs/client-api.md
//! "Delivery to clients").
//!
//! Used by the follower's `/notify` endpoint and by the hub when it fans
//! out to its own domain (in-process, no HTTP). A batch ([`crate::batch`])
//! is one `/notify` body: one or more concatenated `FanoutMessage`s of one
//! room.
//!
//! Routing:
//! - a Welcome goes to the local device whose claimed KeyPackageRef appears
//!   in the Welcome's `secrets` (-06 §5.2, §5.5 NOTE), and that device is
//!   subscribed to the room;
//! - every other event goes to every local device subscribed to the room.
//!
//! Each client event carries the exact TLS encoding of its `FanoutMessage`.

use std::collections::BTreeSet;

use mimi_store::{NewClientEvent, NotifiedMessage, StoreError};
use sha2::{Digest, Sha256};

pub use crate::batch::{FanoutItem, split_batch};
use crate::state::{AppState, now_ms};

/// What happened to a delivered batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// Every message of the batch was processed before (-06 §5.5: a
    /// duplicate is acknowledged but not processed again).
    Duplicate,
    /// The batch's new messages were queued: `client_events` queue entries
    /// were written.
    Queued { client_events: usize },
}

/// SHA-256 of one `FanoutMessage`'s exact encoding: with the hub domain
/// and room, the follower's duplicate key (-06 §5.5).
pub fn message_hash(encoded: &[u8]) -> [u8; 32] {
    Sha256::digest(encoded).into()
}

/// Delivers one batch of `FanoutMessage`s of `room_id`, received from the
/// room's hub `hub_domain`, to this provider's devices: routes every
/// message, then records each message's hash and queues the client events
/// of the messages not seen before, in one transaction (-06 §5.5 duplicate
/// detection). Deduplicating per message rather than per body means a
/// message the hub resends in a differently split batch is queued once.
///
/// Devices named by a Welcome are subscribed before the events are queued,
/// so a crash in between cannot leave a joined device unsubscribed; a
/// subscription is idempotent.
pub async fn deliver_batch(
    state: &AppState,
    hub_domain: &str,
    room_id: &str,
    items: &[FanoutItem],
) -> Result<DeliveryOutcome, StoreError> {
    let store = &state.store;
    let mut subscribers: BTreeSet<String> = store.subscribers(room_id).await?.into_iter().collect();
    let mut messages = Vec::with_capacity(items.len());
    for item in items {
        let events = match item.message.welcome_key_package_refs() {
            Some(refs) => {
                let mut events = Vec::new();
                for client in welcome_recipients(state, room_id, &refs).await? {
                    store.subscribe(room_id, &client).await?;
                    subscribers.insert(client.clone());
                    events.push(client_event(&client, room_id, item));
                }
                events
            }
            None => subscribers
                .iter()
                .map(|client| client_event(client, room_id, item))
                .collect(),
        };
        messages.push(NotifiedMessage {
            message_sha256: message_hash(&item.encoded),
            events,
        });
    }
    let outcome = store
        .record_notify_and_enqueue(hub_domain, room_id, messages, now_ms())
        .await?;
    if outcome.all_duplicates() {
        return Ok(DeliveryOutcome::Duplicate);
    }
    let count = outcome.client_seqs.len();
    state.runtime.record(|| {
        metrics::counter!("mimi_client_events_queued_total", "provider" => state.domain().to_owned())
            .increment(count as u64);
    });
    // The observer sees only the messages queued now; copied only when
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
    Ok(DeliveryOutcome::Queued {
        client_events: count,
    })
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

fn client_event(client: &str, room_id: &str, item: &FanoutItem) -> NewClientEvent {
    NewClientEvent {
        client_id: client.to_owned(),
        room_id: room_id.to_owned(),
        payload: item.encoded.clone(),
    }
}
