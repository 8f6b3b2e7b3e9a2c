//! The room templates of draft-ietf-mimi-room-policy §Role examples
//! played through real providers: a hub (a.example) and two followers
//! (b.example, c.example), real clients. Each template's scenario is a
//! table of (actor, action, expected outcome); every step is first
//! checked against what `capability_table` says the actor's role may do,
//! then sent to the hub, whose answer must be the same. So the table the
//! CLI prints and the hub agree.
//!
//! Not played here, for want of a client operation: kicking (removing
//! clients only); the table's unit tests check those cells against the
//! examples.

#[macro_use]
mod common;

use std::collections::BTreeMap;

use common::{Backend, start_federation};
use mimi_client::http::Client;
use mimi_client::{RoomOptions, content};
use mimi_protocol::MimiUri;
use mimi_protocol::components::room_metadata::{RichDescription, UTF8String, Uri};
use mimi_protocol::components::room_policy::capabilities as cap;
use mimi_protocol::components::room_policy::{CapabilityType, PreAuthData, RoleData};
use mimi_protocol::components::{ParticipantListData, ROLES_LIST, RoomMetaData, decode_component};
use mimi_room::identity::{ClientIdentity, user_of_device};
use mimi_room::policy::BANNED_ROLE;
use mimi_room::policy::preauth::Claims;
use mimi_room::policy::templates::{
    Action, Allowed, TableRow, Template, capability_table, cell, render_table,
};
use mimi_room::policy::updates::capability_name;
use tls_codec::Serialize as _;

/// The users, by name, and their providers: two at each.
const CAST: [(&str, &str); 6] = [
    ("alice", "a.example"),
    ("dora", "a.example"),
    ("bob", "b.example"),
    ("dave", "b.example"),
    ("carol", "c.example"),
    ("erin", "c.example"),
];

fn domain(name: &str) -> &'static str {
    CAST.iter()
        .find(|(n, _)| *n == name)
        .map(|(_, d)| *d)
        .unwrap_or_else(|| panic!("{name} is not in the cast"))
}

fn user(name: &str) -> String {
    format!("mimi://{}/u/{name}", domain(name))
}

fn device(name: &str) -> String {
    format!("mimi://{}/d/{name}/phone", domain(name))
}

#[derive(Debug, Clone, Copy)]
enum Field {
    Name,
    Description,
    Subject,
}

impl Field {
    fn capability(self) -> CapabilityType {
        match self {
            Field::Name => cap::CAN_CHANGE_ROOM_NAME,
            Field::Description => cap::CAN_CHANGE_ROOM_DESCRIPTION,
            Field::Subject => cap::CAN_CHANGE_ROOM_SUBJECT,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Act {
    /// Add a user with a role (and their clients).
    Add(&'static str, u32),
    /// Remove a user and their clients.
    Remove(&'static str),
    /// Change a user's role: a ban when to the banned role, an unban when
    /// from it.
    SetRole(&'static str, u32),
    /// Change one field of the room metadata.
    Meta(Field),
    /// Replace the role definitions (a role's description changes).
    RoleDefinitions,
    Send,
    /// Join by external commit without being a participant.
    Join,
}

/// (actor, action, whether the hub allows it).
type Step = (&'static str, Act, bool);

/// What the table predicts: allowed, or refused with a reason naming
/// this rule.
#[derive(Debug, PartialEq)]
enum Verdict {
    Allowed,
    Refused(String),
}

/// The participant count constraints the table gives a role.
fn limits(table: &[TableRow], role: u32) -> (u32, Option<u32>) {
    match cell(table, role, Action::Limits).map(|r| &r.allowed) {
        Some(Allowed::Limits { min, max, .. }) => (*min, *max),
        other => panic!("no limits for role {role}: {other:?}"),
    }
}

/// What the capability table says of `actor` doing `act`, in a room whose
/// participant list is `list`. A capability the table grants can still
/// meet a role's participant count constraint, which the table lists too.
fn predict(
    table: &[TableRow],
    list: &ParticipantListData,
    preauth: Option<&PreAuthData>,
    actor: &str,
    act: Act,
) -> Verdict {
    let role_of = |name: &str| list.role_of(user(name)).unwrap_or(0);
    let count = |role: u32| {
        list.participants
            .iter()
            .filter(|p| p.role_index == role)
            .count() as u32
    };
    let may = |action: Action| &cell(table, role_of(actor), action).unwrap().allowed;
    let refused = |rule: &str| Verdict::Refused(rule.to_owned());
    // A participant moving from `from` to `to` (0: not in the list).
    let within_limits = |from: u32, to: u32| {
        if from != 0 && count(from) - 1 < limits(table, from).0 {
            return refused("minimum participants");
        }
        if to != 0 && limits(table, to).1.is_some_and(|max| count(to) + 1 > max) {
            return refused("maximum participants");
        }
        Verdict::Allowed
    };
    match act {
        Act::Add(_, to) if may(Action::Add).role(to) => within_limits(0, to),
        Act::Add(..) => refused("room-policy §Adding"),
        Act::Remove(target) if may(Action::Remove).role(role_of(target)) => {
            within_limits(role_of(target), 0)
        }
        Act::Remove(_) => refused("room-policy §Removing"),
        Act::SetRole(target, to) => {
            let from = role_of(target);
            let allowed = if to == BANNED_ROLE {
                may(Action::Ban).role(from)
            } else if from == BANNED_ROLE {
                may(Action::Unban).change(from, to)
            } else {
                may(Action::ChangeRole).change(from, to)
            };
            if allowed {
                within_limits(from, to)
            } else {
                refused("room-policy §Role Changes")
            }
        }
        Act::Meta(field) if may(Action::Metadata).capability(field.capability()) => {
            Verdict::Allowed
        }
        Act::Meta(field) => refused(capability_name(field.capability())),
        Act::RoleDefinitions
            if may(Action::Policy).capability(cap::CAN_CHANGE_ROLE_DEFINITIONS) =>
        {
            Verdict::Allowed
        }
        Act::RoleDefinitions => refused("canChangeRoleDefinitions"),
        Act::Send if may(Action::Send) == &Allowed::Yes => Verdict::Allowed,
        Act::Send => refused("notAllowed"),
        Act::Join => {
            let device = MimiUri::parse(&device(actor)).unwrap();
            let user = user_of_device(&device).unwrap();
            let preauthorized =
                preauth.and_then(|p| Claims::of(&ClientIdentity { device, user }).first_role(p));
            let open = table
                .iter()
                .any(|r| r.action == Action::JoinByItself && r.allowed == Allowed::Yes);
            let as_preauthorized = preauthorized.is_some_and(|role| {
                cell(table, role, Action::JoinByItself).unwrap().allowed != Allowed::No
            });
            if open || as_preauthorized {
                Verdict::Allowed
            } else {
                refused("notAuthorized")
            }
        }
    }
}

/// Carries out `act` as `client`; the error's text on refusal.
async fn run(client: &mut Client, room: &str, step: usize, act: Act) -> Result<(), String> {
    let outcome = match act {
        Act::Add(target, role) => client.add_user(room, &user(target), role).await,
        Act::Remove(target) => client.remove_user(room, &user(target)).await,
        Act::SetRole(target, role) => client.set_role(room, &user(target), role).await,
        Act::Meta(field) => {
            let mut metadata = client.device.room_metadata(room).unwrap().unwrap();
            let text = format!("step {step}");
            match field {
                Field::Name => metadata.room_name = UTF8String::new(text).unwrap(),
                Field::Description => {
                    metadata.room_descriptions = vec![RichDescription::plain("en", &text)]
                }
                Field::Subject => metadata.room_subject = UTF8String::new(text).unwrap(),
            }
            client.set_room_metadata(room, &metadata).await
        }
        Act::RoleDefinitions => {
            let dictionary = client.device.app_data_dictionary(room).unwrap().unwrap();
            let mut roles: RoleData =
                decode_component(dictionary.get(&ROLES_LIST).unwrap()).unwrap();
            roles.roles[0].role_description = format!("step {step}").into_bytes().into();
            let data = roles.tls_serialize_detached().unwrap();
            client.update_component(room, ROLES_LIST, data).await
        }
        Act::Send => client
            .send(room, content::text(&format!("step {step}")))
            .await
            .map(|_| ()),
        Act::Join => client.join(room).await,
    };
    outcome.map_err(|e| e.to_string())
}

/// Plays `steps` in a new room made from `template` by alice, who stays
/// in it throughout and whose view of the participant list is the one
/// the table is read against.
async fn play(template: Template, steps: &[Step]) {
    let room = format!("mimi://a.example/r/{}", template.name());
    let roles = template.roles();
    let table = capability_table(&roles);
    println!(
        "{template}: {}\n{}",
        template.description(),
        render_table(&table)
    );
    let preauth = template.preauth("a.example");

    let fed = start_federation(Backend::Sqlite).await;
    let mut clients: BTreeMap<&str, Client> = BTreeMap::new();
    for (name, provider) in CAST {
        let mut client = Client::register(&device(name), fed.connection(provider).unwrap())
            .await
            .unwrap();
        // Refused additions use up claimed KeyPackages too.
        client.publish_key_packages(4).await.unwrap();
        clients.insert(name, client);
    }
    clients
        .get_mut("alice")
        .unwrap()
        .create_room_with(
            &room,
            RoomOptions {
                roles,
                creator_role: template.creator_role(),
                base: template.base(),
                preauth: preauth.clone(),
                metadata: Some(RoomMetaData {
                    room_uri: Uri::new(&room),
                    room_name: UTF8String::new(template.name()).unwrap(),
                    ..RoomMetaData::default()
                }),
                ..RoomOptions::default()
            },
        )
        .await
        .unwrap();

    for (i, &(actor, act, allowed)) in steps.iter().enumerate() {
        let what = format!("{template} step {i}: {actor} {act:?}");
        let list = clients["alice"].device.participants(&room).unwrap();
        let predicted = predict(&table, &list, preauth.as_ref(), actor, act);
        assert_eq!(
            predicted == Verdict::Allowed,
            allowed,
            "{what}: the capability table predicts {predicted:?}"
        );
        let client = clients.get_mut(actor).unwrap();
        let outcome = run(client, &room, i, act).await;
        println!("{what}: {outcome:?}");
        match (outcome, predicted) {
            (Ok(()), Verdict::Allowed) => {}
            (Err(reason), Verdict::Refused(rule)) => {
                assert!(
                    reason.contains(&rule),
                    "{what}: refused for {reason}, not {rule}"
                )
            }
            (outcome, predicted) => {
                panic!("{what}: the hub answered {outcome:?}, the table {predicted:?}")
            }
        }
        if !allowed {
            continue;
        }
        // Everyone in the group catches up before the next step.
        let client = &clients[actor];
        let (epoch, members) = (
            client.device.epoch(&room).unwrap(),
            client.device.members(&room).unwrap(),
        );
        for (name, other) in clients.iter_mut() {
            if *name == actor || !members.contains(&device(name)) {
                continue;
            }
            until!(format!("{name} reaches epoch {epoch} after {what}"), {
                other.sync().await.unwrap();
                other.device.epoch(&room).is_ok_and(|e| e == epoch)
            });
        }
    }
    fed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cooperatively_administered_room() {
    use mimi_room::policy::templates::cooperative::*;
    use {Act::*, Field::*};
    play(
        Template::Cooperative,
        &[
            ("alice", Add("bob", ORDINARY_USER), true),
            // Ordinary users add ordinary users...
            ("bob", Add("carol", ORDINARY_USER), true),
            ("bob", Add("dave", GROUP_ADMIN), false),
            ("carol", Add("dave", ORDINARY_USER), true),
            // ...change most of the metadata, but not the description.
            ("carol", Meta(Name), true),
            ("carol", Meta(Description), false),
            ("bob", Send, true),
            // They remove ordinary users (their clients too, without
            // canKick), but ban nobody and remove no admin.
            ("bob", SetRole("dave", BANNED), false),
            ("bob", Remove("dave"), true),
            ("bob", Remove("alice"), false),
            ("alice", SetRole("carol", GROUP_ADMIN), true),
            ("carol", Meta(Description), true),
            ("carol", SetRole("bob", BANNED), true),
            ("carol", SetRole("bob", ORDINARY_USER), true),
            // Group admins do not move super admins.
            ("carol", SetRole("alice", ORDINARY_USER), false),
            // Only the (inactive) policy enforcer holds
            // canChangeRoleDefinitions here: not even super admins.
            ("alice", RoleDefinitions, false),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strictly_administered_room() {
    use mimi_room::policy::templates::strict::*;
    use {Act::*, Field::*};
    play(
        Template::Strict,
        &[
            ("alice", Add("bob", ORDINARY_USER), true),
            ("alice", Add("carol", GROUP_ADMIN), true),
            // Ordinary users talk, and that is all.
            ("bob", Add("dave", ORDINARY_USER), false),
            ("bob", Send, true),
            ("bob", Meta(Subject), false),
            ("carol", Add("dave", ORDINARY_USER), true),
            ("carol", Meta(Name), true),
            ("carol", RoleDefinitions, false),
            // Group admins make group admins, not super admins.
            ("carol", SetRole("dave", SUPER_ADMIN), false),
            ("carol", SetRole("bob", GROUP_ADMIN), true),
            ("bob", SetRole("dave", BANNED), true),
            ("carol", SetRole("alice", BANNED), false),
            ("bob", Remove("carol"), true),
            // The last group admin stays: minimum_participants_constraint 1.
            ("alice", SetRole("bob", ORDINARY_USER), false),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moderated_room() {
    use mimi_room::policy::templates::moderated::*;
    use {Act::*, Field::*};
    play(
        Template::Moderated,
        &[
            ("alice", Add("bob", MODERATOR), true),
            ("bob", Add("carol", ATTENDEE), true),
            ("bob", Add("dave", GUEST), true),
            // Attendees follow; speakers talk.
            ("carol", Send, false),
            ("bob", SetRole("carol", SPEAKER), true),
            ("carol", Send, true),
            // Speakers neither add, nor edit metadata, nor ban.
            ("carol", Add("erin", ATTENDEE), false),
            ("carol", Meta(Subject), false),
            ("carol", SetRole("dave", BANNED), false),
            // Moderators do, but the description and super admins are the
            // super admin's.
            ("bob", Meta(Subject), true),
            ("bob", Meta(Description), false),
            ("bob", SetRole("carol", SUPER_ADMIN), false),
            ("bob", SetRole("dave", BANNED), true),
            ("bob", RoleDefinitions, false),
            ("alice", RoleDefinitions, true),
            ("alice", Meta(Description), true),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_organization_administered_room() {
    use mimi_room::policy::templates::multi_org::*;
    use {Act::*, Field::*};
    play(
        Template::MultiOrganization,
        &[
            // The host organization (a.example) joins by preauthorization;
            // the others do not.
            ("dora", Join, true),
            ("carol", Join, false),
            ("alice", Add("bob", ORG_B_ADMIN), true),
            // Organization admins add their own organization's users...
            ("bob", Add("dave", ORG_B_USER), true),
            ("bob", Add("carol", ORG_C_USER), false),
            ("alice", Add("carol", ORG_C_ADMIN), true),
            ("dave", Send, true),
            // ...and ban them, but do not unban, nor ban other
            // organizations' users.
            ("bob", SetRole("dave", BANNED), true),
            ("bob", SetRole("dave", ORG_B_USER), false),
            ("carol", SetRole("dora", BANNED), false),
            ("alice", SetRole("dave", ORG_B_USER), true),
            // Each organization keeps an admin (minimum_participants 1).
            ("alice", SetRole("bob", ORG_B_USER), false),
            // Metadata and policy are the super admin's.
            ("dora", Meta(Name), false),
            ("bob", RoleDefinitions, false),
            ("alice", RoleDefinitions, true),
        ],
    )
    .await;
}
