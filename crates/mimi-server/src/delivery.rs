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

use mimi_store::{NewClientEvent, StoreError};

use crate::batch::body_hash;
pub use crate::batch::{FanoutItem, split_batch};
use crate::state::{AppState, now_ms};

/// What happened to a delivered batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// The same body from the same hub was processed before (-06 §5.5:
    /// a duplicate request is acknowledged but not processed again).
    Duplicate,
    /// The batch was queued: `client_events` queue entries were written.
    Queued { client_events: usize },
}

/// Delivers one batch of `FanoutMessage`s of `room_id`, received from the
/// room's hub `hub_domain`, to this provider's devices: routes every
/// message, then records the body hash and queues all client events in one
/// transaction (-06 §5.5 duplicate detection).
///
/// Devices named by a Welcome are subscribed before the events are queued,
/// so a crash in between cannot leave a joined device unsubscribed; a
/// subscription is idempotent.
pub async fn deliver_batch(
    state: &AppState,
    hub_domain: &str,
    room_id: &str,
    body: &[u8],
    items: &[FanoutItem],
) -> Result<DeliveryOutcome, StoreError> {
    let store = &state.store;
    let mut subscribers: BTreeSet<String> = store.subscribers(room_id).await?.into_iter().collect();
    let mut events = Vec::new();
    for item in items {
        match item.message.welcome_key_package_refs() {
            Some(refs) => {
                for client in welcome_recipients(state, room_id, &refs).await? {
                    store.subscribe(room_id, &client).await?;
                    subscribers.insert(client.clone());
                    events.push(client_event(&client, room_id, item));
                }
            }
            None => events.extend(
                subscribers
                    .iter()
                    .map(|client| client_event(client, room_id, item)),
            ),
        }
    }
    let count = events.len();
    let queued = store
        .record_notify_and_enqueue(hub_domain, body_hash(body), now_ms(), events)
        .await?;
    Ok(match queued {
        None => DeliveryOutcome::Duplicate,
        Some(_) => {
            state.runtime.record(|| {
                metrics::counter!("mimi_client_events_queued_total", "provider" => state.domain().to_owned())
                    .increment(count as u64);
            });
            state
                .runtime
                .observe_delivery(state.domain(), room_id, items);
            DeliveryOutcome::Queued {
                client_events: count,
            }
        }
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
