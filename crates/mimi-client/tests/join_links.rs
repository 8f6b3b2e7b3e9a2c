//! Joining by a join link against the hub's checks of the external commit
//! (room-policy §Join Link policies component, docs/divergences.md C27):
//! the role must be the link's, a single-use link must be used up, and a
//! joiner without a link is not let in.

mod common;

use common::{ALICE, Net, ROOM};
use mimi_client::RoomOptions;
use mimi_protocol::components::{JoinLinkPolicy, Uri};
use mimi_room::policy::default_role::{ADMIN, MEMBER};
use mimi_room::policy::join_links::{self, LinkGrant};
use mimi_room::{PolicyViolation, UpdateRejection};

fn room_with_links(multiuser: bool) -> Net {
    let options = RoomOptions::default().with_join_links(JoinLinkPolicy {
        on_request: false,
        join_link: Uri::default(),
        multiuser,
        expiration: 0,
    });
    Net::create_with(ALICE, None, options)
}

fn add_link(net: &mut Net, role: u32) -> String {
    let link = net
        .device(ALICE)
        .new_join_link(ROOM, role, None, 0)
        .unwrap();
    let request = net.device(ALICE).add_join_link(ROOM, &link).unwrap();
    net.update(ALICE, request).unwrap();
    link
}

/// A new device of Bob's joins by external commit with `role`, naming
/// `link`.
fn join(
    net: &mut Net,
    device: &str,
    role: u32,
    link: Option<&LinkGrant>,
) -> Result<(), UpdateRejection> {
    net.new_device(device);
    let (info, tree) = (net.group_info.clone(), net.ratchet_tree.clone());
    let request = net
        .device(device)
        .join_by_external_commit_as(ROOM, info, tree, Some(role), link)
        .unwrap();
    net.update(device, request).map(|_| ())
}

#[test]
fn the_hub_holds_a_join_to_the_link_it_names() {
    let mut net = room_with_links(false);
    let link = add_link(&mut net, MEMBER);
    assert_eq!(
        net.device(ALICE).join_links(ROOM).unwrap(),
        vec![link.clone()]
    );
    let state = net.hub.policy_state().unwrap();
    let grant = join_links::grant(&state, link.as_bytes(), Some(0)).unwrap();
    assert!(grant.single_use);

    // Another role than the link's.
    let refused = join(&mut net, "mimi://b.example/d/bob/one", ADMIN, Some(&grant));
    assert!(
        matches!(
            refused,
            Err(UpdateRejection::Proposal {
                violation: PolicyViolation::SelfJoin { role: ADMIN, .. },
                ..
            })
        ),
        "{refused:?}"
    );
    // No link named at all.
    let refused = join(&mut net, "mimi://b.example/d/bob/two", MEMBER, None);
    assert!(
        matches!(
            refused,
            Err(UpdateRejection::Proposal {
                violation: PolicyViolation::SelfJoin { .. },
                ..
            })
        ),
        "{refused:?}"
    );
    // A single-use link the commit does not use up.
    let keep = LinkGrant {
        single_use: false,
        ..grant.clone()
    };
    let refused = join(
        &mut net,
        "mimi://b.example/d/bob/three",
        MEMBER,
        Some(&keep),
    );
    assert_eq!(
        refused,
        Err(UpdateRejection::RoleConstraint(
            PolicyViolation::SingleUseLinkKept
        ))
    );

    // The join as the link says: Bob is a member, the link is gone for
    // the hub and for Alice.
    join(
        &mut net,
        "mimi://b.example/d/bob/four",
        MEMBER,
        Some(&grant),
    )
    .unwrap();
    let state = net.hub.policy_state().unwrap();
    assert_eq!(state.role_of("mimi://b.example/u/bob"), MEMBER);
    assert!(state.join_links.join_links.is_empty());
    assert!(net.device(ALICE).join_links(ROOM).unwrap().is_empty());
}

#[test]
fn a_multiuser_link_stays_for_every_joiner() {
    let mut net = room_with_links(true);
    let link = add_link(&mut net, MEMBER);
    let state = net.hub.policy_state().unwrap();
    let grant = join_links::grant(&state, link.as_bytes(), Some(0)).unwrap();
    assert!(!grant.single_use);
    join(
        &mut net,
        "mimi://b.example/d/bob/phone",
        MEMBER,
        Some(&grant),
    )
    .unwrap();
    join(
        &mut net,
        "mimi://c.example/d/cathy/tablet",
        MEMBER,
        Some(&grant),
    )
    .unwrap();
    assert_eq!(net.device(ALICE).join_links(ROOM).unwrap(), vec![link]);
}
