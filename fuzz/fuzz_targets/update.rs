//! `POST /update/{roomId}` (-06 §5.3): `UpdateRequest` (a
//! `HandshakeBundle`, selected on the framed content type) and
//! `UpdateRoomResponse`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mimi_fuzz::targets::update::run(data));
