//! Room policy enforced by the hub through real providers and clients
//! (draft-ietf-mimi-room-policy): self-joins by preauthorization, and a
//! banned user never rejoining through it; room metadata changes at the
//! granularity of one capability per field; fixed-membership rooms (DMs)
//! unique per set of participants and closed to additions and removals;
//! join links that admit their holders until used up, expired or removed.

#[macro_use]
mod common;

use common::{Backend, start_federation};
use mimi_client::http::{Client, ClientError};
use mimi_client::{RoomOptions, content};
use mimi_protocol::components::room_metadata::{UTF8String, Uri};
use mimi_protocol::components::room_policy::capabilities as cap;
use mimi_protocol::components::room_policy::{
    BaseRoomPolicy, PreAuthData, PreAuthRoleEntry, RoleData,
};
use mimi_protocol::components::{JoinLinkPolicy, RoomMetaData};
use mimi_room::policy::default_role::{ADMIN, BANNED, MEMBER, MODERATOR};
use mimi_room::policy::default_roles;
use mimi_room::policy::preauth::{basic_claim, claim};

const ALICE: &str = "mimi://a.example/d/alice/laptop";
const BOB: &str = "mimi://b.example/d/bob/phone";
const BOB_USER: &str = "mimi://b.example/u/bob";
const CAROL: &str = "mimi://c.example/d/carol/tablet";
const CAROL_USER: &str = "mimi://c.example/u/carol";
const ALICE_USER: &str = "mimi://a.example/u/alice";

fn with_capability(mut roles: RoleData, role: u32, capability: u16) -> RoleData {
    let r = roles
        .roles
        .iter_mut()
        .find(|r| r.role_index == role)
        .unwrap();
    r.role_capabilities.push(capability);
    roles
}

fn role_in(client: &Client, room: &str, user: &str) -> Option<u32> {
    client.device.participants(room).unwrap().role_of(user)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preauthorized_user_joins_by_itself_and_a_banned_one_never_rejoins() {
    const ROOM: &str = "mimi://a.example/r/benefits";
    let fed = start_federation(Backend::Sqlite).await;
    let [mut alice, mut bob, mut carol] = common::clients(&fed, [ALICE, BOB, CAROL]).await;
    // Everyone at b.example may join as a member.
    let roles = with_capability(default_roles(), MEMBER, cap::CAN_JOIN_IF_PREAUTHORIZED);
    let preauth = PreAuthData {
        preauthorized_entries: vec![PreAuthRoleEntry {
            claimset: vec![basic_claim(claim::DOMAIN, "b.example")],
            target_role: roles.role(MEMBER).unwrap().clone(),
        }],
    };
    alice
        .create_room_with(
            ROOM,
            RoomOptions {
                roles,
                preauth: Some(preauth),
                ..RoomOptions::default()
            },
        )
        .await
        .unwrap();

    bob.join(ROOM).await.unwrap();
    assert_eq!(role_in(&bob, ROOM, BOB_USER), Some(MEMBER));
    bob.send(ROOM, content::text("hello, I let myself in"))
        .await
        .unwrap();
    until!("Alice sees Bob's message", {
        alice.sync().await.unwrap();
        alice.device.history(ROOM).unwrap().len() == 1
    });
    assert_eq!(role_in(&alice, ROOM, BOB_USER), Some(MEMBER));

    // Carol's claims match no entry: the hub gives her no GroupInfo.
    let refused = carol.join(ROOM).await.unwrap_err();
    assert!(refused.to_string().contains("notAuthorized"), "{refused}");

    // Banned, Bob stays in the list with the banned role; preauthorization
    // is only consulted for users who are not in it.
    alice.set_role(ROOM, BOB_USER, BANNED).await.unwrap();
    let [mut bob_again] = common::clients(&fed, ["mimi://b.example/d/bob/tablet"]).await;
    assert!(bob_again.join(ROOM).await.is_err());
    assert_eq!(role_in(&alice, ROOM, BOB_USER), Some(BANNED));
    fed.shutdown().await;
}

fn metadata(room: &str, name: &str, subject: &str) -> RoomMetaData {
    RoomMetaData {
        room_uri: Uri::new(room),
        room_name: UTF8String::new(name).unwrap(),
        room_subject: UTF8String::new(subject).unwrap(),
        ..RoomMetaData::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_room_metadata_field_needs_its_own_capability() {
    const ROOM: &str = "mimi://a.example/r/lunch";
    let fed = start_federation(Backend::Sqlite).await;
    let [mut alice, mut bob] = common::clients(&fed, [ALICE, BOB]).await;
    bob.publish_key_packages(2).await.unwrap();
    // Members may change the subject, and nothing else of the metadata.
    let roles = with_capability(default_roles(), MEMBER, cap::CAN_CHANGE_ROOM_SUBJECT);
    alice
        .create_room_with(
            ROOM,
            RoomOptions {
                roles,
                metadata: Some(metadata(ROOM, "Lunch", "Fridays")),
                ..RoomOptions::default()
            },
        )
        .await
        .unwrap();
    alice.add_user(ROOM, BOB_USER, MEMBER).await.unwrap();
    until!("Bob joins", {
        bob.sync().await.unwrap();
        bob.device.history(ROOM).is_ok()
    });

    bob.set_room_metadata(ROOM, &metadata(ROOM, "Lunch", "Mondays"))
        .await
        .unwrap();
    let refused = bob
        .set_room_metadata(ROOM, &metadata(ROOM, "Dinner", "Mondays"))
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, ClientError::UpdateRefused { reason, .. }
            if reason.contains("canChangeRoomName") && reason.contains("room-policy §Adjust metadata")),
        "{refused}"
    );
    // An admin holds every metadata capability.
    alice.sync().await.unwrap();
    alice
        .set_room_metadata(ROOM, &metadata(ROOM, "Dinner", "Mondays"))
        .await
        .unwrap();
    until!("Bob sees the new name", {
        bob.sync().await.unwrap();
        bob.device
            .room_metadata(ROOM)
            .unwrap()
            .is_some_and(|m| m.room_name.as_str() == "Dinner")
    });
    fed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fixed_membership_dm_is_unique_and_keeps_its_participants() {
    const DM: &str = "mimi://a.example/r/dm-alice-bob";
    let fed = start_federation(Backend::Sqlite).await;
    let [mut alice, mut bob, mut carol] = common::clients(&fed, [ALICE, BOB, CAROL]).await;
    carol.publish_key_packages(2).await.unwrap();
    let mut roles = default_roles();
    for role in &mut roles.roles {
        role.role_capabilities
            .retain(|c| *c != cap::CAN_ADD_PARTICIPANT);
    }
    let dm = |extra: Vec<(String, u32)>| RoomOptions {
        roles: roles.clone(),
        creator_role: ADMIN,
        participants: extra,
        base: Some(BaseRoomPolicy {
            fixed_membership: true,
            ..BaseRoomPolicy::default()
        }),
        ..RoomOptions::default()
    };
    alice
        .create_room_with(DM, dm(vec![(BOB_USER.to_owned(), MEMBER)]))
        .await
        .unwrap();
    // Bob is listed from the start and adds his own client.
    bob.join(DM).await.unwrap();
    bob.send(DM, content::text("hi Alice")).await.unwrap();
    until!("Alice gets Bob's message", {
        alice.sync().await.unwrap();
        alice.device.history(DM).unwrap().len() == 1
    });

    // A second room for the same participants is refused by the hub.
    let second = alice
        .create_room_with(
            "mimi://a.example/r/dm-again",
            dm(vec![(BOB_USER.to_owned(), MEMBER)]),
        )
        .await
        .unwrap_err();
    assert!(
        second.to_string().contains(DM),
        "names the existing room: {second}"
    );
    // Another set of participants is another room.
    alice
        .create_room_with(
            "mimi://a.example/r/dm-alice-carol",
            dm(vec![("mimi://c.example/u/carol".to_owned(), MEMBER)]),
        )
        .await
        .unwrap();

    // Nobody is added or removed.
    assert!(
        alice
            .add_user(DM, "mimi://c.example/u/carol", MEMBER)
            .await
            .is_err()
    );
    let removal = alice.remove_user(DM, BOB_USER).await.unwrap_err();
    assert!(
        removal.to_string().contains("fixed-membership"),
        "{removal}"
    );
    assert_eq!(role_in(&alice, DM, BOB_USER), Some(MEMBER));
    fed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn franking_can_be_turned_on_after_creation_with_the_hubs_key_only() {
    const ROOM: &str = "mimi://a.example/r/late-franking";
    let fed = start_federation(Backend::Sqlite).await;
    let [mut alice, mut bob] = common::clients(&fed, [ALICE, BOB]).await;
    bob.publish_key_packages(2).await.unwrap();
    alice
        .create_room_with(
            ROOM,
            RoomOptions {
                franking: false,
                ..RoomOptions::default()
            },
        )
        .await
        .unwrap();
    alice.add_user(ROOM, BOB_USER, MEMBER).await.unwrap();
    until!("Bob joins", {
        bob.sync().await.unwrap();
        bob.device.history(ROOM).is_ok()
    });
    let frank_of_last = |client: &Client| {
        client
            .device
            .history(ROOM)
            .unwrap()
            .last()
            .map(|m| m.frank_status.clone())
    };
    bob.send(ROOM, content::text("before")).await.unwrap();
    until!("Alice gets the unfranked message", {
        alice.sync().await.unwrap();
        alice.device.history(ROOM).unwrap().len() == 1
    });
    assert_eq!(
        frank_of_last(&alice),
        Some(mimi_client::FrankStatus::Unfranked)
    );

    // A member may not turn it on; an admin may (with the hub's key only:
    // crates/mimi-room/tests/engine.rs).
    let refused = bob.enable_franking(ROOM).await.unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("canChangeOtherPolicyAttribute"),
        "{refused}"
    );
    alice.enable_franking(ROOM).await.unwrap();
    bob.sync().await.unwrap();
    bob.send(ROOM, content::text("after")).await.unwrap();
    until!("Alice gets the franked message", {
        alice.sync().await.unwrap();
        alice.device.history(ROOM).unwrap().len() == 2
    });
    assert_eq!(
        frank_of_last(&alice),
        Some(mimi_client::FrankStatus::Verified)
    );
    fed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parent_dependent_room_takes_only_participants_of_its_parent_and_follows_it() {
    const PARENT: &str = "mimi://a.example/r/team";
    const CHILD: &str = "mimi://a.example/r/team-call";
    let fed = start_federation(Backend::Sqlite).await;
    let [mut alice, mut bob, mut carol] = common::clients(&fed, [ALICE, BOB, CAROL]).await;
    bob.publish_key_packages(4).await.unwrap();
    carol.publish_key_packages(4).await.unwrap();
    alice.create_room(PARENT).await.unwrap();
    alice.add_user(PARENT, BOB_USER, MEMBER).await.unwrap();
    let child_of = |parent: &str| RoomOptions {
        base: Some(BaseRoomPolicy {
            parent_dependant: true,
            parent_room: vec![Uri::new(parent)],
            ..BaseRoomPolicy::default()
        }),
        ..RoomOptions::default()
    };
    // The parent must live on the same hub.
    let elsewhere = alice
        .create_room_with(
            "mimi://a.example/r/orphan",
            child_of("mimi://b.example/r/x"),
        )
        .await
        .unwrap_err();
    assert!(
        elsewhere.to_string().contains("not hosted here"),
        "{elsewhere}"
    );

    alice
        .create_room_with(CHILD, child_of(PARENT))
        .await
        .unwrap();
    alice.add_user(CHILD, BOB_USER, MEMBER).await.unwrap();
    let refused = alice
        .add_user(CHILD, "mimi://c.example/u/carol", MEMBER)
        .await
        .unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("not a participant of the parent room"),
        "{refused}"
    );
    // In the parent first, then the child takes her.
    alice
        .add_user(PARENT, "mimi://c.example/u/carol", MEMBER)
        .await
        .unwrap();
    alice
        .add_user(CHILD, "mimi://c.example/u/carol", MEMBER)
        .await
        .unwrap();
    until!("Bob is in the call with Carol", {
        bob.sync().await.unwrap();
        role_in(&bob, CHILD, CAROL_USER) == Some(MEMBER)
    });

    // The child follows its parent: Carol, removed from the team, has her
    // client's removal from the call proposed by the hub, and the next
    // commit (Bob's: a member without the kick capability) drops her
    // from the call's participant list too (C21).
    alice.remove_user(PARENT, CAROL_USER).await.unwrap();
    bob.commit_pending(CHILD).await.unwrap();
    assert_eq!(role_in(&bob, CHILD, CAROL_USER), None);
    assert!(
        !bob.device
            .members(CHILD)
            .unwrap()
            .contains(&CAROL.to_owned())
    );
    until!("Carol learns she left the call", {
        carol.sync().await.unwrap();
        carol.device.room_status(CHILD).unwrap() == mimi_client::RoomStatus::Removed
    });
    until!("Alice sees the call without Carol", {
        alice.sync().await.unwrap();
        role_in(&alice, CHILD, CAROL_USER).is_none()
    });
    // Without the parent's say, a member still may not remove others.
    let refused = bob.remove_user(CHILD, ALICE_USER).await.unwrap_err();
    assert!(
        matches!(&refused, ClientError::UpdateRefused { reason, .. }
            if reason.contains("canRemoveParticipant") || reason.contains("may not remove")),
        "{refused}"
    );
    fed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_link_admits_its_holder_until_used_up_expired_or_removed() {
    const ROOM: &str = "mimi://a.example/r/open-house";
    let fed = start_federation(Backend::Sqlite).await;
    let [mut alice, mut bob, mut carol] = common::clients(&fed, [ALICE, BOB, CAROL]).await;
    // Single-use links that live at most an hour (C27).
    let options = RoomOptions::default().with_join_links(JoinLinkPolicy {
        on_request: false,
        join_link: Uri::default(),
        multiuser: false,
        expiration: 3600,
    });
    alice.create_room_with(ROOM, options).await.unwrap();
    let refused = bob.join(ROOM).await.unwrap_err();
    assert!(refused.to_string().contains("notAuthorized"), "{refused}");

    // A member link lets Bob in as a member, once.
    let link = alice.create_join_link(ROOM, MEMBER, None).await.unwrap();
    assert!(
        link.starts_with(ROOM) && link.contains("expires="),
        "{link}"
    );
    assert_eq!(bob.join_by_link(&link).await.unwrap(), ROOM);
    assert_eq!(role_in(&bob, ROOM, BOB_USER), Some(MEMBER));
    bob.send(ROOM, content::text("in by link")).await.unwrap();
    until!("Alice sees Bob's message", {
        alice.sync().await.unwrap();
        alice.device.history(ROOM).unwrap().len() == 1
    });
    assert!(alice.device.join_links(ROOM).unwrap().is_empty(), "used up");
    let used = carol.join_by_link(&link).await.unwrap_err();
    assert!(used.to_string().contains("notAuthorized"), "{used}");

    // A member may hand out member links, never admin links.
    let admin_link = bob.create_join_link(ROOM, ADMIN, None).await.unwrap_err();
    assert!(
        admin_link
            .to_string()
            .contains("may not create a link for role"),
        "{admin_link}"
    );

    // An expired link and a removed link admit nobody.
    let short = alice
        .create_join_link(ROOM, MEMBER, Some(std::time::Duration::from_secs(1)))
        .await
        .unwrap();
    let removed = alice.create_join_link(ROOM, MEMBER, None).await.unwrap();
    alice.remove_join_link(ROOM, &removed).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    for dead in [&short, &removed] {
        let refused = carol.join_by_link(dead).await.unwrap_err();
        assert!(refused.to_string().contains("notAuthorized"), "{refused}");
    }
    assert_eq!(role_in(&alice, ROOM, "mimi://c.example/u/carol"), None);

    // A fresh link still works.
    let fresh = alice.create_join_link(ROOM, MEMBER, None).await.unwrap();
    carol.join_by_link(&fresh).await.unwrap();
    until!("Alice sees Carol join", {
        alice.sync().await.unwrap();
        role_in(&alice, ROOM, "mimi://c.example/u/carol") == Some(MEMBER)
    });
    fed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_whose_users_may_not_receive_gets_no_messages() {
    const ROOM: &str = "mimi://a.example/r/briefing";
    let fed = start_federation(Backend::Sqlite).await;
    let [mut alice, mut bob, mut carol] = common::clients(&fed, [ALICE, BOB, CAROL]).await;
    // Members may not receive messages; moderators may.
    let mut roles = default_roles();
    for role in &mut roles.roles {
        if role.role_index == MEMBER {
            role.role_capabilities
                .retain(|c| *c != cap::CAN_RECEIVE_MESSAGE);
        }
    }
    let options = RoomOptions {
        roles,
        ..RoomOptions::default()
    };
    bob.publish_key_packages(1).await.unwrap();
    carol.publish_key_packages(1).await.unwrap();
    alice.create_room_with(ROOM, options).await.unwrap();
    alice.add_user(ROOM, BOB_USER, MEMBER).await.unwrap();
    alice
        .add_user(ROOM, "mimi://c.example/u/carol", MODERATOR)
        .await
        .unwrap();
    until!("Bob and Carol join", {
        bob.sync().await.unwrap();
        carol.sync().await.unwrap();
        bob.device.history(ROOM).is_ok() && carol.device.history(ROOM).is_ok()
    });

    alice
        .send(ROOM, content::text("for moderators"))
        .await
        .unwrap();
    until!("Carol gets the message", {
        carol.sync().await.unwrap();
        carol.device.history(ROOM).unwrap().len() == 1
    });
    bob.sync().await.unwrap();
    assert!(bob.device.history(ROOM).unwrap().is_empty(), "withheld");

    // As a moderator Bob receives what is sent from then on.
    alice.set_role(ROOM, BOB_USER, MODERATOR).await.unwrap();
    let welcome = alice.send(ROOM, content::text("welcome")).await.unwrap();
    until!("Bob gets the second message", {
        bob.sync().await.unwrap();
        !bob.device.history(ROOM).unwrap().is_empty()
    });
    let got: Vec<_> = bob
        .device
        .history(ROOM)
        .unwrap()
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(
        got,
        vec![welcome],
        "only what was sent once he could receive"
    );
    fed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preauthorized_user_is_added_by_its_external_proposal() {
    const ROOM: &str = "mimi://a.example/r/lobby";
    let fed = start_federation(Backend::Sqlite).await;
    let [mut alice, mut bob, mut carol] = common::clients(&fed, [ALICE, BOB, CAROL]).await;
    // Users of b.example may come in as members; members may not add
    // anyone themselves.
    let mut roles = with_capability(default_roles(), MEMBER, cap::CAN_JOIN_IF_PREAUTHORIZED);
    for role in &mut roles.roles {
        if role.role_index == MEMBER {
            role.role_capabilities
                .retain(|c| *c != cap::CAN_ADD_PARTICIPANT);
        }
    }
    let preauth = PreAuthData {
        preauthorized_entries: vec![PreAuthRoleEntry {
            claimset: vec![basic_claim(claim::DOMAIN, "b.example")],
            target_role: roles.role(MEMBER).unwrap().clone(),
        }],
    };
    alice
        .create_room_with(
            ROOM,
            RoomOptions {
                roles,
                preauth: Some(preauth),
                ..RoomOptions::default()
            },
        )
        .await
        .unwrap();

    // Carol is not preauthorized: the hub takes no proposal from her.
    let refused = carol.ask_to_join(ROOM).await.unwrap_err();
    assert!(refused.to_string().contains("notAuthorized"), "{refused}");

    // Bob asks; Alice's next commit lists him with his preauthorized role
    // and adds his client; he joins from the Welcome.
    bob.ask_to_join(ROOM).await.unwrap();
    until!("Alice has Bob's proposal", {
        alice.sync().await.unwrap();
        alice
            .device
            .mls_group(ROOM)
            .unwrap()
            .pending_proposals()
            .next()
            .is_some()
    });
    alice.commit_pending(ROOM).await.unwrap();
    until!("Bob joins from the Welcome", {
        bob.sync().await.unwrap();
        bob.device.history(ROOM).is_ok()
    });
    assert_eq!(role_in(&alice, ROOM, BOB_USER), Some(MEMBER));
    bob.send(ROOM, content::text("thanks for letting me in"))
        .await
        .unwrap();
    until!("Alice sees Bob's message", {
        alice.sync().await.unwrap();
        alice.device.history(ROOM).unwrap().len() == 1
    });
    fed.shutdown().await;
}
