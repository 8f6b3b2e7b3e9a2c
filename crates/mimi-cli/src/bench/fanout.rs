//! (a) submitMessage → delivered at every member provider.
//!
//! Followers b.example and c.example send real `SubmitMessageRequest`s
//! over mTLS HTTP/2 to the hub's `/v1/submitMessage/{roomId}` (-06 §5.4).
//! The PrivateMessages are made by real openmls members before timing
//! starts: the hub never decrypts, so client cost stays out of the
//! measurement. -06 §5.4 carries one message per request, so load comes
//! from concurrent requests; the hub batches on the way out (one `/notify`
//! per lane with up to `fanout.max_batch` FanoutMessages, -06 §5.5).
//!
//! A message counts as delivered at a provider when that provider's
//! delivery transaction (`/notify` handler, or the hub's in-process
//! delivery to its own users) has committed the client queue entries for
//! every subscribed member device.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use mimi_protocol::msgs::{SubmitMessageRequest, SubmitMessageResponse, SubmitStatus};
use mimi_protocol::{IdentifierUri, Protocol};
use mimi_server::batch::FanoutItem;
use mimi_server::runtime::DeliveryObserver;
use tls_codec::Size as _;
use tokio::sync::{Notify, Semaphore};

use super::net::{self, HUB, Net, room_path};
use super::rooms::{self, Group};
use super::stats::{Summary, line, section};

/// Every benchmark room has members at a, b and c.
const PROVIDERS: usize = 3;

/// Identifies a benchmark message by its MLSMessage bytes.
fn message_key(bytes: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

/// Tracks when each message was sent and when its last provider delivery
/// committed.
struct Tracker {
    base: Instant,
    room: String,
    /// Deliveries by this provider are not counted (the hub's own, when
    /// some hub processes are outside this process).
    skip_domain: Option<&'static str>,
    /// key → (index, deliveries still missing)
    pending: Mutex<HashMap<u64, (usize, usize)>>,
    sent: Mutex<Vec<Option<Duration>>>,
    done: Mutex<Vec<Option<Duration>>>,
    remaining: AtomicUsize,
    all_done: Notify,
}

impl DeliveryObserver for Tracker {
    fn observe(&self, domain: &str, room: &str, items: &[FanoutItem]) {
        if room != self.room || self.skip_domain == Some(domain) {
            return;
        }
        let now = self.base.elapsed();
        let mut finished = Vec::new();
        if let Ok(mut pending) = self.pending.lock() {
            for item in items {
                // FanoutMessage = timestamp (uint64) || MLSMessage || body.
                let len = item.message.message.tls_serialized_len();
                let Some(bytes) = item.encoded.get(8..8 + len) else {
                    continue;
                };
                if let Some((index, left)) = pending.get_mut(&message_key(bytes)) {
                    *left -= 1;
                    if *left == 0 {
                        finished.push(*index);
                    }
                }
            }
        }
        if finished.is_empty() {
            return;
        }
        if let Ok(mut done) = self.done.lock() {
            for i in &finished {
                done[*i] = Some(now);
            }
        }
        if self.remaining.fetch_sub(finished.len(), Ordering::AcqRel) == finished.len() {
            self.all_done.notify_one();
        }
    }
}

impl Tracker {
    fn new(
        room: &str,
        providers: usize,
        skip_domain: Option<&'static str>,
        keys: &[u64],
    ) -> Arc<Self> {
        let pending = keys
            .iter()
            .enumerate()
            .map(|(i, k)| (*k, (i, providers)))
            .collect();
        Arc::new(Self {
            base: Instant::now(),
            room: room.to_owned(),
            skip_domain,
            pending: Mutex::new(pending),
            sent: Mutex::new(vec![None; keys.len()]),
            done: Mutex::new(vec![None; keys.len()]),
            remaining: AtomicUsize::new(keys.len()),
            all_done: Notify::new(),
        })
    }

    fn mark_sent(&self, index: usize) {
        let now = self.base.elapsed();
        if let Ok(mut sent) = self.sent.lock() {
            sent[index] = Some(now);
        }
    }

    /// Latencies of completed messages, and the span from the first send
    /// to the last delivery.
    fn results(&self) -> (Vec<Duration>, Duration, usize) {
        let sent = self.sent.lock().map(|s| s.clone()).unwrap_or_default();
        let done = self.done.lock().map(|d| d.clone()).unwrap_or_default();
        let mut latencies = Vec::new();
        let first = sent.iter().flatten().min().copied().unwrap_or_default();
        let mut last = first;
        for (s, d) in sent.iter().zip(&done) {
            if let (Some(s), Some(d)) = (s, d) {
                latencies.push(d.saturating_sub(*s));
                last = last.max(*d);
            }
        }
        let completed = latencies.len();
        (latencies, last.saturating_sub(first), completed)
    }
}

/// A pre-encoded submit request with the provider that sends it.
pub(super) struct Submit {
    source: &'static str,
    body: Vec<u8>,
    key: u64,
}

pub(super) fn prepare(group: &mut Group, count: usize, phase: &str) -> anyhow::Result<Vec<Submit>> {
    let senders = group.senders.len();
    ensure!(senders > 0, "the room has no senders");
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let sender = &mut group.senders[i % senders];
        let text = format!("{phase} message {i}: a short benchmark text of about one line");
        let message = rooms::app_message(sender, text.as_bytes())?;
        let key = message_key(&mimi_protocol::encode(&message)?);
        let source = if sender.device.contains("//b.example/") {
            "b.example"
        } else {
            "c.example"
        };
        let request = SubmitMessageRequest {
            protocol: Protocol::Mls10,
            app_message: message,
            sending_uri: IdentifierUri::new(sender.user()),
        };
        out.push(Submit {
            source,
            body: mimi_protocol::encode(&request)?,
            key,
        });
    }
    Ok(out)
}

/// What one load phase measured.
pub struct PhaseResult {
    pub sent: usize,
    pub delivered: usize,
    pub span: Duration,
    pub latency: Option<Summary>,
    pub submit_rtt: Option<Summary>,
}

impl PhaseResult {
    pub fn messages_per_sec(&self) -> f64 {
        self.delivered as f64 / self.span.as_secs_f64().max(1e-9)
    }
}

/// Per-room-size results.
pub struct FanoutResult {
    pub size: usize,
    pub providers: usize,
    /// The maximum-load run with the median throughput.
    pub max: PhaseResult,
    /// Throughput of every maximum-load run, messages/s, sorted.
    pub max_rates: Vec<f64>,
    pub half_rate: f64,
    /// The half-load run with the median p99.
    pub half: PhaseResult,
}

pub struct FanoutParams {
    pub size: usize,
    pub messages: usize,
    pub concurrency: usize,
    pub senders: usize,
    pub timeout: Duration,
    /// Runs of each phase; throughput and p99 are the medians over them.
    pub runs: usize,
}

/// What every phase against one room shares: where its submits go, how
/// many are in flight, and whose deliveries it waits for.
pub(super) struct Phases {
    pub room: String,
    /// Federation base URLs of the hub's processes; submits go round robin.
    pub hub_urls: Vec<String>,
    /// Count the hub's own deliveries (false when some hub processes run
    /// outside this process, where they cannot be observed).
    pub count_hub: bool,
    /// Requests in flight in a closed-loop phase.
    pub concurrency: usize,
    /// How long to wait for deliveries after the last submit.
    pub timeout: Duration,
}

impl Phases {
    /// The in-process hub, every provider counted.
    pub fn at_hub(net: &Net, room: &str, concurrency: usize, timeout: Duration) -> Self {
        Self {
            room: room.to_owned(),
            hub_urls: vec![net.url(HUB)],
            count_hub: true,
            concurrency,
            timeout,
        }
    }
}

/// Closed loop (`rate` None: `phases.concurrency` requests in flight) or
/// open loop (`rate` requests per second, in flight as needed).
pub(super) async fn run_phase(
    net: &Net,
    phases: &Phases,
    submits: Vec<Submit>,
    rate: Option<f64>,
) -> anyhow::Result<PhaseResult> {
    let Phases {
        room,
        hub_urls,
        count_hub,
        concurrency,
        timeout,
    } = phases;
    let (room, concurrency, timeout) = (room.as_str(), *concurrency, *timeout);
    let keys: Vec<u64> = submits.iter().map(|s| s.key).collect();
    let (providers, skip) = if *count_hub {
        (PROVIDERS, None)
    } else {
        (PROVIDERS - 1, Some(HUB))
    };
    let tracker = Tracker::new(room, providers, skip, &keys);
    net.set_delivery_observer(Some(tracker.clone()));
    let clients: HashMap<&str, reqwest::Client> = [
        ("b.example", net.client_as("b.example")?),
        ("c.example", net.client_as("c.example")?),
    ]
    .into_iter()
    .collect();
    let urls: Vec<String> = hub_urls
        .iter()
        .map(|base| format!("{base}/v1/submitMessage/{}", room_path(room)))
        .collect();
    let limit = Arc::new(Semaphore::new(if rate.is_some() {
        4096
    } else {
        concurrency
    }));
    let rtts = Arc::new(Mutex::new(Vec::with_capacity(submits.len())));
    let errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (i, submit) in submits.into_iter().enumerate() {
        if let Some(rate) = rate {
            let at = started + Duration::from_secs_f64(i as f64 / rate);
            tokio::time::sleep_until(at.into()).await;
        }
        let permit = limit.clone().acquire_owned().await?;
        let client = clients[submit.source].clone();
        let (url, tracker, rtts, errors) = (
            urls[i % urls.len()].clone(),
            tracker.clone(),
            rtts.clone(),
            errors.clone(),
        );
        tasks.spawn(async move {
            let t0 = Instant::now();
            tracker.mark_sent(i);
            let outcome = net::post(&client, submit.source, &url, submit.body).await;
            let rtt = t0.elapsed();
            drop(permit);
            match outcome.and_then(|(status, body)| {
                ensure!(
                    status == reqwest::StatusCode::OK,
                    "submitMessage answered {status}"
                );
                let response: SubmitMessageResponse = mimi_protocol::decode_exact(&body)?;
                match response.status {
                    SubmitStatus::Accepted { .. } => Ok(()),
                    other => bail!("submitMessage refused: {other:?}"),
                }
            }) {
                Ok(()) => rtts.lock().map(|mut r| r.push(rtt)).unwrap_or(()),
                Err(e) => errors
                    .lock()
                    .map(|mut v| v.push(format!("{e:#}")))
                    .unwrap_or(()),
            }
        });
        // Reap finished tasks so the set does not grow without bound.
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let errors = errors.lock().map(|e| e.clone()).unwrap_or_default();
    if let Some(first) = errors.first() {
        net.set_delivery_observer(None);
        bail!("{} submits failed; first: {first}", errors.len());
    }
    let waited = tokio::time::timeout(timeout, async {
        while tracker.remaining.load(Ordering::Acquire) > 0 {
            tokio::select! {
                _ = tracker.all_done.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
        }
    })
    .await;
    net.set_delivery_observer(None);
    let (latencies, span, delivered) = tracker.results();
    if waited.is_err() {
        line(&format!(
            "WARNING: {} of {} messages not delivered everywhere within {:?}",
            keys.len() - delivered,
            keys.len(),
            timeout
        ));
    }
    let rtts = rtts.lock().map(|r| r.clone()).unwrap_or_default();
    Ok(PhaseResult {
        sent: keys.len(),
        delivered,
        span,
        latency: Summary::of(&latencies),
        submit_rtt: Summary::of(&rtts),
    })
}

/// Builds and hosts a room of `params.size` clients, then measures the
/// maximum sustained rate and the latency at half of it.
pub async fn run(net: &Net, params: &FanoutParams, tag: &str) -> anyhow::Result<FanoutResult> {
    section(&format!(
        "(a) submitMessage → delivered at every member provider, room of {} clients, {}",
        params.size,
        net.store_name()
    ));
    let setup = Instant::now();
    let mut group = rooms::build_group(tag, params.size, params.senders, rooms::hub_sender(net))?;
    let room = rooms::host(net, &group, tag).await?;
    let runs = params.runs.max(1);
    let warmup = prepare(&mut group, (params.messages / 20).clamp(50, 500), "warmup")?;
    let mut max_loads = Vec::with_capacity(runs);
    let mut half_loads = Vec::with_capacity(runs);
    for run in 0..runs {
        max_loads.push(prepare(&mut group, params.messages, &format!("max{run}"))?);
        half_loads.push(prepare(
            &mut group,
            params.messages / 2,
            &format!("half{run}"),
        )?);
    }
    line(&format!(
        "setup (group, hosting, {} ciphertexts): {:.1} s",
        params.messages * 3 / 2 * runs,
        setup.elapsed().as_secs_f64()
    ));
    let phases = Phases::at_hub(net, &room, params.concurrency, params.timeout);
    run_phase(net, &phases, warmup, None)
        .await
        .context("warm-up")?;
    let per_device = params.size as f64;
    let mut maxes = Vec::with_capacity(runs);
    for (run, load) in max_loads.into_iter().enumerate() {
        let max = run_phase(net, &phases, load, None).await?;
        report(&format!("max load, run {}", run + 1), &max, per_device);
        maxes.push(max);
    }
    maxes.sort_by(|a, b| a.messages_per_sec().total_cmp(&b.messages_per_sec()));
    let max_rates: Vec<f64> = maxes.iter().map(PhaseResult::messages_per_sec).collect();
    let max = maxes.swap_remove(runs / 2);
    let half_rate = max.messages_per_sec() / 2.0;
    let mut halves = Vec::with_capacity(runs);
    for (run, load) in half_loads.into_iter().enumerate() {
        let half = run_phase(net, &phases, load, Some(half_rate)).await?;
        report(
            &format!(
                "half load ({half_rate:.0} submits/s offered), run {}",
                run + 1
            ),
            &half,
            per_device,
        );
        halves.push(half);
    }
    let p99 = |r: &PhaseResult| r.latency.map(|l| l.p99).unwrap_or(Duration::MAX);
    halves.sort_by_key(p99);
    let half_p99s: Vec<Duration> = halves.iter().map(p99).collect();
    let half = halves.swap_remove(runs / 2);
    if runs > 1 {
        line(&format!(
            "median of {runs} runs: {:.0} messages/s at maximum load (runs: {}); half-load p99 {} ms (runs: {} ms)",
            max.messages_per_sec(),
            max_rates
                .iter()
                .map(|r| format!("{r:.0}"))
                .collect::<Vec<_>>()
                .join(", "),
            super::stats::ms(p99(&half)),
            half_p99s
                .iter()
                .map(|d| super::stats::ms(*d))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(FanoutResult {
        size: params.size,
        providers: PROVIDERS,
        max,
        max_rates,
        half_rate,
        half,
    })
}

fn report(what: &str, r: &PhaseResult, devices: f64) {
    let rate = r.messages_per_sec();
    line(&format!(
        "{what}: {}/{} messages delivered in {:.2} s: {rate:.0} messages/s, {:.0} provider deliveries/s (×3 providers), {:.0} member-queue entries/s",
        r.delivered,
        r.sent,
        r.span.as_secs_f64(),
        rate * 3.0,
        rate * devices,
    ));
    if let Some(l) = &r.latency {
        line(&format!(
            "  end-to-end (submit → last provider committed): {}",
            l.ms()
        ));
    }
    if let Some(s) = &r.submit_rtt {
        line(&format!("  submitMessage round trip: {}", s.ms()));
    }
}
