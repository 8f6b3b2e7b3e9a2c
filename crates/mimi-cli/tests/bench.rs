//! `mimi bench` with minimal sizes, so the command does not rot: every
//! part runs against real providers and reports its numbers.

use std::process::Command;

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
            "--ceiling-requests",
            "50",
            "--timeout-secs",
            "60",
        ])
        .output()
        .expect("run mimi bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "bench failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        "== Ceiling",
        "50 requests in",
        "max load: 40/40 messages delivered",
        "half load",
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
