//! Find internal address: `POST /identifierQuery/{domain}` (-06 §5.8).
//!
//! Each local user chooses a discoverability (`PUT /client/v1/profile`):
//! `none` (never found), `exact` (found by exact handle, nick, email or
//! phone) or `search` (also by `partialName` and `wholeProfile`
//! substrings). All query elements must match (AND).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use mimi_protocol::IdentifierUri;
use mimi_protocol::components::AppDataDictionary;
use mimi_protocol::msgs::TlsString;
use mimi_protocol::msgs::identifier::{
    FieldSource, IdentifierQueryCode, IdentifierRequest, IdentifierResponse, ProfileField,
    QueryElement, SearchType, UserProfile,
};
use mimi_store::{Discoverability, UserSettings};
use tls_codec::VLBytes;

use super::hub::mimi_response;
use crate::error::{ApiError, decode_body, encode_body};
use crate::state::AppState;

/// More substring matches than this are `ambiguous`.
pub const MAX_RESULTS: usize = 10;

/// `POST /identifierQuery/{domain}` (-06 §5.8); mounted by [`super::router`].
pub(crate) async fn identifier_query(
    State(state): State<AppState>,
    Path(domain): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    if !domain.eq_ignore_ascii_case(state.domain()) {
        // As for a room or user of another domain (consent, rooms): 404.
        // 421 stays the answer to a `Host` naming another provider (T6).
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("{domain} is not served here"),
        ));
    }
    let request: IdentifierRequest = decode_body(&body)?;
    let response = answer(&state, &request).await?;
    Ok(mimi_response(StatusCode::OK, encode_body(&response)?))
}

/// A parsed query element.
enum Query {
    Exact(SearchType, String),
    Substring(SearchType, String),
}

fn parse_elements(elements: &[QueryElement]) -> Result<Vec<Query>, IdentifierQueryCode> {
    elements
        .iter()
        .map(|e| {
            let value = std::str::from_utf8(e.search_value.as_slice())
                .map_err(|_| IdentifierQueryCode::Forbidden)?
                .trim()
                .to_lowercase();
            match &e.search_type {
                SearchType::OidcStdClaim { .. } | SearchType::VcardField { .. } => {
                    Err(IdentifierQueryCode::UnsupportedField)
                }
                t @ (SearchType::PartialName | SearchType::WholeProfile) => {
                    Ok(Query::Substring(t.clone(), value))
                }
                t => Ok(Query::Exact(t.clone(), value)),
            }
        })
        .collect()
}

fn lower(v: &Option<String>) -> Option<String> {
    v.as_ref().map(|s| s.to_lowercase())
}

/// Whether one element matches a user under the user's discoverability.
fn matches(user: &UserSettings, query: &Query) -> bool {
    let search = user.discoverability == Discoverability::Search;
    match query {
        Query::Exact(t, v) => {
            let field = match t {
                SearchType::Handle => &user.handle,
                SearchType::Nick => &user.nick,
                SearchType::Email => &user.email,
                SearchType::Phone => &user.phone,
                _ => return false,
            };
            lower(field).as_deref() == Some(v.as_str())
        }
        Query::Substring(_, v) if v.is_empty() || !search => false,
        Query::Substring(SearchType::PartialName, v) => [&user.given_name, &user.family_name]
            .into_iter()
            .any(|f| lower(f).is_some_and(|f| f.contains(v.as_str()))),
        Query::Substring(_, v) => [
            &user.handle,
            &user.nick,
            &user.email,
            &user.phone,
            &user.given_name,
            &user.family_name,
        ]
        .into_iter()
        .any(|f| lower(f).is_some_and(|f| f.contains(v.as_str()))),
    }
}

fn response(code: IdentifierQueryCode, users: &[&UserSettings]) -> IdentifierResponse {
    IdentifierResponse {
        response_code: code,
        uri: users
            .iter()
            .map(|u| IdentifierUri::new(&u.user_uri))
            .collect(),
        found_profiles: users.iter().map(|u| profile(u)).collect(),
        id_response_extensions: AppDataDictionary::new(),
    }
}

/// The profile of a found user as OIDC standard claims.
fn profile(user: &UserSettings) -> UserProfile {
    let claims = [
        ("preferred_username", &user.handle),
        ("nickname", &user.nick),
        ("email", &user.email),
        ("phone_number", &user.phone),
        ("given_name", &user.given_name),
        ("family_name", &user.family_name),
    ];
    UserProfile {
        stable_uri: IdentifierUri::new(&user.user_uri),
        fields: claims
            .into_iter()
            .filter_map(|(name, value)| {
                value.as_ref().map(|v| ProfileField {
                    field_source: FieldSource::OidcStdClaim,
                    field_name: TlsString(name.into()),
                    field_value: VLBytes::new(v.clone().into_bytes()),
                })
            })
            .collect(),
    }
}

/// The answer to a query (-06 §5.8 response codes).
pub async fn answer(
    state: &AppState,
    request: &IdentifierRequest,
) -> Result<IdentifierResponse, ApiError> {
    if request.query_elements.is_empty() {
        return Ok(response(IdentifierQueryCode::Forbidden, &[]));
    }
    let queries = match parse_elements(&request.query_elements) {
        Ok(q) => q,
        Err(code) => return Ok(response(code, &[])),
    };
    let users = state.store.discoverable_users().await?;
    let found: Vec<&UserSettings> = users
        .iter()
        .filter(|u| queries.iter().all(|q| matches(u, q)))
        .collect();
    Ok(match found.len() {
        0 => response(IdentifierQueryCode::NotFound, &[]),
        n if n > MAX_RESULTS => response(IdentifierQueryCode::Ambiguous, &[]),
        _ => response(IdentifierQueryCode::Success, &found),
    })
}
