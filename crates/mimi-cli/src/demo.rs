//! `mimi demo`: three providers on loopback (real mutual TLS, SQLite) and
//! the example flow of draft-ietf-mimi-protocol-06 §3, played by real
//! clients through their providers' client APIs.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure};
use mimi_client::http::Client;
use mimi_client::{Ciphersuite, Event, content};
use mimi_room::policy::default_role::MEMBER;
use mimi_testkit::{Backend, DOMAINS, Federation, Options};

const ROOM: &str = "mimi://a.example/r/clubhouse";

/// Runs the demo in `dir` with every device on `ciphersuite`; returns an
/// error if any check fails.
pub async fn run(dir: &Path, ciphersuite: Ciphersuite) -> anyhow::Result<()> {
    step("Starting three providers with mutual TLS and SQLite");
    let mut options = Options::new(Backend::Sqlite);
    options.ca_name = "mimi demo CA".into();
    let fed = Federation::start_in(dir, options).await?;
    for domain in DOMAINS {
        let server = fed.provider(domain).server();
        say(&format!(
            "{domain}: federation https://{domain}:{} (mTLS), client API https://{domain}:{}",
            server.federation_addr.port(),
            server.client_addr.port()
        ));
    }
    say(&format!(
        "cipher suite {:#06x} {ciphersuite:?}",
        ciphersuite as u16
    ));
    let result = play(&fed, ciphersuite).await;
    fed.shutdown().await;
    result
}

async fn play(fed: &Federation, suite: Ciphersuite) -> anyhow::Result<()> {
    step("Registering devices and publishing KeyPackages");
    let register = |device: &'static str, domain: &'static str| async move {
        let client =
            Client::register_with_ciphersuite(device, fed.connection(domain)?, suite).await?;
        anyhow::Ok(client)
    };
    let mut alice = register("mimi://a.example/d/alice/laptop", "a.example").await?;
    let mut bob = register("mimi://b.example/d/bob/phone", "b.example").await?;
    let mut cathy = register("mimi://c.example/d/cathy/tablet", "c.example").await?;
    for c in [&mut alice, &mut bob, &mut cathy] {
        let n = c.publish_key_packages(3).await?;
        say(&format!(
            "{} published {n} KeyPackages",
            c.device.device_uri()
        ));
    }

    step("§3.1 Alice creates the room on her provider (the hub)");
    alice.create_room(ROOM).await?;
    say(&format!(
        "{ROOM} created, epoch {}",
        alice.device.epoch(ROOM)?
    ));

    step(
        "§3.2 Alice adds Bob: KeyPackages via the hub, one commit with the participant list, Add and Welcome",
    );
    alice
        .add_user(ROOM, "mimi://b.example/u/bob", MEMBER)
        .await?;
    wait_for_room(&mut bob, alice.device.epoch(ROOM)?).await?;
    say(&format!(
        "Bob joined from the Welcome at epoch {}",
        bob.device.epoch(ROOM)?
    ));

    step("§3.3 Bob adds Cathy (his request travels b.example → hub a.example → c.example)");
    bob.add_user(ROOM, "mimi://c.example/u/cathy", MEMBER)
        .await?;
    let epoch = bob.device.epoch(ROOM)?;
    wait_for_room(&mut cathy, epoch).await?;
    wait_for_epoch(&mut alice, epoch).await?;
    say(&format!("Cathy joined; everybody is at epoch {epoch}"));

    let mut sent = Vec::new();
    step("§3.4 Cathy sends a message");
    let id = cathy
        .send(ROOM, content::text("Hello from Cathy at c.example!"))
        .await?;
    sent.push((id, "Cathy", vec!["alice", "bob", "cathy"]));
    let id = alice
        .send(ROOM, content::text("Welcome, both of you."))
        .await?;
    sent.push((id, "Alice", vec!["alice", "bob", "cathy"]));
    for c in [&mut alice, &mut bob, &mut cathy] {
        settle(c).await?;
    }
    show_history(&bob, "Bob")?;

    step(
        "§5.10 Cathy sends a picture; Bob downloads it via the hub's proxyDownload, then by Oblivious HTTP",
    );
    let picture = demo_picture();
    let id = cathy
        .send_file(
            ROOM,
            &picture,
            "image/png",
            "sunset.png",
            "the view from c.example",
            None,
        )
        .await?;
    wait_until(&mut bob, "Cathy's picture", |c| {
        c.device
            .history(ROOM)
            .is_ok_and(|h| h.iter().any(|m| m.id == id))
    })
    .await?;
    let downloaded = bob.download_attachments(ROOM, &id).await?;
    ensure!(
        matches!(downloaded.as_slice(), [(_, bytes)] if *bytes == picture),
        "Bob's download of Cathy's picture differs from what she sent"
    );
    say(&format!(
        "Cathy's {}-byte picture, encrypted and uploaded to c.example, reached Bob through b.example and the hub; decrypted, hash and tag verified, byte for byte the original",
        picture.len()
    ));
    bob.download_path = mimi_client::http::DownloadPath::Ohttp;
    let downloaded = bob.download_attachments(ROOM, &id).await?;
    bob.download_path = mimi_client::http::DownloadPath::Proxy;
    ensure!(
        matches!(downloaded.as_slice(), [(_, bytes)] if *bytes == picture),
        "Bob's Oblivious HTTP download of Cathy's picture differs from what she sent"
    );
    say(
        "again by Oblivious HTTP: b.example relayed sealed bytes to the hub's Gateway without seeing the URL or the picture; byte for byte the original",
    );
    sent.push((id, "Cathy (picture)", vec!["alice", "bob", "cathy"]));

    step("§3.5 Bob leaves: SelfRemove and participant-list proposals, committed by Cathy");
    bob.leave(ROOM).await?;
    wait_for_pending(&mut cathy).await?;
    cathy.commit_pending(ROOM).await?;
    let epoch = cathy.device.epoch(ROOM)?;
    wait_for_epoch(&mut alice, epoch).await?;
    let bob_events = settle(&mut bob).await?;
    ensure!(
        bob_events
            .iter()
            .any(|e| matches!(e, Event::RemovedFromRoom { .. })),
        "Bob's device did not learn that it left"
    );
    say("Bob's device saw the commit removing it");

    step("§3.6 Cathy adds a new device by external commit (GroupInfo from the hub)");
    let mut cathy2 = register("mimi://c.example/d/cathy/desktop", "c.example").await?;
    cathy2.join(ROOM).await?;
    let epoch = cathy2.device.epoch(ROOM)?;
    wait_for_epoch(&mut alice, epoch).await?;
    wait_for_epoch(&mut cathy, epoch).await?;
    say(&format!("Cathy's desktop joined at epoch {epoch}"));
    let id = cathy2
        .send(ROOM, content::text("Now also on my desktop."))
        .await?;
    sent.push((id, "Cathy (desktop)", vec!["alice", "cathy", "cathy2"]));
    let id = alice
        .send(ROOM, content::text("Hi Cathy's desktop!"))
        .await?;
    sent.push((id, "Alice", vec!["alice", "cathy", "cathy2"]));
    for c in [&mut alice, &mut cathy, &mut cathy2] {
        settle(c).await?;
    }

    step("Checking the outcome");
    let remaining: [(&str, &Client); 3] =
        [("alice", &alice), ("cathy", &cathy), ("cathy2", &cathy2)];
    let participants = alice.device.participants(ROOM)?;
    let epoch = alice.device.epoch(ROOM)?;
    for (name, c) in remaining {
        ensure!(
            c.device.participants(ROOM)? == participants,
            "{name} disagrees on the participant list"
        );
        ensure!(c.device.epoch(ROOM)? == epoch, "{name} is at another epoch");
    }
    ensure!(
        !participants.contains("mimi://b.example/u/bob"),
        "Bob is still a participant"
    );
    let users: Vec<String> = participants
        .participants
        .iter()
        .map(|p| String::from_utf8_lossy(p.user.as_slice()).into_owned())
        .collect();
    say(&format!(
        "participants agreed by every remaining client: {}",
        users.join(", ")
    ));
    say(&format!(
        "MLS epoch agreed by every remaining client: {epoch}"
    ));
    let clients: BTreeMap<&str, &Client> = [
        ("alice", &alice),
        ("bob", &bob),
        ("cathy", &cathy),
        ("cathy2", &cathy2),
    ]
    .into_iter()
    .collect();
    for (id, from, readers) in &sent {
        for reader in readers {
            let history = clients[reader].device.history(ROOM)?;
            let copy = history.iter().find(|m| m.id == *id);
            ensure!(
                copy.is_some(),
                "{reader} did not decrypt {from}'s message {}",
                id.to_hex()
            );
            // The room was created with the hub as franking agent: every
            // copy, sent or received, carries a frank that verified
            // (-06 §5.4.1).
            let status = copy.map(|m| m.frank_status.clone());
            ensure!(
                status == Some(mimi_client::FrankStatus::Verified),
                "{reader}'s copy of {from}'s message {} has no verified frank: {status:?}",
                id.to_hex()
            );
        }
    }
    say(&format!(
        "every client decrypted every message sent while it was a member ({} messages), each with a verified frank from the hub",
        sent.len()
    ));
    Ok(())
}

/// Syncs until nothing new arrives for a moment; returns the events seen.
async fn settle(client: &mut Client) -> anyhow::Result<Vec<Event>> {
    let mut all = Vec::new();
    let mut quiet = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    while quiet < 5 {
        ensure!(Instant::now() < deadline, "events kept arriving for 20 s");
        let events = client.sync().await?;
        for e in &events {
            if let Event::MessageReceived(m) = e
                && !m.own
            {
                say(&format!(
                    "  {} received from {}: {}",
                    client.device.device_uri(),
                    m.sender_user,
                    text_of(&m.content)
                ));
            }
        }
        quiet = if events.is_empty() { quiet + 1 } else { 0 };
        all.extend(events);
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    Ok(all)
}

async fn wait_until(
    client: &mut Client,
    what: &str,
    mut done: impl FnMut(&Client) -> bool,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        client.sync().await?;
        if done(client) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "{} timed out waiting for {what}",
                client.device.device_uri()
            );
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
}

async fn wait_for_room(client: &mut Client, epoch: u64) -> anyhow::Result<()> {
    wait_until(client, "the Welcome", |c| {
        c.device.epoch(ROOM).ok() == Some(epoch)
    })
    .await
}

async fn wait_for_epoch(client: &mut Client, epoch: u64) -> anyhow::Result<()> {
    wait_until(client, &format!("epoch {epoch}"), |c| {
        c.device.epoch(ROOM).ok() == Some(epoch)
    })
    .await
}

async fn wait_for_pending(client: &mut Client) -> anyhow::Result<()> {
    wait_until(client, "the leave proposals", |c| {
        c.device
            .mls_group(ROOM)
            .map(|g| g.pending_proposals().count() > 0)
            .unwrap_or(false)
    })
    .await
}

fn show_history(client: &Client, name: &str) -> anyhow::Result<()> {
    for m in client.device.history(ROOM)? {
        say(&format!(
            "  {name}'s history: {}: {}",
            m.sender_user,
            text_of(&m.content)
        ));
    }
    Ok(())
}

fn text_of(content: &mimi_content::MimiContent) -> String {
    match &content.nested_part.part {
        mimi_content::Part::Single(p) => String::from_utf8_lossy(&p.content).into_owned(),
        other => format!("{other:?}"),
    }
}

/// A small PNG (a gradient, 32×32 RGB, stored uncompressed in its zlib
/// stream) for the attachment step.
fn demo_picture() -> Vec<u8> {
    fn crc(bytes: &[u8]) -> u32 {
        let mut c = 0xffff_ffffu32;
        for b in bytes {
            c ^= u32::from(*b);
            for _ in 0..8 {
                c = if c & 1 == 1 {
                    0xedb8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
        }
        !c
    }
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend(u32::try_from(data.len()).unwrap_or(0).to_be_bytes());
        let start = out.len();
        out.extend(kind);
        out.extend(data);
        let sum = crc(&out[start..]);
        out.extend(sum.to_be_bytes());
    }
    const SIDE: u8 = 32;
    let mut raw = Vec::new();
    for y in 0..SIDE {
        raw.push(0); // filter: none
        for x in 0..SIDE {
            raw.extend([x * 8, y * 8, 160]);
        }
    }
    // zlib: one stored deflate block, then the Adler-32 of the data.
    let mut zlib = vec![0x78, 0x01, 0x01];
    let len = u16::try_from(raw.len()).unwrap_or(0);
    zlib.extend(len.to_le_bytes());
    zlib.extend((!len).to_le_bytes());
    zlib.extend(&raw);
    let (mut a, mut b) = (1u32, 0u32);
    for byte in &raw {
        a = (a + u32::from(*byte)) % 65521;
        b = (b + a) % 65521;
    }
    zlib.extend(((b << 16) | a).to_be_bytes());
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut header = Vec::new();
    header.extend(u32::from(SIDE).to_be_bytes());
    header.extend(u32::from(SIDE).to_be_bytes());
    header.extend([8, 2, 0, 0, 0]); // 8-bit RGB
    chunk(&mut png, b"IHDR", &header);
    chunk(&mut png, b"IDAT", &zlib);
    chunk(&mut png, b"IEND", &[]);
    png
}

fn step(title: &str) {
    println!("\n== {title}");
}

fn say(line: &str) {
    println!("   {line}");
}
