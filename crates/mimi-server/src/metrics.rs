//! Prometheus metrics (`/metrics` on the client API listener): requests by
//! endpoint and status, outbox depth, dead letters, fanout latency, and
//! the `mimi_asset*` series of uploads and downloads (`crate::assets`,
//! listed in docs/operations.md "Assets").
//!
//! Each server records into its own recorder ([`ServerMetrics`], owned by
//! its [`crate::runtime::ServerRuntime`]), never the process-wide one, so
//! two servers in one process never mix their series.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use mimi_store::Store;

/// One server's recorder and the handle that renders it.
pub struct ServerMetrics {
    provider: String,
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
}

impl ServerMetrics {
    /// A fresh recorder for the server of `provider` (the `provider`
    /// label of its series).
    pub fn new(provider: &str) -> Self {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        Self {
            provider: provider.to_owned(),
            recorder,
            handle,
        }
    }

    pub fn provider(&self) -> &str {
        &self.provider
    }

    /// Runs `f` with this server's recorder: `metrics::counter!` and the
    /// like inside `f` record here. `f` must not await (the recorder is
    /// set for the current thread only).
    pub fn record<T>(&self, f: impl FnOnce() -> T) -> T {
        metrics::with_local_recorder(&self.recorder, f)
    }

    /// The Prometheus text format of this server's series.
    pub fn render(&self) -> String {
        self.handle.render()
    }
}

/// Counts requests by route and status and records their latency.
pub async fn track_requests(
    State(server): State<Arc<ServerMetrics>>,
    req: Request,
    next: Next,
) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let started = Instant::now();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    server.record(|| {
        metrics::counter!("mimi_requests_total", "route" => route.clone(), "status" => status)
            .increment(1);
        metrics::histogram!("mimi_request_seconds", "route" => route)
            .record(started.elapsed().as_secs_f64());
    });
    response
}

/// `GET /metrics`: refreshes the outbox and dead-letter gauges, renders
/// the text format.
pub async fn render(
    State(server): State<Arc<ServerMetrics>>,
    State(store): State<Arc<dyn Store>>,
) -> Response {
    if let Ok(depth) = store.outbox_depth().await {
        server.record(|| {
            metrics::gauge!("mimi_outbox_depth", "provider" => server.provider().to_owned())
                .set(depth as f64);
        });
    }
    if let Ok(dead) = store.dead_letter_count().await {
        server.record(|| {
            metrics::gauge!("mimi_dead_letters", "provider" => server.provider().to_owned())
                .set(dead as f64);
        });
    }
    server.render().into_response()
}
