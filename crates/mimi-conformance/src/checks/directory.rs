//! The directory (-06 §5.1) and the target's server certificate (§4.1).

use mimi_protocol::Directory;
use mimi_protocol::directory::{Endpoint, WELL_KNOWN_PATH};

use super::Check;
use crate::Context;
use crate::report::CheckResult;
use crate::wire::Request;

const SERVER_CERT: Check = Check::must(
    "transport.server-certificate",
    "§4.1",
    "the target's certificate authenticates its domain",
);
const DOCUMENT: Check = Check::must(
    "directory.document",
    "§5.1",
    "GET /.well-known/mimi-protocol-directory is a JSON object of https URI templates",
);
const ENDPOINTS: Check = Check::should(
    "directory.endpoints",
    "§5.1",
    "the directory offers every -06 endpoint a provider serves to peers",
);

pub(crate) async fn run(ctx: &mut Context) -> Vec<CheckResult> {
    let url = format!("{}{WELL_KNOWN_PATH}", ctx.base_url);
    let mut request = Request::post(url.clone(), Vec::new());
    request.get = true;
    let answer = ctx.wire.send(&request).await;
    let cert = match answer.status {
        Some(_) => SERVER_CERT.pass(format!(
            "TLS with server name {} verified against the given CA ({})",
            ctx.target_domain,
            answer.describe()
        )),
        None => SERVER_CERT.fail(format!("GET {url}: {}", answer.describe())),
    };
    let document = match answer.status {
        Some(200) => match std::str::from_utf8(&answer.body)
            .map_err(|e| e.to_string())
            .and_then(|json| Directory::from_json(json).map_err(|e| e.to_string()))
        {
            Ok(directory) => {
                let unusable: Vec<String> = directory
                    .unusable()
                    .map(|(endpoint, e)| format!("{endpoint}: {e}"))
                    .collect();
                let keys: Vec<&str> = directory.endpoints().map(|e| e.key()).collect();
                let result = if unusable.is_empty() {
                    DOCUMENT.pass(format!("HTTP 200, keys: {}", keys.join(", ")))
                } else {
                    DOCUMENT.fail(format!("unusable entries: {}", unusable.join("; ")))
                };
                ctx.directory = Some(directory);
                result
            }
            Err(e) => DOCUMENT.fail(format!("HTTP 200 but not a directory: {e}")),
        },
        _ => DOCUMENT.fail(format!("GET {WELL_KNOWN_PATH}: {}", answer.describe())),
    };
    let endpoints = match &ctx.directory {
        None => ENDPOINTS.skip("no directory"),
        Some(directory) => {
            // proxyDownload is for providers that proxy assets (-06 §5.10);
            // every other endpoint is how peers reach a provider.
            let missing: Vec<&str> = Endpoint::ALL
                .into_iter()
                .filter(|e| *e != Endpoint::ProxyDownload)
                .filter(|e| directory.get(*e).is_none())
                .map(|e| e.key())
                .collect();
            ENDPOINTS.verdict(
                missing.is_empty(),
                if missing.is_empty() {
                    "all of keyMaterial, update, notify, submitMessage, groupInfo, requestConsent, updateConsent, identifierQuery, reportAbuse".to_owned()
                } else {
                    format!("missing: {}", missing.join(", "))
                },
            )
        }
    };
    vec![cert, document, endpoints]
}
