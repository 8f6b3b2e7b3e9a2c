//! A device survives a restart: save, drop, load, continue.

mod common;

use common::*;
use mimi_client::{Device, KeyPackageOptions};
use mimi_room::policy::default_role::MEMBER;

fn temp_path(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("mimi-client-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("device.mimi")
}

#[test]
fn save_drop_load_continue_chatting() {
    let mut net = Net::create(ALICE);
    net.add_member(ALICE, BOB).unwrap();
    net.say(ALICE, "before restart");
    net.say(BOB, "ack");

    // Both devices restart.
    for (device, name) in [(ALICE, "alice"), (BOB, "bob")] {
        let path = temp_path(name);
        let d = net.devices.remove(device).unwrap();
        let bytes = d.to_bytes().unwrap();
        assert_eq!(d.to_bytes().unwrap(), bytes, "deterministic encoding");
        d.save(&path).unwrap();
        // The file holds private keys: its owner's alone.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        }
        drop(d);
        let loaded = Device::load(&path).unwrap();
        assert_eq!(loaded.to_bytes().unwrap(), bytes, "load/save round-trips");
        assert_eq!(loaded.device_uri().as_str(), device);
        net.devices.insert(device.to_owned(), loaded);
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }
    assert_eq!(net.texts(ALICE), ["before restart", "ack"]);

    // Chat and membership changes continue with the restored state.
    net.say(BOB, "after restart");
    net.say(ALICE, "still works");
    net.add_member(BOB, CATHY).unwrap();
    net.say(CATHY, "hi all");
    assert_eq!(
        net.texts(ALICE),
        [
            "before restart",
            "ack",
            "after restart",
            "still works",
            "hi all"
        ]
    );
    assert_eq!(net.device(BOB).epoch(ROOM).unwrap(), net.hub.epoch());
}

#[test]
fn key_packages_survive_restart() {
    // A KeyPackage uploaded before a restart can still be used to join.
    let mut net = Net::create(ALICE);
    net.new_device(BOB);
    let kps = net.key_packages(BOB, 1);
    let bob = net.devices.remove(BOB).unwrap();
    let bob = Device::from_bytes(&bob.to_bytes().unwrap()).unwrap();
    net.devices.insert(BOB.to_owned(), bob);
    let req = net
        .device(ALICE)
        .add_user(ROOM, &user(BOB), MEMBER, kps)
        .unwrap();
    net.update(ALICE, req).unwrap();
    assert_eq!(net.device(BOB).epoch(ROOM).unwrap(), 1);
}

#[test]
fn key_package_options() {
    let mut d = Device::new(BOB).unwrap();
    let kps = d
        .generate_key_packages(
            3,
            KeyPackageOptions {
                lifetime_seconds: 3600,
                last_resort: true,
            },
        )
        .unwrap();
    assert_eq!(kps.len(), 3);
    for kp in kps {
        let parsed: openmls::prelude::KeyPackageIn =
            mimi_protocol::decode_exact(&kp.key_package).unwrap();
        let parsed = parsed
            .validate(
                &openmls_rust_crypto::RustCrypto::default(),
                openmls::prelude::ProtocolVersion::Mls10,
            )
            .unwrap();
        assert!(parsed.last_resort());
        assert_eq!(
            parsed
                .hash_ref(&openmls_rust_crypto::RustCrypto::default())
                .unwrap()
                .as_slice(),
            kp.key_package_ref.as_slice()
        );
    }
}

#[test]
fn corrupt_files_are_refused() {
    let d = Device::new(ALICE).unwrap();
    let bytes = d.to_bytes().unwrap();
    assert!(Device::from_bytes(&bytes[..bytes.len() - 1]).is_err());
    assert!(Device::from_bytes(b"garbage").is_err());
}

#[test]
fn pending_commit_and_queued_proposals_survive_restart() {
    let mut net = Net::create(ALICE);
    net.confirm_before_fanout = false;
    net.add_member(ALICE, BOB).unwrap();

    // Bob proposes to leave; Alice restarts with the proposals queued.
    let req = net.device(BOB).leave(ROOM).unwrap();
    net.update(BOB, req).unwrap();
    let alice = net.devices.remove(ALICE).unwrap();
    let alice = Device::from_bytes(&alice.to_bytes().unwrap()).unwrap();
    net.devices.insert(ALICE.to_owned(), alice);

    // Alice commits them, restarts before the hub's answer, then confirms.
    let req = net.device(ALICE).commit_pending(ROOM).unwrap();
    let alice = net.devices.remove(ALICE).unwrap();
    let alice = Device::from_bytes(&alice.to_bytes().unwrap()).unwrap();
    assert!(alice.has_pending_commit(ROOM).unwrap());
    net.devices.insert(ALICE.to_owned(), alice);
    net.update(ALICE, req).unwrap();
    assert_eq!(net.device(ALICE).epoch(ROOM).unwrap(), 2);
    assert_eq!(
        net.device(BOB).room_status(ROOM).unwrap(),
        mimi_client::RoomStatus::Removed
    );
    // Bob's device file still lists the room, as removed, with history.
    let bob = Device::from_bytes(&net.device(BOB).to_bytes().unwrap()).unwrap();
    assert_eq!(
        bob.rooms(),
        [(ROOM.to_string(), mimi_client::RoomStatus::Removed)]
    );
}

/// A device keeps its cipher suite in its file; suites are chosen by code
/// point or name, and ones the crypto provider lacks are refused.
#[test]
fn a_p256_device_keeps_its_suite_across_a_restart() {
    let p256 = mimi_client::parse_ciphersuite("0x0002").unwrap();
    assert_eq!(
        mimi_client::parse_ciphersuite("mls_128_dhkemp256_aes128gcm_sha256_p256").unwrap(),
        p256
    );
    assert_eq!(mimi_client::parse_ciphersuite("2").unwrap(), p256);
    for unsupported in ["0x0007", "4", "P384", ""] {
        assert!(
            mimi_client::parse_ciphersuite(unsupported).is_err(),
            "{unsupported}"
        );
    }
    let mut device = Device::with_ciphersuite(ALICE, p256).unwrap();
    let kp = device
        .generate_key_packages(1, KeyPackageOptions::default())
        .unwrap();
    assert_eq!(kp.len(), 1);
    let restored = Device::from_bytes(&device.to_bytes().unwrap()).unwrap();
    assert_eq!(restored.ciphersuite(), p256);
    assert_eq!(
        Device::new(ALICE).unwrap().ciphersuite(),
        mimi_client::CIPHERSUITE
    );
}

/// A device file others may read is refused with the fix in the message;
/// once its owner restricts it, it loads.
#[cfg(unix)]
#[test]
fn a_device_file_others_may_read_is_refused() {
    use std::os::unix::fs::PermissionsExt as _;
    let path = temp_path("loose");
    Device::new(ALICE).unwrap().save(&path).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = Device::load(&path).unwrap_err();
    assert!(matches!(
        err,
        mimi_client::Error::NotPrivate { mode: 0o644, .. }
    ));
    assert!(err.to_string().contains("chmod 600"), "{err}");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(Device::load(&path).is_ok());
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

/// The directory made for state files is its owner's alone; an existing
/// one is left as it is.
#[cfg(unix)]
#[test]
fn state_directories_are_created_owner_only() {
    use std::os::unix::fs::PermissionsExt as _;
    let base = temp_path("dirs");
    let dir = base.with_file_name("new").join("nested");
    mimi_client::create_private_dir(&dir).unwrap();
    for d in [&dir, &dir.parent().unwrap().to_owned()] {
        let mode = std::fs::metadata(d).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{}: {mode:o}", d.display());
    }
    mimi_client::create_private_dir(&dir).unwrap();
    std::fs::remove_dir_all(base.parent().unwrap()).unwrap();
}

/// The position in the provider's queue is saved with the MLS state (one
/// write), never moves back, and the commit in flight survives a restart
/// byte for byte.
#[test]
fn queue_position_and_commit_in_flight_survive_a_restart() {
    let mut net = Net::create(ALICE);
    net.new_device(CATHY);
    let mut device = Device::new(ALICE).unwrap();
    assert_eq!(device.delivered_up_to(), 0);
    device.mark_delivered(7);
    device.mark_delivered(3);
    assert_eq!(device.delivered_up_to(), 7, "never moves back");
    let restored = Device::from_bytes(&device.to_bytes().unwrap()).unwrap();
    assert_eq!(restored.delivered_up_to(), 7);

    let kps = net.key_packages(CATHY, 1);
    let alice = net.device(ALICE);
    assert!(alice.update_in_flight(ROOM).unwrap().is_none());
    let request = alice.add_user(ROOM, &user(CATHY), MEMBER, kps).unwrap();
    alice.set_update_in_flight(ROOM, Some(&request)).unwrap();
    let restored = Device::from_bytes(&alice.to_bytes().unwrap()).unwrap();
    assert_eq!(
        restored.update_in_flight(ROOM).unwrap(),
        Some(request),
        "the same bytes"
    );
    assert!(restored.has_pending_commit(ROOM).unwrap());
    alice.set_update_in_flight(ROOM, None).unwrap();
    assert!(alice.update_in_flight(ROOM).unwrap().is_none());
}
