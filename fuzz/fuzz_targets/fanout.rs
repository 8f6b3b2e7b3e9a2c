//! `POST /notify/{roomId}` (-06 §5.5): one `FanoutMessage`, and a whole
//! notify body (one or more concatenated `FanoutMessage`s, as the follower
//! splits it).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mimi_fuzz::targets::fanout::run(data));
