//! An in-process "network": `mimi_room::HubRoom` as the hub and a set of
//! devices. Every request goes through the hub's checks; every resulting
//! fanout message is encoded, decoded and delivered to the devices in
//! order (the sender included: own echoes must be harmless, -06 §5.5).

#![allow(dead_code)]

use std::collections::BTreeMap;

use mimi_client::{CreatedRoom, Device, Event, KeyPackageOptions, OutgoingMessage, RoomOptions};
use mimi_protocol::msgs::{
    FanoutBody, FanoutMessage, HandshakeBody, RatchetTreeOption, UpdateRequest,
};
use mimi_protocol::{decode_exact, encode};
use mimi_room::{AcceptedCommit, HubRoom, SubmitRejection, UpdateRejection};
use openmls::messages::group_info::VerifiableGroupInfo;
use openmls::prelude::*;
use openmls_rust_crypto::RustCrypto;

pub const ROOM: &str = "mimi://a.example/r/clubhouse";
pub const ALICE: &str = "mimi://a.example/d/alice/laptop";
pub const BOB: &str = "mimi://b.example/d/bob/phone";
pub const CATHY: &str = "mimi://c.example/d/cathy/tablet";
pub const CATHY2: &str = "mimi://c.example/d/cathy/desktop";

pub fn user(device: &str) -> String {
    mimi_room::identity::user_of_device(&mimi_protocol::MimiUri::parse(device).unwrap())
        .unwrap()
        .as_str()
        .to_owned()
}

/// The hub, its stored GroupInfo/tree, and every device, by URI.
pub struct Net {
    pub hub: HubRoom,
    pub devices: BTreeMap<String, Device>,
    /// Latest GroupInfo and tree the hub got with an accepted commit (what
    /// it answers `/groupInfo` with, -06 §5.6).
    pub group_info: VerifiableGroupInfo,
    pub ratchet_tree: RatchetTreeIn,
    /// Every event each device reported, in order.
    pub events: BTreeMap<String, Vec<Event>>,
    /// Whether the committer is told of the hub's acceptance before the
    /// fanout (otherwise it learns from the echo of its commit).
    pub confirm_before_fanout: bool,
    /// The hub's franking key, if the hub franks messages (-06 §5.4.1).
    pub franker: Option<openmls_basic_credential::SignatureKeyPair>,
    clock: u64,
}

/// Round-trips a wire value through its TLS encoding.
pub fn on_the_wire<T: tls_codec::Serialize + tls_codec::Deserialize>(value: &T) -> T {
    decode_exact(&encode(value).unwrap()).unwrap()
}

impl Net {
    /// `creator` creates the room (-06 §3.1) and the hub starts hosting it.
    pub fn create(creator: &str) -> Self {
        Self::create_with(creator, None, RoomOptions::default())
    }

    /// Like [`Net::create`] with a hub external sender and room options.
    pub fn create_with(
        creator: &str,
        hub_sender: Option<mimi_client::HubSender>,
        options: RoomOptions,
    ) -> Self {
        let mut device = Device::new(creator).unwrap();
        let CreatedRoom {
            group_info,
            ratchet_tree,
            ..
        } = device.create_room(ROOM, hub_sender, options).unwrap();
        let hub = HubRoom::create(
            &RustCrypto::default(),
            ratchet_tree.clone(),
            group_info.clone(),
        )
        .unwrap();
        let mut devices = BTreeMap::new();
        devices.insert(creator.to_owned(), device);
        Self {
            hub,
            devices,
            group_info,
            ratchet_tree,
            events: BTreeMap::new(),
            confirm_before_fanout: true,
            franker: None,
            clock: 1_700_000_000_000,
        }
    }

    pub fn device(&mut self, uri: &str) -> &mut Device {
        self.devices.get_mut(uri).expect("no such device")
    }

    /// Adds a device that is not (yet) in the room.
    pub fn new_device(&mut self, uri: &str) {
        self.devices
            .insert(uri.to_owned(), Device::new(uri).unwrap());
    }

    /// `adder` adds the user of the new `device` as a member, with that one
    /// client (-06 §3.2: participant list + Add in one commit); the hub's
    /// answer.
    pub fn add_member(
        &mut self,
        adder: &str,
        device: &str,
    ) -> Result<Option<AcceptedCommit>, UpdateRejection> {
        self.new_device(device);
        let kps = self.key_packages(device, 1);
        let req = self
            .device(adder)
            .add_user(
                ROOM,
                &user(device),
                mimi_room::policy::default_role::MEMBER,
                kps,
            )
            .unwrap();
        self.update(adder, req)
    }

    /// KeyPackages of `device`, as the adder receives them from a
    /// KeyMaterialResponse.
    pub fn key_packages(&mut self, device: &str, n: usize) -> Vec<KeyPackageIn> {
        self.device(device)
            .generate_key_packages(n, KeyPackageOptions::default())
            .unwrap()
            .into_iter()
            .map(|kp| decode_exact::<KeyPackageIn>(&kp.key_package).unwrap())
            .collect()
    }

    /// Device URIs the hub fans out to: the group's members.
    fn hub_members(&self) -> Vec<String> {
        self.hub
            .members()
            .into_iter()
            .filter_map(|(_, id)| id.ok())
            .map(|id| id.device.as_str().to_owned())
            .collect()
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// Delivers one fanout message to `to`, in order.
    pub fn deliver(&mut self, to: &[String], fanout: &FanoutMessage) {
        for device in to {
            let Some(d) = self.devices.get_mut(device) else {
                continue;
            };
            let events = d
                .process_fanout(on_the_wire(fanout))
                .unwrap_or_else(|e| panic!("{device} failed to process fanout: {e}"));
            self.events
                .entry(device.clone())
                .or_default()
                .extend(events);
        }
    }

    /// `/update` (-06 §5.3) from `sender`: the hub decides; on success the
    /// sender confirms, and the commit or proposals are fanned out to the
    /// members (before the commit) and the Welcome to added clients.
    pub fn update(
        &mut self,
        sender: &str,
        request: UpdateRequest,
    ) -> Result<Option<AcceptedCommit>, UpdateRejection> {
        let request = on_the_wire(&request);
        let members = self.hub_members();
        let bundle = request.bundle;
        match bundle.body {
            HandshakeBody::Commit {
                welcome,
                group_info_option,
                ratchet_tree_option,
            } => {
                let accepted = self
                    .hub
                    .handle_commit(&RustCrypto::default(), bundle.proposal_or_commit.clone())?;
                if self.confirm_before_fanout {
                    self.device(sender).confirm_commit(ROOM).unwrap();
                }
                if let mimi_protocol::msgs::GroupInfoOption::Full(info) = group_info_option {
                    self.group_info = info;
                }
                if let RatchetTreeOption::Full(tree) = &ratchet_tree_option {
                    self.ratchet_tree = tree.clone();
                }
                let timestamp = self.tick();
                let commit = FanoutMessage {
                    timestamp,
                    message: bundle.proposal_or_commit,
                    body: FanoutBody::Commit {
                        external_proposals: Vec::new(),
                    },
                };
                let mut to = members.clone();
                if !to.iter().any(|d| d == sender) {
                    // An external joiner gets its own commit echoed too.
                    to.push(sender.to_owned());
                }
                self.deliver(&to, &commit);
                if let Some(welcome) = welcome {
                    let fanout = FanoutMessage {
                        timestamp,
                        message: MlsMessageOut::from_welcome(welcome, ProtocolVersion::Mls10)
                            .into(),
                        body: FanoutBody::Welcome {
                            ratchet_tree_option,
                        },
                    };
                    let added: Vec<String> =
                        accepted.added.iter().map(|a| a.device.clone()).collect();
                    self.deliver(&added, &fanout);
                }
                Ok(Some(accepted))
            }
            HandshakeBody::Proposal { more_proposals } => {
                let mut all = vec![bundle.proposal_or_commit.clone()];
                all.extend(more_proposals.iter().cloned());
                self.hub.handle_proposals(&RustCrypto::default(), all)?;
                let fanout = FanoutMessage {
                    timestamp: self.tick(),
                    message: bundle.proposal_or_commit,
                    body: FanoutBody::Proposal { more_proposals },
                };
                self.deliver(&members, &fanout);
                Ok(None)
            }
        }
    }

    /// `/submitMessage` (-06 §5.4): the hub checks epoch and sender, then
    /// fans the message out to every member.
    pub fn submit(&mut self, message: OutgoingMessage) -> Result<(), SubmitRejection> {
        let request = on_the_wire(&message.request);
        let epoch = match request.app_message.clone().extract() {
            MlsMessageBodyIn::PrivateMessage(m) => m.epoch().as_u64(),
            _ => panic!("application messages must be PrivateMessages"),
        };
        let sender = request.sending_uri.as_str().unwrap().to_owned();
        self.hub.authorize_message(epoch, &sender)?;
        let timestamp = self.tick();
        let frank = self
            .franker
            .as_ref()
            .and_then(|key| hub_frank(key, &request, timestamp));
        let fanout = FanoutMessage {
            timestamp,
            message: request.app_message,
            body: FanoutBody::Application { frank },
        };
        let members = self.hub_members();
        self.deliver(&members, &fanout);
        Ok(())
    }

    /// Sends a text message from `device` through the hub.
    pub fn say(&mut self, device: &str, text: &str) -> mimi_content::MessageId {
        let out = self
            .device(device)
            .send(ROOM, mimi_client::content::text(text))
            .unwrap();
        let id = out.message_id;
        self.submit(out).unwrap();
        id
    }

    /// Texts every device has in its history (as its own or received).
    pub fn texts(&self, device: &str) -> Vec<String> {
        self.devices[device]
            .history(ROOM)
            .unwrap()
            .into_iter()
            .filter_map(|m| match m.content.nested_part.part {
                mimi_content::Part::Single(p) => String::from_utf8(p.content).ok(),
                _ => None,
            })
            .collect()
    }

    pub fn events_of(&self, device: &str) -> &[Event] {
        self.events.get(device).map(Vec::as_slice).unwrap_or(&[])
    }
}

/// The hub's `hub_key` in these tests.
pub const HUB_SECRET: &[u8] = b"hub secret";

/// The franking tag a hub reads from a submitted message's Safe AAD
/// (-06 §5.4.1), without group secrets.
pub fn franking_tag_of(request: &mimi_protocol::msgs::SubmitMessageRequest) -> Option<[u8; 32]> {
    use mimi_protocol::components::{FRANK_AAD, FrankAAD};
    use tls_codec::Deserialize as _;
    let MlsMessageBodyIn::PrivateMessage(m) = request.app_message.clone().extract() else {
        return None;
    };
    let mut aad = m.aad();
    let safe = openmls::framing::SafeAad::tls_deserialize(&mut aad).ok()?;
    let tag: FrankAAD = decode_exact(safe.get(FRANK_AAD)?).ok()?;
    Some(tag.franking_tag)
}

/// `server_frank = HMAC_SHA256(hub_key, franking_tag || context)`, signed
/// as the FrankingIntegrityTBS (-06 §5.4.1 "Hub processing").
pub fn sign_frank(
    key: &openmls_basic_credential::SignatureKeyPair,
    franking_tag: &[u8; 32],
    context: mimi_protocol::msgs::ServerFrankingContext,
) -> mimi_protocol::msgs::Frank {
    use tls_codec::Serialize as _;
    let mut input = franking_tag.to_vec();
    input.extend(context.tls_serialize_detached().unwrap());
    let server_frank = mimi_content::franking::hmac_sha256(HUB_SECRET, &input);
    mimi_protocol::msgs::FrankingIntegrityTbs {
        server_frank,
        franking_signature_ciphersuite: mimi_client::CIPHERSUITE.into(),
        context,
    }
    .sign(key)
    .unwrap()
}

/// What a franking hub does: frank the message for the asserted sender,
/// the room and the acceptance time.
pub fn hub_frank(
    key: &openmls_basic_credential::SignatureKeyPair,
    request: &mimi_protocol::msgs::SubmitMessageRequest,
    accepted_timestamp: u64,
) -> Option<mimi_protocol::msgs::Frank> {
    let tag = franking_tag_of(request)?;
    Some(sign_frank(
        key,
        &tag,
        mimi_protocol::msgs::ServerFrankingContext {
            sender_uri: request.sending_uri.clone(),
            room_uri: mimi_protocol::IdentifierUri::new(ROOM),
            accepted_timestamp,
        },
    ))
}

/// `device`'s MLS group and signer, restored from its saved state
/// outside `Device`, so a test can write an application message the
/// client itself never would.
pub fn raw_group(
    net: &mut Net,
    device: &str,
) -> (
    openmls_rust_crypto::OpenMlsRustCrypto,
    MlsGroup,
    openmls_basic_credential::SignatureKeyPair,
) {
    use openmls_basic_credential::SignatureKeyPair;
    use openmls_traits::OpenMlsProvider as _;
    use tls_codec::Deserialize as _;
    let bytes = net.device(device).to_bytes().unwrap();
    // Device file: 8-byte magic, the bookkeeping JSON, the openmls storage
    // as sorted (key, value) pairs (crates/mimi-client/src/device.rs).
    let mut rest = &bytes[8..];
    let _json = tls_codec::VLBytes::tls_deserialize(&mut rest).unwrap();
    let storage = tls_codec::VLBytes::tls_deserialize(&mut rest).unwrap();
    let entries =
        Vec::<(tls_codec::VLBytes, tls_codec::VLBytes)>::tls_deserialize_exact(storage.as_slice())
            .unwrap();
    let provider = openmls_rust_crypto::OpenMlsRustCrypto::default();
    {
        let mut values = provider.storage().values.write().unwrap();
        for (k, v) in entries {
            values.insert(k.into(), v.into());
        }
    }
    let room = mimi_protocol::MimiUri::parse(ROOM).unwrap();
    let group = MlsGroup::load(
        provider.storage(),
        &mimi_client::group_id_of_room(&room).unwrap(),
    )
    .unwrap()
    .expect("the group is stored");
    let public = group
        .own_leaf_node()
        .unwrap()
        .signature_key()
        .as_slice()
        .to_vec();
    let signer = SignatureKeyPair::read(
        provider.storage(),
        &public,
        mimi_client::CIPHERSUITE.signature_algorithm(),
    )
    .expect("the signature key is stored");
    (provider, group, signer)
}
