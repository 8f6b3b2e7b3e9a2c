//! What a measured phase costs, per message: CPU time of this process, of
//! the hub's child processes and of the PostgreSQL server (split by
//! database), and the databases' transactions, rows and WAL bytes. These are
//! the per-message costs docs/scaling.md builds its model on.
//!
//! CPU time comes from `/proc/<pid>/stat` (user + system, including waited-for
//! children: an exited PostgreSQL backend's time moves to the postmaster), so
//! it is Linux-only and counts only processes on this machine; elsewhere the
//! figures are reported as unavailable. PostgreSQL's counters come from
//! `pg_stat_database`, which backends update at most once a second, so the
//! closing sample waits for that flush.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use sqlx::Connection;

use super::stats::line;

/// Clock ticks per second of `/proc/<pid>/stat` (`USER_HZ`, 100 on Linux).
const TICKS_PER_SEC: f64 = 100.0;

/// How long backends may hold their statistics before `pg_stat_database`
/// shows them (PostgreSQL flushes at most once per second).
const STATS_FLUSH: Duration = Duration::from_millis(1_500);

/// CPU time (user + system, with waited-for children) of process `pid`, in
/// clock ticks, and its `comm`.
fn process_ticks(pid: &str) -> Option<(String, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `comm` is in parentheses and may contain spaces: split at the last ')'.
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.to_owned();
    let fields: Vec<&str> = stat.get(close + 1..)?.split_whitespace().collect();
    // Fields 14–17 of proc(5) (utime, stime, cutime, cstime); the slice
    // starts at field 3.
    let ticks = fields
        .get(11..15)?
        .iter()
        .map(|f| f.parse::<u64>().ok())
        .sum::<Option<u64>>()?;
    Some((comm, ticks))
}

/// Where a PostgreSQL process's time is counted: the database its backend
/// serves (its process title names it), or the server's own processes.
const PG_SERVER: &str = "(server)";

/// One sample of every counter.
struct Sample {
    at: Instant,
    own: Option<u64>,
    children: Vec<Option<u64>>,
    /// Ticks by database name (and [`PG_SERVER`]).
    postgres: BTreeMap<String, u64>,
    db: Option<DbSample>,
}

/// `pg_stat_database` counters of the measured databases (transactions
/// committed, rows inserted, updated, deleted) and the cluster's WAL position.
struct DbSample {
    by_db: BTreeMap<String, [i64; 4]>,
    wal_bytes: i64,
}

/// The databases of a PostgreSQL run: the admin connection and the name of
/// each measured database.
pub struct Databases {
    pub admin_url: String,
    /// `(label, database name)`, e.g. `("a.example", "mimi_test_…")`.
    pub names: Vec<(String, String)>,
}

/// The database name of a PostgreSQL URL.
pub fn database_name(url: &str) -> Option<String> {
    let main = url.split('?').next()?;
    let after_scheme = main.split_once("://")?.1;
    let (_, name) = after_scheme.split_once('/')?;
    (!name.is_empty()).then(|| name.to_owned())
}

/// Measures the cost of one phase: [`Meter::start`] before it,
/// [`Meter::finish`] after it.
pub struct Meter<'a> {
    children: Vec<u32>,
    databases: Option<&'a Databases>,
    start: Sample,
}

/// What one phase cost.
pub struct Cost {
    pub wall: Duration,
    /// CPU seconds of this process (the in-process providers and the load).
    pub own_cpu: Option<f64>,
    /// CPU seconds of each child process, in the order given.
    pub children_cpu: Vec<Option<f64>>,
    /// CPU seconds of the PostgreSQL server by measured database label,
    /// then [`PG_SERVER`]: its own processes and exited backends.
    pub postgres_cpu: Vec<(String, f64)>,
    /// Per measured database label: transactions committed, rows inserted,
    /// updated and deleted.
    pub db_rows: Vec<(String, [i64; 4])>,
    /// WAL bytes written by the whole cluster.
    pub wal_bytes: Option<i64>,
}

impl<'a> Meter<'a> {
    pub async fn start(children: Vec<u32>, databases: Option<&'a Databases>) -> Self {
        let start = sample(&children, databases).await;
        Self {
            children,
            databases,
            start,
        }
    }

    pub async fn finish(self) -> Cost {
        let wall = self.start.at.elapsed();
        if self.databases.is_some() {
            tokio::time::sleep(STATS_FLUSH).await;
        }
        let end = sample(&self.children, self.databases).await;
        let secs =
            |a: Option<u64>, b: Option<u64>| Some(b?.saturating_sub(a?) as f64 / TICKS_PER_SEC);
        let mut postgres_cpu = Vec::new();
        let mut db_rows = Vec::new();
        let mut wal_bytes = None;
        if let Some(dbs) = self.databases {
            let labels = dbs
                .names
                .iter()
                .map(|(label, name)| (label.as_str(), name.as_str()))
                .chain([(PG_SERVER, PG_SERVER)]);
            for (label, name) in labels {
                let ticks = |s: &Sample| s.postgres.get(name).copied().unwrap_or(0);
                let spent = ticks(&end).saturating_sub(ticks(&self.start));
                postgres_cpu.push((label.to_owned(), spent as f64 / TICKS_PER_SEC));
            }
            if let (Some(a), Some(b)) = (&self.start.db, &end.db) {
                for (label, name) in &dbs.names {
                    let before = a.by_db.get(name).copied().unwrap_or_default();
                    let after = b.by_db.get(name).copied().unwrap_or_default();
                    let mut delta = [0; 4];
                    for (d, (x, y)) in delta.iter_mut().zip(after.iter().zip(&before)) {
                        *d = x - y;
                    }
                    db_rows.push((label.clone(), delta));
                }
                wal_bytes = Some(b.wal_bytes - a.wal_bytes);
            }
        }
        Cost {
            wall,
            own_cpu: secs(self.start.own, end.own),
            children_cpu: self
                .start
                .children
                .iter()
                .zip(&end.children)
                .map(|(a, b)| secs(*a, *b))
                .collect(),
            postgres_cpu,
            db_rows,
            wal_bytes,
        }
    }
}

async fn sample(children: &[u32], databases: Option<&Databases>) -> Sample {
    let own = process_ticks("self").map(|(_, t)| t);
    let children = children
        .iter()
        .map(|pid| process_ticks(&pid.to_string()).map(|(_, t)| t))
        .collect();
    let (postgres, db) = match databases {
        Some(dbs) => (postgres_ticks(dbs), db_sample(dbs).await.ok()),
        None => (BTreeMap::new(), None),
    };
    Sample {
        at: Instant::now(),
        own,
        children,
        postgres,
        db,
    }
}

/// CPU ticks of every `postgres` process on this machine, by the database
/// its process title names.
fn postgres_ticks(dbs: &Databases) -> BTreeMap<String, u64> {
    let mut ticks = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return ticks;
    };
    for entry in entries.flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Some((comm, t)) = process_ticks(&pid) else {
            continue;
        };
        if comm != "postgres" {
            continue;
        }
        // A backend's title is "postgres: <cluster>: <user> <database> <client> <state>".
        let title = std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
            .unwrap_or_default();
        let owner = dbs
            .names
            .iter()
            .find(|(_, name)| title.split_whitespace().any(|w| w == name))
            .map_or(PG_SERVER, |(_, name)| name.as_str());
        *ticks.entry(owner.to_owned()).or_insert(0) += t;
    }
    ticks
}

async fn db_sample(dbs: &Databases) -> anyhow::Result<DbSample> {
    let mut conn = sqlx::PgConnection::connect(&dbs.admin_url).await?;
    let names: Vec<String> = dbs.names.iter().map(|(_, n)| n.clone()).collect();
    let rows: Vec<(String, i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT datname::text, xact_commit, tup_inserted, tup_updated, tup_deleted
         FROM pg_stat_database WHERE datname = ANY($1)",
    )
    .bind(&names)
    .fetch_all(&mut conn)
    .await?;
    let wal_bytes: i64 =
        sqlx::query_scalar("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint")
            .fetch_one(&mut conn)
            .await?;
    conn.close().await?;
    Ok(DbSample {
        by_db: rows
            .into_iter()
            .map(|(name, xact, ins, upd, del)| (name, [xact, ins, upd, del]))
            .collect(),
        wal_bytes,
    })
}

impl Cost {
    /// CPU seconds of every measured process together.
    pub fn total_cpu(&self) -> f64 {
        self.own_cpu.unwrap_or(0.0)
            + self.children_cpu.iter().flatten().sum::<f64>()
            + self.postgres_cpu.iter().map(|(_, s)| s).sum::<f64>()
    }

    /// Prints the cost per message of a phase that delivered `messages`;
    /// `children` names the child processes in order.
    pub fn report(&self, messages: usize, children: &[String]) {
        let n = messages.max(1) as f64;
        let us = |secs: f64| format!("{:.0} µs", secs * 1e6 / n);
        let total = self.total_cpu();
        let mut parts = Vec::new();
        if let Some(own) = self.own_cpu {
            parts.push(format!("this process {}", us(own)));
        }
        for (label, cpu) in children.iter().zip(&self.children_cpu) {
            if let Some(cpu) = cpu {
                parts.push(format!("{label} {}", us(*cpu)));
            }
        }
        let pg: f64 = self.postgres_cpu.iter().map(|(_, s)| s).sum();
        if !self.postgres_cpu.is_empty() {
            let split: Vec<String> = self
                .postgres_cpu
                .iter()
                .map(|(label, s)| format!("{label} {}", us(*s)))
                .collect();
            parts.push(format!("PostgreSQL {} ({})", us(pg), split.join(", ")));
        }
        if parts.is_empty() {
            line("CPU per message: not available (needs /proc)");
            return;
        }
        let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
        line(&format!(
            "CPU per message: {}; total {} = {:.2} of {cores} cores busy over {:.2} s",
            parts.join(", "),
            us(total),
            total / self.wall.as_secs_f64().max(1e-9),
            self.wall.as_secs_f64()
        ));
        if !self.db_rows.is_empty() {
            let per: Vec<String> = self
                .db_rows
                .iter()
                .map(|(label, [xact, ins, upd, del])| {
                    format!(
                        "{label} {:.3} transactions, {:.2} rows (inserted {:.2}, updated {:.2}, deleted {:.2})",
                        *xact as f64 / n,
                        (ins + upd + del) as f64 / n,
                        *ins as f64 / n,
                        *upd as f64 / n,
                        *del as f64 / n
                    )
                })
                .collect();
            line(&format!("PostgreSQL per message: {}", per.join("; ")));
        }
        if let Some(wal) = self.wal_bytes {
            line(&format!(
                "WAL per message (whole cluster): {:.0} bytes",
                wal as f64 / n
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_names_come_from_the_url_path() {
        assert_eq!(
            database_name("postgres://postgres@127.0.0.1:5432/mimi_test_a?sslmode=disable")
                .as_deref(),
            Some("mimi_test_a")
        );
        assert_eq!(database_name("postgres://h:1/"), None);
        assert_eq!(database_name("postgres://h:1"), None);
    }

    #[test]
    fn this_process_has_cpu_time() {
        let (comm, _) = process_ticks("self").expect("/proc/self/stat");
        assert!(!comm.is_empty());
        // Burn CPU until the counter moves (it counts in 10 ms ticks).
        let before = process_ticks("self").unwrap().1;
        let started = Instant::now();
        let mut x = 0u64;
        while process_ticks("self").unwrap().1 == before
            && started.elapsed() < Duration::from_secs(10)
        {
            for _ in 0..100_000 {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            }
        }
        std::hint::black_box(x);
        assert!(process_ticks("self").unwrap().1 > before);
    }
}
