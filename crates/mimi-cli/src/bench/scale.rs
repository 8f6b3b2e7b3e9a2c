//! Several server processes of the hub's provider on one PostgreSQL
//! database (docs/operations.md "Scaling out").
//!
//! a.example runs as 1, 2, … processes sharing the database and the data
//! directory (so the hub signing and franking keys): the first is the
//! in-process server of the other parts, the others are `mimi server`
//! child processes of this binary on their own ports. The followers spread
//! their submits round robin over the processes (standing in for a load
//! balancer); every process leases outbox lanes from the shared outbox.
//! A message counts when both followers (b.example, c.example) have
//! committed it: deliveries by child processes to the hub's own users
//! cannot be observed from here.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};

use super::fanout::{self, PhaseResult, Phases};
use super::net::{HUB, Net, StoreChoice};
use super::rooms;
use super::stats::{line, section};

/// One measured process count.
pub struct ScaleResult {
    pub processes: usize,
    pub max: PhaseResult,
}

/// `mimi server` child processes, killed when dropped.
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub struct ScaleParams<'a> {
    pub processes: &'a [usize],
    pub size: usize,
    pub messages: usize,
    pub concurrency: usize,
    pub senders: usize,
    pub timeout: Duration,
}

pub async fn run(
    net: &Net,
    dir: &Path,
    params: &ScaleParams<'_>,
) -> anyhow::Result<Vec<ScaleResult>> {
    section(&format!(
        "Scaling: 1..{} hub processes on one PostgreSQL database, room of {} clients",
        params.processes.iter().max().copied().unwrap_or(1),
        params.size
    ));
    if !matches!(net.backend, StoreChoice::Postgres { .. }) {
        bail!("`mimi bench scale` needs --store postgres (processes share the database)");
    }
    let mut group =
        rooms::build_group("scale", params.size, params.senders, rooms::hub_sender(net))?;
    let room = rooms::host(net, &group, "scale").await?;
    let exe = std::env::current_exe().context("locating the mimi binary")?;
    let mut children = Children(Vec::new());
    let mut urls = vec![net.url(HUB)];
    let mut results = Vec::new();
    let mut wanted: Vec<usize> = params.processes.to_vec();
    wanted.sort_unstable();
    wanted.dedup();
    for k in wanted {
        ensure!(k >= 1, "process counts start at 1");
        while urls.len() < k {
            let n = urls.len() + 1;
            let url = spawn_hub(net, dir, &exe, n, &mut children).await?;
            urls.push(url);
        }
        let phases = Phases {
            room: room.clone(),
            hub_urls: urls.clone(),
            count_hub: false,
            concurrency: params.concurrency,
            timeout: params.timeout,
        };
        let warmup = fanout::prepare(
            &mut group,
            (params.messages / 20).clamp(50, 500),
            &format!("scale{k}w"),
        )?;
        fanout::run_phase(net, &phases, warmup, None)
            .await
            .with_context(|| format!("warm-up with {k} processes"))?;
        let load = fanout::prepare(&mut group, params.messages, &format!("scale{k}"))?;
        let max = fanout::run_phase(net, &phases, load, None).await?;
        let rate = max.messages_per_sec();
        line(&format!(
            "{k} process(es): {}/{} messages at both followers in {:.2} s: {rate:.0} messages/s = {:.0} follower deliveries/s{}",
            max.delivered,
            max.sent,
            max.span.as_secs_f64(),
            rate * 2.0,
            max.latency
                .map(|l| format!("; end-to-end {}", l.ms()))
                .unwrap_or_default()
        ));
        results.push(ScaleResult { processes: k, max });
    }
    Ok(results)
}

/// Starts hub process number `n` of a.example as `mimi server` and waits
/// until its federation listener answers; returns its base URL.
async fn spawn_hub(
    net: &Net,
    dir: &Path,
    exe: &Path,
    n: usize,
    children: &mut Children,
) -> anyhow::Result<String> {
    let mut config = net.provider(HUB).config.clone();
    let ports = mimi_testkit::ports::free_loopback_addrs(2)?;
    (config.federation.listen, config.client_api.listen) = (ports[0], ports[1]);
    let path = dir.join(format!("{HUB}-{n}.toml"));
    std::fs::write(&path, config.to_toml()?)?;
    let log = std::fs::File::create(dir.join(format!("{HUB}-{n}.log")))?;
    let child = Command::new(exe)
        .arg("server")
        .arg("-c")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", exe.display()))?;
    children.0.push(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    // Polled without blocking: the in-process providers share this runtime.
    while tokio::net::TcpStream::connect(config.federation.listen)
        .await
        .is_err()
    {
        ensure!(
            Instant::now() < deadline,
            "hub process {n} did not start; see {HUB}-{n}.log"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(format!("https://{HUB}:{}", config.federation.listen.port()))
}
