//! The one error enum of this crate (docs/architecture.md "Errors are values").

/// Errors returned by every [`crate::Store`] operation.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// `create_room` for a room id that already exists on this hub.
    #[error("room {0} already exists")]
    RoomExists(String),

    /// `create_room` of a fixed-membership room whose participants
    /// already have one here (`NewRoom::fixed_membership_key`).
    #[error("a fixed-membership room for these participants exists: {room_id}")]
    FixedMembershipExists { room_id: String },

    /// The room is not hosted here.
    #[error("room {0} not found")]
    RoomNotFound(String),

    /// The room's epoch is not the one the event was validated against: another
    /// commit won this epoch (transport requirements §3.2, exclusive epoch).
    #[error("epoch conflict: room is at epoch {current_epoch}")]
    EpochConflict {
        /// The room's epoch when the compare-and-set failed.
        current_epoch: u64,
    },

    /// A same-epoch group-state write raced with another one; reload and revalidate.
    #[error(
        "group state conflict: room is at epoch {current_epoch}, state version {current_state_version}"
    )]
    StateVersionConflict {
        /// The room's epoch when the compare-and-set failed.
        current_epoch: u64,
        /// The room's group-state version when the compare-and-set failed.
        current_state_version: u64,
    },

    /// `add_key_packages` for a client URI registered under another user.
    #[error("client {client_uri} belongs to user {owner}")]
    ClientOwnedByOtherUser {
        /// The client URI.
        client_uri: String,
        /// The user it is registered to.
        owner: String,
    },

    /// `register_device` for a device id that is registered already,
    /// without its current token or the admin's authority.
    #[error("device {0} is already registered")]
    DeviceRegistered(String),

    /// A value cannot be stored (out of range, inconsistent arguments).
    #[error("invalid argument: {0}")]
    Invalid(String),

    /// The database failed or is unreachable.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),

    /// Running the schema migrations failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// Result alias for this crate.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Converts an unsigned protocol value (epoch, sequence number) to the signed
/// 64-bit integer both databases store.
pub(crate) fn to_i64(value: u64, what: &str) -> Result<i64> {
    i64::try_from(value).map_err(|_| StoreError::Invalid(format!("{what} {value} exceeds i64")))
}

/// Converts a stored signed integer back to the unsigned protocol value.
pub(crate) fn to_u64(value: i64, what: &str) -> Result<u64> {
    u64::try_from(value)
        .map_err(|_| StoreError::Invalid(format!("stored {what} {value} is negative")))
}
