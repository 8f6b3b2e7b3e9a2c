//! `mimi bench`: throughput and latency of the hub with real providers
//! over loopback mTLS (docs/performance.md).
//!
//! Parts: (a) `fanout` submitMessage → delivered at every member
//! provider; (b) `commit` hub commit validation by group size; (c)
//! `claims` keyMaterial claims under concurrent requesters; (d) `memory`
//! hub memory per room and member; `ceiling` a trivial mTLS HTTP/2
//! request loop on the same stack, so the hub's request rate can be given
//! as a fraction of it; `scale` fanout with 1, 2, … hub processes on one
//! PostgreSQL database. `all` runs everything on one set of providers
//! (`scale` only with `--store postgres`).

mod ceiling;
mod claims;
mod commit;
mod cost;
mod fanout;
mod memory;
mod net;
mod rooms;
mod scale;
mod stats;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::ValueEnum;
use mimi_server::config::FanoutConfig;

use net::{Net, StoreChoice};
use stats::{line, section};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Part {
    All,
    Fanout,
    Commit,
    Claims,
    Memory,
    Ceiling,
    Scale,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum StoreKind {
    Sqlite,
    Postgres,
}

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Which part to run.
    #[arg(value_enum, default_value = "all")]
    part: Part,
    /// Storage back end of the three providers.
    #[arg(long, value_enum, default_value = "sqlite")]
    store: StoreKind,
    /// PostgreSQL server for `--store postgres` (one fresh database per
    /// provider is created and dropped); default `$MIMI_TEST_POSTGRES_URL`,
    /// else postgres://postgres@127.0.0.1:5432/test.
    #[arg(long)]
    postgres_url: Option<String>,
    /// (a) Room sizes in clients (spread over the three providers).
    #[arg(long, value_delimiter = ',', default_value = "10,1000")]
    room_sizes: Vec<usize>,
    /// (a) Messages in the maximum-load phase (half as many at half load;
    /// rooms over 100 clients get proportionally fewer, at least 500).
    #[arg(long, default_value_t = 20_000)]
    messages: usize,
    /// Requests in flight (fanout maximum load and the ceiling).
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// (a) Runs of each load phase per room size; throughput and the
    /// half-load p99 are the medians over the runs.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// (a) Members at b.example and c.example that send.
    #[arg(long, default_value_t = 4)]
    senders: usize,
    /// Fanout workers per provider.
    #[arg(long, default_value_t = 4)]
    fanout_workers: usize,
    /// Most FanoutMessages per `/notify` body.
    #[arg(long, default_value_t = 256)]
    max_batch: u32,
    /// (b) Group sizes for the in-process commit measurement.
    #[arg(long, value_delimiter = ',', default_value = "10,100,1000")]
    commit_sizes: Vec<usize>,
    /// (b) Group sizes for commits through the hub server.
    #[arg(long, value_delimiter = ',', default_value = "10,100")]
    commit_server_sizes: Vec<usize>,
    /// (b) Repetitions per size in process.
    #[arg(long, default_value_t = 20)]
    commit_iterations: usize,
    /// (b) Commits per size through the server.
    #[arg(long, default_value_t = 10)]
    commits: usize,
    /// (c) KeyPackages claimed.
    #[arg(long, default_value_t = 10_000)]
    claims: usize,
    /// (c) Concurrent requesters.
    #[arg(long, default_value_t = 32)]
    requesters: usize,
    /// (d) Group sizes for the memory measurement.
    #[arg(long, value_delimiter = ',', default_value = "10,100,1000")]
    memory_sizes: Vec<usize>,
    /// (d) Restored copies held to measure resident memory.
    #[arg(long, default_value_t = 20)]
    memory_copies: usize,
    /// Scaling: hub process counts to measure (PostgreSQL only).
    #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
    scale_processes: Vec<usize>,
    /// Scaling: room size in clients.
    #[arg(long, default_value_t = 10)]
    scale_room_size: usize,
    /// Scaling: messages per process count.
    #[arg(long, default_value_t = 10_000)]
    scale_messages: usize,
    /// Scaling: how the followers spread submits over the hub processes:
    /// round robin, or each room's to one process (as a load balancer
    /// hashing the room id in the path would).
    #[arg(long, value_enum, default_value = "spread")]
    scale_route: scale::Route,
    /// Seconds of each ceiling loop (run before and after the measured
    /// parts, in windows of one second).
    #[arg(long, default_value_t = 6)]
    ceiling_secs: u64,
    /// How long to wait for deliveries after the last submit, seconds.
    #[arg(long, default_value_t = 120)]
    timeout_secs: u64,
    /// Keep the providers' data here (default: a temporary directory).
    #[arg(long)]
    dir: Option<PathBuf>,
}

impl BenchArgs {
    fn wants(&self, part: Part) -> bool {
        if part == Part::Scale && self.part == Part::All {
            return self.store == StoreKind::Postgres;
        }
        self.part == Part::All || self.part == part
    }

    fn messages_for(&self, size: usize) -> usize {
        if size <= 100 {
            self.messages
        } else {
            (self.messages * 100 / size).max(500).min(self.messages)
        }
    }
}

/// Runs the benchmark; an error if any measured request failed.
pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = match &args.dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            d.clone()
        }
        None => tmp.path().to_owned(),
    };
    let store = match args.store {
        StoreKind::Sqlite => StoreChoice::Sqlite,
        StoreKind::Postgres => StoreChoice::Postgres {
            admin_url: args
                .postgres_url
                .clone()
                .or_else(|| std::env::var("MIMI_TEST_POSTGRES_URL").ok())
                .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".into()),
        },
    };
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let fanout = FanoutConfig {
            workers: args.fanout_workers.max(1),
            max_batch: args.max_batch.max(1),
            poll_ms: 20,
            initial_backoff_ms: 50,
            ..Default::default()
        };
        let net = Net::start(&dir, &store, fanout).await?;
        let result = run_parts(&net, &args, &dir).await;
        net.shutdown().await;
        result
    })
}

async fn run_parts(net: &Net, args: &BenchArgs, dir: &std::path::Path) -> anyhow::Result<()> {
    let started = Instant::now();
    print_machine(net);
    // The yardstick runs before and after the measured parts: a fraction
    // of it is only as good as it is steady.
    let wants_ceiling = args.wants(Part::Ceiling) || args.wants(Part::Fanout);
    let ceiling_loop = |label: &'static str| {
        ceiling::run(
            net,
            Duration::from_secs(args.ceiling_secs),
            args.concurrency,
            330,
            label,
        )
    };
    let mut ceiling_before = None;
    if wants_ceiling {
        ceiling_before = Some(ceiling_loop("before").await?);
    }
    let mut fanouts = Vec::new();
    if args.wants(Part::Fanout) {
        for (i, &size) in args.room_sizes.iter().enumerate() {
            let params = fanout::FanoutParams {
                size,
                messages: args.messages_for(size),
                concurrency: args.concurrency,
                senders: args.senders,
                timeout: Duration::from_secs(args.timeout_secs),
                runs: args.runs,
            };
            fanouts.push(fanout::run(net, &params, &format!("fan{i}s{size}")).await?);
        }
    }
    let mut commits = None;
    if args.wants(Part::Commit) {
        commits = Some(
            commit::run(
                net,
                &args.commit_sizes,
                &args.commit_server_sizes,
                args.commit_iterations,
                args.commits,
            )
            .await?,
        );
    }
    let mut claims = None;
    if args.wants(Part::Claims) {
        claims = Some(claims::run(net, args.claims, args.requesters).await?);
    }
    if args.wants(Part::Memory) {
        memory::run(net, &args.memory_sizes, args.memory_copies).await?;
    }
    let mut scaling = Vec::new();
    if args.wants(Part::Scale) {
        scaling = scale::run(
            net,
            dir,
            &scale::ScaleParams {
                processes: &args.scale_processes,
                size: args.scale_room_size,
                messages: args.scale_messages,
                route: args.scale_route,
                concurrency: args.concurrency,
                senders: args.senders,
                timeout: Duration::from_secs(args.timeout_secs),
            },
        )
        .await?;
    }

    let mut ceiling_after = None;
    if wants_ceiling && args.part != Part::Ceiling {
        ceiling_after = Some(ceiling_loop("after").await?);
    }

    section(&format!("Summary ({})", net.store_name()));
    let mut ceiling = None;
    for (label, c) in [("before", &ceiling_before), ("after", &ceiling_after)] {
        if let Some(c) = c {
            line(&format!(
                "ceiling {label}: {} (round trip median {} ms, p99 {} ms)",
                c.describe(),
                stats::ms(c.latency.median),
                stats::ms(c.latency.p99)
            ));
        }
    }
    let windows: Vec<f64> = [&ceiling_before, &ceiling_after]
        .into_iter()
        .flatten()
        .flat_map(|c| c.window_rates.iter().copied())
        .collect();
    if !windows.is_empty() {
        let both = ceiling::median(&windows);
        line(&format!(
            "ceiling used below: {both:.0} requests/s, the median of all {} windows (spread {})",
            windows.len(),
            ceiling::spread(&windows)
        ));
        ceiling = Some(both);
    }
    for f in &fanouts {
        let rate = f.max.messages_per_sec();
        let fraction = ceiling
            .as_ref()
            .map(|c| format!("{:.1}%", 100.0 * rate / c))
            .unwrap_or_else(|| "n/a".into());
        let p99 = f
            .half
            .latency
            .map(|l| stats::ms(l.p99))
            .unwrap_or_else(|| "n/a".into());
        let runs = if f.max_rates.len() > 1 {
            format!("median of {} runs: ", f.max_rates.len())
        } else {
            String::new()
        };
        line(&format!(
            "(a) room {}: {runs}{rate:.0} submits/s = {:.0} fanned-out messages/s ({} providers) = {fraction} of the ceiling's requests/s; p99 at half load ({:.0}/s): {p99} ms",
            f.size,
            rate * f.providers as f64,
            f.providers,
            f.half_rate,
        ));
        let fanned = rate * f.providers as f64;
        let half_p99_ok = f
            .half
            .latency
            .is_some_and(|l| l.p99 < Duration::from_millis(50));
        line(&format!(
            "    target ≥30000 fanned-out/s: {}; p99 < 50 ms at half load: {}",
            verdict(fanned >= 30_000.0),
            verdict(half_p99_ok)
        ));
    }
    if let Some((pure, served)) = &commits {
        for p in pure {
            line(&format!(
                "(b) commit, {} members, in process: median {} ms, p99 {} ms{}",
                p.size,
                stats::ms(p.total.median),
                stats::ms(p.total.p99),
                if p.size == 1000 {
                    format!(
                        " — target < 20 ms: {}",
                        verdict(p.total.median < Duration::from_millis(20))
                    )
                } else {
                    String::new()
                }
            ));
        }
        if let [first, .., last] = pure.as_slice() {
            let time = last.total.median.as_secs_f64() / first.total.median.as_secs_f64();
            let size = last.size as f64 / first.size as f64;
            line(&format!(
                "    growth {}→{}: ×{time:.1} for ×{size:.0} members — no worse than linear: {}",
                first.size,
                last.size,
                verdict(time <= size)
            ));
        }
        for s in served {
            line(&format!(
                "(b) commit, {} members, through the server: median {} ms, p99 {} ms",
                s.size,
                stats::ms(s.round_trip.median),
                stats::ms(s.round_trip.p99)
            ));
        }
    }
    if let Some(c) = &claims {
        line(&format!(
            "(c) {:.0} claims/s (round trip median {} ms, p99 {} ms), {} double issues — target ≥5000/s with none: {}",
            c.claims_per_sec,
            stats::ms(c.latency.median),
            stats::ms(c.latency.p99),
            c.double_issues,
            verdict(c.claims_per_sec >= 5000.0 && c.double_issues == 0)
        ));
    }
    if let Some(base) = scaling.first() {
        let base_rate = base.max.messages_per_sec();
        for s in &scaling {
            let rate = s.max.messages_per_sec();
            line(&format!(
                "scaling: {} hub process(es) on one PostgreSQL: {rate:.0} messages/s at both followers (×{:.2} of {} process), {:.0} µs CPU per message",
                s.processes,
                rate / base_rate.max(1e-9),
                base.processes,
                s.cost.total_cpu() * 1e6 / s.max.delivered.max(1) as f64
            ));
        }
    }
    line(&format!(
        "total bench time {:.0} s",
        started.elapsed().as_secs_f64()
    ));
    if claims.as_ref().is_some_and(|c| c.double_issues > 0) {
        anyhow::bail!("a KeyPackage was issued twice");
    }
    Ok(())
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

fn print_machine(net: &Net) {
    section("Machine");
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
            })
        })
        .unwrap_or_else(|| "unknown".into());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().next().map(str::to_owned))
        .unwrap_or_default();
    line(&format!(
        "{cpus} CPUs ({model}); {mem}; store {}",
        net.store_name()
    ));
    if cfg!(debug_assertions) {
        line(
            "WARNING: debug build; use `cargo run --release -p mimi-cli -- bench` for real numbers",
        );
    }
}
