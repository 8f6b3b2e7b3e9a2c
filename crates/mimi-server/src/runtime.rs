//! What one server owns besides its configuration, store and keys: the
//! fanout wake-up, the keyMaterial limiter, the submit views and commit
//! rooms caches, its metrics recorder and the optional delivery observer.
//!
//! Each [`crate::state::AppState`] owns one [`ServerRuntime`]; two servers
//! in one process share nothing they were not given (a wake-up, counter or
//! bucket of one is never seen by the other).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use mimi_room::engine::SubmitView;
use mimi_room::stored::StoredRoom;
use tokio::sync::Notify;

use crate::batch::FanoutItem;
use crate::config::ServerConfig;
use crate::metrics::ServerMetrics;
use crate::rate_limit::{RateLimited, RateLimiter, RateLimits};

/// Sees every batch a server has durably queued for its own devices
/// (measurements: `mimi bench`). It runs on the delivery path, so it must
/// be cheap.
pub trait DeliveryObserver: Send + Sync {
    /// `provider` queued `items` of `room_id` for its devices.
    fn observe(&self, provider: &str, room_id: &str, items: &[FanoutItem]);
}

/// What a server is given at start besides its configuration.
#[derive(Default, Clone)]
pub struct StartOptions {
    /// Sees every batch this server queues for its devices; none by default.
    pub delivery_observer: Option<Arc<dyn DeliveryObserver>>,
}

impl std::fmt::Debug for StartOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StartOptions")
            .field("delivery_observer", &self.delivery_observer.is_some())
            .finish()
    }
}

/// One server's caches, limiter, wake-up and metrics.
pub struct ServerRuntime {
    fanout_wake: Notify,
    key_material_limiter: RateLimiter,
    submit_views: SubmitViews,
    commit_rooms: CommitRooms,
    submit_replies: Replies,
    update_replies: Replies,
    metrics: Arc<ServerMetrics>,
    delivery_observer: Option<Arc<dyn DeliveryObserver>>,
    /// Destinations whose last fanout attempt could not connect, and since
    /// when: probed by the fanout's recovery prober.
    unreachable: Mutex<HashMap<String, Instant>>,
}

impl ServerRuntime {
    pub fn new(config: &ServerConfig, options: StartOptions) -> Self {
        let limits = &config.limits;
        Self {
            fanout_wake: Notify::new(),
            key_material_limiter: RateLimiter::new(RateLimits {
                per_provider_per_minute: limits.key_material_per_provider_per_minute,
                per_user_per_minute: limits.key_material_per_user_per_minute,
                max_buckets: limits.rate_limit_buckets,
            }),
            submit_views: SubmitViews::default(),
            commit_rooms: CommitRooms::default(),
            submit_replies: Replies::default(),
            update_replies: Replies::default(),
            metrics: Arc::new(ServerMetrics::new(&config.domain)),
            delivery_observer: options.delivery_observer,
            unreachable: Mutex::new(HashMap::new()),
        }
    }

    /// Fanout to `destination` could not connect: probe it until it
    /// answers (kept from the first failure on).
    pub fn mark_unreachable(&self, destination: &str) {
        if let Ok(mut map) = self.unreachable.lock() {
            map.entry(destination.to_ascii_lowercase())
                .or_insert_with(Instant::now);
        }
    }

    /// Whether fanout is probing `destination`.
    pub fn is_unreachable(&self, destination: &str) -> bool {
        self.unreachable
            .lock()
            .is_ok_and(|map| map.contains_key(&destination.to_ascii_lowercase()))
    }

    /// Destinations to probe, with the time of their first failure.
    pub fn unreachable(&self) -> Vec<(String, Instant)> {
        self.unreachable
            .lock()
            .map(|map| map.iter().map(|(d, t)| (d.clone(), *t)).collect())
            .unwrap_or_default()
    }

    /// Stops probing `destination` (it answered, or probing gave up).
    pub fn forget_unreachable(&self, destination: &str) {
        if let Ok(mut map) = self.unreachable.lock() {
            map.remove(destination);
        }
    }

    /// Wakes this server's idle fanout workers now instead of at their
    /// next poll, e.g. right after the hub accepted an event.
    pub fn wake_fanout(&self) {
        self.fanout_wake.notify_waiters();
    }

    /// Resolves at the next [`Self::wake_fanout`].
    pub async fn fanout_woken(&self) {
        self.fanout_wake.notified().await;
    }

    /// Takes a keyMaterial token for `user` of the requesting `provider`
    /// (-06 §5.2): per provider and per user for a peer, per user only
    /// when `provider` is this server's own domain (its users are
    /// authenticated individually and must not starve each other).
    pub fn limit_key_material(
        &self,
        local_domain: &str,
        provider: &str,
        user: &str,
    ) -> Result<(), RateLimited> {
        let now = Instant::now();
        if provider.eq_ignore_ascii_case(local_domain) {
            self.key_material_limiter.check_user(provider, user, now)
        } else {
            self.key_material_limiter.check(provider, user, now)
        }
    }

    pub fn key_material_limiter(&self) -> &RateLimiter {
        &self.key_material_limiter
    }

    pub fn submit_views(&self) -> &SubmitViews {
        &self.submit_views
    }

    pub fn commit_rooms(&self) -> &CommitRooms {
        &self.commit_rooms
    }

    pub fn submit_replies(&self) -> &Replies {
        &self.submit_replies
    }

    /// Successful answers to recent update requests (commits, proposals).
    pub fn update_replies(&self) -> &Replies {
        &self.update_replies
    }

    /// This server's metrics recorder.
    pub fn metrics(&self) -> &Arc<ServerMetrics> {
        &self.metrics
    }

    /// Records through this server's recorder (see [`ServerMetrics::record`]).
    pub fn record<T>(&self, f: impl FnOnce() -> T) -> T {
        self.metrics.record(f)
    }

    /// Hands a queued batch to the delivery observer, if any.
    pub fn observe_delivery(&self, provider: &str, room_id: &str, items: &[FanoutItem]) {
        if let Some(observer) = &self.delivery_observer {
            observer.observe(provider, room_id, items);
        }
    }
}

/// A room's [`SubmitView`] and the state version it was made from.
pub struct CachedView {
    pub state_version: u64,
    pub view: SubmitView,
}

/// This server's submit views by room: a submit does not restore the
/// openmls PublicGroup from the stored bytes each time. The state version
/// a view was made from is the accept's compare-and-set, so a stale view
/// can never accept a message: it conflicts and is reloaded.
#[derive(Default)]
pub struct SubmitViews {
    views: Mutex<HashMap<String, Arc<CachedView>>>,
}

/// Rooms kept by [`SubmitViews`]; the map is emptied when full.
const SUBMIT_VIEW_CAPACITY: usize = 1024;

impl SubmitViews {
    pub fn get(&self, room_id: &str) -> Option<Arc<CachedView>> {
        self.views.lock().ok()?.get(room_id).cloned()
    }

    /// Caches `view` for `room_id`, or with `None` forgets the room.
    pub fn put(&self, room_id: &str, view: Option<Arc<CachedView>>) {
        let Ok(mut views) = self.views.lock() else {
            return;
        };
        match view {
            Some(view) => {
                if views.len() >= SUBMIT_VIEW_CAPACITY {
                    views.clear();
                }
                views.insert(room_id.to_owned(), view);
            }
            None => {
                views.remove(room_id);
            }
        }
    }
}

/// The decoded room each of this server's last accepted updates left,
/// with the state version it was stored as: the next update of the room
/// decides on it instead of restoring the PublicGroup from the stored
/// bytes (half of a 1000-member commit). Taken out for one decision and
/// put back only after a compare-and-set wrote its successor, so an entry
/// is always the room its state version's bytes decode to; an update that
/// finds another version (another process wrote, or a decision of this
/// one was refused) decodes the stored bytes.
pub struct CommitRooms {
    rooms: Mutex<CommitRoomsInner>,
}

struct CommitRoomsInner {
    /// Room id → (state version, encoded size, room).
    rooms: HashMap<String, (u64, usize, StoredRoom)>,
    bytes: usize,
}

/// The encoded size of the rooms [`CommitRooms`] keeps (their decoded
/// form is somewhat larger); when full it is emptied.
const COMMIT_ROOMS_BUDGET_BYTES: usize = 64 * 1024 * 1024;

impl Default for CommitRooms {
    fn default() -> Self {
        Self {
            rooms: Mutex::new(CommitRoomsInner {
                rooms: HashMap::new(),
                bytes: 0,
            }),
        }
    }
}

impl CommitRooms {
    /// Takes the room kept for `room_id` if it is the one stored as
    /// `state_version`; an entry of another version is dropped.
    pub fn take(&self, room_id: &str, state_version: u64) -> Option<StoredRoom> {
        let mut inner = self.rooms.lock().ok()?;
        let (version, size, room) = inner.rooms.remove(room_id)?;
        inner.bytes -= size;
        (version == state_version).then_some(room)
    }

    /// Keeps `room`, stored as `state_version` in `size` bytes.
    pub fn put(&self, room_id: &str, state_version: u64, size: usize, room: StoredRoom) {
        let Ok(mut inner) = self.rooms.lock() else {
            return;
        };
        if size > COMMIT_ROOMS_BUDGET_BYTES {
            return;
        }
        if inner.bytes + size > COMMIT_ROOMS_BUDGET_BYTES {
            inner.rooms.clear();
            inner.bytes = 0;
        }
        if let Some((_, old, _)) = inner
            .rooms
            .insert(room_id.to_owned(), (state_version, size, room))
        {
            inner.bytes -= old;
        }
        inner.bytes += size;
    }
}

/// Answers to recently accepted requests of one endpoint (submitMessage,
/// update), by room and digest of the request's encoding. A client whose
/// answer was lost re-sends the same bytes; the hub answers with the
/// original acceptance (for a message: same `accepted_timestamp`, same
/// frank) instead of acting twice (docs/divergences.md S26). In memory and
/// bounded: a resend after a restart of the hub process, or to another
/// process of the same provider, is processed again: a message is accepted
/// again and receivers' MLS drops the second copy; a commit gets
/// `wrongEpoch`, and its sender learns from the fanout whether the hub had
/// accepted it.
#[derive(Default)]
pub struct Replies {
    answers: Mutex<ReplyCache>,
}

/// A room and the digest of a request's encoding.
type ReplyKey = (String, [u8; 32]);

/// Answers by key, with when they were kept, and the keys oldest first.
#[derive(Default)]
struct ReplyCache {
    by_key: HashMap<ReplyKey, (Instant, Vec<u8>)>,
    order: VecDeque<ReplyKey>,
}

/// How many answers [`Replies`] keeps, and for how long.
const SUBMIT_REPLIES_KEPT: usize = 10_000;
const SUBMIT_REPLY_TTL: std::time::Duration = std::time::Duration::from_secs(600);

impl Replies {
    /// The encoded answer to an earlier identical request, if kept.
    pub fn get(&self, room_id: &str, digest: [u8; 32]) -> Option<Vec<u8>> {
        let answers = self.answers.lock().ok()?;
        answers
            .by_key
            .get(&(room_id.to_owned(), digest))
            .filter(|(at, _)| at.elapsed() < SUBMIT_REPLY_TTL)
            .map(|(_, answer)| answer.clone())
    }

    /// Keeps the encoded `answer` to the request with `digest`.
    pub fn put(&self, room_id: &str, digest: [u8; 32], answer: Vec<u8>) {
        let Ok(mut answers) = self.answers.lock() else {
            return;
        };
        let ReplyCache { by_key: map, order } = &mut *answers;
        let key = (room_id.to_owned(), digest);
        if map.insert(key.clone(), (Instant::now(), answer)).is_none() {
            order.push_back(key);
        }
        while order.len() > SUBMIT_REPLIES_KEPT {
            if let Some(oldest) = order.pop_front() {
                map.remove(&oldest);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    use super::*;

    fn config(domain: &str) -> ServerConfig {
        toml::from_str(&format!(
            r#"
domain = "{domain}"
[federation]
listen = "127.0.0.1:0"
[client_api]
listen = "127.0.0.1:0"
[tls]
ca = "ca.pem"
cert = "c.pem"
key = "c.key"
[limits]
key_material_per_provider_per_minute = 2
"#
        ))
        .unwrap()
    }

    fn runtime(domain: &str) -> ServerRuntime {
        ServerRuntime::new(&config(domain), StartOptions::default())
    }

    fn poll_once(future: std::pin::Pin<&mut impl Future<Output = ()>>) -> Poll<()> {
        future.poll(&mut Context::from_waker(Waker::noop()))
    }

    #[test]
    fn a_wake_up_reaches_only_its_own_server() {
        let (a, b) = (runtime("a.example"), runtime("b.example"));
        let mut woken = pin!(a.fanout_woken());
        assert!(poll_once(woken.as_mut()).is_pending());
        b.wake_fanout();
        assert!(poll_once(woken.as_mut()).is_pending());
        a.wake_fanout();
        assert!(poll_once(woken.as_mut()).is_ready());
    }

    #[test]
    fn metrics_and_limits_are_per_server() {
        let (a, b) = (runtime("a.example"), runtime("b.example"));
        a.record(|| metrics::counter!("mimi_test_total").increment(3));
        assert!(a.metrics().render().contains("mimi_test_total 3"));
        assert!(!b.metrics().render().contains("mimi_test_total"));

        for _ in 0..2 {
            a.limit_key_material("a.example", "c.example", "mimi://c.example/u/x")
                .unwrap();
        }
        assert!(
            a.limit_key_material("a.example", "c.example", "mimi://c.example/u/y")
                .is_err()
        );
        assert!(b.key_material_limiter().is_empty());
        b.limit_key_material("b.example", "c.example", "mimi://c.example/u/y")
            .unwrap();
    }

    #[test]
    fn the_observer_given_at_start_sees_deliveries() {
        #[derive(Default)]
        struct Seen(Mutex<Vec<String>>);
        impl DeliveryObserver for Seen {
            fn observe(&self, provider: &str, room_id: &str, items: &[FanoutItem]) {
                let mut seen = self.0.lock().unwrap();
                seen.push(format!("{provider} {room_id} {}", items.len()));
            }
        }
        let seen = Arc::new(Seen::default());
        let with = ServerRuntime::new(
            &config("a.example"),
            StartOptions {
                delivery_observer: Some(seen.clone()),
            },
        );
        with.observe_delivery("a.example", "mimi://a.example/r/x", &[]);
        runtime("b.example").observe_delivery("b.example", "mimi://b.example/r/x", &[]);
        assert_eq!(
            *seen.0.lock().unwrap(),
            ["a.example mimi://a.example/r/x 0"]
        );
    }
}
