//! Federation endpoints (-06 §5), served over mutual TLS.
//!
//! Routes are mounted from the endpoint table of
//! [`mimi_protocol::endpoints`]: [`handler`] names this provider's handler
//! for each endpoint, and the directory offers exactly those.
//!
//! Every route except the directory sits behind
//! [`crate::transport::authenticate_provider`], so handlers can rely on the
//! [`crate::transport::SourceProvider`] extension.

pub mod consent;
pub mod directory;
pub mod hub;
pub mod identifier;
pub mod key_material;
pub mod notify;
pub mod report;

use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::middleware;
use axum::routing::{MethodFilter, MethodRouter, on};
use mimi_protocol::endpoints::{Endpoint, Method};
use tower_http::timeout::TimeoutLayer;

use crate::state::AppState;
use crate::transport::{LocalDomain, authenticate_provider};

/// This provider's handler of an endpoint, at the endpoint's method;
/// `None` for an endpoint it does not implement, which is then neither
/// routed nor in the directory (none today).
fn handler(endpoint: Endpoint) -> Option<MethodRouter<AppState>> {
    let method = match endpoint.method() {
        Method::Get => MethodFilter::GET,
        Method::Post => MethodFilter::POST,
    };
    Some(match endpoint {
        Endpoint::KeyMaterial => on(method, key_material::key_material),
        Endpoint::Update => on(method, hub::update),
        Endpoint::Notify => on(method, notify::notify),
        Endpoint::SubmitMessage => on(method, hub::submit_message),
        Endpoint::GroupInfo => on(method, hub::group_info),
        Endpoint::RequestConsent => on(method, consent::request_consent),
        Endpoint::UpdateConsent => on(method, consent::update_consent),
        Endpoint::IdentifierQuery => on(method, identifier::identifier_query),
        Endpoint::ReportAbuse => on(method, report::report_abuse),
        Endpoint::ProxyDownload => on(method, crate::assets::routes::proxy_download),
    })
}

/// The endpoints this provider serves, as its directory lists them.
pub fn served() -> impl Iterator<Item = Endpoint> {
    Endpoint::ALL.into_iter().filter(|e| handler(*e).is_some())
}

/// The routes of `endpoints` that this provider serves.
fn mount(endpoints: impl Iterator<Item = Endpoint>) -> Router<AppState> {
    endpoints
        .filter_map(|e| Some((e.canonical_path(), handler(e)?)))
        .fold(Router::new(), |router, (path, handler)| {
            router.route(path, handler)
        })
}

pub fn router(state: AppState) -> Router {
    let limits = &state.config.limits;
    let request_timeout = TimeoutLayer::with_status_code(
        StatusCode::SERVICE_UNAVAILABLE,
        Duration::from_millis(limits.request_timeout_ms),
    );
    // proxyDownload and the OHTTP Gateway wait for the asset provider:
    // they have their own timeout
    // (504 from the fetch, [assets] proxy_timeout_ms), not the general one.
    let timed = mount(
        Endpoint::ALL
            .into_iter()
            .filter(|e| *e != Endpoint::ProxyDownload),
    )
    .merge(crate::assets::routes::federation_routes())
    .layer(request_timeout);
    let proxied = mount([Endpoint::ProxyDownload].into_iter())
        .merge(crate::assets::routes::gateway_routes())
        .layer(TimeoutLayer::with_status_code(
            StatusCode::GATEWAY_TIMEOUT,
            crate::assets::routes::proxy_route_timeout(&state.config),
        ));
    let authenticated = timed
        .merge(proxied)
        // Runs after authentication (layers wrap outwards).
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::fanout::notice_peer,
        ))
        .layer(middleware::from_fn_with_state(
            LocalDomain(state.config.domain.as_str().into()),
            authenticate_provider,
        ));
    Router::new()
        .merge(directory::routes().layer(request_timeout))
        .merge(authenticated)
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        // A declared length over the limit is answered 413 at once,
        // before any of the body is read: a peer still sending gets the
        // answer rather than waiting until the limit is reached.
        .layer(tower_http::limit::RequestBodyLimitLayer::new(
            limits.max_body_bytes,
        ))
        .layer(middleware::from_fn_with_state(
            state.runtime.metrics().clone(),
            crate::metrics::track_requests,
        ))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// proxyDownload (-06 §5.10) included: the directory lists them all.
    #[test]
    fn every_endpoint_is_served() {
        let served: Vec<Endpoint> = served().collect();
        assert_eq!(served, Endpoint::ALL.to_vec());
        assert!(served.contains(&Endpoint::ProxyDownload));
    }
}
