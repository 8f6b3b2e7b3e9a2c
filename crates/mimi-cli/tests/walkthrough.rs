//! docs/walkthrough.md executed as written: every `sh` block of the
//! document, in order, with the `mimi` binary under test as `$M`, so the
//! document cannot drift from what the commands do.
//!
//! What a person does by hand the test does too: the build block is
//! skipped (the binary is built), the servers of the "three terminals"
//! block run in the background, a command that fails is tried again for a
//! few seconds (fanout reaches the other providers asynchronously, as it
//! would while a person types), and a `NAME=$(…)` line waits until its
//! value is non-empty. The document's ports (18443–18448) are moved to
//! free ones in the commands and in the generated configs.

mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};

use support::{free_ports, wait_listening};

/// The document's first port; provider i uses FIRST + 2i (federation) and
/// FIRST + 2i + 1 (client API), as `mimi dev-ca` numbers them.
const FIRST: u16 = 18443;

/// The `sh` blocks of a Markdown document, in order.
fn sh_blocks(doc: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in doc.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```sh") => current = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), text) => {
                block.push_str(text);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

/// The block's commands, continuation lines joined, comments dropped.
fn commands(block: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut pending = String::new();
    for line in block.lines() {
        let line = match line.find(" #") {
            Some(at) if !line[..at].contains('"') => &line[..at],
            _ => line,
        };
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(start) => {
                pending.push_str(start.trim_end());
                pending.push(' ');
            }
            None => {
                pending.push_str(line);
                out.push(std::mem::take(&mut pending));
            }
        }
    }
    out
}

/// `text` with the document's ports replaced by `ports`, wherever they
/// follow a colon (`host:port`).
fn with_ports(text: &str, ports: &[u16]) -> String {
    let mut text = text.to_owned();
    for (k, port) in ports.iter().enumerate() {
        text = text.replace(&format!(":{}", FIRST + k as u16), &format!(":{port}"));
    }
    text
}

/// One bash line for a command: `$M …` tried again on failure, `NAME=$(…)`
/// repeated until non-empty, anything else as written.
fn bash_line(command: &str) -> String {
    if command.starts_with("$M ") {
        return format!("retry {command}");
    }
    if let Some((name, _)) = command.split_once("=$(")
        && !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return format!(
            "for _ in $(seq 1 60); do {command} || true; [ -n \"${name}\" ] && break; sleep 0.25; done; [ -n \"${name}\" ]"
        );
    }
    command.to_owned()
}

fn run_block(dir: &Path, block: &str) -> String {
    let mut script = String::from(
        "set -euo pipefail\nretry() { for _ in $(seq 1 60); do \"$@\" && return 0; sleep 0.25; done; \"$@\"; }\n",
    );
    for command in commands(block) {
        script.push_str(&bash_line(&command));
        script.push('\n');
    }
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(dir)
        .env("M", env!("CARGO_BIN_EXE_mimi"))
        .env_remove("MIMI_ADMIN_TOKEN")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "block failed:\n{block}\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The servers of the walkthrough, stopped when dropped.
struct Servers(Vec<Child>);

impl Drop for Servers {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_walkthrough_runs_as_written() {
    let doc = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/walkthrough.md"),
    )
    .unwrap();
    let blocks = sh_blocks(&doc);
    assert!(blocks.len() >= 6, "{blocks:?}");
    let dir = tempfile::tempdir().unwrap();
    let ports = free_ports(6);
    let mut servers = Servers(Vec::new());
    let mut outputs = String::new();
    for block in &blocks {
        if block.contains("cargo build") {
            continue;
        }
        let block = with_ports(block, &ports);
        let commands = commands(&block);
        if commands.iter().all(|c| c.starts_with("$M server ")) {
            for command in &commands {
                let args = command["$M ".len()..].split_whitespace();
                servers.0.push(
                    Command::new(env!("CARGO_BIN_EXE_mimi"))
                        .args(args)
                        .current_dir(dir.path())
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .spawn()
                        .unwrap(),
                );
            }
            wait_listening(&ports).await;
            continue;
        }
        outputs.push_str(&run_block(dir.path(), &block));
        if block.contains("dev-ca") {
            // The generated configs listen on the document's ports.
            for entry in std::fs::read_dir(dir.path().join("dev")).unwrap() {
                let path = entry.unwrap().path();
                if path.extension().is_some_and(|e| e == "toml") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    std::fs::write(&path, with_ports(&text, &ports)).unwrap();
                }
            }
        }
    }
    assert_eq!(servers.0.len(), 3, "the three providers were started");
    // Alice's report of Cathy's message reached the hub's operator, its
    // frank verified (the walkthrough's `admin … reports`).
    assert!(
        outputs.contains("mimi://a.example/u/alice reports mimi://c.example/u/cathy"),
        "{outputs}"
    );
    assert!(outputs.contains("franks verified"), "{outputs}");
    // Bob's reaction and reply and Cathy's edit, as Alice reads them.
    assert!(
        outputs.contains("reactions: 👍 1 (mimi://b.example/u/bob)"),
        "{outputs}"
    );
    assert!(
        outputs.contains("in reply to mimi://c.example/u/cathy: hello from c.example"),
        "{outputs}"
    );
    assert!(outputs.contains("lunch anyone? (edited)"), "{outputs}");
    // Cathy's file, downloaded by Bob by proxy and by OHTTP, each checked.
    assert_eq!(
        outputs
            .matches("(text/plain, 23 bytes, hash and tag verified)")
            .count(),
        2,
        "{outputs}"
    );
    assert!(
        !outputs.contains("lunh"),
        "the edit replaced the text: {outputs}"
    );
    // The moderated room: Bob let himself in as an attendee.
    assert!(
        outputs.contains("mimi://b.example/u/bob 3 (attendee)"),
        "{outputs}"
    );
    assert!(outputs.contains("4 speaker"), "{outputs}");
    // The book club: Cathy joined by a single-use link, which is gone.
    assert!(
        outputs.contains("joined mimi://a.example/r/book-club"),
        "{outputs}"
    );
    assert!(
        outputs.contains("no join links in mimi://a.example/r/book-club"),
        "{outputs}"
    );
}

#[test]
fn blocks_and_commands_are_read_as_a_shell_would() {
    let doc = "text\n```sh\n$M a \\\n   b # note\n# comment\nX=$($M r | awk '{print $2}')\n```\n```text\nnot sh\n```\n";
    let blocks = sh_blocks(doc);
    assert_eq!(blocks.len(), 1);
    assert_eq!(
        commands(&blocks[0]),
        ["$M a b", "X=$($M r | awk '{print $2}')"]
    );
    assert_eq!(bash_line("$M a b"), "retry $M a b");
    assert!(bash_line("X=$($M r)").contains("[ -n \"$X\" ]"));
    assert_eq!(
        with_ports(
            "--connect 127.0.0.1:18444 https://a.example:18448",
            &[1, 2, 3, 4, 5, 6]
        ),
        "--connect 127.0.0.1:2 https://a.example:6"
    );
}
