//! Dead letters from the command line (docs/operations.md "Dead letters"):
//! a `mimi server` process refuses an outbox row for its own devices that
//! is not a `FanoutMessage`, keeps it as a dead letter, and the operator
//! lists, retries and drops it with `mimi admin dead-letters`.

mod support;

use std::process::Output;
use std::time::Duration;

use mimi_store::NewOutboxItem;
use support::{Deadline, DevSetup, ok, wait_listening};

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

/// The ids of the listed dead letters (`#<id> …` lines).
fn listed_ids(listing: &str) -> Vec<u64> {
    listing
        .lines()
        .filter_map(|l| l.strip_prefix('#')?.split(' ').next()?.parse().ok())
        .collect()
}

#[tokio::test]
async fn dead_letters_are_listed_retried_and_dropped_from_the_cli() {
    let setup = DevSetup::new(&["a.example"]);
    setup.set_admin_token("a.example", ADMIN);
    let _a = setup.spawn("a.example", &[]);
    let a = setup.provider("a.example");
    wait_listening(&[a.federation, a.client]).await;
    let store = setup.store("a.example", None).await;
    store
        .enqueue_outbox(
            vec![NewOutboxItem {
                destination: "a.example".into(),
                room_id: "mimi://a.example/r/cli".into(),
                seq: 1,
                payload: b"not a FanoutMessage".to_vec(),
            }],
            0,
        )
        .await
        .unwrap();

    let (a_api, a_connect) = (
        format!("https://a.example:{}", a.client),
        format!("127.0.0.1:{}", a.client),
    );
    let admin = |args: &[&str]| -> Vec<String> {
        let mut all: Vec<String> = [
            "admin",
            "--provider",
            &a_api,
            "--ca",
            "dev/ca.pem",
            "--connect",
            &a_connect,
            "dead-letters",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        all.extend(args.iter().map(|s| s.to_string()));
        all
    };
    let run = |args: &[&str], token: Option<&str>| {
        let args = admin(args);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        mimi(&setup, &args, token)
    };
    let list = || ok(run(&["list"], Some(ADMIN)));

    let deadline = Deadline::new(Duration::from_secs(20), "the row is set aside");
    let first = loop {
        let listing = list();
        if let [id] = listed_ids(&listing)[..] {
            assert!(
                listing.contains("mimi://a.example/r/cli seq 1 to a.example: refused by this hub"),
                "{listing}"
            );
            break id;
        }
        deadline.tick().await;
    };
    let out = run(&["list"], Some("wrong"));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));

    // Retried, the hub refuses it again: a new dead letter replaces it.
    let retried = ok(run(&["retry", &first.to_string()], Some(ADMIN)));
    assert!(retried.contains("back in the outbox"), "{retried}");
    let deadline = Deadline::new(Duration::from_secs(20), "the retried row is set aside");
    let second = loop {
        match listed_ids(&list())[..] {
            [id] if id != first => break id,
            _ => deadline.tick().await,
        }
    };

    // Dropped: gone, and a second drop finds nothing.
    let dropped = ok(run(&["drop", &second.to_string()], Some(ADMIN)));
    assert!(dropped.contains("dropped"), "{dropped}");
    assert_eq!(list().trim(), "no dead letters");
    let out = run(&["drop", &second.to_string()], Some(ADMIN));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("404"));
    assert_eq!(store.outbox_depth().await.unwrap(), 0);
}
