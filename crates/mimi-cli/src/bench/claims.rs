//! (c) keyMaterial claims (-06 §5.2) under concurrent requesters.
//!
//! b.example stores real openmls KeyPackages for a few target users (one
//! client each). `requesters` concurrent tasks send signed
//! `KeyMaterialRequest`s from a.example over mTLS to
//! `/v1/keyMaterial/{targetUser}`, all racing for the same targets. The
//! requests are signed before timing; each is made by a different
//! requesting user so the per-requester rate limit (20 per burst) is not
//! what is measured. Every KeyPackage handed out is checked to be unique:
//! a double issue is a failure.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail, ensure};
use mimi_protocol::msgs::key_material::{ClientMaterial, KeyMaterialResponse};
use mimi_store::NewKeyPackage;
use mimi_testkit::clients::TestClient;
use openmls::prelude::{ExtensionType, MlsMessageOut, ProposalType, RequiredCapabilitiesExtension};
use openmls_traits::OpenMlsProvider as _;
use tls_codec::Serialize as _;
use tokio::sync::Semaphore;

use super::net::{self, Net};
use super::stats::{Summary, line, section};

/// Target users at b.example whose KeyPackages are claimed.
const TARGETS: usize = 4;
/// Requests per requesting user (the rate limiter's burst).
const PER_REQUESTER_USER: usize = 20;

pub struct ClaimsResult {
    pub claims_per_sec: f64,
    pub latency: Summary,
    pub double_issues: usize,
}

pub async fn run(net: &Net, claims: usize, requesters: usize) -> anyhow::Result<ClaimsResult> {
    section(&format!(
        "(c) keyMaterial claims, {requesters} concurrent requesters, {} ({claims} claims)",
        net.store_name()
    ));
    let setup = Instant::now();
    let b = &net.server("b.example").state;
    let per_target = claims.div_ceil(TARGETS) + 1;
    let mut targets = Vec::new();
    for t in 0..TARGETS {
        let device = format!("mimi://b.example/d/kp{t}/dev");
        let client = TestClient::new(&device);
        let mut packages = Vec::with_capacity(per_target);
        for _ in 0..per_target {
            let kp = client.key_package();
            packages.push(NewKeyPackage {
                key_package_ref: kp.hash_ref(client.provider.crypto())?.as_slice().to_vec(),
                key_package: MlsMessageOut::from(kp.clone()).tls_serialize_detached()?,
                not_after: i64::try_from(kp.life_time().not_after()).unwrap_or(i64::MAX),
                last_resort: false,
            });
        }
        let user = client.user();
        b.store.add_key_packages(&user, &device, packages).await?;
        targets.push(user);
    }
    // Signed requests, round-robin over targets, a new requesting user
    // every PER_REQUESTER_USER requests.
    let mut bodies = Vec::with_capacity(claims);
    let mut requester = None;
    for i in 0..claims {
        if i % PER_REQUESTER_USER == 0 {
            requester = Some(TestClient::new(&format!(
                "mimi://a.example/d/req{}/dev",
                i / PER_REQUESTER_USER
            )));
        }
        let who = requester.as_ref().context("requester")?;
        let target = &targets[i % TARGETS];
        let request = who.key_material_request(
            target,
            RequiredCapabilitiesExtension::new(
                &[ExtensionType::AppDataDictionary],
                &[ProposalType::AppDataUpdate, ProposalType::SelfRemove],
                &[],
            ),
        );
        let url = format!(
            "{}/v1/keyMaterial/{}",
            net.url("b.example"),
            net::room_path(target)
        );
        bodies.push((url, mimi_protocol::encode(&request)?));
    }
    line(&format!(
        "setup ({} KeyPackages, {claims} signed requests): {:.1} s",
        per_target * TARGETS,
        setup.elapsed().as_secs_f64()
    ));
    let client = net.client_as("a.example")?;
    let limit = Arc::new(Semaphore::new(requesters));
    let mut tasks = tokio::task::JoinSet::new();
    let mut results = Vec::with_capacity(claims);
    let started = Instant::now();
    for (url, body) in bodies {
        let permit = limit.clone().acquire_owned().await?;
        let client = client.clone();
        tasks.spawn(async move {
            let t0 = Instant::now();
            let result = net::post(&client, "a.example", &url, body).await;
            drop(permit);
            result.map(|r| (r, t0.elapsed()))
        });
        while let Some(done) = tasks.try_join_next() {
            results.push(done?);
        }
    }
    while let Some(done) = tasks.join_next().await {
        results.push(done?);
    }
    let elapsed = started.elapsed();
    let mut latencies = Vec::with_capacity(claims);
    let mut seen = HashSet::with_capacity(claims);
    let mut double_issues = 0;
    let mut failures = Vec::new();
    for result in results {
        let ((status, body), rtt) = result?;
        if status != reqwest::StatusCode::OK {
            failures.push(format!("{status}: {}", String::from_utf8_lossy(&body)));
            continue;
        }
        let response: KeyMaterialResponse = mimi_protocol::decode_exact(&body)?;
        for client in response.clients {
            match client.material {
                ClientMaterial::Success(kp) => {
                    if !seen.insert(kp.tls_serialize_detached()?) {
                        double_issues += 1;
                    }
                }
                other => failures.push(format!("{other:?}")),
            }
        }
        latencies.push(rtt);
    }
    if let Some(first) = failures.first() {
        bail!("{} claims failed; first: {first}", failures.len());
    }
    ensure!(seen.len() + double_issues == claims, "claims went missing");
    let latency = Summary::of(&latencies).context("no claims")?;
    let claims_per_sec = claims as f64 / elapsed.as_secs_f64();
    line(&format!(
        "{claims} claims in {:.2} s: {claims_per_sec:.0} claims/s; round trip {}; double issues: {double_issues}",
        elapsed.as_secs_f64(),
        latency.ms()
    ));
    Ok(ClaimsResult {
        claims_per_sec,
        latency,
        double_issues,
    })
}
