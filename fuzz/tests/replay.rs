//! Replays every committed input through its target without libFuzzer, so
//! `cargo test --manifest-path fuzz/Cargo.toml` (run by `.ci/run`) checks
//! the seeds of `fuzz/seeds/<target>/` and the hazard inputs of
//! `fuzz/regressions/<target>/` against the current decoders
//! (docs/fuzzing.md "Regressions").

use std::path::{Path, PathBuf};

use mimi_fuzz::targets::ALL;

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("readable directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn every_target_has_seeds_and_replays_them() {
    for (name, run) in ALL {
        let seeds = inputs(&root().join("seeds").join(name));
        assert!(!seeds.is_empty(), "target {name} has no seeds");
        for path in seeds {
            let data = std::fs::read(&path).expect("seed readable");
            run(&data);
        }
    }
}

#[test]
fn regression_inputs_replay_without_a_panic() {
    let dir = root().join("regressions");
    let mut replayed = 0;
    for (name, run) in ALL {
        for path in inputs(&dir.join(name)) {
            let data = std::fs::read(&path).expect("regression input readable");
            run(&data);
            replayed += 1;
        }
    }
    // Every directory under regressions/ names a target, so no input is
    // silently skipped.
    for entry in std::fs::read_dir(&dir).expect("fuzz/regressions exists") {
        let name = entry.expect("entry").file_name();
        let name = name.to_string_lossy();
        assert!(
            name == "README.md" || ALL.iter().any(|(t, _)| *t == name),
            "fuzz/regressions/{name} is not a target"
        );
    }
    assert!(replayed > 0, "no regression inputs found");
}

/// Each `[[bin]]` of fuzz/Cargo.toml is in `targets::ALL`, so no target
/// escapes the replay.
#[test]
fn every_cargo_fuzz_target_is_replayed() {
    let manifest = std::fs::read_to_string(root().join("Cargo.toml")).expect("manifest");
    let bins: Vec<&str> = manifest
        .lines()
        .filter_map(|l| l.strip_prefix("name = \""))
        .filter_map(|l| l.strip_suffix('"'))
        .filter(|n| *n != "mimi-fuzz")
        .collect();
    assert_eq!(bins.len(), ALL.len(), "{bins:?}");
    for bin in bins {
        assert!(
            ALL.iter().any(|(t, _)| *t == bin),
            "{bin} not in targets::ALL"
        );
    }
}
