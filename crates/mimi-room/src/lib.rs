//! MIMI room logic as pure state machines (-06 §5.3–4.6, §6;
//! draft-ietf-mimi-room-policy).
//!
//! The hub validates handshake messages with openmls's [`PublicGroup`]
//! (no group secrets), enforces the room policy from the participant list
//! and role components in the `app_data_dictionary`, and arbitrates one
//! commit per epoch. No sockets, no SQL: callers load and persist the
//! state bytes.
//!
//! [`PublicGroup`]: openmls::prelude::PublicGroup

pub mod components;
pub mod engine;
pub mod external_proposal;
pub mod external_senders;
pub mod group;
pub mod hub;
pub mod identity;
pub mod key_packages;
pub mod keys;
pub mod policy;
pub mod rejection;
pub mod stored;

pub use hub::{AcceptedCommit, AddedClient, HubRoom};
pub use rejection::{
    CreateRoomRejection, GroupInfoRejection, PolicyViolation, SubmitRejection, UpdateRejection,
};

/// Errors about a room's state itself (as opposed to a refused request).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoomError {
    #[error("invalid group: {0}")]
    InvalidGroup(String),
    #[error(
        "invalid group: cipher suite {cipher_suite:#06x} is not supported by this hub (0x0001, 0x0002 and 0x0003 are)"
    )]
    UnsupportedCipherSuite { cipher_suite: u16 },
    #[error("invalid group: the room has no participant list")]
    NoParticipantList,
    #[error("invalid group: {user} has clients in the group but may not be an active participant")]
    InactiveMember { user: String },
    #[error("corrupt room state: {0}")]
    CorruptState(String),
    #[error("bad credential: {0}")]
    BadCredential(String),
}
