//! A byte-budgeted LRU cache of downloaded asset bodies, keyed by URL.
//!
//! -06 §5.10.2: "Both the downloading provider and the hub can cache
//! requests. This would tend to hide from the asset provider the number of
//! downloading participants in a specific room". Asset bodies are
//! ciphertext checked against `contentHash` by the receiver
//! (draft-ietf-mimi-content §External content), so a cached body is as
//! good as a fresh one and the cache needs no validation of its own.
//!
//! Key the cache by the URL [`DownloadTargets::check`] returned
//! (normalized), not the string a requester sent.
//!
//! The structure is plain data with `&mut self` methods; a server shares
//! it behind a mutex. Bodies are `Arc<[u8]>` so a hit is a reference count,
//! not a copy. There is no time-based expiry: the cost of an entry is what
//! bounds it, and the budget evicts the least recently used.
//!
//! [`DownloadTargets::check`]: crate::target::DownloadTargets::check

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Counters and sizes of a [`DownloadCache`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheStats {
    /// `get` calls that found a body.
    pub hits: u64,
    /// `get` calls that found none.
    pub misses: u64,
    /// Entries dropped to make room for another.
    pub evictions: u64,
    /// Bodies `put` refused as larger than the per-entry limit or the
    /// whole budget.
    pub rejected: u64,
    /// Entries held.
    pub entries: usize,
    /// Bytes held: the sum of every entry's URL and body lengths.
    pub bytes: usize,
}

#[derive(Debug)]
struct Entry {
    body: Arc<[u8]>,
    tick: u64,
}

/// A least-recently-used cache of asset bodies within a byte budget.
#[derive(Debug)]
pub struct DownloadCache {
    max_bytes: usize,
    max_entry_bytes: usize,
    entries: HashMap<String, Entry>,
    /// Recency: tick of last use → URL, oldest first.
    order: BTreeMap<u64, String>,
    tick: u64,
    stats: CacheStats,
}

/// What an entry costs against the budget: its body and its URL.
fn cost(url: &str, body: &[u8]) -> usize {
    url.len().saturating_add(body.len())
}

impl DownloadCache {
    /// A cache holding at most `max_bytes` (URLs and bodies) and no body
    /// longer than `max_entry_bytes`. A zero budget caches nothing.
    pub fn new(max_bytes: usize, max_entry_bytes: usize) -> Self {
        DownloadCache {
            max_bytes,
            max_entry_bytes,
            entries: HashMap::new(),
            order: BTreeMap::new(),
            tick: 0,
            stats: CacheStats::default(),
        }
    }

    fn next_tick(&mut self) -> u64 {
        self.tick = self.tick.wrapping_add(1);
        self.tick
    }

    /// The body cached for `url`, which becomes the most recently used.
    pub fn get(&mut self, url: &str) -> Option<Arc<[u8]>> {
        let tick = self.next_tick();
        let Some(entry) = self.entries.get_mut(url) else {
            self.stats.misses += 1;
            return None;
        };
        if let Some(key) = self.order.remove(&entry.tick) {
            self.order.insert(tick, key);
        }
        entry.tick = tick;
        self.stats.hits += 1;
        Some(entry.body.clone())
    }

    /// Whether `url` is cached, without counting or refreshing it.
    pub fn contains(&self, url: &str) -> bool {
        self.entries.contains_key(url)
    }

    /// Caches `body` for `url` as the most recently used entry, evicting
    /// least recently used entries until it fits. Returns `false`, and
    /// drops any older body for `url`, when the body is longer than the
    /// per-entry limit or the entry exceeds the whole budget.
    pub fn put(&mut self, url: impl Into<String>, body: impl Into<Arc<[u8]>>) -> bool {
        let url = url.into();
        let body = body.into();
        self.remove(&url);
        let cost = cost(&url, &body);
        if body.len() > self.max_entry_bytes || cost > self.max_bytes {
            self.stats.rejected += 1;
            return false;
        }
        while self.stats.bytes.saturating_add(cost) > self.max_bytes {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            if let Some(entry) = self.entries.remove(&oldest) {
                self.stats.bytes -= self::cost(&oldest, &entry.body);
                self.stats.evictions += 1;
            }
        }
        let tick = self.next_tick();
        self.order.insert(tick, url.clone());
        self.entries.insert(url, Entry { body, tick });
        self.stats.bytes += cost;
        self.stats.entries = self.entries.len();
        true
    }

    /// Drops the body cached for `url` (not counted as an eviction).
    pub fn remove(&mut self, url: &str) -> Option<Arc<[u8]>> {
        let entry = self.entries.remove(url)?;
        self.order.remove(&entry.tick);
        self.stats.bytes -= cost(url, &entry.body);
        self.stats.entries = self.entries.len();
        Some(entry.body)
    }

    /// Drops every entry, keeping the counters.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.order.clear();
        self.stats.bytes = 0;
        self.stats.entries = 0;
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no entry is cached.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Counters and sizes.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            entries: self.entries.len(),
            ..self.stats
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn body(n: usize) -> Vec<u8> {
        vec![7u8; n]
    }

    /// URLs of one byte each keep the arithmetic readable.
    #[test]
    fn evicts_the_least_recently_used_first() {
        let mut c = DownloadCache::new(33, 100);
        assert!(c.put("a", body(10)));
        assert!(c.put("b", body(10)));
        assert!(c.put("c", body(10)));
        assert_eq!(c.stats().bytes, 33);
        // Touch "a": "b" is now the oldest.
        assert!(c.get("a").is_some());
        assert!(c.put("d", body(10)));
        assert!(!c.contains("b"));
        assert!(c.contains("a") && c.contains("c") && c.contains("d"));
        assert!(c.put("e", body(10)));
        assert!(!c.contains("c"), "c was older than a and d");
        assert_eq!(c.stats().evictions, 2);
    }

    #[test]
    fn a_large_entry_evicts_as_many_as_it_needs() {
        let mut c = DownloadCache::new(40, 100);
        for k in ["a", "b", "c", "d"] {
            assert!(c.put(k, body(9)));
        }
        assert_eq!(c.stats().bytes, 40);
        assert!(c.put("big", body(20)));
        assert!(!c.contains("a") && !c.contains("b") && !c.contains("c"));
        assert!(c.contains("d") && c.contains("big"));
        assert_eq!(c.stats().bytes, 10 + 23);
        assert_eq!(c.stats().evictions, 3);
    }

    #[test]
    fn oversized_bodies_are_refused_and_drop_the_old_body() {
        let mut c = DownloadCache::new(100, 20);
        assert!(c.put("a", body(20)));
        assert!(!c.put("a", body(21)), "over the per-entry limit");
        assert!(!c.contains("a"), "a stale body is not kept");
        assert!(!c.put("b", body(20).repeat(6)));
        let mut small = DownloadCache::new(10, 100);
        assert!(!small.put("abc", body(8)), "entry cost 11 over budget 10");
        assert_eq!(small.stats().rejected, 1);
        assert_eq!(c.stats().rejected, 2);
        assert_eq!(c.stats().bytes, 0);
    }

    #[test]
    fn replacing_a_body_updates_the_byte_count() {
        let mut c = DownloadCache::new(100, 100);
        assert!(c.put("a", body(10)));
        assert!(c.put("a", body(30)));
        assert_eq!(c.len(), 1);
        assert_eq!(c.stats().bytes, 31);
        assert_eq!(c.get("a").as_deref().map(<[u8]>::len), Some(30));
        assert_eq!(c.stats().evictions, 0);
    }

    #[test]
    fn counts_hits_and_misses_and_shares_bodies() {
        let mut c = DownloadCache::new(100, 100);
        assert!(c.get("a").is_none());
        c.put("a", body(5));
        let one = c.get("a").expect("hit");
        let two = c.get("a").expect("hit");
        assert!(Arc::ptr_eq(&one, &two), "a hit shares the body");
        assert!(!c.contains("b"));
        let s = c.stats();
        assert_eq!((s.hits, s.misses, s.entries, s.bytes), (2, 1, 1, 6));
    }

    #[test]
    fn remove_and_clear_free_the_budget() {
        let mut c = DownloadCache::new(100, 100);
        c.put("a", body(5));
        c.put("b", body(5));
        assert_eq!(c.remove("a").as_deref(), Some(&body(5)[..]));
        assert_eq!(c.remove("a"), None);
        assert_eq!(c.stats().bytes, 6);
        c.clear();
        assert!(c.is_empty());
        assert_eq!(c.stats().bytes, 0);
        assert_eq!(c.stats().evictions, 0);
    }

    #[test]
    fn a_zero_budget_caches_nothing() {
        let mut c = DownloadCache::new(0, 0);
        assert!(!c.put("a", Vec::new()));
        assert!(c.is_empty());
    }

    #[derive(Debug, Clone)]
    enum Op {
        Put(u8, usize),
        Get(u8),
        Remove(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u8..8, 0usize..40).prop_map(|(k, n)| Op::Put(k, n)),
            (0u8..8).prop_map(Op::Get),
            (0u8..8).prop_map(Op::Remove),
        ]
    }

    proptest! {
        /// Against a model (a Vec, most recent last): same contents, same
        /// order of eviction, within budget.
        #[test]
        fn prop_matches_a_simple_lru_model(ops in prop::collection::vec(op(), 0..200), max in 0usize..120, max_entry in 0usize..40) {
            let mut c = DownloadCache::new(max, max_entry);
            let mut model: Vec<(String, usize)> = Vec::new();
            for op in ops {
                match op {
                    Op::Put(k, n) => {
                        let key = format!("k{k}");
                        model.retain(|(m, _)| *m != key);
                        let stored = c.put(key.clone(), body(n));
                        let fits = n <= max_entry && key.len() + n <= max;
                        prop_assert_eq!(stored, fits);
                        if fits {
                            while model.iter().map(|(m, b)| m.len() + b).sum::<usize>() + key.len() + n > max {
                                model.remove(0);
                            }
                            model.push((key, n));
                        }
                    }
                    Op::Get(k) => {
                        let key = format!("k{k}");
                        let got = c.get(&key).map(|b| b.len());
                        let pos = model.iter().position(|(m, _)| *m == key);
                        prop_assert_eq!(got, pos.map(|i| model[i].1));
                        if let Some(i) = pos {
                            let e = model.remove(i);
                            model.push(e);
                        }
                    }
                    Op::Remove(k) => {
                        let key = format!("k{k}");
                        let had = model.iter().any(|(m, _)| *m == key);
                        model.retain(|(m, _)| *m != key);
                        prop_assert_eq!(c.remove(&key).is_some(), had);
                    }
                }
                let bytes: usize = model.iter().map(|(m, b)| m.len() + b).sum();
                prop_assert_eq!(c.stats().bytes, bytes);
                prop_assert!(bytes <= max);
                prop_assert_eq!(c.len(), model.len());
            }
        }
    }
}
