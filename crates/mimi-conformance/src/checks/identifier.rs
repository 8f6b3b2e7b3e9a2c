//! Find internal address (-06 §5.8): no match, an exact handle, AND
//! semantics.

use mimi_protocol::endpoints::IdentifierQuery;
use mimi_protocol::msgs::{
    IdentifierQueryCode, IdentifierRequest, IdentifierResponse, QueryElement, SearchType,
};
use mimi_protocol::{decode_exact, encode};
use openmls::prelude::AppDataDictionary;
use tls_codec::VLBytes;

use super::Check;
use crate::Context;
use crate::report::CheckResult;
use crate::wire::Request;

const NOT_FOUND: Check = Check::must(
    "identifierQuery.not-found",
    "§5.8",
    "a handle nobody has gets notFound (or forbidden) and no URIs",
);
const HANDLE: Check = Check::should(
    "identifierQuery.handle",
    "§5.8",
    "an exact handle query finds the user it belongs to",
);
const AND: Check = Check::must(
    "identifierQuery.and",
    "§5.8",
    "all query elements have to match (AND): the handle plus a nick nobody has finds no one",
);

fn element(search_type: SearchType, value: &str) -> QueryElement {
    QueryElement {
        search_type,
        search_value: VLBytes::new(value.as_bytes().to_vec()),
    }
}

fn summary(resp: &IdentifierResponse) -> String {
    let uris: Vec<String> = resp
        .uri
        .iter()
        .map(|u| String::from_utf8_lossy(u.uri.as_slice()).into_owned())
        .collect();
    format!("{:?} [{}]", resp.response_code, uris.join(", "))
}

async fn query(ctx: &Context, elements: Vec<QueryElement>) -> Result<IdentifierResponse, String> {
    let url = ctx.url::<IdentifierQuery>(ctx.target_domain.as_str())?;
    let body = encode(&IdentifierRequest {
        query_elements: elements,
        id_request_extensions: AppDataDictionary::new(),
    })
    .map_err(|e| format!("encoding: {e}"))?;
    let answer = ctx.wire.send(&Request::post(url, body)).await;
    if !answer.is(200) {
        return Err(answer.describe());
    }
    decode_exact(&answer.body).map_err(|e| format!("HTTP 200, not an IdentifierResponse: {e}"))
}

fn finds(resp: &IdentifierResponse, user: &str) -> bool {
    resp.response_code == IdentifierQueryCode::Success
        && resp.uri.iter().any(|u| u.uri.as_slice() == user.as_bytes())
}

pub(crate) async fn run(ctx: &Context) -> Vec<CheckResult> {
    let mut out = Vec::new();
    let nobody = format!("conformance-nobody-{}", ctx.run_id);
    out.push(
        match query(ctx, vec![element(SearchType::Handle, &nobody)]).await {
            Ok(resp) => NOT_FOUND.verdict(
                matches!(
                    resp.response_code,
                    IdentifierQueryCode::NotFound | IdentifierQueryCode::Forbidden
                ) && resp.uri.is_empty(),
                format!("handle {nobody:?} → {}", summary(&resp)),
            ),
            Err(e) => NOT_FOUND.fail(format!("handle {nobody:?} → {e}")),
        },
    );
    let (Some(handle), Some(user)) = (&ctx.fixtures.handle, &ctx.fixtures.user) else {
        out.push(HANDLE.needs("--handle and --user"));
        out.push(AND.needs("--handle and --user"));
        return out;
    };
    let user = user.as_str();
    let found = match query(ctx, vec![element(SearchType::Handle, handle)]).await {
        Ok(resp) => {
            let ok = finds(&resp, user);
            out.push(HANDLE.verdict(ok, format!("handle {handle:?} → {}", summary(&resp))));
            ok
        }
        Err(e) => {
            out.push(HANDLE.fail(format!("handle {handle:?} → {e}")));
            false
        }
    };
    // Without the first check passing, a miss proves nothing about AND.
    if !found {
        out.push(AND.skip("identifierQuery.handle did not find the user"));
        return out;
    }
    let elements = vec![
        element(SearchType::Handle, handle),
        element(SearchType::Nick, &nobody),
    ];
    out.push(match query(ctx, elements).await {
        Ok(resp) => AND.verdict(
            !finds(&resp, user),
            format!("handle {handle:?} AND nick {nobody:?} → {}", summary(&resp)),
        ),
        Err(e) => AND.fail(format!("handle {handle:?} AND nick {nobody:?} → {e}")),
    });
    out
}
