//! Convey explicit consent (-06 §5.7): what the target must accept and
//! what it must refuse. Whether a recorded request or grant changes what
//! the target's user sees is not observable over federation; the effect
//! of consent on key material is `keyMaterial.consent`.

use mimi_protocol::endpoints::{RequestConsent, UpdateConsent};
use mimi_protocol::msgs::{ConsentEntry, ConsentOperation};
use mimi_protocol::{MimiUri, encode};

use super::Check;
use super::bodies::consent_entry;
use crate::Context;
use crate::report::CheckResult;
use crate::wire::Request;

const REQUEST: Check = Check::should(
    "consent.request",
    "§5.7",
    "requestConsent `request` for a user of the target is answered 201",
);
const CANCEL_UNMATCHED: Check = Check::should(
    "consent.cancel-unmatched",
    "§5.7",
    "a `cancel` without a matching `request` is answered 201",
);
const GRANT: Check = Check::should(
    "consent.grant",
    "§5.7",
    "updateConsent `grant` (no KeyPackages) for a requester at the target is answered 201",
);
const TARGET_DOMAIN: Check = Check::must(
    "consent.target-domain",
    "§5.7",
    "requestConsent whose targetUri is not in the receiving provider's domains is refused",
);
const REQUESTER_DOMAIN: Check = Check::must(
    "consent.requester-domain",
    "§5.7",
    "requestConsent whose requesterUri is not in the sending provider's domains is refused",
);

const GRANTER_DOMAIN: Check = Check::must(
    "consent.granter-domain",
    "§5.7",
    "updateConsent whose targetUri is not in the sending provider's domains is refused",
);

enum Via {
    Request,
    Update,
}

/// Posts `entry` to requestConsent or updateConsent of `path_user`'s
/// domain; returns what was sent and the answer.
async fn post(
    ctx: &Context,
    via: Via,
    path_user: &str,
    entry: &ConsentEntry,
) -> Result<(String, crate::wire::Exchange), String> {
    let path_user = MimiUri::parse(path_user).map_err(|e| format!("{path_user}: {e}"))?;
    let url = match via {
        Via::Request => ctx.url::<RequestConsent>(&path_user)?,
        Via::Update => ctx.url::<UpdateConsent>(&path_user)?,
    };
    let body = encode(entry).map_err(|e| format!("encoding: {e}"))?;
    let sent = format!(
        "{:?} requester {} target {}",
        entry.consent_operation,
        String::from_utf8_lossy(entry.requester_uri.uri.as_slice()),
        String::from_utf8_lossy(entry.target_uri.uri.as_slice()),
    );
    Ok((sent, ctx.wire.send(&Request::post(url, body)).await))
}

pub(crate) async fn run(ctx: &Context) -> Vec<CheckResult> {
    let mut out = Vec::new();
    let requester = ctx.fresh_tester_user("consent");
    match &ctx.fixtures.user {
        None => {
            out.push(REQUEST.needs("--user"));
            out.push(CANCEL_UNMATCHED.needs("--user"));
            out.push(GRANT.needs("--user"));
        }
        Some(user) => {
            let user = user.as_str();
            let entry = consent_entry(ConsentOperation::Request, &requester, user);
            out.push(match post(ctx, Via::Request, user, &entry).await {
                Ok((sent, answer)) => {
                    REQUEST.verdict(answer.is(201), format!("{sent} → {}", answer.describe()))
                }
                Err(e) => REQUEST.fail(e),
            });
            // A scope no `request` ever used: this run's other fresh user.
            let other = ctx.fresh_tester_user("never-requested");
            let entry = consent_entry(ConsentOperation::Cancel, &other, user);
            out.push(match post(ctx, Via::Request, user, &entry).await {
                Ok((sent, answer)) => CANCEL_UNMATCHED
                    .verdict(answer.is(201), format!("{sent} → {}", answer.describe())),
                Err(e) => CANCEL_UNMATCHED.fail(e),
            });
            // The tester's user grants the target's user consent to fetch
            // its KeyPackages: sent to the requester's provider, the target.
            let entry = consent_entry(ConsentOperation::Grant, user, &requester);
            out.push(match post(ctx, Via::Update, user, &entry).await {
                Ok((sent, answer)) => {
                    GRANT.verdict(answer.is(201), format!("{sent} → {}", answer.describe()))
                }
                Err(e) => GRANT.fail(e),
            });
        }
    }

    // targetUri of the tester's own domain, sent to the target.
    let foreign_target = ctx.fresh_tester_user("target");
    let entry = consent_entry(ConsentOperation::Request, &requester, &foreign_target);
    let path_user = ctx.unknown_target_user();
    out.push(match post(ctx, Via::Request, &path_user, &entry).await {
        Ok((sent, answer)) => TARGET_DOMAIN.verdict(
            answer.is_client_error(),
            format!("{sent} → {}", answer.describe()),
        ),
        Err(e) => TARGET_DOMAIN.fail(e),
    });

    // requesterUri of a domain the tester's certificate does not
    // authenticate.
    let foreign_requester = format!(
        "mimi://{}/u/conformance-{}",
        super::transport::UNAUTHENTICATED_DOMAIN,
        ctx.run_id
    );
    let target_user = ctx
        .fixtures
        .user
        .as_ref()
        .map(|u| u.as_str().to_owned())
        .unwrap_or_else(|| ctx.unknown_target_user());
    let entry = consent_entry(ConsentOperation::Request, &foreign_requester, &target_user);
    out.push(match post(ctx, Via::Request, &target_user, &entry).await {
        Ok((sent, answer)) => REQUESTER_DOMAIN.verdict(
            answer.is_client_error(),
            format!("{sent} → {}", answer.describe()),
        ),
        Err(e) => REQUESTER_DOMAIN.fail(e),
    });

    // A grant on behalf of a user of a domain the tester's certificate
    // does not authenticate, for a requester at the target.
    let foreign_granter = format!(
        "mimi://{}/u/conformance-{}",
        super::transport::UNAUTHENTICATED_DOMAIN,
        ctx.run_id
    );
    let entry = consent_entry(ConsentOperation::Grant, &target_user, &foreign_granter);
    out.push(match post(ctx, Via::Update, &target_user, &entry).await {
        Ok((sent, answer)) => GRANTER_DOMAIN.verdict(
            answer.is_client_error(),
            format!("{sent} → {}", answer.describe()),
        ),
        Err(e) => GRANTER_DOMAIN.fail(e),
    });
    out
}
