//! The conversation view (draft-ietf-mimi-content "Message Behavior
//! Fields", the Reply, Reaction, Edit, Delete, Unlike and Expiring
//! examples, "Rendering and authorization of edits and deletes"), computed
//! from the raw history of real openmls devices behind the in-process hub.

mod common;

use common::*;
use mimi_client::conversation::{
    Body, ConversationMessage, IgnoredReason, QuotedMessage, ReactionCount, display_text,
};
use mimi_client::{Conversation, TEXT_PLAIN, content};
use mimi_content::{
    Disposition, Expiration, MessageId, MimiContent, MultiPart, NestedPart, Part, PartSemantics,
};

/// Seconds since the UNIX epoch shortly after the test hub's clock
/// (1_700_000_000_000 ms plus a tick per accepted event).
const NOW: u64 = 1_700_000_100;

/// Alice, Bob and Cathy in one room. Its roles let everyone delete
/// others' messages and reactions, so the devices send such deletes and
/// what these tests see is the content draft's rule alone: only the
/// original sender may edit or delete.
fn room() -> Net {
    use mimi_protocol::components::room_policy::capabilities as cap;
    let mut roles = mimi_room::policy::default_roles();
    for role in &mut roles.roles {
        role.role_capabilities.extend([
            cap::CAN_DELETE_OTHER_MESSAGE,
            cap::CAN_DELETE_OTHER_REACTION,
        ]);
    }
    let mut net = Net::create_with(
        ALICE,
        None,
        mimi_client::RoomOptions {
            roles,
            ..mimi_client::RoomOptions::default()
        },
    );
    net.add_member(ALICE, BOB).unwrap();
    net.add_member(BOB, CATHY).unwrap();
    net
}

fn send(net: &mut Net, device: &str, content: MimiContent) -> MessageId {
    let out = net.device(device).send(ROOM, content).unwrap();
    let id = out.message_id;
    net.submit(out).unwrap();
    id
}

/// Cathy's view; every member computes the same one (checked here on the
/// fields that do not depend on who sent what).
fn view(net: &mut Net) -> Conversation {
    let view = net.device(CATHY).conversation(ROOM, NOW).unwrap();
    for other in [ALICE, BOB] {
        let theirs = net.device(other).conversation(ROOM, NOW).unwrap();
        let strip = |c: &Conversation| {
            let ids: Vec<_> = c.messages.iter().map(|m| (m.id, m.body.clone())).collect();
            (ids, c.ignored.clone())
        };
        assert_eq!(strip(&theirs), strip(&view), "{other} sees another view");
    }
    view
}

fn message(view: &Conversation, id: MessageId) -> &ConversationMessage {
    view.messages
        .iter()
        .find(|m| m.id == id)
        .unwrap_or_else(|| panic!("no message {}", id.to_hex()))
}

fn shown(m: &ConversationMessage) -> (String, Option<MessageId>) {
    match &m.body {
        Body::Shown { content, edited } => (display_text(content), *edited),
        other => panic!("message not shown: {other:?}"),
    }
}

fn reactions(m: &ConversationMessage) -> Vec<(String, Vec<String>)> {
    m.reactions
        .iter()
        .map(|ReactionCount { reaction, users }| (reaction.clone(), users.clone()))
        .collect()
}

#[test]
fn an_edit_by_the_sender_replaces_the_body_and_is_marked() {
    let mut net = room();
    let typo = net.say(ALICE, "helo");
    let first = send(&mut net, ALICE, content::edit(typo, "hello"));
    let second = send(&mut net, ALICE, content::edit(typo, "hello all"));
    let view = view(&mut net);
    assert_eq!(
        view.messages.len(),
        1,
        "edits are not messages of their own"
    );
    assert_eq!(
        shown(message(&view, typo)),
        ("hello all".into(), Some(second))
    );
    assert!(view.ignored.is_empty());
    // The raw history keeps every version.
    assert_eq!(net.texts(CATHY), ["helo", "hello", "hello all"]);
    assert!(first != second);
}

#[test]
fn an_edit_by_someone_else_is_ignored() {
    let mut net = room();
    let hi = net.say(ALICE, "lunch at noon?");
    let forged = send(&mut net, BOB, content::edit(hi, "lunch is cancelled"));
    let view = view(&mut net);
    assert_eq!(shown(message(&view, hi)), ("lunch at noon?".into(), None));
    assert_eq!(view.ignored.len(), 1);
    assert_eq!(view.ignored[0].id, forged);
    assert_eq!(view.ignored[0].sender_user, user(BOB));
    assert_eq!(
        view.ignored[0].reason,
        IgnoredReason::NotOriginalSender {
            target: hi,
            original_sender: user(ALICE)
        }
    );
    assert_eq!(
        net.texts(CATHY),
        ["lunch at noon?", "lunch is cancelled"],
        "the raw history keeps the refused edit"
    );
}

#[test]
fn an_edit_changes_only_the_body() {
    let mut net = room();
    let question = net.say(ALICE, "who is in?");
    let answer = send(&mut net, BOB, content::reply(question, "me"));
    // The edit carries no inReplyTo; the reply relationship stays.
    send(&mut net, BOB, content::edit(answer, "me too"));
    let view = view(&mut net);
    let m = message(&view, answer);
    assert_eq!(shown(m).0, "me too");
    let quote = m.in_reply_to.as_ref().expect("still a reply");
    assert_eq!(quote.id, question);
}

#[test]
fn a_delete_leaves_a_tombstone_and_only_the_sender_may_delete() {
    let mut net = room();
    let keep = net.say(ALICE, "keep me");
    let gone = net.say(BOB, "oops");
    let forged = send(&mut net, CATHY, content::delete(keep));
    let delete = send(&mut net, BOB, content::delete(gone));
    let view = view(&mut net);
    assert_eq!(shown(message(&view, keep)).0, "keep me");
    assert_eq!(message(&view, gone).body, Body::Deleted { by: delete });
    assert_eq!(view.ignored.len(), 1);
    assert_eq!(view.ignored[0].id, forged);
    assert!(matches!(
        view.ignored[0].reason,
        IgnoredReason::NotOriginalSender { target, .. } if target == keep
    ));
}

#[test]
fn a_deleted_message_cannot_be_edited_deleted_or_reacted_to() {
    let mut net = room();
    let gone = net.say(BOB, "oops");
    send(&mut net, BOB, content::delete(gone));
    let edit = send(&mut net, BOB, content::edit(gone, "back again"));
    let again = send(&mut net, BOB, content::delete(gone));
    let reaction = send(&mut net, ALICE, content::reaction(gone, "👍"));
    let view = view(&mut net);
    assert!(matches!(message(&view, gone).body, Body::Deleted { .. }));
    let ignored: Vec<_> = view
        .ignored
        .iter()
        .map(|i| (i.id, i.reason.clone()))
        .collect();
    assert_eq!(
        ignored,
        [
            (edit, IgnoredReason::TargetDeleted(gone)),
            (again, IgnoredReason::TargetDeleted(gone)),
            (reaction, IgnoredReason::TargetDeleted(gone)),
        ]
    );
}

#[test]
fn replaces_must_name_a_known_first_instance() {
    let mut net = room();
    let original = net.say(ALICE, "v1");
    let v2 = send(&mut net, ALICE, content::edit(original, "v2"));
    let of_edit = send(&mut net, ALICE, content::edit(v2, "v3"));
    let unknown = MessageId([1; 32]);
    let of_unknown = send(&mut net, ALICE, content::edit(unknown, "?"));
    let view = view(&mut net);
    assert_eq!(shown(message(&view, original)), ("v2".into(), Some(v2)));
    let ignored: Vec<_> = view
        .ignored
        .iter()
        .map(|i| (i.id, i.reason.clone()))
        .collect();
    assert_eq!(
        ignored,
        [
            (of_edit, IgnoredReason::NotFirstInstance(v2)),
            (of_unknown, IgnoredReason::UnknownTarget(unknown)),
        ]
    );
}

#[test]
fn reactions_are_counted_per_reaction_and_user() {
    let mut net = room();
    let news = net.say(ALICE, "we shipped");
    send(&mut net, BOB, content::reaction(news, "👍"));
    send(&mut net, CATHY, content::reaction(news, "👍"));
    send(&mut net, CATHY, content::reaction(news, "❤"));
    // The same reaction twice from one user counts once.
    send(&mut net, BOB, content::reaction(news, "👍"));
    let view = view(&mut net);
    assert_eq!(view.messages.len(), 1, "reactions are not messages");
    assert_eq!(
        reactions(message(&view, news)),
        [
            ("👍".to_owned(), vec![user(BOB), user(CATHY)]),
            ("❤".to_owned(), vec![user(CATHY)]),
        ]
    );
    assert_eq!(message(&view, news).reactions[0].count(), 2);
}

#[test]
fn several_reactions_in_one_message() {
    // "Multiple Reactions Example": a processAll MultiPart of reactions.
    let mut net = room();
    let news = net.say(ALICE, "we shipped");
    let part = |text: &str| NestedPart::single(Disposition::REACTION, TEXT_PLAIN, text);
    let mut c = content::reaction(news, "unused");
    c.nested_part = NestedPart {
        disposition: Disposition::REACTION,
        language: String::new(),
        part: Part::Multi(MultiPart {
            part_semantics: PartSemantics::ProcessAll,
            parts: vec![part("❤"), part("🥳")],
        }),
    };
    send(&mut net, BOB, c);
    let view = view(&mut net);
    assert_eq!(
        reactions(message(&view, news)),
        [
            ("❤".to_owned(), vec![user(BOB)]),
            ("🥳".to_owned(), vec![user(BOB)]),
        ]
    );
}

#[test]
fn an_unlike_removes_only_the_own_reaction() {
    let mut net = room();
    let news = net.say(ALICE, "we shipped");
    let bobs = send(&mut net, BOB, content::reaction(news, "👍"));
    let cathys = send(&mut net, CATHY, content::reaction(news, "👍"));
    send(&mut net, BOB, content::unlike(bobs, news));
    let forged = send(&mut net, BOB, content::unlike(cathys, news));
    let view = view(&mut net);
    assert_eq!(
        reactions(message(&view, news)),
        [("👍".to_owned(), vec![user(CATHY)])]
    );
    assert_eq!(view.ignored.len(), 1);
    assert_eq!(view.ignored[0].id, forged);
    assert_eq!(
        view.ignored[0].reason,
        IgnoredReason::NotOriginalSender {
            target: cathys,
            original_sender: user(CATHY)
        }
    );
}

#[test]
fn a_reaction_can_be_replaced_by_its_sender() {
    // `replaces` also "adjust[s] reactions to messages to which the client
    // previously reacted".
    let mut net = room();
    let news = net.say(ALICE, "we shipped");
    let bobs = send(&mut net, BOB, content::reaction(news, "👍"));
    let mut change = content::reaction(news, "🎉");
    change.replaces = Some(bobs);
    send(&mut net, BOB, change);
    let view = view(&mut net);
    assert_eq!(
        reactions(message(&view, news)),
        [("🎉".to_owned(), vec![user(BOB)])]
    );
}

#[test]
fn a_reaction_to_an_unknown_message_is_ignored() {
    let mut net = room();
    let unknown = MessageId([1; 32]);
    let reaction = send(&mut net, BOB, content::reaction(unknown, "👍"));
    let view = view(&mut net);
    assert!(view.messages.is_empty());
    assert_eq!(view.ignored.len(), 1);
    assert_eq!(view.ignored[0].id, reaction);
    assert_eq!(
        view.ignored[0].reason,
        IgnoredReason::UnknownTarget(unknown)
    );
}

#[test]
fn replies_quote_their_target() {
    let mut net = room();
    let question = net.say(ALICE, "pizza?");
    let yes = send(&mut net, BOB, content::reply(question, "yes"));
    let unknown = MessageId([1; 32]);
    let orphan = send(&mut net, CATHY, content::reply(unknown, "what did I miss?"));
    let view = view(&mut net);
    let quote = message(&view, yes).in_reply_to.clone().unwrap();
    assert_eq!(quote.id, question);
    let QuotedMessage {
        original,
        sender_user,
        body,
        newer_version,
    } = quote.target.expect("quoted");
    assert_eq!(original, question);
    assert_eq!(sender_user, user(ALICE));
    assert!(matches!(body, Body::Shown { content, .. } if display_text(&content) == "pizza?"));
    assert!(!newer_version);
    let quote = message(&view, orphan).in_reply_to.clone().unwrap();
    assert_eq!((quote.id, quote.target), (unknown, None));
    // A reply is itself a message: shown, with no edits.
    assert_eq!(
        shown(message(&view, orphan)),
        ("what did I miss?".into(), None)
    );
}

#[test]
fn a_reply_shows_that_its_target_was_edited_or_deleted() {
    let mut net = room();
    let question = net.say(ALICE, "borrow a pen?");
    let yes = send(&mut net, BOB, content::reply(question, "sure"));
    send(&mut net, ALICE, content::edit(question, "borrow your car?"));
    let gone = net.say(ALICE, "secret");
    let hmm = send(&mut net, BOB, content::reply(gone, "hmm"));
    let delete = send(&mut net, ALICE, content::delete(gone));
    let view = view(&mut net);
    // "indicate clearly that a reply was to a previous version"
    match &message(&view, yes).in_reply_to.as_ref().unwrap().target {
        Some(QuotedMessage {
            body: Body::Shown { content, .. },
            newer_version,
            ..
        }) => {
            assert_eq!(display_text(content), "borrow your car?");
            assert!(newer_version);
        }
        other => panic!("{other:?}"),
    }
    // "Replies which reference a deleted message typically hide the quoted
    // portion and reflect that the original message was deleted."
    let quoted = message(&view, hmm).in_reply_to.clone().unwrap().target;
    assert_eq!(quoted.unwrap().body, Body::Deleted { by: delete });
}

#[test]
fn expiring_messages_are_disregarded_after_their_time() {
    let mut net = room();
    let mut absolute = content::text("VPN going down");
    absolute.expires = Some(Expiration {
        relative: false,
        time: (NOW + 60) as u32,
    });
    let absolute = send(&mut net, ALICE, absolute);
    let mut relative = content::text("this will self-destruct");
    relative.expires = Some(Expiration {
        relative: true,
        time: 3600,
    });
    let relative = send(&mut net, ALICE, relative);
    send(&mut net, BOB, content::reaction(absolute, "👍"));
    let stays = net.say(BOB, "no expiry");

    let at = |net: &mut Net, now: u64| net.device(CATHY).conversation(ROOM, now).unwrap();
    let before = at(&mut net, NOW);
    assert_eq!(shown(message(&before, absolute)).0, "VPN going down");
    assert_eq!(message(&before, absolute).expires_at, Some(NOW + 60));
    assert_eq!(reactions(message(&before, absolute)).len(), 1);
    assert_eq!(
        shown(message(&before, relative)).0,
        "this will self-destruct"
    );

    let later = at(&mut net, NOW + 60);
    assert_eq!(message(&later, absolute).body, Body::Expired);
    assert!(message(&later, absolute).reactions.is_empty());
    assert!(matches!(message(&later, relative).body, Body::Shown { .. }));

    // Relative expiry counts from the hub's accepted timestamp.
    let accepted = message(&later, relative).timestamp / 1000;
    assert_eq!(message(&later, relative).expires_at, Some(accepted + 3600));
    let much_later = at(&mut net, accepted + 3600);
    assert_eq!(message(&much_later, relative).body, Body::Expired);
    assert!(matches!(
        message(&much_later, stays).body,
        Body::Shown { .. }
    ));
    // The raw history keeps them.
    assert_eq!(net.device(CATHY).history(ROOM).unwrap().len(), 4);
}

#[test]
fn a_duplicate_message_id_is_ignored() {
    // "General handling": message IDs "which duplicate another message ID
    // already encountered" are discarded.
    let mut net = room();
    let hi = net.say(ALICE, "hi");
    let mut history = net.device(CATHY).history(ROOM).unwrap();
    history.push(history[0].clone());
    let view = Conversation::from_history(&history, NOW);
    assert_eq!(view.messages.len(), 1);
    assert_eq!(view.ignored[0].id, hi);
    assert_eq!(view.ignored[0].reason, IgnoredReason::DuplicateId);
}

#[test]
fn another_device_of_the_original_sender_may_edit_and_delete() {
    // The original sender is a user; Cathy's desktop joins by external
    // commit and edits and deletes what her tablet sent.
    let mut net = room();
    let draft = net.say(CATHY, "draft");
    let gone = net.say(CATHY, "gone soon");
    net.new_device(CATHY2);
    let (info, tree) = (net.group_info.clone(), net.ratchet_tree.clone());
    let req = net
        .device(CATHY2)
        .join_by_external_commit(ROOM, info, tree)
        .unwrap();
    net.update(CATHY2, req).unwrap();
    let edit = send(&mut net, CATHY2, content::edit(draft, "final"));
    send(&mut net, CATHY2, content::delete(gone));
    let view = net.device(ALICE).conversation(ROOM, NOW).unwrap();
    assert_eq!(shown(message(&view, draft)), ("final".into(), Some(edit)));
    assert!(matches!(message(&view, gone).body, Body::Deleted { .. }));
    assert!(view.ignored.is_empty());
}
