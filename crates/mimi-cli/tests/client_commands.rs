//! `mimi dev-ca`, `mimi server` and `mimi client …` as separate processes,
//! as docs/walkthrough.md uses them.

mod support;

use std::path::Path;
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use support::ok;

fn mimi(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mimi"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run mimi")
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_base_port() -> u16 {
    // Four consecutive free ports: bind them all, then release.
    loop {
        let first = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = first.local_addr().unwrap().port();
        if base > 60000 {
            continue;
        }
        let rest: Vec<_> = (1..4)
            .map(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)))
            .collect();
        if rest.iter().all(|r| r.is_ok()) {
            return base;
        }
    }
}

fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "server on {port} did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn two_providers_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let base = free_base_port();
    let base_s = base.to_string();
    ok(mimi(
        d,
        &[
            "dev-ca",
            "--out",
            "dev",
            "--domains",
            "a.example,b.example",
            "--base-port",
            &base_s,
        ],
    ));
    let spawn = |cfg: &str| {
        Server(
            Command::new(env!("CARGO_BIN_EXE_mimi"))
                .current_dir(d)
                .args(["server", "-c", cfg])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap(),
        )
    };
    let _a = spawn("dev/a.example.toml");
    let _b = spawn("dev/b.example.toml");
    for p in base..base + 4 {
        wait_for_port(p);
    }
    let (a_api, b_api) = (base + 1, base + 3);
    let register = |state: &str, device: &str, domain: &str, port: u16, suite: &str| {
        mimi(
            d,
            &[
                "client",
                "-s",
                state,
                "register",
                "--device",
                device,
                "--provider",
                &format!("https://{domain}:{port}"),
                "--ca",
                "dev/ca.pem",
                "--connect",
                &format!("127.0.0.1:{port}"),
                "--ciphersuite",
                suite,
            ],
        )
    };
    // Both devices on P-256 (0x0002), by code point and by name; the
    // suite is kept in the state file for every later command.
    let out = ok(register(
        "alice.state",
        "mimi://a.example/d/alice/laptop",
        "a.example",
        a_api,
        "0x0002",
    ));
    assert!(out.contains("cipher suite 0x0002"), "{out}");
    ok(register(
        "bob.state",
        "mimi://b.example/d/bob/phone",
        "b.example",
        b_api,
        "MLS_128_DHKEMP256_AES128GCM_SHA256_P256",
    ));
    // A suite the crypto provider lacks (P-384) is refused with the list.
    let out = register(
        "carol.state",
        "mimi://b.example/d/carol/phone",
        "b.example",
        b_api,
        "0x0007",
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("0x0002"), "{err}");
    let room = "mimi://a.example/r/lounge";
    ok(mimi(d, &["client", "-s", "alice.state", "create", room]));
    ok(mimi(
        d,
        &[
            "client",
            "-s",
            "alice.state",
            "add",
            room,
            "mimi://b.example/u/bob",
        ],
    ));

    // Bob's provider receives the Welcome asynchronously.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let rooms = ok(mimi(d, &["client", "-s", "bob.state", "rooms"]));
        if rooms.contains(room) {
            break;
        }
        assert!(Instant::now() < deadline, "Bob never joined: {rooms}");
        std::thread::sleep(Duration::from_millis(100));
    }
    ok(mimi(
        d,
        &[
            "client",
            "-s",
            "bob.state",
            "send",
            room,
            "hi alice, bob here",
        ],
    ));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let read = ok(mimi(d, &["client", "-s", "alice.state", "read", room]));
        if read.contains("mimi://b.example/u/bob: hi alice, bob here") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Alice never got Bob's message: {read}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // A command on an unknown state file fails with a reason.
    let out = mimi(d, &["client", "-s", "nobody.state", "rooms"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("mimi client register"));
}
