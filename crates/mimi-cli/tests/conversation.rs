//! `mimi client read` shows the conversation (draft-ietf-mimi-content:
//! edits, deletes, replies, reactions), `read --raw` the raw history: two
//! `mimi server` processes; Alice and Bob registered with `mimi client`;
//! the replies, reactions, edits and deletes, which `mimi client` has no
//! command for, are sent by the library on the same state files.

mod support;

use std::time::Duration;

use mimi_client::content;
use mimi_client::http::Client;
use mimi_content::MessageId;
use support::{Deadline, DevSetup, ok, wait_listening};

const ROOM: &str = "mimi://a.example/r/conversation";
const ALICE: &str = "mimi://a.example/u/alice";
const BOB: &str = "mimi://b.example/u/bob";

fn client(setup: &DevSetup, state: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mimi"))
        .current_dir(setup.dir.path())
        .args(["client", "-s", state])
        .args(args)
        .output()
        .expect("run mimi");
    ok(out)
}

fn sent_id(out: &str) -> MessageId {
    let hex = out.trim().strip_prefix("sent ").expect("message id");
    MessageId::from_hex(hex).expect("hex message id")
}

#[tokio::test]
async fn read_shows_the_conversation_and_raw_the_history() {
    let setup = DevSetup::new(&["a.example", "b.example"]);
    let _a = setup.spawn("a.example", &[]);
    let _b = setup.spawn("b.example", &[]);
    let (a, b) = (setup.provider("a.example"), setup.provider("b.example"));
    wait_listening(&[a.federation, a.client, b.federation, b.client]).await;
    let register = |state: &str, device: &str, domain: &str, port: u16| {
        client(
            &setup,
            state,
            &[
                "register",
                "--device",
                device,
                "--provider",
                &format!("https://{domain}:{port}"),
                "--ca",
                "dev/ca.pem",
                "--connect",
                &format!("127.0.0.1:{port}"),
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
    client(&setup, "alice", &["add", ROOM, BOB]);
    let joined = Deadline::new(Duration::from_secs(20), "Bob joins");
    while !client(&setup, "bob", &["rooms"]).contains(ROOM) {
        joined.tick().await;
    }

    let lunch = sent_id(&client(&setup, "alice", &["send", ROOM, "lunch at noon?"]));
    let typo = sent_id(&client(&setup, "alice", &["send", ROOM, "helo"]));
    let oops = sent_id(&client(&setup, "alice", &["send", ROOM, "wrong room"]));
    let path = |state: &str| setup.dir.path().join(state);
    let mut alice = Client::load(&path("alice"), setup.connection("a.example", a.client)).unwrap();
    alice
        .send(ROOM, content::edit(typo, "hello"))
        .await
        .unwrap();
    alice.send(ROOM, content::delete(oops)).await.unwrap();
    alice.save(&path("alice")).unwrap();
    drop(alice);
    let mut bob = Client::load(&path("bob"), setup.connection("b.example", b.client)).unwrap();
    bob.send(ROOM, content::reply(lunch, "sure")).await.unwrap();
    bob.send(ROOM, content::reaction(lunch, "👍"))
        .await
        .unwrap();
    let forged = bob
        .send(ROOM, content::edit(lunch, "lunch is cancelled"))
        .await
        .unwrap();
    bob.save(&path("bob")).unwrap();
    drop(bob);

    // Bob's `read`, once every message has arrived: the raw history has
    // all eight, the conversation four messages.
    let arrived = Deadline::new(Duration::from_secs(20), "Bob receives everything");
    let raw = loop {
        let raw = client(&setup, "bob", &["read", ROOM, "--raw"]);
        if raw.lines().count() == 8 {
            break raw;
        }
        arrived.tick().await;
    };
    assert!(raw.contains(&format!("{ALICE}: helo (")), "{raw}");
    assert!(
        raw.contains(&format!("{BOB}: lunch is cancelled (")),
        "{raw}"
    );
    let read = client(&setup, "bob", &["read", ROOM]);
    let lines: Vec<&str> = read.lines().collect();
    let line = |id: MessageId| {
        lines
            .iter()
            .position(|l| l.contains(&id.to_hex()))
            .unwrap_or_else(|| panic!("{} missing:\n{read}", id.to_hex()))
    };
    let at = line(lunch);
    assert!(
        lines[at].ends_with(&format!("{ALICE}: lunch at noon? (franked)")),
        "the forged edit is not applied:\n{read}"
    );
    assert_eq!(
        lines[at + 1],
        format!("    reactions: 👍 1 ({BOB})"),
        "{read}"
    );
    assert!(
        lines[line(typo)].ends_with(&format!("{ALICE}: hello (edited) (franked)")),
        "{read}"
    );
    assert!(
        lines[line(oops)].ends_with(&format!("{ALICE}: [deleted] (franked)")),
        "{read}"
    );
    let reply = lines
        .iter()
        .position(|l| l.ends_with(&format!("{BOB}: sure (franked)")))
        .unwrap_or_else(|| panic!("no reply:\n{read}"));
    assert_eq!(
        lines[reply + 1],
        format!("    in reply to {ALICE}: lunch at noon?"),
        "{read}"
    );
    assert_eq!(
        lines.last().copied(),
        Some(
            format!(
                "ignored {} from {BOB}: replaces {} of {ALICE}: only the original sender may edit or delete",
                forged.to_hex(),
                lunch.to_hex()
            )
            .as_str()
        ),
        "{read}"
    );
    assert_eq!(lines.len(), 4 + 2 + 1, "{read}");
}
