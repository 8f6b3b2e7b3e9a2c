//! Malformed bodies for every POST endpoint of the endpoint table (-06 §5):
//! empty, truncated by one octet and followed by one extra octet. A
//! TLS-PL body is exactly its struct (RFC 8446 §3), so none of them is a
//! request the target may act on; -06 names no status, so any 4xx passes
//! (400 expected) and the status of each is the evidence.

use mimi_protocol::endpoints::{
    Endpoint, GroupInfo, IdentifierQuery, KeyMaterial, Method, Notify, ReportAbuse, RequestConsent,
    SubmitMessage, Update, UpdateConsent,
};
use mimi_protocol::msgs::{
    AbuseReport, AbuseType, ConsentEntry, ConsentOperation, FanoutBody, FanoutMessage,
    GroupInfoOption, HandshakeBody, HandshakeBundle, IdentifierRequest, QueryElement,
    RatchetTreeOption, SearchType, SubmitMessageRequest, UpdateRequest,
};
use mimi_protocol::{IdentifierUri, MimiUri, Protocol, encode};
use openmls::prelude::AppDataDictionary;
use tls_codec::VLBytes;

use super::Check;
use crate::Context;
use crate::report::CheckResult;
use crate::wire::Request;

const CHECK_IDS: [(Endpoint, &str); 9] = [
    (Endpoint::KeyMaterial, "bodies.keyMaterial"),
    (Endpoint::Update, "bodies.update"),
    (Endpoint::Notify, "bodies.notify"),
    (Endpoint::SubmitMessage, "bodies.submitMessage"),
    (Endpoint::GroupInfo, "bodies.groupInfo"),
    (Endpoint::RequestConsent, "bodies.requestConsent"),
    (Endpoint::UpdateConsent, "bodies.updateConsent"),
    (Endpoint::IdentifierQuery, "bodies.identifierQuery"),
    (Endpoint::ReportAbuse, "bodies.reportAbuse"),
];

fn check(endpoint: Endpoint) -> Check {
    let id = CHECK_IDS
        .iter()
        .find(|(e, _)| *e == endpoint)
        .map(|(_, id)| *id)
        .unwrap_or("bodies.other");
    Check::must(
        id,
        "§5",
        "an empty, truncated or over-long TLS-PL body is refused (400 expected)",
    )
}

pub(crate) async fn run(ctx: &Context) -> Vec<CheckResult> {
    let mut out = Vec::new();
    for endpoint in Endpoint::ALL {
        // proxyDownload is a GET without a body (-06 §5.10).
        if endpoint.method() != Method::Post {
            continue;
        }
        let check = check(endpoint);
        let (url, body) = match valid_request(ctx, endpoint) {
            Ok(request) => request,
            Err(e) => {
                out.push(check.fail(e));
                continue;
            }
        };
        let mut truncated = body.clone();
        truncated.pop();
        let mut trailing = body.clone();
        trailing.push(0);
        let mut evidence = Vec::new();
        let mut ok = true;
        for (label, bytes) in [
            ("empty", Vec::new()),
            ("truncated", truncated),
            ("trailing octet", trailing),
        ] {
            let answer = ctx.wire.send(&Request::post(url.clone(), bytes)).await;
            ok &= answer.is_client_error();
            evidence.push(format!("{label} → {}", answer.describe()));
        }
        out.push(check.verdict(ok, format!("POST {url}: {}", evidence.join(", "))));
    }
    out
}

fn uri(s: &str) -> Result<MimiUri, String> {
    MimiUri::parse(s).map_err(|e| format!("{s}: {e}"))
}

/// The URL and a well-formed body of `endpoint`, addressed to the
/// fixtures where given (so that the refusal is about the body, not an
/// unknown user or room) and to made-up names otherwise.
fn valid_request(ctx: &Context, endpoint: Endpoint) -> Result<(String, Vec<u8>), String> {
    let enc = |r: Result<Vec<u8>, tls_codec::Error>| r.map_err(|e| format!("encoding: {e}"));
    let user = match &ctx.fixtures.user {
        Some(u) => u.clone(),
        None => uri(&ctx.unknown_target_user())?,
    };
    let room = match &ctx.fixtures.room {
        Some(r) => r.clone(),
        None => uri(&format!(
            "mimi://{}/r/conformance-{}",
            ctx.target_domain, ctx.run_id
        ))?,
    };
    let requester = ctx.requester.as_str();
    Ok(match endpoint {
        Endpoint::KeyMaterial => {
            let request = ctx
                .client
                .key_material_request(requester, user.as_str(), "")
                .map_err(|e| e.to_string())?;
            (ctx.url::<KeyMaterial>(&user)?, enc(encode(&request))?)
        }
        Endpoint::Update => {
            let request = UpdateRequest {
                bundle: HandshakeBundle {
                    proposal_or_commit: ctx.samples.commit.clone(),
                    body: HandshakeBody::Commit {
                        welcome: None,
                        group_info_option: GroupInfoOption::Full(ctx.samples.group_info.clone()),
                        ratchet_tree_option: RatchetTreeOption::DistributionService,
                    },
                },
            };
            (ctx.url::<Update>(&room)?, enc(encode(&request))?)
        }
        Endpoint::Notify => {
            // The tester is the hub of rooms of its own domain (-06 §5.5).
            let own_room = uri(&format!(
                "mimi://{}/r/conformance-{}",
                ctx.tester_domain, ctx.run_id
            ))?;
            let message = FanoutMessage {
                timestamp: 1,
                message: ctx.samples.application.clone(),
                body: FanoutBody::Application { frank: None },
            };
            (ctx.url::<Notify>(&own_room)?, enc(encode(&message))?)
        }
        Endpoint::SubmitMessage => {
            let request = SubmitMessageRequest {
                protocol: Protocol::Mls10,
                app_message: ctx.samples.application.clone(),
                sending_uri: IdentifierUri::new(requester),
            };
            (ctx.url::<SubmitMessage>(&room)?, enc(encode(&request))?)
        }
        Endpoint::GroupInfo => {
            let (request, _) = ctx.client.group_info_request().map_err(|e| e.to_string())?;
            (ctx.url::<GroupInfo>(&room)?, enc(encode(&request))?)
        }
        Endpoint::RequestConsent => {
            let entry = consent_entry(ConsentOperation::Request, requester, user.as_str());
            (ctx.url::<RequestConsent>(&user)?, enc(encode(&entry))?)
        }
        Endpoint::UpdateConsent => {
            // Sent to the requester's provider: the requester is the
            // target's user, the granting user the tester's.
            let entry = consent_entry(ConsentOperation::Revoke, user.as_str(), requester);
            (ctx.url::<UpdateConsent>(&user)?, enc(encode(&entry))?)
        }
        Endpoint::IdentifierQuery => {
            let request = IdentifierRequest {
                query_elements: vec![QueryElement {
                    search_type: SearchType::Nick,
                    search_value: VLBytes::new(format!("conformance-{}", ctx.run_id).into_bytes()),
                }],
                id_request_extensions: AppDataDictionary::new(),
            };
            (
                ctx.url::<IdentifierQuery>(ctx.target_domain.as_str())?,
                enc(encode(&request))?,
            )
        }
        Endpoint::ReportAbuse => {
            let report = AbuseReport {
                reporting_user: IdentifierUri::new(requester),
                alleged_abuser_uri: IdentifierUri::new(user.as_str()),
                reason_code: AbuseType { code: 0 },
                note: VLBytes::new(b"mimi conformance".to_vec()),
                messages: Vec::new(),
                abuse_extensions: AppDataDictionary::new(),
            };
            (ctx.url::<ReportAbuse>(&room)?, enc(encode(&report))?)
        }
        Endpoint::ProxyDownload => return Err("proxyDownload has no request body".into()),
    })
}

pub(crate) fn consent_entry(op: ConsentOperation, requester: &str, target: &str) -> ConsentEntry {
    ConsentEntry {
        consent_operation: op,
        requester_uri: IdentifierUri::new(requester),
        target_uri: IdentifierUri::new(target),
        room_id: None,
        client_key_packages: Vec::new(),
        consent_extensions: AppDataDictionary::new(),
    }
}
