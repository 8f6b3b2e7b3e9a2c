//! The transport binding (-06 §4.1): mutual TLS, `Host` naming the target,
//! `From: mimi@<source domain>` authenticated by the client certificate.
//!
//! Each negative check sends the same identifierQuery (-06 §5.8) as a
//! control request that the target answers 200, with one thing broken.
//! -06 says what a request must carry, not which status refuses it, so any
//! 4xx (or, for the missing certificate, a refused handshake) passes; the
//! status is in the evidence.

use mimi_protocol::endpoints::IdentifierQuery;
use mimi_protocol::msgs::{IdentifierRequest, IdentifierResponse, QueryElement, SearchType};
use mimi_protocol::{decode_exact, encode};
use openmls::prelude::AppDataDictionary;
use tls_codec::VLBytes;

use super::Check;
use crate::Context;
use crate::report::CheckResult;
use crate::wire::{ClientCert, Exchange, FromHeader, Request};

const CONTROL: Check = Check::must(
    "transport.control",
    "§4.1, §5.8",
    "a request with Host, From and client certificate as -06 requires is answered",
);
const CLIENT_CERT: Check = Check::must(
    "transport.client-certificate",
    "§4.1",
    "a request without a client certificate is refused (mutually authenticated TLS)",
);
const HOST: Check = Check::must(
    "transport.host",
    "§4.1",
    "a request whose Host names another provider is refused (421 expected)",
);
const HOST_PORT: Check = Check::must(
    "transport.host-port",
    "§4.1",
    "the port component of Host is ignored: the target's domain with another port is answered",
);
const FROM_UNAUTHENTICATED: Check = Check::must(
    "transport.from-authenticated",
    "§4.1",
    "a From domain the client certificate does not authenticate is refused (403 expected)",
);
const FROM_MISSING: Check = Check::must(
    "transport.from-missing",
    "§4.1",
    "a request without From is refused",
);
const FROM_FORM: Check = Check::must(
    "transport.from-form",
    "§4.1",
    "a From whose local-part is not `mimi` is refused",
);

/// A domain no certificate authenticates (RFC 2606 `.invalid`).
pub(crate) const UNAUTHENTICATED_DOMAIN: &str = "unauthenticated.invalid";

pub(crate) async fn run(ctx: &Context) -> Vec<CheckResult> {
    let url = match ctx.url::<IdentifierQuery>(ctx.target_domain.as_str()) {
        Ok(url) => url,
        Err(e) => {
            return [
                CONTROL,
                CLIENT_CERT,
                HOST,
                HOST_PORT,
                FROM_UNAUTHENTICATED,
                FROM_MISSING,
                FROM_FORM,
            ]
            .into_iter()
            .map(|c| c.fail(e.clone()))
            .collect();
        }
    };
    let body = match encode(&IdentifierRequest {
        query_elements: vec![QueryElement {
            search_type: SearchType::Handle,
            search_value: VLBytes::new(
                format!("conformance-{}@{}", ctx.run_id, ctx.target_domain).into_bytes(),
            ),
        }],
        id_request_extensions: AppDataDictionary::new(),
    }) {
        Ok(body) => body,
        Err(e) => return vec![CONTROL.fail(format!("encoding the request: {e}"))],
    };
    let base = Request::post(url.clone(), body);
    let control = ctx.wire.send(&base).await;
    let control_ok = control.is(200) && decode_exact::<IdentifierResponse>(&control.body).is_ok();
    let mut out = vec![CONTROL.verdict(
        control_ok,
        format!(
            "POST {url} From: mimi@{} → {}{}",
            ctx.tester_domain,
            control.describe(),
            if control.is(200) && !control_ok {
                " (not an IdentifierResponse)"
            } else {
                ""
            }
        ),
    )];

    let refused = |check: Check, sent: String, answer: Exchange, handshake_counts: bool| {
        // A failed connection counts as a refusal only when the control
        // request shows that the target is otherwise reachable.
        let ok =
            answer.is_client_error() || (handshake_counts && answer.status.is_none() && control_ok);
        let evidence = format!(
            "{sent} → {}{}",
            answer.describe(),
            if ok || control_ok {
                String::new()
            } else {
                format!("; the control request got {}", control.describe())
            }
        );
        check.verdict(ok, evidence)
    };

    let mut req = base.clone();
    req.cert = ClientCert::Absent;
    out.push(refused(
        CLIENT_CERT,
        "no client certificate".into(),
        ctx.wire.send(&req).await,
        true,
    ));

    let other = if ctx.tester_domain == "conformance-other.example" {
        "conformance-another.example".to_owned()
    } else {
        "conformance-other.example".to_owned()
    };
    let mut req = base.clone();
    req.host = Some(other.clone());
    out.push(refused(
        HOST,
        format!("HTTP/1.1 Host: {other}"),
        ctx.wire.send(&req).await,
        false,
    ));

    // A port the target is unlikely to listen on; -06 says it is ignored.
    let host = format!("{}:1", ctx.target_domain);
    let mut req = base.clone();
    req.host = Some(host.clone());
    let answer = ctx.wire.send(&req).await;
    let ok = answer.is(200) && decode_exact::<IdentifierResponse>(&answer.body).is_ok();
    out.push(HOST_PORT.verdict(ok, format!("HTTP/1.1 Host: {host} → {}", answer.describe())));

    let mut req = base.clone();
    req.from = FromHeader::Value(format!("mimi@{UNAUTHENTICATED_DOMAIN}"));
    out.push(refused(
        FROM_UNAUTHENTICATED,
        format!("From: mimi@{UNAUTHENTICATED_DOMAIN}"),
        ctx.wire.send(&req).await,
        false,
    ));

    let mut req = base.clone();
    req.from = FromHeader::Missing;
    out.push(refused(
        FROM_MISSING,
        "no From".into(),
        ctx.wire.send(&req).await,
        false,
    ));

    let mut req = base;
    req.from = FromHeader::Value(format!("postmaster@{}", ctx.tester_domain));
    out.push(refused(
        FROM_FORM,
        format!("From: postmaster@{}", ctx.tester_domain),
        ctx.wire.send(&req).await,
        false,
    ));
    out
}
