//! The `mimi` binary's inspection commands, run as a user would.

use std::path::PathBuf;
use std::process::Command;

fn mimi(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_mimi"))
        .args(args)
        .output()
        .expect("run mimi")
}

fn vector(name: &str) -> String {
    let path: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "..",
        "mimi-content",
        "tests",
        "vectors",
        name,
    ]
    .iter()
    .collect();
    path.to_string_lossy().into_owned()
}

#[test]
fn content_decode_prints_the_drafts_message_id() {
    let out = mimi(&["content", "decode", &vector("original.cbor")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    // The ID printed in draft-ietf-mimi-content's "Original Message" example.
    assert!(
        stdout.contains(
            "message id: 017ce54837404c3696e0c747b985cb172716d0ed0a3d249ca63ace7d82a096f4"
        ),
        "{stdout}"
    );
}

#[test]
fn content_decode_rejects_a_truncated_message() {
    let bytes = std::fs::read(vector("original.cbor")).unwrap();
    let dir = std::env::temp_dir().join(format!("mimi-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cut = dir.join("cut.cbor");
    std::fs::write(&cut, &bytes[..bytes.len() - 3]).unwrap();
    let out = mimi(&["content", "decode", cut.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a valid MIMI content message"));
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn uri_is_normalised_or_refused() {
    let out = mimi(&["uri", "mimi://A.Example/u/alice%2Dsmith"]);
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("uri:    mimi://a.example/u/alice-smith")
    );
    // -06 §3.3 writes mimi://b.example/b/bob; `b` is not an identifier kind.
    let out = mimi(&["uri", "mimi://b.example/b/bob"]);
    assert!(!out.status.success());
}
