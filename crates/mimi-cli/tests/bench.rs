//! `mimi bench` with minimal sizes, so the command does not rot: every
//! part runs against real providers and reports its numbers.

mod support;

use std::process::Command;

use support::ok;

#[test]
fn bench_runs_every_part_with_tiny_sizes() {
    let out = Command::new(env!("CARGO_BIN_EXE_mimi"))
        .args([
            "bench",
            "all",
            "--room-sizes",
            "3",
            "--messages",
            "40",
            "--concurrency",
            "4",
            "--senders",
            "2",
            "--runs",
            "2",
            "--commit-sizes",
            "3,6",
            "--commit-server-sizes",
            "3",
            "--commit-iterations",
            "2",
            "--commits",
            "2",
            "--claims",
            "40",
            "--requesters",
            "4",
            "--memory-sizes",
            "3,6",
            "--memory-copies",
            "2",
            "--ceiling-secs",
            "1",
            "--timeout-secs",
            "60",
        ])
        .output()
        .expect("run mimi bench");
    let stdout = ok(out);
    for expected in [
        "== Ceiling (before)",
        "== Ceiling (after)",
        "over 1 windows of 1 s",
        "ceiling used below:",
        "the median of all 2 windows",
        "max load, run 1: 40/40 messages delivered",
        "max load, run 2: 40/40 messages delivered",
        "half load",
        "median of 2 runs:",
        "end-to-end (submit → last provider committed): median",
        "(b) commit, 3 members, in process: median",
        "(b) commit, 3 members, through the server: median",
        "double issues: 0",
        "6 members: stored room state",
        "of the ceiling's requests/s",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
}

/// `mimi bench scale`: a second hub process (a `mimi server` child) on the
/// same PostgreSQL database takes part, every message reaches both
/// followers with one and with two processes, and each step reports its
/// cost per message (docs/scaling.md): CPU of both hub processes and of
/// PostgreSQL by database, and the hub database's transactions and rows.
#[test]
fn bench_scale_runs_two_hub_processes_on_postgres() {
    let admin = mimi_testkit::postgres::postgres_url();
    let out = Command::new(env!("CARGO_BIN_EXE_mimi"))
        .args([
            "bench",
            "scale",
            "--store",
            "postgres",
            "--postgres-url",
            &admin,
            "--scale-processes",
            "1,2",
            "--scale-room-size",
            "3",
            "--scale-messages",
            "40",
            "--concurrency",
            "4",
            "--senders",
            "2",
            "--timeout-secs",
            "60",
        ])
        .output()
        .expect("run mimi bench scale");
    let stdout = ok(out);
    for expected in [
        "1 process(es): 40/40 messages at both followers",
        "2 process(es): 40/40 messages at both followers",
        "scaling: 2 hub process(es) on one PostgreSQL",
        "CPU per message: this process ",
        ", a.example process 2 ",
        "PostgreSQL per message: a.example ",
        "WAL per message (whole cluster): ",
        "FanoutMessages the hub sent by /notify: ",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
}
