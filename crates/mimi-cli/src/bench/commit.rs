//! (b) Hub time to validate and accept a commit adding one member
//! (-06 §5.3).
//!
//! In process, per group size: the three steps the hub runs for every
//! commit — restore the room's openmls `PublicGroup` from its stored bytes,
//! validate and authorize the commit ([`HubRoom::handle_commit`]), and
//! serialise the new state — timed separately, so the growth with group
//! size can be attributed. Through the server, for smaller sizes: a
//! follower's `POST /v1/update/{roomId}` over mTLS with the commit, its
//! Welcome and GroupInfo, until the hub answers (store transaction and
//! outbox rows included).

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use mimi_protocol::msgs::{
    GroupInfoOption, HandshakeBody, HandshakeBundle, RatchetTreeOption, UpdateRequest,
    UpdateResult, UpdateRoomResponse,
};
use mimi_room::HubRoom;
use openmls_rust_crypto::RustCrypto;

use super::net::{self, HUB, Net, room_path};
use super::rooms;
use super::stats::{Summary, line, section};

pub struct InProcess {
    pub size: usize,
    pub state_bytes: usize,
    pub load: Summary,
    pub validate: Summary,
    pub store: Summary,
    pub total: Summary,
}

/// Times the hub's commit handling for a group of `size` members.
pub fn in_process(size: usize, iterations: usize) -> anyhow::Result<InProcess> {
    let setup = Instant::now();
    let mut group = rooms::build_group(&format!("c{size}m"), size, 0, None)?;
    let crypto = RustCrypto::default();
    let hub = HubRoom::create(&crypto, group.tree.clone(), group.group_info.clone())?;
    let bytes = hub.to_bytes()?;
    let (commit, _welcome, _info) = rooms::add_one(
        &mut group.creator,
        &format!("mimi://c.example/d/new{size}/dev"),
    )?;
    let setup = setup.elapsed();
    let (mut load, mut validate, mut store, mut total) = (vec![], vec![], vec![], vec![]);
    for _ in 0..iterations.max(1) {
        let t0 = Instant::now();
        let mut hub = HubRoom::from_bytes(&bytes)?;
        let t1 = Instant::now();
        let accepted = hub
            .handle_commit(&crypto, commit.clone())
            .map_err(|e| anyhow::anyhow!("commit refused: {e}"))?;
        let t2 = Instant::now();
        let new_state = hub.to_bytes()?;
        let t3 = Instant::now();
        std::hint::black_box((accepted, new_state));
        load.push(t1 - t0);
        validate.push(t2 - t1);
        store.push(t3 - t2);
        total.push(t3 - t0);
    }
    let s = |v: &[Duration]| Summary::of(v).context("no samples");
    let result = InProcess {
        size,
        state_bytes: bytes.len(),
        load: s(&load)?,
        validate: s(&validate)?,
        store: s(&store)?,
        total: s(&total)?,
    };
    line(&format!(
        "{size} members (state {} KiB, setup {:.1} s): total {}",
        result.state_bytes / 1024,
        setup.as_secs_f64(),
        result.total.ms()
    ));
    line(&format!(
        "    restore PublicGroup {}; validate+authorize {}; serialise {}",
        short(&result.load),
        short(&result.validate),
        short(&result.store)
    ));
    Ok(result)
}

fn short(s: &Summary) -> String {
    format!(
        "{}/{} ms",
        super::stats::ms(s.median),
        super::stats::ms(s.p99)
    )
}

pub struct ThroughServer {
    pub size: usize,
    pub round_trip: Summary,
}

/// `commits` sequential commits, each adding one client, sent by a member
/// at b.example through `/v1/update` on the hub.
pub async fn through_server(
    net: &Net,
    size: usize,
    commits: usize,
) -> anyhow::Result<ThroughServer> {
    let tag = format!("u{size}m");
    let mut group = rooms::build_group(&tag, size, 1, rooms::hub_sender(net))?;
    let room = rooms::host(net, &group, &tag).await?;
    let committer = &mut group.senders[0];
    let mut requests = Vec::with_capacity(commits);
    for k in 0..commits {
        let (commit, welcome, group_info) =
            rooms::add_one(committer, &format!("mimi://c.example/d/{tag}new{k}/dev"))?;
        let request = UpdateRequest {
            bundle: HandshakeBundle {
                proposal_or_commit: commit,
                body: HandshakeBody::Commit {
                    welcome: Some(welcome),
                    group_info_option: GroupInfoOption::Full(group_info),
                    ratchet_tree_option: RatchetTreeOption::DistributionService,
                },
            },
        };
        requests.push(mimi_protocol::encode(&request)?);
    }
    let client = net.client_as("b.example")?;
    let url = format!("{}/v1/update/{}", net.url(HUB), room_path(&room));
    let mut rtts = Vec::with_capacity(commits);
    for body in requests {
        let t0 = Instant::now();
        let (status, body) = net::post(&client, "b.example", &url, body).await?;
        rtts.push(t0.elapsed());
        let response: UpdateRoomResponse = mimi_protocol::decode_exact(&body)
            .with_context(|| format!("update answered {status}"))?;
        if !matches!(response.result, UpdateResult::Success { .. }) {
            bail!("commit refused: {response:?}");
        }
    }
    let round_trip = Summary::of(&rtts).context("no commits")?;
    line(&format!(
        "{size} members, through /v1/update over mTLS ({}): {}",
        net.store_name(),
        round_trip.ms()
    ));
    Ok(ThroughServer { size, round_trip })
}

/// Runs both measurements.
pub async fn run(
    net: &Net,
    sizes: &[usize],
    server_sizes: &[usize],
    iterations: usize,
    commits: usize,
) -> anyhow::Result<(Vec<InProcess>, Vec<ThroughServer>)> {
    section("(b) Hub commit validation, one Add per commit, in process (median/p99)");
    let mut pure = Vec::new();
    for &size in sizes {
        pure.push(in_process(size, iterations)?);
    }
    if let [first, .., last] = pure.as_slice() {
        let growth = last.total.median.as_secs_f64() / first.total.median.as_secs_f64();
        line(&format!(
            "growth {}→{} members: ×{growth:.1} time for ×{:.0} members",
            first.size,
            last.size,
            last.size as f64 / first.size as f64
        ));
    }
    section(&format!(
        "(b) Commit through the hub server ({})",
        net.store_name()
    ));
    let mut served = Vec::new();
    for &size in server_sizes {
        served.push(through_server(net, size, commits).await?);
    }
    Ok((pure, served))
}
