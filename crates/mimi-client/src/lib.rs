//! MIMI client library (draft-ietf-mimi-protocol-06).
//!
//! A [`Device`] is one client: its MLS state (openmls), one MLS group per
//! room, and a message history. It produces the MIMI requests a client
//! hands to its own provider (`UpdateRequest` for handshakes, -06 §5.3;
//! `SubmitMessageRequest` for messages, §5.4) and consumes the
//! `FanoutMessage`s its provider delivers (§5.5). No IO: the caller moves
//! the bytes, and persists the device with [`Device::save`].
//!
//! Room state lives in the `app_data_dictionary` (-06 §7): every
//! participant-list change travels as an AppDataUpdate proposal in the same
//! commit as the matching Adds/Removes, and every commit (own or received)
//! is resolved with `mimi_room::components::resolve_app_data_updates`, the
//! function the hub uses too.
//!
//! [`Device::history`] is the raw record of a room's messages, in the
//! hub's order; [`Device::conversation`] is the view of it with the content
//! semantics of draft-ietf-mimi-content applied: edits and deletes by the
//! original sender, replies, reactions and unlikes, expiry ([`conversation`]).
//!
//! Section numbers (`-06 §x`) are those of draft-ietf-mimi-protocol-06:
//! §5.2 key material, §5.3 update, §5.4 submit (§5.4.1 franking), §5.5
//! fanout, §5.6 groupInfo, §7.5 participant list, §7.6 room metadata.
//!
//! ```
//! use mimi_client::{Device, KeyPackageOptions, RoomOptions, content};
//! use mimi_room::policy::default_role::MEMBER;
//!
//! let room = "mimi://a.example/r/clubhouse";
//! let mut alice = Device::new("mimi://a.example/d/alice/laptop")?;
//! let created = alice.create_room(room, None, RoomOptions::default())?;
//! // … upload `created.group_info` / `created.ratchet_tree` to the hub.
//!
//! let mut bob = Device::new("mimi://b.example/d/bob/phone")?;
//! let kp = bob.generate_key_packages(1, KeyPackageOptions::default())?;
//! let kp = mimi_protocol::decode_exact(&kp[0].key_package).expect("KeyPackage");
//! let update = alice.add_user(room, "mimi://b.example/u/bob", MEMBER, vec![kp])?;
//! // … POST `update` to the hub; on `success`:
//! alice.confirm_commit(room)?;
//! let message = alice.send(room, content::text("hi Bob"))?;
//! // … POST `message.request`; deliver fanout with `Device::process_fanout`.
//! # let _ = (created, update, message);
//! # Ok::<(), mimi_client::Error>(())
//! ```

pub mod conversation;
mod device;
mod error;
#[cfg(feature = "http")]
pub mod http;
mod messaging;
mod provider;
mod requests;
pub mod room_policy;
mod rooms;

pub use conversation::Conversation;
pub use device::{
    CIPHERSUITE, DEFAULT_KEY_PACKAGE_LIFETIME, Device, FrankStatus, GeneratedKeyPackage,
    KeyPackageOptions, Message, RoomStatus, capabilities, check_private, create_private_dir,
    group_id_of_room, parse_ciphersuite, required_capabilities, room_of_group_id,
    supported_ciphersuites, write_private,
};
pub use error::{Error, Result};
pub use messaging::{Event, OutgoingMessage, TEXT_PLAIN, content};
/// RFC 9420 EncryptWithLabel as -06 §5.6 uses it (from `mimi-protocol`).
pub use mimi_protocol::msgs::group_info::{
    GROUP_INFO_ENCRYPTION_LABEL, decrypt_with_label, encrypt_with_label,
};
/// The MLS cipher suite type of a device's choice ([`Device::with_ciphersuite`]).
pub use openmls::prelude::Ciphersuite;
pub use provider::Provider;
pub use requests::{GroupInfoKey, key_packages_from_response};
pub use rooms::{CreatedRoom, HubSender, RoomOptions};
