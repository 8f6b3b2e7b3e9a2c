//! `POST /reportAbuse/{roomId}` (-06 §5.9): the `AbuseReport` body, with
//! its `AbusiveMessage`s and their `Frank`s.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mimi_fuzz::targets::abuse::run(data));
