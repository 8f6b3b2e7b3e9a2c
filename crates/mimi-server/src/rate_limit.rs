//! Token buckets per requesting provider and per (provider, user), in a
//! bounded table (-06 §5.2 leaves abuse limits to providers;
//! docs/security.md "KeyPackage exhaustion").
//!
//! A request passes only if both its provider's bucket and its
//! (provider, user) bucket hold a token, so a provider rotating user names
//! still meets its provider-wide limit. Each bucket holds one minute's
//! worth of requests (the burst) and refills continuously.
//!
//! The table never holds more than its bound: when full, buckets that
//! have refilled completely (the same as no bucket) are dropped first,
//! then the least recently used. A provider's own bucket is touched by
//! every request it makes, so its traffic cannot push it out.
//!
//! The clock is the caller's `now`, so the limiter is deterministic.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// The limiter's settings (`[limits]` in the server configuration).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimits {
    /// Requests per minute (and burst) of one requesting provider.
    pub per_provider_per_minute: u32,
    /// Requests per minute (and burst) of one (provider, user).
    pub per_user_per_minute: u32,
    /// Most buckets kept (at least 2: one check may add two).
    pub max_buckets: usize,
}

/// A refused request: which bucket was empty and when to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RateLimited {
    #[error("too many requests from this provider; retry after {retry_after_secs} s")]
    Provider { retry_after_secs: u64 },
    #[error("too many requests for this user; retry after {retry_after_secs} s")]
    User { retry_after_secs: u64 },
}

impl RateLimited {
    pub fn retry_after_secs(&self) -> u64 {
        match self {
            Self::Provider { retry_after_secs } | Self::User { retry_after_secs } => {
                *retry_after_secs
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Provider(String),
    User(String, String),
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
    /// When it was last used, in checks (orders eviction even when the
    /// clock did not move).
    touched: u64,
}

#[derive(Debug, Default)]
struct Table {
    buckets: HashMap<Key, Bucket>,
    touches: u64,
}

impl Table {
    fn put(&mut self, key: Key, tokens: f64, at: Instant) {
        self.touches += 1;
        let touched = self.touches;
        self.buckets.insert(
            key,
            Bucket {
                tokens,
                at,
                touched,
            },
        );
    }
}

/// Burst size and refill rate of one kind of bucket.
#[derive(Debug, Clone, Copy)]
struct Rate {
    burst: f64,
    per_second: f64,
}

impl Rate {
    fn per_minute(n: u32) -> Self {
        let n = f64::from(n.max(1));
        Self {
            burst: n,
            per_second: n / 60.0,
        }
    }

    /// Tokens of `bucket` at `now`.
    fn refilled(&self, bucket: &Bucket, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        (bucket.tokens + elapsed * self.per_second).min(self.burst)
    }

    /// Whole seconds until `tokens` reaches one token.
    fn wait_secs(&self, tokens: f64) -> u64 {
        (((1.0 - tokens) / self.per_second).ceil() as u64).max(1)
    }
}

/// A per-provider and per-(provider, user) limiter with a bounded table.
#[derive(Debug)]
pub struct RateLimiter {
    provider: Rate,
    user: Rate,
    max_buckets: usize,
    table: Mutex<Table>,
}

impl RateLimiter {
    pub fn new(limits: RateLimits) -> Self {
        Self {
            provider: Rate::per_minute(limits.per_provider_per_minute),
            user: Rate::per_minute(limits.per_user_per_minute),
            max_buckets: limits.max_buckets.max(2),
            table: Mutex::default(),
        }
    }

    /// Takes one token from `provider`'s bucket and one from
    /// `(provider, user)`'s, or neither if either is empty.
    pub fn check(&self, provider: &str, user: &str, now: Instant) -> Result<(), RateLimited> {
        self.take(Some(provider), provider, user, now)
    }

    /// Takes one token from `(provider, user)`'s bucket only (a provider's
    /// own authenticated users, who must not starve each other).
    pub fn check_user(&self, provider: &str, user: &str, now: Instant) -> Result<(), RateLimited> {
        self.take(None, provider, user, now)
    }

    /// Buckets currently kept.
    pub fn len(&self) -> usize {
        self.table.lock().map(|t| t.buckets.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn take(
        &self,
        provider_wide: Option<&str>,
        provider: &str,
        user: &str,
        now: Instant,
    ) -> Result<(), RateLimited> {
        // A poisoned lock only means another check panicked midway; the
        // buckets are still valid numbers.
        let mut table = self
            .table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.make_room(&mut table.buckets, now);
        let provider = provider.to_ascii_lowercase();
        let provider_key = provider_wide.map(|_| Key::Provider(provider.clone()));
        let provider_tokens = provider_key
            .as_ref()
            .map(|key| self.tokens(&table.buckets, key, now));
        let user_key = Key::User(provider, user.to_owned());
        let user_tokens = self.tokens(&table.buckets, &user_key, now);
        let refusal = match provider_tokens {
            Some(tokens) if tokens < 1.0 => Some(RateLimited::Provider {
                retry_after_secs: self.provider.wait_secs(tokens),
            }),
            _ if user_tokens < 1.0 => Some(RateLimited::User {
                retry_after_secs: self.user.wait_secs(user_tokens),
            }),
            _ => None,
        };
        let taken = if refusal.is_some() { 0.0 } else { 1.0 };
        // A request refused by its provider's bucket adds no user bucket.
        if !matches!(refusal, Some(RateLimited::Provider { .. })) {
            table.put(user_key, user_tokens - taken, now);
        }
        // The provider's bucket is touched last: it is the newest.
        if let (Some(key), Some(tokens)) = (provider_key, provider_tokens) {
            table.put(key, tokens - taken, now);
        }
        refusal.map_or(Ok(()), Err)
    }

    fn rate(&self, key: &Key) -> Rate {
        match key {
            Key::Provider(_) => self.provider,
            Key::User(..) => self.user,
        }
    }

    /// Tokens of `key` at `now` (a missing bucket is full).
    fn tokens(&self, buckets: &HashMap<Key, Bucket>, key: &Key, now: Instant) -> f64 {
        let rate = self.rate(key);
        buckets
            .get(key)
            .map_or(rate.burst, |bucket| rate.refilled(bucket, now))
    }

    /// Leaves room for the two buckets one check may add. Sweeps down to
    /// 7/8 of the bound, so a sweep (linear in the table) happens at most
    /// once per eighth of the bound of new buckets.
    fn make_room(&self, buckets: &mut HashMap<Key, Bucket>, now: Instant) {
        if buckets.len() + 2 <= self.max_buckets {
            return;
        }
        buckets.retain(|key, bucket| self.rate(key).refilled(bucket, now) < self.rate(key).burst);
        let target = self
            .max_buckets
            .saturating_sub((self.max_buckets / 8).max(2));
        if buckets.len() <= target {
            return;
        }
        let excess = buckets.len() - target;
        let mut by_age: Vec<(u64, Key)> = buckets
            .iter()
            .map(|(key, bucket)| (bucket.touched, key.clone()))
            .collect();
        by_age.select_nth_unstable_by_key(excess - 1, |(touched, _)| *touched);
        for (_, key) in by_age.drain(..excess) {
            buckets.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn limiter(per_provider: u32, per_user: u32, max_buckets: usize) -> RateLimiter {
        RateLimiter::new(RateLimits {
            per_provider_per_minute: per_provider,
            per_user_per_minute: per_user,
            max_buckets,
        })
    }

    #[test]
    fn the_provider_limit_holds_while_user_names_rotate() {
        let limiter = limiter(10, 5, 1000);
        let now = Instant::now();
        for i in 0..10 {
            limiter
                .check("b.example", &format!("mimi://b.example/u/{i}"), now)
                .unwrap();
        }
        let refused = limiter.check("B.example", "mimi://b.example/u/new", now);
        assert_eq!(
            refused,
            Err(RateLimited::Provider {
                retry_after_secs: 6
            })
        );
        // Another provider is not affected.
        limiter
            .check("c.example", "mimi://c.example/u/0", now)
            .unwrap();
        // One token back after 6 s (10 per minute).
        let later = now + Duration::from_secs(6);
        limiter
            .check("b.example", "mimi://b.example/u/new", later)
            .unwrap();
        assert!(
            limiter
                .check("b.example", "mimi://b.example/u/other", later)
                .is_err()
        );
    }

    #[test]
    fn the_user_limit_holds_under_the_provider_limit() {
        let limiter = limiter(100, 3, 1000);
        let now = Instant::now();
        for _ in 0..3 {
            limiter
                .check("b.example", "mimi://b.example/u/bob", now)
                .unwrap();
        }
        assert_eq!(
            limiter.check("b.example", "mimi://b.example/u/bob", now),
            Err(RateLimited::User {
                retry_after_secs: 20
            })
        );
        limiter
            .check("b.example", "mimi://b.example/u/carol", now)
            .unwrap();
        // The refusal took no provider token: 100 - 4 are left.
        for i in 0..96 {
            limiter
                .check("b.example", &format!("mimi://b.example/u/{i}"), now)
                .unwrap();
        }
        assert!(matches!(
            limiter.check("b.example", "mimi://b.example/u/x", now),
            Err(RateLimited::Provider { .. })
        ));
    }

    #[test]
    fn check_user_ignores_the_provider_bucket() {
        let limiter = limiter(1, 2, 1000);
        let now = Instant::now();
        for i in 0..5 {
            for _ in 0..2 {
                limiter
                    .check_user("a.example", &format!("mimi://a.example/u/{i}"), now)
                    .unwrap();
            }
            assert!(
                limiter
                    .check_user("a.example", &format!("mimi://a.example/u/{i}"), now)
                    .is_err()
            );
        }
    }

    #[test]
    fn the_table_never_exceeds_its_bound() {
        const BOUND: usize = 64;
        let limiter = limiter(1_000_000, 5, BOUND);
        let start = Instant::now();
        for i in 0..10_000u64 {
            let now = start + Duration::from_millis(i);
            let provider = format!("p{}.example", i % 7);
            limiter
                .check(&provider, &format!("mimi://{provider}/u/{i}"), now)
                .unwrap();
            assert!(limiter.len() <= BOUND, "{} buckets", limiter.len());
        }
        // The active providers' buckets survive the sweeps: their limit
        // still holds.
        let limiter = self::limiter(20, 5, 16);
        let now = Instant::now();
        let mut accepted = 0;
        for i in 0..100 {
            if limiter
                .check("b.example", &format!("mimi://b.example/u/{i}"), now)
                .is_ok()
            {
                accepted += 1;
            }
            assert!(limiter.len() <= 16);
        }
        assert_eq!(accepted, 20);
    }

    #[test]
    fn full_buckets_are_dropped_before_recent_ones() {
        let limiter = limiter(1000, 5, 8);
        let start = Instant::now();
        // bob is limited now; six other users' buckets refill completely.
        for i in 0..3 {
            limiter
                .check("b.example", &format!("mimi://b.example/u/{i}"), start)
                .unwrap();
        }
        let later = start + Duration::from_secs(120);
        for _ in 0..5 {
            limiter
                .check("b.example", "mimi://b.example/u/bob", later)
                .unwrap();
        }
        for i in 10..13 {
            limiter
                .check("b.example", &format!("mimi://b.example/u/{i}"), later)
                .unwrap();
        }
        assert!(limiter.len() <= 8);
        assert!(
            limiter
                .check("b.example", "mimi://b.example/u/bob", later)
                .is_err(),
            "bob's empty bucket was kept"
        );
    }
}
