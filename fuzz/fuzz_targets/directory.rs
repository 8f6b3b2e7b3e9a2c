//! The directory document fetched from a peer (-06 §5.1): JSON with one
//! URI template per endpoint.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mimi_fuzz::targets::directory::run(data));
