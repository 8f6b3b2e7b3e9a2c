//! `POST /identifierQuery/{domain}` (-06 §5.8): `IdentifierRequest` and
//! `IdentifierResponse`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mimi_fuzz::targets::identifier::run(data));
