//! The raw ceiling: the same TLS accept loop and rustls mTLS server
//! config as a provider's federation listener, an axum router with a
//! trivial handler, driven by the same HTTP/2 client stack and
//! concurrency as the hub measurement.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure};
use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use mimi_server::tls;
use tokio::sync::{Semaphore, watch};

use super::net::{self, Net};
use super::stats::{Summary, line, section};

/// One ceiling measurement: the rate of every whole window of
/// [`WINDOW`] and the round trips of the whole run.
pub struct CeilingResult {
    pub window_rates: Vec<f64>,
    pub latency: Summary,
}

/// The length of one window of the ceiling loop.
pub const WINDOW: Duration = Duration::from_secs(1);

impl CeilingResult {
    /// The median window rate, requests/s.
    pub fn requests_per_sec(&self) -> f64 {
        median(&self.window_rates)
    }

    /// `median X/s (windows min–max, n)`.
    pub fn describe(&self) -> String {
        format!(
            "median {:.0} requests/s over {} windows of {} s (min {:.0}, max {:.0}; spread {})",
            self.requests_per_sec(),
            self.window_rates.len(),
            WINDOW.as_secs_f64(),
            min(&self.window_rates),
            max(&self.window_rates),
            spread(&self.window_rates)
        )
    }
}

/// The median of rates (0 for none).
pub fn median(rates: &[f64]) -> f64 {
    let mut sorted = rates.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

fn min(rates: &[f64]) -> f64 {
    rates.iter().copied().fold(f64::INFINITY, f64::min)
}

fn max(rates: &[f64]) -> f64 {
    rates.iter().copied().fold(0.0, f64::max)
}

/// `(max − min) / median` as a percentage: how far apart the windows were.
pub fn spread(rates: &[f64]) -> String {
    let m = median(rates);
    if m <= 0.0 {
        return "n/a".into();
    }
    format!("{:.0}%", 100.0 * (max(rates) - min(rates)) / m)
}

/// Sends POSTs with bodies of `body_len` bytes, `concurrency` in flight,
/// to a trivial handler answering 201, for `duration` (at least one
/// window), counting completions per [`WINDOW`]: a loop of half a second
/// swung by a factor of two between runs, so the yardstick runs long
/// enough to show its own spread. `label` names the run ("before",
/// "after").
pub async fn run(
    net: &Net,
    duration: Duration,
    concurrency: usize,
    body_len: usize,
    label: &str,
) -> anyhow::Result<CeilingResult> {
    let duration = duration.max(WINDOW);
    section(&format!(
        "Ceiling ({label}): mTLS HTTP/2 request loop to a trivial handler ({concurrency} in flight, {body_len}-byte bodies, {} s)",
        duration.as_secs_f64()
    ));
    let domain = "ceiling.example";
    let identity = net.ca.issue(domain)?;
    let config = tls::server_config(tls::root_store(net.ca.cert_pem())?, &identity)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    // The body is read, as real handlers do: answering before reading it
    // makes hyper reset the stream, and h2 closes a connection after too
    // many resets.
    let app = Router::new().route(
        "/v1/trivial",
        post(|_body: axum::body::Bytes| async { StatusCode::CREATED }),
    );
    let (stop, mut stopped) = watch::channel(false);
    let server = tokio::spawn(mimi_server::transport::serve(
        listener,
        Arc::new(config),
        app,
        async move {
            let _ = stopped.wait_for(|s| *s).await;
        },
    ));
    let client = net::federation_client(net.ca.cert_pem(), &net.identities[1], [(domain, addr)])?;
    let url = format!("https://{domain}:{}/v1/trivial", addr.port());
    let body = vec![0x5a; body_len];
    // Warm-up: connection and TLS handshake.
    for _ in 0..100 {
        net::post(&client, "b.example", &url, body.clone()).await?;
    }
    let limit = Arc::new(Semaphore::new(concurrency));
    let mut tasks = tokio::task::JoinSet::new();
    let mut finished = Vec::new();
    let started = Instant::now();
    let deadline = started + duration;
    while Instant::now() < deadline {
        let permit = limit.clone().acquire_owned().await?;
        let (client, url, body) = (client.clone(), url.clone(), body.clone());
        tasks.spawn(async move {
            let t0 = Instant::now();
            let result = net::post(&client, "b.example", &url, body).await;
            drop(permit);
            result.map(|(status, _)| (status, t0.elapsed(), Instant::now()))
        });
        while let Some(done) = tasks.try_join_next() {
            finished.push(done);
        }
    }
    while let Some(done) = tasks.join_next().await {
        finished.push(done);
    }
    let _ = stop.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
    let windows = (duration.as_secs_f64() / WINDOW.as_secs_f64()).floor() as usize;
    let mut counts = vec![0u64; windows];
    let mut latencies = Vec::with_capacity(finished.len());
    for done in finished {
        let (status, rtt, at) = done??;
        ensure!(
            status == StatusCode::CREATED,
            "trivial handler answered {status}"
        );
        latencies.push(rtt);
        // Completions after the last whole window (the drain) count for
        // the round trips only.
        let window = (at.duration_since(started).as_secs_f64() / WINDOW.as_secs_f64()) as usize;
        if let Some(count) = counts.get_mut(window) {
            *count += 1;
        }
    }
    let Some(latency) = Summary::of(&latencies) else {
        bail!("no requests measured");
    };
    let result = CeilingResult {
        window_rates: counts
            .iter()
            .map(|&c| c as f64 / WINDOW.as_secs_f64())
            .collect(),
        latency,
    };
    line(&format!(
        "{} requests: {}; round trip {}",
        latency.count,
        result.describe(),
        latency.ms()
    ));
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_spread_of_window_rates() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
        assert_eq!(spread(&[90.0, 100.0, 110.0]), "20%");
        assert_eq!(spread(&[]), "n/a");
    }
}
