//! Fetch key material (-06 §5.2): the protocol code, unknown users,
//! single-use KeyPackages, consent.

use std::collections::BTreeSet;

use mimi_protocol::endpoints::KeyMaterial;
use mimi_protocol::msgs::{ClientMaterial, KeyMaterialResponse, KeyMaterialUserCode};
use mimi_protocol::{IdentifierUri, MimiUri, decode_exact};
use tls_codec::Serialize as _;

use super::Check;
use crate::Context;
use crate::mls::{TesterClient, key_package_ref};
use crate::report::CheckResult;
use crate::wire::{Exchange, Request};

const PROTOCOL: Check = Check::should(
    "keyMaterial.incompatible-protocol",
    "§5.2",
    "a request for an unknown protocol gets incompatibleProtocol and no clients",
);
const UNKNOWN_USER: Check = Check::must(
    "keyMaterial.unknown-user",
    "§5.2",
    "a user the target does not have gets userUnknown (or noConsent/userDeleted) and no clients",
);
const SINGLE_USE: Check = Check::must(
    "keyMaterial.single-use",
    "§5.2",
    "keying material provided in one response is not provided in any other; every KeyPackage verifies and is unexpired",
);
const CONSENT: Check = Check::must(
    "keyMaterial.consent",
    "§5.2, §5.7",
    "a requester without consent gets noConsent or noConsentForThisRoom and no clients",
);

/// A `Protocol` value -06 does not define (it defines only mls10(1)).
const UNKNOWN_PROTOCOL: u8 = 0x7f;

pub(crate) async fn run(ctx: &Context) -> Vec<CheckResult> {
    vec![
        incompatible_protocol(ctx).await,
        unknown_user(ctx).await,
        single_use(ctx).await,
        consent(ctx).await,
    ]
}

/// What a key material answer said, for evidence.
fn summary(resp: &KeyMaterialResponse) -> String {
    format!(
        "userStatus {:?}, {} client(s) [{}]",
        resp.user_status,
        resp.clients.len(),
        resp.clients
            .iter()
            .map(|c| format!("{:?}", c.client_status()))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

fn decode(answer: &Exchange) -> Result<KeyMaterialResponse, String> {
    if !answer.is(200) {
        return Err(answer.describe());
    }
    decode_exact::<KeyMaterialResponse>(&answer.body)
        .map_err(|e| format!("HTTP 200, not a KeyMaterialResponse: {e}"))
}

/// Sends a signed request from `requester` for `target`'s KeyPackages.
async fn fetch(
    ctx: &Context,
    client: &TesterClient,
    requester: &str,
    target: &MimiUri,
) -> Result<Exchange, String> {
    let url = ctx.url::<KeyMaterial>(target)?;
    let request = client
        .key_material_request(requester, target.as_str(), "")
        .map_err(|e| e.to_string())?;
    let body = mimi_protocol::encode(&request).map_err(|e| e.to_string())?;
    Ok(ctx.wire.send(&Request::post(url, body)).await)
}

async fn incompatible_protocol(ctx: &Context) -> CheckResult {
    let target = match ctx.fixtures.user.clone() {
        Some(u) => u,
        None => match MimiUri::parse(&ctx.unknown_target_user()) {
            Ok(u) => u,
            Err(e) => return PROTOCOL.fail(e.to_string()),
        },
    };
    let url = match ctx.url::<KeyMaterial>(&target) {
        Ok(url) => url,
        Err(e) => return PROTOCOL.fail(e),
    };
    // The fields before `select (protocol)`, then what an unknown protocol
    // might carry: the target can read the head and nothing after it.
    let mut body = vec![UNKNOWN_PROTOCOL];
    for uri in [ctx.requester.as_str(), target.as_str(), ""] {
        if let Err(e) = IdentifierUri::new(uri).tls_serialize(&mut body) {
            return PROTOCOL.fail(format!("encoding: {e}"));
        }
    }
    body.extend_from_slice(b"\x00\x04conformance");
    let answer = ctx.wire.send(&Request::post(url, body)).await;
    let sent = format!("protocol {UNKNOWN_PROTOCOL:#04x}");
    match decode(&answer) {
        Ok(resp) => PROTOCOL.verdict(
            resp.user_status == KeyMaterialUserCode::IncompatibleProtocol
                && resp.clients.is_empty(),
            format!("{sent} → HTTP 200, {}", summary(&resp)),
        ),
        Err(e) => PROTOCOL.fail(format!("{sent} → {e}")),
    }
}

async fn unknown_user(ctx: &Context) -> CheckResult {
    let target = match MimiUri::parse(&ctx.unknown_target_user()) {
        Ok(u) => u,
        Err(e) => return UNKNOWN_USER.fail(e.to_string()),
    };
    let answer = match fetch(ctx, &ctx.client, ctx.requester.as_str(), &target).await {
        Ok(a) => a,
        Err(e) => return UNKNOWN_USER.fail(e),
    };
    match decode(&answer) {
        Ok(resp) => UNKNOWN_USER.verdict(
            matches!(
                resp.user_status,
                KeyMaterialUserCode::UserUnknown
                    | KeyMaterialUserCode::NoConsent
                    | KeyMaterialUserCode::UserDeleted
            ) && resp.clients.is_empty(),
            format!("{} → HTTP 200, {}", target.as_str(), summary(&resp)),
        ),
        Err(e) => UNKNOWN_USER.fail(format!("{} → {e}", target.as_str())),
    }
}

/// The refs of the KeyPackages in a response, or why it is not a proper
/// answer with at least one.
fn key_package_refs(ctx: &Context, resp: &KeyMaterialResponse) -> Result<Vec<String>, String> {
    if !matches!(
        resp.user_status,
        KeyMaterialUserCode::Success | KeyMaterialUserCode::PartialSuccess
    ) {
        return Err(format!(
            "expected success or partialSuccess: {}",
            summary(resp)
        ));
    }
    let mut refs = Vec::new();
    for client in &resp.clients {
        if let ClientMaterial::Success(kp) = &client.material {
            refs.push(key_package_ref(ctx.client.crypto(), kp.clone())?);
        }
    }
    if refs.is_empty() {
        return Err(format!("no KeyPackage: {}", summary(resp)));
    }
    Ok(refs)
}

async fn single_use(ctx: &Context) -> CheckResult {
    let Some(user) = &ctx.fixtures.user else {
        return SINGLE_USE.needs("--user");
    };
    let mut seen: Vec<BTreeSet<String>> = Vec::new();
    let mut evidence = Vec::new();
    for round in 1..=2 {
        let answer = match fetch(ctx, &ctx.client, ctx.requester.as_str(), user).await {
            Ok(a) => a,
            Err(e) => return SINGLE_USE.fail(e),
        };
        let refs = match decode(&answer).and_then(|resp| key_package_refs(ctx, &resp)) {
            Ok(refs) => refs,
            Err(e) => {
                evidence.push(format!("request {round}: {e}"));
                return SINGLE_USE.fail(evidence.join("; "));
            }
        };
        evidence.push(format!(
            "request {round}: KeyPackageRefs {}",
            refs.iter()
                .map(|r| &r[..16.min(r.len())])
                .collect::<Vec<_>>()
                .join(", ")
        ));
        let unique: BTreeSet<String> = refs.iter().cloned().collect();
        if unique.len() != refs.len() {
            evidence.push("a KeyPackage twice in one response".into());
            return SINGLE_USE.fail(evidence.join("; "));
        }
        seen.push(unique);
    }
    let reused: Vec<&String> = seen[0].intersection(&seen[1]).collect();
    SINGLE_USE.verdict(
        reused.is_empty(),
        format!(
            "{} as {}: {}{}",
            user.as_str(),
            ctx.requester.as_str(),
            evidence.join("; "),
            if reused.is_empty() {
                String::new()
            } else {
                format!("; {} provided twice", reused.len())
            }
        ),
    )
}

async fn consent(ctx: &Context) -> CheckResult {
    let Some(user) = &ctx.fixtures.user else {
        return CONSENT.needs("--user and --consent-required");
    };
    if !ctx.fixtures.consent_required {
        return CONSENT.needs("--consent-required");
    }
    // The stranger signs with a client of its own: a credential must be
    // a client of the requesting user.
    let stranger = ctx.fresh_tester_user("stranger");
    let device = format!("{}/1", stranger.replacen("/u/", "/d/", 1));
    let client = match TesterClient::new(&device) {
        Ok(c) => c,
        Err(e) => return CONSENT.fail(e.to_string()),
    };
    let answer = match fetch(ctx, &client, &stranger, user).await {
        Ok(a) => a,
        Err(e) => return CONSENT.fail(e),
    };
    match decode(&answer) {
        Ok(resp) => CONSENT.verdict(
            matches!(
                resp.user_status,
                KeyMaterialUserCode::NoConsent | KeyMaterialUserCode::NoConsentForThisRoom
            ) && resp.clients.is_empty(),
            format!(
                "{} as {stranger} → HTTP 200, {}",
                user.as_str(),
                summary(&resp)
            ),
        ),
        Err(e) => CONSENT.fail(format!("{} as {stranger} → {e}", user.as_str())),
    }
}
