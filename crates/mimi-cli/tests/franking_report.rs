//! Franking and abuse reports from the command line (-06 §5.4.1, §5.9):
//! two `mimi server` processes, `mimi client` devices; Bob's received
//! message shows a verified frank, he reports it with `mimi client report`,
//! and the hub's operator lists the verified report with
//! `mimi admin reports`.

mod support;

use std::process::Output;
use std::time::Duration;

use support::{Deadline, DevSetup, ok, wait_listening};

const ROOM: &str = "mimi://a.example/r/franking";
const ADMIN: &str = "cli-operator-secret";

fn mimi(setup: &DevSetup, args: &[&str], admin_token: Option<&str>) -> Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_mimi"));
    command.current_dir(setup.dir.path()).args(args);
    match admin_token {
        Some(token) => command.env("MIMI_ADMIN_TOKEN", token),
        None => command.env_remove("MIMI_ADMIN_TOKEN"),
    };
    command.output().expect("run mimi")
}

fn client(setup: &DevSetup, state: &str, args: &[&str]) -> String {
    let mut all = vec!["client", "-s", state];
    all.extend_from_slice(args);
    ok(mimi(setup, &all, None))
}

#[tokio::test]
async fn report_from_the_cli_is_verified_and_listed() {
    let setup = DevSetup::new(&["a.example", "b.example"]);
    setup.set_admin_token("a.example", ADMIN);
    let _a = setup.spawn("a.example", &[]);
    let _b = setup.spawn("b.example", &[]);
    let (a, b) = (setup.provider("a.example"), setup.provider("b.example"));
    wait_listening(&[a.federation, a.client, b.federation, b.client]).await;

    let a_api = format!("https://a.example:{}", a.client);
    let a_connect = format!("127.0.0.1:{}", a.client);
    let register = |state: &str, device: &str, domain: &str, port: u16| {
        let (provider, connect) = (
            format!("https://{domain}:{port}"),
            format!("127.0.0.1:{port}"),
        );
        client(
            &setup,
            state,
            &[
                "register",
                "--device",
                device,
                "--provider",
                &provider,
                "--ca",
                "dev/ca.pem",
                "--connect",
                &connect,
            ],
        )
    };
    register(
        "alice",
        "mimi://a.example/d/alice/laptop",
        "a.example",
        a.client,
    );
    register("bob", "mimi://b.example/d/bob/phone", "b.example", b.client);
    client(&setup, "alice", &["create", ROOM]);
    client(&setup, "alice", &["add", ROOM, "mimi://b.example/u/bob"]);
    let joined = Deadline::new(Duration::from_secs(20), "Bob joins");
    while !client(&setup, "bob", &["rooms"]).contains(ROOM) {
        joined.tick().await;
    }
    let sent = client(&setup, "alice", &["send", ROOM, "buy cheap pills"]);
    let id = sent
        .trim()
        .strip_prefix("sent ")
        .expect("message id")
        .to_owned();
    // Alice's own copy carries the frank from the hub's answer.
    let mine = client(&setup, "alice", &["read", ROOM]);
    assert!(
        mine.contains(&format!(
            "{id} mimi://a.example/u/alice: buy cheap pills (franked)"
        )),
        "{mine}"
    );

    // Bob sees the message with a verified frank.
    let received = Deadline::new(Duration::from_secs(20), "Bob receives the message");
    loop {
        let read = client(&setup, "bob", &["read", ROOM]);
        if read.contains(&format!(
            "{id} mimi://a.example/u/alice: buy cheap pills (franked)"
        )) {
            break;
        }
        received.tick().await;
    }

    // An unknown message cannot be reported.
    let bogus = "00".repeat(32);
    let out = mimi(
        &setup,
        &["client", "-s", "bob", "report", ROOM, "--message", &bogus],
        None,
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot report"));

    let reported = client(
        &setup,
        "bob",
        &[
            "report",
            ROOM,
            "--message",
            &id,
            "--reason",
            "2",
            "--note",
            "spam",
        ],
    );
    assert!(reported.contains(&format!("reported {id}")), "{reported}");

    // The operator lists it; without the token the provider refuses.
    let admin = [
        "admin",
        "--provider",
        &a_api,
        "--ca",
        "dev/ca.pem",
        "--connect",
        &a_connect,
        "reports",
    ];
    let out = mimi(&setup, &admin, None);
    assert!(!out.status.success());
    let out = mimi(&setup, &admin, Some("wrong"));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));
    let listed = ok(mimi(&setup, &admin, Some(ADMIN)));
    assert!(
        listed.contains(&format!(
            "{ROOM}: mimi://b.example/u/bob reports mimi://a.example/u/alice (via b.example), reason 2, 1 message(s), franks verified: spam"
        )),
        "{listed}"
    );
    assert_eq!(listed.lines().count(), 1, "{listed}");
}
