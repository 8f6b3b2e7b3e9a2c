//! The MIMI content format (draft-ietf-mimi-content): `MimiContent` (the
//! application message plaintext) and `MessageDerivedValues`. Decoding is
//! strict deterministic CBOR, so an accepted input re-encodes to itself.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mimi_fuzz::targets::content::run(data));
