//! One client device: its identity, signature key, openmls state and the
//! bookkeeping the library keeps per room, with file persistence.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use mimi_content::{MessageId, MimiContent};
use mimi_protocol::components::{
    PARTICIPANT_LIST, ParticipantListData, ROOM_METADATA, RoomMetaData, decode_component,
};
use mimi_protocol::decode_exact;
use mimi_protocol::msgs::Frank;
use mimi_protocol::uri::{MimiUri, MimiUriKind};
use mimi_room::identity::{client_identity, user_of_device};
use openmls::prelude::*;
use openmls_basic_credential::SignatureKeyPair;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tls_codec::{Deserialize as _, Serialize as _, VLBytes};

use crate::error::{Error, Result};
use crate::provider::Provider;

/// The default cipher suite of a device ([`Device::new`]), and the suite
/// of device files written before devices had a choice.
pub const CIPHERSUITE: Ciphersuite = Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519;

/// The cipher suites a device can use: those its crypto provider
/// (openmls_rust_crypto) supports, 0x0001, 0x0002 and 0x0003.
pub fn supported_ciphersuites() -> Vec<Ciphersuite> {
    Provider::default().crypto().supported_ciphersuites()
}

fn provider_supports(ciphersuite: Ciphersuite) -> bool {
    Provider::default().crypto().supports(ciphersuite).is_ok()
}

/// A cipher suite by its code point (`0x0002`, `2`) or its RFC 9420 name
/// (`MLS_128_DHKEMP256_AES128GCM_SHA256_P256`, any case); only suites of
/// [`supported_ciphersuites`] are accepted.
pub fn parse_ciphersuite(text: &str) -> Result<Ciphersuite> {
    let text = text.trim();
    let code = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u16::from_str_radix(hex, 16).ok(),
        None => text.parse::<u16>().ok(),
    };
    let supported = supported_ciphersuites();
    let found = supported
        .iter()
        .copied()
        .find(|cs| Some(*cs as u16) == code || format!("{cs:?}").eq_ignore_ascii_case(text));
    found.ok_or_else(|| {
        let names: Vec<String> = supported
            .iter()
            .map(|cs| format!("{:#06x} ({cs:?})", *cs as u16))
            .collect();
        Error::UnsupportedCipherSuite(format!("{text}; supported: {}", names.join(", ")))
    })
}

/// Default KeyPackage lifetime: 28 days.
pub const DEFAULT_KEY_PACKAGE_LIFETIME: u64 = 28 * 24 * 60 * 60;

/// How many digests of own handshake/application messages are kept per
/// room to recognise the hub's echoes (-06 §5.5).
const SENT_DIGESTS_KEPT: usize = 64;

const FILE_MAGIC: &[u8; 8] = b"MIMICLI1";

/// Leaf capabilities of every client on `ciphersuite`: the
/// `app_data_dictionary` GroupContext extension, AppDataUpdate and
/// SelfRemove proposals (mls-extensions; -06 §7 carries room state in
/// AppDataUpdate), and the `last_resort` KeyPackage extension (RFC 9420
/// §16.8 requires listing it).
pub fn capabilities(ciphersuite: Ciphersuite) -> Capabilities {
    Capabilities::new(
        None,
        Some(&[ciphersuite]),
        Some(&[ExtensionType::AppDataDictionary, ExtensionType::LastResort]),
        Some(&[ProposalType::AppDataUpdate, ProposalType::SelfRemove]),
        None,
    )
}

/// The `required_capabilities` of every room this library creates: what
/// room state needs (-06 §7). SelfRemove is not required (-06 does not
/// ask for it): clients without it leave with a Remove of their own leaf
/// ([`Device::leave`](crate::Device::leave)).
pub fn required_capabilities() -> RequiredCapabilitiesExtension {
    RequiredCapabilitiesExtension::new(
        &[ExtensionType::AppDataDictionary],
        &[ProposalType::AppDataUpdate],
        &[],
    )
}

/// The MLS group id of a room: the room URI with kind `g` instead of `r`
/// (-06 §3.1: room `mimi://a.example/r/clubhouse` has group
/// `mimi://a.example/g/clubhouse`).
pub fn group_id_of_room(room: &MimiUri) -> Result<GroupId> {
    if room.kind() != MimiUriKind::Room {
        return Err(Error::Uri(format!("{room} is not a room URI")));
    }
    let id = room.id().unwrap_or_default();
    let group = MimiUri::parse(&format!("mimi://{}/g/{id}", room.domain()))?;
    Ok(GroupId::from_slice(group.as_str().as_bytes()))
}

/// The room URI of a group id made by [`group_id_of_room`].
pub fn room_of_group_id(group_id: &GroupId) -> Result<MimiUri> {
    let text = std::str::from_utf8(group_id.as_slice())
        .map_err(|_| Error::Uri("group id is not UTF-8".into()))?;
    let group = MimiUri::parse(text)?;
    if group.kind() != MimiUriKind::Group {
        return Err(Error::Uri(format!(
            "group id {text} is not a mimi group URI"
        )));
    }
    let id = group.id().unwrap_or_default();
    Ok(MimiUri::parse(&format!(
        "mimi://{}/r/{id}",
        group.domain()
    ))?)
}

/// Options for [`Device::generate_key_packages`].
#[derive(Debug, Clone, Copy)]
pub struct KeyPackageOptions {
    /// Validity from now, in seconds.
    pub lifetime_seconds: u64,
    /// Mark as last resort (may be used more than once, RFC 9420 §16.8).
    pub last_resort: bool,
}

impl Default for KeyPackageOptions {
    fn default() -> Self {
        Self {
            lifetime_seconds: DEFAULT_KEY_PACKAGE_LIFETIME,
            last_resort: false,
        }
    }
}

/// A KeyPackage ready for upload to the device's provider (-06 §5.2: the
/// provider hands them out in `KeyMaterialResponse`s).
#[derive(Debug, Clone)]
pub struct GeneratedKeyPackage {
    /// The `KeyPackageRef` (RFC 9420 §5.2), by which the hub routes the
    /// Welcome.
    pub key_package_ref: Vec<u8>,
    /// The TLS encoding of the bare `KeyPackage` (as carried in a
    /// `KeyMaterialResponse`).
    pub key_package: Vec<u8>,
    /// The same KeyPackage as an `MLSMessage` (the upload format of the
    /// provider-internal client API).
    pub mls_message: Vec<u8>,
    pub last_resort: bool,
}

/// Where the device stands in a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RoomStatus {
    /// A member of the room's MLS group.
    Active,
    /// Joined by external commit; waiting for the hub's verdict
    /// ([`Device::confirm_commit`] / [`Device::discard_commit`]).
    JoiningByExternalCommit,
    /// Removed from the MLS group (by others, or after leaving).
    Removed,
}

/// A message in a room's history.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// The MIMI message ID (mimi-content "Message ID").
    pub id: MessageId,
    pub room: String,
    /// Device URI from the sender's MLS credential.
    pub sender_device: String,
    /// The sender's user URI.
    pub sender_user: String,
    /// The MLS epoch the message was sent in.
    pub epoch: u64,
    /// Hub acceptance time (ms since the UNIX epoch); 0 for own messages.
    pub timestamp: u64,
    pub content: MimiContent,
    /// Sent by this device.
    pub own: bool,
    /// The `frank_aad` franking tag carried in the message's Safe AAD.
    pub franking_tag: Option<[u8; 32]>,
    /// The hub's frank (-06 §5.4.1), kept only when it verified
    /// ([`FrankStatus::Verified`]); with `timestamp` (the hub's
    /// `accepted_timestamp`) and the content it is what an abuse report
    /// carries (-06 §5.9).
    pub frank: Option<Frank>,
    /// What receiver verification of the frank found.
    pub frank_status: FrankStatus,
    /// Sent by this device and not yet echoed by the hub: its place in
    /// the room's order is not known yet (-06 §5.5).
    pub pending: bool,
    /// Where the message breaks the room's policy as only clients enforce
    /// it ([`crate::room_policy::ClientPolicy::breaches`]): shown, not
    /// hidden. Empty for own messages, which are refused instead.
    pub policy_breaches: Vec<String>,
}

/// The outcome of receiver verification of a message's frank (-06 §5.4.1
/// "Receiver verification of frank").
///
/// A message whose frank fails is still delivered — MLS authenticated its
/// sender and content — but flagged, and it cannot be reported with proof.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum FrankStatus {
    /// No frank came with the message (the room has no franking agent, or
    /// the hub did not frank it), or it is an own message not yet franked.
    #[default]
    Unfranked,
    /// The frank verified: franking tag, integrity signature by the room's
    /// franking agent (whose credential names the hub's domain), and the
    /// sender and room agreeing between credential, content and context.
    Verified,
    /// A frank came with the message and failed verification.
    Invalid(String),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredMessage {
    id: String,
    sender_device: String,
    sender_user: String,
    epoch: u64,
    timestamp: u64,
    content: String,
    own: bool,
    franking_tag: Option<String>,
    #[serde(default)]
    frank: Option<String>,
    #[serde(default)]
    frank_status: FrankStatus,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    policy_breaches: Vec<String>,
}

impl StoredMessage {
    pub(crate) fn from_message(m: &Message) -> Result<Self> {
        Ok(Self {
            id: m.id.to_hex(),
            sender_device: m.sender_device.clone(),
            sender_user: m.sender_user.clone(),
            epoch: m.epoch,
            timestamp: m.timestamp,
            content: hex::encode(m.content.to_cbor()?),
            own: m.own,
            franking_tag: m.franking_tag.map(hex::encode),
            frank: match &m.frank {
                Some(f) => Some(hex::encode(f.tls_serialize_detached()?)),
                None => None,
            },
            frank_status: m.frank_status.clone(),
            policy_breaches: m.policy_breaches.clone(),
        })
    }

    pub(crate) fn is_own(&self) -> bool {
        self.own
    }

    pub(crate) fn sender_user(&self) -> &str {
        &self.sender_user
    }

    pub(crate) fn has_id(&self, hex_id: &str) -> bool {
        self.id == hex_id
    }

    pub(crate) fn to_message(&self, room: &str) -> Result<Message> {
        let bad = |what: &str| Error::Persistence(format!("history: bad {what}"));
        let content = hex::decode(&self.content).map_err(|_| bad("content"))?;
        let franking_tag = match &self.franking_tag {
            Some(t) => Some(
                hex::decode(t)
                    .ok()
                    .and_then(|v| <[u8; 32]>::try_from(v).ok())
                    .ok_or_else(|| bad("franking tag"))?,
            ),
            None => None,
        };
        let frank = match &self.frank {
            Some(f) => Some(
                hex::decode(f)
                    .ok()
                    .and_then(|b| decode_exact::<Frank>(&b).ok())
                    .ok_or_else(|| bad("frank"))?,
            ),
            None => None,
        };
        Ok(Message {
            id: MessageId::from_hex(&self.id).ok_or_else(|| bad("message id"))?,
            room: room.to_owned(),
            sender_device: self.sender_device.clone(),
            sender_user: self.sender_user.clone(),
            epoch: self.epoch,
            timestamp: self.timestamp,
            content: MimiContent::from_cbor(&content)?,
            own: self.own,
            franking_tag,
            frank,
            frank_status: self.frank_status.clone(),
            pending: false,
            policy_breaches: self.policy_breaches.clone(),
        })
    }
}

/// Per-room bookkeeping besides the openmls state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RoomRecord {
    pub(crate) group_id: String,
    pub(crate) status: RoomStatus,
    pub(crate) history: Vec<StoredMessage>,
    /// Hex SHA-256 of own outgoing MLS messages, newest last.
    pub(crate) sent: Vec<String>,
    /// Own application messages not yet echoed by the hub: (digest of the
    /// MLS message, message ID hex), newest last.
    #[serde(default)]
    pub(crate) unechoed: Vec<(String, String)>,
    /// Hex TLS encoding of this device's update request (commit) sent to
    /// the hub and not yet answered; see [`Device::update_in_flight`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) update_in_flight: Option<String>,
}

impl RoomRecord {
    pub(crate) fn new(group_id: &GroupId) -> Self {
        Self {
            group_id: hex::encode(group_id.as_slice()),
            status: RoomStatus::Active,
            history: Vec::new(),
            sent: Vec::new(),
            unechoed: Vec::new(),
            update_in_flight: None,
        }
    }

    pub(crate) fn remember_sent(&mut self, digest: String) {
        self.sent.push(digest);
        if self.sent.len() > SENT_DIGESTS_KEPT {
            let excess = self.sent.len() - SENT_DIGESTS_KEPT;
            self.sent.drain(..excess);
        }
    }

    /// Remembers an own application message until the hub echoes it.
    pub(crate) fn remember_unechoed(&mut self, digest: String, id_hex: String) {
        self.unechoed.push((digest, id_hex));
        if self.unechoed.len() > SENT_DIGESTS_KEPT {
            let excess = self.unechoed.len() - SENT_DIGESTS_KEPT;
            self.unechoed.drain(..excess);
        }
    }

    /// Whether the own message `id_hex` still waits for the hub's echo.
    pub(crate) fn is_unechoed(&self, id_hex: &str) -> bool {
        self.unechoed.iter().any(|(_, id)| id == id_hex)
    }

    /// Where the next settled message goes: before the own messages the
    /// hub has not echoed yet. Fanout comes in the hub's order (-06 §5.5),
    /// so whatever arrives while an own message waits for its echo was
    /// ordered before it; pending messages stay last, in sending order.
    fn settled_end(&self) -> usize {
        self.history
            .iter()
            .position(|m| m.is_own() && self.is_unechoed(&m.id))
            .unwrap_or(self.history.len())
    }

    /// A message received from the hub, in its place.
    pub(crate) fn push_received(&mut self, message: StoredMessage) {
        let at = self.settled_end();
        self.history.insert(at, message);
    }

    /// The hub echoed the own application message with MLS digest
    /// `digest`: its place in the hub's order is now known, after every
    /// message received so far. Every device of the room then shows one
    /// order, the hub's.
    pub(crate) fn echoed(&mut self, digest: &str) {
        let Some(at) = self.unechoed.iter().position(|(d, _)| d == digest) else {
            return;
        };
        let (_, id_hex) = self.unechoed.remove(at);
        if let Some(at) = self
            .history
            .iter()
            .rposition(|m| m.is_own() && m.has_id(&id_hex))
        {
            let message = self.history.remove(at);
            let to = self.settled_end();
            self.history.insert(to, message);
        }
    }

    /// Replaces the stored entry of `message` (same id, same direction).
    pub(crate) fn update_message(&mut self, message: &Message) -> Result<()> {
        let hex = message.id.to_hex();
        let stored = StoredMessage::from_message(message)?;
        if let Some(entry) = self
            .history
            .iter_mut()
            .rev()
            .find(|m| m.own == message.own && m.has_id(&hex))
        {
            *entry = stored;
        }
        Ok(())
    }

    pub(crate) fn was_sent(&self, digest: &str) -> bool {
        self.sent.iter().any(|d| d == digest)
    }
}

/// The bookkeeping part of the device file.
#[derive(Serialize, Deserialize)]
struct DeviceState {
    device: String,
    ciphersuite: u16,
    signature_public_key: String,
    rooms: BTreeMap<String, RoomRecord>,
    /// See [`Device::delivered_up_to`]; absent in older files.
    #[serde(default)]
    delivered_up_to: u64,
}

/// One client device (-06 §3: ClientA1, ClientB1, …): a BasicCredential
/// whose identity is its device URI `mimi://<domain>/d/<user>/<device>`,
/// one MLS group per room, and a message history.
///
/// Pure: operations return the MIMI requests to send and consume the
/// fanout messages received; the caller moves the bytes.
pub struct Device {
    pub(crate) device: MimiUri,
    /// The suite of its signature key, KeyPackages and the rooms it
    /// creates.
    pub(crate) ciphersuite: Ciphersuite,
    pub(crate) user: MimiUri,
    pub(crate) provider: Provider,
    pub(crate) signer: SignatureKeyPair,
    pub(crate) credential: CredentialWithKey,
    pub(crate) rooms: BTreeMap<String, RoomRecord>,
    pub(crate) groups: HashMap<String, MlsGroup>,
    /// The provider queue's sequence number of the last event applied.
    pub(crate) delivered_up_to: u64,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device")
            .field("device", &self.device.as_str())
            .field("rooms", &self.rooms.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Device {
    /// A new device on [`CIPHERSUITE`] with a fresh signature key.
    /// `device_uri` must be a two-segment device URI
    /// (`mimi://b.example/d/bob/phone`).
    pub fn new(device_uri: &str) -> Result<Self> {
        Self::with_ciphersuite(device_uri, CIPHERSUITE)
    }

    /// A new device on `ciphersuite` (one of [`supported_ciphersuites`]):
    /// its signature key is of the suite's scheme, and its KeyPackages,
    /// the rooms it creates and its key-material and groupInfo requests
    /// use the suite.
    pub fn with_ciphersuite(device_uri: &str, ciphersuite: Ciphersuite) -> Result<Self> {
        let device = MimiUri::parse(device_uri)?;
        let user = user_of_device(&device).ok_or_else(|| {
            Error::Uri(format!(
                "{device_uri} is not a mimi://domain/d/user/device URI"
            ))
        })?;
        let provider = Provider::default();
        if provider.crypto().supports(ciphersuite).is_err() {
            return Err(Error::UnsupportedCipherSuite(format!("{ciphersuite:?}")));
        }
        let signer = SignatureKeyPair::new(ciphersuite.signature_algorithm())
            .map_err(|e| Error::mls("signature key generation", e))?;
        signer
            .store(provider.storage())
            .map_err(|e| Error::mls("storing the signature key", e))?;
        let credential = Self::credential_for(&device, &signer);
        Ok(Self {
            device,
            ciphersuite,
            user,
            provider,
            signer,
            credential,
            rooms: BTreeMap::new(),
            groups: HashMap::new(),
            delivered_up_to: 0,
        })
    }

    fn credential_for(device: &MimiUri, signer: &SignatureKeyPair) -> CredentialWithKey {
        CredentialWithKey {
            credential: BasicCredential::new(device.as_str().as_bytes().to_vec()).into(),
            signature_key: signer.public().into(),
        }
    }

    /// This device's URI.
    pub fn device_uri(&self) -> &MimiUri {
        &self.device
    }

    /// The device's cipher suite.
    pub fn ciphersuite(&self) -> Ciphersuite {
        self.ciphersuite
    }

    /// The URI of the user this device belongs to.
    pub fn user_uri(&self) -> &MimiUri {
        &self.user
    }

    /// The device's credential and signature key.
    pub fn credential(&self) -> &CredentialWithKey {
        &self.credential
    }

    /// The device's signature key pair (e.g. to sign a
    /// `KeyMaterialRequest` or `GroupInfoRequest`, -06 §5.2, §5.6).
    pub fn signer(&self) -> &SignatureKeyPair {
        &self.signer
    }

    /// The crypto provider (e.g. for verifying responses).
    pub fn crypto(&self) -> &openmls_rust_crypto::RustCrypto {
        self.provider.crypto()
    }

    // ---- KeyPackages (-06 §5.2) -------------------------------------

    /// Generates `count` KeyPackages for upload. Their private keys stay in
    /// the device state (and are persisted with it).
    pub fn generate_key_packages(
        &mut self,
        count: usize,
        options: KeyPackageOptions,
    ) -> Result<Vec<GeneratedKeyPackage>> {
        let mut out = Vec::with_capacity(count);
        for _ in 0..count {
            let mut builder = KeyPackage::builder()
                .leaf_node_capabilities(capabilities(self.ciphersuite))
                .key_package_lifetime(Lifetime::new(options.lifetime_seconds));
            if options.last_resort {
                builder = builder.mark_as_last_resort();
            }
            let bundle = builder
                .build(
                    self.ciphersuite,
                    &self.provider,
                    &self.signer,
                    self.credential.clone(),
                )
                .map_err(|e| Error::mls("KeyPackage creation", e))?;
            let key_package = bundle.key_package();
            let key_package_ref = key_package
                .hash_ref(self.provider.crypto())
                .map_err(|e| Error::mls("KeyPackageRef", e))?;
            out.push(GeneratedKeyPackage {
                key_package_ref: key_package_ref.as_slice().to_vec(),
                key_package: key_package.tls_serialize_detached()?,
                mls_message: MlsMessageOut::from(key_package.clone()).tls_serialize_detached()?,
                last_resort: options.last_resort,
            });
        }
        Ok(out)
    }

    // ---- queries (-06 §7) --------------------------------------------

    /// The URIs of the rooms this device knows, with their status.
    pub fn rooms(&self) -> Vec<(String, RoomStatus)> {
        self.rooms
            .iter()
            .map(|(room, record)| (room.clone(), record.status))
            .collect()
    }

    /// Whether the hub names, among `refs`, a proposal the pending commit
    /// of `room` does not carry: one queued at the hub that this device
    /// had not received when it committed.
    pub fn commit_lacks_any(
        &self,
        room: &str,
        refs: &[openmls::prelude::hash_ref::ProposalRef],
    ) -> Result<bool> {
        let Some(commit) = self.group(room)?.pending_commit() else {
            return Ok(false);
        };
        let carried: Vec<_> = commit
            .queued_proposals()
            .map(|p| p.proposal_reference_ref().clone())
            .collect();
        Ok(refs.iter().any(|r| !carried.contains(r)))
    }

    /// The room's status on this device.
    pub fn room_status(&self, room: &str) -> Result<RoomStatus> {
        Ok(self.record(room)?.status)
    }

    /// The room's participant list (-06 §7.5) as of the device's epoch.
    pub fn participants(&self, room: &str) -> Result<ParticipantListData> {
        participants_of(self.group(room)?)
    }

    /// The room metadata (-06 §7.6), if the room has any.
    pub fn room_metadata(&self, room: &str) -> Result<Option<RoomMetaData>> {
        self.group(room)?
            .extensions()
            .app_data_dictionary()
            .and_then(|e| e.dictionary().get(&ROOM_METADATA))
            .map(|bytes| {
                decode_component(bytes).map_err(|e| Error::RoomState(format!("room metadata: {e}")))
            })
            .transpose()
    }

    /// The room's MLS epoch as this device sees it.
    pub fn epoch(&self, room: &str) -> Result<u64> {
        Ok(self.group(room)?.epoch().as_u64())
    }

    /// Device URIs of the MLS group's members, in leaf order.
    pub fn members(&self, room: &str) -> Result<Vec<String>> {
        Ok(self
            .group(room)?
            .members()
            .filter_map(|m| client_identity(&m.credential).ok())
            .map(|id| id.device.as_str().to_owned())
            .collect())
    }

    /// The room's message history, oldest first.
    pub fn history(&self, room: &str) -> Result<Vec<Message>> {
        let record = self.record(room)?;
        record
            .history
            .iter()
            .map(|m| {
                let mut message = m.to_message(room)?;
                message.pending = m.is_own() && record.is_unechoed(&message.id.to_hex());
                Ok(message)
            })
            .collect()
    }

    /// The cipher suite of the room's MLS group.
    pub fn room_ciphersuite(&self, room: &str) -> Result<Ciphersuite> {
        Ok(self.group(room)?.ciphersuite())
    }

    /// The room's policy as of the device's epoch: roles, participants
    /// and every policy component (room-policy).
    pub fn room_policy(&self, room: &str) -> Result<crate::room_policy::ClientPolicy> {
        crate::room_policy::ClientPolicy::from_dictionary(
            self.group(room)?
                .extensions()
                .app_data_dictionary()
                .map(|e| e.dictionary()),
        )
    }

    /// The sender (user URI) of message `id` in the room's history.
    pub(crate) fn sender_of(&self, room: &str, id: &MessageId) -> Option<String> {
        let hex_id = id.to_hex();
        self.record(room)
            .ok()?
            .history
            .iter()
            .find(|m| m.has_id(&hex_id))
            .map(|m| m.sender_user().to_owned())
    }

    /// The room's `app_data_dictionary` (-06 §7: room state components).
    pub fn app_data_dictionary(&self, room: &str) -> Result<Option<AppDataDictionary>> {
        Ok(self
            .group(room)?
            .extensions()
            .app_data_dictionary()
            .map(|e| e.dictionary().clone()))
    }

    /// The room's MLS group (read-only), for inspection.
    pub fn mls_group(&self, room: &str) -> Result<&MlsGroup> {
        self.group(room)
    }

    // ---- persistence --------------------------------------------------

    /// Encodes the whole device: identity, openmls storage (signature key,
    /// KeyPackage private keys, groups) and bookkeeping. Deterministic.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let state = DeviceState {
            device: self.device.as_str().to_owned(),
            ciphersuite: self.ciphersuite as u16,
            signature_public_key: hex::encode(self.signer.public()),
            rooms: self.rooms.clone(),
            delivered_up_to: self.delivered_up_to,
        };
        let json =
            serde_json::to_vec(&state).map_err(|e| Error::Persistence(format!("state: {e}")))?;
        let mut out = FILE_MAGIC.to_vec();
        VLBytes::new(json).tls_serialize(&mut out)?;
        VLBytes::new(self.provider.storage_to_bytes()?).tls_serialize(&mut out)?;
        Ok(out)
    }

    /// Restores a device encoded by [`Device::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let rest = bytes
            .strip_prefix(FILE_MAGIC.as_slice())
            .ok_or_else(|| Error::Persistence("not a mimi-client device file".into()))?;
        let mut rest = rest;
        let json = VLBytes::tls_deserialize(&mut rest)
            .map_err(|e| Error::Persistence(format!("state: {e}")))?;
        let storage = VLBytes::tls_deserialize(&mut rest)
            .map_err(|e| Error::Persistence(format!("storage: {e}")))?;
        if !rest.is_empty() {
            return Err(Error::Persistence("trailing bytes".into()));
        }
        let state: DeviceState = serde_json::from_slice(json.as_slice())
            .map_err(|e| Error::Persistence(format!("state: {e}")))?;
        // Files written before devices chose a suite say 0x0001 here.
        let ciphersuite = Ciphersuite::try_from(state.ciphersuite)
            .ok()
            .filter(|cs| provider_supports(*cs))
            .ok_or_else(|| {
                Error::Persistence(format!(
                    "unsupported cipher suite {:#06x}",
                    state.ciphersuite
                ))
            })?;
        let device = MimiUri::parse(&state.device)?;
        let user = user_of_device(&device)
            .ok_or_else(|| Error::Persistence(format!("bad device URI {}", state.device)))?;
        let provider = Provider::from_storage_bytes(storage.as_slice())?;
        let public = hex::decode(&state.signature_public_key)
            .map_err(|_| Error::Persistence("bad signature key".into()))?;
        let signer = SignatureKeyPair::read(
            provider.storage(),
            &public,
            ciphersuite.signature_algorithm(),
        )
        .ok_or_else(|| Error::Persistence("signature key missing from storage".into()))?;
        let credential = Self::credential_for(&device, &signer);
        let mut groups = HashMap::new();
        for (room, record) in &state.rooms {
            let group_id = hex::decode(&record.group_id)
                .map_err(|_| Error::Persistence(format!("bad group id of {room}")))?;
            let group = MlsGroup::load(provider.storage(), &GroupId::from_slice(&group_id))
                .map_err(|e| Error::mls("loading a group", e))?
                .ok_or_else(|| Error::Persistence(format!("group of {room} missing")))?;
            groups.insert(room.clone(), group);
        }
        Ok(Self {
            device,
            ciphersuite,
            user,
            provider,
            signer,
            credential,
            rooms: state.rooms,
            groups,
            delivered_up_to: state.delivered_up_to,
        })
    }

    /// Saves the device to `path` atomically and readable by its owner
    /// only ([`write_private`]): the file holds the MLS private keys.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        write_private(path.as_ref(), &self.to_bytes()?)?;
        Ok(())
    }

    /// The sequence number, in this device's provider queue, of the last
    /// event applied to this device. Kept in the device file itself, so
    /// MLS state and the position in the queue are saved in one atomic
    /// write: an event is never applied twice after a crash, however the
    /// crash falls between saving and acknowledging.
    pub fn delivered_up_to(&self) -> u64 {
        self.delivered_up_to
    }

    /// Records that the queued event `seq` was applied (never moves back).
    pub fn mark_delivered(&mut self, seq: u64) {
        self.delivered_up_to = self.delivered_up_to.max(seq);
    }

    /// Loads a device saved with [`Device::save`]. A file that group or
    /// others may access is refused ([`check_private`]).
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        check_private(path)?;
        let bytes = std::fs::read(path)
            .map_err(|e| crate::Error::Persistence(format!("{}: {e}", path.display())))?;
        Self::from_bytes(&bytes)
    }

    // ---- internals ----------------------------------------------------

    pub(crate) fn record(&self, room: &str) -> Result<&RoomRecord> {
        self.rooms
            .get(room)
            .ok_or_else(|| Error::UnknownRoom(room.to_owned()))
    }

    pub(crate) fn record_mut(&mut self, room: &str) -> Result<&mut RoomRecord> {
        self.rooms
            .get_mut(room)
            .ok_or_else(|| Error::UnknownRoom(room.to_owned()))
    }

    pub(crate) fn group(&self, room: &str) -> Result<&MlsGroup> {
        self.groups
            .get(room)
            .ok_or_else(|| Error::UnknownRoom(room.to_owned()))
    }

    /// The room whose MLS group has this id.
    pub(crate) fn room_of_group(&self, group_id: &GroupId) -> Result<String> {
        self.groups
            .iter()
            .find(|(_, g)| g.group_id() == group_id)
            .map(|(room, _)| room.clone())
            .ok_or_else(|| {
                Error::UnknownRoom(String::from_utf8_lossy(group_id.as_slice()).into_owned())
            })
    }

    pub(crate) fn random_salt(&self) -> Result<[u8; 16]> {
        self.provider
            .rand()
            .random_array::<16>()
            .map_err(|e| Error::mls("randomness", e))
    }
}

/// Reads the participant list from a group's `app_data_dictionary`.
pub(crate) fn participants_of(group: &MlsGroup) -> Result<ParticipantListData> {
    match group
        .extensions()
        .app_data_dictionary()
        .and_then(|e| e.dictionary().get(&PARTICIPANT_LIST))
    {
        Some(bytes) => {
            decode_component(bytes).map_err(|e| Error::RoomState(format!("participant list: {e}")))
        }
        None => Ok(ParticipantListData::default()),
    }
}

/// Hex SHA-256 of an MLS message's encoding, to recognise echoes.
pub(crate) fn digest_of(message: &impl tls_codec::Serialize) -> Result<String> {
    Ok(hex::encode(Sha256::digest(
        message.tls_serialize_detached()?,
    )))
}

/// Refuses a secret file (device or session) whose mode lets group or
/// others read or write it, as ssh refuses such a private key: the secret
/// may already have leaked, and silently using it would hide that. The
/// owner decides (`chmod 600`). A no-op where there are no Unix modes.
pub fn check_private(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(path)
            .map_err(|e| crate::Error::Persistence(format!("{}: {e}", path.display())))?
            .permissions()
            .mode()
            & 0o777;
        if mode & 0o077 != 0 {
            return Err(crate::Error::NotPrivate {
                path: path.to_owned(),
                mode,
            });
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Creates `dir` and its missing parents for secret files, the ones it
/// creates accessible by their owner only (mode 0700 on Unix); an
/// existing directory is left as it is.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Writes `bytes` to `path` atomically (temporary file, fsync, rename),
/// the file readable and writable by its owner only (mode 0600 on Unix):
/// device files hold MLS private keys, session files bearer tokens. The
/// temporary file is created with that mode, so the secret is never
/// readable by others, even for a moment, and an older file of looser
/// mode is replaced, not reused.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&tmp)?;
        // A leftover temporary file keeps its old mode: tighten it.
        #[cfg(unix)]
        file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    // Make the rename itself durable where directories can be synced.
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && let Ok(dir) = std::fs::File::open(dir)
    {
        let _ = dir.sync_all();
    }
    Ok(())
}
