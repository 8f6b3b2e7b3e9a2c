//! `mimi://` URIs (-06 §3, draft-mahy-mimi-identity): parsing of URIs from
//! the wire (`IdentifierUri` bytes, path parameters), their normalisation,
//! and building URIs from arbitrary ids and domains.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mimi_fuzz::targets::uri::run(data));
