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
//!
//! Each measured phase also reports what it cost per message (`cost.rs`):
//! CPU time of this process, of each child and of PostgreSQL by database,
//! the databases' transactions and rows, WAL bytes, and how the hub's
//! `/notify` deliveries split between its processes. docs/scaling.md builds
//! its model on these.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};

use super::cost::{self, Cost, Databases, Meter};
use super::fanout::{self, PhaseResult, Phases};
use super::net::{DOMAINS, HUB, Net, StoreChoice};
use super::rooms;
use super::stats::{line, section};
use mimi_server::tls;

/// One measured process count.
pub struct ScaleResult {
    pub processes: usize,
    pub max: PhaseResult,
    pub cost: Cost,
}

/// `mimi server` child processes, killed when dropped.
struct Children(Vec<Child>);

impl Children {
    fn pids(&self) -> Vec<u32> {
        self.0.iter().map(Child::id).collect()
    }
}

/// Reads `mimi_fanout_delivered_total` from each hub process's `/metrics`
/// (client API, server-authenticated TLS).
struct MetricsClient {
    ca_pem: String,
}

impl MetricsClient {
    fn new(net: &Net) -> Self {
        Self {
            ca_pem: net.ca.cert_pem().to_owned(),
        }
    }

    /// The FanoutMessages each process has delivered by `/notify` so far;
    /// `None` if any process did not answer.
    async fn fanout_delivered(&self, addrs: &[SocketAddr]) -> Option<Vec<f64>> {
        let mut counts = Vec::new();
        for addr in addrs {
            let config = tls::client_config(tls::root_store(&self.ca_pem).ok()?, None).ok()?;
            let client = reqwest::Client::builder()
                .tls_backend_preconfigured(config)
                .resolve(HUB, *addr)
                .build()
                .ok()?;
            let url = format!("https://{HUB}:{}/metrics", addr.port());
            let text = client.get(&url).send().await.ok()?.text().await.ok()?;
            counts.push(sum_counter(&text, "mimi_fanout_delivered_total"));
        }
        Some(counts)
    }
}

/// The process a room's submits go to when routed by room.
fn room_process(room: &str, processes: usize) -> usize {
    let hash = room.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    (hash % processes.max(1) as u64) as usize
}

/// The sum of every series of counter `name` in Prometheus text.
fn sum_counter(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

impl Drop for Children {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// How the followers spread their submits over the hub processes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Route {
    /// Round robin: every process accepts for every room.
    Spread,
    /// All of a room's submits to one process (by a hash of its id).
    Room,
}

pub struct ScaleParams<'a> {
    pub processes: &'a [usize],
    pub route: Route,
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
        "Scaling: 1..{} hub processes on one PostgreSQL database, room of {} clients, submits {}",
        params.processes.iter().max().copied().unwrap_or(1),
        params.size,
        match params.route {
            Route::Spread => "round robin over the processes",
            Route::Room => "routed by room",
        }
    ));
    let StoreChoice::Postgres { admin_url } = &net.backend else {
        bail!("`mimi bench scale` needs --store postgres (processes share the database)");
    };
    let databases = Databases {
        admin_url: admin_url.clone(),
        names: DOMAINS
            .iter()
            .filter_map(|d| {
                let url = net.provider(d).config.storage.postgres.as_deref()?;
                Some((d.to_string(), cost::database_name(url)?))
            })
            .collect(),
    };
    let metrics = MetricsClient::new(net);
    let mut group =
        rooms::build_group("scale", params.size, params.senders, rooms::hub_sender(net))?;
    let room = rooms::host(net, &group, "scale").await?;
    let exe = std::env::current_exe().context("locating the mimi binary")?;
    let mut children = Children(Vec::new());
    let mut urls = vec![net.url(HUB)];
    // Each hub process's client API, where its /metrics are.
    let mut metric_addrs = vec![net.provider(HUB).config.client_api.listen];
    let mut results = Vec::new();
    let mut wanted: Vec<usize> = params.processes.to_vec();
    wanted.sort_unstable();
    wanted.dedup();
    for k in wanted {
        ensure!(k >= 1, "process counts start at 1");
        while urls.len() < k {
            let n = urls.len() + 1;
            let (url, client_api) = spawn_hub(net, dir, &exe, n, &mut children).await?;
            urls.push(url);
            metric_addrs.push(client_api);
        }
        let hub_urls = match params.route {
            Route::Spread => urls.clone(),
            Route::Room => vec![urls[room_process(&room, urls.len())].clone()],
        };
        let phases = Phases {
            room: room.clone(),
            hub_urls,
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
        let notified_before = metrics.fanout_delivered(&metric_addrs).await;
        let meter = Meter::start(children.pids(), Some(&databases)).await;
        let max = fanout::run_phase(net, &phases, load, None).await?;
        let cost = meter.finish().await;
        let notified_after = metrics.fanout_delivered(&metric_addrs).await;
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
        let labels: Vec<String> = (2..=children.0.len() + 1)
            .map(|n| format!("{HUB} process {n}"))
            .collect();
        cost.report(max.delivered, &labels);
        if let (Some(before), Some(after)) = (notified_before, notified_after) {
            let done: Vec<f64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
            let all: f64 = done.iter().sum();
            let shares: Vec<String> = done
                .iter()
                .enumerate()
                .map(|(i, d)| format!("process {} {:.0}%", i + 1, 100.0 * d / all.max(1.0)))
                .collect();
            let submits = match params.route {
                Route::Spread => "submits are split evenly".to_owned(),
                Route::Room => format!(
                    "all submits to process {}",
                    room_process(&room, urls.len()) + 1
                ),
            };
            line(&format!(
                "FanoutMessages the hub sent by /notify: {all:.0}, by {}; {submits}",
                shares.join(", ")
            ));
        }
        results.push(ScaleResult {
            processes: k,
            max,
            cost,
        });
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
) -> anyhow::Result<(String, SocketAddr)> {
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
    Ok((
        format!("https://{HUB}:{}", config.federation.listen.port()),
        config.client_api.listen,
    ))
}

#[cfg(test)]
mod tests {
    use super::sum_counter;

    #[test]
    fn a_counter_sums_its_series_and_no_other() {
        let text = "# TYPE mimi_fanout_delivered_total counter\n\
            mimi_fanout_delivered_total{provider=\"a.example\",destination=\"b.example\"} 12\n\
            mimi_fanout_delivered_total{provider=\"a.example\",destination=\"c.example\"} 30\n\
            mimi_fanout_delivered_totally 99\n\
            mimi_fanout_requests_total{provider=\"a.example\"} 5\n";
        assert_eq!(sum_counter(text, "mimi_fanout_delivered_total"), 42.0);
        assert_eq!(sum_counter(text, "mimi_fanout_requests_total"), 5.0);
        assert_eq!(sum_counter("", "mimi_fanout_delivered_total"), 0.0);
    }
}
