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

/// A failed `mimi` run's stderr.
fn failed(out: Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "should have failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    err
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// What people run into: overwriting a state file or a device id,
/// `--connect` against a URL with another port, state files others may
/// read, URIs of the wrong kind, rooms that do not exist or are not
/// theirs, names that do not resolve, and admin tokens.
#[cfg(unix)]
#[tokio::test]
async fn the_cli_refuses_to_lose_state_and_says_what_to_do() {
    let setup = support::DevSetup::new(&["a.example"]);
    let d = setup.dir.path();
    // dev-ca: owner-only directory, an admin token in the config and a file.
    assert_eq!(mode(&d.join("dev")), 0o700);
    let token_file = setup.admin_token_file("a.example");
    assert_eq!(mode(&token_file), 0o600);
    let token = std::fs::read_to_string(&token_file).unwrap();
    let toml = std::fs::read_to_string(&setup.provider("a.example").toml).unwrap();
    assert!(toml.contains(&format!("admin_token = \"{}\"", token.trim())));
    // A second dev-ca into the same directory would replace every key.
    let again = mimi(d, &["dev-ca", "--out", "dev", "--domains", "a.example"]);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("--replace"),
        "{again:?}"
    );
    assert_eq!(std::fs::read_to_string(&token_file).unwrap(), token);
    let _a = setup.spawn("a.example", &[]);
    let a = setup.provider("a.example");
    support::wait_listening(&[a.federation, a.client]).await;
    let connect = format!("127.0.0.1:{}", a.client);
    let run = |args: &[&str]| mimi(d, args);
    // The URL's port is wrong on purpose: --connect decides.
    let register = |state: &str, device: &str, extra: &[&str]| {
        let mut args = vec![
            "client",
            "-s",
            state,
            "register",
            "--device",
            device,
            "--provider",
            "https://a.example:1",
            "--ca",
            "dev/ca.pem",
            "--connect",
            &connect,
        ];
        args.extend_from_slice(extra);
        run(&args)
    };
    const ALICE: &str = "mimi://a.example/d/alice/laptop";
    ok(register("st/alice.state", ALICE, &[]));
    assert_eq!(mode(&d.join("st")), 0o700, "the state directory");
    let room = "mimi://a.example/r/lounge";
    ok(run(&["client", "-s", "st/alice.state", "create", room]));
    let before = std::fs::read(d.join("st/alice.state")).unwrap();

    // No silent overwrite of the state file…
    let err = failed(register("st/alice.state", ALICE, &[]));
    assert!(
        err.contains("st/alice.state already holds the device"),
        "{err}"
    );
    assert!(
        err.contains("1 room(s)") && err.contains("--replace-state"),
        "{err}"
    );
    assert_eq!(std::fs::read(d.join("st/alice.state")).unwrap(), before);
    // …nor of the device id at the provider.
    let err = failed(register("st/other.state", ALICE, &[]));
    assert!(
        err.contains("already has the device") && err.contains("--replace-device"),
        "{err}"
    );
    let err = failed(register("st/alice.state", ALICE, &["--replace-state"]));
    assert!(err.contains("--replace-device"), "{err}");
    assert_eq!(std::fs::read(d.join("st/alice.state")).unwrap(), before);
    assert!(ok(run(&["client", "-s", "st/alice.state", "rooms"])).contains(room));
    // A copy of the old state, to see its token stop working.
    for suffix in ["", ".session.json", ".provider.json"] {
        std::fs::copy(
            d.join(format!("st/alice.state{suffix}")),
            d.join(format!("st/old.state{suffix}")),
        )
        .unwrap();
    }
    // Replacing both is explicit; the old state's token authorises it.
    ok(register(
        "st/alice.state",
        ALICE,
        &["--replace-state", "--replace-device"],
    ));
    assert!(!ok(run(&["client", "-s", "st/alice.state", "rooms"])).contains(room));
    let err = failed(run(&["client", "-s", "st/old.state", "rooms"]));
    assert!(
        err.contains("401") && err.contains("--replace-device"),
        "{err}"
    );
    let room2 = "mimi://a.example/r/lounge2";
    ok(run(&["client", "-s", "st/alice.state", "create", room2]));

    // A state file others may read is refused, with the fix.
    use std::os::unix::fs::PermissionsExt as _;
    let state = d.join("st/alice.state");
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = failed(run(&["client", "-s", "st/alice.state", "rooms"]));
    assert!(err.contains("chmod 600"), "{err}");
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o600)).unwrap();

    // URIs are checked for their kind before anything is sent.
    let err = failed(run(&[
        "client",
        "-s",
        "st/alice.state",
        "send",
        "mimi://a.example/u/alice",
        "hi",
    ]));
    assert!(err.contains("expected mimi://<domain>/r/<room>"), "{err}");
    // Not in a room on this device, no such room at the hub, not a participant.
    let err = failed(run(&[
        "client",
        "-s",
        "st/alice.state",
        "send",
        "mimi://a.example/r/nope",
        "hi",
    ]));
    assert!(
        err.contains("this device is not in room mimi://a.example/r/nope"),
        "{err}"
    );
    ok(register(
        "st/bob.state",
        "mimi://a.example/d/bob/phone",
        &[],
    ));
    let err = failed(run(&[
        "client",
        "-s",
        "st/bob.state",
        "join",
        "mimi://a.example/r/nope",
    ]));
    assert!(err.contains("no such room"), "{err}");
    let err = failed(run(&["client", "-s", "st/bob.state", "join", room]));
    assert!(err.contains("not a participant"), "{err}");
    // A user without KeyPackages: no "answered 200" beside an error.
    let err = failed(run(&[
        "client",
        "-s",
        "st/alice.state",
        "add",
        room2,
        "mimi://a.example/u/nobody",
    ]));
    assert!(
        err.contains("no KeyPackages") && !err.contains("200"),
        "{err}"
    );

    // A name that does not resolve points at --connect.
    let err = failed(run(&[
        "client",
        "-s",
        "st/carol.state",
        "register",
        "--device",
        "mimi://nowhere.invalid/d/carol/phone",
        "--provider",
        "https://nowhere.invalid:443",
    ]));
    assert!(err.contains("--connect"), "{err}");

    // Admin: missing, wrong and right token.
    let admin = |token: Option<&str>, extra: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_mimi"));
        command.current_dir(d).args([
            "admin",
            "--provider",
            "https://a.example",
            "--ca",
            "dev/ca.pem",
            "--connect",
            &connect,
        ]);
        command.args(extra).arg("reports");
        match token {
            Some(t) => command.env("MIMI_ADMIN_TOKEN", t),
            None => command.env_remove("MIMI_ADMIN_TOKEN"),
        };
        command.output().unwrap()
    };
    assert!(failed(admin(None, &[])).contains("no admin token"));
    assert!(failed(admin(Some("guess"), &[])).contains("wrong admin token"));
    let file = token_file.display().to_string();
    assert!(ok(admin(None, &["--token-file", &file])).contains("no abuse reports"));
    // The operator may hand a device id to a new state file.
    ok(register(
        "st/new.state",
        ALICE,
        &["--replace-device", "--token-file", &file],
    ));
    ok(run(&["client", "-s", "st/new.state", "rooms"]));
    failed(run(&["client", "-s", "st/alice.state", "rooms"]));
}
