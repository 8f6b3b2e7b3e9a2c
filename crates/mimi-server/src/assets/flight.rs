//! Coalescing of concurrent first fetches ("single flight").
//!
//! When a picture is posted to a busy room, every member's device asks for
//! it within the same second, long before the first fetch has filled the
//! cache. Without coalescing each of those requests would go upstream (to
//! the asset provider at the hub, to the hub at a downloading provider),
//! multiplying exactly the traffic the cache exists to save and telling
//! the asset provider how many are downloading (-06 §5.10.2). [`Flights`]
//! lets the first request of a key do the work and every request that
//! arrives while it runs wait for, and share, its answer.
//!
//! The shared answer is the result, failures included, but only for the
//! requests that overlapped: once a flight lands it is forgotten, so the
//! next request after a failure tries again. If the request doing the
//! work goes away (its client disconnected), one of the waiters takes
//! over (tokio's `OnceCell::get_or_init`), and the last one to leave an
//! unfinished flight removes it, so abandoned keys never pile up.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::OnceCell;

/// The flights in progress, by key.
pub struct Flights<T> {
    in_flight: Mutex<HashMap<String, Arc<OnceCell<T>>>>,
}

/// How a [`Flights::run`] answer came about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Boarding {
    /// This request did the work.
    Led,
    /// This request waited for another's work and shares its answer.
    Joined,
}

impl<T: Clone> Default for Flights<T> {
    fn default() -> Self {
        Self {
            in_flight: Mutex::new(HashMap::new()),
        }
    }
}

impl<T> Flights<T> {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Arc<OnceCell<T>>>> {
        // A panic while holding the lock cannot leave the map inconsistent
        // (every update is one insert or remove).
        self.in_flight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl<T: Clone> Flights<T> {
    /// The answer of `work` for `key`: run here when no flight of `key`
    /// is in progress, else the answer of the one in progress.
    pub async fn run<F, Fut>(&self, key: &str, work: F) -> (T, Boarding)
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        let cell = self
            .lock()
            .entry(key.to_owned())
            .or_insert_with(|| Arc::new(OnceCell::new()))
            .clone();
        let seat = Seat {
            flights: self,
            key,
            cell,
        };
        let mut boarding = Boarding::Joined;
        let answer = seat
            .cell
            .get_or_init(|| {
                boarding = Boarding::Led;
                work()
            })
            .await
            .clone();
        (answer, boarding)
    }

    /// Flights in progress.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no flight is in progress.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One request's place on a flight; leaving it (answered or dropped)
/// removes the flight once it has landed, or once nobody is left on it.
struct Seat<'a, T> {
    flights: &'a Flights<T>,
    key: &'a str,
    cell: Arc<OnceCell<T>>,
}

impl<T> Drop for Seat<'_, T> {
    fn drop(&mut self) {
        let mut map = self.flights.lock();
        let ours = map
            .get(self.key)
            .is_some_and(|c| Arc::ptr_eq(c, &self.cell));
        // Seats join under this lock, so the count cannot grow meanwhile:
        // 2 is the map's reference and ours.
        if ours && (self.cell.initialized() || Arc::strong_count(&self.cell) == 2) {
            map.remove(self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test]
    async fn overlapping_requests_share_one_run() {
        let flights = Flights::<Result<u32, String>>::default();
        let runs = AtomicUsize::new(0);
        let (gate, opened) = tokio::sync::watch::channel(false);
        let request = || {
            let mut opened = opened.clone();
            flights.run("k", || {
                runs.fetch_add(1, Ordering::SeqCst);
                async move {
                    let _ = opened.wait_for(|open| *open).await;
                    Ok(7)
                }
            })
        };
        let all = futures_util::future::join_all((0..5).map(|_| request()));
        let opener = async {
            // Every request has boarded before the first may land.
            while Arc::strong_count(flights.lock().get("k").unwrap()) < 6 {
                tokio::task::yield_now().await;
            }
            gate.send(true).unwrap();
        };
        let (answers, ()) = tokio::join!(all, opener);
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert!(answers.iter().all(|(a, _)| *a == Ok(7)));
        let led = answers.iter().filter(|(_, b)| *b == Boarding::Led).count();
        assert_eq!(led, 1);
        assert!(flights.is_empty(), "a landed flight is forgotten");
    }

    #[tokio::test]
    async fn a_failure_is_not_kept_for_later_requests() {
        let flights = Flights::<Result<u32, String>>::default();
        let (first, boarding) = flights.run("k", || async { Err("down".into()) }).await;
        assert_eq!((first, boarding), (Err("down".to_owned()), Boarding::Led));
        let (second, boarding) = flights.run("k", || async { Ok(1) }).await;
        assert_eq!((second, boarding), (Ok(1), Boarding::Led));
        let (other, _) = flights.run("j", || async { Ok(2) }).await;
        assert_eq!(other, Ok(2), "keys are separate flights");
    }

    #[tokio::test]
    async fn a_waiter_takes_over_when_the_leader_goes_away() {
        let flights = Flights::<u32>::default();
        let leader = flights.run("k", std::future::pending::<u32>);
        // The leader runs until it is dropped by the timeout.
        let gone = tokio::time::timeout(Duration::from_millis(20), leader).await;
        assert!(gone.is_err());
        assert!(flights.is_empty(), "nobody left on the flight: removed");

        let runs = AtomicUsize::new(0);
        let mut stuck = Box::pin(flights.run("k", || {
            runs.fetch_add(1, Ordering::SeqCst);
            std::future::pending::<u32>()
        }));
        let mut waiter = Box::pin(flights.run("k", || {
            runs.fetch_add(1, Ordering::SeqCst);
            async { 9 }
        }));
        // The first request owns the work, the second waits for it; then
        // the first goes away.
        let once = Duration::from_millis(5);
        assert!(tokio::time::timeout(once, &mut stuck).await.is_err());
        assert!(tokio::time::timeout(once, &mut waiter).await.is_err());
        drop(stuck);
        let (answer, boarding) = waiter.await;
        assert_eq!((answer, boarding), (9, Boarding::Led));
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        assert!(flights.is_empty());
    }
}
