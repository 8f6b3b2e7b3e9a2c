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

pub struct CeilingResult {
    pub requests_per_sec: f64,
    pub latency: Summary,
}

/// Sends `requests` POSTs with bodies of `body_len` bytes, `concurrency`
/// in flight, to a trivial handler answering 201.
pub async fn run(
    net: &Net,
    requests: usize,
    concurrency: usize,
    body_len: usize,
) -> anyhow::Result<CeilingResult> {
    section(&format!(
        "Ceiling: mTLS HTTP/2 request loop to a trivial handler ({concurrency} in flight, {body_len}-byte bodies)"
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
    let mut finished = Vec::with_capacity(requests);
    let started = Instant::now();
    for _ in 0..requests {
        let permit = limit.clone().acquire_owned().await?;
        let (client, url, body) = (client.clone(), url.clone(), body.clone());
        tasks.spawn(async move {
            let t0 = Instant::now();
            let result = net::post(&client, "b.example", &url, body).await;
            drop(permit);
            result.map(|(status, _)| (status, t0.elapsed()))
        });
        while let Some(done) = tasks.try_join_next() {
            finished.push(done);
        }
    }
    while let Some(done) = tasks.join_next().await {
        finished.push(done);
    }
    let mut latencies = Vec::with_capacity(requests);
    for done in finished {
        let (status, rtt) = done??;
        ensure!(
            status == StatusCode::CREATED,
            "trivial handler answered {status}"
        );
        latencies.push(rtt);
    }
    let elapsed = started.elapsed();
    let _ = stop.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
    let Some(latency) = Summary::of(&latencies) else {
        bail!("no requests measured");
    };
    let requests_per_sec = requests as f64 / elapsed.as_secs_f64();
    line(&format!(
        "{requests} requests in {:.2} s: {requests_per_sec:.0} requests/s; round trip {}",
        elapsed.as_secs_f64(),
        latency.ms()
    ));
    Ok(CeilingResult {
        requests_per_sec,
        latency,
    })
}
