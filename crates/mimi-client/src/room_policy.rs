//! The room policy only clients can honour (draft-ietf-mimi-room-policy):
//! the message capabilities of a sender's role ("The other capabilities in
//! this section can only be enforced by other clients", §Message
//! Capabilities; §Asset Capabilities), and the message expiration, link
//! preview and asset policy components. Pure: a device refuses to send
//! content that breaks it ([`crate::Device::send`]) and flags received
//! content that does ([`crate::Message::policy_breaches`]).

use mimi_content::{Disposition, MessageId, MimiContent, NestedPart, Part};
use mimi_protocol::components::policy_components::{AssetUploadLocation, Gated};
use mimi_protocol::components::room_policy::CapabilityType;
use mimi_protocol::components::room_policy::Optionality;
use mimi_protocol::components::room_policy::capabilities as cap;
use mimi_protocol::components::{
    ASSET_POLICY, AssetPolicy, BOT_POLICY, BotPolicy, CHAT_HISTORY_POLICY, HistoryPolicy,
    LINK_PREVIEW_POLICY, LOGGING_POLICY, LinkPreviewPolicy, LoggingPolicy,
    MESSAGE_EXPIRATION_POLICY, MessageExpiration, STATUS_NOTIFICATION_POLICY,
    StatusNotificationPolicy, decode_component,
};
use mimi_protocol::uri::MimiUri;
use mimi_room::policy::RoomPolicyState;
use mimi_room::policy::updates::capability_name;
use openmls::prelude::AppDataDictionary;

use crate::error::{Error, Result};

/// A room's policy components as a client reads them.
#[derive(Debug, Clone, Default)]
pub struct ClientPolicy {
    pub state: RoomPolicyState,
    pub expiration: Option<MessageExpiration>,
    pub link_preview: Option<LinkPreviewPolicy>,
    pub assets: Option<AssetPolicy>,
    pub status_notifications: Option<StatusNotificationPolicy>,
    pub logging: Option<LoggingPolicy>,
    pub history: Option<HistoryPolicy>,
    pub bots: Option<BotPolicy>,
}

impl ClientPolicy {
    /// Reads every policy component of an `app_data_dictionary`.
    pub fn from_dictionary(dict: Option<&AppDataDictionary>) -> Result<Self> {
        fn read<T: tls_codec::Deserialize>(
            dict: Option<&AppDataDictionary>,
            id: u16,
        ) -> Result<Option<T>> {
            dict.and_then(|d| d.get(&id))
                .map(|bytes| decode_component::<T>(bytes))
                .transpose()
                .map_err(|e| Error::RoomState(format!("component {id:#06x}: {e}")))
        }
        Ok(Self {
            state: RoomPolicyState::from_dictionary(dict)
                .map_err(|e| Error::RoomState(e.to_string()))?,
            expiration: read(dict, MESSAGE_EXPIRATION_POLICY)?,
            link_preview: read(dict, LINK_PREVIEW_POLICY)?,
            assets: read(dict, ASSET_POLICY)?,
            status_notifications: read(dict, STATUS_NOTIFICATION_POLICY)?,
            logging: read(dict, LOGGING_POLICY)?,
            history: read(dict, CHAT_HISTORY_POLICY)?,
            bots: read(dict, BOT_POLICY)?,
        })
    }

    /// Where `content` sent by `sender` (a user URI) breaks this policy,
    /// each as a sentence naming the rule; empty when it does not.
    /// `original_sender` finds the sender of a message this one replaces.
    pub fn breaches(
        &self,
        sender: &str,
        content: &MimiContent,
        original_sender: impl Fn(&MessageId) -> Option<String>,
    ) -> Vec<String> {
        let mut out = Vec::new();
        let mut need = |capability: CapabilityType, what: &str| {
            if !self.state.has(sender, capability) {
                out.push(format!(
                    "{what} needs {} (room-policy §Message Capabilities)",
                    capability_name(capability)
                ));
            }
        };
        // canSendMessage itself is the hub's to enforce (-06 §5.4).
        let top = &content.nested_part;
        let null = matches!(top.part, Part::Null);
        let reaction = top.disposition == Disposition::REACTION;
        let own_original = content
            .replaces
            .as_ref()
            .map(|id| original_sender(id).is_none_or(|s| s == sender));
        match (content.replaces.is_some(), reaction, null) {
            (true, true, true) if own_original == Some(true) => {
                need(cap::CAN_DELETE_OWN_REACTION, "taking back a reaction")
            }
            (true, true, true) => need(
                cap::CAN_DELETE_OTHER_REACTION,
                "deleting another user's reaction",
            ),
            (true, true, false) => need(cap::CAN_EDIT_REACTION, "changing a reaction"),
            (true, false, true) if own_original == Some(true) => {
                need(cap::CAN_DELETE_OWN_MESSAGE, "deleting a message")
            }
            (true, false, true) => need(
                cap::CAN_DELETE_OTHER_MESSAGE,
                "deleting another user's message",
            ),
            (true, false, false) => need(cap::CAN_EDIT_OWN_MESSAGE, "editing a message"),
            (false, true, _) => need(cap::CAN_REACT_TO_MESSAGE, "reacting"),
            (false, false, _) if content.in_reply_to.is_some() => {
                need(cap::CAN_REPLY_TO_MESSAGE, "replying")
            }
            _ => {}
        }
        if !content.topic_id.is_empty() {
            if content.in_reply_to.is_some() {
                need(cap::CAN_REPLY_IN_TOPIC, "replying in a topic");
            } else {
                need(cap::CAN_START_TOPIC, "setting a topic");
            }
        }
        let mut parts = Vec::new();
        leaves(top, &mut parts);
        for part in &parts {
            match &part.part {
                Part::Single(single) => {
                    if has_link(&single.content_type, &single.content) {
                        need(cap::CAN_SEND_LINK, "sending a link");
                    }
                    if part.disposition == Disposition::PREVIEW {
                        need(cap::CAN_SEND_LINK_PREVIEW, "sending a link preview");
                    }
                }
                Part::External(external) => {
                    let kind = external.content_type.split('/').next().unwrap_or("");
                    match (part.disposition, kind) {
                        (Disposition::ATTACHMENT, _) => {
                            need(cap::CAN_UPLOAD_ATTACHMENT, "attaching a file")
                        }
                        (_, "image") => need(cap::CAN_UPLOAD_IMAGE, "sending an image"),
                        (_, "audio") => need(cap::CAN_UPLOAD_AUDIO, "sending audio"),
                        (_, "video") => need(cap::CAN_UPLOAD_VIDEO, "sending video"),
                        _ => need(cap::CAN_UPLOAD_ATTACHMENT, "sending a file"),
                    }
                }
                Part::Null | Part::Multi(_) => {}
            }
        }
        self.expiration_breaches(content, &mut out);
        self.link_preview_breaches(&parts, &mut out);
        self.asset_breaches(sender, &parts, &mut out);
        out
    }

    fn expiration_breaches(&self, content: &MimiContent, out: &mut Vec<String>) {
        let Some(policy) = &self.expiration else {
            return;
        };
        const RULE: &str = "(room-policy §Message expiration policy)";
        match (&policy.expiring_messages, &content.expires) {
            (Gated::Forbidden, Some(_)) => {
                out.push(format!("expiring messages are forbidden {RULE}"));
            }
            (Gated::Required(_), None) => {
                out.push(format!("messages must expire {RULE}"));
            }
            (Gated::Required(d) | Gated::Optional(d), Some(expires)) if expires.relative => {
                let too_long =
                    d.max_expiration_duration != 0 && expires.time > d.max_expiration_duration;
                if expires.time < d.min_expiration_duration || too_long {
                    out.push(format!(
                        "an expiry of {} s is outside {}–{} s {RULE}",
                        expires.time, d.min_expiration_duration, d.max_expiration_duration
                    ));
                }
            }
            _ => {}
        }
    }

    fn link_preview_breaches(&self, parts: &[&NestedPart], out: &mut Vec<String>) {
        let Some(policy) = &self.link_preview else {
            return;
        };
        let previews = parts.iter().any(|p| p.disposition == Disposition::PREVIEW);
        if previews && policy.send_link_previews == Optionality::Forbidden {
            out.push("link previews are forbidden (room-policy §Link Preview policy)".into());
        }
    }

    fn asset_breaches(&self, sender: &str, parts: &[&NestedPart], out: &mut Vec<String>) {
        let Some(policy) = &self.assets else {
            return;
        };
        let location = match policy.asset_upload_location {
            AssetUploadLocation::Unspecified => mimi_assets::UploadLocation::Unspecified,
            AssetUploadLocation::LocalProvider => mimi_assets::UploadLocation::LocalProvider,
            AssetUploadLocation::Hub => mimi_assets::UploadLocation::Hub,
        };
        let domains: Vec<mimi_assets::ProviderUploadDomains> = policy
            .upload_domains
            .iter()
            .map(|p| mimi_assets::ProviderUploadDomains {
                provider: String::from_utf8_lossy(p.provider.domain.as_slice()).into_owned(),
                destinations: p
                    .asset_upload_destinations
                    .iter()
                    .map(|d| String::from_utf8_lossy(d.domain.as_slice()).into_owned())
                    .collect(),
            })
            .collect();
        let sender_domain = MimiUri::parse(sender)
            .map(|uri| uri.domain().to_ascii_lowercase())
            .unwrap_or_default();
        for part in parts {
            let Part::External(external) = &part.part else {
                continue;
            };
            if let Err(refusal) =
                mimi_assets::check_upload_url(location, &domains, &sender_domain, &external.url)
            {
                out.push(refusal.to_string());
            }
            let media = external
                .content_type
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            let listed = |list: &[mimi_protocol::components::policy_components::MediaType]| {
                list.iter().any(|m| {
                    String::from_utf8_lossy(m.media_type.as_slice()).eq_ignore_ascii_case(&media)
                })
            };
            if listed(&policy.forbidden_media_types)
                || policy
                    .permitted_media_types
                    .as_ref()
                    .is_some_and(|p| !listed(p))
            {
                out.push(format!(
                    "media type {media} is not allowed in the room (room-policy §Asset policies)"
                ));
            }
            // The room's size limits, by the media type's top level
            // (0: no limit). `size` is what the sender declares: the
            // downloaded bytes are checked against the hash, not this.
            let limit = match media.split('/').next().unwrap_or("") {
                "image" => policy.max_image,
                "audio" => policy.max_audio,
                "video" => policy.max_video,
                _ => policy.max_attachment,
            };
            if limit > 0 && external.size > limit {
                out.push(format!(
                    "{} bytes exceed the room's limit of {limit} for {media} (room-policy §Asset policies)",
                    external.size
                ));
            }
        }
    }

    /// The policy components clients honour, in words, one line each
    /// (roles are shown by the capability table).
    pub fn describe(&self) -> Vec<String> {
        let gate = |o: Optionality| match o {
            Optionality::Optional => "optional",
            Optionality::Required => "required",
            Optionality::Forbidden => "forbidden",
        };
        let mut lines = Vec::new();
        let base = &self.state.base;
        lines.push(format!(
            "membership: {}{}, {}, at most {} clients and {} users",
            if base.fixed_membership {
                "fixed (a DM)"
            } else {
                "open to changes by role"
            },
            if base.parent_dependant {
                ", follows its parent room"
            } else {
                ""
            },
            if base.multi_device {
                "several devices per user"
            } else {
                "one device per user"
            },
            base.max_clients
                .map_or("any number of".into(), |n| n.to_string()),
            base.max_users
                .map_or("any number of".into(), |n| n.to_string()),
        ));
        lines.push(format!(
            "preauthorized entries: {}",
            self.state.preauth.preauthorized_entries.len()
        ));
        if let Some(e) = &self.expiration {
            lines.push(match e.expiring_messages.settings() {
                Some(d) => format!(
                    "expiring messages: {} ({}–{} s{})",
                    gate(e.expiring_messages.optionality()),
                    d.min_expiration_duration,
                    d.max_expiration_duration,
                    d.default_expiration_duration
                        .map_or(String::new(), |d| format!(", default {d} s"))
                ),
                None => "expiring messages: forbidden".into(),
            });
        }
        if let Some(p) = &self.link_preview {
            lines.push(format!(
                "link previews: sending {}, automatic {}",
                gate(p.send_link_previews),
                gate(p.automatic_link_previews)
            ));
        }
        if let Some(s) = &self.status_notifications {
            lines.push(format!(
                "delivery notifications {}, read receipts {} (this client sends neither)",
                gate(s.delivery_notifications),
                gate(s.read_receipts)
            ));
        }
        if let Some(l) = &self.logging {
            lines.push(match l.logging.settings() {
                Some(settings) => format!(
                    "LOGGING {}: {} logging client(s); policy {}",
                    gate(l.logging.optionality()),
                    settings.logging_clients.len(),
                    settings.human_readable_policy.as_str().unwrap_or("(none)")
                ),
                None => "logging: forbidden".into(),
            });
        }
        if let Some(h) = &self.history {
            lines.push(match h.history_sharing.settings() {
                Some(s) => format!(
                    "chat history sharing {}: by roles {:?}{}, up to {} s back",
                    gate(h.history_sharing.optionality()),
                    s.roles_that_can_share,
                    if s.automatically_share {
                        ", automatically"
                    } else {
                        ""
                    },
                    s.max_time_period
                ),
                None => "chat history sharing: forbidden".into(),
            });
        }
        if let Some(b) = &self.bots {
            for bot in &b.allowed_bots {
                lines.push(format!(
                    "bot {} (role {}): {}",
                    String::from_utf8_lossy(bot.name.as_slice()),
                    bot.bot_role_index,
                    String::from_utf8_lossy(bot.description.as_slice())
                ));
            }
        }
        if let Some(a) = &self.assets {
            lines.push(format!(
                "assets: {} upload domain list(s); images up to {} B, attachments up to {} B",
                a.upload_domains.len(),
                a.max_image,
                a.max_attachment
            ));
        }
        lines
    }
}

/// The leaf parts of a body, depth first.
fn leaves<'a>(part: &'a NestedPart, out: &mut Vec<&'a NestedPart>) {
    match &part.part {
        Part::Multi(multi) => {
            for p in &multi.parts {
                leaves(p, out);
            }
        }
        _ => out.push(part),
    }
}

/// Whether a text part holds a hyperlink (room-policy `canSendLink`).
fn has_link(content_type: &str, content: &[u8]) -> bool {
    content_type.starts_with("text/")
        && std::str::from_utf8(content)
            .is_ok_and(|t| t.contains("https://") || t.contains("http://"))
}

#[cfg(test)]
mod tests {
    use mimi_protocol::components::policy_components::{
        DomainName, ExpirationDurations, ProviderAssetUploadDomains,
    };
    use mimi_protocol::components::room_policy::RoleData;
    use mimi_protocol::components::{ParticipantListData, UserRolePair};
    use mimi_room::policy::{default_role, default_roles};

    use super::*;
    use crate::content;

    const ALICE: &str = "mimi://a.example/u/alice";
    const BOB: &str = "mimi://b.example/u/bob";

    fn policy(roles: RoleData) -> ClientPolicy {
        ClientPolicy {
            state: RoomPolicyState {
                participants: ParticipantListData::new(vec![
                    UserRolePair::new(ALICE.as_bytes(), default_role::ADMIN),
                    UserRolePair::new(BOB.as_bytes(), default_role::MEMBER),
                ]),
                roles,
                ..RoomPolicyState::default()
            },
            ..ClientPolicy::default()
        }
    }

    fn without(capability: u16) -> RoleData {
        let mut roles = default_roles();
        for r in &mut roles.roles {
            r.role_capabilities.retain(|c| *c != capability);
        }
        roles
    }

    fn id(n: u8) -> MessageId {
        MessageId([n; 32])
    }

    #[test]
    fn each_kind_of_message_needs_its_capability() {
        let open = policy(default_roles());
        let nobody = |_: &MessageId| None;
        assert!(open.breaches(BOB, &content::text("hi"), nobody).is_empty());
        assert!(
            open.breaches(BOB, &content::reply(id(1), "yes"), nobody)
                .is_empty()
        );
        let no_replies = policy(without(cap::CAN_REPLY_TO_MESSAGE));
        assert_eq!(
            no_replies.breaches(BOB, &content::reply(id(1), "yes"), nobody),
            ["replying needs canReplyToMessage (room-policy §Message Capabilities)"]
        );
        let no_reactions = policy(without(cap::CAN_REACT_TO_MESSAGE));
        assert_eq!(
            no_reactions
                .breaches(BOB, &content::reaction(id(1), "👍"), nobody)
                .len(),
            1
        );
        // Deleting another user's message needs canDeleteOtherMessage,
        // which members do not have; their own they may delete.
        let alices = |_: &MessageId| Some(ALICE.to_owned());
        let bobs = |_: &MessageId| Some(BOB.to_owned());
        assert!(open.breaches(BOB, &content::delete(id(2)), bobs).is_empty());
        assert_eq!(
            open.breaches(BOB, &content::delete(id(2)), alices),
            [
                "deleting another user's message needs canDeleteOtherMessage (room-policy §Message Capabilities)"
            ]
        );
        assert!(
            open.breaches(ALICE, &content::delete(id(3)), bobs)
                .is_empty()
        );
        // Links need canSendLink.
        let no_links = policy(without(cap::CAN_SEND_LINK));
        assert_eq!(
            no_links
                .breaches(BOB, &content::text("see https://example.com"), nobody)
                .len(),
            1
        );
        assert!(
            no_links
                .breaches(BOB, &content::text("no link"), nobody)
                .is_empty()
        );
    }

    #[test]
    fn expiry_follows_the_message_expiration_policy() {
        let mut p = policy(default_roles());
        let expiring = |seconds| {
            let mut c = content::text("soon gone");
            c.expires = Some(mimi_content::Expiration {
                relative: true,
                time: seconds,
            });
            c
        };
        let nobody = |_: &MessageId| None;
        p.expiration = Some(MessageExpiration {
            expiring_messages: Gated::Required(ExpirationDurations {
                min_expiration_duration: 60,
                max_expiration_duration: 3600,
                default_expiration_duration: Some(600),
            }),
        });
        assert_eq!(p.breaches(BOB, &content::text("forever"), nobody).len(), 1);
        assert!(p.breaches(BOB, &expiring(600), nobody).is_empty());
        assert_eq!(p.breaches(BOB, &expiring(10), nobody).len(), 1);
        assert_eq!(p.breaches(BOB, &expiring(7200), nobody).len(), 1);
        p.expiration = Some(MessageExpiration {
            expiring_messages: Gated::Forbidden,
        });
        assert_eq!(p.breaches(BOB, &expiring(600), nobody).len(), 1);
        assert!(
            p.breaches(BOB, &content::text("forever"), nobody)
                .is_empty()
        );
    }

    #[test]
    fn external_parts_must_live_on_an_asset_upload_domain() {
        use mimi_protocol::components::policy_components::{
            AssetUploadLocation, DownloadPrivacy, DownloadPrivacyType,
        };
        let mut p = policy(default_roles());
        p.assets = Some(AssetPolicy {
            asset_upload_location: AssetUploadLocation::LocalProvider,
            upload_domains: vec![ProviderAssetUploadDomains {
                provider: DomainName::new("b.example"),
                asset_upload_destinations: vec![DomainName::new("files.b.example")],
            }],
            download_privacy: DownloadPrivacy {
                allowed_download_types: vec![DownloadPrivacyType::Direct],
                forbidden_download_types: Vec::new(),
                default_download_type: DownloadPrivacyType::Direct,
            },
            max_image: 0,
            max_audio: 0,
            max_video: 0,
            max_attachment: 0,
            forbidden_media_types: Vec::new(),
            permitted_media_types: None,
        });
        let file = |url: &str| {
            let mut c = content::text("");
            c.nested_part = NestedPart {
                disposition: Disposition::ATTACHMENT,
                language: String::new(),
                part: Part::External(mimi_content::ExternalPart {
                    content_type: "application/pdf".into(),
                    url: url.into(),
                    expires: 0,
                    size: 10,
                    enc_alg: 0,
                    key: Vec::new(),
                    nonce: Vec::new(),
                    aad: Vec::new(),
                    hash_alg: 0,
                    content_hash: Vec::new(),
                    description: String::new(),
                    filename: String::new(),
                }),
            };
            c
        };
        let nobody = |_: &MessageId| None;
        assert!(
            p.breaches(BOB, &file("https://files.b.example/x.pdf"), nobody)
                .is_empty()
        );
        assert!(
            p.breaches(BOB, &file("https://FILES.b.example:8443/x.pdf"), nobody)
                .is_empty()
        );
        assert_eq!(
            p.breaches(BOB, &file("https://evil.example/x.pdf"), nobody)
                .len(),
            1
        );
        // Another provider's upload domain is not the sender's (localProvider).
        assert_eq!(
            p.breaches(BOB, &file("https://files.a.example/x.pdf"), nobody)
                .len(),
            1
        );
        // Over the room's attachment size limit.
        p.assets.as_mut().unwrap().max_attachment = 9;
        assert!(
            p.breaches(BOB, &file("https://files.b.example/x.pdf"), nobody)[0]
                .contains("exceed the room's limit of 9")
        );
    }
}
