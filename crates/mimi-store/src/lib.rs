//! Durable storage for mimi-rs servers.
//!
//! One trait per aggregate, each object-safe: [`KeyPackageStore`]
//! (KeyPackages and Welcome routes), [`RoomStore`] (rooms, the room log and
//! the outbox they are accepted with), [`DeliveryStore`] (follower dedup,
//! client queues, subscriptions) and [`AccountStore`] (devices, consent,
//! settings, abuse reports). [`Store`] is their union, used as
//! `Arc<dyn Store>`; code that needs one aggregate takes `&dyn` that trait.
//!
//! Two implementations: [`SqliteStore`], the embedded single-process
//! default, and [`PgStore`], shared by several server processes of one
//! provider (docs/architecture.md, "Scaling past one machine"). Both are one
//! sqlx implementation (`src/sql/`) over a small backend trait that supplies
//! connections and the statements whose SQL differs. The store keeps bytes
//! and plain values only; protocol parsing and validation happen above it.
//!
//! Concurrency guarantees, identical for both backends:
//! - a KeyPackage is handed out at most once (-06 §5.2); last-resort ones are
//!   reused, expired ones never returned;
//! - exactly one commit wins each room epoch (compare-and-set on the room row,
//!   transport requirements §3.2), while application messages of the current
//!   epoch never conflict with each other;
//! - accepting an event, appending it to the room log and writing its outbox
//!   rows is one transaction, so an accepted event is never lost and a
//!   rejected one is never fanned out;
//! - outbox lanes `(destination, room_id)` are leased by one worker at a time
//!   and hand out rows in sequence order (see [`RoomStore::lease_outbox`]);
//!   rows a follower refused permanently move to the dead letters in one
//!   transaction (see [`RoomStore::dead_letter_outbox`]).

mod error;
mod postgres;
mod sql;
mod sqlite;
mod types;

use std::time::Duration;

pub use error::{Result, StoreError};
pub use postgres::{PgStore, PgStoreOptions};
pub use sqlite::{SqliteOptions, SqliteStore, SqliteSynchronousMode};
pub use types::*;

/// KeyPackages of local clients (-06 §5.2) and the hub's Welcome routes.
///
/// Times are Unix seconds, as MLS `Lifetime.not_after`.
#[async_trait::async_trait]
pub trait KeyPackageStore: Send + Sync {
    // ---- KeyPackages (-06 §5.2), provider-local -------------------------------

    /// Registers `client_uri` under `user_uri` (if new) and stores its
    /// KeyPackages. Re-uploading a KeyPackageRef already stored is ignored.
    /// Returns how many KeyPackages were newly stored.
    async fn add_key_packages(
        &self,
        user_uri: &str,
        client_uri: &str,
        key_packages: Vec<NewKeyPackage>,
    ) -> Result<u64>;

    /// The client URIs registered for `user_uri`, sorted.
    async fn list_clients(&self, user_uri: &str) -> Result<Vec<String>>;

    /// Claims one KeyPackage for each client of `user_uri` (-06 §5.2 keyMaterial,
    /// transport requirements §3.1): the oldest unexpired non-last-resort one,
    /// deleted in the same transaction so it is never handed out twice; else
    /// the newest unexpired last-resort one (kept); else `None`. Each claimed
    /// KeyPackageRef is recorded for [`KeyPackageStore::client_for_key_package_ref`].
    /// A KeyPackage is expired when `not_after <= now_secs`.
    async fn claim_key_packages(&self, user_uri: &str, now_secs: i64) -> Result<Vec<ClientClaim>>;

    /// The local client a claimed KeyPackageRef belongs to (target side of
    /// Welcome routing).
    async fn client_for_key_package_ref(&self, key_package_ref: &[u8]) -> Result<Option<String>>;

    /// Records a KeyPackageRef a client spends itself (its external join
    /// proposal's Add) as claimed by that client, so the Welcome that
    /// adds it is routed to it. The KeyPackage never enters the pool
    /// others claim from. A ref already recorded keeps its client.
    async fn record_own_key_package(
        &self,
        key_package_ref: &[u8],
        client_uri: &str,
        now_secs: i64,
    ) -> Result<()>;

    /// Unexpired, unclaimed KeyPackages stored for a client (including last-resort ones).
    async fn count_key_packages(&self, client_uri: &str, now_secs: i64) -> Result<KeyPackageCount>;

    /// Deletes KeyPackages with `not_after <= now_secs`; returns how many.
    async fn purge_expired_key_packages(&self, now_secs: i64) -> Result<u64>;

    // ---- Hub-side Welcome routing ---------------------------------------------

    /// Records which provider each KeyPackageRef of a Welcome belongs to
    /// (hub side, -06 §5.2/§5.5). Later records for the same ref replace earlier ones.
    async fn record_key_package_routes(
        &self,
        room_id: &str,
        routes: Vec<(Vec<u8>, String)>,
    ) -> Result<()>;

    /// The provider domain recorded for a KeyPackageRef.
    async fn provider_for_key_package_ref(&self, key_package_ref: &[u8]) -> Result<Option<String>>;
}

/// Rooms a hub hosts: the room row, its event log, and the durable outbox
/// its accepted events are fanned out from (written in the same
/// transaction as the accept). Times are Unix milliseconds.
#[async_trait::async_trait]
pub trait RoomStore: Send + Sync {
    // ---- Rooms (hub) ------------------------------------------------------------

    /// Creates a room; [`StoreError::RoomExists`] if the id is taken.
    async fn create_room(&self, room: NewRoom) -> Result<RoomRecord>;

    /// Loads a room's current record.
    async fn load_room(&self, room_id: &str) -> Result<Option<RoomRecord>>;

    /// The rooms created with `parent_room` as their parent
    /// ([`NewRoom::parent_room`]), by id.
    async fn child_rooms(&self, parent_room: &str) -> Result<Vec<String>>;

    /// Accepts one event into a room in a single transaction: compare-and-set
    /// of the room epoch (and, for same-epoch state writes, the state version),
    /// append to the room log with the next sequence number, and one outbox row
    /// per delivery. See [`AcceptedEvent`] for the rules.
    async fn accept_room_event(&self, event: AcceptedEvent) -> Result<AcceptOutcome>;

    /// Room log entries with `seq > after_seq`, ascending, at most `limit`.
    async fn room_events(
        &self,
        room_id: &str,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<RoomEvent>>;

    // ---- Durable outbox (fanout, docs/architecture.md) ------------------------------------

    /// Enqueues outbox rows that are not room-log events (e.g. a follower
    /// forwarding a client's submission to the hub). `seq` orders them in their lane.
    async fn enqueue_outbox(&self, items: Vec<NewOutboxItem>, now_ms: i64)
    -> Result<Vec<OutboxId>>;

    /// Leases up to `limit` due outbox rows for `lease_for`.
    ///
    /// Ordering: rows are grouped in lanes `(destination, room_id)`. A lane is
    /// leased as a whole by one caller (no row of it may be under an unexpired
    /// lease), only when its head is due, and the returned rows of a lane are
    /// a prefix of it in `(seq, id)` order. Rows are returned sorted by
    /// destination, room, seq. A worker delivers a lane's rows in order and on
    /// the first transient failure calls [`RoomStore::retry_outbox`] for that
    /// row and stops that lane: this releases the whole lane, so no later row
    /// overtakes it. Rows refused permanently leave the lane with
    /// [`RoomStore::dead_letter_outbox`].
    async fn lease_outbox(
        &self,
        destination: Option<&str>,
        limit: u32,
        lease_for: Duration,
        now_ms: i64,
    ) -> Result<Vec<OutboxItem>>;

    /// Deletes delivered rows. A lane whose current lease has no rows left is
    /// released at once, so new rows need not wait for the lease to expire.
    async fn complete_outbox(&self, ids: &[OutboxId]) -> Result<()>;

    /// Records a failed delivery: bumps `attempts`, stores `error`, releases
    /// the row's whole lane and makes it due again at `next_attempt_at_ms`.
    async fn retry_outbox(&self, id: OutboxId, next_attempt_at_ms: i64, error: &str) -> Result<()>;

    /// Number of undelivered outbox rows (metrics).
    async fn outbox_depth(&self) -> Result<u64>;

    /// Destinations that have a lane with a due, unleased head row.
    async fn destinations_with_due_items(&self, now_ms: i64) -> Result<Vec<String>>;

    /// Makes every unleased lane to `destination` that waits for a retry
    /// due at `now_ms` (the destination answers again); returns how many.
    async fn wake_outbox_destination(&self, destination: &str, now_ms: i64) -> Result<u64>;

    // ---- Dead letters (fanout, -06 §5.5) ------------------------------------------

    /// Moves outbox rows a follower refused permanently into the dead
    /// letters, with the peer's `status` (`None`: refused by the hub
    /// itself) and `answer`, in one transaction. Like
    /// [`RoomStore::complete_outbox`], releases a lane whose current lease
    /// has no rows left. Returns how many rows moved (gone rows are skipped).
    async fn dead_letter_outbox(
        &self,
        ids: &[OutboxId],
        status: Option<u16>,
        answer: &str,
        now_ms: i64,
    ) -> Result<u64>;

    /// The oldest `limit` dead letters, by id.
    async fn dead_letters(&self, limit: u32) -> Result<Vec<DeadLetter>>;

    /// Number of dead letters (metrics).
    async fn dead_letter_count(&self) -> Result<u64>;

    /// Moves a dead letter back into its outbox lane at its `seq`, in one
    /// transaction, with no attempts; the lane is due at `now_ms` unless it
    /// is due earlier. Returns the new outbox id, `None` if there is no
    /// such dead letter.
    async fn retry_dead_letter(&self, id: OutboxId, now_ms: i64) -> Result<Option<OutboxId>>;

    /// Deletes a dead letter; `false` if there is no such dead letter.
    async fn drop_dead_letter(&self, id: OutboxId) -> Result<bool>;
}

/// A follower's side of delivery: `/notify` deduplication, the delivery
/// log its devices read, and room subscriptions. Times are Unix
/// milliseconds.
///
/// Each event is stored once per provider, however many of its devices are
/// in the room: a device sees the events of the rooms it subscribes to
/// (from its subscription on) and the Welcomes addressed to it, past its
/// cursor. Positions (`seq`) grow in commit order over the whole provider.
#[async_trait::async_trait]
pub trait DeliveryStore: Send + Sync {
    // ---- Follower inbox dedup (-06 §5.5) ---------------------------------------

    /// Records each `FanoutMessage` of a `/notify` batch of `room_id` from
    /// `hub_domain` by the SHA-256 of its exact encoding, and logs the
    /// messages not seen before, in one transaction: a crash can neither
    /// lose a first copy nor log a duplicate, and a message resent in a
    /// differently split batch is logged only once. A message repeated
    /// within `messages` counts as seen after its first copy. The devices
    /// a new Welcome is for are subscribed to the room in the same
    /// transaction, from the Welcome on.
    async fn record_notify_and_log(
        &self,
        hub_domain: &str,
        room_id: &str,
        messages: Vec<NotifiedMessage>,
        now_ms: i64,
    ) -> Result<NotifyOutcome>;

    /// Forgets `FanoutMessage` hashes seen before `before_ms`; returns how many.
    async fn prune_notify_before(&self, before_ms: i64) -> Result<u64>;

    // ---- What devices read (provider-internal) -----------------------------------

    /// The events a device may read with `seq > after_seq` and past its
    /// cursor, ascending, at most `limit`.
    async fn fetch_client_events(
        &self,
        client_id: &str,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<ClientEvent>>;

    /// Moves a device's cursor to `up_to_seq` (never back, never past the
    /// last position handed out); returns how many of its events that
    /// acknowledged.
    async fn ack_client_events(&self, client_id: &str, up_to_seq: u64) -> Result<u64>;

    /// Returns once every event logged before the call is readable. On
    /// SQLite that is at once; on PostgreSQL it waits until every write
    /// transaction running at the call has ended (migrations/postgres/0010).
    /// For tests and tools that must not mistake "not yet readable" for
    /// "not there".
    async fn settle_delivery_log(&self) -> Result<()>;

    /// Deletes the logged events every device that may read them has
    /// acknowledged, those no device may read, and those logged before
    /// `expired_before_ms` (the retention limit); returns how many.
    async fn purge_delivery_log(&self, expired_before_ms: i64) -> Result<u64>;

    // ---- Room subscriptions (provider-internal delivery) -----------------------

    /// Subscribes a local device to a room's events from now on; idempotent.
    async fn subscribe(&self, room_id: &str, client_id: &str) -> Result<()>;

    /// Ends a device's subscription; `true` if it existed. Events of the
    /// room it has not read are no longer delivered to it.
    async fn unsubscribe(&self, room_id: &str, client_id: &str) -> Result<bool>;

    /// The local devices subscribed to a room, sorted.
    async fn subscribers(&self, room_id: &str) -> Result<Vec<String>>;
}

/// Local accounts: devices and their tokens, consent, user settings, and
/// the abuse reports a hub receives. Times are Unix milliseconds.
#[async_trait::async_trait]
pub trait AccountStore: Send + Sync {
    // ---- Devices (provider-internal client API) ----------------------------------

    /// Registers a device of a user with the SHA-256 of its bearer token.
    /// A device already registered keeps its token unless `reregistration`
    /// allows replacing it: then [`StoreError::DeviceRegistered`].
    /// [`StoreError::ClientOwnedByOtherUser`] if the device belongs to
    /// another user. The check and the write are one statement, so two
    /// concurrent registrations cannot both take a device.
    async fn register_device(
        &self,
        user_uri: &str,
        device_uri: &str,
        token_sha256: [u8; 32],
        reregistration: Reregistration,
        now_ms: i64,
    ) -> Result<()>;

    /// The device a bearer token belongs to.
    async fn device_for_token(&self, token_sha256: [u8; 32]) -> Result<Option<RegisteredDevice>>;

    // ---- Consent, user settings, abuse reports (-06 §5.7-§5.9) -----------------

    /// Stores a consent operation for its `ConsentScope` (-06 §5.7), replacing
    /// the previous operation of the same scope (`room_id` `None`: any room).
    async fn record_consent(&self, entry: ConsentRecord) -> Result<()>;

    /// Every stored consent scope of a (requester, target) pair.
    async fn consent_entries(
        &self,
        requester_uri: &str,
        target_uri: &str,
    ) -> Result<Vec<ConsentRecord>>;

    /// Creates or replaces a local user's settings and profile.
    async fn put_user_settings(&self, settings: UserSettings) -> Result<()>;

    /// A local user's settings, if any were stored.
    async fn user_settings(&self, user_uri: &str) -> Result<Option<UserSettings>>;

    /// Settings of every user whose discoverability is not `none`, sorted by user.
    async fn discoverable_users(&self) -> Result<Vec<UserSettings>>;

    /// Stores an abuse report (-06 §5.9); returns its id.
    async fn add_abuse_report(&self, report: NewAbuseReport) -> Result<u64>;

    /// Stored abuse reports, oldest first.
    async fn abuse_reports(&self) -> Result<Vec<AbuseReportRecord>>;
}

/// Every aggregate of a provider server's storage (hub and follower roles).
#[async_trait::async_trait]
pub trait Store: KeyPackageStore + RoomStore + DeliveryStore + AccountStore {
    /// Round-trips a trivial query (health checks).
    async fn ping(&self) -> Result<()>;
}

// ---- Consent, user settings, abuse reports: values ---------------------------

/// The latest consent operation for one `ConsentScope` (-06 §5.7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentRecord {
    pub requester_uri: String,
    pub target_uri: String,
    /// `None`: the scope covers every room.
    pub room_id: Option<String>,
    pub operation: ConsentOperation,
    pub updated_at_ms: i64,
}

/// A local user's consent policy and identifier-query profile (-06 §5.8).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserSettings {
    pub user_uri: String,
    /// KeyMaterial requests need an explicit `grant` (-06 §7).
    pub consent_required: bool,
    pub handle: Option<String>,
    pub nick: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub discoverability: Discoverability,
}

/// A consent operation (-06 §5.7), stored by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsentOperation {
    Cancel,
    Request,
    Grant,
    Revoke,
}

impl ConsentOperation {
    pub const ALL: [Self; 4] = [Self::Cancel, Self::Request, Self::Grant, Self::Revoke];

    /// The stored (and client API) name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cancel => "cancel",
            Self::Request => "request",
            Self::Grant => "grant",
            Self::Revoke => "revoke",
        }
    }

    /// The operation named `name`, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|op| op.as_str() == name)
    }
}

/// Who may find a user by identifier query (-06 §5.8), stored by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Discoverability {
    /// Nobody.
    #[default]
    None,
    /// A query naming the exact handle, e-mail or phone number.
    Exact,
    /// Exact queries and searches.
    Search,
}

impl Discoverability {
    pub const ALL: [Self; 3] = [Self::None, Self::Exact, Self::Search];

    /// The stored (and client API) name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Exact => "exact",
            Self::Search => "search",
        }
    }

    /// The setting named `name`, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.as_str() == name)
    }
}

/// A stored name that is not one of an enum's values.
pub(crate) fn stored_name<T>(value: Option<T>, what: &str, name: &str) -> Result<T> {
    value.ok_or_else(|| StoreError::Invalid(format!("stored {what} {name:?} is unknown")))
}

/// An abuse report received by the hub (-06 §5.9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAbuseReport {
    pub room_id: String,
    /// The provider that sent the report.
    pub source_provider: String,
    /// Empty for an anonymous report.
    pub reporting_user: String,
    pub alleged_abuser: String,
    /// The TLS-encoded `AbuseReport`.
    pub report: Vec<u8>,
    pub received_at_ms: i64,
    /// The hub verified the frank of every `AbusiveMessage` (-06 §5.9).
    pub franks_verified: bool,
}

/// A stored abuse report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbuseReportRecord {
    pub id: u64,
    pub report: NewAbuseReport,
}
