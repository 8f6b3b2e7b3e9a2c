//! The one error type of the client library.

/// Everything that can go wrong in a client operation.
///
/// openmls errors are generic over the storage error type; they are kept
/// as text with the operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A cipher suite the device's crypto provider does not support.
    #[error("unsupported cipher suite {0}")]
    UnsupportedCipherSuite(String),
    /// A `mimi://` URI is malformed or of the wrong kind.
    #[error("bad URI: {0}")]
    Uri(String),
    /// The device has no room with this URI (or MLS group with this id).
    #[error("this device is not in room {0}: it did not create or join it and was not added")]
    UnknownRoom(String),
    /// The device already has a room with this URI.
    #[error("room {0} already exists on this device")]
    RoomExists(String),
    /// The device is no longer a member of the room's MLS group.
    #[error("not a member of room {0} any more")]
    NotAMember(String),
    /// The user is not in the room's participant list (-06 §7.5).
    #[error("{user} is not a participant of room {room}")]
    NotAParticipant { room: String, user: String },
    /// A KeyPackage offered for an Add is invalid or unsuitable (-06 §5.2).
    #[error("invalid KeyPackage: {0}")]
    InvalidKeyPackage(String),
    /// Proposals are queued; they must be committed before sending
    /// (openmls refuses application messages while proposals are pending).
    #[error("room {0} has pending proposals; commit them first")]
    PendingProposals(String),
    /// The room state (participant list, roles) is inconsistent or the
    /// requested change is invalid.
    #[error("room state: {0}")]
    RoomState(String),
    /// The room's policy forbids what was to be sent (the rules only
    /// clients enforce, [`crate::room_policy`]).
    #[error("the room's policy forbids this: {0}")]
    PolicyForbids(String),
    /// The hub refused a GroupInfo request (-06 §5.6): no such room, or
    /// the requester is not one of its participants.
    #[error("the hub refused the room's GroupInfo: {0}")]
    GroupInfoRefused(String),
    /// A received message is malformed or not acceptable.
    #[error("invalid message: {0}")]
    InvalidMessage(String),
    /// The message cannot be reported with proof (-06 §5.9): unknown, or
    /// without a verified frank.
    #[error("cannot report: {0}")]
    NotReportable(String),
    /// MIMI content encoding or decoding failed.
    #[error("content: {0}")]
    Content(#[from] mimi_content::ContentError),
    /// TLS encoding or decoding failed.
    #[error("codec: {0}")]
    Codec(#[from] tls_codec::Error),
    /// An openmls operation failed.
    #[error("MLS {op}: {reason}")]
    Mls { op: &'static str, reason: String },
    /// Reading or writing the device file failed.
    #[error("persistence: {0}")]
    Persistence(String),
    /// A device or session file that group or others may access
    /// ([`crate::check_private`]).
    #[error(
        "refusing {}: it holds secrets but group or others may access it (mode {mode:03o}); \
         restrict it with `chmod 600 {}` (and treat its keys as exposed if others read it)",
        path.display(),
        path.display()
    )]
    NotPrivate { path: std::path::PathBuf, mode: u32 },
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    pub(crate) fn mls(op: &'static str, e: impl std::fmt::Debug) -> Self {
        Error::Mls {
            op,
            reason: format!("{e:?}"),
        }
    }
}

impl From<mimi_protocol::MimiUriError> for Error {
    fn from(e: mimi_protocol::MimiUriError) -> Self {
        Error::Uri(e.to_string())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
