//! Delivery of fanned-out room events to this provider's own devices
//! (-06 §5.5 "Fanout Messages and Room Events", docs/client-api.md
//! "Delivery to clients").
//!
//! Used by the follower's `/notify` endpoint. The hub logs an accepted
//! event for its own devices in the accept's own transaction
//! ([`route_fanout`]); outbox rows addressed to its own domain (written
//! before it did so) still go through [`deliver_batch`] in process. A batch
//! ([`crate::batch`]) is one `/notify` body: one or more concatenated
//! `FanoutMessage`s of one room.
//!
//! Each new `FanoutMessage` is logged once, in its exact TLS encoding,
//! however many local devices are in the room (the store's delivery
//! log, read by each device through its subscriptions and cursor):
//! - a Welcome is for the local devices whose claimed KeyPackageRefs appear
//!   in the Welcome's `secrets` (-06 §5.2, §5.5 NOTE), and those devices
//!   are subscribed to the room from it on;
//! - every other event is for every device subscribed to the room.

use mimi_protocol::msgs::FanoutMessage;
use mimi_room::engine::Fanout;
use mimi_store::{Delivery, LocalDelivery, NotifiedMessage, Recipients, StoreError};
use sha2::{Digest, Sha256};
use tls_codec::Deserialize as _;

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

/// An accepted event's fanout (-06 §5.5), split by where it goes.
#[derive(Debug, Default)]
pub struct RoutedFanout {
    /// Outbox rows, one per other provider and payload.
    pub remote: Vec<Delivery>,
    /// What the accept's transaction logs for this provider's own devices.
    pub local: Vec<LocalDelivery>,
    /// The same messages decoded, for the delivery observer.
    pub local_items: Vec<FanoutItem>,
}

/// Splits `fanout` of hosted room `room_id`: other providers get outbox
/// rows; this provider's own devices get delivery-log entries written with
/// the accept (so the hub serves its own users without an outbox row, a
/// lease and a duplicate key per event). A Welcome is for the local devices
/// whose KeyPackageRefs it names, as at a follower.
pub async fn route_fanout(
    state: &AppState,
    room_id: &str,
    fanout: Vec<Fanout>,
) -> Result<RoutedFanout, StoreError> {
    let mut routed = RoutedFanout::default();
    for f in fanout {
        let (local, remote): (Vec<String>, Vec<String>) = f
            .destinations
            .into_iter()
            .partition(|d| d.eq_ignore_ascii_case(state.domain()));
        routed
            .remote
            .extend(remote.into_iter().map(|destination| Delivery {
                destination,
                payload: f.payload.clone(),
            }));
        if local.is_empty() {
            continue;
        }
        let message = FanoutMessage::tls_deserialize_exact(&f.payload).map_err(|e| {
            StoreError::Invalid(format!("the hub's own FanoutMessage does not decode: {e}"))
        })?;
        let recipients = match message.welcome_key_package_refs() {
            Some(refs) => Recipients::Welcomed(welcome_recipients(state, room_id, &refs).await?),
            None => Recipients::Room,
        };
        routed.local.push(LocalDelivery {
            payload: f.payload.clone(),
            recipients,
        });
        routed.local_items.push(FanoutItem {
            message,
            encoded: f.payload,
        });
    }
    Ok(routed)
}

/// After the accept of an event with [`RoutedFanout::local`] deliveries
/// committed: counts the `logged` entries and shows the messages to the
/// delivery observer.
pub fn logged_with_accept(state: &AppState, room_id: &str, items: &[FanoutItem], logged: usize) {
    if items.is_empty() {
        return;
    }
    state.runtime.record(|| {
        metrics::counter!("mimi_delivery_log_events_total", "provider" => state.domain().to_owned())
            .increment(logged as u64);
    });
    state
        .runtime
        .observe_delivery(state.domain(), room_id, items);
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
