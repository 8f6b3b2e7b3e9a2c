//! `POST /submitMessage/{roomId}` (-06 §5.4): `SubmitMessageRequest` and
//! `SubmitMessageResponse` (with the optional `Frank`, §5.4.1).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mimi_fuzz::targets::submit::run(data));
