//! Prometheus metrics (`/metrics` on the client API listener): requests by
//! endpoint and status, outbox depth, fanout latency.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::state::AppState;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder once (several servers in one test
/// process share it; series carry a `provider` label where it matters).
pub fn install() {
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        // Another recorder may already be installed by an embedding program.
        let _ = metrics::set_global_recorder(recorder);
        handle
    });
}

/// Counts requests by route and status and records their latency.
pub async fn track_requests(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let started = Instant::now();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("mimi_requests_total", "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("mimi_request_seconds", "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

/// `GET /metrics`: refreshes the outbox gauge, renders the text format.
pub async fn render(State(state): State<AppState>) -> Response {
    if let Ok(depth) = state.store.outbox_depth().await {
        metrics::gauge!("mimi_outbox_depth", "provider" => state.domain().to_owned())
            .set(depth as f64);
    }
    match HANDLE.get() {
        Some(handle) => handle.render().into_response(),
        None => (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "metrics not installed",
        )
            .into_response(),
    }
}
