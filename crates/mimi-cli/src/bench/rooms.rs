//! Benchmark rooms built by real openmls clients: one creator at the hub
//! adds every other client in one commit; a few members at the followers
//! join from the Welcome so they can send. Setup only, never timed.

use anyhow::{Context, ensure};
use mimi_protocol::MimiUri;
use mimi_room::policy::default_role::MEMBER;
use mimi_server::client_api::auth::AuthenticatedDevice;
use mimi_server::hub;
use mimi_testkit::clients::{TestClient, add_participant, participant_update, wire};
use openmls::messages::group_info::VerifiableGroupInfo;
use openmls::prelude::{MlsMessageIn, RatchetTreeIn, Welcome};
use tls_codec::Serialize as _;

use super::net::{DOMAINS, HUB, Net};

/// A group of `size` clients spread round-robin over a, b and c.
pub struct Group {
    /// Client 0, at the hub's domain.
    pub creator: TestClient,
    /// Members at b.example and c.example holding group state.
    pub senders: Vec<TestClient>,
    /// Every member device URI.
    pub devices: Vec<String>,
    pub tree: RatchetTreeIn,
    pub group_info: VerifiableGroupInfo,
}

/// The device of member `i` of a benchmark room.
pub fn device(tag: &str, i: usize) -> String {
    format!("mimi://{}/d/{tag}{i}/dev", DOMAINS[i % DOMAINS.len()])
}

/// Builds a group of `size` members (at least 3); `senders` members at
/// the followers join it from the Welcome. `hub` is the hub's external
/// sender, which rooms a hub hosts must list (-06 §7.4); `None` only for
/// groups that never reach a server.
pub fn build_group(
    tag: &str,
    size: usize,
    senders: usize,
    hub: Option<openmls::prelude::ExternalSender>,
) -> anyhow::Result<Group> {
    ensure!(size >= 3, "a benchmark room needs at least 3 clients");
    let devices: Vec<String> = (0..size).map(|i| device(tag, i)).collect();
    let users: Vec<String> = devices
        .iter()
        .map(|d| mimi_testkit::clients::user_of(d))
        .collect();
    let mut creator = TestClient::new(&devices[0]);
    creator.hub = hub;
    let others: Vec<(&str, u32)> = users[1..].iter().map(|u| (u.as_str(), MEMBER)).collect();
    creator.create_default_room(&others);
    // Followers' members 1 and 2 (b, c), then 4, 5, ... hold state to send.
    let sender_ids: Vec<usize> = (1..size).filter(|i| i % 3 != 0).take(senders).collect();
    let mut members: Vec<TestClient> = Vec::with_capacity(sender_ids.len());
    let mut key_packages = Vec::with_capacity(size - 1);
    for (i, device) in devices.iter().enumerate().skip(1) {
        let client = TestClient::new(device);
        key_packages.push(client.key_package());
        if sender_ids.contains(&i) {
            members.push(client);
        }
    }
    let (_commit, welcome) = creator.commit(Vec::new(), key_packages);
    creator.merge_pending();
    let welcome = welcome.context("an add commit has a Welcome")?;
    let (tree, group_info) = creator.group_info();
    for member in &mut members {
        member.join(welcome.clone(), tree.clone());
    }
    Ok(Group {
        creator,
        senders: members,
        devices,
        tree,
        group_info,
    })
}

/// The external sender of the benchmark hub for test clients' suite.
pub fn hub_sender(net: &Net) -> Option<openmls::prelude::ExternalSender> {
    net.server(HUB)
        .state
        .hub
        .external_sender(mimi_testkit::clients::CIPHERSUITE)
}

/// Hosts the group at the hub as room `mimi://a.example/r/<name>` (the
/// creator's request, in process) and subscribes every member device at
/// its own provider, so each delivery reaches every member's queue.
pub async fn host(net: &Net, group: &Group, name: &str) -> anyhow::Result<String> {
    let room_id = format!("mimi://{HUB}/r/{name}");
    let creator = AuthenticatedDevice {
        user: MimiUri::parse(&group.creator.user())?,
        device: MimiUri::parse(&group.creator.device)?,
    };
    // MLSMessage(GroupInfo): version mls10 (1), wire format group_info (4).
    let mut group_info = vec![0, 1, 0, 4];
    group_info.extend(group.group_info.tls_serialize_detached()?);
    let ratchet_tree = group.tree.tls_serialize_detached()?;
    hub::create_room(
        &net.server(HUB).state,
        &creator,
        &room_id,
        &group_info,
        &ratchet_tree,
    )
    .await
    .map_err(|e| anyhow::anyhow!("creating {room_id}: {e:?}"))?;
    for device in &group.devices {
        let domain = MimiUri::parse(device)?.domain().to_owned();
        net.server(&domain)
            .state
            .store
            .subscribe(&room_id, device)
            .await?;
    }
    Ok(room_id)
}

/// An application message (PrivateMessage) from a member.
pub fn app_message(client: &mut TestClient, text: &[u8]) -> anyhow::Result<MlsMessageIn> {
    let provider = &client.provider;
    let signer = &client.signer;
    let message = client
        .group
        .as_mut()
        .context("not in a group")?
        .create_message(provider, signer, text)?;
    Ok(wire(message))
}

/// A commit by `client` adding one new user's client, with the new
/// epoch's GroupInfo (as the hub requires, -06 §5.6), merged locally so
/// the next one can follow. Returns the commit, its Welcome and GroupInfo.
pub fn add_one(
    client: &mut TestClient,
    new_device: &str,
) -> anyhow::Result<(MlsMessageIn, Welcome, VerifiableGroupInfo)> {
    let newcomer = TestClient::new(new_device);
    let proposal = participant_update(&add_participant(&newcomer.user(), MEMBER));
    let (commit, welcome, group_info) =
        client.commit_with_group_info(vec![proposal], vec![newcomer.key_package()]);
    client.merge_pending();
    Ok((commit, welcome.context("no Welcome")?, group_info))
}
