//! The conversation view: what a room's history means once replies,
//! reactions, edits, deletes, unlikes and expiry are applied
//! (draft-ietf-mimi-content "Message Behavior Fields" and the Reply,
//! Reaction, Edit, Delete, Unlike and Expiring examples).
//!
//! Pure: computed from the raw history ([`Device::history`], the hub's
//! order), which it never changes, and a caller-given `now`. Edits and
//! deletes follow "Rendering and authorization of edits and deletes": only
//! the original sender may replace a message, and an edit replaces only its
//! body. Whatever cannot be applied is listed in [`Conversation::ignored`].

use std::collections::HashMap;
use std::fmt;

use mimi_content::{Disposition, MessageId, NestedPart, Part, PartSemantics};

use crate::device::{Device, FrankStatus, Message};
use crate::error::Result;

/// A room's history with content semantics applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Conversation {
    /// Messages (not reactions, edits or deletes), in history order.
    pub messages: Vec<ConversationMessage>,
    /// Replacements and reactions that were not applied, in history order.
    pub ignored: Vec<Ignored>,
}

/// One message as it currently stands.
#[derive(Debug, Clone, PartialEq)]
pub struct ConversationMessage {
    /// The message ID of the first instance (what `replaces` refers to).
    pub id: MessageId,
    pub sender_user: String,
    pub sender_device: String,
    /// The hub's accepted timestamp of the first instance (ms).
    pub timestamp: u64,
    pub own: bool,
    /// Receiver verification of the first instance's frank.
    pub frank_status: FrankStatus,
    /// An own message the hub has not echoed yet: its place in the room
    /// may still change.
    pub pending: bool,
    pub body: Body,
    /// The message this one replies to (`inReplyTo`).
    pub in_reply_to: Option<Quote>,
    /// Reactions, in the order each reaction first appeared.
    pub reactions: Vec<ReactionCount>,
    /// When the message expires (seconds since the UNIX epoch), if ever.
    pub expires_at: Option<u64>,
    /// Where the first instance breaks the room's policy
    /// ([`crate::Message::policy_breaches`]).
    pub policy_breaches: Vec<String>,
}

/// What is shown of a message.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// The current content; `edited` names the latest applied edit.
    Shown {
        content: Box<NestedPart>,
        edited: Option<MessageId>,
    },
    /// Retracted by its sender (the placeholder of "Delete").
    Deleted { by: MessageId },
    /// Past its `expires` time: "locally deleted and disregarded".
    Expired,
}

/// The target of an `inReplyTo`.
#[derive(Debug, Clone, PartialEq)]
pub struct Quote {
    /// The message ID as referenced (a specific version, "Reply").
    pub id: MessageId,
    /// `None`: the message is not in this device's history ("message not
    /// available", e.g. sent before the device joined).
    pub target: Option<QuotedMessage>,
}

/// What a reply quotes: a message with its current body (a deleted or
/// expired one hides the quoted portion, "Delete").
#[derive(Debug, Clone, PartialEq)]
pub struct QuotedMessage {
    /// The quoted message's first instance.
    pub original: MessageId,
    pub sender_user: String,
    pub body: Body,
    /// The reply refers to an older version than the current one
    /// ("Rendering and authorization of edits and deletes").
    pub newer_version: bool,
}

/// One reaction to a message and the users who reacted with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReactionCount {
    /// The reaction text, or `[content type]` for non-text reactions.
    pub reaction: String,
    /// User URIs, each once, in the order they reacted.
    pub users: Vec<String>,
}

impl ReactionCount {
    pub fn count(&self) -> usize {
        self.users.len()
    }
}

/// A message of the history the view did not apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ignored {
    pub id: MessageId,
    pub sender_user: String,
    pub reason: IgnoredReason,
}

/// Why a message was not applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IgnoredReason {
    /// An edit or delete by someone other than the original sender
    /// ("Receiving clients MUST NOT allow parties other than the original
    /// sender of a message to edit or delete that message").
    NotOriginalSender {
        target: MessageId,
        original_sender: String,
    },
    /// An edit, delete or reaction of a message already deleted.
    TargetDeleted(MessageId),
    /// `replaces` or a reaction's `inReplyTo` names no earlier message of
    /// the history.
    UnknownTarget(MessageId),
    /// `replaces` names a later version, not the first instance ("Edit").
    NotFirstInstance(MessageId),
    /// A message ID seen before ("General handling": duplicates are
    /// discarded).
    DuplicateId,
}

impl fmt::Display for IgnoredReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotOriginalSender {
                target,
                original_sender,
            } => write!(
                f,
                "replaces {} of {original_sender}: only the original sender may edit or delete",
                target.to_hex()
            ),
            Self::TargetDeleted(id) => write!(f, "message {} was deleted", id.to_hex()),
            Self::UnknownTarget(id) => write!(f, "message {} is not available", id.to_hex()),
            Self::NotFirstInstance(id) => write!(
                f,
                "replaces {}, which is not the first instance of a message",
                id.to_hex()
            ),
            Self::DuplicateId => f.write_str("duplicate message ID"),
        }
    }
}

/// The message a reaction reacts to: a reaction has disposition
/// `reaction` on its body and an `inReplyTo` ("Reaction").
fn reaction_to(m: &Message) -> Option<MessageId> {
    (m.content.nested_part.disposition == Disposition::REACTION)
        .then_some(m.content.in_reply_to)
        .flatten()
}

/// What a message ID of the history stands for.
#[derive(Clone, Copy)]
enum Slot {
    /// First instance of `messages[i]`.
    Message(usize),
    /// First instance of `reactions[i]`.
    Reaction(usize),
    /// An applied edit of `messages[i]`.
    MessageVersion(usize),
    /// An applied edit of `reactions[i]`.
    ReactionVersion,
    /// An applied delete or unlike.
    Retraction,
}

struct Draft {
    message: ConversationMessage,
    /// `inReplyTo`, and its target as a `messages` index when known.
    reply: Option<(MessageId, Option<usize>)>,
}

struct ReactionDraft {
    target: usize,
    sender_user: String,
    body: NestedPart,
    deleted: bool,
    expires_at: Option<u64>,
}

impl Conversation {
    /// The view of `history` (in the hub's order) at `now` (seconds since
    /// the UNIX epoch).
    pub fn from_history(history: &[Message], now: u64) -> Conversation {
        let mut messages: Vec<Draft> = Vec::new();
        let mut reactions: Vec<ReactionDraft> = Vec::new();
        let mut slots: HashMap<MessageId, Slot> = HashMap::new();
        let mut ignored = Vec::new();
        for m in history {
            let ignore = |reason| Ignored {
                id: m.id,
                sender_user: m.sender_user.clone(),
                reason,
            };
            if slots.contains_key(&m.id) {
                ignored.push(ignore(IgnoredReason::DuplicateId));
                continue;
            }
            if let Some(target) = m.content.replaces {
                match replace(m, target, &slots, &mut messages, &mut reactions) {
                    Ok(slot) => {
                        slots.insert(m.id, slot);
                    }
                    Err(reason) => ignored.push(ignore(reason)),
                }
            } else if let Some(to) = reaction_to(m) {
                let target = match slots.get(&to) {
                    Some(Slot::Message(i) | Slot::MessageVersion(i)) => *i,
                    _ => {
                        ignored.push(ignore(IgnoredReason::UnknownTarget(to)));
                        continue;
                    }
                };
                if matches!(messages[target].message.body, Body::Deleted { .. }) {
                    ignored.push(ignore(IgnoredReason::TargetDeleted(to)));
                    continue;
                }
                slots.insert(m.id, Slot::Reaction(reactions.len()));
                reactions.push(ReactionDraft {
                    target,
                    sender_user: m.sender_user.clone(),
                    body: m.content.nested_part.clone(),
                    deleted: false,
                    expires_at: expires_at(m),
                });
            } else {
                // Only earlier messages are known here, so an `inReplyTo`
                // chain cannot loop ("Message Behavior Fields").
                let reply = m.content.in_reply_to.map(|to| match slots.get(&to) {
                    Some(Slot::Message(i) | Slot::MessageVersion(i)) => (to, Some(*i)),
                    _ => (to, None),
                });
                slots.insert(m.id, Slot::Message(messages.len()));
                messages.push(Draft {
                    message: ConversationMessage {
                        id: m.id,
                        sender_user: m.sender_user.clone(),
                        sender_device: m.sender_device.clone(),
                        timestamp: m.timestamp,
                        own: m.own,
                        frank_status: m.frank_status.clone(),
                        pending: m.pending,
                        policy_breaches: m.policy_breaches.clone(),
                        body: Body::Shown {
                            content: Box::new(m.content.nested_part.clone()),
                            edited: None,
                        },
                        in_reply_to: None,
                        reactions: Vec::new(),
                        expires_at: expires_at(m),
                    },
                    reply,
                });
            }
        }
        // "Expiring": past its time a message is disregarded, as are
        // reactions that expired.
        for d in &mut messages {
            let m = &mut d.message;
            if m.expires_at.is_some_and(|t| now >= t) && matches!(m.body, Body::Shown { .. }) {
                m.body = Body::Expired;
            }
        }
        for r in &reactions {
            let target = &mut messages[r.target].message;
            if r.deleted
                || r.expires_at.is_some_and(|t| now >= t)
                || !matches!(target.body, Body::Shown { .. })
            {
                continue;
            }
            for reaction in reaction_texts(&r.body) {
                match target.reactions.iter_mut().find(|c| c.reaction == reaction) {
                    Some(c) if c.users.contains(&r.sender_user) => {}
                    Some(c) => c.users.push(r.sender_user.clone()),
                    None => target.reactions.push(ReactionCount {
                        reaction,
                        users: vec![r.sender_user.clone()],
                    }),
                }
            }
        }
        let quotes: Vec<Option<Quote>> = messages.iter().map(|d| quote(d, &messages)).collect();
        let messages = messages
            .into_iter()
            .zip(quotes)
            .map(|(d, in_reply_to)| ConversationMessage {
                in_reply_to,
                ..d.message
            })
            .collect();
        Conversation { messages, ignored }
    }
}

/// Applies the edit or delete `m` of `target`; the slot of `m` on success.
fn replace(
    m: &Message,
    target: MessageId,
    slots: &HashMap<MessageId, Slot>,
    messages: &mut [Draft],
    reactions: &mut [ReactionDraft],
) -> std::result::Result<Slot, IgnoredReason> {
    let delete = matches!(m.content.nested_part.part, Part::Null);
    match slots.get(&target) {
        None => Err(IgnoredReason::UnknownTarget(target)),
        Some(Slot::MessageVersion(_) | Slot::ReactionVersion | Slot::Retraction) => {
            Err(IgnoredReason::NotFirstInstance(target))
        }
        Some(Slot::Message(i)) => {
            let original = &mut messages[*i].message;
            if original.sender_user != m.sender_user {
                return Err(IgnoredReason::NotOriginalSender {
                    target,
                    original_sender: original.sender_user.clone(),
                });
            }
            if matches!(original.body, Body::Deleted { .. }) {
                return Err(IgnoredReason::TargetDeleted(target));
            }
            if delete {
                original.body = Body::Deleted { by: m.id };
                return Ok(Slot::Retraction);
            }
            // Only the body changes: "even the original sender of a message
            // MUST NOT be able to change ... any other portion of the
            // message except for the contents of the NestedPart".
            original.body = Body::Shown {
                content: Box::new(m.content.nested_part.clone()),
                edited: Some(m.id),
            };
            Ok(Slot::MessageVersion(*i))
        }
        Some(Slot::Reaction(i)) => {
            let original = &mut reactions[*i];
            if original.sender_user != m.sender_user {
                return Err(IgnoredReason::NotOriginalSender {
                    target,
                    original_sender: original.sender_user.clone(),
                });
            }
            if original.deleted {
                return Err(IgnoredReason::TargetDeleted(target));
            }
            // "Unlike" deletes the reaction; a replacement adjusts it.
            if delete {
                original.deleted = true;
                return Ok(Slot::Retraction);
            }
            original.body = m.content.nested_part.clone();
            Ok(Slot::ReactionVersion)
        }
    }
}

/// The quote of a message's `inReplyTo`, against the final state of its
/// target.
fn quote(d: &Draft, messages: &[Draft]) -> Option<Quote> {
    let (to, target) = d.reply?;
    let target = target.map(|i| {
        let t = &messages[i].message;
        let newer_version = match &t.body {
            Body::Shown { edited, .. } => edited.unwrap_or(t.id) != to,
            _ => false,
        };
        QuotedMessage {
            original: t.id,
            sender_user: t.sender_user.clone(),
            body: t.body.clone(),
            newer_version,
        }
    });
    Some(Quote { id: to, target })
}

/// When `m` expires, in seconds since the UNIX epoch. A relative time
/// counts from the hub's accepted timestamp: the history does not record
/// when the user read the message.
fn expires_at(m: &Message) -> Option<u64> {
    let e = m.content.expires?;
    if !e.relative {
        return Some(u64::from(e.time));
    }
    (m.timestamp > 0).then(|| m.timestamp / 1000 + u64::from(e.time))
}

/// The reactions a body carries: each reaction part counts once; a
/// `chooseOne` alternative only by its first part ("Multiple Reactions
/// Example").
fn reaction_texts(part: &NestedPart) -> Vec<String> {
    match &part.part {
        Part::Null => Vec::new(),
        Part::Single(p) if p.content_type.starts_with("text/") => {
            vec![String::from_utf8_lossy(&p.content).into_owned()]
        }
        Part::Single(p) => vec![format!("[{}]", p.content_type)],
        Part::External(p) => vec![format!("[{}]", p.content_type)],
        Part::Multi(m) if m.part_semantics == PartSemantics::ChooseOne => {
            m.parts.first().map(reaction_texts).unwrap_or_default()
        }
        Part::Multi(m) => m.parts.iter().flat_map(reaction_texts).collect(),
    }
}

/// A one-line text rendering of a body: text parts as they are, other
/// parts by content type, a `chooseOne` by its first part.
pub fn display_text(part: &NestedPart) -> String {
    match &part.part {
        Part::Null => String::new(),
        Part::Single(p) if p.content_type.starts_with("text/") => {
            String::from_utf8_lossy(&p.content).into_owned()
        }
        Part::Single(p) => format!("[{}]", p.content_type),
        Part::External(p) => {
            let name = if p.filename.is_empty() {
                String::new()
            } else {
                format!(" {}", p.filename)
            };
            let caption = if p.description.is_empty() {
                String::new()
            } else {
                format!(" {}", p.description)
            };
            format!("[{}{name}, {} bytes]{caption}", p.content_type, p.size)
        }
        Part::Multi(m) if m.part_semantics == PartSemantics::ChooseOne => {
            m.parts.first().map(display_text).unwrap_or_default()
        }
        Part::Multi(m) => m
            .parts
            .iter()
            .map(display_text)
            .collect::<Vec<_>>()
            .join(" "),
    }
}

impl Device {
    /// The conversation view of `room` at `now` (seconds since the UNIX
    /// epoch); [`Device::history`] stays the raw record.
    pub fn conversation(&self, room: &str, now: u64) -> Result<Conversation> {
        Ok(Conversation::from_history(&self.history(room)?, now))
    }
}
