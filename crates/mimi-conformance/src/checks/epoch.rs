//! One commit per epoch (-06 §5.3, RFC 9420 §14), through the only way
//! -06 gives a provider to become a member of a room it does not host:
//! fetch the GroupInfo (§5.6) and join by external commit.
//!
//! Two tester devices of the fixture's requester fetch the GroupInfo of
//! the same epoch and each build an external commit on it. The hub must
//! accept the first and answer the second `wrongEpoch` with the new
//! epoch; its GroupInfo afterwards is of that epoch.

use mimi_protocol::endpoints::{GroupInfo, Update};
use mimi_protocol::msgs::{
    GroupInfoOption, GroupInfoRatchetTreeTbe, GroupInfoResponse, GroupInfoResponseBody,
    HandshakeBody, HandshakeBundle, RatchetTreeOption, UpdateRequest, UpdateResult,
    UpdateRoomResponse,
};
use mimi_protocol::{MimiUri, decode_exact, encode};
use openmls::messages::group_info::VerifiableGroupInfo;
use openmls::prelude::RatchetTreeIn;

use super::Check;
use crate::Context;
use crate::mls::TesterClient;
use crate::report::CheckResult;
use crate::wire::Request;

const GROUP_INFO: Check = Check::must(
    "groupInfo.success",
    "§5.6",
    "groupInfo for a participant's new client: success, signed by hub_sender, decrypting to the room's GroupInfo",
);
const ONE_COMMIT: Check = Check::must(
    "update.one-commit-per-epoch",
    "§5.3",
    "of two commits for the same epoch the hub accepts one and answers the other wrongEpoch",
);
const NEW_EPOCH: Check = Check::should(
    "groupInfo.new-epoch",
    "§5.6",
    "after the accepted commit the hub's GroupInfo is of the new epoch",
);

/// A GroupInfo the hub handed out, opened.
struct Fetched {
    epoch: u64,
    info: VerifiableGroupInfo,
    tree: Option<RatchetTreeIn>,
    pending: usize,
}

/// groupInfo (-06 §5.6) as `client`: verified and decrypted.
async fn fetch(ctx: &Context, client: &TesterClient, room: &MimiUri) -> Result<Fetched, String> {
    let url = ctx.url::<GroupInfo>(room)?;
    let (request, private_key) = client.group_info_request().map_err(|e| e.to_string())?;
    let body = encode(&request).map_err(|e| format!("encoding: {e}"))?;
    let answer = ctx.wire.send(&Request::post(url, body)).await;
    if !answer.is(200) {
        return Err(answer.describe());
    }
    let response: GroupInfoResponse = decode_exact(&answer.body)
        .map_err(|e| format!("HTTP 200, not a GroupInfoResponse: {e}"))?;
    let success = match &response.body {
        GroupInfoResponseBody::Success(s) => s,
        other => return Err(format!("HTTP 200, status {:?}", other.status())),
    };
    if response.room_id.as_slice() != room.as_str().as_bytes() {
        return Err("GroupInfoResponse names another room".into());
    }
    response
        .verify(client.crypto())
        .map_err(|e| format!("hub_sender signature does not verify: {e}"))?;
    let tbe = GroupInfoRatchetTreeTbe::open(
        client.crypto(),
        success.cipher_suite,
        &private_key,
        room.as_str().as_bytes(),
        &success.encrypted_groupinfo_and_tree,
    )
    .map_err(|e| format!("encrypted_groupinfo_and_tree does not open: {e}"))?;
    Ok(Fetched {
        epoch: tbe.group_info.group_context().epoch().as_u64(),
        tree: match tbe.ratchet_tree_option {
            RatchetTreeOption::Full(tree) => Some(tree),
            _ => None,
        },
        info: tbe.group_info,
        pending: tbe.pending_proposals.len(),
    })
}

/// Sends an external commit with its new GroupInfo to the hub.
async fn commit(
    ctx: &Context,
    client: &TesterClient,
    room: &MimiUri,
    fetched: &Fetched,
) -> Result<UpdateRoomResponse, String> {
    let tree = fetched
        .tree
        .clone()
        .ok_or("the hub did not include the ratchet tree")?;
    let (commit, group_info) = client
        .external_commit(tree, fetched.info.clone())
        .map_err(|e| e.to_string())?;
    let request = UpdateRequest {
        bundle: HandshakeBundle {
            proposal_or_commit: commit,
            body: HandshakeBody::Commit {
                welcome: None,
                group_info_option: GroupInfoOption::Full(group_info),
                ratchet_tree_option: RatchetTreeOption::DistributionService,
            },
        },
    };
    let url = ctx.url::<Update>(room)?;
    let body = encode(&request).map_err(|e| format!("encoding: {e}"))?;
    let answer = ctx.wire.send(&Request::post(url, body)).await;
    if !answer.is(200) {
        return Err(answer.describe());
    }
    decode_exact(&answer.body).map_err(|e| format!("HTTP 200, not an UpdateRoomResponse: {e}"))
}

fn describe(resp: &UpdateRoomResponse) -> String {
    let detail = match &resp.result {
        UpdateResult::Success { .. } => String::new(),
        UpdateResult::WrongEpoch { current_epoch } => format!(" currentEpoch {current_epoch}"),
        UpdateResult::NotAllowed => String::new(),
        UpdateResult::InvalidProposal { invalid_proposals } => {
            format!(" ({} proposals)", invalid_proposals.len())
        }
    };
    let reason = resp.error_description.0.trim();
    format!(
        "{:?}{detail}{}",
        resp.response_code(),
        if reason.is_empty() {
            String::new()
        } else {
            format!(" {reason:?}")
        }
    )
}

pub(crate) async fn run(ctx: &Context) -> Vec<CheckResult> {
    let Some(room) = &ctx.fixtures.room else {
        return vec![
            GROUP_INFO.needs("--room"),
            ONE_COMMIT.needs("--room"),
            NEW_EPOCH.needs("--room"),
        ];
    };
    let user_id = ctx.requester.id_decoded().unwrap_or_default().into_owned();
    let second_device = format!(
        "mimi://{}/d/{user_id}/conformance-{}-b",
        ctx.tester_domain, ctx.run_id
    );
    let second = match TesterClient::new(&second_device) {
        Ok(c) => c,
        Err(e) => return vec![GROUP_INFO.fail(e.to_string())],
    };
    let first = &ctx.client;
    let failed = |device: &str, e: String| {
        vec![
            GROUP_INFO.fail(format!("{} as {device}: {e}", room.as_str())),
            ONE_COMMIT.skip("no GroupInfo"),
            NEW_EPOCH.skip("no GroupInfo"),
        ]
    };
    let (a, b) = match (
        fetch(ctx, first, room).await,
        fetch(ctx, &second, room).await,
    ) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) => return failed(&first.device, e),
        (_, Err(e)) => return failed(&second.device, e),
    };
    let mut out = vec![GROUP_INFO.pass(format!(
        "{} as {} and {}: success, epoch {}, {}, {} pending proposal(s)",
        room.as_str(),
        first.device,
        second.device,
        a.epoch,
        if a.tree.is_some() {
            "full ratchet tree"
        } else {
            "no ratchet tree"
        },
        a.pending
    ))];
    if a.epoch != b.epoch {
        out.push(ONE_COMMIT.skip(format!(
            "the room moved from epoch {} to {} between two groupInfo requests; run again",
            a.epoch, b.epoch
        )));
        out.push(NEW_EPOCH.skip("no commit"));
        return out;
    }
    let epoch = a.epoch;
    let first_answer = commit(ctx, first, room, &a).await;
    let second_answer = commit(ctx, &second, room, &b).await;
    let text = |r: &Result<UpdateRoomResponse, String>| match r {
        Ok(resp) => describe(resp),
        Err(e) => e.clone(),
    };
    let evidence = format!(
        "external commits on epoch {epoch}: {} → {}; {} → {}",
        first.device,
        text(&first_answer),
        second.device,
        text(&second_answer)
    );
    let accepted = matches!(
        &first_answer,
        Ok(UpdateRoomResponse {
            result: UpdateResult::Success { .. },
            ..
        })
    );
    let refused = matches!(
        &second_answer,
        Ok(UpdateRoomResponse { result: UpdateResult::WrongEpoch { current_epoch }, .. })
            if *current_epoch == epoch + 1
    );
    out.push(ONE_COMMIT.verdict(accepted && refused, evidence));
    if !accepted {
        out.push(NEW_EPOCH.skip("no commit was accepted"));
        return out;
    }
    out.push(match fetch(ctx, first, room).await {
        Ok(after) => NEW_EPOCH.verdict(
            after.epoch == epoch + 1,
            format!("epoch {epoch} → GroupInfo of epoch {}", after.epoch),
        ),
        Err(e) => NEW_EPOCH.fail(e),
    });
    out
}
