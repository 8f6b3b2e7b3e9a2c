//! The body of every fuzz target, one module each, so that plain tests can
//! replay inputs without libFuzzer (`fuzz_targets/<name>.rs` only calls
//! `run`).

pub mod abuse;
pub mod components;
pub mod consent;
pub mod content;
pub mod directory;
pub mod fanout;
pub mod group_info;
pub mod identifier;
pub mod key_material;
pub mod submit;
pub mod update;
pub mod uri;

/// A target's body: checks one input, panicking on a violated property.
pub type Run = fn(&[u8]);

/// Every target by its `cargo fuzz` name.
pub const ALL: &[(&str, Run)] = &[
    ("abuse", abuse::run),
    ("components", components::run),
    ("consent", consent::run),
    ("content", content::run),
    ("directory", directory::run),
    ("fanout", fanout::run),
    ("group_info", group_info::run),
    ("identifier", identifier::run),
    ("key_material", key_material::run),
    ("submit", submit::run),
    ("update", update::run),
    ("uri", uri::run),
];
