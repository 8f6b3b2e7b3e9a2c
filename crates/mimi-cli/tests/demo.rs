//! `mimi demo` as a user runs it: three real providers, the -06 §3 flow,
//! and a non-zero exit if any check fails.

use std::process::Command;

#[test]
fn demo_plays_the_protocol_flow_and_all_checks_pass() {
    run_demo(&[]);
}

/// The same flow with every device and the room on
/// MLS_128_DHKEMP256_AES128GCM_SHA256_P256: the hub's P-256 keys are the
/// room's external sender and franking agent, sign groupInfo (§3.6) and
/// frank every message.
#[test]
fn demo_passes_on_p256() {
    let stdout = run_demo(&["--ciphersuite", "0x0002"]);
    assert!(
        stdout.contains("cipher suite 0x0002 MLS_128_DHKEMP256_AES128GCM_SHA256_P256"),
        "{stdout}"
    );
}

/// Runs `mimi demo` with `args`, checks every step passed, and returns its
/// output.
fn run_demo(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_mimi"))
        .arg("demo")
        .args(args)
        .output()
        .expect("run mimi demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for step in ["§3.1", "§3.2", "§3.3", "§3.4", "§5.10", "§3.5", "§3.6"] {
        assert!(stdout.contains(step), "step {step} missing:\n{stdout}");
    }
    assert!(stdout.contains("participants agreed by every remaining client: mimi://a.example/u/alice, mimi://c.example/u/cathy"));
    assert!(
        stdout.contains(
            "every client decrypted every message sent while it was a member (5 messages)"
        )
    );
    assert!(stdout.contains("reached Bob through b.example and the hub; decrypted, hash and tag verified, byte for byte the original"), "{stdout}");
    assert!(stdout.contains("again by Oblivious HTTP"), "{stdout}");
    assert!(stdout.contains("Demo finished: all checks passed."));
    stdout.into_owned()
}
