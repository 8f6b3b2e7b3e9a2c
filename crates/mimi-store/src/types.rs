//! Plain values passed to and returned by the store traits.

/// A KeyPackage uploaded by a client (-06 §5.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewKeyPackage {
    /// MLS KeyPackageRef (hash of the KeyPackage); unique across the store.
    pub key_package_ref: Vec<u8>,
    /// The serialized KeyPackage (MLSMessage), returned as is.
    pub key_package: Vec<u8>,
    /// MLS `Lifetime.not_after`, Unix seconds.
    pub not_after: i64,
    /// A last-resort KeyPackage is handed out when no other is left, and kept.
    pub last_resort: bool,
}

/// A KeyPackage handed out by [`crate::KeyPackageStore::claim_key_packages`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedKeyPackage {
    /// MLS KeyPackageRef.
    pub key_package_ref: Vec<u8>,
    /// The serialized KeyPackage.
    pub key_package: Vec<u8>,
    /// MLS `Lifetime.not_after`, Unix seconds.
    pub not_after: i64,
    /// Whether this is the client's (reused) last-resort KeyPackage.
    pub last_resort: bool,
}

/// The claim result for one client of the requested user (transport
/// requirements §3.1: a KeyPackage or an error per client).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientClaim {
    /// The client URI.
    pub client_uri: String,
    /// `None` when the client has no unexpired KeyPackage at all.
    pub key_package: Option<ClaimedKeyPackage>,
}

/// Unexpired KeyPackages stored for one client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KeyPackageCount {
    /// Single-use KeyPackages left.
    pub single_use: u64,
    /// Last-resort KeyPackages stored.
    pub last_resort: u64,
}

/// A room to create on this hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRoom {
    /// The room id (`mimi://domain/r/id`).
    pub room_id: String,
    /// The MLS epoch of `group_state`.
    pub epoch: u64,
    /// Opaque serialized hub state (e.g. the PublicGroup and pending proposals).
    pub group_state: Vec<u8>,
    /// Creation time, Unix milliseconds.
    pub created_at_ms: i64,
    /// For a fixed-membership room, its participants as one key
    /// (`mimi_room::policy::base::fixed_membership_key`): a hub keeps only
    /// one such room per key (room-policy §Base Room policy).
    pub fixed_membership_key: Option<String>,
    /// For a parent-dependent room, its parent room's id (hosted here too;
    /// room-policy §Base Room policy): [`crate::RoomStore::child_rooms`].
    pub parent_room: Option<String>,
}

/// A room as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomRecord {
    /// The room id.
    pub room_id: String,
    /// Current MLS epoch.
    pub epoch: u64,
    /// Incremented on every group-state write; pass it back as
    /// [`AcceptedEvent::expected_state_version`] for same-epoch state writes.
    pub state_version: u64,
    /// Opaque serialized hub state.
    pub group_state: Vec<u8>,
    /// Sequence number of the last event in the room log (0: none yet).
    pub last_seq: u64,
    /// Creation time, Unix milliseconds.
    pub created_at_ms: i64,
    /// Time of the last accepted event (or creation), Unix milliseconds.
    pub updated_at_ms: i64,
    /// Its parent room, for a parent-dependent room ([`NewRoom::parent_room`]).
    pub parent_room: Option<String>,
}

/// One outbox row to write with an accepted event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// A provider domain (federation `/notify`) or a local client id.
    pub destination: String,
    /// What to send to that destination (it may differ per destination,
    /// e.g. a Welcome only to providers of new members).
    pub payload: Vec<u8>,
}

/// An event the hub has validated and wants to accept (-06 §5.4, §5.5).
///
/// Rules, checked atomically against the room row:
/// - the room's epoch must equal `expected_epoch`, else
///   [`crate::StoreError::EpochConflict`];
/// - a commit has `new_epoch > expected_epoch` and must carry
///   `new_group_state`; exactly one commit per epoch wins;
/// - an event with `new_epoch == expected_epoch` and no `new_group_state`
///   (application message) never conflicts with other such events;
/// - a same-epoch state write (`new_group_state` with `new_epoch ==
///   expected_epoch`, e.g. a stored proposal) must give
///   `expected_state_version`, else [`crate::StoreError::Invalid`]; it fails
///   with [`crate::StoreError::StateVersionConflict`] if another state write
///   happened since, so none is lost.
/// - `expected_state_version`, when given, is checked for commits too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedEvent {
    /// The room id.
    pub room_id: String,
    /// The epoch the event was validated against.
    pub expected_epoch: u64,
    /// The epoch after the event (== `expected_epoch` unless it is a commit).
    pub new_epoch: u64,
    /// Optional guard on same-epoch state writes (see the type docs).
    pub expected_state_version: Option<u64>,
    /// The new opaque hub state, if the event changed it.
    pub new_group_state: Option<Vec<u8>>,
    /// The event bytes appended to the room log.
    pub event: Vec<u8>,
    /// Acceptance time, Unix milliseconds.
    pub accepted_at_ms: i64,
    /// Outbox rows written in the same transaction.
    pub deliveries: Vec<Delivery>,
    /// The event for this provider's own devices, logged in their delivery
    /// log in the same transaction (the hub serves its own users from the
    /// log as followers do, without an outbox row, a lease or a duplicate
    /// key: the accept happens once).
    pub local: Vec<LocalDelivery>,
}

/// A `FanoutMessage` for this provider's own devices, logged with the
/// accepted event that carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalDelivery {
    /// The message's exact TLS encoding.
    pub payload: Vec<u8>,
    /// Who reads it.
    pub recipients: Recipients,
}

/// What [`crate::RoomStore::accept_room_event`] assigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcceptOutcome {
    /// The event's sequence number in the room log (1, 2, 3, … without gaps).
    pub seq: u64,
    /// The room's epoch after the event.
    pub epoch: u64,
    /// The room's state version after the event.
    pub state_version: u64,
    /// Delivery-log entries written for the event's
    /// [`AcceptedEvent::local`] deliveries.
    pub logged: usize,
}

/// One entry of a room log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomEvent {
    /// The room id.
    pub room_id: String,
    /// Sequence number in the room log.
    pub seq: u64,
    /// The epoch the event was accepted in.
    pub epoch: u64,
    /// The epoch after the event.
    pub new_epoch: u64,
    /// The event bytes.
    pub payload: Vec<u8>,
    /// Acceptance time, Unix milliseconds.
    pub accepted_at_ms: i64,
}

/// The id of an outbox row, unique within one store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OutboxId(pub u64);

impl std::fmt::Display for OutboxId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// An outbox row that is not tied to a room-log event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOutboxItem {
    /// A provider domain or a local client id.
    pub destination: String,
    /// The room the item belongs to (its lane with `destination`).
    pub room_id: String,
    /// Orders the item within its lane (ties broken by insertion order).
    pub seq: u64,
    /// What to send.
    pub payload: Vec<u8>,
}

/// A leased outbox row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxItem {
    /// Row id, for [`crate::RoomStore::complete_outbox`] / [`crate::RoomStore::retry_outbox`].
    pub id: OutboxId,
    /// A provider domain or a local client id.
    pub destination: String,
    /// The room.
    pub room_id: String,
    /// The room-log sequence number (or the caller's `seq`).
    pub seq: u64,
    /// What to send.
    pub payload: Vec<u8>,
    /// Failed delivery attempts so far.
    pub attempts: u32,
}

/// An outbox row a follower refused permanently, kept aside so the rest of
/// its lane is delivered (see [`crate::RoomStore::dead_letter_outbox`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The id the row had in the outbox.
    pub id: OutboxId,
    /// A provider domain or a local client id.
    pub destination: String,
    /// The room.
    pub room_id: String,
    /// The room-log sequence number (its place in the lane).
    pub seq: u64,
    /// The encoded `FanoutMessage`.
    pub payload: Vec<u8>,
    /// Failed delivery attempts before it was refused.
    pub attempts: u32,
    /// When the row entered the outbox, Unix milliseconds.
    pub enqueued_at_ms: i64,
    /// The peer's HTTP status; `None` when the hub refused the row itself.
    pub status: Option<u16>,
    /// A bounded prefix of the peer's answer, or the hub's reason.
    pub answer: String,
    /// When it was set aside, Unix milliseconds.
    pub dead_at_ms: i64,
}

/// An event a device reads from its provider: one entry of the delivery
/// log that the device's subscriptions and cursor let it see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientEvent {
    /// The event's position in the provider's log: it grows in commit
    /// order, so a device's cursor is one number.
    pub seq: u64,
    /// The room the event belongs to.
    pub room_id: String,
    /// The event bytes.
    pub payload: Vec<u8>,
    /// When it was logged, Unix milliseconds.
    pub enqueued_at_ms: i64,
}

/// Which local devices a logged event is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipients {
    /// Every device subscribed to the room: logged once, read by each.
    Room,
    /// Only these devices (a Welcome, by the KeyPackageRefs it names),
    /// which are subscribed to the room from this event on.
    Welcomed(Vec<String>),
}

/// One `FanoutMessage` of a `/notify` batch and whom it is for (-06 §5.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifiedMessage {
    /// SHA-256 of the message's exact TLS encoding: its duplicate key,
    /// scoped by hub domain and room.
    pub message_sha256: [u8; 32],
    /// The message's exact encoding, logged if it was not seen before.
    pub payload: Vec<u8>,
    /// Who reads it.
    pub recipients: Recipients,
}

/// What [`crate::DeliveryStore::record_notify_and_log`] did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NotifyOutcome {
    /// Per message, in input order: `true` if it was new (it was logged).
    pub new_messages: Vec<bool>,
    /// The log positions of the events written, in input order (one per
    /// new message for the room, one per device for a Welcome).
    pub logged_seqs: Vec<u64>,
}

impl NotifyOutcome {
    /// Whether every message had been seen before.
    pub fn all_duplicates(&self) -> bool {
        !self.new_messages.contains(&true)
    }
}

/// Who may replace the token of a device that is already registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reregistration {
    /// Nobody: only a new device id is registered.
    Refuse,
    /// The holder of the device's current token (SHA-256 given here).
    WithCurrentToken([u8; 32]),
    /// The operator (admin token).
    Admin,
}

/// The device a bearer token belongs to, and its user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredDevice {
    /// The user's URI.
    pub user_uri: String,
    /// The device's (client's) URI.
    pub device_uri: String,
}
