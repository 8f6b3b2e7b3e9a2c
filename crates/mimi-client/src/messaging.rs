//! Sending MIMI content (-06 §3.4, §5.4) and processing fanout (-06 §5.5).

use mimi_content::{Disposition, MessageId, MimiContent, NestedPart, message_id};
use mimi_protocol::IdentifierUri;
use mimi_protocol::Protocol;
use mimi_protocol::components::{
    FRANK_AAD, FRANKING_SIGNATURE_KEY, FrankAAD, FrankingAgentData, decode_component,
};
use mimi_protocol::msgs::{
    AbuseReport, AbuseType, AbusiveMessage, FanoutBody, FanoutMessage, Frank, RatchetTreeOption,
    ServerFrankingContext, SubmitMessageRequest,
};
use mimi_protocol::uri::MimiUri;
use mimi_room::components::resolve_app_data_updates;
use mimi_room::identity::client_identity;
use openmls::framing::SafeAadItem;
use openmls::prelude::*;
use tls_codec::Serialize as _;

use crate::device::{
    Device, FrankStatus, Message, RoomRecord, RoomStatus, StoredMessage, digest_of,
    room_of_group_id,
};
use crate::error::{Error, Result};
use crate::rooms::wire;

/// Media type of plain text bodies.
pub const TEXT_PLAIN: &str = "text/plain;charset=utf-8";

/// Builders for common MIMI content (draft-ietf-mimi-content §Examples).
/// Salt and the sender/room URI extensions are filled in by
/// [`Device::send`].
pub mod content {
    use super::*;

    fn base(body: NestedPart) -> MimiContent {
        MimiContent::new([0; 16], Default::default(), body)
    }

    /// A plain text message.
    pub fn text(body: &str) -> MimiContent {
        base(NestedPart::single(
            Disposition::RENDER,
            TEXT_PLAIN,
            body.as_bytes(),
        ))
    }

    /// A reply to `to`.
    pub fn reply(to: MessageId, body: &str) -> MimiContent {
        let mut c = text(body);
        c.in_reply_to = Some(to);
        c
    }

    /// A reaction (disposition `reaction`) to `to`.
    pub fn reaction(to: MessageId, reaction: &str) -> MimiContent {
        let mut c = base(NestedPart::single(
            Disposition::REACTION,
            TEXT_PLAIN,
            reaction.as_bytes(),
        ));
        c.in_reply_to = Some(to);
        c
    }

    /// An edit: replaces `original` with new text.
    pub fn edit(original: MessageId, body: &str) -> MimiContent {
        let mut c = text(body);
        c.replaces = Some(original);
        c
    }

    /// A delete: replaces `original` with a null part.
    pub fn delete(original: MessageId) -> MimiContent {
        let mut c = base(NestedPart::null(Disposition::RENDER));
        c.replaces = Some(original);
        c
    }

    /// An attachment (draft-ietf-mimi-content §Attachments): one
    /// `ExternalPart` naming the encrypted asset, with the caption in its
    /// `description`. Images, audio and video are shown inline, anything
    /// else offered as a file.
    pub fn attachment(part: mimi_content::ExternalPart) -> MimiContent {
        let top = part.content_type.split('/').next().unwrap_or("");
        let disposition = if matches!(top, "image" | "audio" | "video") {
            Disposition::INLINE
        } else {
            Disposition::ATTACHMENT
        };
        base(NestedPart {
            disposition,
            language: String::new(),
            part: mimi_content::Part::External(part),
        })
    }

    /// The `ExternalPart`s of a message body, depth first.
    pub fn external_parts(content: &MimiContent) -> Vec<&mimi_content::ExternalPart> {
        fn walk<'a>(part: &'a NestedPart, out: &mut Vec<&'a mimi_content::ExternalPart>) {
            match &part.part {
                mimi_content::Part::External(external) => out.push(external),
                mimi_content::Part::Multi(multi) => {
                    for p in &multi.parts {
                        walk(p, out);
                    }
                }
                _ => {}
            }
        }
        let mut out = Vec::new();
        walk(&content.nested_part, &mut out);
        out
    }

    /// An unlike: retracts the own reaction `reaction` to `to` (a null
    /// part with disposition `reaction`, "Unlike").
    pub fn unlike(reaction: MessageId, to: MessageId) -> MimiContent {
        let mut c = base(NestedPart::null(Disposition::REACTION));
        c.replaces = Some(reaction);
        c.in_reply_to = Some(to);
        c
    }
}

/// A message ready for `/submitMessage` (-06 §5.4).
#[derive(Debug, Clone)]
pub struct OutgoingMessage {
    pub request: SubmitMessageRequest,
    pub message_id: MessageId,
    /// The franking tag placed in the `frank_aad` Safe AAD component.
    pub franking_tag: Option<[u8; 32]>,
}

/// What processing one fanout message did (-06 §5.5).
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Joined a room from a Welcome (-06 §3.2).
    Joined { room: String, epoch: u64 },
    /// A proposal was queued for the next commit (e.g. a leave, -06 §3.5).
    ProposalQueued {
        room: String,
        /// Device URI of the proposer; `None` for an external sender.
        proposer: Option<String>,
        proposal_type: ProposalType,
    },
    /// Somebody's commit was applied.
    CommitApplied {
        room: String,
        epoch: u64,
        /// Device URI of the committer.
        committer: Option<String>,
        /// Device URIs added (including an external joiner).
        added: Vec<String>,
        /// Device URIs removed.
        removed: Vec<String>,
        /// Whether the room state (`app_data_dictionary`) changed.
        room_state_changed: bool,
    },
    /// The hub's echo of this device's own pending commit: merged.
    OwnCommitConfirmed { room: String, epoch: u64 },
    /// This device was removed from the room (-06 §5.5: removed clients
    /// still receive the commit).
    RemovedFromRoom {
        room: String,
        committer: Option<String>,
    },
    /// An application message was decrypted and stored.
    MessageReceived(Box<Message>),
    /// An echo of something this device sent; ignored (-06 §5.5).
    OwnEcho { room: String },
    /// An application message that decrypted but whose content is invalid
    /// (bad CBOR, sender or room URI not matching, wrong franking tag).
    InvalidMessage {
        room: String,
        sender: Option<String>,
        reason: String,
    },
}

impl Device {
    /// Sends MIMI content (-06 §3.4): sets a fresh salt and the sender
    /// (user URI) and room URI extensions (keys 1 and 2), encrypts the CBOR
    /// as a PrivateMessage, and, when the room requires Safe AAD with
    /// `frank_aad`, puts `FrankAAD{HMAC_SHA256(salt, application_data)}`
    /// in the AAD (-06 §5.4.1). Stored in the history as own message.
    pub fn send(&mut self, room: &str, mut content: MimiContent) -> Result<OutgoingMessage> {
        if self.record(room)?.status != RoomStatus::Active {
            return Err(Error::NotAMember(room.to_owned()));
        }
        let policy = self.room_policy(room)?;
        // A room that requires expiry and names a default gets it.
        if content.expires.is_none()
            && let Some(policy) = &policy.expiration
            && let mimi_protocol::components::policy_components::Gated::Required(d) =
                &policy.expiring_messages
            && let Some(default) = d.default_expiration_duration
        {
            content.expires = Some(mimi_content::Expiration {
                relative: true,
                time: default,
            });
        }
        let breaches = policy.breaches(self.user.as_str(), &content, |original| {
            self.sender_of(room, original)
        });
        if !breaches.is_empty() {
            return Err(Error::PolicyForbids(breaches.join("; ")));
        }
        content.salt = self.random_salt()?;
        content.extensions.set_sender_uri(self.user.as_str());
        content.extensions.set_room_uri(room);
        content.sanity_check()?;
        let bytes = content.to_cbor()?;
        let id = message_id(self.user.as_str(), room, &bytes, &content.salt)?;
        let group = self
            .groups
            .get_mut(room)
            .ok_or_else(|| Error::UnknownRoom(room.to_owned()))?;
        if !group.is_active() {
            return Err(Error::NotAMember(room.to_owned()));
        }
        if group.pending_proposals().next().is_some() {
            return Err(Error::PendingProposals(room.to_owned()));
        }
        let franking_tag = if franking_required(group)? {
            let tag = mimi_content::franking::franking_tag(&content.salt, &bytes);
            let aad = FrankAAD { franking_tag: tag }.tls_serialize_detached()?;
            group
                .set_safe_aad(vec![SafeAadItem::new(FRANK_AAD, aad)])
                .map_err(|e| Error::mls("Safe AAD", e))?;
            Some(tag)
        } else {
            None
        };
        let epoch = group.epoch().as_u64();
        let out = group
            .create_message(&self.provider, &self.signer, &bytes)
            .map_err(|e| Error::mls("application message", e))?;
        let app_message = wire(out)?;
        let message = Message {
            id,
            room: room.to_owned(),
            sender_device: self.device.as_str().to_owned(),
            sender_user: self.user.as_str().to_owned(),
            epoch,
            timestamp: 0,
            content,
            own: true,
            franking_tag,
            frank: None,
            frank_status: FrankStatus::Unfranked,
            pending: false,
            policy_breaches: Vec::new(),
        };
        let record = self.record_mut(room)?;
        let digest = digest_of(&app_message)?;
        record.remember_sent(digest.clone());
        record.remember_unechoed(digest, id.to_hex());
        record.history.push(StoredMessage::from_message(&message)?);
        Ok(OutgoingMessage {
            request: SubmitMessageRequest {
                protocol: Protocol::Mls10,
                app_message,
                sending_uri: self.user.to_identifier_uri(),
            },
            message_id: id,
            franking_tag,
        })
    }

    /// Removes an own message from the history after the hub refused it
    /// (-06 §5.4 `notAllowed`, `epochTooOld`); returns whether it was
    /// there. After `epochTooOld`, process the missing fanout and send the
    /// content again (it gets a new salt and message ID).
    pub fn discard_message(&mut self, room: &str, id: MessageId) -> Result<bool> {
        let hex = id.to_hex();
        let record = self.record_mut(room)?;
        let before = record.history.len();
        record.history.retain(|m| !(m.is_own() && m.has_id(&hex)));
        Ok(record.history.len() != before)
    }

    /// Processes one fanout message (-06 §5.5) and everything it carries,
    /// in order: a Welcome (join), proposals (queued), a commit (applied;
    /// own removal detected), an application message (decrypted, stored).
    /// Echoes of this device's own messages are recognised and ignored,
    /// except that the echo of its pending commit merges it.
    pub fn process_fanout(&mut self, fanout: FanoutMessage) -> Result<Vec<Event>> {
        let FanoutMessage {
            timestamp,
            message,
            body,
        } = fanout;
        match body {
            FanoutBody::Welcome {
                ratchet_tree_option,
            } => Ok(vec![self.process_welcome(message, ratchet_tree_option)?]),
            FanoutBody::Proposal { more_proposals } => {
                let mut events = vec![self.process_framed(message, timestamp)?];
                for p in more_proposals {
                    events.push(self.process_framed(p, timestamp)?);
                }
                Ok(events)
            }
            FanoutBody::Commit { external_proposals } => {
                let mut events = vec![self.process_framed(message, timestamp)?];
                for p in external_proposals {
                    events.push(self.process_framed(p, timestamp)?);
                }
                Ok(events)
            }
            FanoutBody::Application { frank } => {
                let mut event = self.process_framed(message, timestamp)?;
                if let (Event::MessageReceived(m), Some(frank)) = (&mut event, frank) {
                    self.attach_frank(m, frank)?;
                }
                Ok(vec![event])
            }
        }
    }

    /// Receiver verification of the frank (-06 §5.4.1): see
    /// [`Device::verify_frank`]. The outcome is stored with the message;
    /// only a verified frank is kept.
    fn attach_frank(&mut self, message: &mut Message, frank: Frank) -> Result<()> {
        match self.verify_frank(message, &frank) {
            Ok(()) => {
                message.frank = Some(frank);
                message.frank_status = FrankStatus::Verified;
            }
            Err(reason) => message.frank_status = FrankStatus::Invalid(reason),
        }
        self.record_mut(&message.room)?.update_message(message)
    }

    /// Checks a frank of `message` (-06 §5.4.1 "Receiver verification of
    /// frank"): the message carries a franking tag (already checked against
    /// its content and salt on receipt); the frank's cipher suite is the
    /// group's; the room has a `franking_signature_key` component whose
    /// credential names the hub (the provider of the room URI's domain);
    /// and the integrity signature verifies over the server frank and the
    /// context rebuilt from what the receiver knows: the sender's user from
    /// its MLS credential (which equals the content's `sender_uri`), the
    /// room, and the hub's `accepted_timestamp` (`message.timestamp`). A
    /// frank for another sender, room, time or content fails.
    pub fn verify_frank(&self, message: &Message, frank: &Frank) -> Result<(), String> {
        if message.franking_tag.is_none() {
            return Err("frank for a message without a franking tag".into());
        }
        let group = self.group(&message.room).map_err(|e| e.to_string())?;
        if frank.franking_signature_ciphersuite != group.ciphersuite().into() {
            return Err("franking_signature_ciphersuite is not the room's".into());
        }
        let agent = group
            .extensions()
            .app_data_dictionary()
            .and_then(|e| e.dictionary().get(&FRANKING_SIGNATURE_KEY))
            .ok_or("the room has no franking agent")?;
        let agent = decode_component::<FrankingAgentData>(agent)
            .map_err(|e| format!("franking_signature_key: {e}"))?;
        let hub = MimiUri::parse(&message.room)
            .map_err(|e| e.to_string())?
            .domain()
            .to_ascii_lowercase();
        let agent_domain = BasicCredential::try_from(agent.credential.clone())
            .ok()
            .and_then(|c| String::from_utf8(c.identity().to_vec()).ok())
            .and_then(|text| MimiUri::parse(&text).ok())
            .map(|uri| uri.domain().to_ascii_lowercase());
        if agent_domain.as_deref() != Some(hub.as_str()) {
            return Err(format!(
                "the franking agent's credential does not name the hub {hub}"
            ));
        }
        let context = ServerFrankingContext {
            sender_uri: IdentifierUri::new(&message.sender_user),
            room_uri: IdentifierUri::new(&message.room),
            accepted_timestamp: message.timestamp,
        };
        frank
            .verify(
                self.provider.crypto(),
                agent.franking_signature_key.as_slice(),
                &context,
            )
            .map_err(|_| "franking_integrity_signature does not verify".to_owned())
    }

    /// Records the hub's answer to an own message (-06 §5.4): the
    /// acceptance time and, if franked, the frank, verified like a
    /// received one. Returns the resulting status.
    pub fn message_accepted(
        &mut self,
        room: &str,
        id: MessageId,
        accepted_timestamp: u64,
        frank: Option<Frank>,
    ) -> Result<FrankStatus> {
        let hex = id.to_hex();
        let Some(stored) = self
            .record(room)?
            .history
            .iter()
            .rev()
            .find(|m| m.is_own() && m.has_id(&hex))
        else {
            return Err(Error::InvalidMessage(format!(
                "no own message {hex} in {room}"
            )));
        };
        let mut message = stored.to_message(room)?;
        message.timestamp = accepted_timestamp;
        match frank {
            Some(frank) => self.attach_frank(&mut message, frank)?,
            None => self.record_mut(room)?.update_message(&message)?,
        }
        Ok(message.frank_status)
    }

    /// An abuse report (-06 §5.9) about the message `id` of `room`, for
    /// the room's hub: the message's content (the exact `application_data`
    /// its franking tag covers), its verified frank and the hub's
    /// `accepted_timestamp`; the alleged abuser is the sender. Only a
    /// message with a verified frank can be reported.
    pub fn abuse_report(
        &self,
        room: &str,
        id: MessageId,
        reason: AbuseType,
        note: &str,
    ) -> Result<AbuseReport> {
        let hex = id.to_hex();
        let message = self
            .history(room)?
            .into_iter()
            .rev()
            .find(|m| m.id == id)
            .ok_or_else(|| Error::NotReportable(format!("no message {hex} in {room}")))?;
        let Some(frank) = message.frank else {
            return Err(Error::NotReportable(format!(
                "message {hex} has no verified frank ({:?})",
                message.frank_status
            )));
        };
        Ok(AbuseReport {
            reporting_user: self.user.to_identifier_uri(),
            alleged_abuser_uri: IdentifierUri::new(&message.sender_user),
            reason_code: reason,
            note: note.as_bytes().to_vec().into(),
            messages: vec![AbusiveMessage {
                message_content: message.content.to_cbor()?.into(),
                frank,
                accepted_timestamp: message.timestamp,
            }],
            abuse_extensions: AppDataDictionary::new(),
        })
    }

    fn process_welcome(
        &mut self,
        message: MlsMessageIn,
        ratchet_tree_option: RatchetTreeOption,
    ) -> Result<Event> {
        let MlsMessageBodyIn::Welcome(welcome) = message.extract() else {
            return Err(Error::InvalidMessage("expected a Welcome".into()));
        };
        let tree = match ratchet_tree_option {
            RatchetTreeOption::Full(tree) => Some(tree),
            // Without the tree the Welcome can only work if the GroupInfo
            // embeds it; openmls reports the failure.
            _ => None,
        };
        let staged =
            StagedWelcome::new_from_welcome(&self.provider, &Self::join_config(), welcome, tree)
                .map_err(|e| Error::mls("Welcome", e))?;
        let group_id = staged.group_context().group_id().clone();
        let room = room_of_group_id(&group_id)?.as_str().to_owned();
        if self
            .rooms
            .get(&room)
            .is_some_and(|r| r.status != RoomStatus::Removed)
        {
            return Err(Error::RoomExists(room));
        }
        let group = staged
            .into_group(&self.provider)
            .map_err(|e| Error::mls("Welcome", e))?;
        let epoch = group.epoch().as_u64();
        // A re-join after removal starts a fresh history.
        if let Some(mut old) = self.groups.remove(&room) {
            old.delete(self.provider.storage())
                .map_err(|e| Error::mls("deleting the old group", e))?;
        }
        self.rooms.insert(room.clone(), RoomRecord::new(&group_id));
        self.groups.insert(room.clone(), group);
        Ok(Event::Joined { room, epoch })
    }

    /// A PublicMessage or PrivateMessage of one of the device's rooms.
    fn process_framed(&mut self, message: MlsMessageIn, timestamp: u64) -> Result<Event> {
        let protocol = message
            .clone()
            .try_into_protocol_message()
            .map_err(|_| Error::InvalidMessage("not a framed MLS message".into()))?;
        let room = self.room_of_group(protocol.group_id())?;
        let digest = digest_of(&message)?;
        if self.record(&room)?.was_sent(&digest) {
            if protocol.content_type() == ContentType::Application {
                self.record_mut(&room)?.echoed(&digest);
            }
            return self.process_echo(&room, protocol.content_type());
        }
        let status = self.record(&room)?.status;
        let provider = &self.provider;
        let group = self
            .groups
            .get_mut(&room)
            .ok_or_else(|| Error::UnknownRoom(room.clone()))?;
        if status == RoomStatus::Removed || !group.is_active() {
            return Err(Error::NotAMember(room));
        }
        let processed = group
            .process_message(provider, protocol)
            .map_err(|e| Error::mls("processing a message", e))?;
        let sender_device = client_identity(processed.credential())
            .ok()
            .map(|id| id.device.as_str().to_owned());
        let sender = processed.sender().clone();
        let epoch = processed.epoch().as_u64();
        let franking = processed.safe_aad_item(FRANK_AAD).map(<[u8]>::to_vec);
        let credential = processed.credential().clone();
        match processed.into_content() {
            ProcessedMessageContent::ApplicationMessage(app) => self.receive_application(
                &room,
                &credential,
                epoch,
                timestamp,
                app.into_bytes(),
                franking,
            ),
            // An external join proposal the hub accepted (room-policy
            // §Adding; docs/divergences.md C29): the next commit adds its
            // user ([`Device::commit`] lists it).
            ProcessedMessageContent::ProposalMessage(queued)
            | ProcessedMessageContent::ExternalJoinProposalMessage(queued) => {
                let proposal_type = queued.proposal().proposal_type();
                group
                    .store_pending_proposal(provider.storage(), *queued)
                    .map_err(|e| Error::mls("storing a proposal", e))?;
                Ok(Event::ProposalQueued {
                    room,
                    proposer: match sender {
                        Sender::External(_) => None,
                        _ => sender_device,
                    },
                    proposal_type,
                })
            }
            ProcessedMessageContent::OwnPendingCommit => {
                group
                    .merge_pending_commit(provider)
                    .map_err(|e| Error::mls("merging the pending commit", e))?;
                Ok(Event::OwnCommitConfirmed {
                    room,
                    epoch: group.epoch().as_u64(),
                })
            }
            ProcessedMessageContent::OwnPrivateMessage => Ok(Event::OwnEcho { room }),
            ProcessedMessageContent::StagedCommitMessage(staged) => {
                self.apply_commit(&room, *staged, sender_device, &sender)
            }
            ProcessedMessageContent::UnresolvedAppDataCommit(unresolved) => {
                let old = group
                    .extensions()
                    .app_data_dictionary()
                    .map(|e| e.dictionary().clone());
                let updates =
                    resolve_app_data_updates(old.as_ref(), unresolved.app_data_update_proposals())
                        .map_err(|e| Error::InvalidMessage(format!("commit: {e}")))?;
                let staged = group
                    .stage_app_data_commit(provider, *unresolved, updates)
                    .map_err(|e| Error::mls("staging a commit", e))?;
                self.apply_commit(&room, staged, sender_device, &sender)
            }
        }
    }

    fn process_echo(&mut self, room: &str, content_type: ContentType) -> Result<Event> {
        if content_type == ContentType::Commit
            && self.record(room)?.status == RoomStatus::Active
            && self.has_pending_commit(room)?
        {
            // The hub fans out only accepted commits: ours won the epoch.
            let epoch = self.confirm_commit(room)?;
            return Ok(Event::OwnCommitConfirmed {
                room: room.to_owned(),
                epoch,
            });
        }
        if self.record(room)?.status == RoomStatus::JoiningByExternalCommit {
            let epoch = self.confirm_commit(room)?;
            return Ok(Event::OwnCommitConfirmed {
                room: room.to_owned(),
                epoch,
            });
        }
        Ok(Event::OwnEcho {
            room: room.to_owned(),
        })
    }

    fn apply_commit(
        &mut self,
        room: &str,
        staged: StagedCommit,
        committer: Option<String>,
        sender: &Sender,
    ) -> Result<Event> {
        let group = self
            .groups
            .get_mut(room)
            .ok_or_else(|| Error::UnknownRoom(room.to_owned()))?;
        let device_at = |leaf: LeafNodeIndex| {
            group
                .member_at(leaf)
                .and_then(|m| client_identity(&m.credential).ok())
                .map(|id| id.device.as_str().to_owned())
        };
        let mut removed: Vec<String> = staged
            .remove_proposals()
            .filter_map(|r| device_at(r.remove_proposal().removed()))
            .collect();
        removed.extend(staged.queued_proposals().filter_map(|p| {
            match (p.proposal(), p.sender()) {
                (Proposal::SelfRemove, Sender::Member(leaf)) => device_at(*leaf),
                _ => None,
            }
        }));
        let mut added: Vec<String> = staged
            .add_proposals()
            .filter_map(|a| {
                client_identity(a.add_proposal().key_package().leaf_node().credential()).ok()
            })
            .map(|id| id.device.as_str().to_owned())
            .collect();
        if *sender == Sender::NewMemberCommit
            && let Some(joiner) = &committer
        {
            added.push(joiner.clone());
        }
        let room_state_changed = staged.group_context().extensions().app_data_dictionary()
            != group.extensions().app_data_dictionary();
        let self_removed = staged.self_removed();
        group
            .merge_staged_commit(&self.provider, staged)
            .map_err(|e| Error::mls("merging a commit", e))?;
        let epoch = group.epoch().as_u64();
        if self_removed || !group.is_active() {
            self.record_mut(room)?.status = RoomStatus::Removed;
            return Ok(Event::RemovedFromRoom {
                room: room.to_owned(),
                committer,
            });
        }
        Ok(Event::CommitApplied {
            room: room.to_owned(),
            epoch,
            committer,
            added,
            removed,
            room_state_changed,
        })
    }

    fn receive_application(
        &mut self,
        room: &str,
        credential: &Credential,
        epoch: u64,
        timestamp: u64,
        bytes: Vec<u8>,
        franking: Option<Vec<u8>>,
    ) -> Result<Event> {
        let identity =
            client_identity(credential).map_err(|e| Error::InvalidMessage(e.to_string()));
        let invalid = |sender: Option<String>, reason: String| {
            Ok(Event::InvalidMessage {
                room: room.to_owned(),
                sender,
                reason,
            })
        };
        let identity = match identity {
            Ok(id) => id,
            Err(e) => return invalid(None, e.to_string()),
        };
        let sender = Some(identity.device.as_str().to_owned());
        let content = match MimiContent::from_cbor(&bytes).and_then(|c| {
            c.sanity_check()?;
            Ok(c)
        }) {
            Ok(c) => c,
            Err(e) => return invalid(sender, format!("content: {e}")),
        };
        // An abuse report carries the content re-encoded from the history;
        // it must be the exact application_data the franking tag covers.
        if content.to_cbor().ok().as_deref() != Some(bytes.as_slice()) {
            return invalid(sender, "content is not deterministically encoded".into());
        }
        // -06 §5.4.1 "Receiver verification": the asserted URIs must match
        // the credential and the room.
        if content.extensions.sender_uri() != Some(identity.user.as_str()) {
            return invalid(sender, "senderUri does not match the credential".into());
        }
        if content.extensions.room_uri() != Some(room) {
            return invalid(sender, "roomUri does not match the room".into());
        }
        let franking_tag = match franking {
            Some(aad) => match decode_component::<FrankAAD>(&aad) {
                Ok(f) => {
                    let expected = mimi_content::franking::franking_tag(&content.salt, &bytes);
                    if f.franking_tag != expected {
                        return invalid(sender, "franking tag does not match the content".into());
                    }
                    Some(f.franking_tag)
                }
                Err(e) => return invalid(sender, format!("frank_aad: {e}")),
            },
            None => None,
        };
        let id = message_id(identity.user.as_str(), room, &bytes, &content.salt)?;
        // Rules only clients enforce (room-policy §Message Capabilities):
        // the message is kept and shown, flagged with what it breaks.
        let policy_breaches =
            self.room_policy(room)?
                .breaches(identity.user.as_str(), &content, |original| {
                    self.sender_of(room, original)
                });
        let message = Message {
            id,
            room: room.to_owned(),
            sender_device: identity.device.as_str().to_owned(),
            sender_user: identity.user.as_str().to_owned(),
            epoch,
            timestamp,
            content,
            own: false,
            franking_tag,
            frank: None,
            frank_status: FrankStatus::Unfranked,
            pending: false,
            policy_breaches,
        };
        self.record_mut(room)?
            .push_received(StoredMessage::from_message(&message)?);
        Ok(Event::MessageReceived(Box::new(message)))
    }
}

/// Whether the group requires Safe AAD with `frank_aad` (-06 §5.4.1).
fn franking_required(group: &MlsGroup) -> Result<bool> {
    let context = group.public_group().group_context();
    match context.safe_aad_required_components() {
        Ok(Some(ids)) => Ok(ids.contains(&FRANK_AAD)),
        Ok(None) => Ok(false),
        Err(e) => Err(Error::RoomState(format!("safe_aad component: {e}"))),
    }
}
