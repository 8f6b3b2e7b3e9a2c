//! Backend-independent test suite: every function runs against SQLite
//! (tests/sqlite.rs) and PostgreSQL (tests/postgres.rs).
//!
//! Each test gets two independent store handles on one fresh database
//! (`s[0]`, `s[1]`): two pools, as two server processes would have.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mimi_store::*;

/// Two handles on the same database.
pub type Stores = Vec<Arc<dyn Store>>;

const NOW: i64 = 1_700_000_000; // seconds
const NOW_MS: i64 = NOW * 1000;
const LATER: i64 = NOW + 86_400;

fn kp(tag: &str, n: u32, not_after: i64, last_resort: bool) -> NewKeyPackage {
    NewKeyPackage {
        key_package_ref: format!("ref-{tag}-{n}").into_bytes(),
        key_package: format!("kp-{tag}-{n}").into_bytes(),
        not_after,
        last_resort,
    }
}

fn room(id: &str, epoch: u64) -> NewRoom {
    NewRoom {
        room_id: id.to_owned(),
        epoch,
        group_state: format!("state-{id}-{epoch}").into_bytes(),
        created_at_ms: NOW_MS,
        fixed_membership_key: None,
        parent_room: None,
    }
}

fn delivery(dest: &str, payload: &str) -> Delivery {
    Delivery {
        destination: dest.to_owned(),
        payload: payload.as_bytes().to_vec(),
    }
}

/// An application message (no epoch change) validated at `epoch`.
fn app_msg(room_id: &str, epoch: u64, body: &str, dests: &[&str]) -> AcceptedEvent {
    AcceptedEvent {
        room_id: room_id.to_owned(),
        expected_epoch: epoch,
        new_epoch: epoch,
        expected_state_version: None,
        new_group_state: None,
        event: body.as_bytes().to_vec(),
        accepted_at_ms: NOW_MS,
        deliveries: dests.iter().map(|d| delivery(d, body)).collect(),
        local: Vec::new(),
    }
}

/// A commit moving `room_id` from `epoch` to `epoch + 1`.
fn commit(room_id: &str, epoch: u64, body: &str, dests: &[&str]) -> AcceptedEvent {
    AcceptedEvent {
        new_epoch: epoch + 1,
        new_group_state: Some(format!("state-after-{body}").into_bytes()),
        ..app_msg(room_id, epoch, body, dests)
    }
}

fn claimed_refs(claims: &[ClientClaim]) -> Vec<Option<String>> {
    claims
        .iter()
        .map(|c| {
            c.key_package
                .as_ref()
                .map(|k| String::from_utf8_lossy(&k.key_package_ref).into_owned())
        })
        .collect()
}

// ---- KeyPackages ------------------------------------------------------------

pub async fn key_package_claim_per_client(s: Stores) {
    let st = &s[0];
    let user = "mimi://b.example/u/bob";
    for (client, tag) in [
        ("mimi://b.example/d/bob/2", "b2"),
        ("mimi://b.example/d/bob/1", "b1"),
    ] {
        let added = st
            .add_key_packages(
                user,
                client,
                vec![
                    kp(tag, 1, LATER, false),
                    kp(tag, 2, LATER, false),
                    kp(tag, 9, LATER, true),
                ],
            )
            .await
            .expect("add");
        assert_eq!(added, 3);
    }
    // Re-uploading a stored KeyPackageRef is ignored.
    let again = st
        .add_key_packages(
            user,
            "mimi://b.example/d/bob/1",
            vec![kp("b1", 1, LATER, false)],
        )
        .await
        .expect("re-add");
    assert_eq!(again, 0);
    assert_eq!(
        st.list_clients(user).await.expect("list"),
        vec!["mimi://b.example/d/bob/1", "mimi://b.example/d/bob/2"]
    );
    assert_eq!(
        st.count_key_packages("mimi://b.example/d/bob/1", NOW)
            .await
            .expect("count"),
        KeyPackageCount {
            single_use: 2,
            last_resort: 1
        }
    );

    let first = st.claim_key_packages(user, NOW).await.expect("claim");
    assert_eq!(first.len(), 2);
    assert_eq!(first[0].client_uri, "mimi://b.example/d/bob/1");
    assert_eq!(
        claimed_refs(&first),
        vec![Some("ref-b1-1".into()), Some("ref-b2-1".into())]
    );
    let k = first[0].key_package.as_ref().expect("kp");
    assert_eq!(k.key_package, b"kp-b1-1");
    assert!(!k.last_resort);
    assert_eq!(k.not_after, LATER);

    let second = st.claim_key_packages(user, NOW).await.expect("claim");
    assert_eq!(
        claimed_refs(&second),
        vec![Some("ref-b1-2".into()), Some("ref-b2-2".into())]
    );
    // Single-use ones exhausted: the last-resort KeyPackage, reused, never deleted.
    for _ in 0..3 {
        let lr = st.claim_key_packages(user, NOW).await.expect("claim");
        assert_eq!(
            claimed_refs(&lr),
            vec![Some("ref-b1-9".into()), Some("ref-b2-9".into())]
        );
        assert!(
            lr.iter()
                .all(|c| c.key_package.as_ref().is_some_and(|k| k.last_resort))
        );
    }
    assert_eq!(
        st.count_key_packages("mimi://b.example/d/bob/2", NOW)
            .await
            .expect("count"),
        KeyPackageCount {
            single_use: 0,
            last_resort: 1
        }
    );

    // Target-side Welcome routing: every claimed ref maps to its client.
    for (r, c) in [
        ("ref-b1-1", "mimi://b.example/d/bob/1"),
        ("ref-b2-2", "mimi://b.example/d/bob/2"),
        ("ref-b2-9", "mimi://b.example/d/bob/2"),
    ] {
        assert_eq!(
            s[1].client_for_key_package_ref(r.as_bytes())
                .await
                .expect("lookup")
                .as_deref(),
            Some(c)
        );
    }
    assert_eq!(
        st.client_for_key_package_ref(b"never-claimed")
            .await
            .expect("lookup"),
        None
    );

    // Unknown user: no clients, no claims.
    assert!(
        st.claim_key_packages("mimi://b.example/u/nobody", NOW)
            .await
            .expect("claim")
            .is_empty()
    );
    // A client URI belongs to one user.
    let err = st
        .add_key_packages("mimi://b.example/u/eve", "mimi://b.example/d/bob/1", vec![])
        .await
        .expect_err("other user's client");
    assert!(
        matches!(err, StoreError::ClientOwnedByOtherUser { .. }),
        "{err}"
    );
}

pub async fn key_package_expired_never_returned(s: Stores) {
    let st = &s[0];
    let user = "mimi://b.example/u/betty";
    let c1 = "mimi://b.example/d/betty/1";
    let c2 = "mimi://b.example/d/betty/2";
    st.add_key_packages(
        user,
        c1,
        vec![
            kp("e1", 1, NOW - 10, false), // expired
            kp("e1", 2, NOW, false),      // expires exactly now
            kp("e1", 3, LATER, false),
            kp("e1", 9, NOW - 1, true), // expired last resort
        ],
    )
    .await
    .expect("add");
    st.add_key_packages(user, c2, vec![kp("e2", 1, NOW - 1, false)])
        .await
        .expect("add");

    let claims = st.claim_key_packages(user, NOW).await.expect("claim");
    assert_eq!(claimed_refs(&claims), vec![Some("ref-e1-3".into()), None]);
    // Nothing unexpired left for either client (expired last resort is not used).
    let claims = st.claim_key_packages(user, NOW).await.expect("claim");
    assert_eq!(claimed_refs(&claims), vec![None, None]);
    assert_eq!(
        st.count_key_packages(c1, NOW).await.expect("count"),
        KeyPackageCount::default()
    );
    // Before expiry they were valid.
    assert_eq!(
        st.count_key_packages(c1, NOW - 20).await.expect("count"),
        KeyPackageCount {
            single_use: 2,
            last_resort: 1
        }
    );
    assert_eq!(st.purge_expired_key_packages(NOW).await.expect("purge"), 4);
    assert_eq!(st.purge_expired_key_packages(NOW).await.expect("purge"), 0);
    assert_eq!(
        st.count_key_packages(c1, NOW - 20).await.expect("count"),
        KeyPackageCount::default()
    );
}

/// Runs `m` concurrent claims (spread over both store handles) for a user
/// whose one client has `k` single-use KeyPackages and one last-resort one.
async fn claim_race(s: &Stores, user: &str, k: u32, m: usize) {
    let client = format!("{user}/client");
    let tag = user.rsplit('/').next().unwrap_or("x").to_owned();
    let mut kps: Vec<_> = (0..k).map(|i| kp(&tag, i, LATER, false)).collect();
    kps.push(kp(&tag, 999, LATER, true));
    s[0].add_key_packages(user, &client, kps)
        .await
        .expect("add");

    let mut tasks = Vec::new();
    for i in 0..m {
        let st = Arc::clone(&s[i % s.len()]);
        let user = user.to_owned();
        tasks.push(tokio::spawn(async move {
            st.claim_key_packages(&user, NOW).await
        }));
    }
    let mut single_use = Vec::new();
    let mut last_resort = 0usize;
    for t in tasks {
        let claims = t.await.expect("join").expect("claim");
        assert_eq!(claims.len(), 1);
        let kp = claims[0].key_package.clone().expect("some KeyPackage");
        if kp.last_resort {
            last_resort += 1;
        } else {
            single_use.push(kp.key_package_ref);
        }
    }
    let distinct: HashSet<_> = single_use.iter().cloned().collect();
    let expect = m.min(k as usize);
    assert_eq!(
        single_use.len(),
        expect,
        "single-use claims for k={k} m={m}"
    );
    assert_eq!(distinct.len(), expect, "a KeyPackage was handed out twice");
    assert_eq!(
        last_resort,
        m - expect,
        "last-resort claims for k={k} m={m}"
    );
    let left = s[1].count_key_packages(&client, NOW).await.expect("count");
    assert_eq!(left.single_use, u64::from(k) - expect as u64);
    assert_eq!(left.last_resort, 1);
}

pub async fn key_package_claim_race(s: Stores) {
    claim_race(&s, "mimi://b.example/u/race1", 5, 12).await;
    claim_race(&s, "mimi://b.example/u/race2", 12, 5).await;
    claim_race(&s, "mimi://b.example/u/race3", 8, 8).await;
}

pub async fn key_package_routes(s: Stores) {
    let st = &s[0];
    st.record_key_package_routes(
        "mimi://a.example/r/club",
        vec![
            (b"kpr-1".to_vec(), "b.example".into()),
            (b"kpr-2".to_vec(), "c.example".into()),
        ],
    )
    .await
    .expect("record");
    assert_eq!(
        s[1].provider_for_key_package_ref(b"kpr-2")
            .await
            .expect("lookup")
            .as_deref(),
        Some("c.example")
    );
    // A reused (last-resort) ref recorded again for another room: latest wins.
    st.record_key_package_routes(
        "mimi://a.example/r/other",
        vec![(b"kpr-1".to_vec(), "d.example".into())],
    )
    .await
    .expect("record");
    assert_eq!(
        st.provider_for_key_package_ref(b"kpr-1")
            .await
            .expect("lookup")
            .as_deref(),
        Some("d.example")
    );
    assert_eq!(
        st.provider_for_key_package_ref(b"kpr-unknown")
            .await
            .expect("lookup"),
        None
    );
}

// ---- Rooms ---------------------------------------------------------------------

pub async fn room_create_and_load(s: Stores) {
    let st = &s[0];
    let rec = st
        .create_room(room("mimi://a.example/r/one", 0))
        .await
        .expect("create");
    assert_eq!(rec.epoch, 0);
    assert_eq!(rec.last_seq, 0);
    let err = s[1]
        .create_room(room("mimi://a.example/r/one", 5))
        .await
        .expect_err("duplicate");
    assert!(matches!(err, StoreError::RoomExists(ref id) if id == "mimi://a.example/r/one"));
    let loaded = s[1]
        .load_room("mimi://a.example/r/one")
        .await
        .expect("load")
        .expect("exists");
    assert_eq!(loaded, rec);
    assert_eq!(loaded.group_state, b"state-mimi://a.example/r/one-0");
    assert_eq!(
        st.load_room("mimi://a.example/r/none").await.expect("load"),
        None
    );
}

pub async fn a_parent_room_knows_its_children(s: Stores) {
    let child = |id: &str, parent: &str| NewRoom {
        parent_room: Some(parent.to_owned()),
        ..room(id, 0)
    };
    let parent = "mimi://a.example/r/team";
    s[0].create_room(room(parent, 0)).await.expect("parent");
    s[1].create_room(child("mimi://a.example/r/team-call", parent))
        .await
        .expect("child");
    s[0].create_room(child("mimi://a.example/r/team-ann", parent))
        .await
        .expect("child");
    s[1].create_room(child("mimi://a.example/r/other", "mimi://a.example/r/x"))
        .await
        .expect("other child");
    for st in &s {
        assert_eq!(
            st.child_rooms(parent).await.expect("children"),
            vec![
                "mimi://a.example/r/team-ann".to_owned(),
                "mimi://a.example/r/team-call".to_owned()
            ]
        );
        let record = st
            .load_room("mimi://a.example/r/team-call")
            .await
            .expect("load");
        assert_eq!(record.and_then(|r| r.parent_room).as_deref(), Some(parent));
        assert!(
            st.child_rooms("mimi://a.example/r/team-call")
                .await
                .expect("children")
                .is_empty()
        );
    }
}

pub async fn fixed_membership_rooms_are_unique(s: Stores) {
    let dm = |id: &str, key: &str| NewRoom {
        fixed_membership_key: Some(key.to_owned()),
        ..room(id, 0)
    };
    let ab = "mimi://a.example/u/alice mimi://b.example/u/bob";
    s[0].create_room(dm("mimi://a.example/r/dm1", ab))
        .await
        .expect("create");
    let err = s[1]
        .create_room(dm("mimi://a.example/r/dm2", ab))
        .await
        .expect_err("second room for the same participants");
    assert!(
        matches!(err, StoreError::FixedMembershipExists { ref room_id } if room_id == "mimi://a.example/r/dm1"),
        "{err:?}"
    );
    assert_eq!(
        s[0].load_room("mimi://a.example/r/dm2")
            .await
            .expect("load"),
        None
    );
    // Other participants, and rooms whose membership is not fixed, are
    // not compared.
    s[1].create_room(dm(
        "mimi://a.example/r/dm3",
        "mimi://a.example/u/alice mimi://c.example/u/carol",
    ))
    .await
    .expect("other participants");
    s[0].create_room(room("mimi://a.example/r/open1", 0))
        .await
        .expect("open");
    s[1].create_room(room("mimi://a.example/r/open2", 0))
        .await
        .expect("open");
    // The room id still decides first.
    let err = s[0]
        .create_room(dm("mimi://a.example/r/dm1", "mimi://a.example/u/x"))
        .await
        .expect_err("duplicate id");
    assert!(matches!(err, StoreError::RoomExists(_)), "{err:?}");
}

pub async fn epoch_cas_race(s: Stores) {
    let rid = "mimi://a.example/r/cas";
    s[0].create_room(room(rid, 3)).await.expect("create");
    let n = 10;
    let mut tasks = Vec::new();
    for i in 0..n {
        let st = Arc::clone(&s[i % s.len()]);
        let ev = commit(rid, 3, &format!("commit-{i}"), &["b.example", "c.example"]);
        tasks.push(tokio::spawn(async move { st.accept_room_event(ev).await }));
    }
    let mut winners = Vec::new();
    for (i, t) in tasks.into_iter().enumerate() {
        match t.await.expect("join") {
            Ok(out) => winners.push((i, out)),
            Err(StoreError::EpochConflict { current_epoch }) => assert_eq!(current_epoch, 4),
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one commit wins epoch 3");
    let (wi, out) = winners[0];
    assert_eq!(out.seq, 1);
    assert_eq!(out.epoch, 4);
    assert_eq!(out.state_version, 1);
    let rec = s[0].load_room(rid).await.expect("load").expect("room");
    assert_eq!(rec.epoch, 4);
    assert_eq!(rec.last_seq, 1);
    assert_eq!(
        rec.group_state,
        format!("state-after-commit-{wi}").into_bytes()
    );
    // Only the winner is in the log and the outbox.
    let log = s[1].room_events(rid, 0, 100).await.expect("log");
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].payload, format!("commit-{wi}").into_bytes());
    assert_eq!((log[0].epoch, log[0].new_epoch), (3, 4));
    assert_eq!(s[0].outbox_depth().await.expect("depth"), 2);
    let leased = s[0]
        .lease_outbox(None, 100, Duration::from_secs(30), NOW_MS)
        .await
        .expect("lease");
    assert_eq!(leased.len(), 2);
    assert!(
        leased
            .iter()
            .all(|i| i.payload == format!("commit-{wi}").into_bytes())
    );
}

pub async fn application_messages_same_epoch(s: Stores) {
    let rid = "mimi://a.example/r/chat";
    s[0].create_room(room(rid, 7)).await.expect("create");
    let n = 24;
    let mut tasks = Vec::new();
    for i in 0..n {
        let st = Arc::clone(&s[i % s.len()]);
        let ev = app_msg(rid, 7, &format!("msg-{i}"), &["b.example"]);
        tasks.push(tokio::spawn(async move { st.accept_room_event(ev).await }));
    }
    let mut seqs = BTreeSet::new();
    for t in tasks {
        let out = t
            .await
            .expect("join")
            .expect("application message accepted");
        assert_eq!(out.epoch, 7);
        assert_eq!(out.state_version, 0);
        seqs.insert(out.seq);
    }
    assert_eq!(
        seqs,
        (1..=n as u64).collect::<BTreeSet<_>>(),
        "gapless, distinct seqs"
    );
    let log = s[0].room_events(rid, 0, 1000).await.expect("log");
    assert_eq!(log.len(), n);
    assert!(log.windows(2).all(|w| w[0].seq + 1 == w[1].seq));
    assert_eq!(s[1].room_events(rid, 20, 2).await.expect("page").len(), 2);

    // A commit bumps the epoch once; messages validated at the old epoch then conflict.
    let out = s[1]
        .accept_room_event(commit(rid, 7, "c", &[]))
        .await
        .expect("commit");
    assert_eq!((out.seq, out.epoch), (n as u64 + 1, 8));
    let err = s[0]
        .accept_room_event(app_msg(rid, 7, "late", &["b.example"]))
        .await
        .expect_err("stale epoch");
    assert!(
        matches!(err, StoreError::EpochConflict { current_epoch: 8 }),
        "{err}"
    );
    let out = s[0]
        .accept_room_event(app_msg(rid, 8, "fresh", &[]))
        .await
        .expect("new epoch message");
    assert_eq!(out.seq, n as u64 + 2);
    assert_eq!(
        s[0].load_room(rid)
            .await
            .expect("load")
            .expect("room")
            .last_seq,
        n as u64 + 2
    );
}

pub async fn commit_races_messages(s: Stores) {
    let rid = "mimi://a.example/r/mixed";
    s[0].create_room(room(rid, 0)).await.expect("create");
    let mut tasks = Vec::new();
    for i in 0..20usize {
        let st = Arc::clone(&s[i % s.len()]);
        // Two commits race among 18 messages, all validated at epoch 0.
        let ev = if i == 7 || i == 13 {
            commit(rid, 0, &format!("commit-{i}"), &["b.example"])
        } else {
            app_msg(rid, 0, &format!("msg-{i}"), &["b.example"])
        };
        tasks.push(tokio::spawn(async move { st.accept_room_event(ev).await }));
    }
    let mut accepted = 0u64;
    let mut commits = 0;
    for t in tasks {
        match t.await.expect("join") {
            Ok(out) => {
                accepted += 1;
                if out.epoch == 1 {
                    commits += 1;
                }
            }
            Err(StoreError::EpochConflict { current_epoch: 1 }) => {}
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!(commits, 1, "one commit per epoch");
    let log = s[1].room_events(rid, 0, 100).await.expect("log");
    assert_eq!(log.len() as u64, accepted);
    assert_eq!(
        log.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=accepted).collect::<Vec<_>>()
    );
    // Everything before the commit is in epoch 0, nothing is logged after it.
    let last = log.last().expect("non-empty");
    assert_eq!((last.epoch, last.new_epoch), (0, 1));
    assert!(log[..log.len() - 1].iter().all(|e| e.new_epoch == 0));
    assert_eq!(s[0].outbox_depth().await.expect("depth"), accepted);
}

pub async fn accept_rules_and_state_versions(s: Stores) {
    let st = &s[0];
    let rid = "mimi://a.example/r/rules";
    let err = st
        .accept_room_event(app_msg("mimi://a.example/r/missing", 0, "x", &[]))
        .await
        .expect_err("missing room");
    assert!(matches!(err, StoreError::RoomNotFound(_)), "{err}");
    st.create_room(room(rid, 0)).await.expect("create");

    let mut no_state = commit(rid, 0, "c", &[]);
    no_state.new_group_state = None;
    assert!(matches!(
        st.accept_room_event(no_state).await,
        Err(StoreError::Invalid(_))
    ));
    let mut backwards = commit(rid, 1, "c", &[]);
    backwards.new_epoch = 0;
    assert!(matches!(
        st.accept_room_event(backwards).await,
        Err(StoreError::Invalid(_))
    ));
    // Same-epoch state write (e.g. a stored proposal) needs the state version.
    let mut proposal = app_msg(rid, 0, "proposal-1", &["b.example"]);
    proposal.new_group_state = Some(b"with-proposal-1".to_vec());
    assert!(matches!(
        st.accept_room_event(proposal.clone()).await,
        Err(StoreError::Invalid(_))
    ));
    proposal.expected_state_version = Some(0);
    let out = st
        .accept_room_event(proposal.clone())
        .await
        .expect("proposal");
    assert_eq!((out.seq, out.epoch, out.state_version), (1, 0, 1));
    // A second write validated against version 0 lost the race.
    let mut proposal2 = proposal.clone();
    proposal2.event = b"proposal-2".to_vec();
    let err = s[1]
        .accept_room_event(proposal2.clone())
        .await
        .expect_err("stale state version");
    assert!(
        matches!(
            err,
            StoreError::StateVersionConflict {
                current_epoch: 0,
                current_state_version: 1
            }
        ),
        "{err}"
    );
    // Application messages are not affected by state versions.
    st.accept_room_event(app_msg(rid, 0, "hello", &[]))
        .await
        .expect("message");
    proposal2.expected_state_version = Some(1);
    let out = s[1]
        .accept_room_event(proposal2)
        .await
        .expect("retried proposal");
    assert_eq!((out.seq, out.state_version), (3, 2));
    let rec = st.load_room(rid).await.expect("load").expect("room");
    assert_eq!(rec.group_state, b"with-proposal-1");
    assert_eq!(rec.state_version, 2);
    // A commit can also be guarded by the state version.
    let mut c = commit(rid, 0, "c", &[]);
    c.expected_state_version = Some(1);
    assert!(matches!(
        st.accept_room_event(c.clone()).await,
        Err(StoreError::StateVersionConflict { .. })
    ));
    c.expected_state_version = Some(2);
    let out = st.accept_room_event(c).await.expect("commit");
    assert_eq!((out.seq, out.epoch, out.state_version), (4, 1, 3));
}

pub async fn conflicting_commit_writes_nothing(s: Stores) {
    let rid = "mimi://a.example/r/atomic";
    s[0].create_room(room(rid, 0)).await.expect("create");
    s[0].accept_room_event(commit(
        rid,
        0,
        "winner",
        &["b.example", "c.example", "d.example"],
    ))
    .await
    .expect("winner");
    assert_eq!(s[0].outbox_depth().await.expect("depth"), 3);
    let err = s[1]
        .accept_room_event(commit(rid, 0, "loser", &["b.example", "e.example"]))
        .await
        .expect_err("loser");
    assert!(matches!(
        err,
        StoreError::EpochConflict { current_epoch: 1 }
    ));
    assert_eq!(s[0].outbox_depth().await.expect("depth"), 3);
    assert_eq!(s[0].room_events(rid, 0, 10).await.expect("log").len(), 1);
    assert_eq!(
        s[0].destinations_with_due_items(NOW_MS).await.expect("due"),
        vec!["b.example", "c.example", "d.example"]
    );
}

// ---- Outbox ----------------------------------------------------------------------

pub async fn outbox_lease_complete_retry(s: Stores) {
    let st = &s[0];
    let lease = Duration::from_secs(30);
    let ra = "mimi://a.example/r/a";
    let rb = "mimi://a.example/r/b";
    st.create_room(room(ra, 0)).await.expect("create");
    st.create_room(room(rb, 0)).await.expect("create");
    for i in 1..=3 {
        st.accept_room_event(app_msg(
            ra,
            0,
            &format!("a{i}"),
            &["b.example", "c.example"],
        ))
        .await
        .expect("accept");
    }
    st.accept_room_event(app_msg(rb, 0, "b1", &["b.example"]))
        .await
        .expect("accept");
    assert_eq!(st.outbox_depth().await.expect("depth"), 7);

    // Destination filter; lanes come back in seq order.
    let got = st
        .lease_outbox(Some("b.example"), 100, lease, NOW_MS)
        .await
        .expect("lease");
    let view: Vec<_> = got
        .iter()
        .map(|i| (i.room_id.as_str(), i.seq, i.payload.clone(), i.attempts))
        .collect();
    assert_eq!(
        view,
        vec![
            (ra, 1, b"a1".to_vec(), 0),
            (ra, 2, b"a2".to_vec(), 0),
            (ra, 3, b"a3".to_vec(), 0),
            (rb, 1, b"b1".to_vec(), 0),
        ]
    );
    assert!(got.iter().all(|i| i.destination == "b.example"));
    // Leased lanes are not handed out again; the c.example lane still is.
    assert_eq!(
        s[1].destinations_with_due_items(NOW_MS).await.expect("due"),
        vec!["c.example"]
    );
    let other = s[1]
        .lease_outbox(None, 100, lease, NOW_MS + 1)
        .await
        .expect("lease");
    assert_eq!(other.len(), 3);
    assert!(other.iter().all(|i| i.destination == "c.example"));
    assert!(
        s[1].lease_outbox(None, 100, lease, NOW_MS + 2)
            .await
            .expect("lease")
            .is_empty()
    );

    // b.example: a1 delivered, a2 fails -> lane released with backoff, a3 waits behind a2.
    st.complete_outbox(&[got[0].id]).await.expect("complete");
    st.retry_outbox(got[1].id, NOW_MS + 10_000, "connection refused")
        .await
        .expect("retry");
    // rb's lane is still leased; ra's lane is backing off.
    assert!(
        st.lease_outbox(Some("b.example"), 100, lease, NOW_MS + 5_000)
            .await
            .expect("lease")
            .is_empty()
    );
    st.complete_outbox(&[got[3].id]).await.expect("complete rb");
    let again = st
        .lease_outbox(Some("b.example"), 100, lease, NOW_MS + 10_000)
        .await
        .expect("lease");
    let view: Vec<_> = again.iter().map(|i| (i.seq, i.attempts)).collect();
    assert_eq!(view, vec![(2, 1), (3, 0)], "a2 before a3, attempts counted");
    assert_eq!(again[0].id, got[1].id);

    // A lease that is never completed expires and the rows come back.
    let expired = st
        .lease_outbox(None, 100, lease, NOW_MS + 10_000 + 30_000)
        .await
        .expect("lease");
    let mut ids: Vec<_> = expired.iter().map(|i| i.id).collect();
    ids.sort_unstable();
    let mut want: Vec<_> = again.iter().chain(other.iter()).map(|i| i.id).collect();
    want.sort_unstable();
    assert_eq!(ids, want);

    // Completing everything leased releases the lanes at once: a new event is due now.
    st.complete_outbox(&ids).await.expect("complete");
    assert_eq!(st.outbox_depth().await.expect("depth"), 0);
    st.accept_room_event(app_msg(ra, 0, "a4", &["b.example"]))
        .await
        .expect("accept");
    let fresh = s[1]
        .lease_outbox(None, 100, lease, NOW_MS + 40_001)
        .await
        .expect("lease");
    assert_eq!(fresh.len(), 1);
    assert_eq!(fresh[0].seq, 4);
    // Completing an already-completed row, retrying a gone row: no-ops.
    st.complete_outbox(&[fresh[0].id, got[0].id])
        .await
        .expect("complete");
    st.retry_outbox(got[0].id, NOW_MS, "late")
        .await
        .expect("retry gone");
    assert_eq!(st.outbox_depth().await.expect("depth"), 0);
    assert!(
        st.destinations_with_due_items(NOW_MS + 50_000)
            .await
            .expect("due")
            .is_empty()
    );
}

/// A refused row leaves its lane for the dead letters and the lane goes
/// on; retried, it is back in the lane at its seq; dropped, it is gone.
pub async fn outbox_dead_letters(s: Stores) {
    let st = &s[0];
    let lease = Duration::from_secs(30);
    let ra = "mimi://a.example/r/a";
    st.create_room(room(ra, 0)).await.expect("create");
    for i in 1..=3 {
        st.accept_room_event(app_msg(ra, 0, &format!("a{i}"), &["b.example"]))
            .await
            .expect("accept");
    }
    let got = st
        .lease_outbox(None, 100, lease, NOW_MS)
        .await
        .expect("lease");
    assert_eq!(got.iter().map(|i| i.seq).collect::<Vec<_>>(), vec![1, 2, 3]);
    st.retry_outbox(got[1].id, NOW_MS, "connection refused")
        .await
        .expect("retry");
    let got = st
        .lease_outbox(None, 100, lease, NOW_MS)
        .await
        .expect("lease");
    st.complete_outbox(&[got[0].id, got[2].id])
        .await
        .expect("complete");
    assert_eq!(
        st.dead_letter_outbox(&[got[1].id], Some(400), "bad event", NOW_MS + 1)
            .await
            .expect("dead letter"),
        1
    );
    // Moved, not copied; a second move of the same row finds nothing.
    assert_eq!(st.outbox_depth().await.expect("depth"), 0);
    assert_eq!(
        s[1].dead_letter_outbox(&[got[1].id], Some(400), "again", NOW_MS + 2)
            .await
            .expect("dead letter gone row"),
        0
    );
    let dead = s[1].dead_letters(10).await.expect("list");
    assert_eq!(
        dead,
        vec![DeadLetter {
            id: got[1].id,
            destination: "b.example".into(),
            room_id: ra.into(),
            seq: 2,
            payload: b"a2".to_vec(),
            attempts: 1,
            enqueued_at_ms: NOW_MS,
            status: Some(400),
            answer: "bad event".into(),
            dead_at_ms: NOW_MS + 1,
        }]
    );
    assert_eq!(st.dead_letter_count().await.expect("count"), 1);

    // The lease had no rows left: the lane is released, a new event is due now.
    st.accept_room_event(app_msg(ra, 0, "a4", &["b.example"]))
        .await
        .expect("accept");
    let next = s[1]
        .lease_outbox(None, 100, lease, NOW_MS + 3)
        .await
        .expect("lease");
    assert_eq!(next.iter().map(|i| i.seq).collect::<Vec<_>>(), vec![4]);
    // A row the hub refused itself has no status.
    s[1].dead_letter_outbox(&[next[0].id], None, "not a FanoutMessage", NOW_MS + 4)
        .await
        .expect("dead letter");
    let dead = st.dead_letters(10).await.expect("list");
    assert_eq!(
        dead.iter()
            .map(|d| (d.seq, d.status, d.answer.as_str()))
            .collect::<Vec<_>>(),
        vec![
            (2, Some(400), "bad event"),
            (4, None, "not a FanoutMessage")
        ]
    );
    assert_eq!(st.dead_letters(1).await.expect("list").len(), 1);

    // Retried: back in the lane at seq 2, ahead of a later event, due now.
    st.accept_room_event(app_msg(ra, 0, "a5", &["b.example"]))
        .await
        .expect("accept");
    let back = st
        .retry_dead_letter(got[1].id, NOW_MS + 5)
        .await
        .expect("retry dead letter")
        .expect("it exists");
    assert_ne!(back, got[1].id);
    assert_eq!(
        st.retry_dead_letter(got[1].id, NOW_MS + 5)
            .await
            .expect("retry again"),
        None
    );
    let again = s[1]
        .lease_outbox(None, 100, lease, NOW_MS + 5)
        .await
        .expect("lease");
    assert_eq!(
        again
            .iter()
            .map(|i| (i.id, i.seq, i.payload.clone(), i.attempts))
            .collect::<Vec<_>>()[0],
        (back, 2, b"a2".to_vec(), 0)
    );
    assert_eq!(again.iter().map(|i| i.seq).collect::<Vec<_>>(), vec![2, 5]);

    // Dropped: gone for good.
    assert!(st.drop_dead_letter(next[0].id).await.expect("drop"));
    assert!(!st.drop_dead_letter(next[0].id).await.expect("drop again"));
    assert_eq!(st.dead_letter_count().await.expect("count"), 0);
    assert!(st.dead_letters(10).await.expect("list").is_empty());
}

pub async fn outbox_partial_lease_keeps_order(s: Stores) {
    let st = &s[0];
    let lease = Duration::from_secs(30);
    let rid = "mimi://a.example/r/long";
    st.create_room(room(rid, 0)).await.expect("create");
    for i in 1..=5 {
        st.accept_room_event(app_msg(rid, 0, &format!("m{i}"), &["b.example"]))
            .await
            .expect("accept");
    }
    // Non-room items share the lane model and are ordered by their seq.
    st.enqueue_outbox(
        vec![NewOutboxItem {
            destination: "hub.example".into(),
            room_id: "mimi://hub.example/r/x".into(),
            seq: 0,
            payload: b"submit".to_vec(),
        }],
        NOW_MS,
    )
    .await
    .expect("enqueue");

    let first = st
        .lease_outbox(None, 2, lease, NOW_MS)
        .await
        .expect("lease");
    // Two lanes, limit two: each lane's head.
    let heads: Vec<_> = first
        .iter()
        .map(|i| (i.destination.as_str(), i.seq))
        .collect();
    assert_eq!(heads, vec![("b.example", 1), ("hub.example", 0)]);
    // The rest of the b.example lane is not leasable by anyone else meanwhile.
    assert!(
        s[1].lease_outbox(None, 10, lease, NOW_MS)
            .await
            .expect("lease")
            .is_empty()
    );
    st.complete_outbox(&first.iter().map(|i| i.id).collect::<Vec<_>>())
        .await
        .expect("complete");
    let next = s[1]
        .lease_outbox(None, 2, lease, NOW_MS)
        .await
        .expect("lease");
    assert_eq!(next.iter().map(|i| i.seq).collect::<Vec<_>>(), vec![2, 3]);
    // Completing only part of a lease keeps the lane leased (m4 cannot overtake m3).
    s[1].complete_outbox(&[next[0].id]).await.expect("complete");
    assert!(
        st.lease_outbox(None, 10, lease, NOW_MS)
            .await
            .expect("lease")
            .is_empty()
    );
    s[1].complete_outbox(&[next[1].id]).await.expect("complete");
    let rest = st
        .lease_outbox(None, 10, lease, NOW_MS)
        .await
        .expect("lease");
    assert_eq!(rest.iter().map(|i| i.seq).collect::<Vec<_>>(), vec![4, 5]);
}

/// (destination, room, seq, outbox id) of one delivery.
type Delivered = (String, String, u64, OutboxId);

pub async fn outbox_concurrent_leasers(s: Stores) {
    let lanes = 8usize;
    let per_lane = 6usize;
    for r in 0..lanes {
        let rid = format!("mimi://a.example/r/w{r}");
        s[0].create_room(room(&rid, 0)).await.expect("create");
        for m in 1..=per_lane {
            s[0].accept_room_event(app_msg(
                &rid,
                0,
                &format!("{r}-{m}"),
                &["b.example", "c.example"],
            ))
            .await
            .expect("accept");
        }
    }
    let total = lanes * per_lane * 2;
    let delivered: Arc<Mutex<Vec<Delivered>>> = Arc::default();
    let mut workers = Vec::new();
    for w in 0..6usize {
        let st = Arc::clone(&s[w % s.len()]);
        let delivered = Arc::clone(&delivered);
        workers.push(tokio::spawn(async move {
            let mut idle = 0;
            let mut round = 0u32;
            loop {
                let items = st
                    .lease_outbox(None, 3, Duration::from_secs(60), NOW_MS)
                    .await
                    .expect("lease");
                if items.is_empty() {
                    if st.outbox_depth().await.expect("depth") == 0 {
                        break;
                    }
                    idle += 1;
                    assert!(idle < 20_000, "workers starved");
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    continue;
                }
                // Every third round the last delivery fails and is retried at once.
                round += 1;
                let fail = round.is_multiple_of(3);
                let (done, failed) = if fail {
                    items.split_at(items.len() - 1)
                } else {
                    (&items[..], &[][..])
                };
                {
                    let mut d = delivered.lock().expect("lock");
                    for i in done {
                        d.push((i.destination.clone(), i.room_id.clone(), i.seq, i.id));
                    }
                }
                st.complete_outbox(&done.iter().map(|i| i.id).collect::<Vec<_>>())
                    .await
                    .expect("complete");
                if let Some(f) = failed.first() {
                    st.retry_outbox(f.id, NOW_MS, "flaky").await.expect("retry");
                }
            }
        }));
    }
    for w in workers {
        w.await.expect("worker");
    }
    let d = delivered.lock().expect("lock");
    let ids: HashSet<OutboxId> = d.iter().map(|x| x.3).collect();
    assert_eq!(d.len(), total, "every row delivered exactly once");
    assert_eq!(ids.len(), total);
    // Per (destination, room) lane, deliveries happened in seq order.
    let mut by_lane: BTreeMap<(String, String), Vec<u64>> = BTreeMap::new();
    for (dest, room, seq, _) in d.iter() {
        by_lane
            .entry((dest.clone(), room.clone()))
            .or_default()
            .push(*seq);
    }
    assert_eq!(by_lane.len(), lanes * 2);
    for (lane, seqs) in by_lane {
        assert_eq!(
            seqs,
            (1..=per_lane as u64).collect::<Vec<_>>(),
            "lane {lane:?}"
        );
    }
}

// ---- Follower inbox dedup (-06 §5.5) ---------------------------------------------

const CLUB: &str = "mimi://a.example/r/club";

/// Records messages `hashes` of `room` from `hub` with no client events;
/// which of them were new.
async fn seen(
    st: &dyn Store,
    hub: &str,
    room: &str,
    hashes: &[[u8; 32]],
    now_ms: i64,
) -> Vec<bool> {
    let messages = hashes
        .iter()
        .map(|h| NotifiedMessage {
            message_sha256: *h,
            payload: h.to_vec(),
            recipients: Recipients::Welcomed(Vec::new()),
        })
        .collect();
    st.record_notify_and_log(hub, room, messages, now_ms)
        .await
        .expect("notify")
        .new_messages
}

pub async fn notify_dedup(s: Stores) {
    let st = &*s[0];
    let (h1, h2) = ([1u8; 32], [2u8; 32]);
    assert_eq!(seen(st, "a.example", CLUB, &[h1], NOW_MS).await, [true]);
    assert_eq!(
        seen(&*s[1], "a.example", CLUB, &[h1], NOW_MS + 5).await,
        [false]
    );
    // A batch mixing a seen and a new message; a repeat within one batch.
    assert_eq!(
        seen(st, "a.example", CLUB, &[h1, h2, h2], NOW_MS + 10).await,
        [false, true, false]
    );
    // The same message from another hub, or in another room, is another key.
    assert_eq!(
        seen(st, "z.example", CLUB, &[h1], NOW_MS + 10).await,
        [true]
    );
    assert_eq!(
        seen(
            st,
            "a.example",
            "mimi://a.example/r/other",
            &[h1],
            NOW_MS + 10
        )
        .await,
        [true]
    );

    // Concurrent duplicates, in batches of different order: exactly one
    // first copy of each message.
    let (h3, h4) = ([3u8; 32], [4u8; 32]);
    let mut tasks = Vec::new();
    for i in 0..10 {
        let st = Arc::clone(&s[i % s.len()]);
        let batch = if i % 2 == 0 { [h3, h4] } else { [h4, h3] };
        tasks.push(tokio::spawn(async move {
            seen(&*st, "a.example", CLUB, &batch, NOW_MS + 20).await
        }));
    }
    let mut firsts = 0;
    for t in tasks {
        firsts += t.await.expect("join").iter().filter(|n| **n).count();
    }
    assert_eq!(firsts, 2);

    // Pruning forgets old hashes: the same message counts as new again.
    assert_eq!(st.prune_notify_before(NOW_MS + 5).await.expect("prune"), 1);
    assert_eq!(
        seen(st, "a.example", CLUB, &[h1, h2], NOW_MS + 40).await,
        [true, false]
    );
}

/// A message for the room, logged as `[h]`.
fn for_room(h: u8) -> NotifiedMessage {
    NotifiedMessage {
        message_sha256: [h; 32],
        payload: vec![h],
        recipients: Recipients::Room,
    }
}

/// A Welcome for `devices`, logged as `[h]`.
fn welcome(h: u8, devices: &[&str]) -> NotifiedMessage {
    NotifiedMessage {
        message_sha256: [h; 32],
        payload: vec![h],
        recipients: Recipients::Welcomed(devices.iter().map(|d| (*d).to_owned()).collect()),
    }
}

async fn payloads(st: &dyn Store, client: &str, after: u64) -> Vec<Vec<u8>> {
    st.fetch_client_events(client, after, 100)
        .await
        .expect("fetch")
        .into_iter()
        .map(|e| e.payload)
        .collect()
}

/// A device's first `n` readable events, once they are all readable. On
/// PostgreSQL an event becomes readable when every write transaction
/// older than its own has ended (migrations/postgres/0010), and other
/// tests write to the same cluster meanwhile.
async fn read_n(st: &dyn Store, client: &str, n: usize) -> Vec<ClientEvent> {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let got = st.fetch_client_events(client, 0, 100).await.expect("fetch");
        if got.len() >= n {
            return got;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{client}: {} of {n} events readable",
            got.len()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn payloads_of(events: &[ClientEvent]) -> Vec<Vec<u8>> {
    events.iter().map(|e| e.payload.clone()).collect()
}

/// Events resent in differently split batches are logged once, in the
/// same transaction as their dedup keys, and read by every subscriber.
pub async fn notify_dedup_per_message(s: Stores) {
    for client in ["c1", "c2"] {
        s[0].subscribe(CLUB, client).await.expect("subscribe");
    }
    let first = s[0]
        .record_notify_and_log("a.example", CLUB, vec![for_room(1), for_room(2)], NOW_MS)
        .await
        .expect("ingest");
    assert_eq!(first.new_messages, [true, true]);
    // One row per message, not one per subscribed device.
    assert_eq!(first.logged_seqs.len(), 2);
    assert!(first.logged_seqs[0] < first.logged_seqs[1]);
    let second = s[1]
        .record_notify_and_log(
            "a.example",
            CLUB,
            vec![for_room(2), for_room(3)],
            NOW_MS + 1,
        )
        .await
        .expect("ingest");
    assert_eq!(second.new_messages, [false, true]);
    assert_eq!(second.logged_seqs.len(), 1);
    assert!(second.logged_seqs[0] > first.logged_seqs[1]);
    assert!(!second.all_duplicates());
    let again = s[0]
        .record_notify_and_log(
            "a.example",
            CLUB,
            vec![for_room(3), for_room(1)],
            NOW_MS + 2,
        )
        .await
        .expect("ingest");
    assert!(again.all_duplicates());
    assert!(again.logged_seqs.is_empty());
    // A message repeated within one batch is new once.
    let repeated = s[0]
        .record_notify_and_log(
            "a.example",
            CLUB,
            vec![for_room(4), for_room(4)],
            NOW_MS + 3,
        )
        .await
        .expect("ingest");
    assert_eq!(repeated.new_messages, [true, false]);
    assert_eq!(repeated.logged_seqs.len(), 1);
    for client in ["c1", "c2"] {
        assert_eq!(
            payloads_of(&read_n(&*s[1], client, 4).await),
            [vec![1], vec![2], vec![3], vec![4]],
            "{client}"
        );
    }
}

// ---- The delivery log and device cursors ---------------------------------------

/// A device reads its rooms' events from its subscription on, and the
/// Welcomes addressed to it; its cursor moves forward only.
pub async fn delivery_log_fetch_ack(s: Stores) {
    let st = &s[0];
    st.subscribe(CLUB, "bob-1").await.expect("subscribe");
    st.record_notify_and_log("a.example", CLUB, vec![for_room(1)], NOW_MS)
        .await
        .expect("log");
    // bob-2 subscribes once event 1 is readable: it never sees it.
    read_n(&**st, "bob-1", 1).await;
    st.subscribe(CLUB, "bob-2").await.expect("subscribe");
    let logged = s[1]
        .record_notify_and_log("a.example", CLUB, vec![for_room(2), for_room(3)], NOW_MS)
        .await
        .expect("log");
    let got = read_n(&*s[1], "bob-1", 3).await;
    assert_eq!(payloads_of(&got), [vec![1], vec![2], vec![3]]);
    assert_eq!(got[0].room_id, CLUB);
    assert_eq!(got[0].enqueued_at_ms, NOW_MS);
    assert_eq!(got[1].seq, logged.logged_seqs[0]);
    assert_eq!(payloads(&**st, "bob-2", 0).await, [vec![2], vec![3]]);
    // `after` and `limit` page through the feed.
    let page = st
        .fetch_client_events("bob-1", got[0].seq, 1)
        .await
        .expect("fetch");
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].seq, got[1].seq);
    // Acknowledging moves the cursor; what it passed is not read again,
    // whatever `after` says.
    assert_eq!(
        st.ack_client_events("bob-1", got[1].seq)
            .await
            .expect("ack"),
        2
    );
    assert_eq!(
        st.ack_client_events("bob-1", got[1].seq)
            .await
            .expect("ack"),
        0
    );
    assert_eq!(
        st.ack_client_events("bob-1", got[0].seq)
            .await
            .expect("ack back"),
        0
    );
    assert_eq!(payloads(&*s[1], "bob-1", 0).await, [vec![3]]);
    // bob-2's cursor is its own.
    assert_eq!(payloads(&**st, "bob-2", 0).await, [vec![2], vec![3]]);
    // A cursor never passes what was handed out: acknowledging far ahead
    // does not hide later events.
    st.ack_client_events("bob-1", u64::MAX)
        .await
        .expect("ack ahead");
    st.record_notify_and_log("a.example", CLUB, vec![for_room(4)], NOW_MS)
        .await
        .expect("log");
    assert_eq!(payloads_of(&read_n(&**st, "bob-1", 1).await), [vec![4]]);
    assert!(payloads(&**st, "nobody", 0).await.is_empty());

    // A Welcome reaches only its devices, and subscribes them from it on.
    let hall = "mimi://a.example/r/hall";
    st.record_notify_and_log("a.example", hall, vec![for_room(10)], NOW_MS)
        .await
        .expect("log");
    let welcomed = st
        .record_notify_and_log(
            "a.example",
            hall,
            vec![welcome(11, &["carol-1", "carol-2"]), for_room(12)],
            NOW_MS,
        )
        .await
        .expect("log");
    // One row per welcomed device, one for the room's message.
    assert_eq!(welcomed.logged_seqs.len(), 3);
    for carol in ["carol-1", "carol-2"] {
        assert_eq!(
            payloads_of(&read_n(&*s[1], carol, 2).await),
            [vec![11], vec![12]],
            "{carol}"
        );
    }
    assert_eq!(
        st.subscribers(hall).await.expect("subscribers"),
        ["carol-1", "carol-2"]
    );
    assert!(payloads(&*s[1], "bob-2", 0).await.iter().all(|p| p[0] < 10));
}

/// What every device that may read an event has acknowledged is purged;
/// so is what nobody may read, and what is past retention.
pub async fn delivery_log_purge(s: Stores) {
    let st = &s[0];
    let hall = "mimi://a.example/r/hall";
    st.subscribe(CLUB, "d1").await.expect("subscribe");
    st.subscribe(CLUB, "d2").await.expect("subscribe");
    let club = st
        .record_notify_and_log("a.example", CLUB, vec![for_room(1), for_room(2)], NOW_MS)
        .await
        .expect("log");
    // Nobody is subscribed to the hall: its event may be read by no one.
    st.record_notify_and_log("a.example", hall, vec![for_room(3)], NOW_MS)
        .await
        .expect("log");
    let welcomed = st
        .record_notify_and_log("a.example", CLUB, vec![welcome(4, &["d3"])], NOW_MS)
        .await
        .expect("log");
    // Acknowledged only once readable (a cursor never passes that).
    read_n(&**st, "d3", 1).await;
    read_n(&**st, "d1", 2).await;
    assert_eq!(
        st.purge_delivery_log(0).await.expect("purge"),
        1,
        "the hall's"
    );
    // d1 has read 1, d2 nothing: 1 stays for d2.
    st.ack_client_events("d1", club.logged_seqs[0])
        .await
        .expect("ack");
    assert_eq!(st.purge_delivery_log(0).await.expect("purge"), 0);
    st.ack_client_events("d2", club.logged_seqs[1])
        .await
        .expect("ack");
    assert_eq!(st.purge_delivery_log(0).await.expect("purge"), 1, "event 1");
    assert_eq!(payloads(&**st, "d1", 0).await, [vec![2]]);
    // d3 joined with the Welcome: it may read its Welcome only.
    st.ack_client_events("d3", welcomed.logged_seqs[0])
        .await
        .expect("ack");
    assert_eq!(
        st.purge_delivery_log(0).await.expect("purge"),
        1,
        "the Welcome"
    );
    // Retention deletes what d1 has not read.
    assert_eq!(payloads(&**st, "d1", 0).await, [vec![2]]);
    assert_eq!(st.purge_delivery_log(NOW_MS + 1).await.expect("purge"), 1);
    assert!(payloads(&**st, "d1", 0).await.is_empty());
}

/// Writers on every handle log into rooms at once while a device reads
/// and acknowledges: it gets every event once, each room in order.
pub async fn delivery_log_concurrent_readers(s: Stores) {
    const ROOMS: usize = 6;
    const BATCHES: u8 = 15;
    let room = |r: usize| format!("mimi://a.example/r/busy-{r}");
    for r in 0..ROOMS {
        s[0].subscribe(&room(r), "reader").await.expect("subscribe");
    }
    let mut writers = Vec::new();
    for r in 0..ROOMS {
        let st = Arc::clone(&s[r % s.len()]);
        let room = room(r);
        writers.push(tokio::spawn(async move {
            for b in 0..BATCHES {
                let message = |i: u8| NotifiedMessage {
                    message_sha256: [
                        r as u8, b, i, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                        0, 0, 0, 0, 0, 0, 0, 0, 0,
                    ],
                    payload: vec![r as u8, b, i],
                    recipients: Recipients::Room,
                };
                st.record_notify_and_log("a.example", &room, vec![message(0), message(1)], NOW_MS)
                    .await
                    .expect("log");
            }
        }));
    }
    let reader = Arc::clone(&s[s.len() - 1]);
    let total = ROOMS * usize::from(BATCHES) * 2;
    let mut got: Vec<Vec<u8>> = Vec::new();
    let mut cursor = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while got.len() < total {
        assert!(
            std::time::Instant::now() < deadline,
            "only {} of {total}",
            got.len()
        );
        let batch = reader
            .fetch_client_events("reader", cursor, 7)
            .await
            .expect("fetch");
        if let Some(last) = batch.last() {
            assert!(batch.windows(2).all(|w| w[0].seq < w[1].seq));
            assert!(batch[0].seq > cursor);
            cursor = last.seq;
            got.extend(batch.into_iter().map(|e| e.payload));
            reader
                .ack_client_events("reader", cursor)
                .await
                .expect("ack");
        } else {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    for w in writers {
        w.await.expect("writer");
    }
    assert!(payloads(&*reader, "reader", 0).await.is_empty());
    for r in 0..ROOMS {
        let of_room: Vec<(u8, u8)> = got
            .iter()
            .filter(|p| usize::from(p[0]) == r)
            .map(|p| (p[1], p[2]))
            .collect();
        let want: Vec<(u8, u8)> = (0..BATCHES).flat_map(|b| [(b, 0), (b, 1)]).collect();
        assert_eq!(of_room, want, "room {r}");
    }
}

pub async fn room_subscriptions(s: Stores) {
    let (a, b) = (&*s[0], &*s[1]);
    a.subscribe("mimi://a.example/r/x", "mimi://a.example/d/al/1")
        .await
        .expect("subscribe");
    b.subscribe("mimi://a.example/r/x", "mimi://a.example/d/al/0")
        .await
        .expect("subscribe");
    // Idempotent, also from the other handle.
    b.subscribe("mimi://a.example/r/x", "mimi://a.example/d/al/1")
        .await
        .expect("resubscribe");
    a.subscribe("mimi://a.example/r/y", "mimi://a.example/d/al/1")
        .await
        .expect("subscribe");
    assert_eq!(
        a.subscribers("mimi://a.example/r/x").await.expect("list"),
        vec![
            "mimi://a.example/d/al/0".to_string(),
            "mimi://a.example/d/al/1".to_string()
        ]
    );
    assert!(
        b.unsubscribe("mimi://a.example/r/x", "mimi://a.example/d/al/0")
            .await
            .expect("unsub")
    );
    assert!(
        !a.unsubscribe("mimi://a.example/r/x", "mimi://a.example/d/al/0")
            .await
            .expect("unsub twice")
    );
    assert_eq!(
        a.subscribers("mimi://a.example/r/x").await.expect("list"),
        vec!["mimi://a.example/d/al/1".to_string()]
    );
    assert!(
        a.subscribers("mimi://a.example/r/none")
            .await
            .expect("list")
            .is_empty()
    );
}

pub async fn devices_and_tokens(s: Stores) {
    let (a, b) = (&*s[0], &*s[1]);
    let alice = "mimi://a.example/u/alice";
    let laptop = "mimi://a.example/d/alice/laptop";
    a.register_device(alice, laptop, [1; 32], Reregistration::Refuse, 1)
        .await
        .expect("register");
    assert_eq!(
        b.device_for_token([1; 32]).await.expect("lookup"),
        Some(RegisteredDevice {
            user_uri: alice.to_string(),
            device_uri: laptop.to_string(),
        })
    );
    // The same device id again, without authority or with a wrong token:
    // refused, the old token still works.
    for reregistration in [
        Reregistration::Refuse,
        Reregistration::WithCurrentToken([7; 32]),
    ] {
        let err = b
            .register_device(alice, laptop, [2; 32], reregistration, 2)
            .await;
        assert!(
            matches!(err, Err(StoreError::DeviceRegistered(ref d)) if d == laptop),
            "{err:?}"
        );
    }
    assert_eq!(a.device_for_token([2; 32]).await.expect("lookup"), None);
    assert!(a.device_for_token([1; 32]).await.expect("lookup").is_some());
    // With its current token, or as the admin: the token is replaced.
    b.register_device(
        alice,
        laptop,
        [2; 32],
        Reregistration::WithCurrentToken([1; 32]),
        2,
    )
    .await
    .expect("re-register with the current token");
    assert_eq!(a.device_for_token([1; 32]).await.expect("lookup"), None);
    assert!(a.device_for_token([2; 32]).await.expect("lookup").is_some());
    b.register_device(alice, laptop, [4; 32], Reregistration::Admin, 3)
        .await
        .expect("re-register as admin");
    assert_eq!(a.device_for_token([2; 32]).await.expect("lookup"), None);
    assert!(a.device_for_token([4; 32]).await.expect("lookup").is_some());
    // Another user cannot take the device over, not even as the admin,
    // and nothing changes.
    let err = a
        .register_device(
            "mimi://a.example/u/mallory",
            laptop,
            [3; 32],
            Reregistration::Admin,
            3,
        )
        .await;
    assert!(
        matches!(err, Err(StoreError::ClientOwnedByOtherUser { ref owner, .. }) if owner == alice),
        "{err:?}"
    );
    assert_eq!(a.device_for_token([3; 32]).await.expect("lookup"), None);
    assert!(a.device_for_token([4; 32]).await.expect("lookup").is_some());
}

pub async fn ping(s: Stores) {
    for st in &s {
        st.ping().await.expect("ping");
    }
}

/// Writes one of everything; [`check_persisted`] verifies it after a reopen.
pub async fn write_persisted(st: &dyn Store) {
    st.add_key_packages(
        "mimi://b.example/u/p",
        "mimi://b.example/d/p/1",
        vec![kp("p", 1, LATER, false), kp("p", 2, LATER, false)],
    )
    .await
    .expect("add");
    st.claim_key_packages("mimi://b.example/u/p", NOW)
        .await
        .expect("claim");
    st.create_room(room("mimi://a.example/r/p", 0))
        .await
        .expect("create");
    st.accept_room_event(commit("mimi://a.example/r/p", 0, "c", &["b.example"]))
        .await
        .expect("accept");
    assert_eq!(
        seen(st, "a.example", CLUB, &[[9; 32]], NOW_MS).await,
        [true]
    );
    st.record_notify_and_log(
        "a.example",
        "mimi://a.example/r/p",
        vec![welcome(8, &["p-1"])],
        NOW_MS,
    )
    .await
    .expect("log");
}

pub async fn check_persisted(st: &dyn Store) {
    assert_eq!(
        st.count_key_packages("mimi://b.example/d/p/1", NOW)
            .await
            .expect("count")
            .single_use,
        1
    );
    assert_eq!(
        st.client_for_key_package_ref(b"ref-p-1")
            .await
            .expect("lookup")
            .as_deref(),
        Some("mimi://b.example/d/p/1")
    );
    let rec = st
        .load_room("mimi://a.example/r/p")
        .await
        .expect("load")
        .expect("room");
    assert_eq!((rec.epoch, rec.last_seq), (1, 1));
    assert_eq!(rec.group_state, b"state-after-c");
    assert_eq!(st.outbox_depth().await.expect("depth"), 1);
    assert_eq!(
        seen(st, "a.example", CLUB, &[[9; 32]], NOW_MS).await,
        [false]
    );
    assert_eq!(read_n(st, "p-1", 1).await.len(), 1);
    // Epoch CAS still holds across the reopen.
    assert!(matches!(
        st.accept_room_event(commit("mimi://a.example/r/p", 0, "late", &[]))
            .await,
        Err(StoreError::EpochConflict { current_epoch: 1 })
    ));
}

/// Expands to one `#[tokio::test]` per suite function; `$setup` is an async
/// expression yielding `(guard, Stores)` for a fresh database.
#[macro_export]
macro_rules! suite_tests {
    ($setup:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let (guard, stores) = $setup().await;
                suite::$name(stores).await;
                guard.finish().await;
            }
        )*
    };
}

// ---- Consent, user settings, abuse reports (-06 §5.7-§5.9) -----------------

pub async fn consent_entries_per_scope(s: Stores) {
    let (a, b) = (&*s[0], &*s[1]);
    let alice = "mimi://a.example/u/alice";
    let bob = "mimi://b.example/u/bob";
    let room = "mimi://a.example/r/x";
    let entry = |room: Option<&str>, op: &str, t: i64| ConsentRecord {
        requester_uri: alice.into(),
        target_uri: bob.into(),
        room_id: room.map(Into::into),
        operation: mimi_store::ConsentOperation::from_name(op).expect("operation"),
        updated_at_ms: t,
    };
    assert!(
        a.consent_entries(alice, bob)
            .await
            .expect("read")
            .is_empty()
    );
    a.record_consent(entry(None, "request", 1))
        .await
        .expect("request");
    b.record_consent(entry(Some(room), "grant", 2))
        .await
        .expect("grant");
    // A later operation on the same scope replaces the earlier one.
    b.record_consent(entry(None, "revoke", 3))
        .await
        .expect("revoke");
    let got = a.consent_entries(alice, bob).await.expect("read");
    assert_eq!(
        got,
        vec![entry(None, "revoke", 3), entry(Some(room), "grant", 2)]
    );
    // Scopes are directional.
    assert!(
        a.consent_entries(bob, alice)
            .await
            .expect("read")
            .is_empty()
    );
}

pub async fn user_settings_and_discovery(s: Stores) {
    let (a, b) = (&*s[0], &*s[1]);
    assert!(
        a.user_settings("mimi://a.example/u/x")
            .await
            .expect("read")
            .is_none()
    );
    let alice = UserSettings {
        user_uri: "mimi://a.example/u/alice".into(),
        consent_required: true,
        handle: Some("@alice".into()),
        given_name: Some("Alice".into()),
        discoverability: mimi_store::Discoverability::Search,
        ..UserSettings::default()
    };
    let hidden = UserSettings {
        user_uri: "mimi://a.example/u/hidden".into(),
        discoverability: mimi_store::Discoverability::None,
        ..UserSettings::default()
    };
    a.put_user_settings(alice.clone()).await.expect("put");
    a.put_user_settings(hidden.clone()).await.expect("put");
    assert_eq!(
        b.user_settings(&alice.user_uri).await.expect("read"),
        Some(alice.clone())
    );
    assert_eq!(
        b.discoverable_users().await.expect("list"),
        vec![alice.clone()]
    );
    // Replacing clears what is not given again.
    let replaced = UserSettings {
        handle: None,
        consent_required: false,
        discoverability: mimi_store::Discoverability::Exact,
        ..alice.clone()
    };
    b.put_user_settings(replaced.clone())
        .await
        .expect("replace");
    assert_eq!(
        a.user_settings(&alice.user_uri).await.expect("read"),
        Some(replaced)
    );
}

pub async fn abuse_reports_stored(s: Stores) {
    let (a, b) = (&*s[0], &*s[1]);
    assert!(a.abuse_reports().await.expect("list").is_empty());
    let report = |n: u8| NewAbuseReport {
        room_id: "mimi://a.example/r/x".into(),
        source_provider: "b.example".into(),
        reporting_user: "mimi://b.example/u/bob".into(),
        alleged_abuser: "mimi://c.example/u/eve".into(),
        report: vec![n; 3],
        received_at_ms: NOW_MS + i64::from(n),
        // Both values must round-trip (migration 0005).
        franks_verified: n == 2,
    };
    let first = a.add_abuse_report(report(1)).await.expect("add");
    let second = b.add_abuse_report(report(2)).await.expect("add");
    assert!(second > first);
    let got = a.abuse_reports().await.expect("list");
    assert_eq!(
        got,
        vec![
            AbuseReportRecord {
                id: first,
                report: report(1)
            },
            AbuseReportRecord {
                id: second,
                report: report(2)
            },
        ]
    );
}

/// `h` for this provider's own devices: the room's subscribers, or the
/// Welcome's devices.
fn local(h: u8, welcomed: Option<&[&str]>) -> LocalDelivery {
    LocalDelivery {
        payload: vec![h],
        recipients: match welcomed {
            None => Recipients::Room,
            Some(devices) => Recipients::Welcomed(devices.iter().map(|d| d.to_string()).collect()),
        },
    }
}

/// The hub's own devices read an accepted event from the delivery log
/// written in the accept's transaction: only if the compare-and-set won,
/// in room order across a group commit, and a Welcome subscribes its
/// devices from it on.
pub async fn accepts_log_for_own_devices(s: Stores) {
    let other = "mimi://a.example/r/other";
    for id in [CLUB, other] {
        s[0].create_room(room(id, 1)).await.expect("create");
    }
    s[0].subscribe(CLUB, "bob-1").await.expect("subscribe");
    s[0].subscribe(other, "bob-1").await.expect("subscribe");
    let with = |mut e: AcceptedEvent, l: LocalDelivery| {
        e.local.push(l);
        e
    };
    let accepted = s[0]
        .accept_room_event(with(app_msg(CLUB, 1, "m1", &["b.example"]), local(1, None)))
        .await
        .expect("accept");
    assert_eq!(accepted.logged, 1);
    assert_eq!(payloads_of(&read_n(&*s[1], "bob-1", 1).await), [vec![1]]);
    // A lost compare-and-set logs nothing.
    let lost = s[1]
        .accept_room_event(with(app_msg(CLUB, 0, "stale", &[]), local(99, None)))
        .await;
    assert!(
        matches!(lost, Err(StoreError::EpochConflict { .. })),
        "{lost:?}"
    );
    // A commit with its Welcome for carol-1: the commit for the room, the
    // Welcome for carol-1 alone, who then reads the room from there on.
    let mut c = with(commit(CLUB, 1, "c1", &[]), local(2, None));
    c.local.push(local(3, Some(&["carol-1"])));
    assert_eq!(s[0].accept_room_event(c).await.expect("commit").logged, 2);
    // Concurrent accepts share group commits; each room keeps its order.
    let mut tasks = Vec::new();
    for i in 0..40u8 {
        let st = s[usize::from(i % 2)].clone();
        let (room_id, epoch) = if i % 4 < 2 { (CLUB, 2) } else { (other, 1) };
        tasks.push(tokio::spawn(async move {
            st.accept_room_event(with(app_msg(room_id, epoch, "m", &[]), local(10 + i, None)))
                .await
                .expect("accept")
        }));
    }
    let mut order: BTreeMap<&str, Vec<(u64, u8)>> = BTreeMap::new();
    for (i, task) in tasks.into_iter().enumerate() {
        let outcome = task.await.expect("task");
        let room_id = if i % 4 < 2 { CLUB } else { other };
        order
            .entry(room_id)
            .or_default()
            .push((outcome.seq, 10 + i as u8));
    }
    let bob = read_n(&*s[0], "bob-1", 42).await;
    assert_eq!(bob.len(), 42, "nothing lost, nothing doubled");
    assert!(
        !payloads_of(&bob).contains(&vec![3]),
        "the Welcome is carol's"
    );
    assert!(!payloads_of(&bob).contains(&vec![99]));
    for (room_id, mut by_seq) in order {
        by_seq.sort_unstable();
        let expected: Vec<Vec<u8>> = by_seq.iter().map(|(_, h)| vec![*h]).collect();
        let read: Vec<Vec<u8>> = bob
            .iter()
            .filter(|e| e.room_id == room_id && e.payload[0] >= 10)
            .map(|e| e.payload.clone())
            .collect();
        assert_eq!(
            read, expected,
            "{room_id}: delivery order is room-log order"
        );
    }
    let carol = read_n(&*s[1], "carol-1", 21).await;
    assert_eq!(carol[0].payload, vec![3]);
    assert!(
        carol[1..]
            .iter()
            .all(|e| e.room_id == CLUB && e.payload[0] >= 10)
    );
}
